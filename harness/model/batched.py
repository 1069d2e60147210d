"""Texts to vectors in length-sorted batches, resumable and split over processes: what every
backend's encoder shares (torch's :class:`~harness.model.encoder.Encoder`, OpenVINO's and ONNX
Runtime's :class:`~harness.model.runtime_encoder.RuntimeEncoder`).

A subclass says how one batch becomes vectors (:meth:`BatchedEncoder._vectors`); this class
decides the batches. In a run of several processes (:class:`~harness.world.World`) whole batches
are dealt round-robin (each batch is the one a single process would encode, so the vectors are
bit-identical) and gathered, so every process gets every vector.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np

from harness.data.doc_texts import chunks_of
from harness.world import World

# Texts sorted by length per chunk: every corpus here fits in one (so its batches are what one
# global sort gives), and MS MARCO's 8.8M passages stream 100,000 at a time (~40 MB of text).
ENCODE_CHUNK = 100_000


class BatchedEncoder:
    """The batched, numpy encode path; a subclass sets `batch_size`, `max_length`, `dim` and
    `world`, and implements :meth:`_vectors`."""

    batch_size: int
    max_length: int | None
    dim: int
    world: World

    def _vectors(self, texts: Sequence[str], max_length: int | None) -> np.ndarray:
        """One batch of texts to float32 vectors ``(len(texts), dim)``."""
        raise NotImplementedError

    def _inference(self) -> contextlib.AbstractContextManager[None]:
        """What every batch of an encode runs inside (torch: no gradients, autocast)."""
        return contextlib.nullcontext()

    def encode(self, texts: Sequence[str], *, max_length: int | None = None,
               progress: Callable[[int], None] | None = None, out: np.ndarray | None = None,
               everyone: bool = True, chunk: int = ENCODE_CHUNK, every: int | None = None, start: int = 0,
               commit: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray:
        """Encode `texts` into a float32 array ``(len(texts), dim)``, rows in input order.

        Texts are read `chunk` at a time (streamed from ir_datasets for a corpus) and sorted by
        length within it, longest first, so each batch pads to a similar length (and an
        out-of-memory error shows up on the first batch, not the last). `progress` is called
        with the number of texts done after each batch. `out`: the array to fill and return (a
        memory-mapped cache file), instead of a new one. With several processes every one gets
        all rows, or with `everyone=False` only rank 0 (the others' `out` holds their own rows).

        Resuming (:class:`harness.cache.partial.Schedule`): every `every` batches of a chunk (a
        group; default, the whole chunk) the processes gather their rows and `commit(position,
        rows)` is called with the encode position reached and the group's rows in encode order
        (on rank 0 only when `everyone=False`). `start`: the positions a dead process's partial
        already filled in `out`, a group's end; they are skipped. The batches are those of an
        uninterrupted encode, whatever `start` and the process count, so the vectors are too.
        """
        limit = max_length or self.max_length
        world = self.world
        if out is None:
            out = np.empty((len(texts), self.dim), dtype=np.float32)
        elif out.shape != (len(texts), self.dim):
            raise ValueError(f"out has shape {out.shape}; encoding needs {(len(texts), self.dim)}")
        offset = 0
        with self._inference():
            for part in chunks_of(texts, chunk):
                if offset + len(part) <= start:  # a chunk the resumed partial holds whole
                    offset += len(part)
                    continue
                order = sorted(range(len(part)), key=lambda i: len(part[i]), reverse=True)
                batches = [order[lo:lo + self.batch_size] for lo in range(0, len(order), self.batch_size)]
                step = every or len(batches)
                first, skipped = divmod(max(start - offset, 0), self.batch_size * step)
                if skipped:
                    raise ValueError(f"start {start} is not the end of a group of {step} batches")
                for group in range(first * step, len(batches), step):
                    self._encode_group(part, batches[group:group + step], offset, out, limit, progress,
                                       everyone)
                    if commit is not None and (everyone or world.main):
                        rows = [offset + i for batch in batches[group:group + step] for i in batch]
                        commit(offset + min((group + step) * self.batch_size, len(part)), np.asarray(rows))
                offset += len(part)
        return out

    def _encode_group(self, part: Sequence[str], batches: list[list[int]], offset: int, out: np.ndarray,
                      limit: int | None, progress: Callable[[int], None] | None, everyone: bool) -> None:
        """Encode one group of batches into `out` (rows `offset` + each batch's indices), dealt
        round-robin over the processes (round r: rank k encodes batch r * size + k), then gather."""
        world, mine = self.world, []
        for first in range(0, len(batches), world.size):
            round_ = batches[first:first + world.size]
            if world.rank < len(round_):
                rows = round_[world.rank]
                out[[offset + i for i in rows]] = self._vectors([part[i] for i in rows], limit)
                mine.append(np.asarray(rows, dtype=np.int64) + offset)
            if progress is not None:
                progress(sum(len(rows) for rows in round_))
        world.assemble(out, np.concatenate(mine) if mine else np.empty(0, dtype=np.int64), everyone=everyone)

