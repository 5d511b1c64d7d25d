"""Evaluation with the simulated user, the adaptation and speed benchmarks, and their reports."""
