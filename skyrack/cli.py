"""The `skyrack` command: a thin dispatcher over the library.

Each feature module owns its subcommands through a `register(subparsers)` function that adds
parsers and sets `func(args) -> int`. Adding a command is one line in `COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from skyrack import __version__
from skyrack.cliargs import print_json  # noqa: F401  (its old home; the commands import it from cliargs)
from skyrack.errors import UserError

COMMAND_MODULES = (
    "skyrack.orbit.commands",
    "skyrack.geo.commands",
    "skyrack.planner.commands",
    "skyrack.bus.commands",
    "skyrack.train.commands",
    "skyrack.faults.commands",
    "skyrack.ground.commands",
    "skyrack.assistant.commands",
    "skyrack.mission.commands",
    "skyrack.constellation.commands",
    "skyrack.telemetry.commands",
    "skyrack.link.commands",
    "skyrack.jobs.commands",
    "skyrack.jobs.screen_commands",
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit code 2, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="skyrack", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"skyrack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        sys.stderr.write(f"skyrack: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("skyrack: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
