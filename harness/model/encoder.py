"""Encode texts into vectors: the one module that owns torch and transformers for encoding.

:func:`pool` and :func:`embed_batch` are pure torch and keep gradients, so a trainer can reuse
them on :attr:`Encoder.model`; :meth:`Encoder.encode` is the no-grad, batched, numpy path
(:class:`~harness.model.batched.BatchedEncoder`, which the other backends share).

In a run of several processes (:class:`~harness.world.World`), :meth:`Encoder.embed` encodes
this rank's share of a training batch and gathers it, so every process gets every vector.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import ModelError
from harness.model.batched import BatchedEncoder
from harness.model.compute import Compute
from harness.model.spec import POOLINGS, ModelSpec
from harness.world import ONE, World


def pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor,
         pooling: str) -> torch.Tensor:
    """Reduce token states ``(batch, seq, dim)`` to one vector per text ``(batch, dim)``.

    ``mean`` averages the tokens the mask keeps, ``max`` takes the per-dimension maximum over
    them, ``cls`` takes token 0 (right padding assumed, as BERT-style tokenizers do).

    >>> h = torch.tensor([[[1.0], [3.0], [100.0]]]); m = torch.tensor([[1, 1, 0]])
    >>> pool(h, m, "mean").tolist()
    [[2.0]]
    """
    if pooling == "cls":
        return last_hidden_state[:, 0]
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)
    if pooling == "mean":
        summed = (last_hidden_state * mask).sum(dim=1)
        # clamp: an all-padding row would divide by zero; it pools to zeros instead
        return summed / mask.sum(dim=1).clamp(min=1e-9)
    if pooling == "max":
        floor = torch.finfo(last_hidden_state.dtype).min
        return last_hidden_state.masked_fill(mask == 0, floor).max(dim=1).values
    raise ModelError(f"pooling '{pooling}' is not supported; use one of {', '.join(POOLINGS)}")


class Pooled(torch.nn.Module):
    """`model` plus pooling as one module whose output is the pooled vectors only: what
    DistributedDataParallel wraps in training, so it sees exactly the weights the vectors use."""

    def __init__(self, model: torch.nn.Module, *, pooling: str, normalize: bool):
        super().__init__()
        self.model, self.pooling, self.normalize = model, pooling, normalize

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return embed_batch(self.model, batch, pooling=self.pooling, normalize=self.normalize)


def embed_batch(model: torch.nn.Module, batch: Mapping[str, torch.Tensor], *, pooling: str,
                normalize: bool) -> torch.Tensor:
    """Run `model` on a tokenized batch and return pooled (optionally unit-length) vectors.

    Gradients flow when called outside ``torch.inference_mode()``; the trainer uses this too.
    """
    output = model(**batch)
    vectors = pool(output.last_hidden_state, batch["attention_mask"], pooling)
    return F.normalize(vectors, p=2, dim=-1) if normalize else vectors


class Encoder(BatchedEncoder):
    """A Hugging Face transformer plus pooling that turns texts into float32 vectors, in torch.

    >>> enc = Encoder.from_spec(read_model_spec(resolve_model("minilm")))  # doctest: +SKIP
    >>> enc.encode(["dense retrieval"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, path: str | Path, *, pooling: str, normalize: bool,
                 max_length: int | None, batch_size: int = 64, device: str = "cpu",
                 prefix: str = "", allow_pickle: bool = False, precision: str = "fp32",
                 world: World = ONE) -> None:
        if pooling not in POOLINGS:
            raise ModelError(f"pooling '{pooling}' is not supported; "
                             f"use one of {', '.join(POOLINGS)}")
        if batch_size < 1:
            raise ModelError(f"batch_size {batch_size} must be at least 1")
        self.path = Path(path)
        self.pooling = pooling
        self.normalize = normalize
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.compute = Compute(device, precision)  # encode() runs under its autocast; trainers wrap embed()
        self.prefix = prefix
        self.tokenizer, self.model = load_pretrained(self.path, self.device, allow_pickle)
        self.world = world
        # What embed() calls; a multi-process trainer swaps in its DistributedDataParallel wrapper.
        self.pooled: torch.nn.Module = Pooled(self.model, pooling=pooling, normalize=normalize)
        self.max_length = max_length or model_limit(self.tokenizer, self.model)
        self.dim = _hidden_size(self.model)

    @classmethod
    def from_spec(cls, spec: ModelSpec, **kwargs: object) -> Encoder:
        """Build an encoder with the spec's pooling, normalisation and max length."""
        return cls(spec.path, pooling=spec.pooling, normalize=spec.normalize,
                   max_length=spec.max_seq_length, **kwargs)  # type: ignore[arg-type]

    def _inference(self) -> contextlib.AbstractContextManager[None]:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(self.compute.autocast())
        return stack

    def _vectors(self, texts: Sequence[str], max_length: int | None) -> np.ndarray:
        return self._embed(texts, max_length=max_length).float().cpu().numpy()

    def embed(self, texts: Sequence[str], *, max_length: int | None = None,
              prefix: str | None = None) -> torch.Tensor:
        """One batch of texts to pooled vectors, with gradients unless the caller disables them
        (the trainers call this; `prefix` overrides the encoder's own, e.g. query vs document).

        With several processes, each encodes its :meth:`~harness.world.World.share` of `texts`
        and gets back all rows as float32, with gradients through its own (the batch is the
        global batch: N processes at batch B train what one process does at batch B).
        """
        if self.world.size == 1:
            return self._embed(texts, max_length=max_length, prefix=prefix)
        lo, hi = self.world.share(len(texts))
        if lo == hi:
            raise ModelError(f"{len(texts)} texts cannot be split over {self.world.size} processes; use a batch of "
                             "at least as many queries as processes")
        return self.world.gather_rows(self._embed(texts[lo:hi], max_length=max_length, prefix=prefix), len(texts))

    def _embed(self, texts: Sequence[str], *, max_length: int | None = None,
               prefix: str | None = None) -> torch.Tensor:
        return self.pooled(self.tokenize(texts, max_length=max_length, prefix=prefix))

    def tokenize(self, texts: Sequence[str], *, max_length: int | None = None,
                 prefix: str | None = None) -> dict[str, torch.Tensor]:
        """Tokenize with the prefix, padding to the longest text, on the encoder's device."""
        prefix = self.prefix if prefix is None else prefix
        batch = self.tokenizer([prefix + t for t in texts], padding=True, truncation=True,
                               max_length=max_length or self.max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items()}


def load_pretrained(path: Path, device: torch.device, allow_pickle: bool, *,
                    head: str = "AutoModel") -> tuple[object, torch.nn.Module]:
    """The tokenizer and model of a local folder, as drbench loads every model: from that folder
    only, safetensors unless `allow_pickle`, float32, in eval mode, on `device`; `head`: the
    transformers auto class (`AutoModelForSequenceClassification` for a cross-encoder)."""
    import transformers
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    # transformers 5 draws a tqdm bar while loading weights; it would tear the pipeline's rich bar.
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        # safetensors only: a pickle checkpoint can run code when loaded (validate says so first).
        model = getattr(transformers, head).from_pretrained(path, use_safetensors=None if allow_pickle else True)
    except (OSError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"cannot load model from {path}: {reason}") from exc
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    # float32 everywhere: transformers 5 loads the checkpoint's dtype, and a bf16 checkpoint
    # would give different vectors (and cache keys would not say so).
    model = model.float().to(device)
    model.eval()
    return tokenizer, model


# Attention code that reads a float instead of calling a Dropout module (T5's `dropout`, some
# attention classes' `dropout_prob` / `attention_dropout`): set as well, or they keep the old rate.
_DROPOUT_FLOATS = ("dropout", "dropout_prob", "attention_dropout", "dropout_rate")


def set_dropout(model: torch.nn.Module, p: float) -> int:
    """Give every dropout of `model` the probability `p` (its `nn.Dropout` layers and the float
    rates some attention code reads); returns how many were set. The config is left as it was, so
    the saved model, and one trained from it, keep the model's own rate."""
    count = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
            count += 1
        for name in _DROPOUT_FLOATS:
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, p)
                count += 1
    return count


def model_limit(tokenizer: object, model: torch.nn.Module) -> int | None:
    limits = [getattr(model.config, "max_position_embeddings", None),
              getattr(tokenizer, "model_max_length", None)]
    limits = [x for x in limits if isinstance(x, int) and x < 1_000_000]
    return min(limits) if limits else None


def _hidden_size(model: torch.nn.Module) -> int:
    for key in ("hidden_size", "d_model", "dim"):  # BERT-likes, T5-likes, DistilBERT
        value = getattr(model.config, key, None)
        if isinstance(value, int):
            return value
    raise ModelError(f"model config {type(model.config).__name__} has no hidden_size; "
                     "cannot tell the embedding dimension")
