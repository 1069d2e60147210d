"""One task of a parallel run (`drbench run --executor ray`), in the process that runs it.

A task is some runs of the plan (:mod:`harness.recipe.tasks`). Its process makes them exactly as
`drbench run` makes them (:func:`harness.pipeline.run.execute`, the same seeds, the same caches),
into a store of its own (:mod:`harness.store.task_store`) that the driver then lands in the
recipe's store. Everything a task leaves is in its folder: `pid` (the process making it, written
first: the driver's "started" lines read it), `log.txt` (what `drbench run` would print, and the
traceback of an error), `store.db` and `seeded` (the highest run id it was seeded with: the runs
above it are the task's, landed even when a later run of the task fails).

A sweep's point is chosen from the store before the task runs (the task comes after the sweep's
dev runs), never inside a task: its store holds only the runs it was seeded with.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from harness.data.catalog import ensure_available
from harness.data.local.declared import declare
from harness.data.quiet import quiet_ir_datasets
from harness.evaluate.numba_cache import use_numba_cache
from harness.model.compute import resolve_compute
from harness.pipeline.models import Models
from harness.pipeline.run import Context, Outcome, RunOptions, choose, dev_collection, execute
from harness.progress import LogFileConsole, StageProgress
from harness.recipe.model import read_collections
from harness.recipe.plan import Plan, dev_collection as dev_label
from harness.recipe.tasks import Task
from harness.store import ExperimentRecord, open_store
from harness.store.task_store import seed_task_store

PID, LOG, STORE, SEEDED = "pid", "log.txt", "store.db", "seeded"


@dataclass(frozen=True)
class TaskResult:
    """What a finished task hands the driver: its store, the highest run id it was seeded with
    (its own runs are above), and its outcomes."""

    task: str
    store: Path
    seeded: int
    outcomes: list[Outcome] = field(default_factory=list)


@dataclass(frozen=True)
class TaskSetup:
    """What every task of one parallel run shares."""

    options: RunOptions
    experiment: ExperimentRecord
    folder: Path  # each task's folder is folder / task id
    seed_store: Path  # the recipe's store as the run found it (task_store.seed_task_store)
    cache_dir: Path
    mirror: Path | None
    device: str  # resolved by the driver: every task runs where `drbench run` would
    precision: str
    threads: int
    backend: str = "torch"


def run_task(task: Task, setup: TaskSetup, *before: TaskResult) -> TaskResult:
    """Make `task`'s runs after the tasks whose results are `before`."""
    folder = setup.folder / task.id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PID).write_text(f"{os.getpid()}\n")
    use_numba_cache(setup.cache_dir)  # a fresh process: ranx's compiled functions from the run's cache
    if setup.threads:
        import torch

        torch.set_num_threads(setup.threads)
    store = folder / STORE
    seeded = seed_task_store(store, setup.seed_store, setup.experiment.name,
                             [(result.store, result.seeded) for result in before])
    (folder / SEEDED).write_text(f"{seeded}\n")  # a failed task's finished runs are landed still
    recipe = task.part.recipe
    declare(recipe.collections)  # what loading the recipe did in the driver: this process resolves its names alike
    outcomes: list[Outcome] = []
    with open(folder / LOG, "a", encoding="utf-8") as log:
        console = LogFileConsole(file=log, width=160)
        console.log(f"{task.id} (pid {os.getpid()}): {task.label}")
        try:
            _make(task, setup, store, console, outcomes)
        except BaseException:
            console.print(traceback.format_exc(), markup=False, highlight=False)  # the whole story, where the line points
            raise
    return TaskResult(task.id, store, seeded, outcomes)


def _make(task: Task, setup: TaskSetup, store: Path, console: LogFileConsole, outcomes: list[Outcome]) -> None:
    recipe = task.part.recipe
    compute = resolve_compute(setup.device, setup.precision, backend=setup.backend)
    with quiet_ir_datasets():  # the driver checked them; a machine of a cluster may still need them copied
        for dataset_id in read_collections(recipe.data):
            ensure_available(dataset_id, setup.mirror)
    db = open_store(store)
    try:
        with StageProgress(console) as progress:
            models = Models(recipe, setup.cache_dir, progress, console, setup.mirror, db, setup.experiment.name,
                            compute)
            ctx = Context(recipe, setup.options, models, db, setup.experiment, outcomes)
            if task.trains and task.part.phase("dev") and task.runs[0].phase != "dev":
                models.dev = dev_collection(ctx, setup.mirror)  # as `drbench run` has it by then (eval_every)
            later = dict.fromkeys(name for run in task.runs for name in run.later)
            chosen = {name: choose(ctx, str(dev_label(recipe)), name) for name in later}
            execute(ctx, Plan(recipe, task.runs), setup.mirror, chosen)
    finally:
        db.close()
