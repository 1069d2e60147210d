"""Variant names -> encoders: `base`, untrained kinds and trained strategies, each built once.

For a strategy it resolves what the strategy :meth:`~harness.train.strategy.Strategy.needs`
(the init model, mined negatives, frozen documents), looks its artifact up in the cache, runs
the training stage only on a miss, publishes the result and stores the training log.

With several processes, rank 0 looks up and publishes (:meth:`~harness.world.World.on_main`
hands the others its answers); training and encoding are the collective parts.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from rich.console import Console
from rich.markup import escape

from harness.cache.entries import Entries
from harness.data.collection import Collection, load_collection
from harness.data.holdout import holdout_ids
from harness.dense import DenseModel, ModelRef
from harness.errors import RecipeError
from harness.model.compute import Compute
from harness.progress import StageProgress
from harness.recipe.model import Recipe, Variant, holdout_fraction
from harness.recipe.expand import referenced_names
from harness.api.registry import kind, origin
from harness.train.artifacts import (artifact_key, read_log, read_meta, read_negatives, write_meta,
                                     write_negatives)
from harness.train.data import TrainData
from harness.train.denoise import Denoise, Keep, denoised_negatives
from harness.train.strategy import Needs, Strategy, TrainInputs

if TYPE_CHECKING:
    from harness.train.cross_filter import CrossFilter


class Models:
    """The encoders behind `base` and every dense variant of one `drbench run`."""

    def __init__(self, recipe: Recipe, cache_dir: Path, progress: StageProgress, console: Console,
                 mirror: Path | None = None, db: Any = None, experiment: str | None = None,
                 compute: Compute = Compute()):
        self.recipe, self.cache_dir, self.progress, self.console = recipe, cache_dir, progress, console
        self.mirror, self.db, self.experiment = mirror, db, experiment  # experiment: stores training logs
        self.compute = compute
        self._refs: dict[str, ModelRef] = {}
        self._dense: dict[tuple[str, str], DenseModel] = {}
        self._loaded: dict[str, Collection] = {}
        self._aliases: dict[str, str] = {}  # a swept variant's name -> its point chosen on the dev split
        self._seeded: dict[int, Models] = {}  # the same run's models of other seeds
        self.dev: Collection | None = None  # [data] dev, set once loaded: what eval_every scores on

    def alias(self, name: str, point: str) -> None:
        """From now on `name` (a swept variant) means its chosen `point`, for every seed."""
        self._aliases[name] = point

    def chained_on(self, name: str) -> dict[str, str]:
        """The swept variants the variant `name` builds on (its init, index_from, negatives_from...,
        directly or through the variants those name), each -> the point chosen on the dev split
        that it trained on; {} for none. Built-in sources ("base", "bm25") are never variants."""
        found: dict[str, str] = {}

        def visit(variant_name: str) -> None:
            for value in referenced_names(self.recipe.variant(variant_name)):
                if value in self._aliases:
                    found.setdefault(value, self._aliases[value])
                visit(self._aliases.get(value, value))

        visit(name)
        return found

    def seeded(self, seed: int) -> Models:
        """The models of the recipe's run with `seed`: trained variants train with it, while opened
        encoders and loaded collections are shared with this one (no seed changes them)."""
        if seed == self.recipe.experiment.seed:
            return self
        if seed not in self._seeded:
            other = Models(self.recipe.with_seed(seed), self.cache_dir, self.progress, self.console, self.mirror,
                           self.db, self.experiment, self.compute)
            other._dense, other._loaded, other._aliases, other._seeded = (self._dense, self._loaded, self._aliases,
                                                                          self._seeded)
            self._seeded[seed] = other
        self._seeded[seed].dev = self.dev
        return self._seeded[seed]

    def train_collection(self) -> Collection:
        """The recipe's training split, loaded once (the loader requires it for trained kinds)."""
        dataset_id = str(self.recipe.data.train)
        if dataset_id not in self._loaded:
            with self.progress.spinner(f"loading {dataset_id}"):
                self._loaded[dataset_id] = self.compute.world.first(lambda: load_collection(dataset_id, self.mirror))
        return self._loaded[dataset_id]

    def resolve(self, name: str) -> ModelRef:
        """The encoders behind `base` or a dense variant's name, training it on first use."""
        if name == "base":
            return ModelRef.shared(self.recipe.model.base)
        name = self._aliases.get(name, name)
        if name in self.recipe.sweeps:
            raise RecipeError(f"variant {name!r} is swept and its point is not chosen yet: set [data] dev and "
                              "select = \"dev\", or name one of its points")
        if name not in self._refs:
            variant = self.recipe.variant(name)
            declared = kind(variant.kind)
            if declared.family != "dense":
                raise ValueError(f"variant {name!r} has no dense model")
            if isinstance(declared, Strategy):
                self._refs[name] = self._trained(variant, declared)
            else:
                self._refs[name] = ModelRef.shared(declared.model_name(variant.params, self.recipe.model.base))
        return self._refs[name]

    def model(self, name: str) -> DenseModel:
        """The dense model behind `base` or a dense variant's name (see :meth:`resolve`)."""
        return self.open(self.resolve(name))

    def open(self, ref: ModelRef) -> DenseModel:
        """A DenseModel for `ref` with the recipe's encoding settings (one per ref)."""
        key = (ref.query, ref.doc)
        if key not in self._dense:
            self._dense[key] = DenseModel.open(ref, self.recipe.model, self.compute)
        return self._dense[key]

    def _trained(self, variant: Variant, strategy: Strategy) -> ModelRef:
        needs = strategy.needs(variant.params)
        documents = self.model(needs.documents) if needs.documents else None
        init = self.model(needs.init)
        collection = self.train_collection()
        full = TrainData.from_collection(collection)
        # Negatives are mined for every training query, so a cached set serves recipes with and
        # without a holdout; training leaves the held-out queries out.
        negatives, negatives_key = self._negatives(needs, full, collection) if needs.negatives else (None, None)
        data = self._without_holdout(full, collection)
        inputs = TrainInputs(data, init.settings, self.recipe.experiment.seed, self.recipe.eval.nprobe, negatives,
                             frozen_docs=self._corpus(documents, collection) if documents else None,
                             faiss_gpu=self.compute.faiss_gpu, dev_score=self._dev_score(variant, init, documents),
                             cross_filter=None if needs.negatives else self._training_filter(needs.denoise, data))
        key = training_key(self.recipe, strategy, variant, inputs, collection, init, documents, negatives_key)
        folder, meta, log = self._train_or_reuse(variant, strategy, key, inputs, init, documents)
        if self.db is not None and self.experiment is not None:
            from harness.store import write_training_log

            write_training_log(self.db, self.experiment, variant.name, log, seed=self.recipe.experiment.seed)
        return trained_ref(variant, key, folder, meta, documents,
                           self._cost(key, meta, log, variant, needs, init, documents, collection))

    def _cost(self, key: str, meta: dict[str, Any], log: list[dict[str, Any]], variant: Variant, needs: Needs,
              init: DenseModel, documents: DenseModel | None, collection: Collection) -> dict[str, Any]:
        """What the model `key` cost, with what it builds on (:mod:`harness.pipeline.cost`): its
        init's parts, the mining model's and the frozen documents' (their trainings and the
        corpus they encoded), and its own training; `cost` and `part_seconds` of its ref."""
        from harness.pipeline.cost import SECONDS, cost_record, encode_part, parts_of, training_part

        parts, seconds = parts_of(init.ref.trained)
        source = str(needs.negatives) if needs.negatives else "bm25"
        for model in (None if source == "bm25" else self.model(source), documents):
            if model is not None:
                theirs, their_seconds = parts_of(model.ref.trained)
                parts.update(theirs)
                seconds.update(their_seconds)
                parts[encode_part(model.identity, collection.docs_id)] = [len(collection.doc_ids), 0]
        own = f"train {key}"
        parts[own], seconds[own] = training_part(meta, log, variant.params)
        return {"cost": cost_record(parts), SECONDS: seconds}

    def _dev_score(self, variant: Variant, init: DenseModel, documents: DenseModel | None) -> Any:
        """What scores the model in training on the dev split (`eval_every`), or None."""
        if not getattr(variant.params, "eval_every", 0) or self.dev is None:
            return None
        from harness.pipeline.dev_scores import dev_scorer

        return dev_scorer(self.dev, init.settings, self.recipe.eval.metrics, self.recipe.eval.depth,
                          frozen_docs=self._corpus(documents, self.dev) if documents else None)

    def _without_holdout(self, data: TrainData, collection: Collection) -> TrainData:
        """`data` without the queries `[data] dev = "holdout:F"` holds out (unchanged otherwise)."""
        fraction = holdout_fraction(self.recipe.data.dev)
        if fraction is None:
            return data
        held = holdout_ids(collection.queries, fraction)
        return replace(data, query_ids=tuple(q for q in data.query_ids if q not in held))

    def _train_or_reuse(self, variant: Variant, strategy: Strategy, key: str, inputs: TrainInputs,
                        init: DenseModel, documents: DenseModel | None
                        ) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
        from harness.train.loop import checkpoint_damage
        from harness.train.trainer import train_into

        world = self.compute.world
        models = Entries(self.cache_dir / "models", self.console.log)
        folder = world.on_main(lambda: models.get(key))
        if folder is not None:
            self.console.log(f"{escape(variant.name)}: trained model from cache ({folder})")
            return folder, read_meta(folder), read_log(folder)

        def resumable(work: Path) -> bool:
            reason = checkpoint_damage(work)
            if reason not in (None, "no checkpoint"):
                self.console.log(f"cache: checkpoint in {work.name} is damaged ({reason}); training from scratch")
            return reason is None

        work = world.on_main(lambda: models.workdir(key, resume=resumable))
        # The query tower is the whole model for shared-tower strategies.
        log, seconds = train_into(work, strategy, variant.params, inputs, init.query_spec.path, self.progress,
                                  self.console, variant.name, compute=self.compute,
                                  allow_pickle=self.recipe.model.allow_pickle)
        meta = {"key": key, "kind": variant.kind, "variant": variant.name, "params": variant.params.as_dict(),
                "init": init.record, "train": self.recipe.data.train, "steps": len(log), "train_seconds": seconds,
                "pairs_with": documents.record if documents else None}

        def publish() -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
            write_meta(work, meta)
            folder, ours = models.publish(key, work, produced_by={"what": "trained model", "kind": variant.kind,
                                                                  "variant": variant.name})
            if not ours:
                self.console.log(f"{escape(variant.name)}: another process published {folder.name} first; using it")
                return folder, read_meta(folder), read_log(folder)
            return folder, meta, log

        folder, meta, log = world.on_main(publish)
        last = log[-1] if log else {}
        self.console.log(f"{escape(variant.name)}: trained {len(log)} steps in {seconds:.0f}s"
                         + (f", final loss {last['loss']:.4f}" if last else ""))
        return folder, meta, log

    def _corpus(self, model: DenseModel, collection: Collection) -> Any:
        """A lazy encoder of the training corpus: a cached trained model never touches it."""
        def vectors() -> np.ndarray:
            return model.encode_corpus(collection, self.cache_dir, self.progress, self.console)[0]

        return vectors

    def _negatives(self, needs: Needs, data: TrainData,
                   collection: Collection) -> tuple[dict[str, np.ndarray], str]:
        """Hard negatives (document rows) per training query from `needs.negatives`, cached."""
        from harness.train import mining

        source, depth, denoise = str(needs.negatives), needs.negatives_depth, needs.denoise
        seed = self.recipe.experiment.seed
        model = None if source == "bm25" else self.model(source)
        key = mined_key(None if model is None else model.identity, depth, collection,
                        denoise.key(seed, self.compute.device_type))
        entries = Entries(self.cache_dir / "negatives", self.console.log)
        world = self.compute.world
        cached = world.on_main(lambda: entries.get(key))
        if cached is not None:
            return read_negatives(cached), key
        denoised = denoise != Denoise()  # at the defaults, exactly today's path
        room = denoise.retrieve_depth(depth, data) if denoised else mining.mining_depth(depth, data)
        if model is not None:  # encoding is collective: every rank takes part
            doc_vectors, _ = model.encode_corpus(collection, self.cache_dir, self.progress, self.console)
            with self.progress.task(f"mining negatives with {source}", len(data.query_ids), "queries") as advance:
                query_vectors = model.encode_queries([data.queries[q] for q in data.query_ids], advance, collection,
                                                     self.cache_dir, self.console)

        def mine() -> dict[str, np.ndarray]:
            if not denoised:
                if model is None:
                    ranked = mining.bm25_ranking(data, collection, room)
                else:
                    ranked = mining.dense_ranking(doc_vectors, query_vectors, data, room, seed,
                                                  gpu=self.compute.faiss_gpu)
                negatives = mining.hard_negatives(ranked, depth, data)
            else:
                if model is None:
                    scored, positive_scores = mining.bm25_scored(data, collection, room)
                else:
                    scored = mining.dense_ranking(doc_vectors, query_vectors, data, room, seed,
                                                  gpu=self.compute.faiss_gpu, scores=True)
                    positive_scores = mining.dense_positive_scores(doc_vectors, query_vectors, data)
                keep = self._cross_filter(denoise, data)
                negatives = denoised_negatives(scored, depth, data, denoise, positive_scores,
                                               np.random.default_rng(seed), keep)
                if keep is not None:
                    self.console.log(escape(keep.summary()))
            work = entries.workdir(key)
            write_negatives(work, negatives)
            entries.publish(key, work, produced_by={"what": "mined negatives", "source": source, "depth": depth})
            self.console.log(escape(mining.mined_summary(negatives, depth, source)))
            return negatives

        return world.on_main(mine), key

    def _training_filter(self, denoise: Denoise, data: TrainData) -> Keep | None:
        """The cross-encoder filter of a strategy that mines as it trains (ance's refresh, on every
        rank): rank 0 scores, every rank gets its answer, so all draw the same negatives."""
        keep = self._cross_filter(denoise, data)
        if keep is None:
            return None
        world = self.compute.world

        def on_main(eligible: dict[str, list[int]]) -> dict[str, list[int]]:
            return world.on_main(lambda: keep(eligible))

        return on_main

    def _cross_filter(self, denoise: Denoise, data: TrainData) -> CrossFilter | None:
        """The cross-encoder filter `denoise` asks for (`filter_model`), or None."""
        if denoise.filter_model is None or denoise.filter_max_score is None:
            return None
        from harness.train.cross_filter import CrossFilter

        return CrossFilter(denoise.filter_model, denoise.filter_max_score, data, device=self.compute.device,
                           allow_pickle=self.recipe.model.allow_pickle, progress=self.progress,
                           batch_size=self.recipe.model.batch_size)


