"""Entry points of the trained kinds (see :mod:`harness.registry`): each returns the
ModelRef of its trained encoders, training only when no cached artifact matches."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from harness.dense import ModelRef
from harness.recipe.model import Variant
from harness.train.artifacts import ModelArtifacts, artifact_key, read_log, save_encoder, write_log
from harness.train.samplers import strategy
from harness.train.samplers.base import TrainData

if TYPE_CHECKING:
    from harness.context import StageContext


def train_shared(variant: Variant, ctx: StageContext) -> ModelRef:
    """inbatch, random, static, star: one tower for queries and documents, both trained."""
    from harness.train.mining import mine_negatives

    params = variant.params
    init = ctx.dense(ctx.model_for(params["init"]))
    if init.query_spec is not init.spec:
        raise _chain_error(variant, "init", params["init"])
    collection = ctx.train_collection()
    data = TrainData.from_collection(collection)
    negatives, negatives_key = None, None
    if variant.kind in ("static", "star"):
        negatives, negatives_key = mine_negatives(params["negatives_from"], params["negatives_depth"], data,
                                                  collection, ctx)
    key = artifact_key(kind=variant.kind, params=dict(params), init=init.identity, negatives=negatives_key,
                       data=collection.archive_digests, train=collection.dataset_id,
                       seed=ctx.recipe.experiment.seed, prefixes=[init.settings.query_prefix,
                                                                  init.settings.doc_prefix])

    def step_factory(encoder: Any) -> Any:
        return _shared_step(encoder, variant, data, negatives, init.settings)

    return _train_or_reuse(variant, ctx, key, init, init.spec.path, step_factory, data, pairs_with=None)


def _shared_step(encoder: Any, variant: Variant, data: TrainData, negatives: dict[str, np.ndarray] | None,
                 settings: Any) -> Any:
    params, sampler = variant.params, strategy(variant.kind)

    def step(query_ids: list[str], rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        batch = sampler.build(query_ids, data, rng, params, negatives)
        q = encoder.embed([data.queries[x] for x in query_ids], max_length=params["query_max_length"],
                          prefix=settings.query_prefix)
        rows = batch.positive_rows + batch.negative_rows
        d = encoder.embed([data.doc_texts[r] for r in rows], max_length=params["doc_max_length"],
                          prefix=settings.doc_prefix)
        b = len(query_ids)
        loss, info = sampler.loss(q * params["scale"], d[:b], d[b:], batch, params)
        return loss, {k: float(v) for k, v in info.items() if k.endswith("_loss")}

    return step


def train_adore(variant: Variant, ctx: StageContext) -> ModelRef:
    """adore and star+adore: only the query encoder trains, against a frozen document index."""
    from harness.train.adore import adore_step, frozen_index

    params = variant.params
    index_from = params["star"] if variant.kind == "star+adore" else params["index_from"]
    doc_model = ctx.dense(ctx.model_for(index_from))
    init_name = params["init"] or index_from
    init = ctx.dense(ctx.model_for(init_name))
    collection = ctx.train_collection()
    data = TrainData.from_collection(collection)
    ivf = {"nprobe": ctx.recipe.eval.nprobe} if "IVF" in params["train_index"] else {}
    key = artifact_key(kind="adore", params=dict(params), init=init.identity, documents=doc_model.identity,
                       data=collection.archive_digests, train=collection.dataset_id,
                       seed=ctx.recipe.experiment.seed, **ivf)
    index_cache: dict[str, Any] = {}

    def step_factory(encoder: Any) -> Any:
        if "index" not in index_cache:
            # Encoded only when training is needed: a cached ADORE model never touches the corpus.
            doc_vectors, _ = doc_model.encode_corpus(collection, ctx.cache_dir, ctx.progress, ctx.console)
            index_cache["index"] = frozen_index(params["train_index"], doc_vectors, ctx.recipe.experiment.seed,
                                                ctx.recipe.eval.nprobe)
        return adore_step(encoder, params, data, index_cache["index"], init.settings)

    ref = _train_or_reuse(variant, ctx, key, init, init.query_spec.path, step_factory, data,
                          pairs_with=doc_model.record)
    return ModelRef(variant.name, query=ref.query, doc=doc_model.ref.doc, trained=ref.trained)


def _train_or_reuse(variant: Variant, ctx: StageContext, key: str, init: Any, source: Path, step_factory: Any,
                    data: TrainData, pairs_with: dict[str, Any] | None) -> ModelRef:
    from harness.store import write_training_log

    artifacts = ModelArtifacts(ctx.cache_dir / "models")
    meta = artifacts.load(key)
    if meta is not None:
        ctx.console.log(f"{variant.name}: trained model from cache ({artifacts.final(key)})")
        log = read_log(artifacts.final(key))
    else:
        log, meta = _train(variant, ctx, key, init, source, step_factory, data, pairs_with, artifacts)
    if ctx.db is not None and ctx.experiment is not None:
        write_training_log(ctx.db, ctx.experiment.name, variant.name, log)
    trained = {"key": key, "kind": variant.kind, "steps": meta["steps"], "train_seconds": meta["train_seconds"]}
    return ModelRef.shared(str(artifacts.final(key)), trained=trained)


def _train(variant: Variant, ctx: StageContext, key: str, init: Any, source: Path, step_factory: Any,
           data: TrainData, pairs_with: dict[str, Any] | None,
           artifacts: ModelArtifacts) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from harness.model.encoder import Encoder
    from harness.train.loop import train

    encoder = Encoder(source, pooling=init.settings.pooling, normalize=init.settings.normalize, max_length=None)
    workdir = artifacts.partial(key)
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / "checkpoint.pt").is_file():
        ctx.console.log(f"{variant.name}: resuming from {workdir / 'checkpoint.pt'}")
    log, seconds = train(encoder.model, variant.params, data.query_ids, ctx.recipe.experiment.seed,
                         step_factory(encoder), workdir, ctx.progress, variant.name)
    save_encoder(encoder.model, encoder.tokenizer, source, workdir, max_seq_length=None)
    write_log(workdir, log)
    meta = {"key": key, "kind": variant.kind, "variant": variant.name, "params": dict(variant.params),
            "init": init.record, "train": ctx.recipe.data.train, "steps": len(log), "train_seconds": seconds,
            "pairs_with": pairs_with}
    artifacts.publish(key, meta)
    last = log[-1] if log else {}
    ctx.console.log(f"{variant.name}: trained {len(log)} steps in {seconds:.0f}s"
                    + (f", final loss {last['loss']:.4f}" if last else ""))
    return log, meta


def _chain_error(variant: Variant, key: str, value: str) -> Exception:
    from harness.errors import RecipeError

    return RecipeError(f'[variant.{variant.name}] {key} = "{value}": that variant has separate query and '
                       "document encoders (ADORE); start shared-tower training from a shared-tower model")


