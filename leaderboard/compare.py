"""Compare stored runs with paired significance tests, corrected for multiple comparisons.

Runs are compared within a collection, on per-query scores read from the store, either each
against a baseline variant or all pairs. Every comparison gets ranx's test p-value, a p-value
adjusted over the whole family of comparisons this call makes (all pairs x metrics x
collections), the mean difference with a paired-bootstrap CI, and per-query wins/ties/losses.
Never imports torch: it reads the store only.

Example::

    db = open_store_readonly("drbench.db")
    result = compare_runs(db, CompareSettings(baseline="zero-shot"), experiments=["star_adore"])
    for c in result.comparisons:
        print(c.system, c.metric, c.diff, c.p_adjusted, c.marker)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from leaderboard.errors import CompareError, unknown
from leaderboard.select import System, common_metrics, seed_scores, select_systems
from leaderboard.stats import (CORRECTION_NAMES, CORRECTIONS, TEST_NAMES, TESTS, adjust_p_values,
                               bootstrap_ci, paired_p_value, wins_ties_losses)

_KEYS = "abcdefghijklmnoprstuvwxyz"  # no q: Unicode has no superscript q


@dataclass(frozen=True)
class CompareSettings:
    """How to compare: the test, the correction, alpha, and the seeded resampling sizes."""

    baseline: str | None = None  # variant, experiment/variant, optionally @index; None: all pairs
    metrics: tuple[str, ...] = ()  # empty: every metric the selected runs store
    test: str = "student"
    correction: str = "holm"
    alpha: float = 0.05
    permutations: int = 1000
    bootstrap: int = 1000
    seed: int = 42

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise unknown("test", self.test, list(TESTS))
        if self.correction not in CORRECTIONS:
            raise unknown("correction", self.correction, list(CORRECTIONS))
        if not 0.0 < self.alpha < 1.0:
            raise CompareError(f"alpha {self.alpha:g} must be between 0 and 1, e.g. 0.05")
        for name in ("permutations", "bootstrap"):
            if getattr(self, name) < 1:
                raise CompareError(f"--{name} {getattr(self, name)} must be at least 1, e.g. 1000")

    def legend(self, family: int, letters: bool = True) -> str:
        """One line saying what the markers mean, e.g. for a table caption; `letters`: whether
        any value carries a superscript letter."""
        test = TEST_NAMES[self.test] + (f" ({self.permutations} permutations, seed {self.seed})"
                                        if self.test == "fisher" else "")
        letter = ("a superscript letter: significantly better than that system" if letters
                  else "no system is significantly better than another")
        return (f"{test}, two-sided; {CORRECTION_NAMES[self.correction]} over {family} comparisons; "
                f"alpha = {self.alpha:g}; sig: ▲ significantly better, ▼ worse than the reference; {letter}; "
                f"diff CI: 95% paired bootstrap ({self.bootstrap} resamples, seed {self.seed}), a different "
                f"procedure from the test, so an interval that excludes 0 can sit beside p > alpha")


@dataclass(frozen=True)
class Comparison:
    """`system` against `reference` on one metric of one collection (diff = system - reference)."""

    collection: str
    metric: str
    system: str
    reference: str
    system_key: str
    reference_key: str
    system_mean: float
    reference_mean: float
    diff: float
    ci_low: float
    ci_high: float
    wins: int
    ties: int
    losses: int
    p_value: float
    p_adjusted: float
    significant: bool
    seeds_agree: int = 1  # seed pairs whose mean difference has the sign of `diff` (see `seed_pairs`)
    seed_pairs: int = 1

    @property
    def agreement(self) -> str:
        """`2/3`: how many seed pairs agree with the sign of the difference of the means."""
        return f"{self.seeds_agree}/{self.seed_pairs}"

    @property
    def marker(self) -> str:
        """▲ significantly better than the reference, ▼ significantly worse, else empty."""
        if not self.significant or self.diff == 0:
            return ""
        return "▲" if self.diff > 0 else "▼"


@dataclass(frozen=True)
class Group:
    """The systems compared on one collection, each with its letter (a, b, ...)."""

    collection: str
    n_queries: int
    systems: list[System]
    keys: dict[int, str]  # run_id -> letter
    means: dict[int, dict[str, float]]  # run_id -> metric -> mean over the paired queries


@dataclass(frozen=True)
class CompareResult:
    settings: CompareSettings
    metrics: list[str]
    groups: list[Group]
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def several_seeds(self) -> bool:
        """Whether any compared system has runs of more than one seed."""
        return any(len(s.seeds) > 1 for g in self.groups for s in g.systems)

    @property
    def legend(self) -> str:
        legend = self.settings.legend(len(self.comparisons), any(c.significant and c.diff for c in self.comparisons))
        if self.several_seeds:
            legend += ("; a system of several seeds is scored per query by the mean over its seeds; seeds: seed "
                       "pairs whose difference has the sign of diff (paired by seed where both have several)")
        return legend

    def beats(self, collection: str, label: str, metric: str) -> list[str]:
        """Letters of the systems `label` is significantly better than (after correction)."""
        keys = []
        for c in self.comparisons:
            if c.collection != collection or c.metric != metric or not c.significant:
                continue
            if c.system == label and c.diff > 0:
                keys.append(c.reference_key)
            elif c.reference == label and c.diff < 0:
                keys.append(c.system_key)
        return sorted(keys, key=_key_order)

    def as_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (what `drbench compare --format json` prints)."""
        return {
            "settings": asdict(self.settings) | {"metrics": self.metrics, "legend": self.legend},
            "collections": [{"collection": g.collection, "n_queries": g.n_queries, "systems": [
                {"key": g.keys[s.run_id], "label": s.label, "experiment": s.experiment,
                 "variant": s.variant, "index": s.index, "run_id": s.run_id,
                 "seeds": list(s.seeds), "run_ids": list(s.run_ids), "means": g.means[s.run_id]}
                for s in g.systems]} for g in self.groups],
            "comparisons": [asdict(c) | {"marker": c.marker} for c in self.comparisons],
        }


