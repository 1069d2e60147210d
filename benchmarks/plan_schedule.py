"""A recipe's plan on W workers, on paper: what `--executor ray` could gain on a machine or cluster
with more devices than this one.

Each task of the plan (harness.recipe.tasks) costs what `drbench plan` says it does (documents
and queries to encode, training steps x batch), in seconds at given rates; the tasks are started
as Ray starts them: in plan order, each as soon as the tasks before it have finished and a worker
is free. Prints the wall time for each worker count, its ratio to one process making every run
(`drbench run`, which starts no process per task), and the critical path (the wall time with
unlimited workers); `--task-overhead` adds what each task's own process costs before its work. The ratios depend only on the rates' proportions,
not on the hardware's speed: a GPU that encodes and trains k times faster divides every wall
time by k and leaves the ratios as they are.

    .venv/bin/python benchmarks/plan_schedule.py recipes/scifact_seeds.toml --docs-per-s 26 \\
        --examples-per-s 10 --queries-per-s 60 --workers 1,2,4,8
"""

from __future__ import annotations

import argparse
import heapq
import tempfile
from pathlib import Path

from harness.data.availability import resolve_mirror
from harness.pipeline.plan_status import plan_status
from harness.recipe import load_recipe
from harness.recipe.plan import build_plan
from harness.recipe.tasks import Task, plan_tasks


def task_seconds(tasks: list[Task], costs: dict[str, object], docs_s: float, examples_s: float,
                 queries_s: float, overhead: float = 0.0) -> dict[str, float]:
    out = {}
    for task in tasks:
        total = overhead
        for run in task.runs:
            cost = costs[run.id]
            total += (cost.docs or 0) / docs_s + (cost.queries or 0) / queries_s  # type: ignore[attr-defined]
            total += (cost.train_steps or 0) * cost.train_batch / examples_s  # type: ignore[attr-defined]
        out[task.id] = total
    return out


def makespan(tasks: list[Task], seconds: dict[str, float], workers: int | None) -> float:
    """Wall time with `workers` (None: unlimited), tasks started in plan order when ready."""
    finished: dict[str, float] = {}
    free = [0.0] * (workers or len(tasks))
    heapq.heapify(free)
    for task in tasks:  # plan order: every task after the ones it needs
        ready = max((finished[t] for t in task.after), default=0.0)
        worker = heapq.heappop(free)
        start = max(worker, ready)
        finished[task.id] = start + seconds[task.id]
        heapq.heappush(free, finished[task.id])
    return max(finished.values(), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--docs-per-s", type=float, required=True, help="corpus encoding rate")
    parser.add_argument("--examples-per-s", type=float, required=True, help="training examples (steps x batch) per s")
    parser.add_argument("--queries-per-s", type=float, required=True, help="query encoding rate")
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--task-overhead", type=float, default=0.0,
                        help="seconds a task's process spends before its work (start, imports, loading)")
    parser.add_argument("--mirror")
    args = parser.parse_args()
    recipe = load_recipe(Path(args.recipe))
    plan = build_plan(recipe)
    scratch = Path(tempfile.mkdtemp(prefix="plan-schedule-"))
    planned = plan_status(plan, scratch / "none.db", scratch / "cache", resolve_mirror(args.mirror, None))
    costs = {p.spec.id: p.cost for p in planned}
    tasks = plan_tasks(plan)
    seconds = task_seconds(tasks, costs, args.docs_per_s, args.examples_per_s, args.queries_per_s)
    one = makespan(tasks, seconds, 1)  # the local executor: one process, no per-task start
    seconds = task_seconds(tasks, costs, args.docs_per_s, args.examples_per_s, args.queries_per_s, args.task_overhead)
    print(f"{args.recipe}: {len(plan)} runs in {len(tasks)} tasks; one worker {one / 60:.0f} min at these rates")
    print("| workers | wall | x one process |\n|---:|---:|---:|")
    for workers in [int(w) for w in args.workers.split(",")] + [None]:
        wall = makespan(tasks, seconds, workers)
        print(f"| {workers or 'unlimited (critical path)'} | {wall / 60:.0f} min | {one / wall:.2f}x |")


if __name__ == "__main__":
    main()
