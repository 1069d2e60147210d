"""Show a :class:`CompareResult`: rich tables, or Markdown, LaTeX, CSV, JSON for papers and scripts.

Each collection gets a summary (systems x metrics, a value superscripted with the letters of the
systems it is significantly better than, as ranx's Report does) and the comparisons behind it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from leaderboard.compare import CompareResult, Comparison, Group

FORMATS = ("table", "markdown", "latex", "csv", "json")
CSV_FIELDS = tuple(Comparison.__dataclass_fields__) + ("marker",)
_SUPERSCRIPT = str.maketrans("abcdefghijklmnoprstuvwxyz", "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻ")
_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def render_table(result: CompareResult, console: Console) -> None:
    """Print a summary and a comparisons table per collection, then the legend."""
    for group in result.groups:
        console.print(_summary_table(result, group))
        rows = [c for c in result.comparisons if c.collection == group.collection]
        if rows:
            console.print(_detail_table(rows, _floor(result), result.several_seeds))
    console.print(f"[dim]{result.legend}[/dim]", highlight=False, soft_wrap=True)


def format_result(result: CompareResult, fmt: str) -> str:
    """The result as `markdown`, `latex`, `csv` or `json` text (ending in a newline)."""
    if fmt == "json":
        return json.dumps(result.as_dict(), indent=2) + "\n"
    if fmt == "csv":
        return to_csv(result)
    if fmt == "markdown":
        return to_markdown(result)
    if fmt == "latex":
        return to_latex(result)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _value(result: CompareResult, group: Group, label: str, run_id: int, metric: str) -> tuple[float, list[str]]:
    return group.means[run_id][metric], result.beats(group.collection, label, metric)


def _summary_table(result: CompareResult, group: Group) -> Table:
    # escape: names hold brackets (`star[lr=2e-05]`, `train[holdout:0.1]`) that rich takes for markup
    table = Table(title=f"{escape(group.collection)}  ({group.n_queries} queries)", title_justify="left")
    table.add_column("", style="dim")
    table.add_column("system", style="bold")
    seeds = result.several_seeds
    if seeds:
        table.add_column("seeds", justify="right")
    for metric in result.metrics:
        table.add_column(metric, justify="left")
    best = {m: max(group.means[s.run_id][m] for s in group.systems) for m in result.metrics}
    for system in group.systems:
        cells = [group.keys[system.run_id], escape(system.label)] + ([str(len(system.seeds) or 1)] if seeds else [])
        for metric in result.metrics:
            value, beats = _value(result, group, system.label, system.run_id, metric)
            text = f"{value:.4f}{''.join(beats).translate(_SUPERSCRIPT)}"
            cells.append(f"[bold]{text}[/bold]" if value >= best[metric] - 1e-12 else text)
        table.add_row(*cells)
    return table


def _detail_table(rows: list[Comparison], floor: float, seeds: bool = False) -> Table:
    table = Table(title="comparisons (diff = system - reference)", title_justify="left")
    columns = [("metric", "left"), ("system", "left"), ("vs", "left"), ("diff", "right"), ("95% CI", "right"),
               ("W/T/L", "right")] + ([("seeds", "right")] if seeds else []) + [
               ("p", "right"), ("p adj", "right"), ("sig", "center")]
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for c in rows:
        colour = "green" if c.marker == "▲" else "red" if c.marker == "▼" else None
        marker = f"[{colour}]{c.marker}[/{colour}]" if colour else ""
        table.add_row(c.metric, escape(c.system), escape(c.reference), f"{c.diff:+.4f}",
                      escape(f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]"),
                      f"{c.wins}/{c.ties}/{c.losses}", *([c.agreement] if seeds else []), _p(c.p_value, floor),
                      _p(c.p_adjusted, floor), marker)
    return table


def _p(p: float, floor: float = 1e-4) -> str:
    # A randomization p of 0 means "none of the permutations": below 1/permutations, not zero.
    return f"<{floor:g}" if p < floor else f"{p:.4f}"


def _floor(result: CompareResult) -> float:
    return 1.0 / result.settings.permutations if result.settings.test == "fisher" else 1e-4


def to_csv(result: CompareResult) -> str:
    """One row per comparison; `csv.DictReader` reads it back."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for c in result.comparisons:
        writer.writerow(asdict(c) | {"marker": c.marker})
    return buffer.getvalue()


def to_markdown(result: CompareResult) -> str:
    """A summary and a comparisons table per collection, the legend in italics."""
    lines: list[str] = []
    for group in result.groups:
        lines += [f"### {group.collection} ({group.n_queries} queries)", "",
                  "| | system | " + " | ".join(result.metrics) + " |",
                  "|---|---|" + "---:|" * len(result.metrics)]
        for system in group.systems:
            cells = []
            for metric in result.metrics:
                value, beats = _value(result, group, system.label, system.run_id, metric)
                cells.append(f"{value:.4f}{''.join(beats).translate(_SUPERSCRIPT)}")
            lines.append(f"| {group.keys[system.run_id]} | {_md(system.label)} | " + " | ".join(cells) + " |")
        rows = [c for c in result.comparisons if c.collection == group.collection]
        if rows:
            seeds = result.several_seeds
            lines += ["", "| metric | system | vs | diff | 95% CI | W/T/L | " + ("seeds | " if seeds else "")
                      + "p | p adj | sig |",
                      "|---|---|---|---:|---:|---:|" + ("---:|" if seeds else "") + "---:|---:|:---:|"]
            floor = _floor(result)
            lines += [f"| {c.metric} | {_md(c.system)} | {_md(c.reference)} | {c.diff:+.4f} | "
                      f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}] | {c.wins}/{c.ties}/{c.losses} | "
                      + (f"{c.agreement} | " if seeds else "")
                      + f"{_p(c.p_value, floor)} | {_p(c.p_adjusted, floor)} | {c.marker} |" for c in rows]
        lines.append("")
    lines.append(f"*{result.legend}*")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", r"\|")


def latex_escape(text: str) -> str:
    """`text` with LaTeX's special characters escaped (`star_adore` -> `star\\_adore`)."""
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(result: CompareResult) -> str:
    """One `tabular` per collection: systems x metrics, best in bold, `$^{ab}$` significance."""
    parts: list[str] = [f"% {latex_escape(result.legend)}"]
    for group in result.groups:
        best = {m: max(group.means[s.run_id][m] for s in group.systems) for m in result.metrics}
        parts += [f"% {latex_escape(group.collection)} ({group.n_queries} queries)",
                  r"\begin{tabular}{ll" + "r" * len(result.metrics) + "}", r"\hline",
                  " & System & " + " & ".join(latex_escape(m) for m in result.metrics) + r" \\", r"\hline"]
        for system in group.systems:
            cells = []
            for metric in result.metrics:
                value, beats = _value(result, group, system.label, system.run_id, metric)
                text = f"{value:.4f}"
                if value >= best[metric] - 1e-12:
                    text = rf"\textbf{{{text}}}"
                cells.append(text + (f"$^{{{''.join(beats)}}}$" if beats else ""))
            parts.append(f"{group.keys[system.run_id]} & {latex_escape(system.label)} & "
                         + " & ".join(cells) + r" \\")
        parts += [r"\hline", r"\end{tabular}", ""]
    return "\n".join(parts)
