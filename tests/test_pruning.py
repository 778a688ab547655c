"""Pruning (autoresearch/pruning.py): the rule on curves, Optuna's pruner interface over it, the runner
stopping a real process when its progress says so, and a study over the fake harness in which a
clearly worse candidate is stopped at its first judged progress line (it would otherwise hang until
its timeout: the state and the log show which happened) while a better one is kept."""

from __future__ import annotations

import sys
import types

import pytest

from autoresearch import pruning, runner
from autoresearch.config import Config
from autoresearch.executors.inline import InlineExecutor
from autoresearch.executors.local import LocalExecutor
from autoresearch.trial import Trial, TrialState
from tests.fakes import check_ledger_and_git, edit, knobs, make_fake_workspace, make_study


def ref(best, baseline, **kw) -> pruning.Reference:
    """A Reference from {fraction: loss} of the best and {fraction: [loss per baseline run]} (sigma 3 unless
    given: the examples' numbers are worked out for it)."""
    kw.setdefault("sigma", 3.0)
    return pruning.Reference(tuple(sorted(best.items())), tuple((f, tuple(v)) for f, v in sorted(baseline.items())),
                             **kw)


def test_a_run_behind_by_more_than_the_noise_at_that_fraction_is_pruned_with_the_numbers():
    r = ref({0.4: 3.0}, {0.4: [3.0, 3.1, 2.9]}, best_runs=3)      # noise sd 0.1 there
    limit = 3.0 + 3 * 0.1 * (1 + 1 / 3) ** 0.5
    assert r.check(0.4, limit - 0.01) == ""
    why = r.check(0.4, limit + 0.01)
    assert why.startswith("pruned at 40%: train loss 3.3564 > 3.3464")
    assert "noise 0.1000" in why and "3 baseline run(s)" in why


def test_the_noise_is_the_repeats_spread_pooled_over_the_judged_fractions_and_never_below_the_floor():
    # 2% of the loss at 20% and at 80%; the 10% point (wilder, before the first judged fraction) is left out
    r = ref({0.1: 6.0, 0.2: 5.0, 0.8: 3.0}, {0.1: [6.0, 7.0, 5.0], 0.2: [5.0, 5.1, 4.9], 0.8: [3.0, 3.06, 2.94]})
    assert r.spread() == pytest.approx(0.02)
    assert r.limit(0.2)[1] == pytest.approx(0.1) and r.limit(0.8)[1] == pytest.approx(0.06)
    # three runs that agree at one fraction by chance do not make a gap there a verdict: the noise is
    # the one pooled over every judged fraction (at 20% alone it would be the 1% floor, 0.05)
    lucky = ref({0.2: 5.0, 0.8: 3.0}, {0.2: [5.0, 5.0, 5.0], 0.8: [3.0, 3.12, 2.88]})
    assert lucky.limit(0.2)[1] == pytest.approx(5.0 * (2 * 0.04 ** 2 / 4) ** 0.5)
    assert lucky.check(0.2, 5.3) == "" and lucky.check(0.2, 5.7).startswith("pruned at 20%")
    # identical (seeded) repeats: the floor, 1% of the loss, stands in for the noise
    same = ref({0.5: 4.0}, {0.5: [4.0, 4.0]})
    assert same.limit(0.5)[1] == pytest.approx(0.04)
    assert same.check(0.5, 4.1) == "" and same.check(0.5, 4.3).startswith("pruned at 50%")


