"""End to end in headless Chromium over the realistic link: the page shows the contact state,
goes silent between passes and catches up in each; a command and a question sent in the silence
are carried up in the next contact. (Its own module: one Playwright instance per module.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import REPO
from ground_helpers import ground_server
from test_ground_browser import CHROMIUM_FLAGS, _chromium, _flying, wait_until

from skyrack.orbit.timebase import iso
from skyrack.telemetry.archive import Archive

SANTIAGO_RISE = 1785086713  # a Santiago pass of the built-in elements; Hartebeesthoek 22 min later
HARTEBEESTHOEK_RISE = 1785088079


@pytest.fixture(scope="module")
def link_dashboard(tmp_path_factory):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    runs = tmp_path_factory.mktemp("link-runs")
    play = tmp_path_factory.mktemp("link-data") / "play.txt"
    from skyrack.faults.campaign import generated_corpus

    play.write_text(generated_corpus(600))
    mission = subprocess.Popen(
        [sys.executable, "-m", "skyrack", "mission", "--preset", "tiny", "--data", str(play)]
        + ["--runs-dir", str(runs), "--run-id", "link-run", "--link", "ground", "--link-loss", "0.1"]
        # Ten minutes before the pass at warp 30: the page is up before it; --steps keeps it flying.
        + ["--start", iso(SANTIAGO_RISE - 600), "--steps", "100000", "--warp", "30", "--no-dashboard"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = runs / "link-run"
    deadline = time.monotonic() + 90
    while not (_flying(run / "telemetry.sqlite") and (run / "ground.sqlite").exists()):
        assert mission.poll() is None, mission.stderr.read()
        assert time.monotonic() < deadline, "the mission did not start flying"
        time.sleep(0.2)
    with ground_server(runs, "--run", "link-run", "--assistant", "composed") as server:
        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("link-profile")),
                executable_path=chromium,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1500, "height": 1250},
            )
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/")
            yield page, server, run, errors
            page.screenshot(path=str(tmp_path_factory.mktemp("link-artifacts") / "link.png"), full_page=True)
            browser.close()
    mission.kill()
    mission.wait()


def test_contact_state_silence_and_a_command_in_the_next_contact(link_dashboard):
    page, server, run, errors = link_dashboard
    contact = "document.querySelector('#contact').textContent"
    wait_until(page, f"{contact}.startsWith('in contact with Santiago')", 60)
    assert " left" in page.text_content("#contact")
    wait_until(page, f"{contact}.includes('next contact: Hartebeesthoek in')", 40)
    assert page.locator("#timeline .pass").count() >= 2
    assert page.eval_on_selector("#timeline .pass", "e => e.getBoundingClientRect().width") >= 3  # drawn
    # Out of contact: the command waits on the ground.
    page.fill("#token", server.token)
    page.click("#token-form button")
    page.click("[data-command=pause_training]")
    page.wait_for_selector("#command-log li[data-status=queued]", timeout=10_000)
    assert page.text_content("#contact").startswith("no contact")
    # A question out of contact: the page says when the answer will come.
    page.fill("#chat-input", "How is training going?")
    page.click("#chat-form button")
    wait_until(
        page,
        "(document.querySelector('#chat-log li.msg.sat.pending') || {}).textContent?.includes('Hartebeesthoek')",
        10,
    )
    # The next contact: uplinked, accepted and executed on board, the reports come down.
    page.wait_for_selector("#command-log li[data-status=completed]", timeout=90_000)
    wait_until(page, "document.querySelector('#v-cap').textContent === 'paused'", 20)
    with Archive(run / "telemetry.sqlite", readonly=True) as onboard:
        done = [e for e in onboard.events() if e["name"] == "command" and e["data"]["status"] == "dispatched"]
    assert done and done[0]["t"] >= HARTEBEESTHOEK_RISE
    # The answer came down in that contact, answered on board when the question arrived.
    page.wait_for_selector("#chat-log li.msg.sat:not(.pending):nth-child(3)", timeout=60_000)
    answer = page.locator("#chat-log li.msg.sat").last.text_content()
    assert "over the link" in answer and "could not" not in answer, answer
    with Archive(run / "telemetry.sqlite", readonly=True) as onboard:
        (answered,) = [e for e in onboard.events() if e["name"] == "answer"]
    assert answered["t"] >= HARTEBEESTHOEK_RISE
    assert not errors, errors
