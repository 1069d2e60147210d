"""Rich progress for long stages: one bar per stage, with counts, rate and time left."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskProgressColumn,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)


class StageProgress:
    """A rich Progress that stages open tasks on; finished bars stay visible as a log."""

    def __init__(self, console: Console):
        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
            TimeRemainingColumn(), console=console, transient=False)

    def __enter__(self) -> StageProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    @contextlib.contextmanager
    def task(self, description: str, total: int, unit: str = "it") -> Iterator[Callable[[int], None]]:
        """Yield an `advance(n)` callback for a stage of `total` items."""
        task_id = self._progress.add_task(escape(description), total=total, rate="")  # names hold [...]

        def advance(n: int, note: str = "") -> None:
            self._progress.advance(task_id, n)
            task = self._progress.tasks[task_id]
            rate = f"{task.speed:,.2f} {unit}/s" if task.speed and task.speed < 10 else (
                f"{task.speed:,.0f} {unit}/s" if task.speed else "")
            self._progress.update(task_id, rate=" ".join(x for x in (note, rate) if x))

        yield advance
        self._progress.update(task_id, completed=total)

    @contextlib.contextmanager
    def spinner(self, description: str) -> Iterator[None]:
        """A stage without a count (loading a collection, training an index)."""
        task_id = self._progress.add_task(escape(description), total=None, rate="")
        yield
        self._progress.update(task_id, total=1, completed=1)