def test_a_run_behind_but_catching_up_goes_on_and_is_pruned_when_it_stops_gaining():
    # a warmup's curve: far behind at first (its LR starts low), then closing the gap; noise 1% of the loss
    best = {0.1: 6.0, 0.2: 5.0, 0.3: 4.5, 0.4: 4.2}
    r = ref(best, {f: [v * 0.99, v, v * 1.01] for f, v in best.items()})
    warmup = {0.1: 7.0, 0.2: 5.5, 0.3: 4.7, 0.4: 4.5}            # behind by 1.0, 0.5, 0.2, then 0.3
    assert r.check(0.2, warmup[0.2], (0.1, warmup[0.1])) == ""            # behind, but gained 0.5 > noise 0.05
    assert r.check(0.3, warmup[0.3], (0.2, warmup[0.2])) == ""            # behind, gained 0.3
    why = r.check(0.4, warmup[0.4], (0.3, warmup[0.3]))                   # lost ground again
    assert why.startswith("pruned at 40%") and "not catching up (behind by 0.3000, by 0.2000 at 30%)" in why
    # a run as far behind at every point is pruned at the first judged one
    assert r.check(0.2, 5.5, (0.1, 6.5)).startswith("pruned at 20%")
    # a gain within the noise is not catching up
    assert r.check(0.2, 5.5, (0.1, 6.53)).startswith("pruned at 20%")


def test_no_verdict_before_the_first_judged_fraction_nor_where_the_reference_has_no_point_nor_on_nan():
    r = ref({0.1: 3.0, 0.5: 3.0}, {0.1: [3.0, 3.0], 0.5: [3.0, 3.0]}, after=0.2)
    assert r.check(0.1, 99.0) == ""
    assert r.check(0.3, 99.0) == ""                       # no point of the best's curve there
    assert r.check(0.5, float("nan")) == ""               # the run's own failure, not a prune
    assert r.check(0.5, 99.0).startswith("pruned at 50%")


def test_the_rule_is_an_optuna_pruner():
    import optuna
    pruner = pruning.band_pruner(ref({0.3: 2.0, 0.4: 2.0}, {0.3: [2.0, 2.0], 0.4: [2.0, 2.0]}))
    assert isinstance(pruner, optuna.pruners.BasePruner)
    trial = optuna.create_study(pruner=pruner).ask()
    trial.report(2.01, 30)
    assert not trial.should_prune()
    trial.report(2.5, 40)
    assert trial.should_prune() and pruner.reason.startswith("pruned at 40%")
    assert "not catching up (behind by 0.5000, by 0.0100 at 30%)" in pruner.reason   # the trial's own last step
    closing = optuna.create_study(pruner=pruner).ask()
    closing.report(3.0, 30)
    closing.report(2.5, 40)                               # behind, but gaining on the best: it goes on
    assert not closing.should_prune()


def test_the_reference_is_the_best_curve_against_the_baseline_spread_and_only_first_runs_get_one():
    def trial(number, kind, curves):
        return Trial(number=number, state=TrialState.KEEP, description="", commit=f"c{number}", kind=kind,
                     extra={"curves": [[[f, loss, 1.0] for f, loss in c.items()] for c in curves]})
    base = trial(0, "baseline", [{0.2: 5.0, 0.4: 4.0}, {0.2: 5.2, 0.4: 4.1}])
    best = trial(3, "trial", [{0.2: 4.5, 0.4: 3.5}])
    cfg = Config(prune=True)
    r = pruning.reference([base, best], best, cfg)
    assert r.best == ((0.2, 4.5), (0.4, 3.5)) and r.best_runs == 1
    assert r.baseline == ((0.2, (5.0, 5.2)), (0.4, (4.0, 4.1)))
    assert pruning.reference([base], base, cfg).best == ((0.2, 5.1), (0.4, 4.05))    # the repeats' mean
    assert pruning.reference([base, best.replace(extra={})], best.replace(extra={}), cfg) is None
    one = base.replace(extra={"curves": base.extra["curves"][:1]})     # one baseline run: no measured noise
    assert pruning.reference([one, best], best, cfg) is None

    study = types.SimpleNamespace(config=cfg, trials=[base, best], best=best,
                                  harness=types.SimpleNamespace(editable=()))      # (no files to compare)
    first = types.SimpleNamespace(kind="trial", submitted=1, commit="c9")
    assert pruning.for_run(study, first, "run") == r
    assert pruning.for_run(study, first, "best") is None                            # a re-run of the best
    assert pruning.for_run(study, types.SimpleNamespace(kind="trial", submitted=2, commit="c9"), "run") is None
    assert pruning.for_run(study, types.SimpleNamespace(kind="baseline", submitted=1, commit="c9"), "run") is None
    off = types.SimpleNamespace(config=Config(prune=False), trials=[base, best], best=best, harness=study.harness)
    assert pruning.for_run(off, first, "run") is None


