"""Plots of stored results: training curves, metric bars with CIs, quality vs index size, and
quality vs training cost.

`store_plots` draws every plot a selection of runs allows, as `matplotlib.figure.Figure`
objects (never pyplot state); `plot_store` writes them as PNGs, and `drbench report` inlines
them as SVG. matplotlib is imported inside the functions that draw (Agg backend, no display), so
importing this module costs nothing.

Example::

    written, skipped = plot_store(open_store_readonly("drbench.db"), Path("plots"))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.store import list_runs, training_log, training_seeds
from leaderboard.rows import run_cost
from leaderboard.select import System, common_metrics, seed_scores, select_systems
from leaderboard.stats import bootstrap_ci

_CURVE_KEYS = ("loss", "train_mrr@10")  # ADORE logs train_mrr@10 next to the loss


@dataclass(frozen=True)
class Plot:
    """One drawn figure: `what` it shows (training, metrics, size) for which experiment or
    collection (`scope`), and the file stem `plot_store` names it by."""

    what: str
    scope: str
    stem: str
    figure: Any  # matplotlib.figure.Figure
    caption: str = ""  # what it shows, in words (the report prints it under the figure)


def store_plots(db: Any, *, experiments: list[str] | None = None, collection: str | None = None,
                metrics: list[str] | None = None, bootstrap: int = 1000,
                seed: int = 42) -> tuple[list[Plot], list[str]]:
    """Every plot the selected runs allow; return (plots, why others were skipped)."""
    groups = select_systems(db, experiments, collection)
    chosen = common_metrics(groups, metrics)
    plots, skipped = training_plots(db, groups)
    for name, systems in groups.items():
        drawn, missed = collection_plots(db, name, systems, chosen, bootstrap, seed)
        plots += drawn
        skipped += missed
    return plots, skipped


def training_plots(db: Any, groups: dict[str, list[System]]) -> tuple[list[Plot], list[str]]:
    """The training curves of each experiment among the selected systems (all collections)."""
    plots: list[Plot] = []
    skipped: list[str] = []
    for experiment in dict.fromkeys(s.experiment for systems in groups.values() for s in systems):
        variants = list(dict.fromkeys(s.variant for systems in groups.values() for s in systems
                                      if s.experiment == experiment))
        # A swept variant reported under its own name trained as its chosen point (`star[lr=5e-05]`).
        points = {r["variant"]: r["selection"]["name"] for r in list_runs(db, experiment=experiment)
                  if (r.get("selection") or {}).get("name")}
        logs: dict[str, dict[int | None, list[dict[str, Any]]]] = {}
        for variant in variants:
            trained = variant if training_seeds(db, experiment, variant) else points.get(variant, variant)
            if trained != variant and trained in variants:
                continue  # its chosen point has a line of its own (the points' dev runs are selected too)
            for seed_ in training_seeds(db, experiment, trained):
                if rows := training_log(db, experiment, trained, seed_):
                    logs.setdefault(variant if trained == variant else f"{variant} = {trained}", {})[seed_] = rows
        if logs:
            keys = curve_keys(logs)
            plots.append(Plot("training", experiment, f"{_slug(experiment)}-training",
                              training_curves(logs, experiment),
                              f"{experiment}: {', '.join(keys)} by optimizer step (train_ keys: on the training "
                              "batches; dev_ keys: on the dev split), one line per variant and seed"))
        else:
            skipped.append(f"{experiment}: no training log stored; skipped the training curves")
    return plots, skipped


def collection_plots(db: Any, name: str, systems: list[System], metrics: list[str], bootstrap: int = 1000,
                     seed: int = 42) -> tuple[list[Plot], list[str]]:
    """The metric bars of one collection's systems, and quality vs bytes where they span indexes."""
    per_seed = {m: seed_scores(db, systems, m)[1] for m in metrics}
    values = {s.run_id: {m: per_seed[m][s.run_id] for m in metrics} for s in systems}
    dots = "; dots: one seed's mean" if any(len(s.seeds) > 1 for s in systems) else ""
    plots = [Plot("metrics", name, f"{_slug(name)}-metrics", metric_bars(systems, values, metrics, name, bootstrap,
                                                                         seed),
                  f"{name}: mean per metric with 95% bootstrap CIs (queries resampled){dots}")]
    skipped = []
    sized = [s for s in systems if "bytes_per_doc" in s.index_stats]
    if len({s.index for s in sized}) < 2:
        skipped.append(f"{name}: runs with fewer than two indexes; skipped quality vs bytes per document")
    else:
        plots.append(Plot("size", name, f"{_slug(name)}-size", quality_vs_bytes(sized, metrics, name),
                          f"{name}: quality against bytes per document, one line per variant"))
    costs = seed_costs(db, systems, name)
    if costs:  # none: nothing trained, or stored before costs were (the leaderboard shows no column either)
        # one point per model: the systems of the first index a trained one was evaluated with
        index = next(s.index for s in systems if s.run_id in costs)
        shown = _first_per_variant(systems, index)
        trained = [s for s in shown if s.run_id in costs]
        if len(trained) < 2:
            skipped.append(f"{name}: one trained variant with a stored cost; skipped quality vs cost")
        else:
            metric = metrics[0]
            several = len({s.index for s in systems if s.run_id in costs}) > 1
            plots.append(Plot("cost", name, f"{_slug(name)}-cost",
                              quality_vs_cost(shown, costs, values, metric, name + (f" [{index}]" if several else "")),
                              f"{name}: {metric} against training cost (documents encoded + training queries "
                              "seen, and training wall time, along each model's chain); small dots: one seed, "
                              "large: their mean; dashed: untrained systems" +
                              (f"; the trained variants' {index} runs" if several else "")))
    return plots, skipped


