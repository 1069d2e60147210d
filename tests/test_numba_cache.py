"""harness.evaluate.numba_cache: ranx's compiled functions kept in a run's cache, announced once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.evaluate import numba_cache

# A fresh process (ranx must not be imported yet) that chooses `argv[1]` as the cache, imports ranx
# as an evaluation does, and reports where numba keeps ndcg's compiled code.
CHILD = """
import os, sys
from pathlib import Path
from harness.evaluate.numba_cache import compiled, import_ranx, use_numba_cache
folder = use_numba_cache(Path(sys.argv[1]))
import_ranx()
from ranx.metrics.ndcg import _ndcg
print(folder, os.environ["NUMBA_CACHE_DIR"], _ndcg._cache._cache_path, sep="\\n")
compiled()
"""


def _child(cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return subprocess.run([sys.executable, "-c", CHILD, str(cache)], env=env, capture_output=True, text=True,
                          timeout=300, check=True)


def test_ranx_compiles_into_the_run_cache_and_says_so_once(tmp_path: Path) -> None:
    first = _child(tmp_path / "cache")
    folder = tmp_path / "cache" / "numba"
    chosen, env, ndcg_cache = first.stdout.split("\n")[:3]
    assert chosen == env == str(folder) and ndcg_cache.startswith(str(folder))
    assert first.stderr.count("compiling ranx's metric functions") == 1
    assert list(folder.glob("ranx-*-numba-*.compiled"))
    second = _child(tmp_path / "cache")
    assert "compiling" not in second.stderr


def test_the_users_numba_cache_dir_stands(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert numba_cache.use_numba_cache(tmp_path / "cache") is None
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "mine") and not (tmp_path / "cache").exists()


def test_an_unwritable_cache_leaves_numba_its_own_places(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.delitem(sys.modules, "ranx", raising=False)
    (tmp_path / "cache").write_text("a file, not a folder")
    assert numba_cache.use_numba_cache(tmp_path / "cache") is None
    assert "NUMBA_CACHE_DIR" not in os.environ
