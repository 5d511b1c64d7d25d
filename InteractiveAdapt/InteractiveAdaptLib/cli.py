"""`interactive-adapt`: the command line front end of the engine.

Each command lives in the module of its concept; that module's `register(subparsers)` adds it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .errors import InteractiveAdaptError

# Modules that contribute sub-commands, in the order --help lists them.
COMMAND_MODULES = [
    "segment_cli",
    "sites_cli",
    "demo",
    "benchmark",
    "speed_benchmark",
    "training",
    "training_report",
    "model_export",
    "datasets",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interactive-adapt",
        description="Click-based MRI segmentation that learns from every click and every accepted case.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except InteractiveAdaptError as error:
        # A user-caused problem: say what happened and what to do, no traceback.
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
