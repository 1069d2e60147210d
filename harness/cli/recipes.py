"""`drbench validate` and `drbench run`: the commands that take a recipe file.

`validate` stays light (no torch) so it can gate a recipe in CI before anything heavy loads;
only `run` reaches the pipeline, and only inside the command.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from harness.cli.common import (INTERRUPTED, BackendOpt, CacheDirOpt, DeviceOpt, ForceOpt, Format, MirrorOpt, PrecisionOpt,
                                RecipeStoreOpt, SeedsOpt, ShardOpt, counted, err, fail, out, print_leaderboard,
                                run_options, warn)
from harness.errors import DrbenchError, RunsFailed

if TYPE_CHECKING:
    from harness.pipeline import RunOptions
    from harness.recipe.model import Recipe


class Executor(str, Enum):
    """Where a recipe's runs run: one after another in this process, or as Ray tasks."""

    local = "local"
    ray = "ray"


class ExplainFormat(str, Enum):
    """How `validate --explain` prints the reference: sections for a terminal, or the README's markdown."""

    text = "text"
    markdown = "markdown"


def validate(recipe: Path | None = typer.Argument(None, help="Recipe file to check."),
             explain: bool = typer.Option(False, "--explain", help="Print every recipe key, the sweep syntax and "
                                          "an example recipe, and exit."),
             format: ExplainFormat = typer.Option(ExplainFormat.text, "--format",
                                                  help="With --explain: text, or markdown (the README's "
                                                       "reference)."),
             offline: bool = typer.Option(False, "--offline",
                                          help="Only check the recipe's structure, not ids, models, indexes.")) -> None:
    """Check a recipe without running it (exit 0, or 2 with a one-line error)."""
    from harness.recipe import load_recipe, recipe_warnings

    if explain:
        from harness.api.registry import problems
        from harness.recipe.explain import explain_markdown, explain_text

        for problem in problems().values():  # the reference of the rest still prints
            warn(problem)

        # soft_wrap: a table row wrapped at the terminal width is no longer markdown; the text is
        # wrapped already, to the terminal's width
        text = explain_markdown() if format is ExplainFormat.markdown else explain_text(out.width)
        out.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    if recipe is None:
        raise fail("give a recipe file, or --explain for the reference")
    try:
        parsed = load_recipe(recipe)
        overlaps: tuple[str, ...] = ()
        if not offline:
            from harness.data.availability import resolve_mirror
            from harness.recipe.checks import check_dev_overlap, check_resources, overlap_warnings

            check_resources(parsed)
            check_dev_overlap(parsed, resolve_mirror(None, parsed.data.mirror), probe_timeout=0.0)
            overlaps = overlap_warnings(parsed, resolve_mirror(None, parsed.data.mirror), probe_timeout=0.0)
    except DrbenchError as exc:
        raise fail(exc) from None
    for warning in recipe_warnings(parsed) + overlaps:
        warn(warning)
    from harness.recipe import run_count

    # In recipe order: a swept variant where it is declared, once, by its first point.
    named = [v for v in parsed.variants if not v.sweep_of or v is parsed.sweeps[v.sweep_of][0]]
    kinds = ", ".join(f"{v.sweep_of or v.name} ({v.kind}" + (f", {len(parsed.sweeps[v.sweep_of])} sweep points"
                                                              if v.sweep_of else "") + ")" for v in named)
    from harness.api.registry import kind

    trains = any(kind(v.kind).trains for v in parsed.variants)
    seeds = f", trained with seeds {', '.join(map(str, parsed.seeds))}" if len(parsed.seeds) > 1 and trains else ""
    dev = f", selected on dev {parsed.data.dev}" if parsed.sweeps and parsed.selects else ""
    grid = (f"{counted(len(named), 'variant')} [{kinds}] x {counted(len(parsed.data.eval), 'collection')} x "
            f"{counted(len(parsed.eval.indexes), 'index', 'indexes')}")
    out.print(f"{recipe}: ok — {grid}{seeds}{dev}: {counted(run_count(parsed), 'run')}", highlight=False,
              markup=False, soft_wrap=True)


