"""CLI: `skyrack screen eval|train|image`, the cloud screen on the real scenes and a user's image."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from skyrack.cliargs import print_json
from skyrack.errors import UserError


def _progress(message: str) -> None:
    sys.stderr.write(f"{message}\n")


def register(sub) -> None:
    p = sub.add_parser("screen", help="cloud screening of Earth-observation images (the `screen` job)")
    screen_sub = p.add_subparsers(dest="screen_command", metavar="ACTION")
    e = screen_sub.add_parser(
        "eval", help="held-out accuracy and false discards, beside a brightness reference"
    )
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)
    t = screen_sub.add_parser("train", help="train the cloud screen afresh on the real scenes")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)
    i = screen_sub.add_parser("image", help="screen a PNG or GeoTIFF: per-tile cloud and keep/discard")
    i.add_argument("file", metavar="FILE", help="PNG or GeoTIFF (RGB first; 16-bit as Landsat 8 L1 DN)")
    i.add_argument("--dn-scale", choices=("landsat8", "sentinel2"), help="how 16-bit samples read")
    i.add_argument("--kept", metavar="PNG", help="also write the kept tiles (discarded ones black) here")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_image)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _line(name: str, f: dict) -> str:
    return (
        f"{name:<27} accuracy {f['accuracy']:6.1%}  false discards {f['false_discards']:>2}/{f['clear']:<3} "
        f"({f['false_discard_rate']:.1%})  missed cloudy {f['missed_cloudy']:>2}/{f['cloudy']:<3} tiles {f['tiles']}"
    )


def cmd_eval(args) -> int:
    from skyrack.jobs import screen, screen_model

    figures = screen_model.evaluate(screen.model(progress=_progress))
    if args.json:
        print_json(figures)
        return 0
    record = figures["record"]
    print(
        f"cloud screen: {record['parameters']:,} parameters ({record['weights_bytes']:,} bytes), "
        f"discard above {record['threshold']:.3f} (chosen on validation for <= 1 % false discards)"
    )
    for role in ("test", "test_landsat8", "test_sentinel2", "val"):
        label = {"test": "held-out test", "val": "validation"}.get(role, role.replace("test_", "  test, "))
        print(_line(f"model {label}", figures["model"][role]))
        print(_line(f"brightness {label}", figures["reference"][role]))
    return 0


def cmd_train(args) -> int:
    from skyrack.jobs import screen, screen_model

    model = screen.retrain(progress=_progress)
    figures = screen_model.evaluate(model)
    if args.json:
        print_json(figures)
    else:
        print(_line("model held-out test", figures["model"]["test"]))
    return 0


def cmd_image(args) -> int:
    from skyrack.jobs import screen

    path = Path(args.file)
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    params = {"source": "upload"}
    if args.dn_scale:
        params["dn_scale"] = args.dn_scale
    screen.model(progress=_progress)
    outcome = screen.run(params, payload, seed=0)
    result = json.loads(outcome.result)
    if args.kept:
        from skyrack.storage import atomic_write_bytes

        atomic_write_bytes(args.kept, base64.b64decode(result["kept_png"]))
    if args.json:
        print_json(
            {"summary": outcome.summary, "tiles": result["tiles"], "discard_above": result["discard_above"]}
        )
        return 0
    s = outcome.summary
    print(
        f"{path.name}: {s['tiles']} tiles of {result['tile_px']} px, kept {s['kept']}, discarded {s['discarded']} "
        f"(discard above {result['discard_above']:.3f} estimated cloud); result {s['result_bytes']:,} bytes "
        f"against {s['raw_bytes']:,} raw ({s['ratio']:.1%})"
    )
    rows, cols = result["grid"]
    for r in range(rows):
        row = result["tiles"][r * cols : (r + 1) * cols]
        print(" ".join(f"{t['cloud']:.2f}{'' if t['keep'] else '*'}" for t in row))
    print("(estimated cloud fraction per tile; * discarded)")
    return 0
