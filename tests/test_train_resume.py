"""Kill a real training process with SIGKILL, resume it, and demand bitwise equality; and check
that the model learns."""

import json
import math
import signal
import time
from collections import Counter

import torch
from train_helpers import TINY, in_process, popen_cli, run_cli, write_corpus

from skyrack.train.checkpoint import list_checkpoints, load_checkpoint, load_torch

# dropout on, Muon + AdamW (the cpu preset): every random state and both optimizers matter
ARGS = ["--steps", "400", "--checkpoint-interval", "7", "--eval-interval", "50", "--dropout", "0.1", *TINY]


def _final(run_dir):
    _, files = load_checkpoint(run_dir)
    return load_torch(files["model.pt"]), load_torch(files["optimizer.pt"])


def _assert_bitwise_equal(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_bitwise_equal(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_bitwise_equal(x, y, f"{where}/{i}")
    else:
        assert a == b, where


def test_sigkill_and_resume_is_bitwise_identical(tmp_path):
    corpus = write_corpus(tmp_path, n_lines=400)
    whole = run_cli(["train", "--data", str(corpus), "--out", "whole", *ARGS], tmp_path)
    assert whole.returncode == 0, whole.stderr

    proc = popen_cli(["train", "--data", str(corpus), "--out", "killed", *ARGS], tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        done = list_checkpoints(tmp_path / "killed")
        if done and int(done[0].name.split("-")[1]) >= 100:
            break
        time.sleep(0.02)
    time.sleep(0.013)  # land somewhere between checkpoints
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = int(list_checkpoints(tmp_path / "killed")[0].name.split("-")[1])
    assert killed_at < 400

    resumed = run_cli(["train", "--resume", "killed", "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    (model_a, optim_a), (model_b, optim_b) = _final(tmp_path / "whole"), _final(tmp_path / "killed")
    _assert_bitwise_equal(model_a, model_b, "model")
    _assert_bitwise_equal(optim_a, optim_b, "optimizer")


def test_the_model_learns_far_below_the_unigram_entropy(tmp_path, monkeypatch, capsys):
    corpus = write_corpus(tmp_path, n_lines=1500)
    text = corpus.read_text()
    counts = Counter(text)
    unigram = -sum(c / len(text) * math.log(c / len(text)) for c in counts.values())  # nats
    assert (
        in_process(
            [
                "train",
                "--data",
                str(corpus),
                "--steps",
                "150",
                "--eval-interval",
                "150",
                "--out",
                str(tmp_path / "r"),
                "--json",
                *TINY,
            ],
            monkeypatch,
        )
        == 0
    )
    val = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["val_loss"]
    assert val < 0.5 * unigram, (val, unigram)
