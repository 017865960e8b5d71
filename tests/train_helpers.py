"""Small generated corpora and a way to run the train/sample commands, for the trainer tests."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs the CLI with only the trainer's commands registered, so these tests need no other module.
CLI = (
    "import sys; from skyrack import cli; cli.COMMAND_MODULES = ('skyrack.train.commands',); "
    "sys.exit(cli.main(sys.argv[1:]))"
)

TINY = [
    "--n-layer",
    "2",
    "--n-head",
    "2",
    "--n-embd",
    "32",
    "--block-size",
    "16",
    "--batch-size",
    "8",
    "--warmup-steps",
    "5",
    "--eval-windows",
    "64",
    "--quiet",
]


def make_corpus(n_lines: int = 800, seed: int = 0) -> str:
    """Sentences from a tiny grammar: far from uniform, quick for a small GPT to learn."""
    rng = random.Random(seed)
    who = ["ROMEO", "JULIET", "NURSE", "FRIAR", "TYBALT"]
    verbs = ["loves", "fears", "greets", "follows", "mocks"]
    things = ["the moon", "the night", "a rose", "the sword", "fair Verona"]
    lines = []
    for _ in range(n_lines):
        lines.append(
            f"{rng.choice(who)}:\n{rng.choice(who).title()} {rng.choice(verbs)} {rng.choice(things)}.\n"
        )
    return "\n".join(lines)


def write_corpus(folder: Path, **kw) -> Path:
    path = folder / "corpus.txt"
    path.write_text(make_corpus(**kw), encoding="utf-8")
    return path


def cli_env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["SKYRACK_CACHE"] = str(tmp_path / "cache")
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def run_cli(args: list[str], tmp_path: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        **kw,
    )


def popen_cli(args: list[str], tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def in_process(args: list[str], monkeypatch) -> int:
    """Run the CLI in this process (fast); returns the exit code."""
    from skyrack import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("skyrack.train.commands",))
    return cli.main(args)