class KeyData(Protocol):
    """What keys read of a training collection (a :class:`Collection`, or `drbench plan`'s stand-in)."""

    dataset_id: str
    archive_digests: dict[str, str | None]


def training_key(recipe: Recipe, strategy: Strategy, variant: Variant, inputs: TrainInputs, collection: KeyData,
                 init: DenseModel, documents: DenseModel | None, negatives_key: str | None) -> str:
    """The cache key of `variant`'s trained model: everything it depends on; identities carry
    fingerprints, not folders."""
    parts: dict[str, Any] = {"kind": strategy.cache_name or strategy.name, "params": variant.params.key_dict(),
                             "init": init.training_identity, "data": collection.archive_digests,
                             "train": collection.dataset_id, "seed": inputs.seed}
    if (package := origin(variant.kind)) is not None:  # a plug-in's release: upgrading it retrains
        parts["package"] = package
    if (holdout := holdout_fraction(recipe.data.dev)) is not None:  # only then: other keys stay as they were
        parts["holdout"] = holdout
    if getattr(variant.params, "keep", "last") == "best":  # the weights kept depend on what scored them
        parts["kept_on"] = {"dev": recipe.data.dev, "metric": recipe.eval.metrics[0], "depth": recipe.eval.depth}
    if documents is None:
        parts.update(negatives=negatives_key, prefixes=[init.settings.query_prefix, init.settings.doc_prefix])
    else:
        parts.update(documents=documents.identity)
    return artifact_key(**parts, **strategy.key_parts(variant.params, inputs))


