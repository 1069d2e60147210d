"""The frozen objects a recipe is parsed into, each table declared once as typed fields.

No raw dict travels past the loader: a variant's keys arrive as its kind's own frozen
:class:`~harness.api.params.Params` dataclass (declared in the kind's file).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.api.params import Params, param
from harness.data.local.declared import Declared
from harness.evaluate.metrics import RANX_METRICS, metrics_problem
from harness.model.backend import BACKENDS
from harness.model.compute import PRECISIONS, device_problem
from harness.model.spec import POOLINGS


@dataclass(frozen=True)
class ExperimentConfig(Params):
    name: str = param(None, "Experiment name; results of re-runs replace its rows.", required=True)
    seed: int = param(42, "Seed for everything random (index training, sampling, training); a non-negative "
                            "integer.", minimum=0)
    seeds: tuple[int, ...] | None = param(None, "Several seeds instead of `seed`, e.g. [13, 14, 15]: every trained "
                                                "variant trains and is evaluated once per seed (the leaderboard "
                                                "shows the mean and sd); BM25 and zero-shot run once, with the "
                                                "first.", minimum=0)
    store: str = param("drbench.db", "SQLite results store, relative to the working directory.")
    cache_dir: str = param(".drbench_cache", "Where corpus embeddings and artifacts are cached.")
    description: str = param("", "Free text shown by `drbench ls`.")


@dataclass(frozen=True)
class ModelConfig(Params):
    base: str = param("minilm", "Base encoder: a local folder, a Hugging Face id, or `minilm` (the packaged "
                                "all-MiniLM-L6-v2).")
    query_max_length: int | None = param(None, "Query token limit (default: the model's max_seq_length).",
                                         minimum=1)
    doc_max_length: int | None = param(None, "Document token limit (default: the model's max_seq_length).",
                                       minimum=1)
    pooling: str | None = param(None, "Pooling (default: the model's sentence-transformers config).",
                                choices=POOLINGS)
    normalize: bool | None = param(None, "L2-normalise embeddings (default: Normalize module present).")
    batch_size: int = param(64, "Encoding batch size.", minimum=1)
    query_prefix: str = param("", "Text prepended to every query (e.g. `query: ` for E5).")
    doc_prefix: str = param("", "Text prepended to every document (e.g. `passage: `).")
    allow_pickle: bool = param(False, "Load model folders whose weights are pickle only (pytorch_model.bin). "
                                      "Pickle can run code: set it only for models you trust.")


HOLDOUT = "holdout:"


def holdout_fraction(dev: str | None) -> float | None:
    """F of `holdout:F`, or None for an ir_datasets id (or no dev split)."""
    return float(dev[len(HOLDOUT):]) if dev and dev.startswith(HOLDOUT) else None


def named_dev(data: DataConfig) -> list[str]:
    """`[data] dev` when it names a collection (not a holdout of train): [it], else []."""
    return [data.dev] if data.dev and holdout_fraction(data.dev) is None else []


def read_collections(data: DataConfig) -> list[str]:
    """Every collection a recipe reads by name, once each: eval, train, then a named dev split."""
    return list(dict.fromkeys((*data.eval, *filter(None, [data.train]), *named_dev(data))))


def dev_problem(dev: str) -> str | None:
    """Why `dev` is not a dev split drbench takes, or None.

    >>> dev_problem("holdout:0.1") is None, dev_problem("holdout:0.7")
    (True, 'a holdout fraction must be in (0, 0.5], e.g. holdout:0.1')
    """
    if not dev.startswith(HOLDOUT):
        return None
    try:
        fraction = float(dev[len(HOLDOUT):])
    except ValueError:
        return "write a holdout as holdout:F with a fraction F in (0, 0.5], e.g. holdout:0.1"
    return None if 0.0 < fraction <= 0.5 else "a holdout fraction must be in (0, 0.5], e.g. holdout:0.1"


@dataclass(frozen=True)
class DataConfig(Params):
    train: str | None = param(None, "The training split (used by trained variants): an ir_datasets id, or "
                                    "NAME/SPLIT of a collection declared in [collections].")
    eval: tuple[str, ...] = param(None, "The evaluation splits: ir_datasets ids, or NAME/SPLIT of collections "
                                        "declared in [collections].", required=True)
    mirror: str | None = param(None, "Offline mirror laid out like IR_DATASETS_HOME, relative to the recipe "
                                     "file (CLI --mirror and $DRBENCH_MIRROR win).")
    dev: str | None = param(None, "Dev split that sweeps are selected on: an ir_datasets id (e.g. "
                                  "beir/nfcorpus/dev), or `holdout:F`, a seeded fraction F in (0, 0.5] of the "
                                  "training queries, removed from training. Every variant is also evaluated on "
                                  "it; the evaluation splits never choose anything.", check=dev_problem)
    select: str | None = param(None, "`dev`: report each swept variant's point with the best dev score on the "
                                     "first metric (the default when a sweep exists); `none`: report every "
                                     "point.", choices=("dev", "none"))


@dataclass(frozen=True)
class EvalConfig(Params):
    indexes: tuple[str, ...] = param(("Flat",), "faiss factory strings, inner product: Flat, PQ48, "
                                                "OPQ48,PQ48, IVF256,PQ48, HNSW32.")
    metrics: tuple[str, ...] = param(("ndcg@10", "mrr@10", "recall@100"),
                                     "ranx metric names (" + ", ".join(RANX_METRICS) + ", with @k; rbp with its "
                                     "persistence: rbp.95).",
                                     check=metrics_problem)
    depth: int = param(1000, "Documents retrieved per query; must cover every metric's @k.", minimum=1)
    store_depth: int | None = param(None, "Documents stored per query (default: depth). Metrics are computed "
                                          "at full depth either way; a TREC file export-run writes then holds "
                                          "only these. The store keeps about 37 bytes per stored document.",
                                    minimum=1)
    search_batch_size: int = param(256, "Queries per faiss search call of a compressed index, and of a Flat "
                                        "one where faiss scores the call through BLAS by itself (queries x "
                                        "dim >= 128,000). Other Flat searches go through BLAS in batches set "
                                        "by the dimension, with the same answer, bit for bit.", minimum=1)
    nprobe: int = param(16, "Inverted lists an IVF index visits per query.", minimum=1)
    index_train_sample: int = param(0, "Vectors sampled (seeded) to train a compressed index; 0 uses the "
                                       "whole corpus.", minimum=0)


@dataclass(frozen=True)
class ComputeConfig(Params):
    device: str = param("auto", "Where models run: auto (CUDA when torch sees a GPU, else the CPU), cpu, cuda, "
                                "cuda:N or mps (CLI --device wins).", check=device_problem)
    precision: str = param("fp32", "Encoding and training precision: fp32 (the reference), bf16, fp16 (CUDA "
                                   "only), int8 (frozen encodes of backend openvino or onnx; training then runs "
                                   "fp32) or auto (bf16 on CUDA and on CPUs with native bf16; CLI --precision "
                                   "wins).", choices=PRECISIONS,
                               paper="STAR: fp16 (the official command's --fp16); ADORE: fp32")
    backend: str = param("torch", "What runs the encodes of a model not being trained (corpora, queries at "
                                  "evaluation, mining, ADORE's frozen documents): torch (the reference), openvino "
                                  "(fp32, bf16, int8; pip install 'drbench[openvino]') or onnx (ONNX Runtime: fp32, "
                                  "int8; pip install 'drbench[onnx]'), on the CPU, from an export cached beside the "
                                  "models. Training is always torch (CLI --backend wins).", choices=BACKENDS)
    threads: int = param(0, "CPU threads of each process (torch's intra-op threads): 0 keeps torch's own choice "
                            "(every core) for `drbench run`, and 1 per task under --executor ray, where each task "
                            "also asks Ray for this many CPUs (CLI --threads wins).", minimum=0)


# The recipe's fixed tables, in the order a recipe is usually written.
TABLES: dict[str, type[Params]] = {
    "experiment": ExperimentConfig,
    "model": ModelConfig,
    "data": DataConfig,
    "eval": EvalConfig,
    "compute": ComputeConfig,
}


@dataclass(frozen=True)
class Variant:
    """One row of the leaderboard: a named kind plus its kind's typed parameters."""

    name: str
    kind: str
    description: str
    params: Params
    sweep_of: str | None = None  # a point of `[variant.NAME.sweep]`: NAME
    point: tuple[tuple[str, Any], ...] = ()  # the swept keys and this point's values

    def as_json(self) -> str:
        """Canonical JSON of what determines this variant's results (for run keys)."""
        return json.dumps({"kind": self.kind, **self.params.key_dict()}, sort_keys=True)


