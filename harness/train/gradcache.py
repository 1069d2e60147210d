"""Gradient caching: a batch's vectors computed in chunks, so a large batch trains in the memory
of a small one (the pair strategies' `chunk_size`).

Gao, Zhang, Han, Callan, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup" (RepL4NLP 2021). As luyug/GradCache does it (read at 6b3291a,
`src/grad_cache/grad_cache.py`: `forward_no_grad`, `build_cache`, `forward_backward`):

1. every chunk is encoded without a graph, the RNG state it started from kept
   (:class:`RandContext`);
2. the loss is computed on the whole batch from those vectors, and its backward pass stops at
   them: the gradient with respect to each vector is the cache;
3. each chunk is encoded again, with a graph and its own RNG state (so dropout draws the masks
   of its first pass), and back-propagated with its rows of the cache, which accumulates the
   weights' gradients; only one chunk's activations are alive at a time.

Unlike GradCache's `cache_step`, which calls `backward()` itself, step 3 runs inside the
backward pass of the loss (:class:`_Replay`, reentrant as `torch.utils.checkpoint`'s first
form): the training loop's one `backward()` then carries the fp16 loss scale, the gradient
accumulation divisor and the process count into the cached gradients as it does for any loss.

Several processes: each chunk is split over the processes as any batch is
(:meth:`~harness.model.encoder.Encoder.embed`: each encodes its share and gathers the rest), so
the loss sees the cross-device negatives, and each process re-encodes its own share of every
chunk. Every chunk but the last is re-encoded under DistributedDataParallel's `no_sync`, so the
gradients are all-reduced once per cached encoding (queries, documents), as GradCache's
`no_sync_except_last` does once per model.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Sequence

import torch


class RandContext:
    """The RNG state at its creation, replayed inside ``with``: the CPU generator's and, on CUDA,
    `device`'s; on exit the states from before ``with`` come back (`torch.random.fork_rng`).

    As GradCache's `RandContext` (`src/grad_cache/context_managers.py` at 0c33638, read in the
    copy nomic-ai/contrastors keeps as `src/contrastors/rand_state.py`).

    >>> context = RandContext(torch.device("cpu"))
    >>> first = torch.rand(2)
    >>> with context:
    ...     again = torch.rand(2)
    >>> bool(torch.equal(first, again))
    True
    """

    def __init__(self, device: torch.device) -> None:
        self.devices = [device] if device.type == "cuda" else []
        self.cpu_state = torch.get_rng_state()
        self.device_states = [torch.cuda.get_rng_state(d) for d in self.devices]
        self._fork: Any = None

    def __enter__(self) -> None:
        self._fork = torch.random.fork_rng(devices=self.devices)
        self._fork.__enter__()
        torch.set_rng_state(self.cpu_state)
        for device, state in zip(self.devices, self.device_states):
            torch.cuda.set_rng_state(state, device)

    def __exit__(self, *exc: Any) -> None:
        self._fork.__exit__(*exc)
        self._fork = None


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """Rows ``[lo, hi)`` of each chunk of `n` texts: as few chunks as `chunk_size` allows, their
    sizes as even as possible (so no last chunk of one text, which several processes could not share).

    >>> chunk_bounds(10, 4)
    [(0, 3), (3, 6), (6, 10)]
    """
    count = -(-n // chunk_size)
    return [(n * i // count, n * (i + 1) // count) for i in range(count)]


def cached_embed(embed: Callable[[Sequence[str]], torch.Tensor], texts: Sequence[str], chunk_size: int,
                 device: torch.device, replica: Any = None) -> torch.Tensor:
    """`embed(texts)` computed chunk by chunk without a graph, as a tensor whose backward pass
    re-encodes each chunk with one and back-propagates its rows of the incoming gradient.

    `embed`: texts -> vectors, with a graph when grad mode is on (what the strategy calls
    uncached). `replica`: the DistributedDataParallel module `embed` goes through, if any: every
    chunk's second pass but the last runs under its `no_sync`. Texts that fit in one chunk are
    embedded directly (caching them would save nothing), but for a `replica`: a forward pass
    with a graph whose backward runs beside the chunks' would interleave DistributedDataParallel's
    forward and backward passes, which it does not support.
    """
    if len(texts) <= chunk_size and replica is None:
        return embed(texts)
    bounds = chunk_bounds(len(texts), chunk_size)
    states, parts = [], []
    with torch.no_grad():
        for lo, hi in bounds:
            states.append(RandContext(device))
            parts.append(embed(texts[lo:hi]))
    vectors = torch.cat(parts)
    autocast = (device.type, torch.is_autocast_enabled(device.type), torch.get_autocast_dtype(device.type))

    def replay(gradient: torch.Tensor) -> None:
        kind, enabled, dtype = autocast
        last = len(bounds) - 1
        with torch.enable_grad():
            for i, ((lo, hi), state) in enumerate(zip(bounds, states)):
                syncing = replica.no_sync() if replica is not None and i < last else contextlib.nullcontext()
                with syncing:
                    with state, torch.autocast(kind, dtype=dtype, enabled=enabled):
                        again = embed(texts[lo:hi])
                    # fp32, as GradCache's surrogate: the cached gradient is fp32 (the loss is)
                    with torch.autocast(kind, enabled=False):
                        surrogate = torch.dot(again.float().flatten(), gradient[lo:hi].float().flatten())
                    surrogate.backward()

    anchor = torch.empty(0, device=vectors.device, requires_grad=True)
    return _Replay.apply(anchor, vectors, replay)


class _Replay(torch.autograd.Function):
    """Identity on the first pass's vectors; its backward hands their gradient to `replay`.
    `anchor`, an empty tensor that requires grad, is what puts it in the loss's graph."""

    @staticmethod
    def forward(ctx: Any, anchor: torch.Tensor, vectors: torch.Tensor,  # type: ignore[override]
                replay: Callable[[torch.Tensor], None]) -> torch.Tensor:
        ctx.replay = replay
        return vectors.clone()

    @staticmethod
    def backward(ctx: Any, gradient: torch.Tensor) -> tuple[None, None, None]:  # type: ignore[override]
        ctx.replay(gradient)
        ctx.replay = None  # the chunks' texts and RNG states go with it
        return None, None, None
