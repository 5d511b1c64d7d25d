"""The real MRI domains, their cases (one slice + one structure) and the evaluation streams."""