def _first_per_variant(systems: list[System], index: str) -> list[System]:
    """One system per (experiment, variant): its run on `index` where it has one, else its first."""
    chosen: dict[tuple[str, str], System] = {}
    for system in systems:
        key = (system.experiment, system.variant)
        if key not in chosen or (system.index == index and chosen[key].index != index):
            chosen[key] = system
    return list(chosen.values())


def seed_costs(db: Any, systems: list[System], collection: str) -> dict[int, list[dict[str, float]]]:
    """{system run_id: each seed's stored cost (`leaderboard.rows.run_cost`)} for the systems of
    `collection` whose every seed has one (trained models; runs stored before costs were have none)."""
    runs = {run["id"]: run for run in list_runs(db, collection=collection)}
    costs = {}
    for system in systems:
        per_seed = [run_cost(runs[run_id]) for run_id in system.run_ids or (system.run_id,)]
        if all(c is not None for c in per_seed):
            costs[system.run_id] = per_seed
    return costs  # type: ignore[return-value]


def plot_store(db: Any, out_dir: Path, *, experiments: list[str] | None = None,
               collection: str | None = None, metrics: list[str] | None = None,
               bootstrap: int = 1000, seed: int = 42) -> tuple[list[Path], list[str]]:
    """Write every plot the selected runs allow as PNG; return (written paths, why others were skipped)."""
    plots, skipped = store_plots(db, experiments=experiments, collection=collection, metrics=metrics,
                                 bootstrap=bootstrap, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in plots:
        path = out_dir / f"{plot.stem}.png"
        plot.figure.savefig(path, dpi=100)
        written.append(path)
    return written, skipped


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (7.0, 4.0)) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.subplots(rows, cols, squeeze=False)


def curve_keys(logs: dict[str, dict[int | None, list[dict[str, Any]]]]) -> list[str]:
    """The logged quantities a training plot shows: the loss, ADORE's train_mrr@10, and the dev
    scores of `eval_every`, where any run logged them."""
    rows = [row for seeds in logs.values() for runs in seeds.values() for row in runs]
    logged = dict.fromkeys(k for row in rows for k in row if k.startswith("dev_"))
    return [k for k in (*_CURVE_KEYS, *logged) if any(row.get(k) is not None for row in rows)]


def training_curves(logs: dict[str, dict[int | None, list[dict[str, Any]]]], title: str) -> Any:
    """`curve_keys` against optimizer step: one colour per variant, one line per seed, and one
    legend entry per variant, beside the panels (a legend inside hid the curves)."""
    keys = curve_keys(logs)
    figure, axes = _figure(1, len(keys), (4.5 * len(keys) + 2.0, 4.0))
    colours = [f"C{i % 10}" for i in range(len(logs))]
    for ax, key in zip(axes[0], keys):
        for colour, (variant, seeds) in zip(colours, logs.items()):
            for n, rows in enumerate(seeds.values()):
                points = [(row["step"], row[key]) for row in rows if row.get(key) is not None]
                if points:
                    steps, values = zip(*points)
                    label = None if n else (variant if len(seeds) == 1 else f"{variant} ({len(seeds)} seeds)")
                    ax.plot(steps, values, marker="." if len(points) < 50 else None, color=colour,
                            alpha=0.85, label=label)
        ax.set_xlabel("step")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:  # a variant missing from the first panel (no loss logged) still gets an entry
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    figure.legend(handles, labels, loc="outside right upper", fontsize="small")
    figure.suptitle(f"{title}: training")
    return figure