def compare_runs(db: Any, settings: CompareSettings, *, experiments: list[str] | None = None,
                 collection: str | None = None, indexes: list[str] | None = None) -> CompareResult:
    """Compare the selected stored runs as `settings` says; see the module docstring."""
    selected = select_systems(db, experiments, collection, indexes)
    metrics = common_metrics(selected, list(settings.metrics))
    pairs = _pairs(selected, settings.baseline)
    groups: list[Group] = []
    raw: list[dict[str, Any]] = []
    for name, systems in selected.items():
        keys = {s.run_id: _key(i) for i, s in enumerate(systems)}
        means: dict[int, dict[str, float]] = {s.run_id: {} for s in systems}
        n_queries = 0
        for metric in metrics:
            query_ids, per_seed = seed_scores(db, systems, metric)
            scores = {run_id: np.mean(arrays, axis=0) for run_id, arrays in per_seed.items()}
            n_queries = len(query_ids)
            for s in systems:
                means[s.run_id][metric] = float(scores[s.run_id].mean())
            for reference, system in pairs[name]:
                raw.append(_measure(settings, name, metric, reference, system, keys, scores)
                           | _agreement(reference, system, per_seed))
        groups.append(Group(name, n_queries, systems, keys, means))
    adjusted = adjust_p_values([r["p_value"] for r in raw], settings.correction)
    comparisons = [Comparison(**r, p_adjusted=p, significant=p <= settings.alpha)
                   for r, p in zip(raw, adjusted)]
    return CompareResult(settings, metrics, groups, comparisons)


