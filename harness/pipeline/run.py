"""A recipe's runs: recipe -> data -> models -> encode -> index -> search -> evaluate -> store.

Each (variant, collection, index) run is written to the store in one transaction once it is
complete; a run whose stored `run_key` matches is skipped unless `force`.

Under torchrun every rank runs this: all take part in encoding and training, rank 0 alone opens
the store, searches, evaluates, writes and prints (:mod:`harness.world`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field, replace
from itertools import groupby
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape

import harness
from harness.data.availability import resolve_mirror
from harness.data.catalog import ensure_available, is_file_collection, summary
from harness.data.collection import Collection, load_collection
from harness.data.holdout import holdout_collection
from harness.dense import EXACT_DEPTH
from harness.errors import CacheError
from harness.evaluate.metrics import evaluate
from harness.evaluate.numba_cache import use_numba_cache
from harness.evaluate.ties import trec_order
from harness.index.faiss_index import codebook_key, exact_search, faiss_build, search_key
from harness.model.compute import Compute, resolve_compute
from harness.pipeline.folds import combine_folds
from harness.pipeline.models import Models
from harness.pipeline.selection import select_point
from harness.progress import StageProgress, log_console
from harness.recipe.checks import check_dev_overlap, check_processes, check_resources, overlap_warnings
from harness.recipe import plan
from harness.recipe.expand import variant_seeds
from harness.recipe.grid import grid_edges
from harness.recipe.seed_subset import only_seeds
from harness.recipe.model import Recipe, Variant, holdout_fraction, read_collections
from harness.recipe.shards import shard_of
from harness.api.registry import kind, package
from harness.store import (SPARSE_INDEX, ExperimentRecord, RunRecord, completed_run_key, drop_other_seeds,
                           environment, git_commit, open_store, package_versions, utc_now, write_run)
from harness.store.provenance import DEFAULT_PACKAGES
from harness.world import World



@dataclass(frozen=True)
class RunOptions:
    """What the command line adds to a recipe."""

    mirror: str | None = None
    force: bool = False
    store: str | None = None
    cache_dir: str | None = None
    device: str | None = None  # over [compute] device
    precision: str | None = None  # over [compute] precision
    backend: str | None = None  # over [compute] backend
    shard: tuple[int, int] | None = None  # (I, N): only shard I of N of the plan (harness.recipe.shards)
    threads: int | None = None  # over [compute] threads
    seeds: tuple[int, ...] | None = None  # only these of the recipe's seeds; the others' stored runs stay


@dataclass
class Outcome:
    variant: str
    collection: str
    index: str
    status: str  # "done" or "skipped"
    seed: int | None = None
    run_id: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Context:
    """One `drbench run`: the recipe, its command-line options, its models and its outcomes."""

    recipe: Recipe
    options: RunOptions
    models: Models
    db: Any
    experiment: ExperimentRecord
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def console(self) -> Console:
        return self.models.console

    def seeded(self, seed: int) -> Context:
        """This run as the variant runs of `seed` see it (the same outcomes list)."""
        return replace(self, recipe=self.recipe.with_seed(seed), models=self.models.seeded(seed))

    def label(self, variant: Variant) -> str:
        """`star`, or `star (seed 14)` when the recipe has several seeds and the variant trains."""
        several = len(self.recipe.seeds) > 1 and kind(variant.kind).trains
        return f"{variant.name} (seed {self.recipe.experiment.seed})" if several else variant.name

    @property
    def progress(self) -> StageProgress:
        return self.models.progress

    @property
    def world(self) -> World:
        return self.models.compute.world


def store_path(recipe: Recipe, options: RunOptions) -> Path:
    """`--store`, else the recipe's store; a shard's, unless `--store` names it, beside it:
    `drbench.shard-1-of-4.db`."""
    if options.store:
        return Path(options.store)
    path = Path(recipe.experiment.store)
    if options.shard is None:
        return path
    index, count = options.shard
    return path.with_name(f"{path.stem}.shard-{index}-of-{count}{path.suffix}")


class Executor(Protocol):
    """What makes a plan's runs other than one after another in this process (`--executor ray`,
    :mod:`harness.pipeline.ray_executor`): it writes them to `db`, the store at `store`, and
    returns their outcomes; checked, the store opened and the plan cut, as `run_recipe` hands them."""

    def __call__(self, plan: plan.Plan, options: RunOptions, store: Path, db: Any, experiment: ExperimentRecord,
                 cache_dir: Path, mirror: Path | None, compute: Compute, console: Console) -> list[Outcome]: ...


def run_recipe(recipe: Recipe, options: RunOptions = RunOptions(), console: Console | None = None,
               executor: Executor | None = None) -> list[Outcome]:
    """Run every variant of `recipe` on every evaluation collection and index (as one rank of
    several when torchrun started this process), here, or with `executor`."""
    world = World.from_env()
    console = (console or log_console()) if world.main else Console(quiet=True)
    if options.seeds is not None:
        recipe = only_seeds(recipe, options.seeds)
    check_resources(recipe)
    compute = _compute(recipe, options, console, world)
    world = world.join(compute.device)
    compute = replace(compute, world=world)
    world.on_main(lambda: check_processes(recipe, world.size))  # one line from rank 0, not one per process
    threads = options.threads if options.threads is not None else recipe.compute.threads
    if threads and executor is None:  # an executor's processes set their own
        import torch

        torch.set_num_threads(threads)
    mirror = resolve_mirror(options.mirror, recipe.data.mirror)
    # Fail on an unavailable collection before anything (the store included) is created.
    for dataset_id in read_collections(recipe.data):
        world.first(lambda: ensure_available(dataset_id, mirror))
        if is_file_collection(dataset_id) and world.main:  # its files were just checked, line by line
            checked = summary(dataset_id)
            console.log(f"{escape(dataset_id)}: files checked ({checked.documents:,} documents, {checked.queries:,} "
                        f"queries, splits {', '.join(checked.splits)})")
            split = dataset_id.partition("/")[2]
            if missing := checked.splits[split].missing_docs:
                console.print(f"warning: {dataset_id}: {missing:,} qrels rows name documents the corpus lacks; kept "
                              "as ir_datasets and trec_eval keep them (relevant documents no system retrieves)",
                              markup=False, highlight=False, soft_wrap=True)
    world.on_main(lambda: check_dev_overlap(recipe, mirror))
    for line in overlap_warnings(recipe, mirror) if world.main else ():
        console.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
    cache_dir = _cache_dir(Path(options.cache_dir or recipe.experiment.cache_dir), console)
    use_numba_cache(cache_dir)  # ranx's compiled metric functions, kept with the run's other caches
    db = open_store(store_path(recipe, options)) if world.main else None
    experiment = _experiment_record(recipe)
    the_plan = plan.build_plan(recipe)
    if options.shard is not None:
        whole, the_plan = len(the_plan), shard_of(the_plan, *options.shard)
        console.log(f"shard {options.shard[0]} of {options.shard[1]}: {len(the_plan)} of the plan's {whole} runs, "
                    f"into {escape(str(store_path(recipe, options)))}")
    outcomes: list[Outcome] = []
    if executor is not None:
        outcomes = executor(the_plan, options, store_path(recipe, options), db, experiment, cache_dir, mirror, compute,
                            console)
    else:
        with StageProgress(console) as progress:
            for k, part in enumerate(the_plan.folds or (the_plan,), 1):  # a k-fold recipe: each fold in turn
                if the_plan.folds:
                    console.log(f"fold {k} of {len(the_plan.folds)}: train on {escape(str(part.recipe.data.train))}, "
                                f"evaluate on {escape(part.recipe.data.eval[0])}")
                models = Models(part.recipe, cache_dir, progress, console, mirror, db, experiment.name, compute)
                execute(Context(part.recipe, options, models, db, experiment, outcomes), part, mirror)
    if world.main:
        if the_plan.folds:
            outcomes += combined_folds(db, experiment, the_plan, console)
        if options.seeds is None:  # --seeds runs some of the recipe's seeds: the others' runs stay
            _drop_other_seeds(db, recipe, console)
    world.leave()
    return outcomes


def combined_folds(db: Any, experiment: ExperimentRecord, the_plan: plan.Plan, console: Console) -> list[Outcome]:
    """Each run's folds as one run over every query (:mod:`harness.pipeline.folds`)."""
    return [Outcome(spec.variant, spec.collection, spec.index, status, spec.seed, run_id)
            for spec, status, run_id in combine_folds(db, experiment, the_plan, console.log) if status != "incomplete"]


