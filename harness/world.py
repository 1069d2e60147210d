"""The processes of one run: torchrun's ranks, or one process on its own.

`torchrun --nproc-per-node N` (or `drbench run --nproc N`, which calls torchrun's launcher)
starts N copies of `drbench run` and tells each its rank through the environment (`RANK`,
`WORLD_SIZE`, `LOCAL_RANK`). :meth:`World.from_env` reads them; :meth:`World.join` connects the
processes (gloo on the CPU, NCCL on CUDA). A run without torchrun is the world of one, in which
every method below is a plain pass-through: nothing is imported, nothing changes.

The rules every stage follows:

* rank 0 decides (cache lookups, store reads) and writes (store, caches, checkpoints); the
  others receive its answer through :meth:`World.on_main`, which also carries its errors, so every
  rank stops with the same one line;
* work is split by rows (:meth:`World.share`) and gathered back, so every rank holds whole
  results and runs the same code after a gather.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np

from harness.errors import DrbenchError

T = TypeVar("T")

# How long a rank waits at a collective for the others. Rank 0 alone searches, evaluates and
# writes each run while the others wait at their next collective, so this bounds one index build
# plus search; the 30-minute default of torch.distributed is too short at MS MARCO scale.
TIMEOUT = timedelta(hours=4)


class RankError(DrbenchError):
    """An error rank 0 hit inside :meth:`World.on_main`, re-raised on another rank (rank 0 prints it)."""

    def __init__(self, message: str, original: type[DrbenchError]):
        super().__init__(message)
        self.original = original


@dataclass(frozen=True)
class World:
    """This process's place among the run's processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1  # processes on this machine (each wants its own GPU)
    device: str = "cpu"  # where collectives put their tensors (NCCL needs the rank's GPU)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> World:
        """The world torchrun describes in the environment, or the world of one.

        >>> World.from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
        World(rank=1, size=2, local_rank=1, local_size=2, device='cpu')
        >>> World.from_env({}).size
        1
        """
        size = int(environ.get("WORLD_SIZE", "1"))
        if size <= 1:
            return cls()
        return cls(int(environ["RANK"]), size, int(environ.get("LOCAL_RANK", environ["RANK"])),
                   int(environ.get("LOCAL_WORLD_SIZE", size)))

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes and prints."""
        return self.rank == 0

    def join(self, device: str) -> World:
        """Connect to the other processes (idempotent); returns this world with `device` set."""
        if self.size == 1:
            return self
        import torch
        import torch.distributed as dist

        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=TIMEOUT)
        return replace(self, device=device)

    def leave(self) -> None:
        """Wait for every rank, then disconnect (a no-op in a world of one)."""
        if self.size == 1:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()

    def share(self, n: int, rank: int | None = None) -> tuple[int, int]:
        """The contiguous rows ``[lo, hi)`` of `n` that `rank` (default: this one) works on.

        >>> [World(r, 3).share(8) for r in range(3)]
        [(0, 2), (2, 5), (5, 8)]
        """
        rank = self.rank if rank is None else rank
        return n * rank // self.size, n * (rank + 1) // self.size

    def on_main(self, what: Callable[[], T]) -> T:
        """Rank 0 runs `what()`, a decision or a side effect (publishing, writing the store);
        every rank returns its result (a picklable value, or None).

        A :class:`DrbenchError` on rank 0 is raised on every rank, so all stop with the same line.
        """
        if self.size == 1:
            return what()
        import torch.distributed as dist

        box: list[Any] = [None]
        if self.main:
            try:
                box[0] = ("ok", what())
            except DrbenchError as exc:
                box[0] = ("error", (str(exc), type(exc)))
        dist.broadcast_object_list(box, src=0)
        status, value = box[0]
        if status == "error":
            message, original = value
            raise (original(message) if self.main else RankError(message, original))
        return value

    def first(self, what: Callable[[], T]) -> T:
        """Rank 0 runs `what()`, then every other rank does: for steps that may write lazily
        (ir_datasets extracting an archive, building a lookup) and that each rank still needs."""
        if self.size == 1:
            return what()
        done: dict[str, Any] = {}

        def lead() -> None:
            done["value"] = what()

        self.on_main(lead)  # rank 0's error, if any, stops every rank here
        return done["value"] if self.main else what()

    def gather_rows(self, local: Any, n: int) -> Any:
        """Every rank's :meth:`share` of an ``(n, dim)`` tensor, in row order, as float32.

        Gradients flow through this rank's own rows only (the others arrive as values): each
        rank's backward pass then gives its share of the gradient, and DistributedDataParallel's
        all-reduce completes it (see :mod:`harness.train.loop`). Tevatron's `negatives_x_device`
        gathers the same way.
        """
        if self.size == 1:
            return local
        import torch
        import torch.distributed as dist

        sizes = [hi - lo for lo, hi in (self.share(n, r) for r in range(self.size))]
        local = local.float()
        padded = torch.zeros((max(sizes), local.shape[1]), dtype=local.dtype, device=local.device)
        padded[:len(local)] = local.detach()
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded)
        pieces = [local if r == self.rank else parts[r][:sizes[r]] for r in range(self.size)]
        return torch.cat(pieces)

    def assemble(self, out: np.ndarray, rows: np.ndarray, *, everyone: bool = True,
                 chunk: int = 65536) -> np.ndarray:
        """Fill `out` ``(n, dim)``, of which this rank computed `rows`, with the other ranks'
        rows, `chunk` rows per rank and collective (so no second full-size copy is made); on
        every rank, or with `everyone=False` on rank 0 only. Returns `out` (untouched in a world
        of one)."""
        if self.size == 1:
            return out
        import torch
        import torch.distributed as dist

        counts: list[Any] = [None] * self.size
        dist.all_gather_object(counts, len(rows))
        receives = everyone or self.main
        for start in range(0, max(counts), chunk):
            size = min(chunk, max(counts) - start)
            mine = np.asarray(rows[start:start + size], dtype=np.int64)
            padded_rows = torch.full((size,), -1, dtype=torch.int64, device=self.device)
            padded_rows[:len(mine)] = torch.from_numpy(mine)
            padded = torch.zeros((size, out.shape[1]), dtype=torch.float32, device=self.device)
            padded[:len(mine)] = torch.from_numpy(np.ascontiguousarray(out[mine], dtype=np.float32))
            all_rows = [torch.empty_like(padded_rows) for _ in range(self.size)] if receives else None
            all_vectors = [torch.empty_like(padded) for _ in range(self.size)] if receives else None
            if everyone:
                dist.all_gather(all_rows, padded_rows)
                dist.all_gather(all_vectors, padded)
            else:
                dist.gather(padded_rows, all_rows, dst=0)
                dist.gather(padded, all_vectors, dst=0)
            if receives:
                for r in range(self.size):
                    if r != self.rank:
                        got = min(size, max(0, counts[r] - start))
                        out[all_rows[r][:got].cpu().numpy()] = all_vectors[r][:got].cpu().numpy()
        return out

    def replicate(self, module: Any) -> Any:
        """`module` under DistributedDataParallel (which averages gradients across ranks), or
        `module` itself in a world of one.

        `find_unused_parameters`: a Hugging Face encoder carries weights that pooling never uses
        (BERT's pooler), which DDP would otherwise wait for forever.
        """
        if self.size == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [int(self.device.partition(":")[2] or 0)] if self.device.startswith("cuda") else None
        return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)


ONE = World()
