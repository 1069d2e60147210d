"""Regression gate: compare stored results with an expectations file.

An expectations file names a recipe (relative to itself) and the values its runs should
produce, one row per (variant, collection, index, metric)::

    recipe = "smoke.toml"
    tolerance = 0.01                 # default for every row on Flat or BM25
    compressed_tolerance = 0.02      # default for rows on other indexes (faiss codebooks vary by release)

    [[expect]]
    variant = "bm25"
    collection = "cranfield"
    index = "bm25"                   # the index column of BM25 runs
    metric = "ndcg@10"
    value = 0.3314
    tolerance = 0.005                # optional, this row only

A variant is checked on the mean over the seeds the recipe runs it with (`harness.store.seed_mean`;
every one of those runs must be stored: with one missing, the row is missing and FAILs; one seed:
that seed's run); `seed = N` in a row checks that seed's run alone. A
swept variant that the recipe selects on its dev split is named as the sweep (`star`), as its
evaluation runs are stored.

Each row is OK (equal within EXACT), OKish (within its tolerance) or FAIL (outside it, or not
stored). Malformed files raise a one-line RecipeError naming file, table, key and value.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import RecipeError
from harness.recipe import Recipe, Variant, load_recipe, variant_seeds
from harness.recipe.loader import parse_table
from harness.recipe.where import Where
from harness.api.params import Param
from harness.recipe.plan import eval_rows, run_indexes
from harness.store import SPARSE_INDEX, list_runs, run_metrics, seed_mean

EXACT = 1e-4  # metrics printed to 4 decimals: a difference below this is "the same number"
STATUSES = ("OK", "OKish", "FAIL")

TOP = (
    Param("recipe", "str", None, "Recipe whose results are checked, relative to this file.", required=True),
    Param("tolerance", "float", 0.01, "Largest |stored - expected| still accepted (OKish).", minimum=0.0),
    Param("compressed_tolerance", "float", 0.02, "Tolerance of rows on an index other than Flat (PQ, OPQ, IVF, "
                                                  "HNSW): CPUs' BLAS kernels and faiss releases train different "
                                                  "codebooks (SciFact nDCG@10: up to 0.009 between AMD and Intel "
                                                  "kernels with drbench's one-thread training, 0.019 between "
                                                  "faiss-cpu 1.10 and 1.15.1 with faiss's defaults; "
                                                  "benchmarks/faiss_versions). A row's own tolerance wins.",
          minimum=0.0),
)
ROW = (
    Param("variant", "str", None, "Variant name in the recipe.", required=True),
    Param("collection", "str", None, "ir_datasets id the variant was evaluated on.", required=True),
    Param("index", "str", None, 'faiss factory string, or "bm25" for BM25 runs.', required=True),
    Param("metric", "str", None, "ranx metric name, one of the recipe's [eval] metrics.", required=True),
    Param("value", "float", None, "Expected value.", required=True),
    Param("tolerance", "float", None, "This row's tolerance (default: the file's).", minimum=0.0),
    Param("seed", "int", None, "Check this seed's run alone (default: the mean over the seeds the recipe runs "
                               "the variant with).", minimum=0),
    Param("note", "str", "", "Free text, e.g. where the number comes from."),
)


@dataclass(frozen=True)
class Expectation:
    variant: str
    collection: str
    index: str
    metric: str
    value: float
    tolerance: float
    seeds: tuple[int, ...] = ()  # the runs whose mean is checked


@dataclass(frozen=True)
class Expectations:
    path: Path
    recipe: Recipe
    rows: tuple[Expectation, ...]


@dataclass(frozen=True)
class CheckRow:
    expected: Expectation
    actual: float | None  # None: not stored
    status: str

    @property
    def diff(self) -> float | None:
        return None if self.actual is None else self.actual - self.expected.value


def load_expectations(path: str | Path) -> Expectations:
    """Read and validate an expectations file (and the recipe it names)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such expectations file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read expectations: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}") from None
    where = Where(path)
    rows_raw = raw.pop("expect", None)
    top = parse_table(where, "top level", raw, TOP)
    recipe_path = path.parent / top["recipe"]
    if not recipe_path.is_file():
        raise where.error("top level", "recipe", top["recipe"], f"no such recipe file {recipe_path}")
    recipe = load_recipe(recipe_path)
    if not isinstance(rows_raw, list) or not rows_raw:
        raise where.error("expect", None, None, "declare at least one [[expect]] table "
                          "(variant, collection, index, metric, value)")
    rows: list[Expectation] = []
    seen: dict[tuple[Any, ...], str] = {}
    for number, table in enumerate(rows_raw, start=1):
        label = f"expect.{number}"
        values = parse_table(where, label, table, ROW)
        variant = _check_against_recipe(where, label, values, recipe)
        seeds = variant_seeds(recipe, variant)
        if values["seed"] is not None:
            if values["seed"] not in seeds:
                raise where.error(label, "seed", values["seed"], f"variant {values['variant']!r} does not run with "
                                  "this seed", [str(s) for s in seeds])
            seeds = (values["seed"],)
        default = top["tolerance"] if values["index"] in ("Flat", SPARSE_INDEX) else top["compressed_tolerance"]
        row = Expectation(values["variant"], values["collection"], values["index"], values["metric"],
                          values["value"], default if values["tolerance"] is None else values["tolerance"], seeds)
        identity = (row.variant, row.collection, row.index, row.metric, row.seeds)
        if identity in seen:
            raise where.error(label, None, None, f"repeats [{seen[identity]}] (same variant, collection, "
                              "index and metric); keep one")
        seen[identity] = label
        rows.append(row)
    return Expectations(path, recipe, tuple(rows))


