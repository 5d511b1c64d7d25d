"""What the module's panel does, without Qt: one patient (volume) at a time with its own segmentation,
structures named by the user (each name picks a learning profile), and no clicks dropped without asking.

The module wires its widgets to these methods and shows what they report; the tests drive the same
methods on a real scene with real mouse clicks. Each click fills the structure in 3D along the volume's
K axis (switch and slice range below); the panel lists the clicked slices of that axis. Questions go through `ask` (a Yes/No dialog in Slicer),
short news through `on_status` (the status line), and unexpected failures through `on_error`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from InteractiveAdaptLib.errors import CaseStateError, InteractiveAdaptError, InvalidClickError
from InteractiveAdaptLib.interaction import CaseSession, JobKind
from InteractiveAdaptLib.mrml.case_manager import CaseManager, CaseNodes
from InteractiveAdaptLib.mrml.markups import create_click_nodes
from InteractiveAdaptLib.mrml.panel_state import PanelState, build_panel, fill_news
from InteractiveAdaptLib.mrml.point_placer import PointPlacer
from InteractiveAdaptLib.mrml.scene_events import SceneEvents, removed_node_observer
from InteractiveAdaptLib.mrml.segments import (
    create_segmentation,
    prepare_segmentation,
    segment_profile,
    segmentation_of,
)
from InteractiveAdaptLib.mrml.site_versions import SiteVersions
from InteractiveAdaptLib.mrml.slice_views import show_volume
from InteractiveAdaptLib.mrml.volume import check_scalar_volume, node_name, volume_geometry

Ask = Callable[[str], bool]


class Workflow(SiteVersions, SceneEvents):
    """The clinician's workflow on a scene: choose a patient, name structures, click, finish, roll back."""

    def __init__(
        self,
        scene: Any,
        executor: Any,
        open_session: Callable[[Any], CaseSession],
        settings: Any,
        ask: Ask,
        on_status: Callable[[str], None],
        on_error: Callable[[BaseException, str], None],
    ) -> None:
        self.scene = scene
        self.executor = executor
        self.settings = settings
        self.cases = CaseManager(executor, open_session)
        self._ask, self._on_status, self._error = ask, on_status, on_error
        self.volume: Any = None
        self.segmentation: Any = None
        self.segment_id = ""
        self.positive: Any = None
        self.negative: Any = None
        self.placer = PointPlacer()
        self.status = ""  # the newest status line
        self._preloading = False
        scene.AddObserver(scene.NodeRemovedEvent, removed_node_observer(weakref.ref(self)))
        self._shown = False  # the patient's segmentation exists and the views show it
        self.fill_3d = True  # propagate each click's result beyond the clicked slices
        self.slice_range: tuple[int | None, int | None] = (None, None)  # K slices it stays within

    # ------------------------------------------------------------ patient

    def set_volume(self, volume: Any, show: bool = True) -> bool:
        """Make `volume` the patient being segmented. With `show` (the user chose it) it gets its own
        segmentation (found or created, named after it) and is shown in the views; without (only offered,
        e.g. when the module opens) the scene is left as it is until a structure is added. False if the
        user kept the open case instead.

        Raises:
            CaseStateError: the volume is not a scalar MRI volume (4D, colour, label map).
        """
        if volume is self.volume:
            return True
        if volume is not None:
            check_scalar_volume(volume)
        if not self._may_drop_clicks(f"open '{node_name(volume)}'" if volume is not None else "close it"):
            return False
        self._end_case()
        self.volume, self.segmentation, self.segment_id, self._shown = volume, None, "", False
        if volume is None:
            return True
        self.segmentation = segmentation_of(self.scene, volume)
        if show:
            self._show_patient()
        ids = self._segment_ids() if self.segmentation is not None else []
        self.segment_id = ids[0] if ids else ""
        self._status(f"'{node_name(volume)}' is open. Add or choose the structure to segment.")
        return True

    def _show_patient(self) -> None:
        """The patient's own segmentation (created if missing) and the views turned to its image planes,
        once per patient (a view the user reformats later stays as the user left it)."""
        if self.segmentation is None:
            self.segmentation = create_segmentation(self.scene, self.volume)
        prepare_segmentation(self.segmentation, self.volume)
        if not self._shown:
            show_volume(self.scene, self.volume)
            self._shown = True

    def restore(self, volume: Any, segment_id: str) -> None:
        """Take up a patient a saved scene remembers (its own segmentation, the structure being
        segmented); no case is open yet."""
        self._end_case()
        self.volume, self._shown = volume, True  # the saved scene has its views as the user left them
        self.segmentation = segmentation_of(self.scene, volume) if volume is not None else None
        ids = self._segment_ids() if self.segmentation is not None else []
        self.segment_id = segment_id if segment_id in ids else (ids[0] if ids else "")

    # ------------------------------------------------------------ structures

    def structures(self) -> list[tuple[str, str]]:
        """(segment id, name) of the patient's structures, in the segmentation's order."""
        if self.segmentation is None:
            return []
        segmentation = self.segmentation.GetSegmentation()
        return [(sid, segmentation.GetSegment(sid).GetName()) for sid in self._segment_ids()]

    @property
    def structure_name(self) -> str:
        """The name of the structure being segmented ('' when none)."""
        return dict(self.structures()).get(self.segment_id, "")

    def add_structure(self, name: str) -> bool:
        """A new structure of this patient, named `name`, becomes the one segmented (an existing one of
        that name is chosen instead). False if the user kept the open case."""
        name = " ".join(str(name).split())
        if not name:
            raise CaseStateError("Type the structure's name first, for example 'Hippocampus (L)'.")
        self._require_volume()
        for segment_id, existing in self.structures():
            if existing.lower() == name.lower():
                return self.select_structure(segment_id)
        if not self._may_drop_clicks(f"add '{name}'"):
            return False
        self._end_case()
        self.segment_id = self.segmentation.GetSegmentation().AddEmptySegment("", name)
        self._status(f"'{name}' added: place positive points inside it.")
        return True

    def select_structure(self, segment_id: str) -> bool:
        """Segment another structure of this patient. False if the user kept the open case."""
        if segment_id == self.segment_id:
            return True
        if segment_id not in self._segment_ids():
            raise CaseStateError("That structure no longer exists. Choose or add another one.")
        if not self._may_drop_clicks("switch structure"):
            return False
        self._end_case()
        self.segment_id = segment_id
        return True

    def step_structure(self, step: int) -> bool:
        """The next (step=1) or previous (step=-1) structure, wrapping around."""
        ids = self._segment_ids()
        if not ids:
            return False
        position = ids.index(self.segment_id) if self.segment_id in ids else -step
        return self.select_structure(ids[(position + step) % len(ids)])

    def rename_structure(self, name: str) -> bool:
        """Rename the structure being segmented; its learning profile follows the new name. A case with
        clicks ends first (asked), so one case never teaches two profiles."""
        name = " ".join(str(name).split())
        if not name:
            raise CaseStateError("Type the new name first.")
        if not self.segment_id:
            raise CaseStateError("Choose the structure to rename first.")
        if not self._may_drop_clicks("rename it"):
            return False
        self._end_case()
        self.segmentation.GetSegmentation().GetSegment(self.segment_id).SetName(name)
        return True

    @property
    def profile(self) -> str:
        """The learning profile of the structure being segmented ('' when none)."""
        if not self.segment_id:
            return ""
        return segment_profile(self.segmentation, self.segment_id)

    def panel(self, engine_installed: bool = True, on_ready: Callable[[], None] | None = None) -> PanelState:
        """The panel's state now (see `panel_state.build_panel`: with a structure chosen and the network
        not loaded yet, its loading starts and `on_ready` runs once it is ready)."""
        return build_panel(self, engine_installed, on_ready)

    def session(self) -> CaseSession:
        """The engine session for the current settings (opened on first use)."""
        return self.cases.session_for(self.settings)

    @property
    def session_ready(self) -> bool:
        """True when the session is open: asking it for versions does not wait for the network to load."""
        return self.cases.session_ready(self.settings)

    def preload_session(self, on_ready: Callable[[], None] | None = None) -> None:
        """Open the session on the worker (engine imports, network loading) while the user loads a study,
        so that choosing the first structure does not freeze the GUI; `on_ready` runs once it is open,
        a failure goes to on_error."""

        def done(result: Any) -> None:
            self._preloading = False
            if result.error is not None:
                self._error(result.error, result.traceback)
            elif result.ok and on_ready is not None:
                on_ready()

        if not (self.session_ready or self._preloading):
            self._preloading = True
            self.executor.submit(self.session, kind=JobKind.LOAD_NETWORK, on_done=done)

    # ------------------------------------------------------------ clicks

    def prepare_case(self, on_status: Callable[[str], None] | None = None) -> CaseNodes:
        """Open the case on the current patient and structure (a case already open goes on)."""
        self._require_volume()
        if not self.segment_id:
            raise CaseStateError("Add the structure you segment first: type its name and press Add.")
        if self.positive is None or self.scene.GetNodeByID(self.positive.GetID() or "") is None:
            self.positive, self.negative = create_click_nodes(self.scene)  # the scene's own if it has them
        nodes = CaseNodes(self.volume, self.segmentation, self.segment_id, self.positive, self.negative)
        self.cases.prepare(
            self.scene, self.settings, nodes, on_error=self._case_error, on_status=on_status or self._status
        )
        self._apply_fill()
        return nodes

    # ------------------------------------------------------------ filling in 3D

    def set_fill(self, fill_3d: bool, first: int | None = None, last: int | None = None) -> None:
        """Fill the structure in 3D from the next click on: with `fill_3d`, each click's result is carried
        to the slices beyond it until the structure ends; off, a click fills only the slices between it
        and the clicked slices next to it. `first`/`last`: the slices (of the volume's K axis) the
        filling stays within; None or 0 (the panel's "none") sets no bound."""
        first, last = (None if n is None or n < 0 else int(n) for n in (first, last))
        if first is not None and last is not None and first > last:
            raise CaseStateError(
                f"The slice range {first} to {last} is empty. Choose a 'from' slice below the 'to' slice."
            )
        slices = volume_geometry(self.volume).shape_kji[0] if self.volume is not None else None
        if slices is not None and first is not None and first >= slices:
            raise CaseStateError(
                f"This image has slices 0 to {slices - 1}. Choose a 'from' slice among them."
            )
        self.fill_3d, self.slice_range = bool(fill_3d), (first, last)
        self._apply_fill()
        self._status(fill_news(self.fill_3d, first, last))

    def _apply_fill(self) -> None:
        controller = self.cases.controller
        if controller is not None:
            controller.fill_3d, controller.bounds = self.fill_3d, self.slice_range

    def start_placing(self, positive: bool, views: list[tuple[Any, Any]]) -> None:
        """Each left click in `views` ((slice node, interactor) pairs) becomes a positive or negative
        point of the case; right-drag zoom, pan and the wheel keep working meanwhile."""
        nodes = self.prepare_case()
        self.placer.start(nodes.positive if positive else nodes.negative, views)

    def stop_placing(self) -> None:
        """Left clicks in the views no longer place points."""
        self.placer.stop()

    @property
    def placing(self) -> bool | None:
        """True while placing positive points, False for negative ones, None when not placing."""
        node = self.placer.node
        return None if node is None else node is self.positive

    @property
    def clicks(self) -> int:
        """Clicks of the open case (none once Finish case is learning from them: nothing to drop)."""
        controller = self.cases.controller
        return len(controller.records) if controller is not None and not controller.finishing else 0

    def undo(self) -> None:
        """Undo the newest click."""
        controller = self.cases.controller
        if not (controller and controller.undo_last()):
            self._status("There is no click to undo.")

    def finish(self, learn: bool, on_done: Callable[[Any], None] | None = None) -> None:
        """Accept the case (learning from it unless `learn` is False); the Cancel button stops the
        learning, and then nothing is learned or saved."""
        controller = self.cases.controller
        if not controller or not controller.records:
            self._status("Place at least one point before finishing the case.")
            return

        def done(result: Any) -> None:
            if isinstance(result.error, InteractiveAdaptError):  # e.g. the version could not be saved
                self._status(f"{result.error} The case is still open: press Finish case again.")
            elif result.error is not None:
                self._error(result.error, result.traceback)
            elif result.value is None or result.value.cancelled:  # the summary says what happened
                self._status("Learning cancelled: the case ended without learning; the segment stays.")
            else:
                s = result.value
                saved = f"saved version {s.version} of '{self.profile}'" if s.version else "nothing saved"
                news = f"Case finished ({s.clicks} clicks): {s.slices_learned} slices learned, {saved}."
                self._status(f"{news} {s.warning}" if s.warning else news)
            if on_done is not None:
                on_done(result)

        controller.finish_case(learn=learn, on_done=done)

    def reset(self) -> None:
        """Forget the case's clicks; the clicked slices go back as they were."""
        if self.cases.controller:
            self.cases.controller.reset_case()
            self._status("Case reset: the clicked slices are back as they were.")

    # ------------------------------------------------------------ helpers

    def _status(self, text: str) -> None:
        self.status = text
        self._on_status(text)

    def _may_drop_clicks(self, action: str) -> bool:
        n = self.clicks
        if not n:
            return True
        structure = self.structure_name or "the structure"
        patient = node_name(self.volume)
        return self._ask(
            f"The open case ({structure} on '{patient}') has {n} click{'s' if n > 1 else ''} not yet "
            f"finished. To {action}, the clicks are dropped without learning (the segment stays as it is). "
            "Drop them?"
        )

    def _end_case(self) -> None:
        """End the open case without learning; placing stops (the next case starts on the next press)."""
        self.placer.stop()
        self.cases.close(learn=False)

    def _case_error(self, error: BaseException, traceback: str) -> None:
        if isinstance(error, InvalidClickError):
            self._status(str(error))  # a rejected click: say why in the status line, no dialog
        else:
            self._error(error, traceback)

    def _require_volume(self) -> None:
        """The patient is chosen; from here on the scene shows it (its segmentation, the views)."""
        if self.volume is None:
            raise CaseStateError("Choose the MRI volume first (Inputs > Input volume).")
        self._show_patient()

    def _segment_ids(self) -> list[str]:
        segmentation = self.segmentation.GetSegmentation()
        return [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())]
