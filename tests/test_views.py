"""views.build and page.html on made-up trials: deltas against the baseline and the best before,
the running best, the lineage once a parent is not the best, the live curve, safe embedding."""

from __future__ import annotations

import json
import math

from autoresearch import page, views
from autoresearch.trial import Trial, TrialState

K, D, C = TrialState.KEEP, TrialState.DISCARD, TrialState.CRASH


def _t(n, state, value, commit, parent, values=None, **kw):
    return Trial(number=n, state=state, description=f"t{n}", commit=commit, parent=parent, value=value,
                 values=tuple(values if values is not None else ([] if value is None else [value])), **kw)


def test_deltas_running_best_and_noise():
    trials = [_t(0, K, 2.1, "a", "a", [2.0, 2.2], kind="baseline"), _t(1, D, 2.5, "b", "a"),
              _t(2, K, 1.6, "c", "a", [1.5, 1.7]), _t(3, C, None, "d", "c"), _t(4, D, 1.6, "e", "c")]
    snap = views.build(trials, "val_bpb", "minimize", "x")
    rows = {r["number"]: r for r in snap["trials"]}
    assert math.isclose(rows[1]["delta_baseline"], 0.4) and math.isclose(rows[1]["delta_best"], 0.4)
    assert rows[4]["delta_best"] == 0.0 and math.isclose(rows[4]["delta_baseline"], -0.5)
    assert rows[3]["value"] is None and rows[3]["delta_best"] is None
    assert [v for _, v in snap["best_line"]] == [2.1, 2.1, 1.6, 1.6, 1.6]
    assert snap["counts"]["keep"] == 1 and snap["counts"]["crash"] == 1 and snap["counts"]["discard"] == 2
    assert math.isclose(snap["noise_sd"], math.sqrt((0.02 + 0.02) / 2))
    assert snap["branching"] is False and rows[4]["parent_number"] == 2


def test_lineage_appears_once_a_parent_is_not_the_best():
    trials = [_t(0, K, 2.0, "a", "a", kind="baseline"), _t(1, K, 1.8, "b", "a"), _t(2, D, 1.9, "c", "a")]
    snap = views.build(trials, "val_bpb", "minimize", "x")
    assert snap["branching"] is True                     # trial 2 was proposed on the baseline, not on 1
    assert [r["parent_number"] for r in snap["trials"]] == [None, 0, 0]


def test_curve_from_progress_lines(tmp_path):
    log = tmp_path / "x-1.log"
    log.write_text("Profile: smoke\nstep 00000 (0.0%) | loss: 6.5 | dt: 1ms\nnote\nstep 00001 (9.0%) | loss: nan\n"
                   "step 00002 (20.0%) | loss: 5.25 | remaining: 1s\n")
    assert views.curve(log) == [[0, 6.5], [2, 5.25]]
    assert views.curve(tmp_path / "missing.log") == []


def test_a_static_page_embeds_any_text_safely():
    data = {"trials": [{"description": "</script><script>alert(1)</script> & <!--", "value": float("nan")}]}
    html = page.html(data)
    boot = html.split('<script id="boot" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert json.loads(boot)["data"]["trials"][0]["description"].startswith("</script>")
    assert json.loads(boot)["data"]["trials"][0]["value"] is None and "http" not in boot


def test_cli_errors_are_one_line(tmp_path, capsys):
    import socket

    from autoresearch import cli
    from tests.fakes import make_fake_workspace
    root = make_fake_workspace(tmp_path / "ws", tag="v")
    assert cli.main(["finalize", "-C", str(root), "--repeats", "0"]) == 1
    assert "no measured baseline: run `autoresearch run` first" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert cli.main(["dashboard", "-C", str(root), "--port", str(busy.getsockname()[1])]) == 1
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1" in err and "--port" in err and len(err.strip().splitlines()) == 1


def test_the_best_rerun_on_a_close_call_counts_for_the_best():
    trials = [_t(0, K, 2.0, "a", "a", [2.0], kind="baseline"),
              _t(1, D, 1.925, "b", "a", [1.9, 1.95], extra={"best_reruns": {"0": [2.2]}})]
    snap = views.build(trials, "val_bpb", "minimize", "x")
    assert snap["baseline"]["value"] == 2.1 and snap["baseline"]["runs"] == 2
    assert math.isclose(snap["trials"][1]["delta_best"], 1.925 - 2.1)
