"""A pre-started Python interpreter (see autoresearch/warm.py); run by path, stdlib only.

    python _interpreter.py MODULE ...

Imports the MODULEs (torch, for the default harness), then waits for one line on stdin, a JSON
job {"argv": [script, args...], "cwd": ..., "env": {...}}, and runs the script as `python
script args` would: same argv, working directory, environment, sys.path[0] and __main__.
End of input without a job (the tool is done with it): exits 0.
"""

import sys

del sys.path[0]  # this file's folder must not shadow anything the modules below import

import json  # noqa: E402
import os  # noqa: E402
import runpy  # noqa: E402


def main() -> int:
    for name in sys.argv[1:]:
        try:
            __import__(name)
        except Exception:
            pass  # the script itself will meet the problem, and report it where it is read
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return 0
    job = json.loads(line)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the script's stdin, as the runner gives a cold start
    os.close(devnull)
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    sys.argv = list(job["argv"])
    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
    runpy.run_path(sys.argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
