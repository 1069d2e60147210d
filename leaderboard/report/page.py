"""`drbench report`'s page: one self-contained HTML file. Styles, script and figures are inline
(the figures as SVG), so it opens offline and makes no request; the drill-down's data rides in
the page as JSON and the script renders the query picked."""

from __future__ import annotations

import json
import shlex
from html import escape
from importlib.resources import files
from typing import Any

from leaderboard.compare import CompareResult, Comparison
from leaderboard.report.board import Board
from leaderboard.report.build import CollectionReport, ExperimentReport, Report
from leaderboard.stats import CORRECTION_NAMES, TEST_NAMES


def render_page(report: Report) -> str:
    assets = files("leaderboard.report") / "assets"
    style = (assets / "report.css").read_text(encoding="utf-8")
    script = (assets / "report.js").read_text(encoding="utf-8")
    title = "drbench report: " + ", ".join(e.provenance.experiment for e in report.experiments)
    nav = " ".join(f'<a href="#{_anchor("c", c.name)}">{escape(c.name)}</a>' for c in report.collections)
    nav += " " + " ".join(f'<a href="#{_anchor("e", e.provenance.experiment)}">{escape(e.provenance.experiment)} '
                          "(provenance)</a>" for e in report.experiments)
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        # No request may leave the page: the policy forbids any that the page would make.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
        'script-src \'unsafe-inline\'; img-src data:">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>", f"<style>{style}</style>", "</head>", "<body>",
        "<header>", f"<h1>{escape(title)}</h1>",
        f'<p class="muted">store <code>{escape(report.store)}</code>; written {escape(report.generated_at)} by '
        "<code>drbench report</code>. Click a column header to sort; hover a value for its CI and its test against "
        "the baseline.</p>", f"<nav>{nav}</nav>", "</header>",
    ]
    for section in report.collections:
        parts.append(_collection(section))
    for experiment in report.experiments:
        parts.append(_experiment(experiment))
    if report.skipped:
        parts.append('<h2>Not shown</h2><ul class="muted">' +
                     "".join(f"<li>{escape(s)}</li>" for s in report.skipped) + "</ul>")
    parts += [f"<script>{script}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _anchor(prefix: str, name: str) -> str:
    return prefix + "-" + "".join(ch if ch.isalnum() else "-" for ch in name)


def _collection(section: CollectionReport) -> str:
    parts = [f'<section id="{_anchor("c", section.name)}" data-collection="{escape(section.name)}">',
             f"<h2>{escape(section.name)} <span class=\"muted\">({section.n_queries:,} queries)</span></h2>"]
    versus = section.versus
    parts.append(_board(section.board))
    parts.append(f'<p class="legend">Mean over queries; over seeds too where a row has several (± their standard '
                 "deviation). ★: the best value of a column. Hover a value for its 95% bootstrap CI (queries "
                 "resampled) and its test against the baseline.</p>")
    if versus is not None:
        parts.append(f'<p class="legend">▲/▼: significantly better/worse than the baseline '
                     f"<b>{escape(_baseline_label(section))}</b>: {escape(_tests(versus))} (the numbers of "
                     f"<code>drbench compare -c {escape(shlex.quote(section.name))} -b "
                     f"{escape(shlex.quote(section.baseline or ''))}</code>).</p>")
    elif section.note:
        parts.append(f'<p class="legend warn">no baseline comparison: {escape(section.note)}</p>')
    if versus is not None and versus.comparisons:
        parts.append(f"<h3>Against the baseline ({escape(_baseline_label(section))})</h3>")
        parts.append(f'<p class="legend">diff: system minus baseline; 95% CI: paired bootstrap of the diff, a '
                     f"different procedure from the test, so an interval that excludes 0 can sit beside p &gt; alpha; "
                     f"W/T/L: queries won, tied, lost; seeds agree: seed pairs whose difference has the sign of diff."
                     f"</p>")
        parts.append(_comparisons(versus.comparisons))
    if section.pairs.comparisons:
        parts.append("<h3>All pairs</h3>")
        parts.append(f'<p class="legend">Row against column: ▲ the row system is significantly better, ▼ worse, '
                     f"· no significant difference; hover for the difference and p. {escape(_tests(section.pairs))}."
                     "</p>")
        for metric in section.metrics:
            parts.append(_matrix(section.pairs, metric))
    for caption, svg in section.plots:
        parts.append(f"<figure>{svg}<figcaption>{escape(section.name)}: {escape(caption)}</figcaption></figure>")
    parts.append(_drill(section))
    parts.append("</section>")
    return "\n".join(parts)


def _tests(result: CompareResult) -> str:
    """What the markers of `result` mean, in one sentence (the test, correction and family)."""
    settings = result.settings
    test = TEST_NAMES[settings.test] + (f" ({settings.permutations} permutations)" if settings.test == "fisher" else "")
    text = (f"{test}, two-sided, per query; {CORRECTION_NAMES[settings.correction]} over the "
            f"{len(result.comparisons)} comparisons of this table; alpha = {settings.alpha:g}")
    if result.several_seeds:
        text += "; a system of several seeds is scored per query by the mean over its seeds"
    return text


def _baseline_label(section: CollectionReport) -> str:
    versus = section.versus
    references = list(dict.fromkeys(c.reference for c in versus.comparisons)) if versus else []
    return ", ".join(references) or (section.baseline or "")


def _board(board: Board) -> str:
    numeric = [all(isinstance(row[i].sort, (int, float)) or row[i].sort is None for row in board.rows)
               for i in range(len(board.columns))]
    head = "".join(f'<th class="{"num" if numeric[i] else "text"}">{escape(c)}</th>'
                   for i, c in enumerate(board.columns))
    body = []
    for row in board.rows:
        cells = []
        for i, cell in enumerate(row):
            classes = [c for c in ("best" if cell.best else "", "text" if not numeric[i] else "") if c]
            attrs = f' data-sort="{escape(str(cell.sort))}"' if cell.sort is not None else ""
            attrs += f' class="{" ".join(classes)}"' if classes else ""
            attrs += f' title="{escape(cell.hint)}"' if cell.hint else ""
            marker = (f' <span class="{"up" if cell.marker == "▲" else "down"}">{cell.marker}</span>'
                      if cell.marker else "")
            cells.append(f"<td{attrs}>{escape(cell.text)}{marker}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="sortable leaderboard">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def _comparisons(comparisons: list[Comparison]) -> str:
    head = ("system", "metric", "mean", "baseline", "diff", "95% CI", "p", "adjusted p", "W/T/L", "seeds agree", "sig")
    rows = []
    for c in comparisons:
        sig = f'<span class="{"up" if c.marker == "▲" else "down"}">{c.marker}</span>' if c.marker else ""
        cells = [(c.system, c.system), (c.metric, c.metric), (f"{c.system_mean:.4f}", c.system_mean),
                 (f"{c.reference_mean:.4f}", c.reference_mean), (f"{c.diff:+.4f}", c.diff),
                 (f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]", c.ci_low), (f"{c.p_value:.4g}", c.p_value),
                 (f"{c.p_adjusted:.4g}", c.p_adjusted), (f"{c.wins}/{c.ties}/{c.losses}", c.wins),
                 (c.agreement, c.seeds_agree)]
        rows.append("<tr>" + "".join(f'<td data-sort="{escape(str(s))}">{escape(t)}</td>' for t, s in cells)
                    + f'<td data-sort="{escape(c.marker)}">{sig}</td></tr>')
    header = "".join(f'<th class="{"text" if h in ("system", "metric") else "num"}">{h}</th>' for h in head)
    return (f'<div class="scroll"><table class="sortable compare"><thead><tr>{header}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _matrix(pairs: CompareResult, metric: str) -> str:
    found = [c for c in pairs.comparisons if c.metric == metric]
    labels = list(dict.fromkeys(label for c in found for label in (c.reference, c.system)))
    cell: dict[tuple[str, str], tuple[float, float, bool]] = {}
    for c in found:  # diff = system - reference: the row `system` against the column `reference`
        cell[(c.system, c.reference)] = (c.diff, c.p_adjusted, c.significant)
        cell[(c.reference, c.system)] = (-c.diff, c.p_adjusted, c.significant)
    rows = []
    for row in labels:
        tds = []
        for column in labels:
            if row == column:
                tds.append('<td class="self"></td>')
                continue
            diff, p, significant = cell[(row, column)]
            mark, kind = ("▲", "up") if significant and diff > 0 else ("▼", "down") if significant and diff < 0 \
                else ("·", "")
            title = f"{row} vs {column} on {metric}: {diff:+.4f}, adjusted p = {p:.4g}"
            tds.append(f'<td class="{kind}" title="{escape(title)}">{mark}</td>')
        rows.append(f"<tr><th>{escape(row)}</th>{''.join(tds)}</tr>")
    header = "".join(f"<th>{escape(label)}</th>" for label in labels)
    return (f'<div class="scroll"><table class="matrix" data-metric="{escape(metric)}"><caption>{escape(metric)}'
            f"</caption><thead><tr><th></th>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _drill(section: CollectionReport) -> str:
    drill = section.drill
    covered = (f"all {drill['total']:,} queries" if drill["covered"] == drill["total"] else
               f"the {drill['covered']:,} of {drill['total']:,} queries where the systems differ most on "
               f"{drill['metrics'][0]} (drbench report --queries N to change)")
    note = (f'<p class="legend warn">{escape(drill["missing"])}</p>' if drill.get("missing") else "")
    # Inside <script> the HTML parser still sees "</script>" and "<!--": no "<", ">" or "&" may
    # appear raw in the JSON (\u escapes are the same JSON).
    data = (json.dumps(drill, ensure_ascii=False, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
    return (f'<div class="drill" data-collection="{escape(section.name)}"><h3>Per query</h3>'
            f'<p class="legend">Pick a query to see every system\'s top {drill["top"]} (relevance label, title, '
            f"[doc id, score]) and its per-query metrics. Covers {escape(covered)}, widest spread first; a system "
            "of several seeds shows its first seed's ranking and its metrics averaged over seeds.</p>" + note +
            '<label>query <select><option value="">pick a query…</option></select></label>'
            f'<script type="application/json">{data}</script><div class="drill-out"></div></div>')


def _experiment(experiment: ExperimentReport) -> str:
    p = experiment.provenance
    commit = (p.git_commit or "unknown") + (" (uncommitted changes: the recipe text below is what ran)"
                                            if p.git_dirty else "")
    facts: list[tuple[str, Any]] = [
        ("recipe", p.recipe_path or "-"), ("recipe sha256", p.recipe_hash or "-"), ("git commit", commit),
        ("runs", p.runs), ("python", p.python or "-"), ("platform", p.platform or "-"),
        ("started", p.started_at or "-"), ("finished", p.finished_at or "-"),
        ("faiss", ", ".join(p.faiss) or "-")]
    rows = "".join(f'<tr><th>{escape(k)}</th><td class="text">{escape(str(v))}</td></tr>' for k, v in facts)
    packages = "".join(f'<tr><td class="text">{escape(k)}</td><td class="text">{escape(str(v))}</td></tr>'
                       for k, v in sorted(p.packages.items()))
    archives = "".join(f'<tr><td class="text">{escape(k)}</td><td class="text"><code>{escape(str(v))}</code></td></tr>'
                       for k, v in p.archives.items())
    figures = "".join(f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"
                      for caption, svg in experiment.plots)
    return (f'<section id="{_anchor("e", p.experiment)}" class="provenance" data-experiment="{escape(p.experiment)}">'
            f"<h2>{escape(p.experiment)}: provenance</h2>"
            f'<p>Reproduce:</p><pre class="command">{escape(p.command)}</pre>'
            f'<table class="facts">{rows}</table>'
            '<h3>Packages</h3><table><thead><tr><th class="text">package</th><th class="text">version</th></tr></thead>'
            f"<tbody>{packages}"
            "</tbody></table>"
            '<h3>Data archives</h3><table><thead><tr><th class="text">archive</th><th class="text">sha256</th></tr>'
            f"</thead><tbody>{archives}"
            "</tbody></table>"
            f"{figures}"
            f"<details><summary>recipe text</summary><pre>{escape(p.recipe_text or '(not stored)')}</pre></details>"
            "</section>")
