import dataclasses
import sys

import pytest

from skyrack.errors import UserError
from skyrack.jobs.workload import Estimate, Outcome, module_for


def test_unknown_kind_is_one_clear_user_error():
    with pytest.raises(UserError, match=r"unknown job kind 'mine'.*infer, screen"):
        module_for("mine")
    with pytest.raises(UserError, match="unknown job kind"):
        module_for("spec")  # a module of the package, but not a workload


def test_module_for_imports_the_kind_lazily(monkeypatch):
    # A stand-in workload, registered only here, shows module_for imports skyrack.jobs.<kind>
    # on demand and hands back that module.
    import types

    fake = types.ModuleType("skyrack.jobs.infer")
    monkeypatch.setitem(sys.modules, "skyrack.jobs.infer", fake)
    assert module_for("infer") is fake


def test_estimate_and_outcome_are_frozen():
    est = Estimate(wall_s=1.5, result_bytes=200)
    out = Outcome(result=b"{}", name="completions.json", summary={"tokens": 3})
    with pytest.raises(dataclasses.FrozenInstanceError):
        est.wall_s = 2.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.name = "x"
    assert (est.wall_s, est.result_bytes, out.result, out.summary) == (1.5, 200, b"{}", {"tokens": 3})
