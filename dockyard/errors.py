"""One exception type for every problem a user can fix; the CLI prints it as one paragraph."""

from __future__ import annotations


class DockyardError(Exception):
    """A user-facing error: what went wrong, where, and how to fix it.

    The message is written for people, so the CLI shows it without a traceback. exit_code is the CLI's exit
    status for it: 2 (as for a usage error) when what the user asked for or wrote must change (an argument,
    a spec, the config, a lock); EngineError and BuildError say 1: the request was fine, doing it failed.
    """

    exit_code = 2

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.problem = message.rstrip(".")
        self.fix = fix
        super().__init__(self.text)

    @property
    def text(self) -> str:
        if self.fix:
            return f"{self.problem}. Fix: {self.fix}"
        return f"{self.problem}."


class SpecError(DockyardError):
    """An environment spec (envs/NAME.yaml) is malformed."""


class ConfigError(DockyardError):
    """The user configuration (file, environment variables or flags) is invalid."""


class EngineError(DockyardError):
    """The Docker engine is unreachable or refused a request."""

    exit_code = 1


class BuildError(DockyardError):
    """An image build failed (or its preflight found a package index it cannot use)."""

    exit_code = 1


def shown(value: object, limit: int = 60) -> str:
    """A user-supplied value quoted for an error message: control characters escaped, long values cut.

    Values come from files, flags and the environment, so they may be huge or hold terminal escapes;
    the message must stay one short paragraph whatever they hold.
    """
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = f"{text[:limit]}…"
    quoted = repr(text)  # escapes newlines, NUL, ESC and lone surrogates
    return f"'{quoted[1:-1]}'" if quoted[0] == '"' else quoted


class StackError(DockyardError):
    """A stack file (stacks/NAME/stack.yaml) is malformed."""


class ComposeError(DockyardError):
    """Docker Compose is missing, or a compose project failed to start, finish or verify."""


class RegistryError(DockyardError):
    """A registry refused, could not be reached, lacks a tag, or served an image whose labels do not match."""

    exit_code = 1
