"""running.py: running.json written, read only while its study lives, orphans of a dead one found."""

from __future__ import annotations

import json
import subprocess
import sys

from autoresearch import running


def test_write_read_and_clear(tmp_path):
    running.write(tmp_path, [{"number": 3, "description": "x"}, {"number": 4, "description": "y"}],
                  budget=60, workers=2, executor="local")
    info = running.read(tmp_path)
    assert info["number"] == 3 and [t["number"] for t in info["trials"]] == [3, 4]
    assert info["workers"] == 2 and info["executor"] == "local" and info["budget"] == 60
    running.write(tmp_path, [])
    assert running.read(tmp_path) is None and not running.path(tmp_path).exists()


def test_a_dead_study_leaves_orphans_to_kill_and_a_live_one_blocks(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        info = {"pid": int(dead.stdout), "number": 1, "trials": [{"number": 1, "child_pgid": sleeper.pid}]}
        running.path(tmp_path).write_text(json.dumps(info))
        assert running.read(tmp_path) is None                 # its study is gone: nothing runs
        assert running.orphans(tmp_path) == (None, [sleeper.pid])
        assert not running.path(tmp_path).exists()            # the stale file is removed
        info["pid"] = sleeper.pid                             # a live process owns the file
        running.path(tmp_path).write_text(json.dumps(info))
        assert running.orphans(tmp_path) == (sleeper.pid, [])
    finally:
        sleeper.kill()
        sleeper.wait()