def run(recipe: Path = typer.Argument(..., help="Recipe file."),
        mirror: str | None = MirrorOpt, force: bool = ForceOpt, store: str | None = RecipeStoreOpt,
        cache_dir: str | None = CacheDirOpt, device: str | None = DeviceOpt, precision: str | None = PrecisionOpt,
        backend: str | None = BackendOpt, shard: str | None = ShardOpt, seeds: str | None = SeedsOpt,
        nproc: int = typer.Option(1, "--nproc", help="Processes to run on this machine through torchrun (gloo on "
                                  "the CPU, one GPU each on CUDA); for several machines run torchrun yourself "
                                  "(README)."),
        executor: Executor = typer.Option(Executor.local, "--executor",
                                          help="local: the runs one after another in this process. ray: the plan's "
                                               "tasks on Ray (pip install 'drbench\\[ray]'), each in its own process, "
                                               "after the tasks it needs; a task whose process dies is retried twice "
                                               "and resumes its training. The same numbers at the same --threads."),
        address: str | None = typer.Option(None, "--address", metavar="auto|HOST:PORT",
                                           help="--executor ray: a running Ray cluster, HOST:PORT (the head's GCS "
                                                "port) or ray://HOST:PORT; auto: whichever Ray this machine runs "
                                                "(RAY_ADDRESS, or the last `ray start`). Left out: a Ray of its own "
                                                "is started here."),
        workers: int | None = typer.Option(None, "--workers", min=1,
                                           help="--executor ray without --address: tasks at once (default: the CPUs "
                                                "this process may use, divided by --threads)."),
        threads: int | None = typer.Option(None, "--threads", min=0,
                                           help="CPU threads per process (overrides the recipe's \\[compute] threads): each Ray task "
                                                "asks for this many CPUs (default 1 there; torch's own choice in "
                                                "one process).")) -> None:
    """Train and evaluate every variant of RECIPE, store the results, print the leaderboard."""
    from harness.pipeline import run_recipe, store_path  # imports torch: only here
    from harness.recipe import load_recipe, recipe_warnings
    from harness.world import RankError, World

    world = World.from_env()
    try:
        parsed = load_recipe(recipe)
        options = run_options(mirror, force, store, cache_dir, device, precision, shard, backend, seeds,
                              threads=threads)
        on = None
        if executor is Executor.ray:
            from harness.pipeline.ray_executor import RayExecutor, check_ray

            if nproc != 1:
                raise fail("--nproc and --executor ray: each Ray task is one process; leave --nproc out")
            if workers is not None and address is not None:
                raise fail("--workers sizes the local Ray this run starts; with --address the cluster's own "
                           "resources decide (leave --workers out)")
            check_ray(address)
            on = RayExecutor(address, workers)
        elif address is not None or workers is not None:
            raise fail(f"{'--address' if address is not None else '--workers'} goes with --executor ray")
        if nproc != 1 and world.size == 1:
            if options.seeds is not None:  # a seed the recipe lacks stops before any process starts
                from harness.recipe.seed_subset import only_seeds

                only_seeds(parsed, options.seeds)
            _launch(nproc, parsed, options, [str(recipe)] + _passed_on(options))
            return  # the launched rank 0 warns
        for warning in recipe_warnings(parsed) if world.main else ():
            warn(warning)
        run_recipe(parsed, options, err, on)
        if world.main:
            print_leaderboard(str(store_path(parsed, options)), parsed.experiment.name, None, Format.table)
    except RankError:
        raise typer.Exit(2) from None  # rank 0 hit it and prints it; one line, not one per process
    except RunsFailed as exc:
        raise fail(exc, 1) from None
    except DrbenchError as exc:
        raise fail(f"process {world.rank}: {exc}" if world.size > 1 and not world.main else exc) from None
    except KeyboardInterrupt:
        raise fail(INTERRUPTED, 130) from None


def _passed_on(options: RunOptions) -> list[str]:
    """The command-line options the launched processes get (everything but --nproc)."""
    flags = {"mirror": "--mirror", "store": "--store", "cache_dir": "--cache-dir", "device": "--device",
             "precision": "--precision", "backend": "--backend"}
    args = [x for name, flag in flags.items() if (value := getattr(options, name)) is not None for x in (flag, value)]
    if options.shard is not None:
        args += ["--shard", f"{options.shard[0]}/{options.shard[1]}"]
    if options.seeds is not None:
        args += ["--seeds", ",".join(map(str, options.seeds))]
    if options.threads is not None:
        args += ["--threads", str(options.threads)]
    return args + (["--force"] if options.force else [])


def _launch(nproc: int, recipe: Recipe, options: RunOptions, args: list[str]) -> None:
    """Run `drbench run ARGS` as `nproc` processes with torchrun's own launcher (standalone:
    one machine, a free port), after checking what can be checked here: a bad --nproc, device or
    precision stops before any process starts."""
    import logging
    import os

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run as torchrun

    from harness.model.compute import resolve_compute
    from harness.recipe.checks import check_processes
    from harness.world import World

    if nproc < 1:
        raise fail(f"--nproc {nproc}: give at least 1 process")
    device = options.device or recipe.compute.device
    precision = options.precision or recipe.compute.precision
    backend = options.backend or recipe.compute.backend
    try:
        resolve_compute(device, precision, world=World(0, nproc, 0, nproc), device_label=f"--nproc {nproc} with "
                        f"device {device}", precision_label=f"precision {precision}", backend=backend,
                        backend_label=f"backend {backend}")
        check_processes(recipe, nproc)
    except DrbenchError as exc:
        raise fail(exc) from None
    # The launcher's own INFO/WARNING lines (rendezvous, "closing signal SIGTERM") would bury the
    # one line a failing process printed.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.ERROR)
    # torchrun gives each process 1 thread (with a warning) unless told; share the cores out instead.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    launch = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "harness", "run",
                                           *args])
    try:
        torchrun(launch)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode == 2:
            raise typer.Exit(2) from None  # a drbench error: the process printed its one line
        code = failure.exitcode if failure.exitcode in (1, 130) else 1
        raise fail(f"process {rank} of {nproc} stopped (exit {failure.exitcode}); the run stopped on every "
                   "process, completed runs are stored", code) from None
