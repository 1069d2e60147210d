"""Leaderboard rows: one per (experiment, variant, collection, index), its metrics the mean over
the seeds stored for it (`harness.store.seed_mean`), with their standard deviation (or one row per
seed run, `per_seed`)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from typing import Any

from harness.store import SPARSE_INDEX, list_runs, run_metrics, seed_mean
from harness.recipe.grid import grid_edges
from leaderboard.order import ordered, recipe_grids_of, recipe_order

EVAL_STAGES = ("encode_docs", "encode_queries", "index", "search")  # the timings that make up evaluation


@dataclass(frozen=True)
class LeaderboardRow:
    experiment: str
    variant: str
    kind: str
    collection: str
    index: str
    metrics: dict[str, float]
    n_queries: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    run_id: int | None = None
    index_stats: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    compute: dict[str, Any] | None = None  # None: a sparse run, or a dense one stored before v4
    seeds: tuple[int, ...] = ()  # the seeds behind the row, ascending
    sd: dict[str, float] = field(default_factory=dict)  # metric -> sample sd over seeds (0.0 for one)
    run_ids: tuple[int, ...] = ()  # the runs behind the row, in seed order
    selection: dict[str, Any] | None = None  # a swept variant: its point chosen on the dev split
    grid: dict[str, list[Any]] = field(default_factory=dict)  # a swept variant: the values its recipe tried
    # A trained model's cost along what it builds on (harness.pipeline.cost): documents, examples,
    # units (documents + examples), and seconds (the run's `train_chain` timing); the mean over
    # seeds; None for an untrained model.
    cost: dict[str, float] | None = None

    @property
    def chosen(self) -> str | None:
        """`lr=2e-05 on star[lr=5e-05] (dev ndcg@10 0.6712)`: the point a swept variant reports,
        the chosen points of the swept variants it trained on, and why; None for neither.

        >>> on = {"on": {"star": "star[lr=5e-05]"}}
        >>> row = LeaderboardRow("e", "star+adore", "star+adore", "c", "Flat", {}, selection={
        ...     "point": {"lr": 2e-05, "metric_cut": 10}, "metric": "ndcg@10", "score": 0.77781, **on})
        >>> row.chosen
        'lr=2e-05,metric_cut=10 on star[lr=5e-05] (dev ndcg@10 0.7778)'
        >>> replace(row, selection=on).chosen, replace(row, selection=None).chosen
        ('on star[lr=5e-05]', None)
        """
        selection = self.selection or {}
        if "folds" in selection:  # a k-fold combination: each fold chose on its own dev split
            points = [",".join(f"{k}={v}" for k, v in (fold or {}).get("point", {}).items()) or "-"
                      for fold in selection["folds"]]
            return "per fold: " + "; ".join(points)
        parts = [",".join(f"{k}={v}" for k, v in selection["point"].items())] if "point" in selection else []
        if on := selection.get("on"):
            parts.append("on " + ", ".join(on.values()))
        if "point" in selection:
            parts.append(f"(dev {selection['metric']} {selection['score']:.4f})")
            if edges := grid_edges(self.grid, selection["point"]):
                parts.append(f"at the grid's edge: {'; '.join(edges)}")
        return " ".join(parts) or None

    @property
    def eval_seconds(self) -> float | None:
        """Seconds spent evaluating: encoding (where not cached), indexing, searching; None if untimed."""
        return sum(self.timings.get(k, 0.0) for k in EVAL_STAGES) if self.timings else None

    @property
    def ran_on(self) -> dict[str, Any]:
        """{"device", "precision", "backend", "processes"} of a dense run (None for BM25). Dense
        runs stored before devices existed (no `compute`) all ran in fp32 on the CPU, in one process,
        and every run stored without a backend ran in torch."""
        if self.compute:
            return {"device": self.compute["device"], "precision": self.compute["precision"],
                    "backend": self.compute.get("backend", "torch"), "processes": self.compute.get("processes", 1)}
        if self.index == SPARSE_INDEX:
            return {"device": None, "precision": None, "backend": None, "processes": None}
        return {"device": "cpu", "precision": "fp32", "backend": "torch", "processes": 1}

    @property
    def cost_label(self) -> str | None:
        """What the cost column shows: `3.2 min, 15,841`: the training wall time along the
        model's chain, and documents encoded + training queries seen; None untrained."""
        if self.cost is None:
            return None
        seconds = self.cost["seconds"]
        time = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
        return f"{time}, {round(self.cost['units']):,}"

    @property
    def precision_label(self) -> str | None:
        """What the precision column shows: `fp32 cpu`, `int8 openvino cpu` (the backend when not
        torch), `bf16 cuda:0 x2`; None for BM25."""
        ran = self.ran_on
        if ran["device"] is None:
            return None
        backend = f"{ran['backend']} " if ran["backend"] not in (None, "torch") else ""
        processes = f" x{ran['processes']}" if (ran["processes"] or 1) > 1 else ""
        return f"{ran['precision']} {backend}{ran['device']}{processes}"

    @property
    def faiss(self) -> str | None:
        """The faiss release and SIMD level a dense run searched with (None before drbench stored it)."""
        return (self.compute or {}).get("faiss")

    @property
    def trained_on(self) -> str | None:
        """The index an ADORE query encoder was trained against (None for other kinds)."""
        return self.params.get("train_index")  # only kinds that train against an index have one

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape `drbench leaderboard --format json` prints."""
        return {"experiment": self.experiment, "variant": self.variant, "kind": self.kind,
                "collection": self.collection, "index": self.index, "metrics": self.metrics,
                "n_queries": self.n_queries, "timings": self.timings, "index_stats": self.index_stats,
                "trained_on_index": self.trained_on, "run_id": self.run_id, "faiss": self.faiss, **self.ran_on,
                "seeds": list(self.seeds), "sd": self.sd, "run_ids": list(self.run_ids), "selection": self.selection,
                "cost": self.cost}


def leaderboard_rows(db: Any, experiment: str | None = None, collection: str | None = None,
                     per_seed: bool = False) -> list[LeaderboardRow]:
    """One row per (experiment, variant, collection, index) (filtered), its metrics the mean over
    its seeds; with `per_seed`, one row per stored run."""
    rows = _run_rows(db, experiment, collection)
    return rows if per_seed else _over_seeds(rows)


def _over_seeds(rows: list[LeaderboardRow]) -> list[LeaderboardRow]:
    """Rows of one (experiment, variant, collection, index) merged: mean metrics and timings,
    sample standard deviations, the seeds and runs behind them; the first row's other fields."""
    groups: dict[tuple[str, str, str, str], list[LeaderboardRow]] = {}
    for row in rows:
        groups.setdefault((row.experiment, row.variant, row.collection, row.index), []).append(row)
    return [_merged(group) for group in groups.values()]


