"""The dashboard and report.html over one real smoke study (the GPT harness, a few seconds a run),
read over HTTP and in a real headless Chromium (Debian's `chromium`, driven by playwright without a
browser download): the page loads without console errors, shows every trial, a click opens a diff,
and the live page follows a ledger that grows, is torn or disappears under it.

Screenshots go to test-artifacts/screenshots/ (or $AUTORESEARCH_TEST_ARTIFACTS/screenshots/).
Without chromium or playwright the browser tests skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from autoresearch import report
from autoresearch.agents import Agent, Proposal
from autoresearch.config import Config
from autoresearch.dashboard import Dashboard
from autoresearch.ledger import Ledger
from autoresearch.study import Study, prepare
from autoresearch.trial import TrialState
from autoresearch.workspace import init
from tests.fakes import set_knob

CHROMIUM = os.environ.get("AUTORESEARCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("AUTORESEARCH_TEST_ARTIFACTS") or Path(__file__).resolve().parent.parent / "test-artifacts")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


class Steps(Agent):
    """A scripted agent whose proposals carry an answer, as an LLM agent's do."""
    name = "scripted"

    def __init__(self, steps):
        self.steps = list(steps)

    def propose(self, context):
        fn, description, answer = self.steps.pop(0)
        fn(context.root)
        return Proposal(description, extra={"answer": answer})


def _crash(root):
    p = Path(root) / "train.py"
    p.write_text(p.read_text().replace("\ndef main():", "\ndef main():\n    raise RuntimeError('boom on purpose')", 1))


@pytest.fixture(scope="module")
def study_ws(tmp_path_factory):
    """One real smoke study for the whole module: baseline, a change that runs, a crash."""
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("AUTORESEARCH_CACHE", str(cache))
    mp.setenv("AUTORESEARCH_EMBEDDED_LIMIT", "1500")
    try:
        ws = init(tmp_path_factory.mktemp("dash") / "ws", profile="smoke", tag="dash")
        prepare(ws)
        agent = Steps([(lambda r: set_knob(r, "MATRIX_LR", 0.08), "double the Muon learning rate",
                        "The matrices train slowly at this budget, so a larger Muon LR should help."),
                       (_crash, "a change that crashes", "This one raises on purpose.")])
        study = Study(ws, agent=agent, config=Config.load({"baseline_runs": 1}, environ={}))
        study.optimize(max_trials=2)
        yield ws
    finally:
        mp.undo()


def _ledger_files(root: Path, tag: str) -> dict:
    d = root / ".autoresearch" / tag
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in [root / "results.tsv", *d.glob("*")]}


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.read()


def test_the_api_shows_the_ledger_and_never_writes_it(study_ws):
    trials = Ledger(study_ws.root, "dash").load()
    assert [t.state for t in trials] == [TrialState.KEEP, trials[1].state, TrialState.CRASH]
    before = _ledger_files(study_ws.root, "dash")
    board = Dashboard(study_ws.root, "dash", port=0).start()
    try:
        status, body = _get(board.url)
        assert status == 200 and b"<svg" not in body[:200] and b"http://" not in body.replace(b"http://www.w3.org", b"")
        state = json.loads(_get(board.url + "api/state")[1])
        assert [t["number"] for t in state["trials"]] == [t.number for t in trials]
        assert state["baseline"]["value"] == pytest.approx(trials[0].value)
        changed = state["trials"][1]
        assert changed["delta_baseline"] == pytest.approx(trials[1].value - trials[0].value)
        assert changed["answer"].startswith("The matrices train slowly")
        detail = json.loads(_get(board.url + "api/trial/1")[1])
        assert "-MATRIX_LR = 0.04" in detail["diff"] and "+MATRIX_LR = 0.08" in detail["diff"]
        assert "---" in detail["log_tail"]                  # the run's summary block
        crash = json.loads(_get(board.url + "api/trial/2")[1])
        assert "boom on purpose" in crash["log_tail"] + crash["crash_tail"]
        with pytest.raises(urllib.error.HTTPError) as e:
            _get(board.url + "api/trial/99")
        assert e.value.code == 404
    finally:
        board.stop()
    assert _ledger_files(study_ws.root, "dash") == before