@dataclass(frozen=True)
class StoredRow:
    """One variant row of a collection: `variant` as stored, evaluating the model of the recipe
    variant `model` (a swept variant's chosen point is stored under the variant's own name)."""

    variant: Variant
    model: str
    selection: dict[str, Any] | None = None


def stored_row(recipe: Recipe, spec: plan.RunSpec, chosen: dict[str, tuple[Variant, dict[str, Any]]]) -> StoredRow:
    """The row a planned run stores: its variant, or a selected sweep's point chosen on dev under
    the sweep's name (what :func:`harness.recipe.plan.eval_rows` leaves to dev)."""
    if spec.model is not None:
        return StoredRow(recipe.variant(spec.model), spec.model)
    point, record = chosen[str(spec.sweep)]
    point = recipe.variant(point.name)  # by name: ranks > 0 get rank 0's copy
    return StoredRow(replace(point, name=spec.variant, sweep_of=None, point=()), point.name, record)


def _load(ctx: Context, dataset_id: str, mirror: Path | None) -> Collection:
    with ctx.progress.spinner(f"loading {dataset_id}"):
        collection = ctx.world.first(lambda: load_collection(dataset_id, mirror))
    ctx.console.log(f"{escape(dataset_id)}: {len(collection.doc_ids):,} documents, {len(collection.queries):,} judged "
                    "queries")
    return collection


