"""Gather everything `drbench report` shows from the store: per collection the leaderboard
boards, the comparison with a baseline and of all pairs (the code of `drbench compare`), the
plots, the per-query drill-down; per experiment its provenance and training curves.

Reads SQLite (and, for the drill-down's texts, the collection through ir_datasets); never torch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.store import list_experiments, list_runs, utc_now
from leaderboard.compare import CompareResult, CompareSettings, compare_runs
from leaderboard.errors import CompareError
from leaderboard.plot import collection_plots, training_plots
from leaderboard.report.board import Board, board
from leaderboard.report.drilldown import drill_down
from leaderboard.report.provenance import Provenance, provenance
from leaderboard.report.texts import read_texts
from leaderboard.rows import leaderboard_rows
from leaderboard.select import System, common_metrics, seed_scores, select_systems
from leaderboard.stats import bootstrap_ci


@dataclass(frozen=True)
class ReportOptions:
    experiments: tuple[str, ...] = ()  # empty: every stored experiment
    collection: str | None = None
    baseline: str | None = None  # None: each collection's first zero-shot system, else its first system
    queries: int = 200  # drill-down queries per collection (0: all)
    settings: CompareSettings = field(default_factory=CompareSettings)
    mirror: Path | None = None  # where the drill-down's collections can be fetched from


@dataclass(frozen=True)
class CollectionReport:
    name: str
    n_queries: int
    metrics: list[str]
    board: Board
    baseline: str | None
    versus: CompareResult | None
    pairs: CompareResult
    plots: list[tuple[str, str]]  # (caption, inline SVG)
    drill: dict[str, Any]
    note: str = ""  # why the baseline comparison is missing


@dataclass(frozen=True)
class ExperimentReport:
    provenance: Provenance
    plots: list[tuple[str, str]]


@dataclass(frozen=True)
class Report:
    store: str
    generated_at: str
    options: ReportOptions
    collections: list[CollectionReport]
    experiments: list[ExperimentReport]
    skipped: list[str]


def build_report(db: Any, store: str, options: ReportOptions) -> Report:
    """The report of the runs `options` selects; CompareError for an empty store or a selection
    that names nothing stored."""
    experiments = list(options.experiments) or None
    groups = select_systems(db, experiments, options.collection)  # raises for unknown names
    if options.baseline and not any(s.matches(options.baseline) for ss in groups.values() for s in ss):
        names = sorted({s.variant for ss in groups.values() for s in ss})
        raise CompareError(f"unknown baseline {options.baseline!r}; stored variants: {', '.join(names)}")
    rows = [r for r in leaderboard_rows(db, collection=options.collection)
            if experiments is None or r.experiment in experiments]
    _declare_stored(db, experiments)
    training, skipped = training_plots(db, groups)
    figures = {p.scope: (p.caption, _svg(p.figure)) for p in training}
    sections = []
    for name in groups:
        # Per collection, as `compare -c` selects: the same labels, each collection's own metrics.
        systems = select_systems(db, experiments, name)[name]
        kinds = {r.run_ids[0]: r.kind for r in rows if r.collection == name and r.run_ids}
        section, missed = _collection(db, name, systems, [r for r in rows if r.collection == name], kinds,
                                      options, experiments)
        sections.append(section)
        skipped += missed
    runs = list_runs(db)
    if experiments:
        runs = [r for r in runs if r["experiment"] in experiments]
    if options.collection:
        runs = [r for r in runs if r["collection"] == options.collection]
    records = [ExperimentReport(p, [figures[p.experiment]] if p.experiment in figures else [])
               for p in provenance(list_experiments(db), runs)]
    return Report(store, utc_now(), options, sections, records, skipped)


def _declare_stored(db: Any, experiments: list[str] | None) -> None:
    """The collections the stored recipes declared (`[collections]`), so that the drill-down
    reads their texts from their files; a recipe that no longer parses declares nothing."""
    from harness.data.local.declared import declare
    from harness.errors import RecipeError
    from harness.recipe.loader import parse_declared

    found = {}
    for record in list_experiments(db):
        if (experiments is None or record["name"] in experiments) and record.get("recipe_text"):
            try:
                declared = parse_declared(record["recipe_text"], record.get("recipe_path") or "<recipe>")
            except RecipeError:
                continue
            found.update({c.name: c for c in declared})
    declare(tuple(found.values()))


def _collection(db: Any, name: str, systems: list[System], rows: list[Any], kinds: dict[int, str],
                options: ReportOptions, experiments: list[str] | None) -> tuple[CollectionReport, list[str]]:
    metrics = common_metrics({name: systems}, None)
    scores = {}
    for metric in metrics:
        query_ids, per_seed = seed_scores(db, systems, metric)
        scores[metric] = (query_ids, {run_id: sum(arrays) / len(arrays) for run_id, arrays in per_seed.items()})
    cis = {rid: {m: bootstrap_ci(scores[m][1][s.run_id], options.settings.bootstrap, options.settings.seed)
                 for m in metrics} for s in systems for rid in s.run_ids or (s.run_id,)}
    labels = {rid: s.label for s in systems for rid in s.run_ids or (s.run_id,)}
    settings = options.settings
    baseline, versus, note = _baseline(systems, kinds, options.baseline), None, ""
    if baseline is not None and not any(s.matches(baseline) for s in systems):
        note = f"the baseline {baseline} has no run on {name}"
    elif baseline is not None and len(systems) > 1:
        try:
            versus = compare_runs(db, _with(settings, baseline, metrics), experiments=experiments, collection=name)
        except CompareError as exc:
            note = str(exc)
    pairs = compare_runs(db, _with(settings, None, metrics), experiments=experiments, collection=name)
    drawn, skipped = collection_plots(db, name, systems, metrics, settings.bootstrap, settings.seed)
    plots = [(plot.caption, _svg(plot.figure)) for plot in drawn]
    drill = drill_down(db, systems, scores, lambda qs, ds: read_texts(name, qs, ds, options.mirror), options.queries)
    return CollectionReport(name, len(scores[metrics[0]][0]), metrics, board(name, rows, labels, cis, versus),
                            baseline, versus, pairs, plots, drill, note), skipped


def _baseline(systems: list[System], kinds: dict[int, str], asked: str | None) -> str | None:
    """The name `compare_runs` gets as baseline: the one asked for, else the first zero-shot
    system, else the first system (as `experiment/variant@index`, which names exactly one)."""
    if asked:
        return asked
    if not systems:
        return None
    chosen = next((s for s in systems if kinds.get(s.run_id) == "zero-shot"), systems[0])
    return f"{chosen.experiment}/{chosen.variant}@{chosen.index}"


def _with(settings: CompareSettings, baseline: str | None, metrics: list[str]) -> CompareSettings:
    return replace(settings, baseline=baseline, metrics=tuple(metrics))


def _svg(figure: Any) -> str:
    """`figure` as an inline <svg> element: text kept as text (small, selectable), no date or
    random ids, so the same store gives the same page."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "drbench"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]