def metric_bars(systems: list[System], values: dict[int, dict[str, list[np.ndarray]]], metrics: list[str],
                title: str, bootstrap: int = 1000, seed: int = 42) -> Any:
    """Grouped bars: one group per metric, one bar per system, 95% bootstrap CI of the mean.

    `values[run_id][metric]` holds one per-query array per seed of the system: the bar is the mean
    over seeds of the per-query scores, and a system of several seeds shows each seed's mean as a
    black dot (the seed spread)."""
    figure, axes = _figure(size=(max(6.0, 1.0 + len(metrics) * (0.5 + 0.35 * len(systems))), 4.0))
    ax = axes[0][0]
    width = 0.8 / len(systems)
    x = np.arange(len(metrics))
    spread = False
    for i, system in enumerate(systems):
        per_query = {m: np.mean(values[system.run_id][m], axis=0) for m in metrics}
        means = np.array([per_query[m].mean() for m in metrics])
        cis = np.array([bootstrap_ci(per_query[m], bootstrap, seed) for m in metrics])
        errors = np.abs(np.vstack([means - cis[:, 0], cis[:, 1] - means]))
        where = x + (i - (len(systems) - 1) / 2) * width
        ax.bar(where, means, width, yerr=errors, capsize=3, label=system.label)
        for j, metric in enumerate(metrics):
            if len(values[system.run_id][metric]) > 1:
                seeds = [a.mean() for a in values[system.run_id][metric]]
                ax.scatter([where[j]] * len(seeds), seeds, s=9, color="black", zorder=3,
                           label=None if spread else "one seed's mean")
                spread = True
    ax.set_xticks(x, metrics)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean over queries (95% CI)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", ncols=min(len(systems), 4))
    return figure


def quality_vs_bytes(systems: list[System], metrics: list[str], title: str) -> Any:
    """Each metric against bytes per document (log scale), one line per variant across its indexes."""
    figure, axes = _figure(1, len(metrics), (5.0 * len(metrics), 4.0))
    lines: dict[tuple[str, str], list[System]] = {}
    for system in sorted(systems, key=lambda s: s.index_stats["bytes_per_doc"]):
        lines.setdefault((system.experiment, system.variant), []).append(system)
    several = len({s.experiment for s in systems}) > 1
    for ax, metric in zip(axes[0], metrics):
        for (experiment, variant), members in lines.items():
            xs = [s.index_stats["bytes_per_doc"] for s in members]
            ys = [s.metrics[metric] for s in members]
            ax.plot(xs, ys, marker="o", label=f"{experiment}/{variant}" if several else variant)
            for s, x_, y_ in zip(members, xs, ys):
                ax.annotate(s.index, (x_, y_), fontsize="x-small", xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("bytes per document (index code size)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(f"{title}: quality vs index size")
    return figure


def quality_vs_cost(systems: list[System], costs: dict[int, list[dict[str, float]]],
                    values: dict[int, dict[str, list[np.ndarray]]], metric: str, title: str) -> Any:
    """`metric` against the training cost (issue 22 §6, the paper's efficiency claim): in units
    no hardware changes (documents encoded + training queries seen) and in wall time, both on a
    log scale; one colour per system, a dot per seed and a larger marker at the seeds' mean.
    Systems without a cost (BM25, zero-shot) are dashed horizontal lines."""
    figure, axes = _figure(1, 2, (11.0, 4.2))
    for i, system in enumerate(systems):
        colour = f"C{i % 10}"
        quality = [a.mean() for a in values[system.run_id][metric]]
        if system.run_id not in costs:
            for ax in axes[0]:
                ax.axhline(float(np.mean(quality)), color=colour, linestyle="--", linewidth=1, label=system.label)
            continue
        per_seed = costs[system.run_id]
        for ax, key, scale in zip(axes[0], ("units", "seconds"), (1.0, 1 / 60)):
            xs = [c[key] * scale for c in per_seed]
            ax.scatter(xs, quality, s=12, color=colour, alpha=0.6)
            ax.scatter([np.mean(xs)], [np.mean(quality)], s=60, color=colour, edgecolors="black",
                       label=system.label, zorder=3)
    for ax, label in zip(axes[0], ("documents encoded + training queries seen", "training wall time (minutes)")):
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0][1].legend(fontsize="small")
    figure.suptitle(f"{title}: quality vs training cost")
    return figure


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_") or "plot"
