"""display.py: the live line on a terminal, plain lines elsewhere, the noise warning."""

from __future__ import annotations

from autoresearch.trial import Trial, TrialState


def test_console_live_line_and_plain_lines():
    import io

    from autoresearch.display import Console
    from autoresearch.runner import Progress

    plain = io.StringIO()
    c = Console(stream=plain, live=False)
    c.trial_started(3, "MATRIX_LR 0.04 -> 0.05")
    c.progress(Progress(step=10, loss=3.2, remaining=42))          # not a terminal: no live line
    best = Trial(number=0, state=TrialState.KEEP, description="baseline", value=1.9, values=(1.9,))
    c.trial_done(Trial(number=3, state=TrialState.DISCARD, description="MATRIX_LR 0.04 -> 0.05", value=1.95,
                       values=(1.95,), reason="discard: gain -0.05"), best)
    assert plain.getvalue().splitlines() == [
        "[trial 3] MATRIX_LR 0.04 -> 0.05",
        "[trial 3] DISCARD val_bpb=1.950000 MATRIX_LR 0.04 -> 0.05 (discard: gain -0.05)"]
    live = io.StringIO()
    c = Console(stream=live, live=True)
    c.best_value = 1.9
    c.trial_started(3, "x")
    c.progress(Progress(step=10, loss=3.2, remaining=42))
    assert "\r\033[K" in live.getvalue()
    assert "trial 3 | 42s left | step 10 | loss 3.2000 | best val_bpb 1.900000" in live.getvalue()


def test_noise_warning_reaches_the_live_line_and_the_log():
    import io

    from autoresearch.display import Console
    from autoresearch.runner import Progress

    live = io.StringIO()
    c = Console(stream=live, live=True)
    c.trial_started(4, "x")
    c.warn("noise sd 0.1360 is 14x what the cpu profile gives on a quiet machine (about 0.010): likely other load")
    c.progress(Progress(step=3, loss=2.0, remaining=10))
    text = live.getvalue()
    assert "warning: noise sd 0.1360 is 14x" in text and "other load" in text
    assert text.rstrip().endswith("NOISY: noise sd 0.1360 is 14x what the cpu profile gives on a quiet machine (about 0.010)")
