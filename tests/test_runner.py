"""runner.py: one command under an external limit; the summary block; a scrubbed environment."""

from __future__ import annotations

import os
import sys

import pytest

from autoresearch import runner
from tests.fakes import until


def test_parse_summary_takes_last_block():
    text = "---\nval_bpb: 9\n...\nstep 1 | loss: 2\n---\nval_bpb:          0.997900\npeak_vram_mb:     45,060.2\nname: x\n\nafter"
    assert runner.parse_summary(text) == {"val_bpb": 0.9979, "peak_vram_mb": 45060.2, "name": "x"}
    assert runner.parse_summary("no block") == {}


def test_scrub_env_drops_credentials():
    env = runner.scrub_env({"PATH": "/bin", "OPENAI_API_KEY": "k", "HF_TOKEN": "t", "AUTORESEARCH_PROFILE": "cpu",
                            "AWS_SECRET_ACCESS_KEY": "s", "RANDOM_VAR": "r", "CUDA_VISIBLE_DEVICES": "0"})
    assert set(env) == {"PATH", "AUTORESEARCH_PROFILE", "CUDA_VISIBLE_DEVICES", "PYTHONUNBUFFERED"}


def test_runner_timeout_kills_the_whole_group(tmp_path):
    # the child (a shell: it starts in milliseconds) starts a grandchild that would outlive it;
    # both must die at the limit
    script = "sleep 600 & echo $! > grandchild.pid; echo started; sleep 600"
    r = runner.run(["sh", "-c", script], tmp_path, timeout=2.0, log_path=tmp_path / "log")
    assert r.timed_out and r.killed == "timeout"
    pid = int((tmp_path / "grandchild.pid").read_text())
    until(lambda: not _alive(pid), "the grandchild to be gone")
    assert "started" in (tmp_path / "log").read_text()
    assert "killed after 2 s" in (tmp_path / "log").read_text()



def _child_of_a_stopped_run(tmp_path, child: str) -> int:
    """Run `sh -c "python child.py & sleep 600"`; child.py writes child.pid, then a loss line, which
    stops the run (an event, not a time). The child's pid, once the run is over."""
    (tmp_path / "child.py").write_text(child + "open('child.pid', 'w').write(str(os.getpid()))\n"
                                               "print('loss: 1', flush=True)\n"
                                               "while True: time.sleep(1)\n")
    stop = lambda p: "stopped by the test" if (tmp_path / "child.pid").exists() else None    # noqa: E731
    r = runner.run(["sh", "-c", f"{sys.executable} child.py & sleep 600"], tmp_path, timeout=600,
                   log_path=tmp_path / "log", on_progress=stop)
    assert r.killed == "pruned"
    return int((tmp_path / "child.pid").read_text())


def test_a_descendant_in_a_session_of_its_own_is_killed_too(tmp_path):
    # bubblewrap's PID 1 of a sandbox calls setsid() and, until it has set itself up, does not die
    # with its parent: a kill of the command's group alone left it and the run inside it behind
    pid = _child_of_a_stopped_run(tmp_path, "import os, time\nos.setsid()\n")
    until(lambda: not _alive(pid), "the process in its own session to be gone")


def test_a_process_that_leaves_the_group_while_it_is_killed_is_killed_too(tmp_path):
    # bubblewrap's PID 1 before its setup is done: in the group, deaf to SIGTERM (a namespace's init),
    # then it calls setsid(); the group kill saw the group empty and left it running
    pid = _child_of_a_stopped_run(tmp_path, "import os, signal, time\n"
                                            "signal.signal(signal.SIGTERM, lambda s, f: os.setsid())\n")
    until(lambda: not _alive(pid), "the process that left the group to be gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    import psutil
    return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def test_runner_memory_limit(tmp_path):
    script = "import time\nx = bytearray(400 * 2**20)\nx[::4096] = b'1' * len(x[::4096])\ntime.sleep(600)\n"
    r = runner.run([sys.executable, "-c", script], tmp_path, timeout=300, log_path=tmp_path / "log",
                   memory_limit_mb=200)
    assert r.killed == "memory" and not r.ok and not r.timed_out
    assert "above the limit of 200 MB" in (tmp_path / "log").read_text()


def test_default_memory_limit_shares_the_machine():
    import psutil
    total = psutil.virtual_memory().total / 2**20
    assert runner.default_memory_limit_mb() == pytest.approx(0.8 * total)
    assert runner.default_memory_limit_mb(4) == pytest.approx(0.2 * total)


def test_runner_missing_program_is_a_result(tmp_path):
    r = runner.run(["/nonexistent/prog"], tmp_path, timeout=5, log_path=tmp_path / "log")
    assert r.returncode == 127 and "could not start" in r.tail


def test_runner_progress_callback(tmp_path):
    seen = []
    script = "import time\nfor i in range(3):\n    print(f'step {i} | loss: {3-i}.5 | remaining: {9-i}s', flush=True); time.sleep(0.1)\n"
    runner.run([sys.executable, "-c", script], tmp_path, timeout=10, log_path=tmp_path / "log",
               on_progress=lambda p: seen.append((p.step, p.loss, p.remaining)))
    assert seen[-1] == (2, 1.5, 7.0)


def test_a_cancel_while_the_child_starts_still_kills_it(tmp_path, monkeypatch):
    # the cancel (SIGTERM, turned into KeyboardInterrupt as the local executor's workers do) lands
    # after the child exists but before Popen has returned: the child must not be left behind
    import signal
    import subprocess
    started = []

    class Popen(subprocess.Popen):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            started.append(self.pid)
            signal.raise_signal(signal.SIGTERM)      # "during" Popen, deterministically

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, interrupt)
    monkeypatch.setattr(runner.subprocess, "Popen", Popen)
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run(["sleep", "600"], tmp_path, timeout=600, log_path=tmp_path / "log")
    finally:
        signal.signal(signal.SIGTERM, old)
    assert started and not _alive(started[0])


def test_the_tail_keeps_a_traceback_written_a_character_a_write(tmp_path):
    """An unbuffered child writes a traceback's caret line a character a write; the tail (a crash's
    reason) must still hold the code line above it. Each read returns one byte here, as a fast reader
    of such a child sees it: the old tail, bounded by 64 chunks, kept only the last 64 bytes."""
    import io

    text = ('Traceback (most recent call last):\n  File "train.py", line 28, in <module>\n'
            '    for p in glob.glob(".autoresearch/*/trials.jsonl")\n' + " " * 13 + "^" * 4 + "\n"
            "NameError: name 'glob' is not defined\n").encode()

    class OneByteAtATime(io.RawIOBase):
        def __init__(self, data):
            self.data = data

        def read1(self, n=-1):
            out, self.data = self.data[:1], self.data[1:]
            return out

    with open(tmp_path / "log", "wb") as log:
        drain = runner._Drain(OneByteAtATime(text), log, 1 << 20, runner.Progress(), None)
        drain.run()
    assert drain.tail_text() == text.decode()
    assert (tmp_path / "log").read_bytes() == text
