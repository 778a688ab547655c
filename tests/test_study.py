"""The loop over a fake 10-line harness in a real temp git repo: keep, discard, crash, timeout,
invalid, resume, and ledger and git agreeing."""

from __future__ import annotations

import json

import pytest

from autoresearch.config import Config
from autoresearch.errors import AgentError, NotPreparedError, WorkspaceError
from autoresearch.ledger import Ledger
from autoresearch.study import Study
from autoresearch.trial import TrialState
from tests.fakes import SANDBOXED, ScriptedAgent, git, knob, make_fake_workspace, set_knob


def run(ws, steps, n=None, **cfg):
    """A study of one slot, not pipelined: each proposal sees the result of the one before."""
    agent = ScriptedAgent(steps)
    study = Study(ws, agent=agent, config=Config.load({"baseline_runs": 2, "pipeline": False, **cfg}, environ={}))
    study.optimize(max_trials=len(steps) if n is None else n)
    return study, agent


def assert_consistent(ws, study):
    """Ledger and git agree: HEAD is the best kept commit, tree clean, rows match trials."""
    trials = Ledger(ws, study.ws.tag).load()
    kept = [t for t in trials if t.state == TrialState.KEEP]
    assert git(ws, "rev-parse", "HEAD") == kept[-1].commit
    assert git(ws, "status", "--porcelain") == ""
    rows = (ws / "results.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["commit", "val_bpb", "memory_gb", "status", "description"]
    assert len(rows) == len(trials) + 1
    assert [t.number for t in trials] == list(range(len(trials)))
    # every kept commit is on the branch, in order
    chain = git(ws, "rev-list", "--first-parent", "HEAD").split()
    for t in kept:
        assert t.commit in chain
    return trials


def test_keep_and_discard(ws):
    study, _ = run(ws, [knob("X", 2.0), knob("X", 0.5), knob("X", 3.0)])
    trials = assert_consistent(ws, study)
    states = [t.state for t in trials]
    assert states == [TrialState.KEEP, TrialState.KEEP, TrialState.DISCARD, TrialState.KEEP]
    assert trials[0].kind == "baseline" and trials[0].values == (5.0, 5.0)
    assert trials[0].reason.startswith("noise sd 0.000000 from 2 runs; WARNING: identical repeats")
    assert trials[1].value == pytest.approx(2.0) and trials[3].value == pytest.approx(1.0)
    assert "X = 3.0" in (ws / "train.py").read_text()
    # the discarded experiment's commit stays readable under refs/autoresearch
    assert "X = 0.5" in git(ws, "show", f"refs/autoresearch/t/2:train.py")
    tsv = (ws / "results.tsv").read_text().splitlines()
    assert tsv[3].split("\t")[1:4] == ["7.250000", "0.0", "discard"]


def test_baseline_measures_the_noise(ws):
    import statistics
    set_knob(ws, "MODE", "noisy")
    git(ws, "commit", "-qam", "noisy harness")
    study, _ = run(ws, [], n=0, baseline_runs=3)
    base = study.trials[0]
    assert len(set(base.values)) == 3
    assert base.reason == f"noise sd {statistics.stdev(base.values):.6f} from 3 runs"
    assert study.judge.sd == pytest.approx(statistics.stdev(base.values))
    assert base.extra["knobs"]["MODE"] == "noisy" and base.extra["knobs"]["X"] == 1.0   # what it measured


def test_crash_feeds_log_to_next_proposal_and_resets(ws):
    study, agent = run(ws, [knob("MODE", "crash"), knob("X", 2.5)])
    trials = assert_consistent(ws, study)
    assert trials[1].state == TrialState.CRASH
    assert "boom: crashed on purpose" in trials[1].reason
    assert "boom" in agent.contexts[1].last_failure
    assert trials[2].state == TrialState.KEEP
    assert 'MODE = "ok"' in (ws / "train.py").read_text()


def test_nan_is_a_crash(ws):
    study, _ = run(ws, [knob("MODE", "nan")])
    assert study.trials[-1].state == TrialState.CRASH
    assert "no finite val_bpb" in study.trials[-1].reason


def test_timeout_kills_from_outside(tmp_path):
    ws = make_fake_workspace(tmp_path / "ws", allowance=2.0)
    study, _ = run(ws, [knob("MODE", "hang")])
    t = study.trials[-1]
    assert t.state == TrialState.TIMEOUT and "killed after 3 s" in (ws / t.log).read_text()
    assert_consistent(ws, study)


def test_invalid_edits(ws):
    def readonly(root):
        (root / "prepare.py").write_text("SECRET_SPLIT = 0\n")
        return "edit the evaluator"

    def outside(root):
        (root / "notes.txt").write_text("hello")
        set_knob(root, "X", 2.0)
        return "a new file"

    def delete(root):
        (root / "train.py").unlink()
        return "delete train.py"

    study, _ = run(ws, [readonly, outside, delete, lambda root: "did nothing"])
    trials = assert_consistent(ws, study)
    assert [t.state for t in trials[1:]] == [TrialState.INVALID] * 4
    assert "prepare.py" in trials[1].reason
    assert "notes.txt" in trials[2].reason
    assert "train.py" in trials[3].reason
    assert "no change" in trials[4].reason
    assert not (ws / "notes.txt").exists() and (ws / "train.py").exists()
    assert all(t.commit == "" for t in trials[1:])   # none of them was run


def test_run_that_changes_readonly_or_ledger_is_invalid(ws):
    study, _ = run(ws, [knob("MODE", "readonly"), knob("MODE", "ledger")])
    trials = assert_consistent(ws, study)
    if SANDBOXED:   # the file system refuses the write to prepare.py; the ledger is not even visible to a run
        assert trials[1].state == TrialState.CRASH and "Read-only file system" in trials[1].reason
        # .autoresearch is an empty tmpfs in the sandbox: the write lands there and is gone with the run
        assert trials[2].state == TrialState.DISCARD and trials[2].value == trials[0].value, trials[2].reason
    else:           # caught afterwards
        assert trials[1].state == TrialState.INVALID and "read-only" in trials[1].reason
        assert trials[2].state == TrialState.INVALID and "ledger" in trials[2].reason
    # the forged ledger line did not survive
    assert all(json.loads(l).get("number") is not None for l in (ws / ".autoresearch/t/trials.jsonl").read_text().splitlines())
    assert "changed at run time" not in (ws / "prepare.py").read_text()


def test_same_code_is_not_run_twice(ws):
    study, _ = run(ws, [knob("X", 0.5), knob("X", 0.5)])
    trials = study.trials
    assert trials[2].state == TrialState.DISCARD and "same code as trial 1" in trials[2].reason
    assert trials[2].commit == "" and trials[2].value == trials[1].value


def test_agent_failures_are_trials_then_stop(ws):
    boom = AgentError("API down")
    study = Study(ws, agent=ScriptedAgent([RuntimeError("agent bug"), boom, boom]),
                  config=Config.load({"baseline_runs": 1, "max_agent_failures": 3}))
    with pytest.raises(AgentError, match="failed 3 times in a row"):
        study.optimize(max_trials=10)
    trials = assert_consistent(ws, study)
    assert [t.state for t in trials[1:]] == [TrialState.INVALID] * 3
    assert "agent crashed (RuntimeError): agent bug" in trials[1].reason


def test_resume_continues_numbering_and_keeps_best(ws):
    run(ws, [knob("X", 2.0)])
    # an edit left in flight by a killed tool is stashed, not lost, and the study goes on
    set_knob(ws, "X", 5.5)
    study, agent = run(ws, [knob("X", 2.5)])
    trials = assert_consistent(ws, study)
    assert [t.number for t in trials] == [0, 1, 2]
    assert sum(1 for t in trials if t.kind == "baseline") == 1
    assert agent.contexts[0].best.number == 1
    assert "X = 5.5" in git(ws, "stash", "show", "-p")


def test_resume_resets_an_unrecorded_candidate(ws):
    study, _ = run(ws, [knob("X", 2.0)])
    best = study.best.commit
    # killed after committing a candidate, before recording it
    set_knob(ws, "X", 0.1)
    git(ws, "commit", "-qam", "trial 2: in flight")
    study2, _ = run(ws, [], n=0)
    assert git(ws, "rev-parse", "HEAD") == best
    assert len(study2.trials) == 2


def test_dirty_tree_at_first_start_is_refused(ws):
    set_knob(ws, "X", 2.0)
    with pytest.raises(WorkspaceError, match="uncommitted changes"):
        run(ws, [knob("X", 2.5)])
    assert "X = 2.0" in (ws / "train.py").read_text()      # nothing of the user's lost
    assert not (ws / "results.tsv").exists()


def test_tag_on_another_harness_is_refused(ws):
    run(ws, [], n=0)
    (ws / "prepare.py").write_text("SECRET_SPLIT = 7\n")
    git(ws, "commit", "-qam", "new evaluator")
    with pytest.raises(WorkspaceError, match="another harness"):
        run(ws, [], n=0)
    assert len(Ledger(ws, "t").load()) == 1


def test_harness_changed_before_anything_was_recorded_starts_afresh(ws):
    Study(ws, agent=ScriptedAgent([]), config=Config.load({})).reconcile()     # meta written, no trial
    (ws / "prepare.py").write_text((ws / "prepare.py").read_text() + "# a fix\n")
    git(ws, "commit", "-qam", "fix the evaluator")
    study, _ = run(ws, [knob("X", 2.0)])
    assert [t.state for t in study.trials] == [TrialState.KEEP, TrialState.KEEP]   # not INVALID


def test_missing_prepare_step_is_one_clear_error(ws, monkeypatch):
    monkeypatch.setenv("AUTORESEARCH_CACHE", str(ws / "nocache"))
    monkeypatch.setenv("AUTORESEARCH_FAKE_UNPREPARED", "1")
    with pytest.raises(NotPreparedError, match="autoresearch prepare"):
        run(ws, [knob("X", 2.0)])
    assert Ledger(ws, "t").load() == []


def test_close_call_is_confirmed(ws):
    # assumed noise sd 1.5 (worth 2 degrees of freedom): a gain of 3.0 sits inside the band around
    # the 2-sigma threshold at n = 1 and 2, so it is measured 3 times; the identical repeats
    # shrink the noise estimate (sd^2 = 1.5^2 * 2 / 4), and the mean clears the threshold at n = 3
    study, _ = run(ws, [knob("X", 2.0)], prior_sd=1.5, confirm_band=1.0, max_repeats=3, baseline_runs=1,
                   rerun_best=False)
    t = study.trials[-1]
    assert t.values == (2.0, 2.0, 2.0)
    assert t.state == TrialState.KEEP
    sd = (1.5 ** 2 * 2 / 4) ** 0.5
    assert t.margin == pytest.approx(3.0 - 2 * sd * (1 / 3 + 1) ** 0.5)
    assert "n=3 vs 1" in t.reason


def test_close_call_re_measures_the_best_too(ws):
    # the same close call, now also re-running the best beside it: n=3 vs 3 clears the threshold
    study, _ = run(ws, [knob("X", 2.0)], prior_sd=1.5, confirm_band=1.0, max_repeats=3, baseline_runs=1)
    t = study.trials[-1]
    assert t.values == (2.0, 2.0, 2.0) and t.state == TrialState.KEEP
    assert "n=3 vs 3" in t.reason
    assert t.extra["best_reruns"] == {"0": [5.0, 5.0]}
    assert study.trials[0].values == (5.0, 5.0, 5.0) and study.trials[0].value == 5.0
    assert git(ws, "worktree", "list").count("\n") == 0          # the best's worktree is gone
    # a resumed study sees the best's grown record
    again = Study(ws, agent=ScriptedAgent([]), config=Config.load({}))
    again.reconcile()
    assert again.trials[0].values == (5.0, 5.0, 5.0)


def test_every_run_of_a_study_gets_a_seed_offset_of_its_own(ws):
    # AUTORESEARCH_SEED_OFFSET, which the harness adds to its seed (prepare.run_seed): 1000 x the code's
    # trial number + its runs before, so repeats measure the noise a change meets, not one trajectory's
    # timing, and no trial replays a run of the best; the best re-run beside a close call is the best's code
    study, _ = run(ws, [knob("X", 2.0)], prior_sd=1.5, confirm_band=1.0, max_repeats=3, baseline_runs=2)
    logs = ws / ".autoresearch" / "logs"

    def offsets(pattern):
        found = {}
        for log in logs.glob(f"{study.ws.tag}-{pattern}.log"):
            text = log.read_text()
            found[log.stem] = int(text.split("seed offset: ", 1)[1].split()[0])
        return [found[k] for k in sorted(found)]
    assert offsets("0") + offsets("0.*") == [0, 1]                  # the baseline's two runs: SEED, SEED + 1
    cand = offsets("1") + offsets("1.[0-9]*")
    best = offsets("1.best*")
    assert len(study.trials[-1].values) == len(cand) >= 2           # a close call: re-run
    assert cand == [1000 + i for i in range(len(cand))]
    assert best and best == list(range(2, 2 + len(best)))           # the baseline's code, after its 0 and 1


def test_log_flood_is_bounded(ws):
    study, _ = run(ws, [knob("MODE", "flood")])
    t = study.trials[-1]
    assert t.state == TrialState.DISCARD or t.state == TrialState.KEEP   # it printed a valid block at the end
    log = ws / t.log
    assert log.stat().st_size < 25 * 2**20
    assert "bytes of output not kept" in log.read_text(errors="replace")[-70000:]


def test_training_process_never_sees_secrets(ws, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-should-not-leak")
    study, _ = run(ws, [knob("MODE", "secrets")])
    log = (ws / study.trials[-1].log).read_text()
    assert "seen: \n" in log or log.splitlines()[0] == "seen: "
    assert "OPENAI_API_KEY" not in log and "GITHUB_TOKEN" not in log


def test_noise_far_above_the_profile_is_said_out_loud(ws):
    from autoresearch.display import Quiet

    class Recording(Quiet):
        def __init__(self):
            self.warnings = []

        def warn(self, text):
            self.warnings.append(text)

    toml = ws / "autoresearch.toml"
    toml.write_text('profile = "cpu"\n' + toml.read_text())
    set_knob(ws, "MODE", "loud")              # repeats differ by 0.3: sd ~0.17 where a quiet cpu gives ~0.01
    git(ws, "commit", "-qam", "a loud harness on the cpu profile")
    display = Recording()
    study = Study(ws, agent=ScriptedAgent([]), config=Config.load({"baseline_runs": 3}, environ={}), display=display)
    study.optimize(max_trials=0)
    assert len(display.warnings) == 1 and "other load on this machine" in display.warnings[0]
    assert study.noise_warning == display.warnings[0]


def test_limits_say_why_the_study_stops():
    from autoresearch.limits import Limits
    lim = Limits(max_trials=3, hours=1.0, max_cost=2.0, max_agent_failures=5, start=100.0)
    assert lim.reason(recorded=2, spent=0.0, failures=0, now=100.0) == ""
    assert lim.reason(recorded=3, spent=0.0, failures=0, now=100.0) == "reached 3 trials"
    assert lim.reason(recorded=0, spent=0.0, failures=0, now=100.0 + 3600) == "reached 1.0 hours"
    assert lim.reason(recorded=0, spent=2.5, failures=0, now=100.0) == "reached the cost limit ($2.50 of $2.00)"
    assert lim.reason(recorded=0, spent=0.0, failures=5, now=100.0) == "the agent failed 5 times in a row"


def test_runs_start_from_the_baselines_compile_cache_and_leave_theirs_behind(ws):
    # torch.compile's cache: 14-18 s cold, ~2 s warm on this CPU. Each run gets a fresh copy of the
    # cache the baseline (the human's code) left; what a trial's run writes there dies with the run
    probe = '''import os, pathlib
cache = pathlib.Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
print("cache:", sorted(p.name for p in cache.glob("*")) if cache.exists() else [])
cache.mkdir(parents=True, exist_ok=True)
(cache / ("entry-" + os.environ["AUTORESEARCH_TRIAL"])).write_text("compiled")
'''
    (ws / "train.py").write_text(probe + (ws / "train.py").read_text())
    git(ws, "commit", "-qam", "a harness that compiles")
    study, _ = run(ws, [knob("X", 2.0), knob("X", 2.5)], baseline_runs=1)
    logs = {t.number: (ws / t.log).read_text() for t in study.trials}
    assert "cache: []" in (ws / ".autoresearch" / "logs" / "t-0.log").read_text()     # the first run: cold
    assert study.trials[0].extra["disturbed_runs"] == 1        # ... so the baseline's one run is measured again,
    assert "cache: ['entry-0']" in logs[0]                     # warm, as every run after it
    assert "cache: ['entry-0']" in logs[1] and "cache: ['entry-0']" in logs[2]    # not trial 1's entry
    seed = ws / ".autoresearch" / "compile-cache" / "inductor"
    assert sorted(p.name for p in seed.iterdir()) == ["entry-0"]


@pytest.mark.parametrize("futility", [0.2, 0.0])
def test_a_close_call_with_little_chance_is_not_run_again(ws, futility):
    # MODE "lucky": the candidate's first run scores 1.0 below the baseline's 5.0, every later run 5.0 (no
    # gain). Its first run is a close call; after its second (4.0, 5.0) the chance that it is kept at 4 runs
    # is about 15%, so with futility 0.2 it is discarded there (one re-run of the best beside it), where
    # futility 0 re-runs it to max_repeats (4 runs, 3 of the best) and then discards it
    study, _ = run(ws, [knob("MODE", "lucky")], prior_sd=1.0, max_repeats=4, futility=futility)
    t = study.trials[-1]
    assert t.state == TrialState.DISCARD
    if futility:
        assert t.values == (4.0, 5.0) and t.extra["best_reruns"] == {"0": [5.0]}
        assert "n=2 vs 3" in t.reason and "chance of a keep: not run again" in t.reason
        chance = float(t.reason.split("with a ")[1].split("%")[0]) / 100
        assert 0.0 < chance < futility
    else:
        assert t.values == (4.0, 5.0, 5.0, 5.0) and t.extra["best_reruns"] == {"0": [5.0, 5.0, 5.0]}
        assert "chance" not in t.reason
