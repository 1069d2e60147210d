"""Periodic actions of the training loop: what runs between optimizer steps, told the step number.

A :class:`Hook` runs after every `every`-th optimizer step (and, if it says so, once before the
first and once after the last). The loop calls it with `step`, the number of optimizer steps
taken so far, the same count a strategy's step function is given: a hook run at `step` s has
run before the step function sees s. What it returns joins the log row of step s (a hook run
before the first step, at step 0, joins step 1's row). Dev scores (`eval_every`) are one; a
strategy declares its own in :meth:`harness.train.strategy.Strategy.hooks` (ANCE: re-encode the
corpus and redraw negatives every N steps).

Resume: after the hooks of step s the loop may save a checkpoint holding each hook's
:meth:`~Hook.state`; a run resumed from it loads that state back (:meth:`~Hook.load`) and goes
on from step s + 1 without calling the hooks of step s again, so it logs and trains exactly what
the uninterrupted run would. A hook's randomness should therefore come from the seed and the step
(`np.random.default_rng([seed, step])`), or live in its state.

Several processes: every rank calls every hook, in the same order, at the same steps (collective
work such as re-encoding the corpus happens on all of them); only rank 0 writes checkpoints.

Torch-free at import, like the strategies that declare hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    import torch

    from harness.progress import StageProgress


class Hook:
    """A periodic action; subclasses set the attributes and implement :meth:`run`.

    `name`: its key in checkpoints, unique among a run's hooks. `every`: run after every
    `every`-th optimizer step (0: only at the start or end). `at_start`: also run once before the
    first step, at step 0 (ANCE refreshes its negatives before training). `at_end`: also run after
    the last step, whatever `every` says.

    :meth:`state` is what a resumed run needs to go on as if never stopped: tensors, plain numbers,
    strings, and lists and dicts of them (checkpoints load with `torch.load(weights_only=True)`;
    numpy arrays and arbitrary objects are refused, so convert them to tensors). The loop runs a
    due hook with the model in eval mode and gradients off, and puts it back into training after.
    """

    name: str = "hook"
    every: int = 0
    at_start: bool = False
    at_end: bool = False
    # A hook that takes long (ANCE re-encodes the corpus) names what it does here; the loop then
    # shows it as a stage of the training's progress ("<label>: <announce> after step s") and
    # calls `run(step, advance)`, `advance(n)` counting the `work()` items it gets through.
    announce: str = ""

    def due(self, step: int, total: int) -> bool:
        """Whether the hook runs after `step` of `total` optimizer steps (0: before the first)."""
        if step == 0:
            return self.at_start
        return (self.every > 0 and step % self.every == 0) or (self.at_end and step == total)

    def run(self, step: int) -> dict[str, Any] | None:
        """Do the action after `step` optimizer steps; what it returns joins that step's log row
        (plain numbers, strings, lists and dicts: the log is stored as JSON and kept in checkpoints).
        An announced hook's run also takes `advance` (see :attr:`announce`)."""
        raise NotImplementedError

    def work(self) -> tuple[int, str]:
        """(items, unit) an announced hook's run counts with `advance`; (0, ""): it shows a spinner."""
        return 0, ""

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of this hook (empty: nothing, the default)."""
        return {}

    def load(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state` gave (from a checkpoint; `{}` when it saved nothing)."""


def run_due(hooks: Sequence[Hook], step: int, total: int, model: torch.nn.Module, row: dict[str, Any],
            progress: StageProgress | None = None, label: str = "") -> None:
    """Run the `hooks` due after `step`, in order, each adding what it returns to the log `row`
    (a later hook, the checkpoint, sees what the earlier ones added). A key the row already has is
    an error rather than a silent overwrite. An announced hook runs as a stage of `progress`,
    named after `label` (the training's)."""
    due = [hook for hook in hooks if hook.due(step, total)]
    if not due:
        return
    import torch

    model.eval()
    try:
        with torch.no_grad():
            for hook in due:
                join(row, _run(hook, step, progress, label) or {}, f"hook {hook.name!r} at step {step}")
    finally:
        model.train()


def _run(hook: Hook, step: int, progress: StageProgress | None, label: str) -> dict[str, Any] | None:
    if not hook.announce:
        return hook.run(step)
    if progress is None:
        return hook.run(step, ignore)  # type: ignore[call-arg]
    description = f"{label}: {hook.announce} after step {step}" if step else f"{label}: {hook.announce}"
    items, unit = hook.work()
    if not items:
        with progress.spinner(description):
            return hook.run(step, ignore)  # type: ignore[call-arg]
    with progress.task(description, items, unit, keep=False) as advance:
        return hook.run(step, advance)  # type: ignore[call-arg]


def ignore(n: int) -> None:
    """An `advance` that shows nothing."""


def join(row: dict[str, Any], values: dict[str, Any], who: str) -> None:
    """Add `values` to the log `row`; a key it already has is an error, never overwritten."""
    for key, value in values.items():
        if key in row:
            raise ValueError(f"{who} logs {key!r}, which the log row already has")
        row[key] = value


def check_names(hooks: Sequence[Hook]) -> None:
    """Before the first step: refuse two hooks of one name (their states would share one
    checkpoint entry), and an announced hook whose `run` cannot take `advance` (it would fail at
    its first call, perhaps hours in)."""
    import inspect

    names = [hook.name for hook in hooks]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"training hooks must have distinct names (their checkpoint keys); twice: {twice}")
    for hook in hooks:
        if not hook.announce:
            continue
        try:
            inspect.signature(hook.run).bind(0, ignore)
        except TypeError:
            raise ValueError(f"training hook {hook.name!r} sets announce = {hook.announce!r}, so the loop calls "
                             "run(step, advance); give its run an `advance` argument, or drop announce") from None


class DevScores(Hook):
    """`eval_every`: the dev scores of the model as it is, every `every` steps and after the last.

    Scoring runs in eval mode without gradients and touches none of the seeded sampling, so the
    weights trained are the same with and without it. With `keep`, the weights of the best first
    score are copied (and kept in the checkpoint); after the last step they are put back into
    `model` and the row says which step they are from (`kept_step`).
    """

    name = "dev"
    at_end = True

    def __init__(self, model: torch.nn.Module, score: Callable[[], dict[str, float]], every: int, total: int,
                 keep: bool) -> None:
        self.model, self.score, self.every, self.total, self.keep = model, score, every, total, keep
        self.best: dict[str, Any] | None = None  # {"step", "score", "model"} of the best first score so far

    def run(self, step: int) -> dict[str, Any]:
        values = self.score()
        first = next(iter(values.values()), None)
        if self.keep and first is not None and (self.best is None or first > self.best["score"]):
            weights = {name: t.detach().to("cpu", copy=True) for name, t in self.model.state_dict().items()}
            self.best = {"step": step, "score": first, "model": weights}
        if step == self.total and self.keep and self.best is not None:
            self.model.load_state_dict(self.best["model"])
            return {**values, "kept_step": self.best["step"]}
        return values

    def state(self) -> dict[str, Any]:
        return {"best": self.best} if self.best is not None else {}

    def load(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
