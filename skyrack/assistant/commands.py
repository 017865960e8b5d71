"""CLI: `skyrack ask`, `skyrack chat`, `skyrack assistant eval|finetune|serve`."""

from __future__ import annotations

import sys
from pathlib import Path

from skyrack.cliargs import add_device_arg, add_flight_args, add_runs_dir_arg, positive, print_json, warn
from skyrack.errors import UserError
from skyrack.orbit.timebase import parse_time
from skyrack.telemetry.runs import find_run

BACKEND_HELP = (
    "auto (Gemma if it loads, else composed), gemma, gemma-transformers (Gemma through transformers), "
    "composed, a transformers model directory, or an OpenAI-compatible http(s) URL"
)


def _add_context_args(p, *, runs: bool = True) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--run", metavar="RUN", help="mission run directory or id (its latest frame is 'now')")
    where.add_argument("--at", metavar="ISO8601", help="ask about this time (default: now, UTC)")
    add_runs_dir_arg(p)
    add_flight_args(p)


def _add_backend_args(p) -> None:
    p.add_argument("--backend", default="auto", metavar="B", help=BACKEND_HELP)
    p.add_argument(
        "--adapter",
        default=None,
        metavar="DIR|none",
        help="LoRA adapter directory from `skyrack assistant finetune` (default for gemma: the adapter "
        "shipped with skyrack; 'none': the base model with worked examples)",
    )
    add_device_arg(p)


def register(sub) -> None:
    p = sub.add_parser("ask", help="ask the satellite a question about its telemetry")
    p.add_argument("question")
    _add_context_args(p)
    _add_backend_args(p)
    p.add_argument("--json", action="store_true", help="answer, facts, verification and latency as JSON")
    p.add_argument(
        "--no-service",
        action="store_true",
        help="load the model here even when `skyrack assistant serve` is running",
    )
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="talk to the satellite (one question per line; history kept)")
    _add_context_args(p)
    _add_backend_args(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("assistant", help="evaluate or fine-tune the assistant")
    s = p.add_subparsers(dest="assistant_command", metavar="COMMAND")
    e = s.add_parser("eval", help="score answers against the twin: accuracy, refusals, injections, latency")
    e.add_argument(
        "--set", metavar="FILE", help="question set (JSON lines); default: generated from the twin"
    )
    e.add_argument("--size", type=int, default=240, help="items to generate when no --set is given")
    e.add_argument("--limit", type=int, default=None, metavar="N", help="score only the first N items")
    e.add_argument("--write-set", metavar="FILE", help="also save the generated set as JSON lines")
    add_flight_args(e, tle=False)
    _add_backend_args(e)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    f = s.add_parser("finetune", help="fine-tune Gemma with LoRA on dialogues generated from the twin")
    f.add_argument("--out", required=True, metavar="DIR", help="where the adapter is written")
    f.add_argument("--examples", type=int, default=300, help="dialogues to generate")
    f.add_argument("--steps", type=int, default=120, help="optimizer steps")
    f.add_argument("--minutes", type=float, default=15.0, help="stop after this wall time")
    f.add_argument("--rank", type=int, default=8, help="LoRA rank")
    f.add_argument("--lr", type=float, default=2e-4)
    f.add_argument(
        "--backend", default="gemma", metavar="B", help="model to adapt: gemma or a model directory"
    )
    add_device_arg(f)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_finetune)

    r = s.add_parser(
        "serve", help="keep the assistant loaded on loopback; `skyrack ask` answers through it while it runs"
    )
    _add_backend_args(r)
    r.add_argument("--port", type=int, default=0, help="loopback port (default: any free port)")
    r.set_defaults(func=cmd_serve)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _progress(message: str) -> None:
    sys.stderr.write(f"skyrack: {message}\n")


def _assistant(args):
    from skyrack.assistant.service import Assistant

    return Assistant.create(args.backend, args.adapter, args.device, progress=_progress)


def _context_kwargs(args) -> dict:
    return {
        "run_dir": find_run(args.run, args.runs_dir).path if args.run else None,
        "at": parse_time(args.at).timestamp() if args.at else None,
        "profile": args.profile,
        "tle": args.tle,
    }


