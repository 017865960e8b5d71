"""The same trainer under torchrun: two CPU processes, DistributedDataParallel over gloo."""

import subprocess
import sys

import pytest
from train_helpers import CLI, TINY, cli_env, run_cli, write_corpus

from skyrack.train.checkpoint import load_checkpoint, load_torch


@pytest.mark.slow
def test_two_processes_under_torchrun_then_resume_in_one(tmp_path):
    corpus = write_corpus(tmp_path, n_lines=300)
    script = tmp_path / "skyrack_cli.py"
    script.write_text(CLI + "\n")
    env = cli_env(tmp_path)
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        "train",
        "--data",
        str(corpus),
        "--steps",
        "12",
        "--out",
        "ddp",
        "--checkpoint-interval",
        "6",
        "--eval-interval",
        "6",
        *TINY,
    ]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    _, files = load_checkpoint(tmp_path / "ddp")
    state = load_torch(files["trainer.pt"])
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert state["state"]["tokens"] == 12 * 2 * 8 * 16  # steps x processes x batch x block
    resumed = run_cli(["train", "--resume", "ddp", "--steps", "14", "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "ddp" / "ckpt-000014").is_dir()
