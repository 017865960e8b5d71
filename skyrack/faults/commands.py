"""`skyrack faults campaign`: a training run twice with one seed, fault-free and under injection.

torch is imported only when the command runs."""

from __future__ import annotations

import argparse

from skyrack.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser("faults", help="radiation fault injection into a training run")
    sub = p.add_subparsers(dest="faults_command", metavar="SUBCOMMAND")
    c = sub.add_parser(
        "campaign", help="train twice (fault-free, then under injection) and classify every fault",
        description="Train a small GPT twice with the same seed, once fault-free and once under "
                    "injected faults (memory upsets, compute corruptions, process kills, checkpoint "
                    "corruption), then classify every fault as masked, recovered or silent.")
    c.add_argument("--faults", type=int, metavar="N",
                   help="inject N faults spread over the run (default: the radiation model's rate x --stress)")
    c.add_argument("--stress", type=float, default=1e4, metavar="X",
                   help="multiplier on the radiation model's upset rate (default 1e4)")
    c.add_argument("--protect", action=argparse.BooleanOptionalAction, default=True,
                   help="detection and recovery (default: on)")
    c.add_argument("--seed", type=int, default=1337, metavar="S")
    c.add_argument("--steps", type=int, default=300, metavar="N", help="training steps (default 300)")
    c.add_argument("--data", metavar="FILE", help="train on this text file (default: a generated play)")
    c.add_argument("--tolerance", type=float, default=0.01,
                   help="val-loss difference beyond which an undetected state change is harmful")
    c.add_argument("--json", action="store_true", help="the full result, every fault included, as JSON")
    c.set_defaults(func=cmd_campaign)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def cmd_campaign(args) -> int:
    if args.steps <= 0:
        raise UserError(f"--steps must be positive, not {args.steps}")
    if args.faults is not None and args.faults < 0:
        raise UserError(f"--faults must be zero or more, not {args.faults}")
    if args.stress < 0:
        raise UserError(f"--stress must be zero or more, not {args.stress}")
    from skyrack.faults.campaign import run_campaign
    result = run_campaign(n_faults=args.faults, stress=args.stress, protect=args.protect,
                          seed=args.seed, steps=args.steps, data_file=args.data,
                          tolerance=args.tolerance)
    if args.json:
        from skyrack.cli import print_json
        print_json(result)
        return 0
    print(render(result))
    return 0


def render(r: dict) -> str:
    lines = [f"fault campaign: {r['steps']} steps, seed {r['seed']}, protection "
             f"{'on' if r['protect'] else 'off'}"
             + (f", {r['faults_per_step']:.3g} faults/step (radiation model x stress {r['stress']:g})"
                if r["faults_per_step"] is not None else ""),
             "",
             f"{'class':<10} {'injected':>8} {'masked':>7} {'(drift)':>7} {'recovered':>9} {'silent':>6}"]
    for kind, row in r["table"].items():
        lines.append(f"{kind:<10} {row['injected']:>8} {row['masked']:>7} {row['drift']:>7} "
                     f"{row['recovered']:>9} {row['silent']:>6}")
    ff, fy = r["fault_free"], r["faulty"]
    lines += ["",
              f"final val loss: fault-free {ff['val_loss']:.4f}, under faults {fy['val_loss']:.4f} "
              f"(diff {fy['val_loss'] - ff['val_loss']:+.4f}); final state bitwise equal: "
              f"{'yes' if r['bitwise_equal_final_state'] else 'no'}",
              f"time: fault-free {ff['seconds']:.1f} s, under faults {fy['seconds']:.1f} s "
              f"(overhead {100 * r['overhead']:+.0f}%: {fy['detections']} detections, "
              f"{fy['replayed_steps']} replayed steps, {fy['restarts']} restarts)",
              "(drift): undetected faults that changed the state but kept the final val loss within "
              f"{r['tolerance']:g}; counted as masked"]
    return "\n".join(lines)
