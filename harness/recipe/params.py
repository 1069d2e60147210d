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
          "Offline mirror laid out like IR_DATASETS_HOME, relative to the recipe file "
          "(CLI --mirror and $DRBENCH_MIRROR win)."),
)

EVAL = (
    Param("indexes", "list[str]", ["Flat"],
          "faiss factory strings, inner product: Flat, PQ48, OPQ48,PQ48, IVF256,PQ48, HNSW32."),
    Param("metrics", "list[str]", ["ndcg@10", "mrr@10", "recall@100"],
          "ranx metric names (" + ", ".join(RANX_METRICS) + ", with @k).", check=_metrics_problem),
    Param("depth", "int", 1000, "Documents retrieved per query; must cover every metric's @k.",
          minimum=1),
    Param("search_batch_size", "int", 256, "Queries per faiss search call.", minimum=1),
    Param("nprobe", "int", 16, "Inverted lists an IVF index visits per query.", minimum=1),
    Param("index_train_sample", "int", 0,
          "Vectors sampled (seeded) to train a compressed index; 0 uses the whole corpus.", minimum=0),
)

# Every trained kind. Defaults are CPU-friendly; the help gives the paper's value where it differs.
TRAIN_COMMON = (
    Param("init", "str", "base",
          "Model to start from: `base` ([model].base) or another dense variant's name (chaining)."),
    Param("epochs", "int", 1, "Passes over the training queries (ignored when max_steps > 0).", minimum=1),
    Param("max_steps", "int", 0, "Optimizer steps; 0 means `epochs` worth.", minimum=0),
    Param("batch_size", "int", 32, "Queries per step (paper: STAR 256, ADORE 32).", minimum=1),
    Param("grad_accum", "int", 1, "Micro-batches accumulated per optimizer step.", minimum=1),
    Param("lr", "float", 2e-5, "AdamW peak learning rate (paper: STAR 1e-4 with LAMB; ADORE 5e-6).",
          minimum=0.0),
    Param("warmup_steps", "int", 10, "Linear warm-up steps, then linear decay to 0 (paper: ADORE 2000).",
          minimum=0),
    Param("weight_decay", "float", 0.01, "AdamW weight decay (biases and LayerNorm excluded).", minimum=0.0),
    Param("grad_clip", "float", 1.0, "Max gradient norm (paper: 1.0); 0 disables.", minimum=0.0),
    Param("query_max_length", "int", 32, "Training query tokens (paper: STAR 24, ADORE 64).", minimum=1),
    Param("doc_max_length", "int", 128, "Training document tokens (paper: 120).", minimum=1),
    Param("scale", "float", 1.0,
          "Scores are scale * q.d (paper: 1, raw dot product; ~20 suits normalised encoders like MiniLM).",
          minimum=0.0),
    Param("checkpoint_every", "int", 50, "Save a resumable checkpoint every N optimizer steps.", minimum=1),
)
_NEGATIVES = (
    Param("negatives_from", "str", "bm25",
          "Retriever that mines hard negatives once: `bm25`, `base`, or a dense variant's name."),
    Param("negatives_depth", "int", 200, "Hard negatives kept per query after removing positives (paper: 200).",
          minimum=1),
)
_ADORE = (
    Param("index_from", "str", "base",
          "Model whose frozen document vectors ADORE retrieves from: `base` or a dense variant's name."),
    Param("top_k", "int", 200, "Documents retrieved per query and step (paper: 200).", minimum=1),
    Param("metric_cut", "int", 10, "1/rank counts up to this rank (MRR@10 in the paper).", minimum=1),
    Param("weighting", "str", "mrr", "Pair weights: delta-MRR (paper) or delta-nDCG for graded qrels.",
          choices=("mrr", "ndcg")),
    Param("train_index", "str", "Flat",
          "faiss factory string of the index ADORE trains against (compression-aware ADORE)."),
)
_ADORE_INIT = Param("init", "str", "",
                    "Query encoder to start from; empty: the `index_from` model's own (shared) tower.")


def _with_defaults(params: tuple[Param, ...], **defaults: Any) -> tuple[Param, ...]:
    return tuple(Param(**{**p.__dict__, "default": defaults[p.name]}) if p.name in defaults else p
                 for p in params)


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
    "inbatch": TRAIN_COMMON,
    "random": TRAIN_COMMON + (
        Param("random_negatives", "int", 1, "Corpus documents sampled uniformly per query and step.",
              minimum=1),),
    "static": TRAIN_COMMON + _NEGATIVES + (
        Param("negatives_per_query", "int", 1, "Hard negatives drawn per query and step.", minimum=1),),
    "star": TRAIN_COMMON + _with_defaults(_NEGATIVES, negatives_from="base") + (
        Param("alpha", "float", None,
              "Weight of random (in-batch) pairs: L = L_hard + alpha L_random. Unset: every pair "
              "weighted equally, as the official code does.", minimum=0.0),),
    "adore": (_ADORE_INIT,) + _with_defaults(TRAIN_COMMON[1:], lr=5e-6) + _ADORE,
    "star+adore": (_ADORE_INIT,) + _with_defaults(TRAIN_COMMON[1:], lr=5e-6) + _ADORE[1:] + (
        Param("star", "str", "star", "The STAR variant whose model and frozen index ADORE starts from."),),
}

# Keys every variant accepts, whatever its kind (the kinds are KIND_PARAMS' keys).
VARIANT_COMMON = (
    Param("kind", "str", None, "Variant kind.", required=True, choices=tuple(KIND_PARAMS)),
    Param("description", "str", "", "Free text shown next to the variant."),
)

# Keys whose value names another variant (or one of the listed built-ins).
REFERENCES: dict[str, tuple[str, ...]] = {
    "init": ("base",), "negatives_from": ("bm25", "base"), "index_from": ("base",), "star": (),
}
TRAINED_KINDS = ("inbatch", "random", "static", "star", "adore", "star+adore")

TABLES: dict[str, tuple[Param, ...]] = {
    "experiment": EXPERIMENT,
    "model": MODEL,
    "data": DATA,
    "eval": EVAL,
}
