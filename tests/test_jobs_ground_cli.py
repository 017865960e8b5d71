"""`skyrack jobs`: the customer's commands over a real ground server (served in-process on a
loopback port, with the tests' stand-in workloads), and bad input as one clear line."""

import json
import stat
import threading

import pytest
from conftest import assert_clean_error
from jobs_helpers import PNG, START, flying_run, use_stand_in_workloads
from test_jobs_ground_api import OPERATOR_TOKEN, finish

from skyrack.cli import main
from skyrack.ground.customers import CUSTOMERS_FILE_NAME
from skyrack.ground.server import bind_socket, create_app
from skyrack.telemetry.runs import RunDir


@pytest.fixture
def served(tmp_path, monkeypatch):
    import uvicorn

    use_stand_in_workloads(monkeypatch)
    runs = tmp_path / "runs"
    run = flying_run(runs, link="ideal")
    app = create_app(
        RunDir(run), token=OPERATOR_TOKEN, replay_speed=0, customers_file=runs / CUSTOMERS_FILE_NAME
    )
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", run, runs
    server.should_exit = True
    thread.join(10)


def skyrack(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_customer_submits_follows_and_fetches_its_jobs(served, capsys, tmp_path, monkeypatch):
    url, run, runs = served
    code, token, err = skyrack(capsys, "jobs", "customer", "add", "acme", "--runs-dir", str(runs))
    assert code == 0 and "shown this once" in err
    token = token.strip()
    assert stat.S_IMODE((runs / CUSTOMERS_FILE_NAME).stat().st_mode) == 0o600
    _, other, _ = skyrack(capsys, "jobs", "customer", "add", "zenith", "--runs-dir", str(runs))
    (tmp_path / "token").write_text(token + "\n")
    image = tmp_path / "scene.png"
    image.write_bytes(PNG + b"pixels")
    c = ("--server", url, "--token-file", str(tmp_path / "token"))
    code, out, _ = skyrack(capsys, "jobs", "submit", "--kind", "screen", "--image", str(image), *c)
    assert code == 0 and out.startswith("job 1 submitted (screen, priority 5)")
    code, out, _ = skyrack(
        capsys, "jobs", "submit", "--kind", "infer", "--prompt", "To be", "--prompt", "or not",
        "--max-tokens", "8", "--deadline", "2h", "--priority", "7", "--avoid-saa", "--json", *c,
    )  # fmt: skip
    job = json.loads(out)
    assert code == 0 and job["id"] == 2 and job["deadline_t"] == START + 600 + 7200
    assert job["params"] == {"max_tokens": 8} and job["priority"] == 7 and job["avoid_saa"]
    code, out, _ = skyrack(capsys, "jobs", "list", "--json", *c)
    assert [j["id"] for j in json.loads(out)] == [1, 2]
    code, out, _ = skyrack(capsys, "jobs", "list", *c)
    assert "submitted" in out and out.count("acme") == 2
    # the result before it is on the ground: one line with the state, non-zero
    code, _, err = skyrack(capsys, "jobs", "results", "2", "-o", str(tmp_path / "out.json"), *c)
    assert code == 2 and "job 2 is submitted: its result is not on the ground yet" in err
    finish(run, 2, b'{"completions": []}')
    code, out, _ = skyrack(capsys, "jobs", "show", "2", *c)
    assert "delivered" in out and "0.5000 Wh" in out and "latency" in out
    code, out, _ = skyrack(capsys, "jobs", "show", "2", "--json", *c)
    shown = json.loads(out)
    assert shown["state"] == "delivered" and shown["latency_s"] == pytest.approx(100.0)
    code, out, _ = skyrack(capsys, "jobs", "results", "2", "-o", str(tmp_path / "out.json"), *c)
    assert code == 0 and (tmp_path / "out.json").read_bytes() == b'{"completions": []}'
    code, out, _ = skyrack(capsys, "jobs", "cancel", "1", "--json", *c)
    assert code == 0 and json.loads(out)["state"] == "cancelled"
    # another customer: none of it
    monkeypatch.setenv("SKYRACK_TOKEN", other.strip())
    code, out, _ = skyrack(capsys, "jobs", "list", "--json", "--server", url)
    assert json.loads(out) == []
    code, _, err = skyrack(capsys, "jobs", "show", "2", "--server", url)
    assert code == 2 and err.strip() == "skyrack: error: the ground refused (404): no job 2"
    code, out, _ = skyrack(capsys, "jobs", "customer", "list", "--runs-dir", str(runs), "--json")
    assert [c["name"] for c in json.loads(out)] == ["acme", "zenith"]
    skyrack(capsys, "jobs", "customer", "remove", "zenith", "--runs-dir", str(runs))
    code, _, err = skyrack(capsys, "jobs", "list", "--server", url)
    assert code == 2 and "(401)" in err


def test_refusals_from_the_server_are_one_line(served, capsys, tmp_path):
    url, _, runs = served
    _, token, _ = skyrack(capsys, "jobs", "customer", "add", "acme", "--runs-dir", str(runs))
    (tmp_path / "token").write_text(token)
    c = ("--server", url, "--token-file", str(tmp_path / "token"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"GIF89a")
    code, _, err = skyrack(capsys, "jobs", "submit", "--kind", "screen", "--image", str(bad), *c)
    assert code == 2 and err.count("\n") == 1 and "(422)" in err and "not a PNG" in err
    code, _, err = skyrack(capsys, "jobs", "submit", "--kind", "infer", "--prompt", "x" * 300, *c)
    assert code == 2 and "over the model's context" in err
    code, _, err = skyrack(
        capsys, "jobs", "submit", "--kind", "infer", "--prompt", "x", "--deadline", str(START), *c
    )
    assert code == 2 and "in the past" in err
    big = tmp_path / "big.png"
    big.write_bytes(PNG + b"\0" * 45_000)
    code, _, err = skyrack(capsys, "jobs", "submit", "--kind", "screen", "--image", str(big), *c)
    assert code == 2 and "(413)" in err


@pytest.mark.parametrize(
    "args, words",
    [
        (["submit", "--kind", "infer", "--prompt", "x"], "no token"),
        (["submit", "--kind", "screen"], "--image FILE or --onboard-tiles N"),
        (["submit", "--kind", "screen", "--onboard-tiles", "3", "--image", "a.png"], "one of them"),
        (["submit", "--kind", "screen", "--onboard-tiles", "0"], "must be positive"),
        (["submit", "--kind", "screen", "--image", "/no/such.png"], "cannot read /no/such.png"),
        (["submit", "--kind", "infer"], "--prompt TEXT"),
        (["submit", "--kind", "infer", "--prompt", "x", "--image", "a.png"], "for --kind screen"),
        (["submit", "--kind", "screen", "--onboard-tiles", "2", "--max-tokens", "4"], "for --kind infer"),
        (["submit", "--kind", "infer", "--prompts", "/no/such.txt"], "cannot read"),
        (["submit", "--kind", "infer", "--prompt", "x", "--deadline", "soon"], "--deadline 'soon'"),
        (["submit", "--kind", "infer", "--prompt", "x", "--deadline", "0h"], "in the future"),
        (["submit", "--kind", "teleport"], "invalid choice"),
        (["show", "three"], "invalid int value"),
        (["list", "--server", "ftp://x"], "http:// or https://"),
        (["list", "--server", "http://127.0.0.1:9"], "cannot reach the ground server"),
        (["customer", "add", "bad name"], "bad customer name"),
        (["customer", "remove", "nobody"], "no customer 'nobody'"),
    ],
)
def test_bad_input_is_one_clear_line(cli, tmp_path, args, words):
    env = {"SKYRACK_TOKEN": "" if "no token" == words else "some-token", "SKYRACK_RUNS": str(tmp_path)}
    assert_clean_error(cli("jobs", *args, env=env), words)
