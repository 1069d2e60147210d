"""Progress without a terminal: plain lines at the start, every 30 s or 10%, and at the end."""

from __future__ import annotations

import io

from rich.console import Console

from harness.progress import StageProgress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain_lines(console: Console) -> list[str]:
    return [line.strip() for line in console.file.getvalue().splitlines() if line.strip()]


def logged(total: int, seconds_per_item: float, unit: str = "docs") -> list[str]:
    console = Console(file=io.StringIO(), width=200, log_time=False, log_path=False)
    clock = Clock()
    with StageProgress(console, clock=clock) as progress:
        with progress.task("zero-shot: encoding corpus", total, unit) as advance:
            for _ in range(total):
                clock.now += seconds_per_item
                advance(1)
    return plain_lines(console)


def test_without_a_terminal_a_fast_stage_prints_every_tenth() -> None:
    lines = logged(100, 1.0)
    assert lines[0] == "zero-shot: encoding corpus: 100 docs"
    assert lines[1] == "zero-shot: encoding corpus: 10/100 docs (10%), 1.00 docs/s, 1:30 left"
    assert len(lines) == 11 and lines[9].startswith("zero-shot: encoding corpus: 90/100 docs (90%)")
    assert lines[-1] == "zero-shot: encoding corpus: done, 100 docs in 1:40 (1.00 docs/s)"


def test_without_a_terminal_a_slow_stage_prints_every_30_seconds() -> None:
    lines = logged(1000, 5.0)
    assert lines[1] == "zero-shot: encoding corpus: 6/1,000 docs (1%), 0.20 docs/s, 1:22:50 left"
    assert lines[2].startswith("zero-shot: encoding corpus: 12/1,000 docs (1%)")
    assert lines[-1] == "zero-shot: encoding corpus: done, 1,000 docs in 1:23:20 (0.20 docs/s)"


def test_notes_and_spinners_are_plain_lines_too() -> None:
    console = Console(file=io.StringIO(), width=200, log_time=False, log_path=False)
    clock = Clock()
    with StageProgress(console, clock=clock) as progress:
        with progress.spinner("loading star[lr=2e-05]"):
            clock.now += 3
        with progress.task("star: training", 2, "steps") as advance:
            clock.now += 40
            advance(1, "loss 0.7000")
            clock.now += 40
            advance(1, "loss 0.6000")
    assert plain_lines(console) == [
        "loading star[lr=2e-05] ...", "loading star[lr=2e-05]: done in 0:03", "star: training: 2 steps",
        "star: training: 1/2 steps (50%), 0.03 steps/s, 0:40 left, loss 0.7000",
        "star: training: done, 2 steps in 1:20 (0.03 steps/s), loss 0.6000"]


def test_on_a_terminal_rich_draws_bars_instead() -> None:
    console = Console(file=io.StringIO(), width=200, force_terminal=True)
    with StageProgress(console) as progress:
        with progress.task("zero-shot: encoding corpus", 10, "docs") as advance:
            advance(10)
    text = console.file.getvalue()
    assert "10/10" in text and "docs:" not in text


def test_on_a_terminal_a_recurring_stage_leaves_a_line_not_a_bar() -> None:
    """ANCE refreshes every N steps: each refresh's bar goes once it is done, and a log line stays,
    so the live display does not outgrow the terminal."""
    console = Console(file=io.StringIO(), width=200, force_terminal=True, log_time=False, log_path=False)
    clock = Clock()
    with StageProgress(console, clock=clock) as progress:
        with progress.task("ance: training", 4, "steps") as step:
            for n in (2, 4):
                with progress.task(f"ance: refreshing negatives after step {n}", 30, "texts", keep=False) as advance:
                    clock.now += 90.0
                    advance(30)
                step(2)
        assert [task.description for task in progress._progress.tasks] == ["ance: training"]
    text = console.file.getvalue()
    assert "ance: refreshing negatives after step 2: done, 30 texts in 1:30" in text
    assert "ance: refreshing negatives after step 4: done, 30 texts in 1:30" in text


def test_on_a_terminal_the_bar_rate_is_the_rate_since_the_stage_began() -> None:
    """One rate everywhere: the bar's is done over elapsed, as the plain and closing lines give it
    (rich's moving-window speed had said 9.14 docs/s where the log said 7.1)."""
    console = Console(file=io.StringIO(), width=200, force_terminal=True)
    clock = Clock()
    with StageProgress(console, clock=clock) as progress:
        with progress.task("zero-shot: encoding corpus", 100, "docs") as advance:
            clock.now += 50.0
            advance(10)  # 10 docs in the first 50 s ...
            clock.now += 1.0
            advance(40)  # ... then 40 in one second: a window would say 40 docs/s
            rate = progress._progress.tasks[0].fields["rate"]
    assert rate == "0.98 docs/s"  # 50 docs in 51 s


def test_a_resumed_stage_counts_earlier_steps_as_done_but_not_in_the_rate() -> None:
    console = Console(file=io.StringIO(), width=200, log_time=False, log_path=False)
    clock = Clock()
    with StageProgress(console, clock=clock) as progress:
        with progress.task("star: training", 100, "steps", start=60) as advance:
            for _ in range(40):
                clock.now += 2.0
                advance(1)
    lines = plain_lines(console)
    assert lines[0] == "star: training: 100 steps, resuming after 60"
    assert lines[1] == "star: training: 70/100 steps (70%), 0.50 steps/s, 1:00 left"
    assert lines[-1] == "star: training: done, 40 steps in 1:20 (0.50 steps/s)"
