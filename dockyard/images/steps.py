"""Build output → step progress, for Docker's classic builder and for Podman (buildah) alike.

Docker numbers steps across the whole Dockerfile (`Step 7/12 : RUN ...`); buildah numbers them per stage
(`[2/3] STEP 1/4: FROM system AS python-packages`, or `STEP 1/6: ...` for a one-stage file). Buildah also
shows the labels passed with the build as LABEL steps at the end, which Docker does not count. Both are
reported as one count over all stages, so front ends draw the same progress for either engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOCKER = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_BUILDAH = re.compile(r"^(?:\[\d+/\d+\] )?STEP \d+/(\d+): (.*)$")
# buildah's error names the failing step: 'building at STEP "RUN ...": while running runtime: exit status 1'
_BUILDAH_FAILED = re.compile(r'building at STEP "(.*)": ', re.DOTALL)
# Terminal control in build output: Docker's classic builder wraps a step's stderr in ESC[91m ... ESC[0m, and
# tools draw colours, cursor moves and titles. CSI and OSC sequences, then any other C0 control but tab/newline.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plain(text: str) -> str:
    """Build output as text: escape sequences removed; of a line redrawn with carriage returns (a progress
    bar), what it showed last."""
    lines = _ESCAPES.sub("", text).split("\n")
    return "\n".join(_CONTROLS.sub("", line.rstrip("\r").rsplit("\r", 1)[-1]) for line in lines)


def count_instructions(dockerfile: str) -> int:
    """Instructions in a Dockerfile (comments, blank and continuation lines skipped): Docker's step total."""
    count = 0
    continued = False
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not continued and line and not line.startswith("#"):
            count += 1
        if line.startswith("#") and continued:
            continue  # a comment inside a continued instruction does not end it
        continued = line.endswith("\\")
    return count


@dataclass(frozen=True)
class Step:
    number: int
    total: int
    text: str


class StepParser:
    """Feed it build output lines; it returns a Step for the lines that start one, else None, and keeps the
    other lines to show a failing step's output."""

    def __init__(self, instructions: int = 0, labels: int = 0) -> None:
        # buildah's total: the Dockerfile's instructions plus one LABEL step per build label
        self.buildah_total = instructions + labels
        self.seen = 0
        self.current = ""  # the step begun last
        self.lines: list[str] = []  # output lines (not step lines) so far
        self.starts: dict[str, int] = {}  # step text -> where its output begins in lines

    def feed(self, line: str) -> Step | None:
        step = None
        if m := _DOCKER.match(line):
            self.seen = int(m.group(1))
            step = Step(self.seen, int(m.group(2)), m.group(3))
        elif m := _BUILDAH.match(line):
            self.seen += 1
            step = Step(self.seen, max(self.buildah_total, self.seen, int(m.group(1))), m.group(2))
        if step is not None:
            self.current = step.text
            self.starts[step.text] = len(self.lines)
        elif line.strip():
            self.lines.append(line)
        return step

    def failure(self, message: str) -> tuple[str, list[str]]:
        """The failing step and the output since it began.

        The step the engine's message names where it names one (buildah runs stages in parallel, so the
        step begun last need not be the one that failed), else the step begun last (Docker runs in order).
        """
        m = _BUILDAH_FAILED.search(message)
        text = m.group(1) if m and m.group(1) in self.starts else self.current
        return text, self.lines[self.starts.get(text, 0) :]
