"""What the Slicer module needs around the engine: its settings, the worker thread that runs torch
work, and the check and install of the Python packages."""
