"""InteractiveAdapt in a web browser: `interactive-adapt serve` streams Slicer's slice views (trame-slicer)
to a page with the module's panel. It drives the same `Workflow` (InteractiveAdaptLib.mrml) and the
same engine session as the Slicer module; this package is only the page's layout (page.py) and its
event wiring (app.py). Installed with the `web` extra; Slicer never installs it.
"""
