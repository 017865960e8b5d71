"""Who takes part in each round, settled at run time over one TCPStore.

The schedule (`schedule.py`) says who should take part; only a process that really dies (a
radiation interrupt kills it, `torchrun` starts it again) makes the actual round differ. The
coordinator, the `skyrack constellation train` process that hosts the store, settles each round:

    worker:       beat/{sat}         {"inc", "round", "t"}   alive, and the round it works on
    worker:       arrive/{r}/{sat}   inner steps done, ready to sync
    coordinator:  members/{r}        {"members", "gid", "sync", "publish", "donor"}
    worker:       done/{r}/{sat}     {"ok"}
    donor:        state              torch.save({"round", ...}): the synced state, for rejoiners
    worker:       final/{sat}        {"inc"}: its final record is written
    coordinator:  result/{r}         {"synced", "members"};  committed = the last synced round

It waits for every satellite the schedule expects, except one whose heartbeat stopped for
`gone_s` or that already works on a later round; nobody waits longer than `round_timeout_s`.
The members of a round build (or reuse) a gloo process group named by the members and their
incarnations, so a restarted process always gets a fresh one.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import torch.distributed as dist

GONE_S = 20.0  # wall seconds without a heartbeat after which a satellite is given up (dead or hung)
ROUND_TIMEOUT_S = 300.0
POLL_S = 0.001
BEAT_S = 1.0  # wall seconds between a worker's background heartbeats


def connect(host: str, port: int, *, master: bool = False, timeout_s: float = 600.0) -> dist.TCPStore:
    return dist.TCPStore(
        host, port, is_master=master, wait_for_workers=False, timeout=timedelta(seconds=timeout_s)
    )


def put(store, key: str, value) -> None:
    store.set(key, json.dumps(value))


def get(store, key: str):
    """Blocks until `key` exists (up to the store's timeout)."""
    return json.loads(store.get(key))


def peek(store, key: str):
    return get(store, key) if store.check([key]) else None


class Coordinator:
    """Settles rounds; `on_round(r, members, result)` sees each one."""

    def __init__(self, store, n: int, *, gone_s: float = GONE_S, round_timeout_s: float = ROUND_TIMEOUT_S):
        self.store, self.n, self.gone_s, self.round_timeout_s = store, n, gone_s, round_timeout_s
        self.committed = -1
        put(store, "committed", -1)

    def _beat(self, sat: int):
        return peek(self.store, f"beat/{sat}")

    def _gone(self, sat: int, r: int) -> bool:
        beat = self._beat(sat)
        if beat is None:
            return False  # not started yet: wait for it (up to the round timeout)
        return beat["round"] > r or time.time() - beat["t"] > self.gone_s

    def _wait_keys(self, expected: list[int], prefix: str, r: int, alive) -> list[int]:
        """The satellites in `expected` whose key `prefix/r/sat` appears, waiting until every one
        is there or every missing one is given up."""
        t0 = time.time()
        while True:
            present = [s for s in expected if self.store.check([f"{prefix}/{r}/{s}"])]
            missing = [s for s in expected if s not in present]
            if not missing:
                return present
            if all(not alive(s) for s in missing) or time.time() - t0 > self.round_timeout_s:
                # a worker writes its key before it beats for a later round: look once more
                return [s for s in expected if self.store.check([f"{prefix}/{r}/{s}"])]
            # (store.wait with a timeout would block server-side, but logs a warning each time
            # it runs out: a short sleep costs about as little here)
            time.sleep(POLL_S)

    def settle(self, r: int, expected: list[int], sync: bool, patient: dict | None = None) -> dict:
        """Settle round r. `patient` {sat: alive()}: satellites coming back from a restart, waited
        for while alive() holds (up to the round timeout) whatever their heartbeat says."""
        store = self.store
        patient = patient or {}
        put(store, "current", r)

        def alive(s: int) -> bool:
            return patient[s]() if s in patient else not self._gone(s, r)

        members = self._wait_keys(expected, "arrive", r, alive)
        incs = {s: get(store, f"arrive/{r}/{s}")["inc"] for s in members}
        gid = "g-" + "-".join(f"{s}.{incs[s]}" for s in members)
        publish = bool(members) and len(members) < self.n
        msg = {
            "members": members,
            "gid": gid,
            "sync": sync and bool(members),
            "publish": publish,
            "donor": members[0] if members else None,
        }
        put(store, f"members/{r}", msg)
        done = self._wait_keys(members, "done", r, lambda s: not self._gone(s, r))
        ok = [s for s in done if get(store, f"done/{r}/{s}")["ok"]]
        synced = msg["sync"] and len(ok) == len(members)
        if synced:
            self.committed = r
            put(store, "committed", r)
        result = {
            "synced": synced,
            "members": members,
            "failed": [s for s in members if s not in ok],
            "missing": [s for s in expected if s not in members],
        }
        put(store, f"result/{r}", result)
        return result


class Member:
    """A worker's side of the protocol. Its heartbeat comes from a thread with its own store
    connection, so a worker blocked in a long collective or a wait still counts as alive."""

    def __init__(self, store, sat: int, inc: int, timeout_s: float = 120.0, address: tuple | None = None):
        self.store, self.sat, self.inc, self.timeout_s = store, sat, inc, timeout_s
        self.groups: dict[str, tuple[object, int]] = {}
        self.last_beat = 0.0
        self.round = 0
        self._stop = threading.Event()
        self._beater = None
        if address is not None:
            beat_store = connect(*address, timeout_s=timeout_s)
            self._beater = threading.Thread(target=self._beating, args=(beat_store,), daemon=True)
            self._beater.start()

    def _beating(self, store) -> None:
        while not self._stop.wait(BEAT_S):
            try:
                put(store, f"beat/{self.sat}", {"inc": self.inc, "round": self.round, "t": time.time()})
            except RuntimeError:  # the coordinator is gone: the main loop will find out
                return

    def close(self) -> None:
        self._stop.set()
        if self._beater is not None:
            self._beater.join(timeout=2 * BEAT_S + 5.0)

    def finished(self) -> None:
        """This satellite's final record is written: a later incarnation has nothing to redo."""
        put(self.store, f"final/{self.sat}", {"inc": self.inc})

    def has_finished(self) -> bool:
        return self.store.check([f"final/{self.sat}"])

    def beat(self, r: int, **status) -> None:
        self.round = r
        self.last_beat = time.time()
        put(self.store, f"beat/{self.sat}", {"inc": self.inc, "round": r, "t": self.last_beat})
        if status:
            put(self.store, f"status/{self.sat}", {"inc": self.inc, "round": r, **status})

    def arrive(self, r: int) -> dict:
        put(self.store, f"arrive/{r}/{self.sat}", {"inc": self.inc})
        return get(self.store, f"members/{r}")

    def done(self, r: int, ok: bool) -> None:
        put(self.store, f"done/{r}/{self.sat}", {"ok": ok})

    def result(self, r: int) -> dict:
        return get(self.store, f"result/{r}")

    def group(self, msg: dict):
        """(process group, my rank) for the round's members."""
        gid = msg["gid"]
        if gid not in self.groups:
            members = msg["members"]
            pg = dist.ProcessGroupGloo(
                dist.PrefixStore(gid, self.store),
                members.index(self.sat),
                len(members),
                timedelta(seconds=self.timeout_s),
            )
            self.groups[gid] = (pg, members.index(self.sat))
        return self.groups[gid]
