"""Disturbed runs: the runner's CPU seconds, the rule in autoresearch/disturbance.py, and a real study in
which a run that sleeps instead of computing (as a run starved by other load would) is re-run, not judged.
Every assertion is on states and CPU seconds the run itself spends or does not spend, never on durations."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from autoresearch import runner
from autoresearch.config import Config
from autoresearch.disturbance import COLD, LoadCheck
from autoresearch.measurement import Measurement, harness_env
from autoresearch.study import Study
from autoresearch.trial import TrialState
from tests.fakes import SANDBOXED, ScriptedAgent, compiling, edit, make_fake_workspace

BUSY = "import time\nwhile time.process_time() < 1.2: pass\n"        # 1.2 CPU s, however long that takes
SLEEPY = "import time\ntime.sleep(1.5)\n"                             # ~0 CPU s
HOG = [sys.executable, "-c", "while True: pass"]    # a busy process outside a run's tree: other load on its cores


def test_runner_counts_the_cpu_of_the_whole_tree(tmp_path):
    # the CPU is spent by a grandchild: only a tree-wide count sees it
    inner = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BUSY!r}])"
    busy = runner.run([sys.executable, "-c", inner], tmp_path, 60, tmp_path / "busy.log")
    idle = runner.run([sys.executable, "-c", SLEEPY], tmp_path, 60, tmp_path / "idle.log")
    assert busy.ok and idle.ok
    assert busy.cpu_seconds >= 1.0
    assert idle.cpu_seconds < 0.5
    assert busy.cpu_share > 0


def test_runs_get_thread_counts_of_the_cores_they_may_use(tmp_path):
    from autoresearch.harness import Harness
    ws = make_fake_workspace(tmp_path / "ws")
    env = harness_env(Harness.load(ws))
    cores = str(len(os.sched_getaffinity(0)))
    if "OMP_NUM_THREADS" not in os.environ:
        assert env["OMP_NUM_THREADS"] == cores and env["MKL_NUM_THREADS"] == cores
    assert runner.thread_env({"OMP_NUM_THREADS": "1"})["OMP_NUM_THREADS"] == "1"   # the user's value wins


def _m(cpu, seconds, value=1.0, wait=0.0):
    r = runner.RunResult(0, False, seconds, "", cpu_seconds=cpu, wait_seconds=wait)
    return Measurement(TrialState.KEEP if value is not None else TrialState.CRASH, value, r)


def test_rule_reference_and_reruns():
    check = LoadCheck(below=0.8, reruns=2)
    assert check.disturbed(_m(0.1, 10)) == ""              # no reference yet: never disturbed
    for cpu in (18.0, 19.0, 0.2):                          # the 0.2 s run is too short to count
        check.learn(_m(cpu, 10))
    assert check.reference() == pytest.approx(1.85)
    assert check.disturbed(_m(15.0, 10)) == ""             # 1.5 >= 0.8 x 1.85
    assert "below 0.8" in check.disturbed(_m(10.0, 10))
    assert check.disturbed(_m(1.0, 10, value=None)) == ""  # a crash is judged as a crash
    runs = iter([_m(5.0, 10), _m(6.0, 10), _m(17.0, 10)])
    m = check.measure(lambda: next(runs))
    assert m.cpu_seconds == 17.0 and m.disturbed == ""
    assert check.take_note()["disturbed_runs"] == 2 and check.take_note() == {}
    m = check.measure(lambda: _m(5.0, 10))                 # disturbed every time: judged, with a note
    assert "judged anyway" in m.disturbed and check.take_note()["disturbed_runs"] == 3
    assert LoadCheck(below=0).disturbed(_m(0.1, 10)) == ""  # off
    odd = LoadCheck(0.8)
    for cpu in (18.0, 5.0):                                # a disturbed baseline: no reference from 1 run
        odd.learn(_m(cpu, 10))
    assert odd.reference() is None


def test_a_run_is_judged_on_its_share_while_it_trained():
    """Start-up and compiling are left out (RunResult.judged): a trial whose change misses the compile cache
    spends 15 s compiling at about one core, which a short (pruned) run's whole share cannot hide."""
    check = LoadCheck(below=0.8, reruns=1)
    for cpu in (17.0, 18.0):
        check.learn(_m(cpu, 10))                           # the quiet reference: 1.75 CPU s per wall s
    compiled = runner.RunResult(0, False, 22.0, "", cpu_seconds=26.0, window_seconds=4.0, window_cpu=7.0)
    assert compiled.cpu_share == pytest.approx(1.75)       # 7 CPU s in 4 s of training, not 26 in 22
    assert check.disturbed(Measurement(TrialState.KEEP, 1.0, compiled)) == ""
    starved = dataclasses.replace(compiled, window_cpu=4.0)    # 1.0 while it trained: other load took a core
    why = check.disturbed(Measurement(TrialState.KEEP, 1.0, starved))
    assert "got 1.00 CPU s per wall s" in why and "(4.0 CPU s in 4.0 s of training)" in why
    short = dataclasses.replace(compiled, window_seconds=0.2, window_cpu=0.35)   # too short a window: the whole run
    assert short.cpu_share == pytest.approx(26.0 / 22.0) and "below 0.8" in check.disturbed(
        Measurement(TrialState.KEEP, 1.0, short))


