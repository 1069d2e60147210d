"""Rich tables: one per collection, variants x metrics, the best value per column marked."""

from __future__ import annotations

from itertools import groupby

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from leaderboard.rows import LeaderboardRow


def _metric_order(rows: list[LeaderboardRow]) -> list[str]:
    return list(dict.fromkeys(m for row in rows for m in row.metrics))


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 60:,.1f}m" if value >= 600 else f"{value:,.1f}s"


def _eval_time(row: LeaderboardRow) -> str:
    return _seconds(row.eval_seconds)


def _index_name(row: LeaderboardRow) -> str:
    """The index, with the faiss release beside a compressed one: its codebooks (k-means) can
    differ between releases, so its numbers are only comparable within one."""
    if row.faiss and row.index_stats and row.index != "Flat":
        return f"{row.index} (faiss {row.faiss.split()[0]})"
    return row.index


def _index_cells(row: LeaderboardRow) -> list[str]:
    stats = row.index_stats
    if not stats:
        return ["-", "-", "-", "-"]
    recall = stats.get("flat_recall@10")
    return [f"{stats['bytes_per_doc']:,.0f}", _seconds(stats.get("build_seconds")), f"{stats['ms_per_query']:.2f}",
            "-" if recall is None else f"{recall:.3f}"]


def _metric_cell(row: LeaderboardRow, metric: str, best: float | None) -> str:
    """`0.6421 ±0.0031` (mean ± sd over seeds) or `0.6421`; the best mean bold and starred."""
    value = row.metrics.get(metric)
    if value is None:
        return "-"
    spread = f" ±{row.sd.get(metric, 0.0):.4f}" if len(row.seeds) > 1 else ""
    if best is not None and value >= best - 1e-12:
        return f"[bold green]{value:.4f}*[/bold green]{spread}"
    return f"{value:.4f} {spread}"


def collection_table(collection: str, rows: list[LeaderboardRow], per_seed: bool = False) -> Table:
    """The table for one collection; the best value (mean over seeds) of each metric is bold and
    starred. Rows of several seeds show ± their sample standard deviation and how many seeds;
    `per_seed` rows (one per seed run) show their seed."""
    metrics = _metric_order(rows)
    several = len({row.experiment for row in rows}) > 1
    n_queries = max((row.n_queries or 0 for row in rows), default=0)
    caption = "* best per column" + ("; ± sample standard deviation over seeds" if any(
        len(row.seeds) > 1 for row in rows) and not per_seed else "")
    # escape: names hold brackets (`adore[lr=2e-05]`, `train[holdout:0.1]`) that rich takes for markup
    table = Table(title=f"{escape(collection)}  ({n_queries} queries)", title_justify="left",
                  caption=caption, caption_justify="left")
    if several:
        table.add_column("experiment")
    table.add_column("variant", style="bold")
    if per_seed:
        table.add_column("seed", justify="right")
    multi = not per_seed and any(len(row.seeds) > 1 for row in rows)
    if multi:
        table.add_column("seeds", justify="right")
    chosen = any(row.chosen for row in rows)
    if chosen:
        table.add_column("chosen on dev")
    shows_trained_on = any(row.trained_on for row in rows)
    if shows_trained_on:
        table.add_column("trained on")
    table.add_column("index")
    for metric in metrics:
        table.add_column(metric, justify="right")
    indexes = len({row.index for row in rows if row.index_stats}) > 1
    if indexes:
        for column in ("bytes/doc", "build", "ms/query", "flat R@10"):
            table.add_column(column, justify="right", style="cyan")
    trained = any("train" in row.timings for row in rows)
    if trained:
        table.add_column("train", justify="right", style="dim")
    costs = any(row.cost is not None for row in rows)
    if costs:  # training time along the model's chain, and documents encoded + queries seen for it
        table.add_column("cost (time, units)", justify="right", style="dim")
    table.add_column("eval time", justify="right", style="dim")
    table.add_column("precision", style="dim")
    best = {m: max((row.metrics[m] for row in rows if m in row.metrics), default=None) for m in metrics}
    for row in rows:
        cells = [escape(row.experiment)] if several else []
        cells += [escape(row.variant)]
        if per_seed:
            cells.append(", ".join(map(str, row.seeds)) or "-")
        if multi:
            cells.append(str(len(row.seeds)))
        if chosen:
            cells.append(escape(row.chosen or ""))
        cells += ([escape(row.trained_on or "")] if shows_trained_on else []) + [escape(_index_name(row))]
        cells += [_metric_cell(row, metric, best[metric]) for metric in metrics]
        if indexes:
            cells += _index_cells(row)
        if trained:
            cells.append(_seconds(row.timings.get("train")))
        if costs:
            cells.append(row.cost_label or "-")
        cells.append(_eval_time(row))
        cells.append(row.precision_label or "-")
        table.add_row(*cells)
    return table


def render(rows: list[LeaderboardRow], console: Console | None = None, per_seed: bool = False) -> None:
    """Print one table per collection (collections in first-seen order); `per_seed`: the rows are
    one per seed run (`leaderboard_rows(per_seed=True)`)."""
    console = console or Console()
    if not rows:
        console.print("no results stored yet: run `drbench run RECIPE` first")
        return
    order = list(dict.fromkeys(row.collection for row in rows))
    first = _metric_order(rows)[:1]

    indexes = list(dict.fromkeys(row.index for row in rows))

    def rank(row: LeaderboardRow) -> tuple[int, int, float]:
        # Within a collection, one block per index, best first on the first metric.
        value = -row.metrics.get(first[0], float("-inf")) if first else 0.0
        return order.index(row.collection), indexes.index(row.index), value

    ordered = sorted(rows, key=rank)
    for collection, group in groupby(ordered, key=lambda row: row.collection):
        console.print(collection_table(collection, list(group), per_seed))
