"""`skyrack mission`, `skyrack telemetry`, `skyrack events`, `skyrack report`: thin commands
over skyrack.mission and the telemetry archive. torch is imported only when a mission flies."""

from __future__ import annotations

import csv
import sys

from skyrack.cliargs import add_device_arg, add_flight_args, add_run_args, add_runs_dir_arg, print_json
from skyrack.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "mission",
        help="fly the satellite, train the GPT in orbit, archive the telemetry, write a report",
        description="Fly the satellite on a simulated clock: the orbit twin, the power, thermal and radiation "
        "models and the governor set the GPU's budget; the Shakespeare GPT trains within it "
        "under radiation faults that the guard detects and recovers; every frame goes to "
        "<runs>/<run-id>/telemetry.sqlite, and report.html + summary.json are written at the end.",
    )
    add_flight_args(p)
    p.add_argument(
        "--start",
        metavar="ISO8601",
        help="simulated start (default: half an orbit before the first South Atlantic Anomaly "
        "crossing after the elements' epoch, or after now when they are fresh)",
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument(
        "--hours", type=float, metavar="H", help="simulated hours to fly (default: 2.1 orbits)"
    )
    length.add_argument("--steps", type=int, metavar="N", help="fly until training reaches step N")
    p.add_argument(
        "--warp",
        type=float,
        metavar="X",
        help="simulated seconds per wall second of training at full power; the wall time then "
        "sets how many steps are trained (default: paced, the preset's whole schedule fitted "
        "into the mission)",
    )
    p.add_argument(
        "--minutes",
        type=float,
        default=5.0,
        metavar="M",
        help="wall-time budget of a paced mission (default 5): a machine too slow to train the "
        "preset in it trains a shorter schedule, and says so",
    )
    p.add_argument(
        "--stress",
        type=float,
        metavar="X",
        help="multiplier on the profile's radiation upset rate (default 10; may change on --resume)",
    )
    from skyrack.train.config import PRESETS

    p.add_argument("--preset", choices=sorted(PRESETS), help="model and recipe (default: cpu)")
    p.add_argument(
        "--data", metavar="FILE", help="train on this UTF-8 text (default: the complete works of Shakespeare)"
    )
    p.add_argument("--run-id", metavar="ID", help="name of the run directory (default: mission-<UTC time>)")
    p.add_argument(
        "--resume",
        metavar="ID",
        help="continue an interrupted mission as planned; only --warp, --stress and --device may change",
    )
    add_runs_dir_arg(p)
    p.add_argument(
        "--frame-interval",
        type=float,
        metavar="S",
        help="simulated seconds between telemetry frames (default 10)",
    )
    p.add_argument("--soc", type=float, help="battery state of charge at the start (default 0.5)")
    p.add_argument("--seed", type=int, help="seed of the training job and the faults (default 1337)")
    p.add_argument(
        "--link",
        choices=("ground", "relay", "ideal"),
        help="the space-ground link: the profile's ground stations (passes only), an always-on "
        "low-rate relay, or ideal (the ground sees the on-board store at once); default: the profile's",
    )
    p.add_argument(
        "--link-loss",
        type=float,
        metavar="P",
        help="fraction of packets the channel loses, each way (default: the profile's)",
    )
    p.add_argument(
        "--jobs",
        metavar="FILE|demo",
        help="a stream of customers' jobs submitted while the mission flies: a JSON-lines FILE "
        "(see README) or demo (Poisson arrivals of screening and inference jobs)",
    )
    add_device_arg(p)
    p.add_argument("--no-dashboard", action="store_true", help="no live view, only the start and end lines")
    p.add_argument("--json", action="store_true", help="print the summary as JSON at the end")
    p.set_defaults(func=cmd_mission)

    t = subparsers.add_parser("telemetry", help="one channel of a mission's archive, as CSV or JSON")
    add_run_args(t)
    t.add_argument(
        "--channel", required=True, metavar="NAME", help="e.g. power.battery_soc (see the dictionary)"
    )
    t.add_argument("--since", metavar="T", help="from this time (ISO 8601 or POSIX seconds)")
    t.add_argument("--until", metavar="T", help="up to this time (ISO 8601 or POSIX seconds)")
    fmt = t.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV: seq,t,time,value (the default)")
    fmt.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_telemetry)

    e = subparsers.add_parser("events", help="a mission's events")
    add_run_args(e)
    e.add_argument(
        "--severity", metavar="S", help="this severity and above: debug, info, warning, error, critical"
    )
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_events)

    r = subparsers.add_parser("report", help="write a mission's report.html and summary.json again")
    add_run_args(r)
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.set_defaults(func=cmd_report)