def _merged(group: list[LeaderboardRow]) -> LeaderboardRow:
    """The mean over seeds (`harness.store.seed_mean`): over the seed runs stored, so a missing
    seed's run leaves a shorter `seeds`, not a gap."""
    if len(group) == 1:
        return group[0]
    first = group[0]
    means = {m: seed_mean((row.seeds[0] if row.seeds else 0, row.metrics.get(m)) for row in group)
             for m in dict.fromkeys(m for row in group for m in row.metrics)}
    timings = {k: statistics.fmean(row.timings[k] for row in group if k in row.timings) for k in first.timings}
    costs = [row.cost for row in group if row.cost is not None]
    cost = {k: statistics.fmean(c[k] for c in costs) for k in costs[0]} if costs else None
    return replace(first, metrics={m: mean.value for m, mean in means.items() if mean}, cost=cost,
                   sd={m: mean.sd for m, mean in means.items() if mean},
                   timings=timings, seeds=tuple(s for row in group for s in row.seeds),
                   run_ids=tuple(i for row in group for i in row.run_ids))


def _run_rows(db: Any, experiment: str | None, collection: str | None) -> list[LeaderboardRow]:
    """Every stored run (filtered), in recipe index order, then store order (seeds ascending)."""
    runs = list_runs(db, experiment=experiment, collection=collection)
    metrics = run_metrics(db, [run["id"] for run in runs])
    order, grids = recipe_order(db), recipe_grids_of(db)
    metrics = {run["id"]: ordered(metrics.get(run["id"], {}), order.get(run["experiment"], {}).get("metrics", ()))
               for run in runs}

    def position(run: dict[str, Any]) -> int:
        indexes = list(order.get(run["experiment"], {}).get("indexes", ()))
        return indexes.index(run["index_factory"]) if run["index_factory"] in indexes else len(indexes)

    runs = sorted(runs, key=position)  # stable: the store's order within an index
    return [LeaderboardRow(experiment=run["experiment"], variant=run["variant"], kind=run["kind"],
                           collection=run["collection"], index=run["index_factory"],
                           metrics=metrics.get(run["id"], {}), n_queries=run.get("n_queries"),
                           timings=run.get("timings") or {}, run_id=run["id"],
                           index_stats=run.get("index_stats") or {}, params=run.get("params") or {},
                           compute=run.get("compute"), seeds=() if run.get("seed") is None else (run["seed"],),
                           sd={m: 0.0 for m in metrics.get(run["id"], {})}, run_ids=(run["id"],),
                           selection=run.get("selection"),
                           grid=grids.get(run["experiment"], {}).get(run["variant"], {}), cost=run_cost(run))
            for run in runs]


def run_cost(run: dict[str, Any]) -> dict[str, float] | None:
    """A trained model's stored cost without its parts, with the seconds of the trainings along
    its chain (None for runs stored before costs were)."""
    cost = (((run.get("model") or {}).get("trained") or {}).get("cost")) or None
    if cost is None:
        return None
    return {"seconds": (run.get("timings") or {}).get("train_chain", 0.0),
            **{k: cost[k] for k in ("documents", "examples", "units")}}


def rows_as_json(rows: list[LeaderboardRow]) -> list[dict[str, Any]]:
    return [row.as_dict() for row in rows]
