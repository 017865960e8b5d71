"""One satellite's training process, started by `torchrun` (one per satellite):

    torchrun --standalone --nproc-per-node 1 --max-restarts R -m skyrack.constellation.worker RUN_DIR SAT

It reads the run's plan (`plan.json`: the model, the algorithm and the rounds on the simulated
clock), connects to the coordinator's store and works through the rounds: inner steps while its
governor lets it, a sync with whoever the round's members are, a heal from a peer's published
state when it missed a synchronization (paused, dropped out, or restarted after a kill). Every
event goes to `sat-K.jsonl` in the run directory, one JSON object a line.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

import torch

from skyrack.constellation import outer, protocol
from skyrack.constellation.protect import Protection
from skyrack.train.config import ModelConfig, TrainConfig
from skyrack.train.data import BatchSampler, build_dataset, eval_offsets, read_text_file
from skyrack.train.model import GPT
from skyrack.train.trainer import build_optimizers, lr_factor

KILLED_EXIT = 137  # what a radiation interrupt leaves: the process is gone
BEAT_S = 0.5  # wall seconds between heartbeats inside a round


class Log:
    def __init__(self, path: Path):
        self.handle = open(path, "a", encoding="utf-8")

    def __call__(self, kind: str, **data) -> None:
        self.handle.write(json.dumps({"kind": kind, "wall": time.time(), **data}) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


class Satellite:
    def __init__(self, run_dir: Path, sat: int, inc: int):
        plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
        self.plan, self.sat, self.inc = plan, sat, inc
        self.algo = plan["algo"]
        self.model_cfg = ModelConfig(**plan["model"])
        self.train_cfg = TrainConfig(**plan["train"])
        self.rounds = plan["rounds"]
        self.spr = int(plan["steps_per_round"])
        self.quant = plan["quant"]
        self.log = Log(run_dir / f"sat-{sat}.jsonl")
        text = read_text_file(plan["data"])
        self.data = build_dataset(text, plan["data"], hashlib.sha256(text.encode()).hexdigest(), "tail")
        torch.manual_seed(int(plan["seed"]))  # the same initial model on every satellite
        self.model = GPT(self.model_cfg)
        self.params = list(self.model.parameters())
        self.optimizers = build_optimizers(self.model, self.train_cfg)
        self.sampler = BatchSampler(
            self.data.train, self.model_cfg.block_size, self.train_cfg.batch_size, int(plan["seed"]), rank=sat
        )
        self.val = eval_offsets(self.data.val, self.model_cfg.block_size, int(plan["eval_windows"]))
        self.dl = (
            outer.DiLoCo(self.params, plan["outer_lr"], plan["outer_momentum"], plan["nesterov"])
            if self.algo == "diloco"
            else None
        )
        self.frags = outer.fragments(self.params, int(plan["fragments"]))
        host, port = plan["store"].rsplit(":", 1)
        self.store = protocol.connect(host, int(port), timeout_s=float(plan["timeout_s"]))
        self.member = protocol.Member(
            self.store, sat, inc, timeout_s=float(plan["timeout_s"]), address=(host, int(port))
        )
        self.protection = Protection(
            self,
            [f for f in plan.get("faults", []) if f["sat"] == sat],
            enabled=bool(plan.get("protect", True)),
        )
        self.stale = inc > 0  # a restarted process has lost everything
        self.tokens = 0
        self.bytes_sent = 0
        self.heal_bytes = 0
        self.last_loss: float | None = None

    # -- training ------------------------------------------------------------------------------
    def _set_lr(self, step: int) -> None:
        f = lr_factor(step, self.train_cfg)
        for opt in self.optimizers:
            for group in opt.param_groups:
                group["lr"] = group["peak_lr"] * f

    def _grads(self) -> float:
        x, y = self.sampler.next()
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        _, loss = self.model(x, y)
        loss.backward()
        self.tokens += y.numel()
        return float(loss.detach())

    def _update(self) -> None:
        if self.train_cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.train_cfg.grad_clip)
        for opt in self.optimizers:
            opt.step()

    @torch.no_grad()
    def evaluate(self) -> float:
        saved = None
        if self.dl is not None:  # the shared model is the global parameters
            saved = [p.detach().clone() for p in self.params]
            for p, g in zip(self.params, self.dl.global_params):
                p.copy_(g)
        self.model.eval()
        total, count = 0.0, 0
        for i in range(0, len(self.val), 64):
            x, y = self.data.val.windows(self.val[i : i + 64], self.model_cfg.block_size)
            _, loss = self.model(x, y)
            total += float(loss) * y.numel()
            count += y.numel()
        self.model.train()
        if saved is not None:
            for p, s in zip(self.params, saved):
                p.copy_(s)
        return total / count

    def shared_params(self) -> list[torch.Tensor]:
        return self.dl.global_params if self.dl is not None else self.params

    # -- healing -------------------------------------------------------------------------------
    def _publish(self, r: int) -> None:
        if self.dl is not None:
            payload = {"round": r, "from": self.sat, "diloco": self.dl.state_tensors()}
        else:
            payload = {
                "round": r,
                "from": self.sat,
                "model": self.model.state_dict(),
                "optimizers": [o.state_dict() for o in self.optimizers],
            }
        buf = io.BytesIO()
        torch.save(payload, buf)
        self.store.set("state", buf.getvalue())

    def heal(self, r: int) -> bool:
        """Take the last synchronized state from a peer; False if it is already too late for
        round r (a later round was published: wait for the next one)."""
        if r > 0:
            self.member.result(r - 1)
        committed = protocol.get(self.store, "committed")
        if committed < 0:  # nothing synced yet: everyone still holds the same initial model
            self.stale = False
            return True
        t0 = time.time()
        while True:
            if self.store.check(["state"]):
                raw = self.store.get("state")
                state = torch.load(io.BytesIO(raw), weights_only=False)
                if state["round"] >= committed:
                    break
            if time.time() - t0 > float(self.plan["timeout_s"]):
                raise RuntimeError(f"no published state for round {committed}")
            time.sleep(0.01)
        if state["round"] >= r:
            return False
        if self.dl is not None:
            self.dl.load_state_tensors(state["diloco"])
        else:
            self.model.load_state_dict(state["model"])
            for opt, sd in zip(self.optimizers, state["optimizers"]):
                opt.load_state_dict(sd)
        self.heal_bytes += len(raw)
        self.stale = False
        self.log("heal", round=r, donor=state["from"], synced_round=state["round"], bytes=len(raw))
        return True

    # -- rounds --------------------------------------------------------------------------------
    def run(self) -> None:
        first = 0
        if self.inc > 0:
            if self.member.has_finished():
                # it died after its final record (in the interpreter's teardown): torchrun's
                # restart has nothing to redo, and must not wait for a round that never comes
                print(f"satellite {self.sat}: finished before this restart; nothing to redo", flush=True)
                return
            # join the round being settled, unless its members are already known
            first = int(protocol.get(self.store, "current"))
            first += self.store.check([f"members/{first}"])
            self.log("restart", incarnation=self.inc, rejoin_round=first)
        else:
            self.log("start", incarnation=0)
        kill = self.plan.get("kill") or {}
        for rnd in self.rounds[first:]:
            r = rnd["index"]
            self.member.beat(r, state="computing", loss=self.last_loss, tokens=self.tokens)
            if kill.get("sat") == self.sat and kill.get("round") == r and self.inc == 0:
                for i in range(self.spr // 2):  # the interrupt strikes halfway through the round
                    self._set_lr(r * self.spr + i)
                    self._grads()
                self.log("killed", round=r, step=self.spr // 2)
                os._exit(KILLED_EXIT)
            if self.sat not in rnd["participants"]:
                self.member.beat(
                    r, state="paused" if self.sat in rnd["paused"] else "dropped", loss=self.last_loss
                )
                res = self.member.result(r)
                if res["synced"]:
                    self.stale = True
                self.log("absent", round=r, why="paused" if self.sat in rnd["paused"] else "dropped")
                continue
            if self.stale:
                if not self.heal(r):
                    self.log("absent", round=r, why="healing")
                    continue
                self.protection.restart()
            self.protection.begin_round(r)
            losses = []
            steps = self.spr if self.algo == "diloco" else 1
            update = self._update if self.algo == "diloco" else None

            def set_lr(i, r=r):
                self._set_lr(r * self.spr + i)

            for i in range(steps):
                set_lr(i)
                losses.append(self.protection.step(r, i, self._grads, update, set_lr))
                if time.time() - self.member.last_beat > BEAT_S:
                    self.member.beat(r, state="computing", loss=losses[-1], tokens=self.tokens)
            self.protection.before_sync(r, steps, self._grads, update, set_lr)
            self.last_loss = sum(losses) / len(losses)
            self.member.beat(r, state="syncing", loss=self.last_loss, tokens=self.tokens)
            msg = self.member.arrive(r)
            ok, sent = True, 0
            if self.sat in msg["members"] and msg["sync"]:
                try:
                    sent = self._sync(r, rnd, msg)
                except RuntimeError as exc:  # a member died inside the collective
                    ok = False
                    self.log("sync_failed", round=r, error=str(exc).splitlines()[0][:200])
            elif self.algo == "ddp":
                self._update()  # left out of the sync: the step from its own gradient
            if self.sat not in msg["members"] and self.member.result(r)["synced"]:
                self.stale = True  # given up for this round while the others synced
            if ok and msg["sync"] and msg["publish"] and msg["donor"] == self.sat:
                self._publish(r)
            self.member.done(r, ok)
            self.protection.end_round(r)
            self.bytes_sent += sent
            val = None
            last = r == self.rounds[-1]["index"]
            every = max(1, int(self.plan["eval_every_rounds"]))
            if msg["members"] and msg["members"][0] == self.sat and ((r + 1) % every == 0 or last):
                val = self.evaluate()
            self.log(
                "round",
                round=r,
                members=msg["members"],
                synced=ok and msg["sync"],
                train_loss=self.last_loss,
                val_loss=val,
                tokens=self.tokens,
                bytes=sent,
                bytes_total=self.bytes_sent,
                faults=self.protection.counts(),
            )
        if self.stale and self.rounds:  # back after the last round: take the final state
            self.heal(len(self.rounds))
        val = self.evaluate()
        self.member.beat(len(self.rounds), state="finished", loss=self.last_loss, tokens=self.tokens, val=val)
        self.log(
            "final",
            val_loss=val,
            tokens=self.tokens,
            bytes_total=self.bytes_sent,
            heal_bytes=self.heal_bytes,
            stale=self.stale,
            protected=self.protection.enabled,
            faults_injected=self.protection.injected,
            faults_detected=self.protection.detected,
            recomputed_steps=self.protection.recomputed,
            replayed_steps=self.protection.replayed,
            false_alarms=self.protection.false_alarms,
            digest=digest(self.shared_params()),
        )
        self.member.finished()

    def _sync(self, r: int, rnd: dict, msg: dict) -> int:
        pg, _ = self.member.group(msg)
        n = len(msg["members"])
        if self.dl is not None:
            idx = self.frags[rnd["fragment"] % len(self.frags)]
            flat = self.dl.pseudo_gradient(idx, self.quant)
            if n > 1:
                pg.allreduce([flat]).wait()
            self.dl.outer_step(idx, flat / n)
            return outer.payload_bytes([self.params[i].numel() for i in idx], self.quant) if n > 1 else 0
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = outer.flatten(grads)
        if n > 1:
            pg.allreduce([flat]).wait()
        for p, g in zip(self.params, outer.unflatten(flat / n, grads)):
            p.grad = g.clone()
        self._update()
        return outer.payload_bytes([p.numel() for p in self.params], "none") if n > 1 else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    run_dir, sat = Path(argv[0]), int(argv[1])
    torch.set_num_threads(1)  # satellites share the host's cores
    inc = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    satellite = Satellite(run_dir, sat, inc)
    satellite.run()
    satellite.member.close()
    satellite.log.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without the interpreter's teardown: destroying the gloo process groups' threads
    # there now and then aborts ("terminate called without an active exception", exit -6),
    # and torchrun would restart a satellite that has already finished. Everything the run
    # needs is written and flushed above.
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
