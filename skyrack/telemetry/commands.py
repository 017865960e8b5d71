"""CLI: `skyrack dictionary`, the one declaration of channels, events and commands, as a table,
as JSON, or as XTCE for ground systems (Yamcs, and any tool that reads XTCE)."""

from __future__ import annotations

import sys
from dataclasses import asdict

from skyrack.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "dictionary", help="the telemetry dictionary: channels, events, commands (--xtce for Yamcs)"
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="the dictionary as JSON")
    fmt.add_argument(
        "--xtce",
        action="store_true",
        help="XTCE 1.2: the downlink packets' layout, for Yamcs and other XTCE readers",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(func=cmd_dictionary)


def cmd_dictionary(args) -> int:
    from skyrack.telemetry.dictionary import CHANNELS, COMMANDS, EVENTS

    if args.xtce:
        from skyrack.link.xtce import xtce_document

        text = xtce_document()
    elif args.json:
        import json

        text = json.dumps(
            {
                "channels": [asdict(c) for c in CHANNELS],
                "events": [asdict(e) for e in EVENTS],
                "commands": [asdict(c) for c in COMMANDS],
            },
            indent=2,
        )
        text += "\n"
    else:
        lines = [f"{'channel':<24} {'unit':<6} {'type':<6} description"]
        lines += [f"{c.name:<24} {c.unit:<6} {c.type:<6} {c.description}" for c in CHANNELS]
        lines += ["", f"{'event':<24} {'severity':<9} message"]
        lines += [f"{e.name:<24} {e.severity:<9} {e.format}" for e in EVENTS]
        lines += ["", "commands"]
        lines += [
            f"{c.name:<24} {' '.join(a.name for a in c.arguments):<13} {c.description}" for c in COMMANDS
        ]
        text = "\n".join(lines) + "\n"
    if args.output:
        from pathlib import Path

        from skyrack.storage import atomic_write_text

        try:
            atomic_write_text(Path(args.output), text)
        except OSError as exc:
            raise UserError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return 0
