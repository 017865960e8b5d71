"""CLI: `skyrack command RUN NAME [ARG=VALUE ...] [--at TIME]`, a command queued on the ground.

Over a real link it waits in the ground archive for the next contact (or the relay) and runs
on board when it arrives, or at its time tag (`--at`, PUS-11 style: stored on board and run at
that simulated time, even out of contact); on the ideal link it runs at the next frame.
"""

from __future__ import annotations

from skyrack.cliargs import add_run_args, print_json
from skyrack.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("command", help="queue a command for a running mission (uplinked in the next contact)")
    add_run_args(p)
    p.add_argument("name", metavar="NAME", help="a command of the dictionary (skyrack dictionary)")
    p.add_argument("args", nargs="*", metavar="ARG=VALUE", help="arguments, e.g. cap_w=300")
    p.add_argument("--at", metavar="TIME", help="time tag: run on board at this simulated time (ISO 8601)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_command)


def _arguments(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"argument {pair!r}: write NAME=VALUE")
        try:
            out[key] = float(value)
        except ValueError:
            raise UserError(f"argument {key}: {value!r} is not a number") from None
    return out


def cmd_command(args) -> int:
    from skyrack.link.ground import queue_ground_command

    at = None
    if args.at:
        from skyrack.orbit.timebase import parse_time

        at = parse_time(args.at).timestamp()
    cmd = queue_ground_command(args.run, args.runs_dir, args.name, _arguments(args.args), at)
    if args.json:
        print_json(cmd)
    else:
        when = f", to run at {args.at}" if at is not None else ""
        print(f"command {cmd['id']} {cmd['name']} {cmd['status']}{when} ({cmd['where']})")
    return 0
