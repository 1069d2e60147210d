"""`drbench run RECIPE --executor ray`: the plan's tasks as Ray tasks, the store written here alone.

drbench schedules nothing itself. Every task (:mod:`harness.recipe.tasks`) whose runs are not all
stored is submitted at once, with the tasks it comes after as its arguments, so Ray starts it when they have finished and
hands it their results; each asks for what it needs (a GPU on CUDA, else `threads` CPUs; a
BM25 task one CPU). A task runs in a fresh process (`max_calls=1`: nothing of one run lingers into
the next, as nothing does between two `drbench run`s) and writes a store of its own
(:mod:`harness.pipeline.task`); as each finishes, the driver lands its runs in the recipe's store,
one transaction per run. Caches are the recipe's cache folder, shared by every task: the cache
publishes by rename, so concurrent tasks never see half an entry.

A task whose process dies (killed, out of memory, its machine gone) is retried, `RETRIES` times,
and resumes its training from the checkpoint in the shared cache. A task that raises is not
retried: the same inputs fail the same way. The runs it finished are landed, each other run is
reported in one line (its traceback is in the task's log), the tasks after it are not run, and
every other task finishes; a re-run makes only what is missing.

On a cluster, the store's folder, the cache folder, the recipe and its declared files must be on
a filesystem every machine sees at the same path (README, "Many runs at once").
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.errors import DrbenchError, RecipeError, RunsFailed
from harness.model.compute import Compute
from harness.pipeline.run import Outcome, RunOptions, announce_choice, metrics_line
from harness.pipeline.selection import select_point
from harness.pipeline.task import LOG, PID, SEEDED, STORE, TaskResult, TaskSetup, run_task
from harness.recipe.plan import Plan, dev_collection
from harness.recipe.tasks import Task, plan_tasks
from harness.store import ExperimentRecord
from harness.store.task_store import land, seed_task_store

RETRIES = 2  # a task whose process died is started again this many times
CONNECT_TIMEOUT = 5.0  # seconds a Ray address gets to answer before the run stops


def check_ray(address: str | None) -> None:
    """Before any work: Ray is installed, and the cluster at `address` (None: one started here) answers."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise RecipeError("--executor ray needs Ray: pip install 'drbench[ray]' (or pip install ray)") from None
    if address is None:
        return
    label = f"--address {address}"
    if address == "auto":
        if (address := _auto_address()) is None:
            return
        label = f"--address auto (found {address})"
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RecipeError(f"{label}: write HOST:PORT (the head's GCS port, 6379 by default), "
                          "ray://HOST:PORT, or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise RecipeError(f"{label}: no Ray cluster answers there within {CONNECT_TIMEOUT:.0f} s "
                          f"({exc.strerror or exc}); start one (ray start --head) or leave --address out to start "
                          "one on this machine") from None


def _auto_address() -> str | None:
    """The address `--address auto` means, found as `ray.init` finds it: RAY_ADDRESS when it names
    one (HOST:PORT or a Ray Client ray://HOST:PORT, checked like --address), else the cluster a
    `ray start` left on this machine, so that finding none is one line before the store or the cache
    is created. None: this Ray keeps that search elsewhere (the helper is private), and `ray.init`
    will say."""
    if (named := os.environ.get("RAY_ADDRESS", "").strip()) and named != "auto":
        return named
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:
        return None
    try:
        return canonicalize_bootstrap_address("auto")
    except (ConnectionError, ValueError):
        raise RecipeError("--address auto: no running Ray found here (RAY_ADDRESS names none and no `ray start` "
                          "cluster runs on this machine); start one (ray start --head), name one with --address "
                          "HOST:PORT, or leave --address out to start one for this run") from None