def dev_collection(ctx: Context, mirror: Path | None) -> Collection:
    """`[data] dev`: the named split, or the held-out training queries (`holdout:F`)."""
    dev = str(ctx.recipe.data.dev)
    fraction = holdout_fraction(dev)
    if fraction is None:
        return _load(ctx, dev, mirror)
    held = holdout_collection(ctx.models.train_collection(), dev, fraction)
    ctx.console.log(f"{escape(held.dataset_id)}: {len(held.queries):,} training queries held out for selection")
    return held


def execute(ctx: Context, the_plan: plan.Plan, mirror: Path | None,
             chosen: dict[str, tuple[Variant, dict[str, Any]]] | None = None) -> None:
    """Make the plan's runs in its order: the dev split first (each sweep's point is chosen as
    soon as its last point is evaluated there, so a variant chained on it trains on that point),
    then each evaluation collection. A variant's runs of one seed share its encodings.

    `chosen`: the points chosen before (a task of a parallel run: its plan is a part whose
    sweeps were chosen from the store), and then no choice is made here."""
    recipe = ctx.recipe
    last_point = {} if chosen is not None else {run.sweep: run.id for run in the_plan.phase("dev")
                                                if run.sweep and recipe.selects}
    chosen = dict(chosen or {})
    for (phase, dataset_id), runs in groupby(the_plan, key=lambda run: (run.phase, run.collection)):
        if phase == "dev":
            collection = ctx.models.dev = dev_collection(ctx, mirror)  # dev: what eval_every scores on
        else:
            collection = _load(ctx, dataset_id, mirror)
        for _, specs in groupby(runs, key=lambda run: run.variant):
            specs = list(specs)
            row = stored_row(recipe, specs[0], chosen)
            for seed, seeded in groupby(specs, key=lambda run: run.seed):
                indexes = [run.index for run in seeded]
                if kind(row.variant.kind).family == "sparse":
                    _sparse_run(ctx.seeded(seed), collection, row)
                else:
                    _dense_runs(ctx.seeded(seed), collection, row, indexes)
            if (name := specs[-1].sweep) is not None and last_point.get(name) == specs[-1].id:
                chosen[name] = choose(ctx, collection.dataset_id, name)


def choose(ctx: Context, dev: str, name: str) -> tuple[Variant, dict[str, Any]]:
    """The point of the swept variant `name` chosen on the dev split `dev`; from now on `name` means it."""
    point, record = ctx.world.on_main(lambda: select_point(ctx.db, ctx.recipe, dev, name))
    ctx.models.alias(name, point.name)
    announce_choice(ctx.console, ctx.recipe, dev, name, point, record)
    return point, record