@dataclass(frozen=True)
class Recipe:
    path: Path
    text: str
    experiment: ExperimentConfig
    model: ModelConfig
    data: DataConfig
    eval: EvalConfig
    variants: tuple[Variant, ...]
    compute: ComputeConfig = ComputeConfig()
    collections: tuple[Declared, ...] = ()  # [collections.NAME]: BEIR folders, TREC files, query splits

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds trained variants run with (`[experiment] seeds`, else the one `seed`)."""
        return self.experiment.seeds or (self.experiment.seed,)

    def with_seed(self, seed: int) -> "Recipe":
        """This recipe as one run of `seed` sees it: `experiment.seed` is that seed."""
        return replace(self, experiment=replace(self.experiment, seed=seed))

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)

    @property
    def sweeps(self) -> dict[str, tuple[Variant, ...]]:
        """Each swept variant's name -> its points, in grid order."""
        out: dict[str, list[Variant]] = {}
        for variant in self.variants:
            if variant.sweep_of:
                out.setdefault(variant.sweep_of, []).append(variant)
        return {name: tuple(points) for name, points in out.items()}

    @property
    def selects(self) -> bool:
        """Whether sweeps are reduced to their best point on the dev split."""
        return (self.data.select or ("dev" if self.sweeps else "none")) == "dev"