def _service_key(args) -> dict:
    """What a resident service must run to answer for these arguments."""
    return {"backend": args.backend, "adapter": args.adapter, "device": args.device}


def cmd_ask(args) -> int:
    if not args.question.strip():
        raise UserError("the question is empty")
    kwargs = _context_kwargs(args)
    resident = None
    if not args.no_service:
        from skyrack.assistant.resident import ask_resident

        resident = ask_resident(args.question, _service_key(args), **kwargs)
    if resident:
        result, info, via = resident
    else:
        assistant = _assistant(args)
        result, info, via = assistant.ask(args.question, **kwargs), assistant.describe(), None
    if args.json:
        print_json({**result, "backend_info": info, "service": via})
        return 0
    for warning in result["warnings"]:
        warn(warning)
    print(result["answer"])
    print(
        f"[{result['mode']} mode, {'verified' if result['verified'] else 'NOT verified'}, "
        f"{result['latency_s']:.2f} s{f', answered by the resident assistant at {via}' if via else ''}]",
        file=sys.stderr,
    )
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_serve(args) -> int:
    import signal

    from skyrack.assistant.resident import ResidentAssistant

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0..65535, got {args.port}")
    assistant = _assistant(args)
    try:
        service = ResidentAssistant(assistant, _service_key(args), port=args.port)
    except OSError as exc:
        raise UserError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from None
    info = assistant.describe()
    print(
        f"skyrack assistant: {info['mode']} mode ({info['backend']}) on {service.url}/ ; "
        f"`skyrack ask` answers through it while it runs (Ctrl-C stops it)",
        flush=True,
    )
    signal.signal(signal.SIGTERM, _interrupt)  # stopped by kill: still remove the record
    try:
        service.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        service.close()
    return 0


def cmd_chat(args) -> int:
    kwargs = _context_kwargs(args)
    assistant = _assistant(args)
    interactive = sys.stdin.isatty()
    info = assistant.describe()
    print(
        f"skyrack chat: {info['mode']} mode ({info['backend']}). Ask about my position, sunlight, power, "
        f"training or ground passes; an empty line or Ctrl-D ends.",
        file=sys.stderr,
    )
    history: list[tuple[str, str]] = []
    while True:
        if interactive:
            sys.stderr.write("you> ")
            sys.stderr.flush()
        line = sys.stdin.readline()
        if not line or not line.strip():
            break
        question = line.strip()
        result = assistant.ask(question, history=history, **kwargs)
        print(f"satellite> {result['answer']}" if interactive else result["answer"], flush=True)
        history.append((question, result["answer"]))
    return 0


def cmd_eval(args) -> int:
    from skyrack.assistant.evaluate import evaluate, generate_set, load_set, render_report, save_set

    positive("--limit", args.limit)
    items = load_set(Path(args.set)) if args.set else generate_set(args.size, profile=args.profile)
    if args.write_set:
        save_set(items, Path(args.write_set))
    if args.limit:
        items = items[: args.limit]
    assistant = _assistant(args)
    report = evaluate(assistant, items, progress=_progress)  # stderr: --json stays clean on stdout
    if args.json:
        print_json(report)
    else:
        print(render_report(report))
    return 0


def cmd_finetune(args) -> int:
    from skyrack.assistant.finetune import finetune

    if args.examples <= 0 or args.steps <= 0 or args.minutes <= 0 or args.rank <= 0:
        raise UserError("--examples, --steps, --minutes and --rank must be positive")
    summary = finetune(
        Path(args.out),
        backend=args.backend,
        examples=args.examples,
        steps=args.steps,
        minutes=args.minutes,
        rank=args.rank,
        lr=args.lr,
        device=args.device,
        seed=args.seed,
        progress=_progress,
    )
    if args.json:
        print_json(summary)
    else:
        print(
            f"adapter written to {summary['out']}: {summary['steps']} steps in {summary['train_s']:.0f} s, "
            f"loss {summary['first_loss']:.3f} -> {summary['last_loss']:.3f}; use it with --adapter {summary['out']}"
        )
    return 0
