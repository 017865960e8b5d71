"""CLI: `skyrack serve`, the ground server and its dashboard."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from skyrack.cliargs import add_runs_dir_arg, warn
from skyrack.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="the ground station: REST API, live stream and web dashboard of a mission run"
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--run",
        metavar="RUN",
        help="run id under --runs-dir, or a run directory "
        "(followed live while it runs, replayed once finished)",
    )
    which.add_argument("--live", action="store_true", help="follow the newest running mission")
    add_runs_dir_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port; default 8000)")
    p.add_argument(
        "--token-file", metavar="FILE", help="command token file (default: RUNS_DIR/.ground-token)"
    )
    p.add_argument(
        "--replay-speed",
        type=float,
        default=60.0,
        metavar="X",
        help="replay a finished run at X simulated seconds per second (0: all at once; default 60)",
    )
    p.add_argument(
        "--assistant",
        default="auto",
        metavar="BACKEND",
        help="assistant backend for /api/chat: auto, gemma, composed, a model dir or an http url",
    )
    p.add_argument(
        "--tm-port",
        type=int,
        metavar="PORT",
        help="also stream every received CCSDS packet, raw, on this TCP port (Yamcs TcpTmDataLink, "
        "COSMOS LengthProtocol; 0: any free port); only over a real link (--link ground|relay)",
    )
    p.add_argument("--rate", type=float, default=50.0, help="requests per second per client (default 50)")
    p.add_argument("--burst", type=float, default=200.0, help="burst of requests per client (default 200)")
    p.set_defaults(func=cmd_serve)


def loopback_host_names(address: str) -> list[str]:
    """The Host names a loopback server answers to: the loopback names and the bound address.
    IPv6 literals are bracketed, as a Host header carries them ("[::1]:8000")."""
    names = {"localhost", "127.0.0.1", "[::1]", f"[{address}]" if ":" in address else address}
    return sorted(names)


def cmd_serve(args) -> int:
    from skyrack.ground.auth import TOKEN_FILE_NAME, load_or_create_token
    from skyrack.ground.customers import CUSTOMERS_FILE_NAME
    from skyrack.ground.server import bind_socket, create_app, run_server
    from skyrack.telemetry.runs import choose_run, runs_root

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0..65535, got {args.port}")
    if not args.replay_speed >= 0:
        raise UserError(f"--replay-speed must be zero or positive, got {args.replay_speed}")
    if args.tm_port is not None and not 0 <= args.tm_port <= 65535:
        raise UserError(f"--tm-port must be 0..65535, got {args.tm_port}")
    if not (args.rate > 0 and args.burst >= 1):
        raise UserError("--rate must be positive and --burst at least 1")
    root = runs_root(args.runs_dir)
    run = choose_run(root, args.run, args.live)
    meta = run.meta()
    if args.tm_port is not None and not run.ground_archive.is_file():
        raise UserError(f"run {run.run_id} flew the ideal link: no packets came down (fly --link ground)")
    token_path = Path(args.token_file) if args.token_file else root / TOKEN_FILE_NAME
    token, created = load_or_create_token(token_path)
    sock = bind_socket(args.host, args.port)
    host, port = sock.getsockname()[:2]
    loopback = ipaddress.ip_address(host).is_loopback  # 127.0.0.0/8 and ::1, whatever --host said
    app = create_app(
        run,
        token=token,
        replay_speed=args.replay_speed,
        assistant_backend=args.assistant,
        rate=args.rate,
        burst=args.burst,
        allowed_hosts=loopback_host_names(host) if loopback else None,
        customers_file=root / CUSTOMERS_FILE_NAME,
    )
    shown = f"[{host}]" if ":" in host else host
    mode = "live" if meta.live else f"replay at {args.replay_speed:g}x"
    print(f"skyrack ground: run {meta.run_id or run.run_id} ({mode}) on http://{shown}:{port}/", flush=True)
    print(
        f"skyrack ground: command token {'created in' if created else 'read from'} {token_path} "
        f"(owner-only); send it as 'Authorization: Bearer <token>'",
        flush=True,
    )
    if not loopback:
        warn(f"listening on {host}, reachable from other machines; reads need no token")
    packet_port = None
    if args.tm_port is not None:
        from skyrack.ground.tmport import PacketPort

        try:
            packet_port = PacketPort(run.ground_archive, args.host, args.tm_port)
        except OSError as exc:
            raise UserError(f"cannot listen on TCP port {args.tm_port}: {exc.strerror or exc}") from None
        packet_port.start()
        print(f"skyrack ground: raw CCSDS packets on tcp://{shown}:{packet_port.address[1]}", flush=True)
    try:
        run_server(app, sock)
    finally:
        if packet_port is not None:
            packet_port.stop()
    return 0
