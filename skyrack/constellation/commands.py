"""`skyrack constellation train`: one model trained across N simulated satellites."""

from __future__ import annotations

import sys

from skyrack.orbit.constellation import FORMATIONS

ALGOS = ("ddp", "diloco")  # as skyrack.constellation.launch, which imports torch: not at parse time


def register(sub) -> None:
    p = sub.add_parser(
        "constellation", help="train one model across a constellation over inter-satellite links"
    )
    csub = p.add_subparsers(dest="constellation_command", metavar="COMMAND", parser_class=type(p))
    t = csub.add_parser("train", help="DDP or DiLoCo across N satellites, each a process under torchrun")
    t.add_argument("--satellites", type=int, default=4, help="how many satellites (>= 2)")
    t.add_argument("--algo", choices=ALGOS, default="diloco")
    # The defaults are the best of bench/constellation.py's short runs from a fresh start
    # (BENCHMARKS.md): 64 inner steps, 4-bit outer gradients (~500x fewer bytes than DDP) and an
    # outer step of lr 1 with Nesterov momentum 0.5. The DiLoCo paper's 0.7 / 0.9 with H = 500
    # assumes hundreds of rounds from a pretrained start.
    t.add_argument("--inner-steps", type=int, default=64, help="DiLoCo: inner steps H between syncs")
    t.add_argument("--formation", choices=FORMATIONS, default="cluster")
    t.add_argument("--preset", default="tiny", help="model and recipe (tiny, cpu, ...)")
    t.add_argument(
        "--steps", type=int, help="inner steps per satellite in the whole run (default: the preset's)"
    )
    t.add_argument("--profile", default="suncatcher", help="the satellites' profile (orbit and bus)")
    t.add_argument("--optimizer", choices=("adamw", "muon"), help="inner optimizer (default: the preset's)")
    t.add_argument(
        "--lr", type=float, help="the inner optimizer's peak learning rate (default: the preset's)"
    )
    t.add_argument(
        "--quantize", choices=("none", "int8", "int4"), default="int4", help="DiLoCo outer gradients"
    )
    t.add_argument("--fragments", type=int, default=1, help="streaming DiLoCo: fragments synced in turn")
    t.add_argument("--outer-lr", type=float, default=1.0, help="DiLoCo outer SGD (the paper's: 0.7)")
    t.add_argument("--outer-momentum", type=float, default=0.5, help="Nesterov momentum (the paper's: 0.9)")
    t.add_argument("--no-nesterov", action="store_true", help="plain momentum in the outer step")
    t.add_argument("--step-seconds", type=float, default=2.0, help="simulated seconds of one inner step")
    t.add_argument("--separation", type=float, help="train formation: km between neighbours")
    t.add_argument("--planes", type=int, help="walker formation: orbit planes")
    t.add_argument("--radius", type=float, help="cluster formation: radius in km")
    t.add_argument(
        "--kill", metavar="SAT@ROUND", help="a radiation interrupt kills satellite SAT's process in ROUND"
    )
    t.add_argument(
        "--dropout-every-round", action="store_true", help="one satellite sits out each round, in turn"
    )
    t.add_argument(
        "--faults", type=int, default=0, help="faults to inject at random into the satellites' inner steps"
    )
    t.add_argument(
        "--stress",
        type=float,
        default=10.0,
        help="radiation faults at each satellite's own upset rate (its orbit, the SAA) times this "
        "(default 10, as a mission flies; 0: none)",
    )
    t.add_argument(
        "--no-protect", action="store_true", help="no fault protection on the satellites (the damage)"
    )
    t.add_argument("--data", help="training text (default: the complete works of Shakespeare)")
    t.add_argument("--start", help="UTC start (default: the profile's epoch)")
    t.add_argument("--port", type=int, default=0, help="the coordinator's port (default: a free one)")
    t.add_argument("--seed", type=int, default=1337)
    t.add_argument("--runs-dir", help="where runs live (default $SKYRACK_RUNS or ./runs)")
    t.add_argument("--run-id")
    t.add_argument("--json", action="store_true", help="print the summary as JSON")
    t.set_defaults(func=cmd_train)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def cmd_train(args) -> int:
    from skyrack.cliargs import print_json
    from skyrack.constellation.launch import Options, train

    opts = Options(
        satellites=args.satellites,
        algo=args.algo,
        inner_steps=args.inner_steps,
        formation=args.formation,
        preset=args.preset,
        steps=args.steps,
        profile=args.profile,
        step_s=args.step_seconds,
        quant=args.quantize,
        fragments=args.fragments,
        optimizer=args.optimizer,
        lr=args.lr,
        data=args.data,
        runs_dir=args.runs_dir,
        run_id=args.run_id,
        start=args.start,
        port=args.port,
        kill=args.kill,
        dropout_every_round=args.dropout_every_round,
        faults=args.faults,
        stress=args.stress,
        protect=not args.no_protect,
        outer_lr=args.outer_lr,
        outer_momentum=args.outer_momentum,
        nesterov=not args.no_nesterov,
        seed=args.seed,
        separation_km=args.separation,
        planes=args.planes,
        radius_km=args.radius,
    )

    def say(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout)

    summary = train(opts, say=say, live=not args.json)
    if args.json:
        print_json(summary)
        return 0
    val = summary["final_val_loss"]
    say(
        (f"final validation loss {val:.4f}" if val is not None else "no satellite finished training")
        + f" after {summary['tokens']:,} tokens; "
        f"{summary['syncs']}/{summary['rounds_planned']} syncs, at most {summary['bytes_per_satellite']:,} "
        f"bytes per satellite, {summary['link_bytes_total']:,.0f} over the links"
        + (f" ({summary['heal_bytes_total']:,} of them in heals)" if summary["heal_bytes_total"] else "")
        + "; "
        f"{summary['simulated_s'] / 3600:.2f} simulated hours ({summary['wall_s']:.0f} s here)"
    )
    for s in summary["per_satellite"]:
        notes = []
        if s["killed"]:
            notes.append(f"killed in round {', '.join(map(str, s['killed']))}")
        if s["restarts"]:
            notes.append(f"restarted {s['restarts']}x")
        if s["heals"]:
            notes.append(f"healed {s['heals']}x from a peer")
        if s["faults_injected"] or s["faults_detected"]:
            notes.append(
                f"{_count(s['faults_injected'], 'fault')} injected, "
                f"{s['faults_detected']} detected "
                f"({_count(s['recomputed_steps'] or 0, 'step')} recomputed, {s['replayed_steps'] or 0} replayed)"
            )
        if s["false_alarms"]:
            notes.append(
                f"{_count(s['false_alarms'], 'false alarm')} "
                "(the step recomputed bitwise the same, and was taken)"
            )
        if s["exit_code"]:
            notes.append(f"exit code {s['exit_code']}")
        say(f"  {s['name']}: " + ("; ".join(notes) if notes else "ok"))
    say("models agree" if summary["models_agree"] else "warning: the satellites' models differ at the end")
    say(f"report: {summary['archives'][0].rsplit('-sat-', 1)[0]}/report.html")
    return 0
