"""Dense retrieval stages shared by every dense variant: encode (cached) -> index -> search."""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rich.console import Console

from harness.data.collection import TEXT_FORMAT, Collection
from harness.errors import CacheError
from harness.model.compute import Compute
from harness.progress import StageProgress
from harness.recipe.model import ModelConfig, Recipe


@dataclass(frozen=True)
class EncoderSettings:
    """The model's own sentence-transformers settings with the recipe's overrides applied."""

    pooling: str
    normalize: bool
    query_max_length: int | None
    doc_max_length: int | None
    query_prefix: str
    doc_prefix: str
    batch_size: int


@dataclass(frozen=True)
class ModelRef:
    """What a dense variant evaluates: a query encoder and a document encoder (the same folder
    for shared-tower models; different for ADORE, whose documents stay with an earlier model)."""

    name: str
    query: str
    doc: str
    trained: dict[str, Any] | None = None

    @classmethod
    def shared(cls, name: str, trained: dict[str, Any] | None = None) -> ModelRef:
        return cls(name, name, name, trained)


class DenseModel:
    """Query and document encoders plus the settings they are used with; torch loads lazily."""

    def __init__(self, ref: ModelRef, query_spec: Any, doc_spec: Any, settings: EncoderSettings,
                 allow_pickle: bool = False, compute: Compute = Compute()):
        self.ref, self.query_spec, self.doc_spec, self.settings = ref, query_spec, doc_spec, settings
        self.allow_pickle = allow_pickle  # not a setting: it changes whether a model loads, not its vectors
        self.compute = compute
        self.name = ref.name
        self._encoders: dict[str, Any] = {}

    @classmethod
    def open(cls, ref: ModelRef | str, config: ModelConfig, compute: Compute = Compute()) -> DenseModel:
        from harness.model.spec import read_model_spec, resolve_model

        ref = ModelRef.shared(ref) if isinstance(ref, str) else ref
        spec = read_model_spec(resolve_model(ref.doc))
        query_spec = spec if ref.query == ref.doc else read_model_spec(resolve_model(ref.query))
        settings = EncoderSettings(
            pooling=config.pooling or spec.pooling,
            normalize=spec.normalize if config.normalize is None else config.normalize,
            query_max_length=config.query_max_length or spec.max_seq_length,
            doc_max_length=config.doc_max_length or spec.max_seq_length,
            query_prefix=config.query_prefix, doc_prefix=config.doc_prefix, batch_size=config.batch_size)
        return cls(ref, query_spec, spec, settings, config.allow_pickle, compute)

    @property
    def record(self) -> dict[str, Any]:
        """Provenance of the encoders, stored with every run (and part of its run key)."""
        settings = {k: v for k, v in asdict(self.settings).items() if k != "batch_size"}
        record = {"name": self.name, "path": str(self.doc_spec.path), "fingerprint": self.doc_spec.fingerprint,
                  "dim": self.doc_spec.dim, **settings}
        if self.query_spec is not self.doc_spec:
            record.update(query_path=str(self.query_spec.path), query_fingerprint=self.query_spec.fingerprint)
        if self.ref.trained:
            # Seconds differ from run to run: they go to the run's timings, never into its record.
            record["trained"] = {k: v for k, v in self.ref.trained.items() if k not in ("train_seconds", "part_seconds")}
        record.update(self.compute.key_parts())  # nothing for fp32 on the CPU: its keys stay as they were
        return record

    @property
    def identity(self) -> dict[str, Any]:
        """The record without names, folders and a trained model's cost: what cache and run keys
        hash, so moving a virtualenv or a cache folder, or renaming a variant, does not
        invalidate anything."""
        identity = {k: v for k, v in self.record.items() if k not in ("name", "path", "query_path")}
        if "trained" in identity:
            identity["trained"] = {k: v for k, v in identity["trained"].items() if k != "cost"}
        return identity

    @property
    def training_identity(self) -> dict[str, Any]:
        """The identity a model trained from this one keys on: torch trains it whatever the
        backend, at :attr:`~harness.model.compute.Compute.train_precision`, so a model trained for
        a torch run serves an OpenVINO one (its frozen encodes, and what was mined or indexed with
        them, still key apart)."""
        trains = replace(self.compute, precision=self.compute.train_precision, backend="torch")
        identity = {k: v for k, v in self.identity.items() if k not in self.compute.key_parts()}
        return {**identity, **trains.key_parts()}

    def _encoder(self, side: str, collection: Collection | None = None, cache_dir: Path | None = None,
                 log: Callable[[str], None] = lambda _: None) -> Any:
        """The encoder of `side` (doc or query): torch's, or the backend's over the model's export
        (`collection` and `cache_dir` then name its calibration documents and its cache)."""
        s = self.settings
        spec = self.doc_spec if side == "doc" else self.query_spec
        calibration = self._calibration(collection)
        key = (side, calibration.docs_id if calibration else None)
        if key in self._encoders:
            return self._encoders[key]
        limit = s.doc_max_length if side == "doc" else s.query_max_length
        prefix = s.doc_prefix if side == "doc" else s.query_prefix
        if self.compute.backend == "torch":
            from harness.model.encoder import Encoder

            encoder = Encoder(spec.path, pooling=s.pooling, normalize=s.normalize, batch_size=s.batch_size,
                              max_length=limit, prefix=prefix, allow_pickle=self.allow_pickle,
                              device=self.compute.device, precision=self.compute.precision, world=self.compute.world)
        else:
            from harness.model.export import ExportSpec, exported
            from harness.model.runtime_encoder import RuntimeEncoder

            if cache_dir is None:
                raise ValueError(f"backend {self.compute.backend} encodes from a cached export: pass cache_dir")
            export = ExportSpec(spec.path, spec.fingerprint, s.pooling, s.normalize, self.compute.backend,
                                self.compute.precision, calibration, s.doc_prefix, s.doc_max_length)
            folder = self.compute.world.on_main(
                lambda: exported(export, cache_dir, log, name=self.name, allow_pickle=self.allow_pickle))
            encoder = RuntimeEncoder(folder, spec.path, backend=self.compute.backend, precision=self.compute.precision,
                                     dim=spec.dim, max_length=limit, batch_size=s.batch_size, prefix=prefix,
                                     world=self.compute.world)
        self._encoders[key] = encoder
        return encoder

    def _calibration(self, collection: Collection | None) -> Any:
        """The documents an int8 OpenVINO export calibrates on: `collection`'s (None otherwise)."""
        if self.compute.backend != "openvino" or self.compute.precision != "int8":
            return None
        if collection is None:
            raise ValueError("an int8 OpenVINO encode calibrates on a collection's documents: pass collection")
        from harness.model.export import Calibration

        return Calibration(collection.docs_id, collection.doc_texts)

    def encode_corpus(self, collection: Collection, cache_dir: Path, progress: StageProgress,
                      console: Console) -> tuple[np.ndarray, float]:
        """Corpus embeddings, from the cache when an intact entry matches; (vectors, seconds).

        With several processes rank 0 checks the cache (and alone writes to it); on a miss every
        rank encodes its share of the batches, and all get the whole matrix (a read-only memory
        map of the cache file)."""
        from harness.model.embedding_cache import EmbeddingCache

        cache = EmbeddingCache(cache_dir / "embeddings", log=console.log)
        s = self.settings
        key = cache.key(model=self.doc_spec.fingerprint, docs=collection.docs_id, doc_count=len(collection.doc_ids),
                        max_length=s.doc_max_length, pooling=s.pooling, normalize=s.normalize,
                        prefix=s.doc_prefix, text_format=TEXT_FORMAT, **self.compute.key_parts())
        world = self.compute.world
        cached = cache.load(key) if world.main else None
        if world.on_main(lambda: cached is not None and cached.shape[0] == len(collection.doc_ids)):
            cached = cached if world.main else cache.load(key)
            if cached is None:
                raise CacheError(f"process {world.rank} cannot read the corpus embeddings that process 0 found in "
                                 f"{cache.root}; on several machines, put --cache-dir on a shared filesystem")
            console.log(f"corpus embeddings of {collection.docs_id} from cache ({cached.shape[0]:,} x {cached.shape[1]})")
            return cached, 0.0
        from harness.cache.partial import Schedule
        from harness.model.batched import ENCODE_CHUNK

        encoder = self._encoder("doc", collection, cache_dir, console.log)
        shape = (len(collection.doc_ids), encoder.dim)
        schedule = Schedule.of(encoder.batch_size, ENCODE_CHUNK)
        # Rank 0 encodes straight into a file in its cache work folder (memory-mapped), resuming a
        # dead process's partial of this key; published when complete.
        target = (cache.writer(key, shape, {"model": self.name, "docs": collection.docs_id}, schedule)
                  if world.main else contextlib.nullcontext(None))
        start = time.perf_counter()
        with target as partial:
            vectors = partial.vectors if world.main else np.empty(shape, dtype=np.float32)
            # Rows gather into rank 0's cache file; the other ranks map that file once it is
            # published, so one machine holds one copy however many processes it runs. A cache
            # that cannot be written gathers every row into every process instead.
            to_file, done = world.on_main(lambda: (isinstance(vectors, np.memmap), partial.done))
            with progress.task(f"encoding {collection.docs_id}", shape[0], "docs", start=done) as advance:
                encoder.encode(collection.doc_texts, progress=advance, out=vectors, everyone=not to_file,
                               every=schedule.every, start=done, commit=partial.commit if world.main else None)
        world.barrier()  # rank 0 has published the file
        if to_file and not world.main:
            vectors = cache.load(key)
            if vectors is None:
                raise CacheError(f"process {world.rank} cannot read the corpus embeddings process 0 wrote to "
                                 f"{cache.root}; on several machines, put --cache-dir on a shared filesystem")
        seconds = time.perf_counter() - start
        encoded = len(vectors) - done  # a resumed encode's own work: its rate is not flattered
        console.log(f"encoded {encoded:,} documents in {seconds:.1f}s ({encoded / max(seconds, 1e-9):.1f} docs/s)"
                    + (f", {done:,} more resumed" if done else ""))
        if vectors.flags.writeable:
            vectors.flags.writeable = False  # as a cached entry is served: read-only
        return vectors, seconds

    def encode_queries(self, texts: list[str], advance: Callable[[int], None], collection: Collection | None = None,
                       cache_dir: Path | None = None, console: Console | None = None) -> np.ndarray:
        """Vectors of `texts`, queries of `collection` (whose documents calibrate an int8 export;
        a backend other than torch needs `cache_dir`, where its exports are cached)."""
        log = console.log if console is not None else (lambda _: None)
        return self._encoder("query", collection, cache_dir, log).encode(texts, progress=advance)

    def search(self, factory: str, doc_vectors: np.ndarray, query_vectors: np.ndarray,
               query_ids: list[str], collection: Collection, recipe: Recipe, progress: StageProgress,
               label: str, exact: np.ndarray | None = None,
               ) -> tuple[dict[str, list[tuple[str, float]]], dict[str, float], dict[str, float]]:
        """Build `factory` over the corpus and rank it for every query.

        Returns (results, timings, index stats); `exact` (Flat top ids per query) lets the
        stats say how much of the exact top-k a compressed index still finds.
        """
        from harness.index.faiss_index import build_index, code_size, search

        with progress.task(f"{label}: indexing {factory}", len(doc_vectors), "docs") as advance:
            built = build_index(factory, doc_vectors, seed=recipe.experiment.seed,
                                train_sample=recipe.eval.index_train_sample, nprobe=recipe.eval.nprobe,
                                progress=advance, gpu=self.compute.faiss_gpu)
        with progress.task(f"{label}: searching {factory}", len(query_ids), "queries") as advance:
            scores, ids, seconds = search(built, query_vectors, recipe.eval.depth,
                                          batch_size=recipe.eval.search_batch_size, progress=advance)
        doc_ids = collection.doc_ids
        results = {q: [(doc_ids[i], float(s)) for i, s in zip(ids[row], scores[row]) if i >= 0]
                   for row, q in enumerate(query_ids)}
        timings = {"index": built.build_seconds, "search": seconds}
        stats = {"bytes_per_doc": float(code_size(built)), "build_seconds": built.build_seconds,
                 "ms_per_query": 1000 * seconds / max(len(query_ids), 1)}
        if exact is not None:
            stats.update(overlap_with_exact(ids, exact))
        return results, timings, stats


# The cut-offs of `flat_recall@k`: how much of the exact top-k a compressed index returns. The
# exact top-k is computed to the largest of them (`EXACT_DEPTH`).
OVERLAP_CUTOFFS = (10, 100)
EXACT_DEPTH = max(OVERLAP_CUTOFFS)


def overlap_with_exact(ids: np.ndarray, exact: np.ndarray,
                       cutoffs: tuple[int, ...] = OVERLAP_CUTOFFS) -> dict[str, float]:
    """Mean fraction of the exact (Flat) top-k that an index also returns in its top-k."""
    out = {}
    for k in cutoffs:
        if k <= min(ids.shape[1], exact.shape[1]):
            hits = [len(set(a[:k]) & set(b[:k])) / k for a, b in zip(ids, exact)]
            out[f"flat_recall@{k}"] = float(np.mean(hits)) if hits else 0.0
    return out
