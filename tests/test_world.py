"""`World`: a world of one passes everything through untouched; shares split rows contiguously and
cover them exactly; with two processes (gloo on the CPU) rank 0 decides, the other rank receives
its answer or its error, and `first` runs rank 0 before the others.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from harness.errors import DrbenchError, RecipeError, StoreError
from harness.world import ONE, RankError, World


def test_from_env_reads_torchruns_variables() -> None:
    assert World.from_env({}) == World() == ONE
    assert World.from_env({"WORLD_SIZE": "1", "RANK": "0"}) == World()
    assert World.from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}) == World(
        3, 4, 1, 2)
    # without the local variables: one machine, the local rank is the rank
    assert World.from_env({"WORLD_SIZE": "3", "RANK": "2"}) == World(2, 3, 2, 3)


def test_only_rank_zero_is_main() -> None:
    assert World().main and World(0, 2).main and not World(1, 2).main


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("n", [0, 1, 5, 8, 100, 101])
def test_shares_are_contiguous_cover_every_row_once_and_differ_by_at_most_one(size: int, n: int) -> None:
    shares = [World(r, size).share(n) for r in range(size)]
    assert shares[0][0] == 0 and shares[-1][1] == n
    assert all(hi == lo for (_, hi), (lo, _) in zip(shares, shares[1:]))  # each starts where the last ended
    sizes = [hi - lo for lo, hi in shares]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == n
    assert World(0, size).share(n, rank=size - 1) == shares[-1]  # another rank's share, asked for


def test_a_world_of_one_passes_everything_through() -> None:
    world = World()
    assert world.on_main(lambda: 41 + 1) == 42 and world.first(lambda: "x") == "x"
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert world.assemble(rows, np.arange(3)) is rows
    module = object()
    assert world.replicate(module) is module and world.gather_rows(module, 3) is module
    assert world.join("cpu") is world and world.share(5) == (0, 5)
    world.barrier()
    world.leave()


def test_in_a_world_of_one_an_error_is_raised_as_it_is() -> None:
    with pytest.raises(RecipeError, match="^bad recipe$"):
        World().on_main(lambda: (_ for _ in ()).throw(RecipeError("bad recipe")))
    with pytest.raises(ZeroDivisionError):
        World().on_main(lambda: 1 / 0)


def test_rank_error_keeps_the_original_type() -> None:
    error = RankError("one line", StoreError)
    assert isinstance(error, DrbenchError) and error.original is StoreError and str(error) == "one line"


def _ranks(rank: int, port: int, folder: str) -> None:
    """One of two gloo processes: what each rank sees of on_main and first."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    world = World(rank, 2, rank, 2)
    seen: dict[str, object] = {"decided": world.on_main(lambda: {"rank": rank, "items": [1, 2]})}
    try:
        world.on_main(lambda: (_ for _ in ()).throw(StoreError("store is locked")))
    except DrbenchError as exc:
        seen["error"] = [type(exc).__name__, str(exc), getattr(exc, "original", type(exc)).__name__]
    order = Path(folder) / "order.txt"

    def step() -> int:
        with open(order, "a") as handle:
            handle.write(f"{rank}\n")
        return rank

    seen["first"] = world.first(step)
    world.barrier()
    seen["order"] = order.read_text().split()
    (Path(folder) / f"{rank}.json").write_text(json.dumps(seen))
    dist.destroy_process_group()


def test_two_ranks_rank_zero_decides_and_its_error_reaches_both(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_ranks, args=(port, str(tmp_path)), nprocs=2)
    zero, one = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert zero["decided"] == one["decided"] == {"rank": 0, "items": [1, 2]}  # rank 0's answer, on both
    assert zero["error"] == ["StoreError", "store is locked", "StoreError"]
    assert one["error"] == ["RankError", "store is locked", "StoreError"]
    assert zero["first"] == 0 and one["first"] == 1  # each rank runs it and gets its own value
    assert zero["order"] == one["order"] == ["0", "1"]  # rank 0 first
