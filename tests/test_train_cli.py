"""`skyrack train` / `skyrack sample` end to end on a small generated corpus, in process."""

import json

import pytest
from train_helpers import TINY, in_process, write_corpus


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short run shared by the tests below: (tmp dir, corpus path, run dir)."""
    tmp = tmp_path_factory.mktemp("run")
    corpus = write_corpus(tmp, n_lines=300)
    out = tmp / "run"
    mp = pytest.MonkeyPatch()
    try:
        assert (
            in_process(
                [
                    "train",
                    "--data",
                    str(corpus),
                    "--steps",
                    "30",
                    "--out",
                    str(out),
                    "--checkpoint-interval",
                    "10",
                    "--eval-interval",
                    "15",
                    *TINY,
                ],
                mp,
            )
            == 0
        )
    finally:
        mp.undo()
    return tmp, corpus, out


def test_train_writes_checkpoints_and_metrics(trained, capsys):
    _, _, out = trained
    names = sorted(p.name for p in out.iterdir())
    assert names == ["ckpt-000010", "ckpt-000020", "ckpt-000030", "metrics.jsonl"]
    files = sorted(p.name for p in (out / "ckpt-000030").iterdir())
    assert files == [
        "config.json",
        "manifest.json",
        "model.pt",
        "optimizer.pt",
        "tokenizer.json",
        "trainer.pt",
    ]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [15, 30]


def test_json_prints_one_line_per_evaluation(tmp_path, monkeypatch, capsys):
    corpus = write_corpus(tmp_path, n_lines=100)
    assert (
        in_process(
            [
                "train",
                "--data",
                str(corpus),
                "--steps",
                "4",
                "--eval-interval",
                "2",
                "--out",
                str(tmp_path / "r"),
                "--json",
                *TINY,
            ],
            monkeypatch,
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4]


def test_the_tiny_preset_trains(tmp_path, monkeypatch):
    # the preset `skyrack mission --preset tiny` flies is one of `skyrack train`'s presets too
    corpus = write_corpus(tmp_path, n_lines=100)
    out = tmp_path / "r"
    args = ["train", "--preset", "tiny", "--data", str(corpus), "--steps", "2", "--out", str(out), "--quiet"]
    assert in_process(args, monkeypatch) == 0
    config = json.loads((out / "ckpt-000002" / "config.json").read_text())
    assert (config["model"]["n_layer"], config["model"]["n_embd"], config["train"]["lr"]) == (2, 64, 3e-3)


def test_sample_is_deterministic_for_a_seed(trained, monkeypatch, capsys):
    _, _, out = trained
    outputs = []
    for seed in (3, 3, 4):
        assert (
            in_process(
                [
                    "sample",
                    "--checkpoint",
                    str(out),
                    "--prompt",
                    "ROMEO:",
                    "--tokens",
                    "60",
                    "--seed",
                    str(seed),
                ],
                monkeypatch,
            )
            == 0
        )
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] != outputs[2]
    assert outputs[0].startswith("ROMEO:") and len(outputs[0]) == len("ROMEO:") + 60 + 1


def test_resume_continues_to_more_steps(trained, tmp_path, monkeypatch):
    _, corpus, out = trained
    dest = tmp_path / "more"
    assert (
        in_process(
            ["train", "--resume", str(out / "ckpt-000020"), "--steps", "35", "--out", str(dest), "--quiet"],
            monkeypatch,
        )
        == 0
    )
    assert (dest / "ckpt-000035").is_dir()


@pytest.mark.parametrize(
    "args, message",
    [
        (["sample", "--checkpoint", "{out}", "--prompt", "ROMEO: ü"], "outside the model's vocabulary"),
        (["sample", "--checkpoint", "{tmp}/nowhere"], "no such checkpoint directory"),
        (["train", "--resume", "{out}", "--n-layer", "3"], "another model config: n_layer=3"),
        (["train", "--resume", "{out}", "--preset", "nanogpt"], "another model config"),
        (["train", "--resume", "{out}", "--data", "{tmp}/other.txt"], "trained on other data"),
        (["train", "--data", "{tmp}/empty.txt"], "is empty"),
        (["train", "--data", "{tmp}/binary.bin"], "binary"),
        (["train", "--data", "{tmp}/missing.txt"], "not found"),
        (["train", "--data", "{corpus}", "--n-embd", "30", "--n-head", "4"], "multiple of --n-head"),
        (["train", "--data", "{corpus}", "--steps", "0"], "--steps must be positive"),
        (["sample", "--checkpoint", "{bad}"], "corrupt"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(trained, args, message, monkeypatch, capsys):
    tmp, corpus, out = trained
    (tmp / "empty.txt").write_text("")
    (tmp / "binary.bin").write_bytes(bytes(range(256)))
    (tmp / "other.txt").write_text(corpus.read_text() + "extra")
    bad = tmp / "bad"
    if not bad.exists():
        import shutil

        shutil.copytree(out / "ckpt-000030", bad / "ckpt-000030")
        model = bad / "ckpt-000030" / "model.pt"
        raw = bytearray(model.read_bytes())
        raw[len(raw) // 2] ^= 0x40
        model.write_bytes(bytes(raw))
    fill = {"out": out, "tmp": tmp, "corpus": corpus, "bad": bad}
    argv = [a.format(**fill) for a in args]
    assert in_process(argv, monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_fallback_to_the_previous_good_checkpoint(trained, monkeypatch, capsys):
    tmp, _, out = trained
    bad = tmp / "bad2"
    import shutil

    for name in ("ckpt-000020", "ckpt-000030"):
        shutil.copytree(out / name, bad / name)
    (bad / "ckpt-000030" / "trainer.pt").write_bytes(b"garbage")
    assert in_process(["sample", "--checkpoint", str(bad), "--tokens", "5"], monkeypatch) == 2
    capsys.readouterr()
    assert in_process(["sample", "--checkpoint", str(bad), "--tokens", "5", "--fallback"], monkeypatch) == 0
