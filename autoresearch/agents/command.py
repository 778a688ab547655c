"""CommandAgent: any program as the agent (aider, a shell script, your own tool).

Options (`[agents.command]` in autoresearch.toml, or `-o command=...`):

    command = "aider --yes --message-file {prompt_file} train.py"   # shlex-split; required
    timeout = 1800                                                  # seconds, wall clock

The program runs in the workspace (the best commit, clean) with the prompt written to a
file outside the repository (`{prompt_file}` in the command, and `AUTORESEARCH_PROMPT_FILE`),
plus `AUTORESEARCH_TRIAL` (the trial number) and `AUTORESEARCH_EDITABLE` (editable files,
space-separated). It edits the files and prints a one-line description: the last non-empty
line of stdout (or a `DESCRIPTION:` line). A non-zero exit or a timeout is an AgentError.

The program runs through agents/process.py (own process group, killed whole on a timeout,
dies with the tool), as claude and codex do.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path

from autoresearch.agents import Agent, Proposal
from autoresearch.agents.process import agent_env, run, tail
from autoresearch.errors import AgentError, AgentUnavailable, ConfigError
from autoresearch.runner import scrub_env


class CommandAgent(Agent):
    name = "command"

    def __init__(self, command: str | list | None = None, timeout: float = 1800.0, model: str | None = None,
                 base_url: str | None = None, max_chars: int = 60_000, env: dict | None = None):
        self.command = command
        self.timeout = float(timeout)
        self.model = model            # passed through as AUTORESEARCH_MODEL, for the program's use
        self.base_url = base_url
        self.max_chars = int(max_chars)
        self.env = dict(env or {})

    def _argv(self, prompt_file: str = "{prompt_file}") -> list[str]:
        if not self.command:
            raise AgentUnavailable("the command agent needs a program: set command = \"...\" under "
                                   "[agents.command] in autoresearch.toml or pass -o command=\"...\"")
        argv = shlex.split(self.command) if isinstance(self.command, str) else [str(a) for a in self.command]
        if not argv:
            raise ConfigError("agents.command.command is empty")
        return [a.replace("{prompt_file}", prompt_file) for a in argv]

    def check(self) -> None:
        exe = self._argv()[0]
        if not (shutil.which(exe) or (os.sep in exe and os.access(exe, os.X_OK))):
            raise AgentUnavailable(f"command agent: {exe!r} is not on PATH (install it or fix agents.command.command)")

    def propose(self, context) -> Proposal:
        from autoresearch.agents import prompt as prompt_mod

        text = prompt_mod.build(context, answer="tools", max_chars=self.max_chars)
        with tempfile.TemporaryDirectory(prefix="autoresearch-agent-") as tmp:
            prompt_file = Path(tmp) / "prompt.md"
            prompt_file.write_text(text)
            # a program agent gets no key of the tool's environment: only what its options name (env)
            env = agent_env(dict(self.env, AUTORESEARCH_PROMPT_FILE=str(prompt_file),
                                 AUTORESEARCH_TRIAL=str(context.trial_number),
                                 AUTORESEARCH_EDITABLE=" ".join(context.editable or tuple(context.files)),
                                 AUTORESEARCH_ROOT=str(context.root),
                                 AUTORESEARCH_MODEL=self.model, AUTORESEARCH_BASE_URL=self.base_url),
                            base=scrub_env())
            argv = self._argv(str(prompt_file))
            done = run(argv, context.root, self.timeout, env=env, sandbox=context.sandbox,
                       hidden=context.hidden, writable=(tmp,))
        if done.timed_out:
            raise AgentError(f"command agent: {argv[0]} ran past {self.timeout:.0f}s and was killed")
        if done.returncode != 0:
            raise AgentError(f"command agent: {argv[0]} exited with {done.returncode}: "
                             f"{tail(done.stderr or done.stdout)}")
        description = prompt_mod.description_from_text(done.stdout)
        return Proposal(description=description or f"{argv[0]} (no description printed)",
                        extra={"model": self.model or argv[0], "seconds": round(done.seconds, 2)})
