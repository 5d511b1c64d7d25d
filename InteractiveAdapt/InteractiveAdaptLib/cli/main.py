"""`interactive-adapt`: the command line front end of the engine.

The user commands (`segment`, `sites`) live beside this file; each module's `register(subparsers)`
adds its command. Developer tools add theirs through the entry-point group `interactive_adapt.commands`
(the lab package beside this one registers demo, benchmark, train, ... there), so this package never
imports them and a Slicer install, which has no lab package, simply lists fewer commands.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points

from InteractiveAdaptLib.cli import segment, sites
from InteractiveAdaptLib.errors import InteractiveAdaptError

log = logging.getLogger(__name__)

COMMAND_GROUP = "interactive_adapt.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interactive-adapt",
        description="Click-based MRI segmentation that learns from every click and every accepted case.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    segment.register(sub)
    sites.register(sub)
    for plugin in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        try:
            register = plugin.load()
        except ImportError as exc:  # e.g. installed without the `lab` extra: the user commands still work
            log.debug("Commands of %s not available: %s", plugin.value, exc)
            continue
        register(sub)
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
