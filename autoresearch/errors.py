"""The tool's few exceptions. Only the CLI turns them into messages (exit code 1).

A failed experiment is data (a Trial with a state), never one of these: these mean the
tool cannot go on, and each message says what to do.
"""


class AutoresearchError(Exception):
    """Base class: a problem the user can fix; the message says how."""


class ConfigError(AutoresearchError):
    """autoresearch.toml, a flag or an env var is malformed or names something unknown."""


class WorkspaceError(AutoresearchError):
    """The workspace is not a git repository, is dirty, or its tag belongs to another harness."""


class NotPreparedError(AutoresearchError):
    """The harness' data or tokenizer has not been prepared yet."""


class AgentError(AutoresearchError):
    """An agent could not produce a proposal (transient or not); the study counts these."""


class AgentUnavailable(AgentError):
    """An agent cannot run here at all (missing binary, login or key): raised before the study starts."""
