"""CLI: `skyrack jobs submit|list|show|cancel|results`, a customer's jobs over the ground API,
and `skyrack jobs customer add|list|remove`, the operator's list of customers.

The job commands talk to a running `skyrack serve` (`--server`, default http://127.0.0.1:8000)
with a bearer token: a customer's (`skyrack jobs customer add NAME` prints it once) or the
operator's, from `--token-file FILE` or `$SKYRACK_TOKEN`. Times are the mission's simulated
time: `--deadline 2h` (from now on the ground's clock), an ISO 8601 time, or POSIX seconds.

    skyrack jobs submit --kind screen --image scene.png --deadline 3h
    skyrack jobs submit --kind screen --onboard-tiles 16
    skyrack jobs submit --kind infer --prompt "Summarise the pass" --max-tokens 64 --priority 7
    skyrack jobs list; skyrack jobs show 3 --json; skyrack jobs results 3 -o result.json
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from skyrack.cliargs import add_runs_dir_arg, print_json
from skyrack.errors import UserError

DEFAULT_SERVER = "http://127.0.0.1:8000"
TIMEOUT_S = 300.0  # a first job may wait while the server loads its workload's model
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)\s*$", re.I)
_UNIT_S = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def register(sub) -> None:
    p = sub.add_parser("jobs", help="customers' jobs on the satellite, over the ground API")
    jobs = p.add_subparsers(dest="jobs_command", metavar="COMMAND")

    s = jobs.add_parser("submit", help="submit a job (it goes up in the next contact)")
    s.add_argument("--kind", required=True, choices=("screen", "infer"), help="the workload")
    s.add_argument("--image", metavar="FILE", help="screen: an image to screen (PNG or GeoTIFF)")
    s.add_argument("--onboard-tiles", type=int, metavar="N", help="screen: N tiles of the on-board imager")
    s.add_argument("--prompt", action="append", metavar="TEXT", help="infer: a prompt (repeat for more)")
    s.add_argument("--prompts", metavar="FILE", help="infer: prompts, a JSON list or one per line")
    s.add_argument("--max-tokens", type=int, metavar="N", help="infer: tokens to generate per prompt")
    s.add_argument(
        "--deadline", metavar="WHEN", help="result on the ground by: 2h, 90m, ISO 8601 or POSIX seconds"
    )
    s.add_argument("--priority", type=int, default=5, metavar="0-9", help="0 lowest .. 9 highest (default 5)")
    s.add_argument("--avoid-saa", action="store_true", help="never run inside the South Atlantic Anomaly")
    s.add_argument("--idempotency-key", metavar="KEY", help="sent again with the same key, it is one job")
    _client_args(s)
    s.set_defaults(func=cmd_submit)

    ls = jobs.add_parser("list", help="your jobs (the operator: everyone's)")
    _client_args(ls)
    ls.set_defaults(func=cmd_list)

    for name, helptext, func in (
        ("show", "one job: state, schedule, energy, latency, price", cmd_show),
        ("cancel", "cancel a job that has not started", cmd_cancel),
    ):
        c = jobs.add_parser(name, help=helptext)
        c.add_argument("job_id", type=int, metavar="ID")
        _client_args(c)
        c.set_defaults(func=func)

    r = jobs.add_parser("results", help="fetch a job's result once it is on the ground")
    r.add_argument("job_id", type=int, metavar="ID")
    r.add_argument("-o", "--output", metavar="FILE", help="where to write it (default: its own name, here)")
    _client_args(r)
    r.set_defaults(func=cmd_results)

    cust = jobs.add_parser("customer", help="the customers and their tokens (the operator, on the ground)")
    cs = cust.add_subparsers(dest="customer_command", metavar="COMMAND")
    add = cs.add_parser("add", help="add a customer and print its token, once")
    add.add_argument("name", metavar="NAME")
    rm = cs.add_parser("remove", help="remove a customer (its token stops working)")
    rm.add_argument("name", metavar="NAME")
    cl = cs.add_parser("list", help="the customers")
    for c, func in ((add, cmd_customer_add), (rm, cmd_customer_remove), (cl, cmd_customer_list)):
        add_runs_dir_arg(c)
        c.add_argument("--json", action="store_true")
        c.set_defaults(func=func)
    cust.set_defaults(func=lambda args: _usage(cust))
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser) -> int:
    parser.print_help()
    return 2


def _client_args(p) -> None:
    p.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        metavar="URL",
        help=f"the ground server (default {DEFAULT_SERVER})",
    )
    p.add_argument("--token-file", metavar="FILE", help="your token (default: $SKYRACK_TOKEN)")
    p.add_argument("--json", action="store_true")


# -- the ground API ------------------------------------------------------------------------------
def _token(args) -> str:
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise UserError(f"cannot read token file {args.token_file}: {exc.strerror}") from None
    else:
        token = os.environ.get("SKYRACK_TOKEN", "").strip()
    if not token:
        raise UserError("no token: give --token-file FILE or set SKYRACK_TOKEN")
    return token


def _call(
    args, method: str, path: str, body: dict | None = None, headers: dict | None = None
) -> tuple[bytes, dict]:
    """(body, headers) of the answer; a refusal or an unreachable server is one UserError line."""
    url = args.server.rstrip("/") + path
    if not url.startswith(("http://", "https://")):
        raise UserError(f"--server must be an http:// or https:// URL, got {args.server!r}")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("authorization", f"Bearer {_token(args)}")
    if data is not None:
        request.add_header("content-type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        raise UserError(f"the ground refused ({exc.code}): {_detail(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot reach the ground server at {args.server}: {reason}") from None


def _detail(exc) -> str:
    try:
        detail = json.loads(exc.read()).get("detail")
    except (ValueError, AttributeError, OSError):
        return exc.reason or "no reason given"
    if isinstance(detail, list):  # a validation error: where and what
        return "; ".join(f"{d.get('where', '?')}: {d.get('problem', '?')}" for d in detail)
    return str(detail)


def _json(args, method, path, body=None, headers=None) -> dict:
    raw, _ = _call(args, method, path, body, headers)
    return json.loads(raw)


# -- submit ----------------------------------------------------------------------------------------
def job_request(args) -> dict:
    """The POST /api/jobs body from the command line (bad input: a UserError)."""
    body: dict = {"kind": args.kind, "priority": args.priority, "avoid_saa": bool(args.avoid_saa)}
    if args.kind == "screen":
        if args.prompt or args.prompts or args.max_tokens is not None:
            raise UserError("--prompt, --prompts and --max-tokens are for --kind infer")
        if (args.image is None) == (args.onboard_tiles is None):
            raise UserError("a screen job needs --image FILE or --onboard-tiles N (one of them)")
        if args.image is not None:
            body["params"] = {"source": "upload"}
            body["payload"] = base64.b64encode(_read(args.image)).decode()
        else:
            if args.onboard_tiles < 1:
                raise UserError(f"--onboard-tiles must be positive, got {args.onboard_tiles}")
            body["params"] = {"source": "onboard", "tiles": args.onboard_tiles}
    else:
        if args.image is not None or args.onboard_tiles is not None:
            raise UserError("--image and --onboard-tiles are for --kind screen")
        if bool(args.prompt) == bool(args.prompts):
            raise UserError("an infer job needs --prompt TEXT (repeatable) or --prompts FILE (one of them)")
        prompts = list(args.prompt) if args.prompt else _prompts_file(args.prompts)
        body["payload"] = base64.b64encode(json.dumps(prompts).encode()).decode()
        body["params"] = {}
        if args.max_tokens is not None:
            if args.max_tokens < 1:
                raise UserError(f"--max-tokens must be positive, got {args.max_tokens}")
            body["params"]["max_tokens"] = args.max_tokens
    if args.deadline is not None:
        body.update(parse_deadline(args.deadline))
    return body


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None


def _prompts_file(path: str) -> list[str]:
    try:
        text = _read(path).decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    if text.lstrip().startswith("["):
        try:
            prompts = json.loads(text)
        except ValueError as exc:
            raise UserError(f"{path} is not a JSON list of prompts: {exc}") from None
        if not all(isinstance(p, str) for p in prompts):
            raise UserError(f"{path}: every prompt must be text")
    else:
        prompts = [line for line in text.splitlines() if line.strip()]
    if not prompts:
        raise UserError(f"{path} holds no prompt")
    return prompts


def parse_deadline(text: str) -> dict:
    """`2h`, `90m`, `45s`, `1d` from now; POSIX seconds; or an ISO 8601 time (simulated)."""
    m = _RELATIVE.match(text)
    if m:
        seconds = float(m.group(1)) * _UNIT_S[m.group(2).lower()]
        if seconds <= 0:
            raise UserError("--deadline must be in the future")
        return {"deadline_in_s": seconds}
    try:
        return {"deadline": float(text)}
    except ValueError:
        pass
    from skyrack.orbit.timebase import parse_time

    try:
        return {"deadline": parse_time(text).timestamp()}
    except UserError:
        raise UserError(f"--deadline {text!r}: write 2h, 90m, an ISO 8601 time or POSIX seconds") from None


def cmd_submit(args) -> int:
    body = job_request(args)
    headers = {"idempotency-key": args.idempotency_key} if args.idempotency_key else None
    record = _json(args, "POST", "/api/jobs", body, headers)
    if args.json:
        print_json(record)
    else:
        deadline = f", deadline {_when(record['deadline_t'])}" if record.get("deadline_t") else ""
        print(
            f"job {record['id']} {record['state']} ({record['kind']}, priority {record['priority']}{deadline}); "
            f"follow it with `skyrack jobs show {record['id']}`"
        )
    return 0


# -- reading ---------------------------------------------------------------------------------------
def _when(t) -> str:
    from skyrack.orbit.timebase import iso

    return iso(t) if isinstance(t, (int, float)) else "-"


def _num(value, fmt: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


def cmd_list(args) -> int:
    jobs = _json(args, "GET", "/api/jobs")["jobs"]
    if args.json:
        print_json(jobs)
        return 0
    if not jobs:
        print("no jobs")
        return 0
    print(
        f"{'id':>4}  {'customer':<14} {'kind':<6} {'state':<10} {'submitted':<20} {'latency':>9} {'energy':>9} {'price':>9}"
    )
    for j in jobs:
        print(
            f"{j['id']:>4}  {j['customer'][:14]:<14} {j['kind'][:6]:<6} {j['state']:<10} {_when(j['submitted_t']):<20} "
            f"{_num(j['latency_s'], '.0f', ' s'):>9} {_num(j['energy_wh'], '.3f', ' Wh'):>9} "
            f"{_num(j['price_usd'], '.4f', ' $'):>9}"
        )
    return 0


def _print_job(j: dict) -> None:
    lines = [
        ("job", f"{j['id']} ({j['kind']}, customer {j['customer']}, priority {j['priority']})"),
        ("state", j["state"] + (f": {j['detail']}" if j.get("detail") else "")),
        ("submitted", _when(j["submitted_t"])),
        (
            "deadline",
            _when(j["deadline_t"])
            + (f" (met: {j['deadline_met']})" if j.get("deadline_met") is not None else ""),
        ),
    ]
    if j.get("schedule"):
        s = j["schedule"]
        lines.append(
            ("planned", f"runs {_when(s.get('start_t'))}, on the ground by {_when(s.get('ground_t'))}")
        )
    if j.get("result"):
        lines.append(
            (
                "result",
                f"{j['result']['name']} ({j['result']['bytes']:,} bytes), on the ground {_when(j['delivered_t'])}",
            )
        )
    lines += [
        ("latency", _num(j["latency_s"], ".0f", " s")),
        ("energy", _num(j["energy_wh"], ".4f", " Wh")),
        ("GPU time", _num(j["gpu_s"], ".2f", " s")),
        ("price", _num(j["price_usd"], ".6f", " $")),
    ]
    for key, value in lines:
        print(f"{key:>10}  {value}")


def cmd_show(args) -> int:
    record = _json(args, "GET", f"/api/jobs/{args.job_id}")
    print_json(record) if args.json else _print_job(record)
    return 0


def cmd_cancel(args) -> int:
    record = _json(args, "POST", f"/api/jobs/{args.job_id}/cancel")
    if args.json:
        print_json(record)
    else:
        word = "cancelled" if record["state"] == "cancelled" else f"{record['state']}; cancellation sent up"
        print(f"job {record['id']} {word}")
    return 0


def cmd_results(args) -> int:
    from skyrack.storage import atomic_write_bytes

    data, headers = _call(args, "GET", f"/api/jobs/{args.job_id}/result")
    disposition = {k.lower(): v for k, v in headers.items()}.get("content-disposition", "")
    named = re.search(r'filename="([^"/\\]+)"', disposition)
    target = Path(args.output or (named.group(1) if named else f"job-{args.job_id}.result"))
    try:
        atomic_write_bytes(target, data)
    except OSError as exc:
        raise UserError(f"cannot write {target}: {exc.strerror}") from None
    if args.json:
        print_json({"job_id": args.job_id, "path": str(target), "bytes": len(data)})
    else:
        print(f"job {args.job_id}: {len(data):,} bytes written to {target}")
    return 0


# -- customers -------------------------------------------------------------------------------------
def _customers_file(args) -> Path:
    from skyrack.ground.customers import CUSTOMERS_FILE_NAME
    from skyrack.telemetry.runs import runs_root

    return runs_root(args.runs_dir) / CUSTOMERS_FILE_NAME


def cmd_customer_add(args) -> int:
    from skyrack.ground.customers import add_customer

    token = add_customer(_customers_file(args), args.name)
    if args.json:
        print_json({"name": args.name, "token": token})
    else:
        print(token)
        import sys

        sys.stderr.write(
            f"customer {args.name} added; its token is shown this once (kept hashed in {_customers_file(args)})\n"
        )
    return 0


def cmd_customer_remove(args) -> int:
    from skyrack.ground.customers import remove_customer

    remove_customer(_customers_file(args), args.name)
    print_json({"removed": args.name}) if args.json else print(f"customer {args.name} removed")
    return 0


def cmd_customer_list(args) -> int:
    from skyrack.ground.customers import list_customers

    rows = list_customers(_customers_file(args))
    if args.json:
        print_json(rows)
    else:
        for c in rows:
            print(f"{c['name']:<32} added {_when(c['added_t'])}")
        if not rows:
            print("no customers")
    return 0
