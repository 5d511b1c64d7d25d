"""Pre-training, training reports and the export of a trained run as a shipped model."""
