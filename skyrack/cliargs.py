"""What the `skyrack` commands share: their common options, their output helpers, and the
arguments of a time. Each option is declared here once, with one help text.

Only the command modules (`*/commands.py`, `skyrack.cli`) import this module.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from skyrack.errors import positive  # noqa: F401  (the commands' one validator of sizes)

RUNS_DIR_HELP = "where runs live (default: $SKYRACK_RUNS or ./runs)"
RUN_HELP = "run id (under --runs-dir) or run directory"


def print_json(payload: Any) -> None:
    """Machine-readable output for `--json`: one document on stdout."""
    json.dump(payload, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")


def warn(message: str | None) -> None:
    """A warning on stderr (nothing for None), so that stdout stays the command's output."""
    if message:
        sys.stderr.write(f"skyrack: warning: {message}\n")


def add_flight_args(parser, *, tle: bool = True) -> None:
    """The options every command that flies a satellite takes."""
    parser.add_argument(
        "--profile",
        default=None,
        metavar="NAME|PATH",
        help="spacecraft profile: built-in name or TOML file (default: starcloud-1)",
    )
    if tle:
        parser.add_argument(
            "--tle",
            default=None,
            metavar="FILE",
            help="two/three-line elements or OMM JSON overriding the profile's orbit",
        )


def add_runs_dir_arg(parser) -> None:
    parser.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)


def add_run_args(parser) -> None:
    """A run named on the command line (`RUN`) and where run ids are looked up."""
    parser.add_argument("run", metavar="RUN", help=RUN_HELP)
    add_runs_dir_arg(parser)


def add_device_arg(parser) -> None:
    parser.add_argument(
        "--device",
        default=None,
        help="torch device: cpu, cuda, cuda:N (default: cuda when present, else cpu)",
    )


def twin_from_args(args):
    """The orbit twin of `--profile` and `--tle`."""
    from skyrack.telemetry.runs import twin_for

    return twin_for(profile=args.profile, tle=args.tle)


def start_time(args) -> float:
    """`--at` (ISO 8601) as POSIX seconds, else now."""
    from skyrack.orbit.timebase import parse_time

    at = getattr(args, "at", None)
    return (parse_time(at) if at else datetime.now(UTC)).timestamp()
