"""InteractiveAdapt engine: click-conditioned segmentation that adapts online."""
