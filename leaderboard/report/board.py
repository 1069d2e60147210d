"""The report's leaderboard: one table per collection, a row per system and index, each cell
ready for the page.

A metric cell is the mean over seeds, its standard deviation over seeds, the 95% bootstrap CI of
the per-query mean (shown on hover), a ▲/▼ where `drbench compare` finds the system
significantly better or worse than the baseline (after correction), and a star on the best value
of the column. Every cell carries the value the page sorts by.
"""

from __future__ import annotations

from dataclasses import dataclass
from leaderboard.compare import CompareResult, Comparison
from leaderboard.rows import LeaderboardRow

@dataclass(frozen=True)
class Cell:
    text: str
    sort: float | str | None  # what the column sorts by; None sorts last
    best: bool = False
    marker: str = ""  # ▲ / ▼ against the baseline
    hint: str = ""  # shown on hover


@dataclass(frozen=True)
class Board:
    collection: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


def board(collection: str, rows: list[LeaderboardRow], labels: dict[int, str],
          cis: dict[int, dict[str, tuple[float, float]]], versus: CompareResult | None) -> Board:
    """The board of one collection: a row per system and index (leaderboard rows, means over
    seeds), in the order of `labels` (keyed by a row's first run id, like `cis`); `versus` is
    the comparison of every system with the baseline, or None without one."""
    order = {run_id: i for i, run_id in enumerate(labels)}
    members = sorted(rows, key=lambda r: order.get(r.run_ids[0], len(order)) if r.run_ids else len(order))
    metrics = list(dict.fromkeys(m for r in members for m in r.metrics))
    best = {m: max((r.metrics[m] for r in members if r.metrics.get(m) is not None), default=None) for m in metrics}
    chosen = any(r.chosen for r in members)
    columns = ("system", "index", "kind", "seeds", *(("chosen on dev",) if chosen else ()), *metrics,
               "train time", "cost", "eval time", "precision", "bytes/doc")
    body = []
    references = {c.reference for c in versus.comparisons} if versus else set()
    for row in members:
        label = labels.get(row.run_ids[0], row.variant) if row.run_ids else row.variant
        marks = {c.metric: c for c in versus.comparisons if c.system == label} if versus else {}
        body.append((
            Cell(label, label, hint="the baseline" if label in references else ""),
            Cell(row.index, row.index),
            Cell(row.kind, row.kind),
            Cell(str(len(row.seeds)) if row.seeds else "-", len(row.seeds),
                 hint=f"seed{'s' if len(row.seeds) > 1 else ''} {', '.join(map(str, row.seeds))}" if row.seeds else ""),
            *((Cell(row.chosen or "-", row.chosen or None),) if chosen else ()),
            *(_metric(row, m, best[m], cis.get(row.run_ids[0], {}).get(m) if row.run_ids else None,
                      marks.get(m)) for m in metrics),
            _seconds(row.timings.get("train")),
            Cell(row.cost_label or "-", None if row.cost is None else row.cost["units"],
                 hint="" if row.cost is None else f"{row.cost['seconds']:,.0f} s of training along its chain; "
                 f"{row.cost['documents']:,.0f} documents encoded and {row.cost['examples']:,.0f} training queries "
                 "seen"),
            _seconds(row.eval_seconds),
            Cell(_precision(row), None if row.ran_on["precision"] is None else _precision(row)),
            _bytes(row),
        ))
    return Board(collection, columns, tuple(body))


def _metric(row: LeaderboardRow, metric: str, best: float | None, ci: tuple[float, float] | None,
            versus: Comparison | None) -> Cell:
    value = row.metrics.get(metric)
    if value is None:
        return Cell("-", None)
    text = f"{value:.4f}" + (f" ±{row.sd.get(metric, 0.0):.4f}" if len(row.seeds) > 1 else "")
    hints = []
    if ci is not None:
        hints.append(f"95% bootstrap CI of the mean [{ci[0]:.4f}, {ci[1]:.4f}]")
    if len(row.seeds) > 1:
        hints.append(f"mean ± sd over {len(row.seeds)} seeds")
    marker = ""
    if versus is not None:
        marker = versus.marker
        hints.append(f"vs {versus.reference}: {versus.diff:+.4f} [{versus.ci_low:+.4f}, {versus.ci_high:+.4f}], "
                     f"p = {versus.p_value:.4g}, adjusted p = {versus.p_adjusted:.4g}")
    return Cell(text, value, best=best is not None and value >= best - 1e-12, marker=marker, hint="; ".join(hints))


def _seconds(value: float | None) -> Cell:
    if value is None:
        return Cell("-", None)
    return Cell(f"{value / 60:,.1f} min" if value >= 600 else f"{value:,.1f} s", value)


def _precision(row: LeaderboardRow) -> str:
    return row.precision_label or "-"


def _bytes(row: LeaderboardRow) -> Cell:
    size = row.index_stats.get("bytes_per_doc")
    return Cell("-", None) if size is None else Cell(f"{size:,.0f}", size)
