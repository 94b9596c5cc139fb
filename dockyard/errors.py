"""One exception type for every problem a user can fix; the CLI prints it as one paragraph."""

from __future__ import annotations


class DockyardError(Exception):
    """A user-facing error: what went wrong, where, and how to fix it.

    The message is written for people, so the CLI shows it without a traceback.
    """

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


class BuildError(DockyardError):
    """An image build failed."""


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
