"""Pick stored runs to compare or plot, and read their per-query scores as paired arrays.

A *system* is (experiment, variant, index) on one collection: one stored run, or one per seed
when its recipe listed several. A system's metrics are the mean over the seeds stored for it
(`harness.store.seed_mean`, as the leaderboard shows them); its per-query score is the mean over
those seeds, the standard way to pair multi-seed systems. Systems are only ever compared within a collection, on
the queries every one of them was scored on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.store import list_runs, query_metrics, run_metrics, seed_mean
from leaderboard.errors import CompareError, unknown
from leaderboard.order import ordered, recipe_order


@dataclass(frozen=True)
class System:
    """The stored runs of one (experiment, variant, index, collection), one per seed, with the
    label tables and plots show for it. `run_id` (its first seed's run) identifies it."""

    run_id: int
    experiment: str
    variant: str
    index: str
    collection: str
    label: str
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    index_stats: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()
    run_ids: tuple[int, ...] = ()  # one per seed, in `seeds` order

    def matches(self, name: str) -> bool:
        """Whether `name` (`variant`, `experiment/variant`, optionally `@index`) names this run."""
        name, _, index = name.partition("@")
        if index and index != self.index:
            return False
        return name in (self.variant, f"{self.experiment}/{self.variant}")


def select_systems(db: Any, experiments: list[str] | None = None, collection: str | None = None,
                   indexes: list[str] | None = None) -> dict[str, list[System]]:
    """Stored runs grouped by collection (first-stored first), in run order within each.

    Unknown experiments, collections or indexes raise CompareError naming the stored ones.
    Labels are the variant name, prefixed `experiment/` when several experiments are selected
    and suffixed ` [index]` when a variant was stored with several indexes.
    """
    runs = list_runs(db)
    if not runs:
        raise CompareError("the store holds no runs yet; run `drbench run RECIPE` first")
    stored_experiments = sorted({r["experiment"] for r in runs})
    for name in experiments or []:
        if name not in stored_experiments:
            raise unknown("experiment", name, stored_experiments)
    if experiments:
        runs = [r for r in runs if r["experiment"] in experiments]
    if collection is not None:
        stored = sorted({r["collection"] for r in runs})
        if collection not in stored:
            raise unknown("collection", collection, stored)
        runs = [r for r in runs if r["collection"] == collection]
    if indexes:
        stored = sorted({r["index_factory"] for r in runs})
        for index in indexes:
            if index not in stored:
                raise unknown("index", index, stored)
        runs = [r for r in runs if r["index_factory"] in indexes]
    # Run ids grow in the order a recipe runs its variants: the closest thing to recipe order.
    runs.sort(key=lambda r: r["id"])
    order = recipe_order(db)
    stored = run_metrics(db, [r["id"] for r in runs])
    metrics = {r["id"]: ordered(stored.get(r["id"], {}), order.get(r["experiment"], {}).get("metrics", ()))
               for r in runs}
    several = len({r["experiment"] for r in runs}) > 1
    by_collection: dict[str, dict[tuple[str, str, str], list[dict[str, Any]]]] = {}
    for run in runs:
        system = (run["experiment"], run["variant"], run["index_factory"])
        by_collection.setdefault(run["collection"], {}).setdefault(system, []).append(run)
    return {name: [_system(seeded, list(chosen), several, metrics) for seeded in chosen.values()]
            for name, chosen in by_collection.items()}


def _system(seeded: list[dict[str, Any]], chosen: list[tuple[str, str, str]], several_experiments: bool,
            metrics: dict[int, dict[str, float]]) -> System:
    seeded = sorted(seeded, key=lambda r: (r.get("seed") is None, r.get("seed") or 0))
    run = seeded[0]
    label = f"{run['experiment']}/{run['variant']}" if several_experiments else run["variant"]
    if sum((e, v) == (run["experiment"], run["variant"]) for e, v, _ in chosen) > 1:
        label += f" [{run['index_factory']}]"
    per_seed = [(r["seed"], metrics.get(r["id"], {})) for r in seeded]
    means = {m: seed_mean((seed, values.get(m)) for seed, values in per_seed)
             for m in dict.fromkeys(m for _, values in per_seed for m in values)}
    mean = {m: value.value for m, value in means.items() if value}
    return System(run_id=run["id"], experiment=run["experiment"], variant=run["variant"],
                  index=run["index_factory"], collection=run["collection"], label=label,
                  metrics=mean, timings=run.get("timings") or {},
                  index_stats=run.get("index_stats") or {},
                  seeds=tuple(r["seed"] for r in seeded if r.get("seed") is not None),
                  run_ids=tuple(r["id"] for r in seeded))


def common_metrics(groups: dict[str, list[System]], wanted: list[str] | None) -> list[str]:
    """`wanted`, checked against what every selected run stores; default: all of those."""
    systems = [s for members in groups.values() for s in members]
    shared = [m for m in systems[0].metrics if all(m in s.metrics for s in systems)]
    if not wanted:
        if not shared:
            raise CompareError("the selected runs share no metric; pick runs evaluated alike")
        return shared
    for metric in wanted:
        if metric not in shared:
            raise unknown("metric", metric, shared, "metrics every selected run stores")
    return list(dict.fromkeys(wanted))


def seed_scores(db: Any, systems: list[System], metric: str) -> tuple[list[str], dict[int, list[np.ndarray]]]:
    """(query ids, {system run_id: [per-query values of each seed's run, in `seeds` order]}).

    Every run must hold a value for the same queries: a test on unpaired queries would compare
    unlike with unlike, so a mismatch is an error rather than silently intersected.
    """
    per_run = {run_id: query_metrics(db, run_id, metric) for s in systems for run_id in (s.run_ids or (s.run_id,))}
    first = systems[0]
    query_ids = sorted(per_run[first.run_id])
    reference = set(query_ids)
    for system in systems:
        for run_id in system.run_ids or (system.run_id,):
            other = set(per_run[run_id])
            if other != reference:
                raise CompareError(
                    f"{system.label} and {first.label} on {system.collection} were scored on different "
                    f"queries ({len(other - reference)} only in the first, {len(reference - other)} only in "
                    f"the second) for {metric}; re-run them with the same qrels")
    return query_ids, {s.run_id: [np.array([v if (v := per_run[run_id][q]) is not None else 0.0 for q in query_ids],
                                           dtype=np.float64) for run_id in (s.run_ids or (s.run_id,))]
                       for s in systems}
