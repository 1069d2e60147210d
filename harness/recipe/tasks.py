"""The plan as tasks for an executor that runs them in parallel (`drbench run --executor ray`).

A task is the runs one process makes together: the plan's consecutive runs of one (phase,
collection, variant, seed), which share the model's encodings of that collection (a dense variant
searched with several indexes is one task, as it is one encode in `drbench run`). A task comes
after the tasks that hold the runs its runs come after (`RunSpec.after`): the run that trains the
model it evaluates, a sweep's dev runs before the point chosen from them. Runs that combine folds
(phase "folds") are not tasks: they read the store, and the driver makes them once every fold is
stored.

The tasks are in plan order, so every task comes after its dependencies: submitting them in this
order never waits on a task not yet submitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from harness.recipe.plan import Plan, RunSpec


@dataclass(frozen=True)
class Task:
    """Runs made in one process: `runs` of the plan `part` (the recipe's plan, or a fold's),
    after the tasks `after` (ids)."""

    id: str
    part: Plan
    runs: tuple[RunSpec, ...]
    after: tuple[str, ...]

    @property
    def trains(self) -> bool:
        return any(run.trains for run in self.runs)

    @property
    def label(self) -> str:
        """The runs' shared part, with their indexes: `eval/star/43/beir/scifact/test [Flat, PQ16]`."""
        first = self.runs[0]
        head = "/".join((first.phase, first.variant, str(first.seed), first.collection))
        return f"{head} [{', '.join(run.index for run in self.runs)}]"


def plan_tasks(plan: Plan) -> list[Task]:
    """`plan`'s runs as tasks, in plan order (see the module docstring).

    >>> from harness.recipe import parse_recipe
    >>> from harness.recipe.plan import build_plan
    >>> r = parse_recipe('[experiment]\\nname="x"\\n[data]\\neval=["cranfield"]\\n[eval]\\nindexes=["Flat","PQ8"]\\n'
    ...                  '[variant.bm25]\\nkind="bm25"\\n[variant.zs]\\nkind="zero-shot"\\n')
    >>> [(t.id, len(t.runs), t.after) for t in plan_tasks(build_plan(r))]
    [('task1', 1, ()), ('task2', 2, ())]
    """
    tasks: list[Task] = []
    owner: dict[str, str] = {}  # run id -> its task's id
    for part in plan.folds or (plan,):
        for _, grouped in groupby(part.runs, key=lambda run: (run.phase, run.collection, run.variant, run.seed)):
            runs = tuple(grouped)
            task_id = f"task{len(tasks) + 1}"
            after = tuple(dict.fromkeys(owner[before] for run in runs for before in run.after if before in owner))
            tasks.append(Task(task_id, part, runs, after))
            owner.update((run.id, task_id) for run in runs)
    return tasks
