"""Reading and writing volumes: NIfTI, NRRD and DICOM (series, multi-frame files) with geometry."""