def test_the_noise_pools_the_baseline_with_every_trial_run_more_than_once():
    def trial(number, curves, kind="trial"):
        return Trial(number=number, state=TrialState.DISCARD, description="", commit=f"c{number}", kind=kind,
                     extra={"curves": [[[f, loss, 1.0] for f, loss in c.items()] for c in curves]})
    # the baseline's two runs agree by chance (0.1% apart); a close call's three runs spread by 4% about 5.0
    base = trial(0, [{0.2: 5.0, 0.4: 4.0}, {0.2: 5.005, 0.4: 4.004}], kind="baseline")
    close = trial(2, [{0.2: 4.8, 0.4: 3.84}, {0.2: 5.0, 0.4: 4.0}, {0.2: 5.2, 0.4: 4.16}])
    once = trial(3, [{0.2: 9.0, 0.4: 9.0}])                        # one run: no spread to add
    cfg = Config(prune=True, prune_floor=0.0)
    alone = pruning.reference([base, once], base, cfg)
    pooled = pruning.reference([base, close, once], base, cfg)
    assert alone.repeats == () and pooled.repeats == (pruning.by_fraction(pruning.curves_of(close)),)
    assert alone.spread() < 0.001
    # deviations 0.0005 (x2 per fraction) of the baseline, 0.04 (x2 of 3 runs) of the close call; 1 + 2 dof
    # per fraction
    assert pooled.spread() == pytest.approx(((4 * 0.0005 ** 2 + 4 * 0.04 ** 2) / 6) ** 0.5, rel=0.02)
    # a run 3% behind at 20%: behind by more than the baseline alone allows, not by more than the pooled noise
    assert alone.check(0.2, 5.0025 * 1.03).startswith("pruned at 20%")
    assert pooled.check(0.2, 5.0025 * 1.03) == ""
    why = pooled.check(0.2, 5.0025 * 1.2)
    assert why.startswith("pruned at 20%") and "pooled from 2 baseline run(s) and 3 run(s) of 1 trial(s) run more than once" in why


SCRIPT = r'''
import sys, time
# all nine points in one write: the runner must see every one, not only the last line of a chunk
sys.stdout.write("".join(f"step {i} | loss: 9.0\nprogress: {i / 10:.2f} loss: {5 - i / 10:.4f}\n" for i in range(1, 10)))
sys.stdout.flush()
time.sleep(3600)
'''


def test_the_runner_stops_a_run_when_its_progress_hook_says_so_and_the_watch_keeps_its_curve(tmp_path):
    # the best's curve runs 0.4 below the script's, point for point (the script is not catching up)
    watch = pruning.Watch(ref({f / 10: 4.6 - f / 10 for f in range(1, 10)}, {}, after=0.5))
    r = runner.run([sys.executable, "-c", SCRIPT], tmp_path, 600, tmp_path / "log", on_progress=watch)
    assert r.killed == "pruned" and not r.timed_out            # stopped by the verdict, long before the limit
    assert watch.reason.startswith("pruned at 50%: train loss 4.5000 > 4.27")
    assert "[autoresearch: pruned at 50%" in r.tail
    assert sorted(watch.curve) == [f / 10 for f in range(1, 10)]
    assert [watch.curve[f][0] for f in (0.1, 0.9)] == [4.9, 4.1]


def test_without_a_reference_nothing_is_stopped_and_the_curve_is_kept(tmp_path):
    watch = pruning.Watch()
    script = SCRIPT.replace("time.sleep(3600)", "print('---'); print('val_bpb: 1.0')")
    r = runner.run([sys.executable, "-c", script], tmp_path, 600, tmp_path / "log", on_progress=watch)
    assert r.ok and r.summary["val_bpb"] == 1.0 and len(watch.curve) == 9 and watch.reason == ""