def test_the_runner_measures_the_window_between_the_first_and_last_progress_lines(tmp_path):
    # a sleep (no CPU) before the first progress line and after the last, 1.2 CPU s of work between them
    child = ("import time, sys\ntime.sleep(2)\nprint('progress: 0.10 loss: 5.0', flush=True)\ntime.sleep(0.5)\n"
             "t = time.process_time()\nwhile time.process_time() - t < 1.2: pass\n"
             "print('progress: 0.90 loss: 4.0', flush=True)\ntime.sleep(2)\n")
    r = runner.run([sys.executable, "-c", child], tmp_path, 600, tmp_path / "log")
    assert r.ok and r.window_seconds > 0
    assert r.window_seconds <= r.seconds - 4.0             # both sleeps are outside it
    assert r.window_cpu >= 1.0 and r.window_cpu <= r.cpu_seconds
    assert r.judged == (r.window_cpu, r.window_wait, r.window_seconds, r.window_others)
    assert r.cpu_share > r.cpu_seconds / r.seconds          # the sleeps no longer dilute it
    quiet = runner.run([sys.executable, "-c", "print('progress: 0.10 loss: 5.0')"], tmp_path, 600, tmp_path / "q")
    assert quiet.window_seconds == 0.0 and quiet.judged == (quiet.cpu_seconds, quiet.wait_seconds, quiet.seconds, quiet.others)


def test_a_run_that_starved_itself_is_judged_as_it_ran():
    """The CPU signs need other processes on the run's cores (/proc/stat's busy time there, less its own CPU): a
    run is the agent's code, and one that slept whenever its loss looked poor would otherwise be measured again
    until it drew a lucky one."""
    check = LoadCheck(below=0.8, reruns=2)
    for cpu in (17.0, 18.0):
        check.learn(_m(cpu, 10))
    slept = runner.RunResult(0, False, 10.0, "", cpu_seconds=5.0, others=0.4)      # 0.04 CPU s per s of others
    assert check.disturbed(Measurement(TrialState.KEEP, 1.0, slept)) == ""
    assert check.measure(lambda: Measurement(TrialState.KEEP, 1.0, slept)).result is slept
    assert check.take_note() == {}                                                # not re-run
    spun = dataclasses.replace(slept, cpu_seconds=17.5, wait_seconds=30.0)        # more threads than cores: its own wait
    assert check.disturbed(Measurement(TrialState.KEEP, 1.0, spun)) == ""
    hogged = dataclasses.replace(slept, others=9.0)
    why = check.disturbed(Measurement(TrialState.KEEP, 1.0, hogged))
    assert "below 0.8" in why and "other processes took 9.0 CPU s of its cores" in why
    unknown = dataclasses.replace(slept, others=None)                             # no /proc/stat: as before
    assert "below 0.8" in check.disturbed(Measurement(TrialState.KEEP, 1.0, unknown))
    gpu = LoadCheck(below=0.8)                                                    # the GPU signs are still asked
    for cpu in (17.0, 18.0):
        gpu.learn(Measurement(TrialState.KEEP, 1.0, runner.RunResult(0, False, 10.0, "", cpu_seconds=cpu, gpu_util=90.0)))
    shared = dataclasses.replace(slept, gpu_util=90.0, gpu_shared=0.9)
    assert "another process used its GPU during 90%" in gpu.disturbed(Measurement(TrialState.KEEP, 1.0, shared))
    idled = dataclasses.replace(slept, cpu_seconds=17.5, gpu_util=30.0)           # it slept: its GPU idled too
    assert gpu.disturbed(Measurement(TrialState.KEEP, 1.0, idled)) == ""
    fed_poorly = dataclasses.replace(idled, others=9.0)                           # a hog took the CPU that feeds it
    assert "its GPU was busy 30% of the run" in gpu.disturbed(Measurement(TrialState.KEEP, 1.0, fed_poorly))