@dataclass(frozen=True)
class RayExecutor:
    """`--executor ray`: on the cluster at `address` ("auto", HOST:PORT), or on a Ray started here
    with `workers` tasks at once (None: the CPUs this process may use over the threads per task)."""

    address: str | None = None
    workers: int | None = None

    def __call__(self, plan: Plan, options: RunOptions, store: Path, db: Any, experiment: ExperimentRecord,
                 cache_dir: Path, mirror: Path | None, compute: Compute, console: Console) -> list[Outcome]:
        """Run `plan`'s tasks on Ray, landing each in `db` (the store at `store`) as it finishes."""
        import ray

        check_ray(self.address)
        tasks = plan_tasks(plan)
        if not tasks:
            return []
        threads = options.threads or plan.recipe.compute.threads or 1
        workers = self.workers or max(1, len(os.sched_getaffinity(0)) // threads)  # a job's allowance, not the node's
        # A task whose runs are all stored starts no process: the recipe's store, which seeds every
        # task after it, holds them.
        stored = set() if options.force else _stored(plan, store, cache_dir, mirror, compute, console)
        todo = [t for t in tasks if not all(r.id in stored for r in t.runs)]
        if todo:  # connected (or refused in one line) before anything is written
            self._connect(ray, workers * threads, console)
        try:
            if todo:
                _check_feasible(ray, todo, threads, compute.device)
            folder = store.with_name(f"{store.name}.ray")
            shutil.rmtree(folder, ignore_errors=True)  # a failed run's logs: this run makes its own
            folder.mkdir(parents=True)
            setup = TaskSetup(options, experiment, folder, folder / "seed.db", cache_dir, mirror, compute.device,
                              compute.precision, threads, compute.backend)
            seed_task_store(setup.seed_store, store, experiment.name)
            progress = _Progress(console, sum(len(t.runs) for t in tasks), folder)
            outcomes = [o for t in tasks if t not in todo for o in progress.skipped(t)]
            if todo:
                with _sigterm_as_interrupt():
                    outcomes += _submit_and_land(ray, todo, setup, db, experiment, compute, console, progress)
        finally:
            if todo:
                ray.shutdown()
        for landed in folder.rglob("*.db*"):  # landed, failed tasks' finished runs too; every log.txt stays
            landed.unlink()
        if progress.failed_runs:
            raise RunsFailed(f"{progress.failed_runs} of {progress.total} runs failed (each named above; logs in "
                             f"{folder}); the others are stored, and a re-run makes only what is missing")
        return outcomes

    def _connect(self, ray: Any, cpus: int, console: Console) -> None:
        import logging

        quiet = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True}
        if self.address is None:  # "local": a Ray of its own, whatever RAY_ADDRESS or a `ray start` here says
            console.log(f"ray: starting a local Ray with {cpus} CPUs")
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, **quiet)
            return
        try:
            ray.init(address=self.address, **quiet)
        except ConnectionError as exc:
            raise RecipeError(f"--address {self.address}: {str(exc).splitlines()[0]}") from None
        resources = ray.cluster_resources()
        console.log(f"ray: connected to {self.address} ({resources.get('CPU', 0):.0f} CPUs, "
                    f"{resources.get('GPU', 0):.0f} GPUs)")


def _check_feasible(ray: Any, tasks: list[Task], threads: int, device: str) -> None:
    """A task no node can run would wait forever (Ray calls it infeasible): one line instead, before any starts."""
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    for task in tasks:
        needs = _resources(task, threads, device)
        if not any(all(node.get(_RAY_NAMES[k], 0) >= v for k, v in needs.items()) for node in nodes):
            largest = max((node.get("CPU", 0) for node in nodes), default=0)
            raise RecipeError(f"no node of the Ray cluster has {needs.get('num_cpus', 0)} CPUs"
                              + (" and a GPU" if needs.get("num_gpus") else "")
                              + f" for {task.label} (the largest has {largest:.0f} CPUs); lower --threads or "
                                "[compute] threads, or run where the device is")


_RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU"}


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's time limit, `scancel`) stops the run as Ctrl-C does: the finished runs
    are stored, one line says so, exit 130; not Ray's own signal dump."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _stored(plan: Plan, store: Path, cache_dir: Path, mirror: Path | None, compute: Compute,
            console: Console) -> set[str]:
    """The ids of the plan's runs the store holds with their current key (`drbench plan`'s
    "stored"): tasks made only of them start no process."""
    from harness.pipeline.plan_status import STORED, plan_status

    try:
        return {p.spec.id for p in plan_status(plan, store, cache_dir, mirror, compute.device, compute.precision,
                                               compute.backend)
                if p.status == STORED}
    except DrbenchError as exc:  # every task then starts, and finds out for itself
        console.log(f"ray: cannot tell which runs are stored before starting ({exc}); every task starts")
        return set()