def mined_key(source: dict[str, Any] | None, depth: int, collection: KeyData,
              denoise: dict[str, Any] | None = None) -> str:
    """The cache key of hard negatives mined from `collection` by the model of identity `source`
    (None: BM25), `depth` per query; `denoise`: the denoising settings changed from their defaults
    (:meth:`harness.train.denoise.Denoise.key`), in the key only when there are some."""
    from harness.train import mining

    extra = {"denoise": denoise} if denoise else {}
    return artifact_key(what="negatives", source=mining.miner_identity(source), depth=depth,
                        data=collection.archive_digests, queries=collection.dataset_id, **extra)


def trained_ref(variant: Variant, key: str, folder: Path, meta: dict[str, Any],
                documents: DenseModel | None, cost: dict[str, Any] | None = None) -> ModelRef:
    """The encoders of a trained model in `folder`: its own (shared tower), or its query encoder
    beside the frozen document encoder of `documents` (query tower); `cost`: what it cost
    (`cost` and `part_seconds`, :meth:`Models._cost`), stored with its runs and in no key."""
    trained = {"key": key, "kind": variant.kind, "steps": meta["steps"], "train_seconds": meta["train_seconds"],
               **(cost or {})}
    if documents is None:
        return ModelRef.shared(str(folder), trained=trained)
    return ModelRef(variant.name, query=str(folder), doc=documents.ref.doc, trained=trained)