def test_the_dashboard_survives_a_study_killed_resumed_or_gone(study_ws, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(study_ws.root, root, symlinks=True)
    ledger = Ledger(root, "dash")
    trials = ledger.load()
    board = Dashboard(root, "dash", port=0).start()
    try:
        running = root / ".autoresearch" / "dash" / "running.json"
        # a study killed mid-trial: running.json names a dead process, the last row is torn
        running.write_text(json.dumps({"number": 3, "description": "x", "pid": 2 ** 22 + 12345, "since": 0}))
        with open(ledger.jsonl, "a") as f:
            f.write('{"number": 3, "state": "ke')
        state = json.loads(_get(board.url + "api/state")[1])
        assert len(state["trials"]) == len(trials) and state["running"] == []
        # resumed: a live process is running trial 3, with a log of progress lines
        running.write_text(json.dumps({"number": 3, "description": "resumed", "pid": os.getpid(), "since": 1.0}))
        log = root / ".autoresearch" / "logs" / "dash-3.log"
        log.write_text("".join(f"step {i:05d} (1.0%) | loss: {5 - i / 10:.6f} | dt: 1ms\n" for i in range(5)))
        state = json.loads(_get(board.url + "api/state")[1])
        assert state["running"][0]["number"] == 3
        assert [p[0] for p in state["running"][0]["curve"]] == [0, 1, 2, 3, 4]
        # the tag's ledger gone altogether (a fresh start): an empty page, not an error
        shutil.rmtree(root / ".autoresearch" / "dash")
        state = json.loads(_get(board.url + "api/state")[1])
        assert state["trials"] == [] and state["running"] == []
    finally:
        board.stop()


# ---------------------------------------------------------------------- in a real browser
@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        pytest.skip("no chromium here: `apt-get install -y chromium` (.ci/run does) to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: make install-test")
    pw = sync_api.sync_playwright().start()
    data = Path(os.environ.get("TMPDIR", "/tmp")) / f"autoresearch-chromium-{os.getpid()}"
    shutil.rmtree(data, ignore_errors=True)
    context = pw.chromium.launch_persistent_context(str(data), executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                    viewport={"width": 1280, "height": 1000})
    try:
        yield context
    finally:
        context.close()
        pw.stop()
        shutil.rmtree(data, ignore_errors=True)


def _open(context, url: str):
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(url)
    return page, errors


def _shot(page, name: str) -> Path:
    path = ARTIFACTS / "screenshots" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def _click_shows_diff(page) -> None:
    page.wait_for_selector("#trials tbody tr.trial-row[data-number='1']")
    page.click("#trials tbody tr.trial-row[data-number='1']")
    page.wait_for_function("document.querySelector('#diff').textContent.includes('+MATRIX_LR = 0.08')")
    assert page.is_visible("#detail")
    assert "train slowly" in page.inner_text("#answer")


def test_the_live_dashboard_in_chromium(study_ws, browser, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(study_ws.root, root, symlinks=True)
    n = len(Ledger(root, "dash").load())
    board = Dashboard(root, "dash", port=0).start()
    try:
        page, errors = _open(browser, board.url)
        page.wait_for_function(f"document.querySelectorAll('#trials tbody tr.trial-row').length === {n}")
        assert page.locator("#chart svg .point").count() == n
        _click_shows_diff(page)
        _shot(page, "dashboard.png")
        assert page.is_hidden("#lineage")                   # every parent so far was the best
        # the study goes on: new rows show up without a reload. Trial n is kept; trial n+1 was proposed
        # on the best before it (as in a parallel study), so the lineage tree appears
        ledger = Ledger(root, "dash")
        trials = ledger.load()
        best = [t for t in trials if t.state == TrialState.KEEP][-1]
        ledger.append(trials[1].replace(number=n, description="kept while the page is open", state=TrialState.KEEP,
                                        commit="f" * 40, parent=best.commit))
        ledger.append(trials[1].replace(number=n + 1, description="proposed on the best before it",
                                        state=TrialState.DISCARD, commit="e" * 40, parent=best.commit))
        page.wait_for_function(f"document.querySelectorAll('#trials tbody tr.trial-row').length === {n + 2}")
        assert "kept while the page is open" in page.inner_text("#trials")
        page.wait_for_selector("#lineage svg circle")
        assert page.locator("#tree svg circle").count() == sum(1 for t in trials if t.commit) + 2
        _shot(page, "dashboard-lineage.png")
        assert errors == []
    finally:
        board.stop()


def test_report_html_is_self_contained_in_chromium(study_ws, browser):
    ws = study_ws
    trials = Ledger(ws.root, "dash").load()
    from autoresearch.harness import Harness
    report.write(ws, Harness.load(ws.root), trials)
    html = ws.root / "report.html"
    text = html.read_text()
    assert "<script src" not in text and "<link rel=\"stylesheet\"" not in text
    page, errors = _open(browser, html.as_uri())
    page.wait_for_function(f"document.querySelectorAll('#trials tbody tr.trial-row').length === {len(trials)}")
    _click_shows_diff(page)
    page.hover("#chart svg .point.state-keep >> nth=-1")
    assert "vs baseline" in page.inner_text("#tip")
    _shot(page, "report.png")
    assert errors == []