def _check_against_recipe(where: Where, label: str, values: dict[str, Any], recipe: Recipe) -> Variant:
    """A row must name something the recipe produces on its evaluation splits (a typo is a config
    error, not a FAIL); returns the recipe variant behind it (a selected sweep: its first point)."""
    variants = {row.name: row.variant for row in eval_rows(recipe)}  # a selected sweep by its own name
    if values["variant"] not in variants:
        raise where.error(label, "variant", values["variant"], f"not a variant of {recipe.path}",
                          list(variants))
    if values["collection"] not in recipe.data.eval:
        raise where.error(label, "collection", values["collection"],
                          f"not an evaluation collection of {recipe.path}", list(recipe.data.eval))
    indexes = list(run_indexes(recipe, variants[values["variant"]]))
    if values["index"] not in indexes:
        raise where.error(label, "index", values["index"],
                          f"variant {values['variant']!r} is not run with this index", indexes)
    if values["metric"] not in recipe.eval.metrics:
        raise where.error(label, "metric", values["metric"], f"not a metric of {recipe.path}",
                          list(recipe.eval.metrics))
    return variants[values["variant"]]


def check(db: Any, expectations: Expectations) -> list[CheckRow]:
    """Each expected row against the stored runs of the recipe's experiment (the mean over its seeds)."""
    experiment = expectations.recipe.experiment.name
    out: list[CheckRow] = []
    for row in expectations.rows:
        actual = _stored_mean(db, experiment, row)
        out.append(CheckRow(row, actual, status(actual, row.value, row.tolerance)))
    return out


def _stored_mean(db: Any, experiment: str, row: Expectation) -> float | None:
    """The row's metric, the mean over its seeds (`harness.store.seed_mean`); None unless it covers
    every one of them: a mean over fewer seeds is not the number the expectation names."""
    runs = {run["seed"]: run["id"] for run in list_runs(db, experiment, row.collection)
            if run["variant"] == row.variant and run["index_factory"] == row.index and run["seed"] in row.seeds}
    stored = run_metrics(db, list(runs.values()))
    mean = seed_mean((seed, stored.get(run_id, {}).get(row.metric)) for seed, run_id in runs.items())
    return mean.value if mean and row.seeds and mean.covers(row.seeds) else None


def status(actual: float | None, expected: float, tolerance: float) -> str:
    """OK within EXACT (or the tolerance, if tighter), OKish within tolerance, else FAIL."""
    if actual is None or math.isnan(actual):
        return "FAIL"
    diff = abs(actual - expected)
    if diff <= min(EXACT, tolerance) + 1e-12:
        return "OK"
    return "OKish" if diff <= tolerance + 1e-12 else "FAIL"


def seeds_label(expectation: Expectation, named: bool = False) -> str:
    """`13` for one seed's run, `mean of 13, 14, 15` for a mean over several; `named`: `seed 13`,
    `mean of seeds 13, 14, 15`."""
    seeds = ", ".join(str(seed) for seed in expectation.seeds) or "-"
    several = len(expectation.seeds) > 1
    noun = ("seeds " if several else "seed ") if named else ""
    return f"mean of {noun}{seeds}" if several else f"{noun}{seeds}"


def render_check(rows: list[CheckRow], console: Console) -> None:
    """One table row per expectation, then a count per status."""
    table = Table(title="regression check", title_justify="left")
    for name, justify in (("variant", "left"), ("seeds", "left"), ("collection", "left"), ("index", "left"),
                          ("metric", "left"), ("expected", "right"), ("stored", "right"), ("diff", "right"),
                          ("tolerance", "right"), ("status", "left")):
        table.add_column(name, justify=justify)
    colours = {"OK": "green", "OKish": "yellow", "FAIL": "bold red"}
    for row in rows:
        e = row.expected
        table.add_row(escape(e.variant), seeds_label(e), escape(e.collection), e.index, e.metric, f"{e.value:.4f}",
                      "missing" if row.actual is None else f"{row.actual:.4f}",
                      "-" if row.diff is None else f"{row.diff:+.4f}", f"{e.tolerance:g}",
                      f"[{colours[row.status]}]{row.status}[/{colours[row.status]}]")
    console.print(table)
    counts = ", ".join(f"{sum(r.status == s for r in rows)} {s}" for s in STATUSES)
    console.print(counts, highlight=False)
