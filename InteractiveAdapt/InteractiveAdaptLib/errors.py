"""Errors a user can cause. Each message says what happened and what to do next.

The GUI and the CLI show `str(error)` to the clinician; they never show a traceback for these.
"""


class InteractiveAdaptError(Exception):
    """Base class of every error the engine raises on purpose."""


class ImageReadError(InteractiveAdaptError):
    """An image file or DICOM folder cannot be read as one 3D scalar MRI volume."""


class InvalidClickError(InteractiveAdaptError):
    """A click is outside the image, on an unsupported plane, or otherwise unusable."""


class CaseStateError(InteractiveAdaptError):
    """An action does not fit the state of the current case (e.g. a click before a case started)."""


class WeightsError(InteractiveAdaptError):
    """A weight file is missing, corrupted, foreign or made for a different network."""


class IncompatibleBaseModelError(WeightsError):
    """Site weights were adapted from a different base model than the one loaded now."""


class SiteStoreError(InteractiveAdaptError):
    """The site store cannot do what was asked (bad name, unknown version, disk full, ...)."""


class SiteStoreAccessError(SiteStoreError):
    """The site store's folder cannot be read or written (permissions, a read-only or full disk, a
    network drive that went away); the message names the folder and what to do."""


class TorchTooOldError(WeightsError):
    """The PyTorch in use is older than the first version whose weights-only loading is not known to
    be bypassable, so no weight file is read with it."""


class ImageTooLargeError(ImageReadError):
    """A case on the image would need more memory than this computer has (found from its header,
    before its voxels are read, where the format allows)."""


class LabelMapError(ImageReadError):
    """The image chosen as the MRI is a label map (an atlas or a segmentation)."""
