"""Progress of long stages: rich bars on a terminal, plain lines without one.

Without a terminal (output going to a log file, in CI, under a cluster scheduler) rich would
draw its bars only at the end, so each stage prints a line when it starts, a line with done/total,
rate and time left every `PLAIN_INTERVAL` seconds or 10% (whichever comes first), and a line
when it ends. The rate is one figure throughout, on a terminal too: items done over the time since
the stage began.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.text import Text
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskProgressColumn,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)

PLAIN_INTERVAL = 30.0  # seconds between plain progress lines of one stage (and one per 10%)


def log_console() -> Console:
    """The console long work reports on, stderr: rich on a terminal, a `LogFileConsole` otherwise."""
    console = Console(stderr=True)
    return console if console.is_terminal else LogFileConsole(stderr=True)


class LogFileConsole(Console):
    """For output that is not a terminal (a log file, CI, a cluster job): `log` writes one
    unwrapped line, `[HH:MM:SS] message`, where rich would wrap it at 80 columns, pad it and add
    the source file and line.

    >>> import io
    >>> console = LogFileConsole(file=io.StringIO(), width=40)
    >>> console.log("encoding beir/scifact: 4,160/5,183 docs (80%), 25 docs/s, 0:41 left")
    >>> line = console.file.getvalue()
    >>> line.count("\\n"), line[11:]
    (1, 'encoding beir/scifact: 4,160/5,183 docs (80%), 25 docs/s, 0:41 left\\n')
    """

    def log(self, *objects: Any, sep: str = " ", end: str = "\n", style: Any = None, justify: Any = None,
            emoji: bool | None = None, markup: bool | None = None, highlight: bool | None = None,
            log_locals: bool = False, _stack_offset: int = 1) -> None:
        stamp = Text(time.strftime("[%H:%M:%S]"), style="log.time")
        self.print(stamp, *objects, sep=sep, end=end, style=style, justify=justify, emoji=emoji, markup=markup,
                   highlight=highlight, soft_wrap=True)


def clock_time(seconds: float) -> str:
    """`1:02:03`, `4:05`: a duration as a clock shows it.

    >>> clock_time(3723.4), clock_time(245), clock_time(0.4)
    ('1:02:03', '4:05', '0:00')
    """
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _rate(value: float, unit: str) -> str:
    return f"{value:,.2f} {unit}/s" if value < 10 else f"{value:,.0f} {unit}/s"


class StageProgress:
    """Stages open tasks on it: rich bars (finished bars stay visible as a log) on a terminal,
    plain lines otherwise (`plain` forces either; `clock` and `interval` are for tests)."""

    def __init__(self, console: Console, *, plain: bool | None = None, clock: Callable[[], float] = time.monotonic,
                 interval: float = PLAIN_INTERVAL):
        self._console = console
        self._plain = not console.is_terminal if plain is None else plain
        self._clock, self._interval = clock, interval
        self._progress = None if self._plain else Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
            TimeRemainingColumn(), console=console, transient=False, get_time=clock)

    def __enter__(self) -> StageProgress:
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def _line(self, text: str) -> None:
        self._console.log(text, markup=False, highlight=False)

    @contextlib.contextmanager
    def task(self, description: str, total: int, unit: str = "it", start: int = 0,
             keep: bool = True) -> Iterator[Callable[[int], None]]:
        """Yield an `advance(n, note="")` callback for a stage of `total` items, `start` of them
        done before (a resumed training): counted as done, never in the rate. `keep=False`: a
        stage that recurs (ANCE's refresh) leaves a log line on a terminal, not a finished bar."""
        if self._progress is None:
            with self._plain_task(description, total, unit, start) as advance:
                yield advance
            return
        progress = self._progress
        task_id = progress.add_task(escape(description), total=total, completed=start, rate="")  # names hold [...]
        started = self._clock()

        def advance(n: int, note: str = "") -> None:
            progress.advance(task_id, n)
            task = next(t for t in progress.tasks if t.id == task_id)  # ids outlive removed tasks; positions do not
            # The rate since the stage began, the figure the plain lines and the closing log line give
            # (rich's own `speed` is a moving window, which disagreed with them).
            speed = (task.completed - start) / task.elapsed if task.elapsed else None
            progress.update(task_id, rate=" ".join(x for x in (note, _rate(speed, unit) if speed else "") if x))

        yield advance
        progress.update(task_id, completed=total)
        if not keep:
            progress.remove_task(task_id)
            self._done(description, total - start, unit, self._clock() - started)

    @contextlib.contextmanager
    def _plain_task(self, description: str, total: int, unit: str, resumed: int) -> Iterator[Callable[[int], None]]:
        start = last = self._clock()
        state = {"done": resumed, "last": last, "tenth": resumed * 10 // total if total else 0, "note": ""}
        self._line(f"{description}: {total:,} {unit}" + (f", resuming after {resumed:,}" if resumed else ""))

        def advance(n: int, note: str = "") -> None:
            state["done"] += n
            state["note"] = note or state["note"]
            now, done = self._clock(), state["done"]
            tenth = done * 10 // total if total else 0
            if done >= total or (now - state["last"] < self._interval and tenth <= state["tenth"]):
                return
            state["last"], state["tenth"] = now, tenth
            rate = (done - resumed) / (now - start) if now > start else 0.0
            left = f", {clock_time((total - done) / rate)} left" if rate else ""
            note_ = f", {state['note']}" if state["note"] else ""
            self._line(f"{description}: {done:,}/{total:,} {unit} ({100 * done / total:.0f}%), "
                       f"{_rate(rate, unit)}{left}{note_}")

        yield advance
        self._done(description, state["done"] - resumed, unit, self._clock() - start, state["note"])

    def _done(self, description: str, fresh: int, unit: str, seconds: float, note: str = "") -> None:
        """A stage's closing line: the items it did itself, in how long, at what rate."""
        rate = f" ({_rate(fresh / seconds, unit)})" if seconds > 0 else ""
        note = f", {note}" if note else ""
        self._line(f"{description}: done, {fresh:,} {unit} in {clock_time(seconds)}{rate}{note}")

    @contextlib.contextmanager
    def spinner(self, description: str) -> Iterator[None]:
        """A stage without a count (loading a collection, training an index)."""
        if self._progress is None:
            start = self._clock()
            self._line(f"{description} ...")
            yield
            self._line(f"{description}: done in {clock_time(self._clock() - start)}")
            return
        task_id = self._progress.add_task(escape(description), total=None, rate="")
        yield
        self._progress.update(task_id, total=1, completed=1)