def _submit_and_land(ray: Any, tasks: list[Task], setup: TaskSetup, db: Any, experiment: ExperimentRecord,
                     compute: Compute, console: Console, progress: _Progress) -> list[Outcome]:
    remote = ray.remote(max_calls=1, max_retries=RETRIES, retry_exceptions=False)(run_task)
    env = {"env_vars": {name: str(setup.threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    outcomes: list[Outcome] = []
    refs: dict[str, Any] = {}
    pending: dict[Any, Task] = {}
    for task in tasks:
        needs = _resources(task, setup.threads, compute.device)
        before = (refs[t] for t in task.after if t in refs)
        ref = remote.options(**needs, runtime_env=env, name=task.id).remote(task, setup, *before)
        refs[task.id] = ref
        pending[ref] = task
    failed_tasks: dict[str, Task] = {}
    sweeps = _sweep_watch(tasks)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        progress.poll(pending.values())
        for ref in ready:
            task = pending.pop(ref)
            try:
                result: TaskResult = ray.get(ref)
            except Exception as exc:  # noqa: BLE001: one line per run, whatever the task raised
                failed_tasks[task.id] = task
                done = _land_finished(db, experiment, setup.folder / task.id, task.part.recipe.eval.metrics)
                outcomes += done
                progress.failed(task, _reason(exc, task, failed_tasks), done)
                continue
            landed = land(db, experiment, result.store, result.seeded)
            stored = {(run.variant, run.collection, run.index_factory, run.seed): run_id for run, run_id in landed}
            for outcome in result.outcomes:
                if outcome.status == "done":
                    outcome.run_id = stored.get((outcome.variant, outcome.collection, outcome.index, outcome.seed))
                outcomes.append(outcome)
            progress.finished(task, result.outcomes)
            for name in sweeps.pop(task.id, ()):
                _announce(db, task.part, name, console)
    return outcomes


def _land_finished(db: Any, experiment: ExperimentRecord, folder: Path, metrics: tuple[str, ...]) -> list[Outcome]:
    """Land the runs a failed task stored before it failed (none if it never got that far); their
    outcomes, with `metrics` in the recipe's order."""
    try:
        seeded = int((folder / SEEDED).read_text())
    except (OSError, ValueError):
        return []
    return [Outcome(run.variant, run.collection, run.index_factory, "done", run.seed, run_id,
                    {m: run.metrics[m] for m in metrics if m in run.metrics}, run.timings)
            for run, run_id in land(db, experiment, folder / STORE, seeded)]


def _resources(task: Task, threads: int, device: str) -> dict[str, int]:
    """What a task asks Ray for: a sparse ranking one CPU (it runs single-threaded); a dense one,
    which encodes and may train, one GPU on CUDA, and `threads` CPUs."""
    from harness.api.registry import kind

    if all(kind(run.kind).family == "sparse" for run in task.runs):
        return {"num_cpus": 1}
    return {"num_cpus": threads, **({"num_gpus": 1} if device.startswith("cuda") else {})}


def _sweep_watch(tasks: list[Task]) -> dict[str, list[str]]:
    """Task id -> the sweeps whose last dev run it makes (their choice is announced when it lands)."""
    last: dict[str, str] = {}
    for task in tasks:
        for run in task.runs:
            if run.phase == "dev" and run.sweep and task.part.recipe.selects:
                last[run.sweep] = task.id
    out: dict[str, list[str]] = {}
    for name, task_id in last.items():
        out.setdefault(task_id, []).append(name)
    return out


def _announce(db: Any, part: Plan, name: str, console: Console) -> None:
    """The driver's one line on a sweep's choice, as `drbench run` prints it (tasks choose the same)."""
    recipe, dev = part.recipe, str(dev_collection(part.recipe))
    try:
        point, record = select_point(db, recipe, dev, name)
    except DrbenchError:
        return  # a dev run failed: the tasks after it say so
    announce_choice(console, recipe, dev, name, point, record)


def _reason(exc: BaseException, task: Task, failed: dict[str, Task]) -> str:
    """One line on why `task` failed."""
    import ray.exceptions as errors

    if before := [failed[t].label for t in task.after if t in failed]:
        return f"not run: it comes after {'; '.join(before)}, which failed"
    if isinstance(exc, errors.RayTaskError):
        cause = exc.cause if exc.cause is not None else exc
        text = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {text[-1] if text else ''}" if not isinstance(cause, DrbenchError) \
            else text[0]
    if isinstance(exc, (errors.WorkerCrashedError, errors.NodeDiedError, errors.OutOfMemoryError)):
        return f"its process died {RETRIES + 1} times ({type(exc).__name__})"
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


class _Progress:
    """One line per run started, finished or failed, with runs done / total (terminal and log alike)."""

    def __init__(self, console: Console, total: int, folder: Path) -> None:
        self.console, self.total, self.folder = console, total, folder
        self.done = self.failed_runs = 0
        self.pids: dict[str, str] = {}
        self.started_at: dict[str, float] = {}

    def _line(self, text: str) -> None:
        width = len(str(self.total))
        self.console.log(f"[{self.done + self.failed_runs:>{width}}/{self.total}] {text}")

    def poll(self, running: Any) -> None:
        """A "started" line for each task whose process has written its pid since the last poll
        (again, with its new pid, for a task started again after its process died)."""
        for task in running:
            try:
                pid = (self.folder / task.id / PID).read_text().strip()
            except OSError:
                continue
            if self.pids.get(task.id) == pid:
                continue
            again = task.id in self.pids
            self.pids[task.id] = pid
            self.started_at.setdefault(task.id, time.monotonic())
            for run in task.runs:
                self._line(f"{'started again' if again else 'started'} {escape(run.id)} ({task.id}, pid {pid})")

    def finished(self, task: Task, outcomes: list[Outcome]) -> None:
        self.poll([task])
        seconds = time.monotonic() - self.started_at.get(task.id, time.monotonic())
        status = {(o.variant, o.collection, o.index, o.seed): o for o in outcomes}
        for run in task.runs:
            self.done += 1
            outcome = status.get((run.variant, run.collection, run.index, run.seed))
            if outcome is None:
                self._line(f"[green]done[/green] {escape(run.id)}")
            elif outcome.status == "skipped":
                self._line(f"[dim]skipped {escape(run.id)}: already in the store[/dim]")
            else:
                shown = metrics_line(outcome.metrics)
                self._line(f"[green]done[/green] {escape(run.id)}: {shown} ({task.id}, {seconds:.0f}s)")

    def skipped(self, task: Task) -> list[Outcome]:
        """Lines for a task whose runs are all stored; their outcomes."""
        for run in task.runs:
            self.done += 1
            self._line(f"[dim]skipped {escape(run.id)}: already in the store (--force re-runs)[/dim]")
        return [Outcome(run.variant, run.collection, run.index, "skipped", run.seed) for run in task.runs]

    def failed(self, task: Task, reason: str, finished: list[Outcome]) -> None:
        """A line per run of a failed task: done for those it `finished` (and were landed), failed for the rest."""
        log = self.folder / task.id / LOG
        done = {(o.variant, o.collection, o.index, o.seed): o for o in finished}
        for run in task.runs:
            if outcome := done.get((run.variant, run.collection, run.index, run.seed)):
                self.done += 1
                shown = metrics_line(outcome.metrics)
                self._line(f"[green]done[/green] {escape(run.id)}: {shown} ({task.id}, before the task failed)")
                continue
            self.failed_runs += 1
            where = f" (log: {log})" if log.exists() else ""
            self._line(f"[red]failed[/red] {escape(run.id)}: {escape(reason)}{escape(where)}")