def _measure(settings: CompareSettings, collection: str, metric: str, reference: System,
             system: System, keys: dict[int, str], scores: dict[int, Any]) -> dict[str, Any]:
    ref, sys_ = scores[reference.run_id], scores[system.run_id]
    low, high = bootstrap_ci(sys_ - ref, settings.bootstrap, settings.seed)
    wins, ties, losses = wins_ties_losses(ref, sys_)
    return dict(collection=collection, metric=metric, system=system.label, reference=reference.label,
                system_key=keys[system.run_id], reference_key=keys[reference.run_id],
                system_mean=float(sys_.mean()), reference_mean=float(ref.mean()),
                diff=float(sys_.mean() - ref.mean()), ci_low=low, ci_high=high,
                wins=wins, ties=ties, losses=losses,
                p_value=paired_p_value(ref, sys_, settings.test, permutations=settings.permutations,
                                       seed=settings.seed))


def _agreement(reference: System, system: System, per_seed: dict[int, list[Any]]) -> dict[str, int]:
    """How many seed pairs agree with the sign of the difference of the seed means.

    Two multi-seed systems pair by seed where they share seeds (a strategy against another trained
    with the same seed); otherwise every seed of one meets every seed of the other, so a trained
    variant's seeds each meet BM25's single run.
    """
    ref_seeds, sys_seeds = reference.seeds or (None,), system.seeds or (None,)
    ref_means = dict(zip(ref_seeds, (float(a.mean()) for a in per_seed[reference.run_id])))
    sys_means = dict(zip(sys_seeds, (float(a.mean()) for a in per_seed[system.run_id])))
    shared = [s for s in sys_seeds if s in ref_means] if len(ref_seeds) > 1 and len(sys_seeds) > 1 else []
    pairs = [(sys_means[s], ref_means[s]) for s in shared] or [
        (a, b) for a in sys_means.values() for b in ref_means.values()]
    diff = np.sign(np.mean(list(sys_means.values())) - np.mean(list(ref_means.values())))
    return {"seeds_agree": int(sum(np.sign(a - b) == diff for a, b in pairs)), "seed_pairs": len(pairs)}


def _pairs(selected: dict[str, list[System]], baseline: str | None) -> dict[str, list[tuple[System, System]]]:
    """(reference, system) pairs per collection: all pairs, or each system against its baseline."""
    if baseline is None:
        return {name: list(combinations(systems, 2)) for name, systems in selected.items()}
    everything = [s for systems in selected.values() for s in systems]
    if not any(s.matches(baseline) for s in everything):
        names = list(dict.fromkeys(s.variant for s in everything))
        raise unknown("baseline", baseline, names, "give a variant, experiment/variant or variant@index")
    pairs: dict[str, list[tuple[System, System]]] = {}
    for name, systems in selected.items():
        candidates = [s for s in systems if s.matches(baseline)]
        if not candidates:
            raise CompareError(f"baseline {baseline!r} has no run on {name}; pass --collection to "
                               "compare only where it has one")
        pairs[name] = [(_baseline_for(s, candidates, baseline), s) for s in systems if s not in candidates]
    return pairs


def _baseline_for(system: System, candidates: list[System], baseline: str) -> System:
    """The baseline run closest to `system`: same index and experiment, else same index, ..."""
    if len(candidates) == 1:
        return candidates[0]
    for same in (lambda c: c.index == system.index and c.experiment == system.experiment,
                 lambda c: c.index == system.index, lambda c: c.experiment == system.experiment):
        close = [c for c in candidates if same(c)]
        if len(close) == 1:
            return close[0]
    options = ", ".join(f"{c.experiment}/{c.variant}@{c.index}" for c in candidates)
    raise CompareError(f"baseline {baseline!r} is ambiguous for {system.label}: {options}; "
                       "name one as experiment/variant@index")


def _key(i: int) -> str:
    letters = len(_KEYS)
    return _KEYS[i] if i < letters else _key(i // letters - 1) + _KEYS[i % letters]


def _key_order(key: str) -> tuple[int, str]:
    return len(key), key
