"""Draw build progress: a live bar on a terminal, plain step lines in logs and CI."""

from __future__ import annotations

import re

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..emit.terminal import safe as escape  # the one way a value reaches the terminal

_NOISE = re.compile(r"^\s*(---> |Removing intermediate container|Successfully built)")


class RichReporter:
    def __init__(self, console: Console, title: str, verbose: bool = False) -> None:
        self.console = console
        self.verbose = verbose
        self.live = console.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[title]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.description}"),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("", total=None, title=title)

    def __enter__(self) -> RichReporter:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def step(self, number: int, total: int, text: str) -> None:
        label = f"Step {number}/{total}"
        room = max(20, self.console.width - len(label) - 2)
        line = " ".join(text.split())  # RUN lines span several Dockerfile lines
        self.console.print(f"[cyan]{label}[/] {escape(line if len(line) <= room else line[: room - 1] + '…')}")
        self.progress.update(self.task, completed=number - 1, total=total, description="")

    def output(self, line: str) -> None:
        if _NOISE.match(line):
            return  # builder bookkeeping: kept in the log, not worth a line on screen
        if self.verbose or not self.live:
            self.console.print(f"  [dim]{escape(line)}[/]", soft_wrap=True)
        else:
            self.progress.update(self.task, description=escape(line.strip()[:80]))