def announce_choice(console: Console, recipe: Recipe, dev: str, name: str, point: Variant,
                    record: dict[str, Any]) -> None:
    """Say which point of `name` dev chose, and warn of a tie or a point at its grid's edge."""
    console.log(f"{name}: chose {escape(point.name)} on {escape(dev)} ({record['metric']} "
                f"{record['score']:.4f}, best of {len(record['scores'])} points)")
    grid = {key: list(dict.fromkeys(dict(p.point)[key] for p in recipe.sweeps[name])) for key in dict(point.point)}
    tied = [p for p, score in record["scores"].items() if score == record["score"]]
    where = f"{name} on {dev}"
    if len(tied) > 1:
        console.print(f"warning: {where}: {len(tied)} points tie on dev ({', '.join(tied)}); the first in grid "
                      "order was taken", markup=False, highlight=False, soft_wrap=True)
    elif edges := grid_edges(grid, dict(point.point)):
        console.print(f"warning: {where}: the point chosen on dev sits at the edge of its grid ({'; '.join(edges)}): "
                      "the best value may lie outside it; widen the grid in the recipe before reading any test "
                      "number", markup=False, highlight=False, soft_wrap=True)


def _drop_other_seeds(db: Any, recipe: Recipe, console: Console) -> None:
    """Runs of seeds the recipe no longer lists go (its runs replace them, as a re-run replaces
    its own), so the leaderboard's means are over the recipe's seeds only. After every run is
    stored: an interrupted run leaves the old ones until it completes. Not with `--seeds`, which
    runs some of the recipe's seeds (:mod:`harness.recipe.seed_subset`)."""
    keep = {v.name: set(variant_seeds(recipe, v)) for v in recipe.variants}
    keep.update({name: set(variant_seeds(recipe, points[0])) for name, points in recipe.sweeps.items()})
    if gone := drop_other_seeds(db, recipe.experiment.name, keep):
        console.log(f"removed {gone} stored runs of seeds {recipe.path} no longer lists")


def check_cache_dir(path: Path) -> None:
    """A file where the cache folder should be stops a run (and a plan) before any work."""
    if path.exists() and not path.is_dir():
        raise CacheError(f"cache folder {path} is a file; pass --cache-dir a folder (or set [experiment] cache_dir)")


def _cache_dir(path: Path, console: Console) -> Path:
    """The cache folder, checked before any work: a file there, or a folder that cannot be
    made, stops the run; a read-only one still serves what it holds, after a warning."""
    check_cache_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheError(f"cannot create cache folder {path}: {exc.strerror or exc}; pass another --cache-dir") \
            from None
    if not os.access(path, os.W_OK):
        console.print(f"warning: cache folder {path} is read-only: cached entries are used, nothing new can be "
                      "cached", markup=False, highlight=False)
    return path


def _compute(recipe: Recipe, options: RunOptions, console: Console, world: World) -> Compute:
    """The device, precision and backend of this run: the command line's, else the recipe's."""
    device, precision = options.device or recipe.compute.device, options.precision or recipe.compute.precision
    backend = options.backend or recipe.compute.backend
    where = f"{recipe.path} [compute]"
    return resolve_compute(
        device, precision, warn=lambda line: console.print(line, markup=False, highlight=False),
        device_label=f"--device {device}" if options.device else f'{where} device = "{device}"',
        precision_label=f"--precision {precision}" if options.precision else f'{where} precision = "{precision}"',
        world=world, backend=backend,
        backend_label=f"--backend {backend}" if options.backend else f'{where} backend = "{backend}"')


def _experiment_record(recipe: Recipe) -> ExperimentRecord:
    commit, dirty = git_commit(Path(harness.__file__).resolve().parent.parent)
    env = environment()
    return ExperimentRecord(
        name=recipe.experiment.name, recipe_path=str(recipe.path.resolve()), recipe_text=recipe.text,
        recipe_hash=recipe.hash, git_commit=commit, git_dirty=dirty,
        packages=package_versions(_packages(recipe)),
        python=env.get("python"), platform=env.get("platform"), seed=recipe.experiment.seed,
        started_at=utc_now())