def test_the_meter_sees_other_processes_on_the_runs_cores(tmp_path):
    # a busy process outside the run's tree, the whole time the run sleeps: its CPU is the others'
    hog = subprocess.Popen(HOG)
    try:
        r = runner.run([sys.executable, "-c", "import time; time.sleep(2)"], tmp_path, 600, tmp_path / "log")
    finally:
        hog.kill()
        hog.wait()
    assert r.ok and r.others is not None and r.others >= 0.5      # about 2 CPU s of the hog's, at most 4 (2 cores)
    assert r.others <= r.seconds * len(os.sched_getaffinity(0))


def test_the_tools_own_work_for_a_run_is_not_other_load(tmp_path, monkeypatch):
    """A run that floods its output keeps the tool's drain thread busy. That CPU is spent on the run's behalf: it
    must not read as other processes on its cores, the evidence a disturbed run needs (so a run could flood
    whenever its loss looked poor, and be measured again). The machine here is made quiet (its cores busy with
    this process and its children only), as other pytest workers may load it."""
    import psutil
    from autoresearch import disturbance

    def quiet(proc_root="/proc"):          # /proc/stat's busy time on a machine running only the tool and its runs
        t, tree = os.times(), 0.0
        for p in psutil.Process().children(recursive=True):
            try:
                c = p.cpu_times()
                tree += c.user + c.system + c.children_user + c.children_system
            except psutil.Error:
                pass
        return t.user + t.system + t.children_user + t.children_system + tree
    monkeypatch.setattr(disturbance, "busy", quiet)
    monkeypatch.setattr(runner, "busy", quiet)
    flood = ("import sys\nprint('progress: 0.10 loss: 5.0', flush=True)\nb = b'x' * 65535 + b'\\n'\n"
             "for _ in range(20000): sys.stdout.buffer.write(b)\n"
             "sys.stdout.flush()\nprint('progress: 0.90 loss: 5.0', flush=True)\nimport time\ntime.sleep(2)\n")  # 1.3 GB between
    before = disturbance.own_cpu()
    r = runner.run([sys.executable, "-c", flood], tmp_path, 600, tmp_path / "log")
    spent = disturbance.own_cpu() - before
    assert r.ok and r.log_bytes > 20000 * 65536 and r.window_seconds > 0
    assert spent > 0.2                      # the drain's work: at least this much CPU for 1.3 GB
    assert r.others is not None and r.others < 0.1 and r.window_others < 0.1


def test_a_run_that_waited_for_cores_is_disturbed_though_its_threads_spun():
    # spinning threads keep the CPU share up (18 CPU s in 10 s as quiet) but wait for a core meanwhile
    check = LoadCheck(below=0.8, reruns=1)
    for wait in (0.9, 1.1, 20.0):                          # the 20 s baseline run was itself disturbed
        check.learn(_m(18.0, 10, wait=wait))
    assert check.wait_reference() == pytest.approx(1.0 / 18.0)
    assert check.disturbed(_m(18.0, 10, wait=2.0)) == ""   # 0.11 s per CPU s: within 2 x 0.056 + 0.5
    why = check.disturbed(_m(18.0, 10, wait=30.0))         # 1.67 s waited per CPU s
    assert "waited 1.67 s for a core per CPU s" in why
    assert "below 0.8" in check.disturbed(_m(0.3, 10, wait=3.0))   # too little CPU for the wait: starved
    restored = LoadCheck(0.8)
    from autoresearch.trial import Trial
    restored.restore([Trial(number=0, state=TrialState.KEEP, description="baseline", kind="baseline",
                            extra=check.record())])
    assert restored.wait_reference() == pytest.approx(check.wait_reference(), rel=1e-3)


