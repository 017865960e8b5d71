"""The interface every job workload keeps, and the lookup from a job's kind to its module.

A workload module (`skyrack.jobs.infer`, `skyrack.jobs.screen`) exposes exactly:

    check(params: dict, payload: bytes) -> None          # UserError with the reason
    estimate(params: dict, payload: bytes) -> Estimate   # before running: for the scheduler
    run(params: dict, payload: bytes, *, seed: int) -> Outcome   # the real work, here
    prepare() -> None                                    # load what a run needs, once a process

`run` leaves torch's global RNG state, torch's thread count and every global the trainer uses as
they were: jobs run between training steps and the training must resume bitwise.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from skyrack.errors import UserError
from skyrack.jobs.spec import KINDS


@dataclass(frozen=True)
class Estimate:
    wall_s: float  # seconds of compute on THIS machine (calibrated rates, measured once and cached)
    result_bytes: int  # size of what will come down


@dataclass(frozen=True)
class Outcome:
    result: bytes  # what goes down (the file's contents)
    name: str  # its file name, e.g. "completions.json", "screen.json"
    summary: dict  # small JSON: infer {tokens, tokens_per_s, prompts}; screen {tiles, kept, ...}


def module_for(kind: str) -> ModuleType:
    """The workload module of `kind`, imported only when first asked for: a workload pulls in
    heavy dependencies (torch, the model) that the ground and most commands never need."""
    if kind not in KINDS:
        raise UserError(f"unknown job kind {kind!r}; one of {', '.join(KINDS)}")
    return importlib.import_module(f"skyrack.jobs.{kind}")