def _packages(recipe: Recipe) -> tuple[str, ...]:
    """The distributions a run's provenance names: drbench's stack, then the packages of the
    plug-in kinds the recipe uses."""
    plugins = (package(v.kind) for v in recipe.variants)
    return DEFAULT_PACKAGES + tuple(dict.fromkeys(p for p in plugins if p and p not in DEFAULT_PACKAGES))


def run_key(recipe: Recipe, variant: Variant, collection: Collection, index: str,
             model: dict[str, Any] | None, selection: dict[str, Any] | None = None) -> str:
    """Hash of everything that determines a run's numbers; a stored run with the same key is
    reused. The recipe's other variants and its comments are deliberately not part of it."""
    parts = {
        "drbench": harness.__version__, "seed": recipe.experiment.seed, "variant": variant.as_json(),
        "collection": collection.dataset_id, "data": _data_record(collection), "index": index,
        "metrics": list(recipe.eval.metrics), "depth": recipe.eval.depth, "model": model,
        "index_train_sample": recipe.eval.index_train_sample if index != SPARSE_INDEX else None,
    }
    parts |= search_key(index, recipe.eval.nprobe)
    if index != SPARSE_INDEX:  # a compressed index's codes: how its codebooks train
        parts |= codebook_key(index)
    if recipe.eval.store_depth is not None:  # only then: runs stored before it keep their keys
        parts["store_depth"] = recipe.eval.store_depth
    # A sweep's chosen point: a new choice (or new dev scores) re-runs it. What a chained variant
    # trained on ("on") is not part of it: the model's identity already differs with it.
    if selection := {k: v for k, v in (selection or {}).items() if k != "on"}:
        parts["selection"] = selection
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _data_record(collection: Collection) -> dict[str, Any]:
    return {"dataset_id": collection.dataset_id,
            "archives": collection.archive_digests}


def _is_done(ctx: Context, variant: Variant, collection: Collection, index: str, key: str) -> bool:
    """Whether the store holds this run already (rank 0 reads the store; every rank gets its answer)."""
    seed = ctx.recipe.experiment.seed

    def stored() -> str | None:
        return completed_run_key(ctx.db, ctx.recipe.experiment.name, variant.name, collection.dataset_id, index,
                                 seed)

    if ctx.world.on_main(stored) == key and not ctx.options.force:
        ctx.console.log(f"[dim]skip {escape(ctx.label(variant))} / {escape(collection.dataset_id)} / {index}: "
                        "already in the store (--force re-runs)[/dim]")
        ctx.outcomes.append(Outcome(variant.name, collection.dataset_id, index, "skipped", seed))
        return True
    return False


def _sparse_run(ctx: Context, collection: Collection, row: StoredRow) -> None:
    variant = row.variant
    index, = plan.run_indexes(ctx.recipe, variant)
    key = run_key(ctx.recipe, variant, collection, index, None, row.selection)
    if _is_done(ctx, variant, collection, index, key) or not ctx.world.main:
        return  # sparse ranking is rank 0's alone: nothing in it is split across processes
    started = utc_now()
    start = time.perf_counter()
    with ctx.progress.task(f"{variant.name}: {variant.kind} search", len(collection.queries), "queries") as advance:
        results = kind(variant.kind).rank(collection, variant.params, ctx.recipe.eval.depth, advance)
    timings = {"search": time.perf_counter() - start}
    _finish(ctx, collection, row, index, key, None, results, timings, started)