def test_the_meter_reads_each_threads_wait_for_a_core(tmp_path):
    # /proc/<pid>/task/<tid>/schedstat: CPU ns, wait ns, slices (a tree laid out as the kernel does)
    from autoresearch.disturbance import waited
    for tid, line in (("7", "5000000000 1500000000 10\n"), ("8", "100 500000000 3\n"), ("9", "garbage\n")):
        (tmp_path / "7" / "task" / tid).mkdir(parents=True)
        (tmp_path / "7" / "task" / tid / "schedstat").write_text(line)
    assert waited(7, str(tmp_path)) == pytest.approx(2.0)
    assert waited(8, str(tmp_path)) == 0.0                 # gone: nothing
    busy = runner.run([sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 1: pass"],
                      tmp_path, timeout=600, log_path=tmp_path / "log")
    assert busy.cpu_seconds >= 0.9 and busy.wait_seconds >= 0.0 and busy.wait_ratio == busy.wait_seconds / busy.cpu_seconds


def test_a_starved_run_is_re_run_not_judged(tmp_path):
    ws = make_fake_workspace(tmp_path / "ws")
    train = ws / "train.py"
    text = train.read_text().replace('print("step', 'if MODE == "sleep":\n' + "".join(
        "    " + line + "\n" for line in SLEEPY.splitlines()) + "else:\n" + "".join(
        "    " + line + "\n" for line in BUSY.splitlines()) + 'print("step', 1)
    train.write_text(text)
    from tests.fakes import git
    git(ws, "commit", "-qam", "a harness that computes")
    starved = edit(lambda s: s.replace('MODE = "ok"', 'MODE = "sleep"').replace("X = 1.0", "X = 3.0"),
                   "X -> 3 (its run starved of CPU)")
    hogs = []        # the load that starves it: a busy process outside its tree, started as the trial is proposed
    agent = ScriptedAgent([starved], on_propose=lambda context: hogs.append(subprocess.Popen(HOG)))
    cfg = Config.load({"baseline_runs": 2, "disturbed_below": 0.3, "disturbed_reruns": 1})
    study = Study(ws, agent=agent, config=cfg)
    try:
        study.optimize(max_trials=1)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    base, trial = study.trials
    assert len(base.extra["cpu_shares"]) == 2               # the quiet reference, kept for a resume
    assert trial.extra["disturbed_runs"] == 2               # measured, then once again, both starved
    assert "below 0.3" in trial.extra["disturbed"] and "other processes took" in trial.extra["disturbed"]
    again = Study(ws, agent=ScriptedAgent([]), config=cfg)
    again.reconcile()
    assert again.load.reference() == pytest.approx(study.load.reference(), rel=1e-3)


class FakeNvml:
    """NVML as pynvml (nvidia-ml-py) exposes it, over two GPUs whose utilisation and users a test sets:
    no NVIDIA GPU can exist on this machine, so the driver's answers are scripted."""

    def __init__(self, utils=(0, 0)):
        self.utils = list(utils)
        self.users: list[set] = [set() for _ in utils]

    def nvmlDeviceGetCount(self):
        return len(self.utils)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUtilizationRates(self, h):
        return type("Util", (), {"gpu": self.utils[h], "memory": 0})()

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [type("Proc", (), {"pid": pid, "usedGpuMemory": 0})() for pid in self.users[h]]


def _g(util, shared=0.0, cpu=18.0):
    r = runner.RunResult(0, False, 10.0, "", cpu_seconds=cpu, gpu_util=util, gpu_shared=shared)
    return Measurement(TrialState.KEEP, 1.0, r)


def test_the_gpu_meter_reads_the_run_s_gpus_and_who_else_used_them():
    from autoresearch.disturbance import GpuMeter
    nvml = FakeNvml(utils=(10, 90))
    gpu = GpuMeter.open({"CUDA_VISIBLE_DEVICES": "1"}, nvml=nvml)     # the run may use GPU 1 only
    gpu.sample([100, 101])
    nvml.utils[1], nvml.users[1] = 50, {101, 555}                     # pid 555 is not the run's
    gpu.sample([100, 101])
    assert gpu.percent == pytest.approx(70.0) and gpu.shared == pytest.approx(0.5)
    both = GpuMeter.open({}, nvml=FakeNvml(utils=(20, 60)))           # no CUDA_VISIBLE_DEVICES: all of them
    both.sample([1])
    assert both.percent == pytest.approx(40.0) and both.shared == 0.0
    assert GpuMeter.open({}, nvml=FakeNvml(utils=())) is None         # NVML but no GPU: nothing measured


def test_the_runner_records_the_gpu_a_run_got(tmp_path, monkeypatch):
    from autoresearch.disturbance import GpuMeter
    nvml = FakeNvml(utils=(80, 80))
    monkeypatch.setattr(GpuMeter, "_nvml", nvml)
    r = runner.run([sys.executable, "-c", BUSY], tmp_path, 60, tmp_path / "gpu.log")
    assert r.ok and r.gpu_util == pytest.approx(80.0) and r.gpu_shared == 0.0
    monkeypatch.setattr(GpuMeter, "_nvml", False)                     # no NVML here: not measured
    assert runner.run([sys.executable, "-c", "pass"], tmp_path, 60, tmp_path / "none.log").gpu_util is None


def test_a_run_whose_gpu_idled_or_was_shared_is_disturbed():
    check = LoadCheck(below=0.8, reruns=1)
    for util in (91.0, 93.0, 30.0):                       # the 30% baseline run was itself disturbed
        check.learn(_g(util))
    assert check.gpu_reference() == pytest.approx(92.0)
    assert check.disturbed(_g(85.0)) == ""
    assert "its GPU was busy 40% of the run, below 0.8 x the quiet runs' 92%" in check.disturbed(_g(40.0))
    assert "another process used its GPU during 60% of the run" in check.disturbed(_g(90.0, shared=0.6))
    assert check.disturbed(_g(None)) == ""                # not measured (no NVML): the CPU signs only
    crowded = LoadCheck(0.8)                              # the baseline shared its GPU too (side-by-side slots)
    for _ in range(2):
        crowded.learn(_g(90.0, shared=1.0))
    assert crowded.disturbed(_g(90.0, shared=1.0)) == ""
    from autoresearch.trial import Trial
    restored = LoadCheck(0.8)
    restored.restore([Trial(number=0, state=TrialState.KEEP, description="baseline", kind="baseline",
                            extra=check.record())])
    assert restored.gpu_reference() == pytest.approx(92.0) and restored.shared == [0.0, 0.0, 0.0]


def test_a_pruned_run_is_checked_for_disturbance_too():
    # pruning compares curves at fractions of the budget: a run slowed by other load is behind everywhere
    check = LoadCheck(below=0.8, reruns=1)
    for cpu in (18.0, 19.0):
        check.learn(_m(cpu, 10))
    starved = Measurement(TrialState.DISCARD, None, runner.RunResult(None, False, 4.0, "", cpu_seconds=2.0,
                                                                     killed="pruned"), reason="pruned at 40%: ...")
    assert "below 0.8" in check.disturbed(starved)
    quiet = dataclasses.replace(starved, result=dataclasses.replace(starved.result, cpu_seconds=7.5))
    assert check.disturbed(quiet) == ""                    # pruned on its merits: judged as pruned
    crashed = dataclasses.replace(starved, result=dataclasses.replace(starved.result, killed=""))
    assert check.disturbed(crashed) == ""                  # a crash is judged as a crash


def test_a_starved_baseline_run_is_measured_again_not_kept(tmp_path):
    """The baseline's runs are the reference, so no quiet run stood before them: one that other load starved
    (here the first, which sleeps instead of computing and scores worse, as a run that got half its steps
    does, beside a hog: the evidence that the load was not its own) is found by the quiet rest once all are
    in, and measured again; its value never enters the noise."""
    ws = make_fake_workspace(tmp_path / "ws")
    train = ws / "train.py"
    block = ('if os.environ.get("AUTORESEARCH_SEED_OFFSET") == "0":\n    time.sleep(1.5); value += 5.0\nelse:\n'
             + "".join("    " + line + "\n" for line in BUSY.splitlines()))
    train.write_text(train.read_text().replace('if MODE == "noisy"', block + 'if MODE == "noisy"', 1))
    from tests.fakes import git
    git(ws, "commit", "-qam", "a harness whose first run is starved")
    cfg = Config.load({"baseline_runs": 3, "disturbed_below": 0.3, "disturbed_reruns": 1})
    study = Study(ws, agent=ScriptedAgent([edit(lambda s: s.replace("X = 1.0", "X = 2.0"), "X -> 2")]), config=cfg)
    hog = subprocess.Popen(HOG)         # the whole study: the computing runs keep a core each, the sleeper none
    try:
        study.optimize(max_trials=1)
    finally:
        hog.kill()
        hog.wait()
    base, trial = study.trials
    assert base.values == (5.0, 5.0, 5.0)                     # the starved run's 10.0 is not among them
    assert base.extra["disturbed_runs"] == 1 and "below 0.3" in base.extra["disturbed"]
    assert "other processes took" in base.extra["disturbed"]
    assert trial.state == TrialState.KEEP                     # the judge sees the real noise (0 here), not 2.9
    logs = sorted(p.name for p in (ws / ".autoresearch" / "logs").glob("*-0*.log") if "score" not in p.name
                  and "holdout" not in p.name)
    assert len(logs) == 4, logs                               # three runs and the one measured again


def test_a_baseline_run_that_compiled_cold_is_measured_again(tmp_path):
    """A study's first run compiles with no compile cache yet (the one it leaves seeds every later run's), so
    it spends part of its budget compiling and scores worse than the warm runs after it: once all the
    baseline's runs are in, it is measured again, warm, and its value never enters the mean or the noise."""
    ws = compiling(make_fake_workspace(tmp_path / "ws"))
    study = Study(ws, agent=ScriptedAgent([edit(lambda s: s.replace("X = 1.0", "X = 2.0"), "X -> 2")]),
                  config=Config.load({"baseline_runs": 3}))
    study.optimize(max_trials=1)
    base, trial = study.trials
    assert base.values == (5.0, 5.0, 5.0)                     # the cold run's 6.0 is not among them
    assert base.extra["disturbed_runs"] == 1 and base.extra["disturbed"] == COLD
    assert trial.values == (2.0,) and trial.state == TrialState.KEEP       # the trial starts warm too
    logs = sorted(p.name for p in (ws / ".autoresearch" / "logs").glob("*-0*.log") if "score" not in p.name
                  and "holdout" not in p.name)
    assert len(logs) == 4, logs                               # three runs and the one measured again


@pytest.mark.skipif(not SANDBOXED, reason="needs bubblewrap (apt-get install bubblewrap): unsandboxed, a run's TMPDIR "
                                          "is the machine's, where inductor's headers last anyway")
def test_a_sandboxed_run_starts_with_the_baselines_precompiled_headers(tmp_path):
    """inductor keeps its precompiled C++ header under TMPDIR, and a sandboxed run's TMPDIR is its own empty folder:
    the header the baseline's first run built goes into the compile cache with its kernels, and every later run
    finds it there (a copy: what a run appends to its own reaches neither the cache nor the next run)."""
    from autoresearch.harness import Harness
    from autoresearch.measurement import HEADERS, compile_cache
    ws = compiling(make_fake_workspace(tmp_path / "ws"), headers=True)
    study = Study(ws, agent=ScriptedAgent([edit(lambda s: s.replace("X = 1.0", "X = 2.0"), "X -> 2")]),
                  config=Config.load({"baseline_runs": 3}))
    study.optimize(max_trials=1)
    base, trial = study.trials
    assert base.extra["disturbed"] == COLD                    # the first run built both, 6.5, and was measured again
    assert base.values == (5.0, 5.0, 5.0)                     # without the header each warm run would be 5.5
    assert trial.values == (2.0,) and trial.state == TrialState.KEEP
    kept = list((compile_cache(Harness.load(ws)) / HEADERS).glob("torchinductor_*/precompiled_headers/p.h.gch"))
    assert len(kept) == 1 and kept[0].read_text() == "header"     # as the first run left it, five runs later
