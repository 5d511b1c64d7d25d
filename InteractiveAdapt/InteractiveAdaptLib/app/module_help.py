"""The module's help and acknowledgement text (Slicer shows them in the module panel's Help section)."""

CITATION = (
    "Xu, Liang, Anthony, Ibrahim, Cohen, Yang, Kamnitsas. <i>You Point, I Learn: Online Adaptation of "
    "Interactive Segmentation Models for Handling Distribution Shifts in Medical Imaging.</i> ICLR 2026."
)

HELP = (
    "Segment a structure on MRI with a few clicks; the network learns from every click and every "
    "finished case, so the next studies of the same site need fewer clicks.<br><br>"
    "<b>Use:</b> choose the MRI volume (it gets its own segmentation), then add the structure by name, "
    "e.g. 'Hippocampus (L)': the name picks the learning profile, left and right share one, and the "
    "panel shows what that profile has learned. Press <b>Positive point</b> (key <b>P</b>) and "
    "left-click inside the structure in any view: the slice is segmented, and with <b>Fill the "
    "structure in 3D</b> the slices beyond it and between clicked slices are filled. Add <b>Negative "
    "points</b> (key <b>N</b>) where it spills over, positive ones where it misses. <b>Ctrl+Z</b> undoes "
    "the last click; deleting an earlier point also places the later ones again. Correct with the "
    "Segment Editor if needed, then press "
    "<b>Finish case</b>: the case is learned and a new version of the site's weights is saved (roll "
    "back under <i>Site and model</i>, per structure). Press the button again to stop placing; right-drag "
    "zooms, middle-drag pans and the wheel changes slice meanwhile. Changing patient or structure asks "
    "before it drops unfinished clicks.<br><br>"
    f"<b>Method:</b> {CITATION}"
)

ACKNOWLEDGEMENT = f"Built on 3D Slicer, MONAI and PyTorch. The online adaptation follows {CITATION}"
