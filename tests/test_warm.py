"""Warm starts: a `python FILE.py` command handed to a spare interpreter behaves as a cold start."""

from __future__ import annotations

import json
import os
import sys
import time

from autoresearch import runner, warm

SCRIPT = r'''
import json, os, sys
import heavy
out = {"preloaded": heavy.LOADED_BEFORE_SCRIPT, "argv": sys.argv, "cwd": os.getcwd(), "name": __name__,
       "var": os.environ.get("AUTORESEARCH_X"), "stdin": sys.stdin.read(), "path0": sys.path[0],
       "dumps_ok": callable(json.dumps)}
json.dumps = None          # patching a module here must not reach the next command
print(json.JSONEncoder().encode(out))
mode = sys.argv[1] if len(sys.argv) > 1 else ""
if mode == "exit3":
    sys.exit(3)
if mode == "raise":
    raise RuntimeError("boom from the script")
if mode == "hang":
    import time
    time.sleep(60)
'''

HEAVY = '''
import sys  # imported by the spare before any script: its argv[0] is then the interpreter's
LOADED_BEFORE_SCRIPT = sys.argv[0].endswith("_interpreter.py")
'''


def _setup(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "heavy.py").write_text(HEAVY)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "script.py").write_text(SCRIPT)
    env = runner.scrub_env(extra={"PYTHONPATH": str(tmp_path / "lib"), "AUTORESEARCH_X": "one"})
    return tmp_path / "work", env


def _wait_for_spare(timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with warm._lock:
            if any(warm._spares.values()):
                return
        time.sleep(0.05)
    raise AssertionError("no spare interpreter was started")


def _run(work, env, tmp_path, name, *args, timeout=60.0):
    argv = runner.command("python script.py " + " ".join(args))
    return runner.run(argv, work, timeout, tmp_path / f"{name}.log", env=env, preload=("heavy",), spares=1)


def test_a_warm_start_runs_the_command_as_a_cold_one_would(tmp_path):
    warm.close()
    work, env = _setup(tmp_path)
    cold = _run(work, env, tmp_path, "cold", "plain")
    assert cold.returncode == 0
    first = json.loads(cold.tail.strip().splitlines()[-1])
    assert first["preloaded"] is False          # no spare yet: started cold, and a spare is on its way
    _wait_for_spare()
    env2 = dict(env, AUTORESEARCH_X="two")      # per-run variables reach the spare at hand-over
    hot = _run(work, env2, tmp_path, "warm", "plain")
    assert hot.returncode == 0
    second = json.loads(hot.tail.strip().splitlines()[-1])
    assert second["preloaded"] is True
    assert second["var"] == "two" and first["var"] == "one"
    for key in ("argv", "cwd", "name", "stdin", "path0", "dumps_ok"):
        assert second[key] == first[key], key
    assert second["argv"] == ["script.py", "plain"] and second["name"] == "__main__" and second["stdin"] == ""
    assert os.path.samefile(second["path0"], work)
    assert second["dumps_ok"] is True           # the previous command's patch of json did not carry over


def test_a_warm_start_keeps_exit_codes_tracebacks_and_the_time_limit(tmp_path):
    warm.close()
    work, env = _setup(tmp_path)
    _run(work, env, tmp_path, "prime", "plain")
    _wait_for_spare()
    r = _run(work, env, tmp_path, "exit3", "exit3")
    assert r.returncode == 3 and '"preloaded": true' in r.tail
    _wait_for_spare()
    r = _run(work, env, tmp_path, "raise", "raise")
    assert r.returncode == 1 and "RuntimeError: boom from the script" in r.tail and '"preloaded": true' in r.tail
    _wait_for_spare()
    started = []
    argv = runner.command("python script.py hang")
    r = runner.run(argv, work, 1.5, tmp_path / "hang.log", env=env, preload=("heavy",), spares=1,
                   on_start=started.append)
    assert r.timed_out and r.killed == "timeout" and '"preloaded": true' in r.tail
    try:
        os.killpg(started[0], 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive                            # its whole process group is gone


def test_only_python_file_commands_are_warm_started(tmp_path):
    assert warm.eligible([sys.executable, "train.py"])
    assert not warm.eligible([sys.executable, "-c", "print(1)"])
    assert not warm.eligible([sys.executable, "-m", "pkg"])
    assert not warm.eligible(["/bin/sh", "run.py"])
    warm.close()
    work, env = _setup(tmp_path)
    r = runner.run([sys.executable, "-c", "import sys; print(sys.argv)"], work, 30, tmp_path / "c.log", env=env,
                   preload=("heavy",), spares=1)
    assert r.returncode == 0 and "['-c']" in r.tail
    assert not any(warm._spares.values()) and not warm._pending


def test_spares_are_started_only_for_commands_that_ask(tmp_path):
    warm.close()
    work, env = _setup(tmp_path)
    argv = runner.command("python script.py plain")
    r = runner.run(argv, work, 60, tmp_path / "a.log", env=env, preload=("heavy",))          # asks for none
    assert r.returncode == 0
    time.sleep(0.5)
    assert not any(warm._spares.values())
    runner.run(argv, work, 60, tmp_path / "b.log", env=env, preload=("heavy",), spares=2)    # a training run
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(map(len, warm._spares.values())) < 2:
        time.sleep(0.05)
    assert sum(map(len, warm._spares.values())) == 2
    r = runner.run(argv, work, 60, tmp_path / "c.log", env=env, preload=("heavy",))          # takes one, asks none
    assert '"preloaded": true' in r.tail
    time.sleep(0.5)
    assert sum(map(len, warm._spares.values())) == 1
    warm.close()


def test_harness_preload_is_a_list_of_module_names(tmp_path):
    import pytest

    from autoresearch.errors import ConfigError
    from autoresearch.harness import Harness, default_toml
    (tmp_path / "autoresearch.toml").write_text('[harness]\npreload = "torch"\n')
    with pytest.raises(ConfigError, match="preload must be a list of module names"):
        Harness.load(tmp_path)
    (tmp_path / "autoresearch.toml").write_text('[harness]\npreload = ["torch", "numpy"]\n')
    assert Harness.load(tmp_path).preload == ("torch", "numpy")
    # the default harness: none on a CPU (an import there competes with the run), torch's on a GPU profile
    (tmp_path / "autoresearch.toml").write_text(default_toml("cpu"))
    assert Harness.load(tmp_path).preload == ()
    (tmp_path / "autoresearch.toml").write_text(default_toml("h100"))
    assert Harness.load(tmp_path).preload[:2] == ("torch", "torch._dynamo")
