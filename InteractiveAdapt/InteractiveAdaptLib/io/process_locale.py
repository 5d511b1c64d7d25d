"""GDCM (the DICOM library inside SimpleITK) switches the process's C locale to "C" when it writes DICOM
values and never switches it back; Python then reads and writes text files without an explicit
encoding as ASCII, so the next file with an accent fails, in the web server as in the tests."""

from __future__ import annotations

import contextlib
import locale
from collections.abc import Iterator


@contextlib.contextmanager
def kept_locale() -> Iterator[None]:
    """Run a GDCM call and give the process its locale back afterwards."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        if locale.setlocale(locale.LC_ALL) != saved:
            locale.setlocale(locale.LC_ALL, saved)
