"""Rich tables: one per collection, variants x metrics, the best value per column marked."""

from __future__ import annotations

from itertools import groupby

from rich.console import Console
from rich.table import Table

from leaderboard.rows import LeaderboardRow


def _metric_order(rows: list[LeaderboardRow]) -> list[str]:
    return list(dict.fromkeys(m for row in rows for m in row.metrics))


def _time(row: LeaderboardRow) -> str:
    seconds = sum(v for k, v in row.timings.items() if k in ("train", "encode_docs", "encode_queries",
                                                               "index", "search"))
    return f"{seconds:,.1f}s" if row.timings else "-"


def collection_table(collection: str, rows: list[LeaderboardRow]) -> Table:
    """The table for one collection; the best value of each metric is bold and starred."""
    metrics = _metric_order(rows)
    several = len({row.experiment for row in rows}) > 1
    n_queries = max((row.n_queries or 0 for row in rows), default=0)
    table = Table(title=f"{collection}  ({n_queries} queries)", title_justify="left",
                  caption="* best per column", caption_justify="left")
    if several:
        table.add_column("experiment")
    table.add_column("variant", style="bold")
    table.add_column("index")
    for metric in metrics:
        table.add_column(metric, justify="right")
    table.add_column("time", justify="right", style="dim")
    best = {m: max((row.metrics[m] for row in rows if m in row.metrics), default=None) for m in metrics}
    for row in rows:
        cells = [row.experiment] if several else []
        cells += [row.variant, row.index]
        for metric in metrics:
            value = row.metrics.get(metric)
            if value is None:
                cells.append("-")
            elif best[metric] is not None and value >= best[metric] - 1e-12:
                cells.append(f"[bold green]{value:.4f}*[/bold green]")
            else:
                cells.append(f"{value:.4f} ")
        cells.append(_time(row))
        table.add_row(*cells)
    return table


def render(rows: list[LeaderboardRow], console: Console | None = None) -> None:
    """Print one table per collection (collections in first-seen order)."""
    console = console or Console()
    if not rows:
        console.print("no results stored yet: run `drbench run RECIPE` first")
        return
    order = list(dict.fromkeys(row.collection for row in rows))
    ordered = sorted(rows, key=lambda row: order.index(row.collection))
    for collection, group in groupby(ordered, key=lambda row: row.collection):
        console.print(collection_table(collection, list(group)))
