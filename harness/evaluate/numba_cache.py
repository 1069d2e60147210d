"""Where ranx's compiled metric functions are kept, and the line that says they are compiling.

ranx declares its numba functions with `cache=True`, but numba keeps such a cache beside the
source (`site-packages/ranx/**/__pycache__`) or in a per-user folder, and where neither can be
written, or in a fresh environment, every process compiles them again: the first evaluation of a
process then sat silent for 34 s of CPU (45 s and more on a busy machine). A run points numba at a
folder in its own cache (`use_numba_cache`), so the functions compile once per cache and
environment (then 4.5 s: numba's typed dicts and lists, which ranx fills from Python, compile in
every process and cannot be cached), and the process that compiles them says so (`import_ranx`).

numba reads `NUMBA_CACHE_DIR` when a function is declared, that is when ranx is imported: the
folder must be chosen before, which is why nothing in drbench imports ranx at the top of a module.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

FOLDER = "numba"  # under a run's cache folder
_chosen: Path | None = None


def use_numba_cache(cache_dir: Path) -> Path | None:
    """Keep numba's compiled functions in `cache_dir`/numba from now on; returns that folder, or
    None where it cannot be used: ranx already imported (its functions found their cache then),
    `NUMBA_CACHE_DIR` already set (the user's choice stands), or a folder that cannot be written
    (numba's own places serve). Call it before the first evaluation of a process.
    """
    global _chosen
    if "ranx" in sys.modules or os.environ.get("NUMBA_CACHE_DIR"):
        return None
    folder = Path(cache_dir) / FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:  # numba imported already (by another library): tell it too
        numba_config.CACHE_DIR = str(folder)
    _chosen = folder
    return folder


def import_ranx() -> Any:
    """ranx, imported; the first time in a process whose numba cache (`use_numba_cache`) has not
    yet seen this ranx and numba, after one line on stderr saying why the next minute is silent."""
    if "ranx" in sys.modules:
        return sys.modules["ranx"]
    marker = _marker()
    if marker is not None and not marker.exists():
        print(f"compiling ranx's metric functions (first use of this cache; kept in {marker.parent} "
              "for next time)...", file=sys.stderr, flush=True)
    import ranx

    return ranx


def compiled() -> None:
    """Record that ranx's functions are now in the numba cache (after a first evaluation)."""
    marker = _marker()
    if marker is not None and not marker.exists():
        try:
            marker.touch()
        except OSError:
            pass


def _marker() -> Path | None:
    """The file that says this ranx and numba have compiled into the chosen folder."""
    if _chosen is None or os.environ.get("NUMBA_CACHE_DIR") != str(_chosen):
        return None
    try:
        versions = f"ranx-{metadata.version('ranx')}-numba-{metadata.version('numba')}"
    except metadata.PackageNotFoundError:
        return None
    return _chosen / f"{versions}.compiled"
