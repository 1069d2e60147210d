"""Single-file array entries (corpus embeddings: `<key>.npy` beside its manifest `<key>.json`):
the check that the array is what its manifest says, shared by loading and `drbench cache verify`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.cache.manifest import Advance, file_problem


def entry_damage(npy: Path, meta_path: Path, *, fresh: bool = False,
                 advance: Advance | None = None) -> str | None:
    """Why the .npy does not match its manifest, or None when it does. Reads the array's header
    only (memory-mapped), never the whole matrix; `fresh` and `advance` as in `sha256_file`."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        size, digest, shape, dtype = meta["size"], meta["sha256"], meta["shape"], meta["dtype"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no readable manifest"
    if problem := file_problem(npy, size, digest, npy.name, fresh=fresh, advance=advance):
        return problem
    try:
        header = np.load(npy, mmap_mode="r", allow_pickle=False)
        found = (list(header.shape), header.dtype.str)
        del header
    except (OSError, ValueError):
        return f"{npy.name} unreadable"
    return None if found == (shape, dtype) else "shape or dtype mismatch"
