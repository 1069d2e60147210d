"""Every recipe parameter, declared once: type, default, allowed values, help.

The same declarations validate recipes (:mod:`harness.recipe.loader`) and document them
(`drbench validate --explain`, the README's reference tables).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Callable

# ranx metric names (ranx.metrics.metric_switch); `@k` is optional for the rank-wide ones.
RANX_METRICS = ("hits", "hit_rate", "precision", "recall", "f1", "r-precision", "mrr", "map",
                "dcg", "dcg_burges", "ndcg", "ndcg_burges", "bpref")
_METRIC_RE = re.compile(r"^(?P<name>[a-z_-]+?)(?:@(?P<k>[1-9][0-9]*))?$")


@dataclass(frozen=True)
class Param:
    """One recipe key. `kind` is the TOML type: str, int, float, bool, list[str]."""

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    required: bool = False
    minimum: float | None = None
    check: Callable[[Any], str | None] | None = None  # returns a problem, or None


def metric_problem(metric: str) -> str | None:
    """Why `metric` is not a ranx metric name, or None when it is."""
    match = _METRIC_RE.match(metric)
    if not match or match["name"] not in RANX_METRICS:
        return "unknown metric"
    return None


def metric_cutoff(metric: str) -> int | None:
    """The `k` of `name@k`, or None for a rank-wide metric."""
    match = _METRIC_RE.match(metric)
    return int(match["k"]) if match and match["k"] else None


def _metrics_problem(values: list[str]) -> str | None:
    bad = [m for m in values if metric_problem(m)]
    if not bad:
        return None
    name, _, k = bad[0].partition("@")
    close = difflib.get_close_matches(name.lower(), RANX_METRICS, n=1)
    hint = f'; did you mean "{close[0]}{"@" + k if k else ""}"?' if close else ""
    return f"unknown metric {bad[0]!r}{hint} (ranx names: {', '.join(RANX_METRICS)}, optionally @k)"


EXPERIMENT = (
    Param("name", "str", None, "Experiment name; results of re-runs replace its rows.", required=True),
    Param("seed", "int", 42, "Seed for everything random (index training, sampling, training)."),
    Param("store", "str", "drbench.db", "SQLite results store, relative to the working directory."),
    Param("cache_dir", "str", ".drbench_cache", "Where corpus embeddings and artifacts are cached."),
    Param("description", "str", "", "Free text shown by `drbench ls`."),
)

MODEL = (
    Param("base", "str", "minilm",
          "Base encoder: a local folder, a Hugging Face id, or `minilm` (the packaged all-MiniLM-L6-v2)."),
    Param("query_max_length", "int", None, "Query token limit (default: the model's max_seq_length).",
          minimum=1),
    Param("doc_max_length", "int", None, "Document token limit (default: the model's max_seq_length).",
          minimum=1),
    Param("pooling", "str", None, "Pooling (default: the model's sentence-transformers config).",
          choices=("cls", "mean", "max")),
    Param("normalize", "bool", None, "L2-normalise embeddings (default: Normalize module present)."),
    Param("batch_size", "int", 64, "Encoding batch size.", minimum=1),
    Param("query_prefix", "str", "", "Text prepended to every query (e.g. `query: ` for E5)."),
    Param("doc_prefix", "str", "", "Text prepended to every document (e.g. `passage: `)."),
)

DATA = (
    Param("train", "str", None, "ir_datasets id of the training split (used by trained variants)."),
    Param("eval", "list[str]", None, "ir_datasets ids of the evaluation splits.", required=True),
    Param("mirror", "str", None,
          "Offline mirror laid out like IR_DATASETS_HOME (CLI --mirror and $DRBENCH_MIRROR win)."),
)

EVAL = (
    Param("indexes", "list[str]", ["Flat"],
          "faiss factory strings, inner product: Flat, PQ48, OPQ48,PQ48, IVF256,PQ48, HNSW32."),
    Param("metrics", "list[str]", ["ndcg@10", "mrr@10", "recall@100"],
          "ranx metric names (" + ", ".join(RANX_METRICS) + ", with @k).", check=_metrics_problem),
    Param("depth", "int", 1000, "Documents retrieved per query; must cover every metric's @k.",
          minimum=1),
    Param("search_batch_size", "int", 256, "Queries per faiss search call.", minimum=1),
    Param("index_train_sample", "int", 0,
          "Vectors sampled (seeded) to train a compressed index; 0 uses the whole corpus.", minimum=0),
)

# Keys every variant accepts, whatever its kind.
VARIANT_COMMON = (
    Param("kind", "str", None, "Variant kind.", required=True, choices=("bm25", "zero-shot")),
    Param("description", "str", "", "Free text shown next to the variant."),
)

# Keys per variant kind. Trained kinds add theirs here, next to their registry entry.
KIND_PARAMS: dict[str, tuple[Param, ...]] = {
    "bm25": (
        Param("k1", "float", 1.2, "BM25 term-frequency saturation.", minimum=0.0),
        Param("b", "float", 0.75, "BM25 length normalisation.", minimum=0.0),
        Param("method", "str", "lucene", "bm25s scoring variant.",
              choices=("lucene", "robertson", "atire", "bm25l", "bm25+")),
        Param("stemmer", "str", "english", "Snowball stemmer language (PyStemmer), or `none`."),
        Param("stopwords", "str", "en", "bm25s stopword list (`en`), or `none`."),
    ),
    "zero-shot": (
        Param("model", "str", None, "Encoder to use instead of [model].base."),
    ),
}

TABLES: dict[str, tuple[Param, ...]] = {
    "experiment": EXPERIMENT,
    "model": MODEL,
    "data": DATA,
    "eval": EVAL,
}
