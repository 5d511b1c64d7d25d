"""The lab's sub-commands of `interactive-adapt`, registered through the entry point
`interactive_adapt.commands` in pyproject.toml (the user package never imports the lab)."""

from __future__ import annotations

import argparse

from interactive_adapt_lab import demo
from interactive_adapt_lab.data import datasets
from interactive_adapt_lab.evaluation import (
    adaptation_benchmark,
    design_comparison,
    propagation_speed,
    slicer_loop_benchmark,
    speed_benchmark,
    volumetric_benchmark,
    web_latency_benchmark,
)
from interactive_adapt_lab.training import (
    model_export,
    propagation_training,
    training,
    training_report,
    volume_export,
    volume_training,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add demo, benchmark, bench-speed, bench-slicer-loop, bench-volumetric, compare-designs,
    bench-propagation, bench-web, train, train-volume, train-propagation, training-report,
    export-model, export-volume-model and build-cache."""
    for module in (
        demo,
        adaptation_benchmark,
        speed_benchmark,
        slicer_loop_benchmark,
        volumetric_benchmark,
        design_comparison,
        propagation_speed,
        web_latency_benchmark,
        training,
        volume_training,
        volume_export,
        propagation_training,
        training_report,
        model_export,
        datasets,
    ):
        module.register(subparsers)
