"""`skyrack faults campaign`: a training run twice with one seed, fault-free and under injection.

torch is imported only when the command runs."""

from __future__ import annotations

import argparse

from skyrack.cliargs import positive, print_json
from skyrack.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser("faults", help="radiation fault injection into a training run")
    sub = p.add_subparsers(dest="faults_command", metavar="SUBCOMMAND")
    c = sub.add_parser(
        "campaign",
        help="train twice (fault-free, then under injection) and classify every fault",
        description="Train a small GPT twice with the same seed, once fault-free and once under "
        "injected faults (memory upsets, compute corruptions, process kills, checkpoint "
        "corruption), then classify every fault as masked, recovered or silent.",
    )
    c.add_argument(
        "--faults",
        type=int,
        metavar="N",
        help="inject N faults spread over the run (default: the radiation model's rate x --stress)",
    )
    c.add_argument(
        "--stress",
        type=float,
        default=1e4,
        metavar="X",
        help="multiplier on the radiation model's upset rate (default 1e4)",
    )
    c.add_argument(
        "--protect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="detection and recovery (default: on)",
    )
    c.add_argument("--seed", type=int, default=1337, metavar="S")
    c.add_argument("--steps", type=int, default=300, metavar="N", help="training steps (default 300)")
    c.add_argument("--data", metavar="FILE", help="train on this text file (default: a generated play)")
    c.add_argument(
        "--tolerance",
        type=float,
        default=0.02,
        help="the final val-loss difference from the fault-free run that is acceptable (default 0.02)",
    )
    c.add_argument(
        "--dir",
        metavar="D",
        help="keep the campaign's state in directory D as it runs "
        "(atomically), so that a campaign killed at any moment can be resumed",
    )
    c.add_argument("--resume", metavar="D", help="continue the campaign saved in D (its own settings apply)")
    c.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="skip the one-ulp control run that calibrates the rounding class",
    )
    c.add_argument("--json", action="store_true", help="the full result, every fault included, as JSON")
    c.set_defaults(func=cmd_campaign)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def cmd_campaign(args) -> int:
    positive("--steps", args.steps)
    positive("--faults", args.faults, allow_zero=True)
    positive("--stress", args.stress, allow_zero=True)
    if args.dir and args.resume:
        raise UserError("give --dir (a new campaign) or --resume (a saved one), not both")
    from skyrack.faults.campaign import run_campaign

    result = run_campaign(
        n_faults=args.faults,
        stress=args.stress,
        protect=args.protect,
        seed=args.seed,
        steps=args.steps,
        data_file=args.data,
        tolerance=args.tolerance,
        directory=args.resume or args.dir,
        resume=bool(args.resume),
        control=args.control,
    )
    if args.json:
        print_json(result)
        return 0
    print(render(result))
    return 0


def render(r: dict) -> str:
    rate = ""
    if r["faults_per_step"] is not None:
        rate = (
            f", {r['faults_per_step']:.3g} faults/step (radiation model x stress {r['stress']:g}, "
            f"a step taken as the fault-free run's measured {r['step_seconds']:.3f} s)"
        )
    lines = [
        f"fault campaign: {r['steps']} steps, seed {r['seed']}, protection "
        f"{'on' if r['protect'] else 'off'}{rate}",
        "",
        f"{'class':<10} {'injected':>8} {'masked':>7} {'recovered':>9} {'rounding':>8} {'silent':>6}",
    ]
    for kind, row in r["table"].items():
        lines.append(
            f"{kind:<10} {row['injected']:>8} {row['masked']:>7} {row['recovered']:>9} "
            f"{row['rounding']:>8} {row['silent']:>6}"
        )
    ff, fy = r["fault_free"], r["faulty"]
    lines += [
        "",
        f"final val loss: fault-free {ff['val_loss']:.4f}, under faults {fy['val_loss']:.4f} "
        f"(diff {fy['val_loss'] - ff['val_loss']:+.4f}, within {r['tolerance']:g}: "
        f"{'yes' if r['val_loss_within_tolerance'] else 'no'}); final state bitwise equal: "
        f"{'yes' if r['bitwise_equal_final_state'] else 'no'}",
        f"time: fault-free {ff['seconds']:.1f} s, under faults {fy['seconds']:.1f} s "
        f"(overhead {100 * r['overhead']:+.0f}%: {fy['detections']} detections, "
        f"{fy['false_alarms']} false alarms, {fy['recomputed_steps']} recomputed steps, {fy['replayed_steps']} replayed steps, "
        f"{fy['restarts']} restarts)",
        "rounding: undetected, the state diverged, but the corruption was within the rounding "
        "error of the hit value (1 ulp stored; gamma_k sum|a b| for a GEMM element)",
    ]
    if "control" in r:
        c = r["control"]
        lines.append(
            f"control: the fault-free run with one weight moved by 1 ulp after step {c['step']} "
            f"ends at val loss {c['val_loss']:.4f} (diff {c['diff']:+.4f})"
        )
    return "\n".join(lines)
