"""ledger.py: results.tsv + trials.jsonl, append-only, a torn last line dropped."""

from __future__ import annotations

from autoresearch.ledger import HEADER, Ledger
from autoresearch.trial import Trial, TrialState


def test_ledger_append_load_and_torn_line(tmp_path):
    led = Ledger(tmp_path, "tag")
    led.open()
    t = Trial(number=0, state=TrialState.KEEP, description="base\tline\nbreak", commit="abcdef1234", value=1.5,
              values=(1.5,), metrics={"peak_vram_mb": 2048.0})
    led.append(t)
    led.append(t.replace(number=1, state=TrialState.TIMEOUT, value=None, description="hang"))
    with open(led.jsonl, "a") as f:
        f.write('{"number": 2, "sta')        # killed mid-write
    assert [x.number for x in led.load()] == [0, 1]
    led.open()
    assert [x.number for x in led.load()] == [0, 1]
    rows = led.tsv.read_text().splitlines()
    assert rows[0] + "\n" == HEADER
    assert rows[1] == "abcdef1\t1.500000\t2.0\tkeep\tbase line break"
    assert rows[2] == "abcdef1\t0.000000\t0.0\tcrash\t[timeout] hang"


def test_ledger_open_keeps_a_foreign_results_tsv(tmp_path):
    (tmp_path / "results.tsv").write_text(HEADER + "1234567\t0.9\t1.0\tkeep\tsomeone else's\n")
    Ledger(tmp_path, "new").open()
    assert (tmp_path / "results.tsv").read_text() == HEADER
    assert "someone else's" in (tmp_path / ".autoresearch" / "results.tsv.bak").read_text()