def cmd_mission(args) -> int:
    from skyrack.mission.dashboard import Dashboard
    from skyrack.mission.runner import Options, run_mission

    opts = Options(
        profile=args.profile,
        tle=args.tle,
        start=args.start,
        hours=args.hours,
        steps=args.steps,
        warp=args.warp,
        stress=args.stress,
        preset=args.preset,
        data=args.data,
        run_id=args.run_id,
        resume=args.resume,
        runs_dir=args.runs_dir,
        frame_interval=args.frame_interval,
        soc=args.soc,
        seed=args.seed,
        device=args.device,
        minutes=args.minutes,
        link=args.link,
        link_loss=args.link_loss,
        jobs=args.jobs,
    )
    out = sys.stderr if args.json else sys.stdout
    view = Dashboard(stream=out, live=not args.no_dashboard)

    def say(message: str) -> None:
        view.message(message)

    summary = run_mission(opts, say, view)
    if args.json:
        print_json(summary)
    else:
        say(f"report: {summary['report']}")
    return 0 if summary["status"] == "finished" else 130


def _time(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    from skyrack.orbit.timebase import parse_time

    try:
        return parse_time(text).timestamp()
    except UserError:
        raise UserError(
            f"{flag}: malformed time {text!r}: use ISO 8601 (2026-07-26T12:00:00Z) or POSIX seconds"
        ) from None


def _archive(args):
    from skyrack.telemetry.archive import Archive
    from skyrack.telemetry.runs import find_run

    return Archive(find_run(args.run, args.runs_dir).archive, readonly=True)


def cmd_telemetry(args) -> int:
    from skyrack.orbit.timebase import iso
    from skyrack.telemetry.dictionary import CHANNEL

    if args.channel not in CHANNEL:
        raise UserError(f"unknown channel {args.channel!r}; channels: {', '.join(CHANNEL)}")
    since, until = _time(args.since, "--since"), _time(args.until, "--until")
    with _archive(args) as archive:
        rows = archive.history(args.channel, since, until)
    channel = CHANNEL[args.channel]
    if args.json:
        print_json(
            {
                "channel": channel.name,
                "unit": channel.unit,
                "type": channel.type,
                "rows": [{"seq": s, "t": t, "time": iso(t), "value": v} for s, t, v in rows],
            }
        )
        return 0
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["seq", "t", "time", channel.name])
    writer.writerows([s, repr(t), iso(t), v] for s, t, v in rows)
    return 0


def cmd_events(args) -> int:
    from skyrack.orbit.timebase import iso

    with _archive(args) as archive:
        events = archive.events(args.severity)
    if args.json:
        print_json({"events": [{**e, "time": iso(e["t"])} for e in events]})
        return 0
    for e in events:
        print(f"{iso(e['t'])}  {e['severity']:<8} {e['name']:<15} {e['message']}")
    return 0


def cmd_report(args) -> int:
    from skyrack.mission.report import write_report
    from skyrack.telemetry.runs import find_run

    summary = write_report(find_run(args.run, args.runs_dir))
    if args.json:
        print_json(summary)
    else:
        print(f"report: {summary['report']}")
    return 0