def _dense_runs(ctx: Context, collection: Collection, row: StoredRow, indexes: list[str]) -> None:
    variant = row.variant
    ref = ctx.models.resolve(row.model)
    if on := ctx.models.chained_on(row.model):  # stored, so the leaderboard can say what it trained on
        row = replace(row, selection={**(row.selection or {}), "on": on})
    model = ctx.models.open(ref)
    pending = [f for f in indexes
               if not _is_done(ctx, variant, collection, f, run_key(ctx.recipe, variant, collection, f,
                                                                    model.identity, row.selection))]
    if not pending:
        return
    started = utc_now()
    doc_vectors, doc_seconds = model.encode_corpus(collection, ctx.models.cache_dir, ctx.progress, ctx.console)
    query_ids = sorted(collection.queries)
    start = time.perf_counter()
    with ctx.progress.task(f"{variant.name}: encoding queries", len(query_ids), "queries") as advance:
        query_vectors = model.encode_queries([collection.queries[q] for q in query_ids], advance, collection,
                                             ctx.models.cache_dir, ctx.console)
    query_seconds = time.perf_counter() - start
    if not ctx.world.main:
        return  # the encodings were collective; searching, evaluating and storing are rank 0's
    # The exact top-k compressed indexes are measured against: for every run of a recipe that
    # lists one, Flat included, so its runs carry the same stats whichever were pending.
    indexes = ctx.recipe.eval.indexes
    exact = (_exact_top(doc_vectors, query_vectors, ctx.models.compute.faiss_gpu)
             if any(f != "Flat" for f in indexes) else None)
    for factory in pending:
        key = run_key(ctx.recipe, variant, collection, factory, model.identity, row.selection)
        results, timings, stats = model.search(factory, doc_vectors, query_vectors, query_ids, collection,
                                               ctx.recipe, ctx.progress, variant.name, exact)
        timings.update(encode_docs=doc_seconds, encode_queries=query_seconds)
        if ref.trained:
            timings["train"] = ref.trained.get("train_seconds", 0.0)
            if "part_seconds" in ref.trained:  # the trainings along its chain (harness.pipeline.cost)
                timings["train_chain"] = sum(ref.trained["part_seconds"].values())
        _finish(ctx, collection, row, factory, key, model.record, results, timings, started, stats)


def _exact_top(doc_vectors: Any, query_vectors: Any, gpu: int | None = None) -> Any:
    """Exact inner-product top-k ids, the reference compressed indexes are measured against."""
    return exact_search(doc_vectors, query_vectors, EXACT_DEPTH, gpu=gpu)[1]


def metrics_line(metrics: dict[str, float]) -> str:
    """`ndcg@10 0.6451, mrr@10 0.6047`: a run's metrics as its "done" line shows them."""
    return ", ".join(f"{m} {v:.4f}" for m, v in metrics.items())


def _finish(ctx: Context, collection: Collection, row: StoredRow, index: str, key: str,
            model: dict[str, Any] | None, results: dict[str, list[tuple[str, float]]],
            timings: dict[str, float], started: str, stats: dict[str, float] | None = None) -> None:
    variant = row.variant
    start = time.perf_counter()
    results = {query_id: trec_order(ranked) for query_id, ranked in results.items()}  # what trec_eval ranks
    evaluation = evaluate(collection.qrels, results, ctx.recipe.eval.metrics)  # at full depth
    timings["evaluate"] = time.perf_counter() - start
    if (keep := ctx.recipe.eval.store_depth) is not None:
        results = {query_id: ranked[:keep] for query_id, ranked in results.items()}
    record = RunRecord(
        experiment=ctx.recipe.experiment.name, variant=variant.name, kind=variant.kind,
        collection=collection.dataset_id, index_factory=index, run_key=key, model=model,
        params={"kind": variant.kind, **variant.params.as_dict()}, data=_data_record(collection),
        timings=timings, index_stats=stats or {}, n_docs=len(collection.doc_ids),
        compute=None if model is None else {**ctx.models.compute.record(), "faiss": faiss_build()},
        depth=ctx.recipe.eval.depth, seed=ctx.recipe.experiment.seed, selection=row.selection,
        started_at=started, finished_at=utc_now(), metrics=evaluation.metrics,
        query_metrics=evaluation.query_metrics, results=results)
    run_id = write_run(ctx.db, ctx.experiment, record)
    shown = metrics_line(evaluation.metrics)
    ctx.console.log(f"[green]done[/green] {escape(ctx.label(variant))} / {escape(collection.dataset_id)} / {index}: "
                    f"{shown}")
    ctx.outcomes.append(Outcome(variant.name, collection.dataset_id, index, "done", ctx.recipe.experiment.seed,
                                run_id, evaluation.metrics, timings))
