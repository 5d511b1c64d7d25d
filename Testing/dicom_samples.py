"""Where the set-up's data-only pip packages put their real DICOM files (pydicom-data, pydicom's own test
files, heudiconv's test data), shared by the io tests. Importable by name (Testing/ is on the path)."""

from __future__ import annotations

import importlib.util
import sysconfig
from pathlib import Path

SITE = Path(sysconfig.get_paths()["purelib"])
PYDICOM_DATA = SITE / "data_store" / "data"  # PyPI pydicom-data
PYDICOM_TEST = SITE / "pydicom" / "data" / "test_files"
_HEUDICONV_SPEC = importlib.util.find_spec("heudiconv")
HEUDICONV = (
    Path(_HEUDICONV_SPEC.origin).parent / "tests" / "data"
    if _HEUDICONV_SPEC is not None and _HEUDICONV_SPEC.origin
    else SITE / "heudiconv" / "tests" / "data"
)
HEUDICONV_ENHANCED = HEUDICONV / "MRI_102TD_PHA_S.MR.Chen_Matthews_1.3.1.2022.11.16.15.50.20.357.31204541.dcm"