@pytest.mark.parametrize("executor", [InlineExecutor, LocalExecutor])
def test_a_clearly_worse_candidate_is_pruned_and_a_better_one_kept(tmp_path, executor):
    # the fake harness prints a curve 1 above its value; the worse candidate then hangs ("stall"): had it
    # not been stopped at its first judged point it would be a TIMEOUT, not a pruned DISCARD
    ws = make_fake_workspace(tmp_path / "ws", CURVE=True)
    study, _ = make_study(ws, [knobs(X=6.0, MODE="stall"), knobs(X=3.0)], prune=True)
    study.optimize(max_trials=2, executor=executor(1))
    trials = check_ledger_and_git(ws)
    base, worse, better = trials
    assert len(base.extra["curves"]) == 2 and base.extra["curves"][0][0][:2] == [0.1, 5.9]
    assert worse.state == TrialState.DISCARD and worse.reason.startswith("pruned at 20%: train loss 10.8000 > ")
    assert worse.extra["pruned"] == worse.reason and worse.value is None
    log = (ws / worse.log).read_text()
    assert "progress: 0.20" in log and "\n---\n" not in log        # killed before its end
    assert [p[0] for p in worse.extra["curves"][0]][:2] == [0.1, 0.2]
    assert better.state == TrialState.KEEP and better.value == 1.0 and len(better.extra["curves"][0]) == 9
    assert "[pruned] X -> 6.0" in (ws / "results.tsv").read_text()
    assert all(len(row.split("\t")) == 5 for row in (ws / "results.tsv").read_text().splitlines())
    from autoresearch import report, views           # a discard without a value: the pages and the report cope
    page = views.build(trials, "val_bpb", "minimize", "t")
    assert [t["state"] for t in page["trials"]] == ["keep", "discard", "keep"]
    assert "discard           -  X -> 6.0" in report.summary(trials, "val_bpb", "minimize", "t")


def test_a_change_of_code_is_not_compared_with_the_best_and_runs_to_the_end(tmp_path):
    # the same clearly worse value twice: as a knob change it is stopped at its first judged point; as a
    # change of code (one more line: what its loss means may have changed) it runs to the end
    from autoresearch import knobs as k
    ws = make_fake_workspace(tmp_path / "ws", CURVE=True)
    code = edit(lambda text: k.rewrite(text, {"X": 6.0}) + "_unused = 0\n", "X -> 6.0 and a line of code")
    study, _ = make_study(ws, [code, knobs(X=6.0, MODE="stall")], prune=True)
    study.optimize(max_trials=2, executor=InlineExecutor(1))
    base, edited, moved = check_ledger_and_git(ws)
    assert edited.state == TrialState.DISCARD and edited.value == 10.0 and "pruned" not in edited.extra
    assert len(edited.extra["curves"][0]) == 9                                   # every point, to the end
    assert moved.state == TrialState.DISCARD and moved.reason.startswith("pruned at 20%")
    assert pruning.comparable(study, moved.commit, base.commit)
    assert not pruning.comparable(study, edited.commit, base.commit)
    assert not pruning.comparable(study, "0" * 40, base.commit)                 # no such commit


def test_pruning_is_a_setting_and_a_flag():
    assert Config().prune is True                  # on: no cost measured, and it stops losing runs (the README)
    assert Config.load({"prune": "true"}, environ={}).prune is True
    assert Config.load({"prune": True}, environ={}, prune=False).prune is False
    from autoresearch.errors import ConfigError
    with pytest.raises(ConfigError, match="prune_sigma"):
        Config.load({"prune_sigma": 0}, environ={})
    from autoresearch.cli import _parser
    assert _parser().parse_args(["run", "--no-prune"]).prune is False
    assert _parser().parse_args(["run"]).prune is None
