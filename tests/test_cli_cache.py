"""`drbench cache ls | verify | prune` through typer's CliRunner, over a cache built by hand with
the same classes the pipeline writes it with (`Entries`, `EmbeddingCache`)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from harness.cache.entries import Entries
from harness.cli import app
from harness.cli.cache import human_size
from harness.model.embedding_cache import EmbeddingCache
from harness.store import open_store, write_run
from test_store import make_experiment, make_run

REPO = Path(__file__).resolve().parent.parent
DAY = 86400


def key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@dataclass
class Cache:
    root: Path
    star: str  # models/<star>: model.safetensors, config.json, drbench.json
    adore: str  # a second model, for --unreferenced
    negatives: str  # negatives/<negatives>: negatives.json
    embeddings: str  # embeddings/<e[:2]>/<e>.npy + .json

    def model(self, key: str) -> Path:
        return self.root / "models" / key

    def npy(self) -> Path:
        return self.root / "embeddings" / self.embeddings[:2] / f"{self.embeddings}.npy"


def publish_model(root: Path, key: str, variant: str, kind: str) -> None:
    entries = Entries(root / "models", log=lambda _: None)
    work = entries.workdir(key)
    (work / "model.safetensors").write_bytes(bytes(range(256)) * 16)
    (work / "config.json").write_text('{"hidden_size": 4}')
    (work / "drbench.json").write_text(json.dumps({"key": key, "variant": variant, "kind": kind,
                                                   "steps": 40, "train_seconds": 1.5}))
    entries.publish(key, work, produced_by={"what": "trained model", "kind": kind, "variant": variant})


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    root = tmp_path / "cache"
    built = Cache(root, key("star"), key("adore"), key("negatives"), key("embeddings"))
    publish_model(root, built.star, "star", "star")
    publish_model(root, built.adore, "adore", "adore")
    negatives = Entries(root / "negatives", log=lambda _: None)
    work = negatives.workdir(built.negatives)
    (work / "negatives.json").write_text(json.dumps({"q1": [3, 1, 4], "q2": [1, 5, 9]}))
    negatives.publish(built.negatives, work, produced_by={"what": "mined negatives", "source": "bm25",
                                                          "depth": 200})
    EmbeddingCache(root / "embeddings").save(built.embeddings, np.arange(20, dtype=np.float32).reshape(5, 4),
                                             {"model": "minilm", "docs": "beir/scifact"})
    return built


@pytest.fixture
def other_process() -> Iterator[int]:
    """The pid of a live process that is not this one (`Entries.stale` counts our own pid as dead)."""
    sleeper = subprocess.Popen(["sleep", "30"])
    yield sleeper.pid
    sleeper.kill()
    sleeper.wait()


def dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def work_folder(cache: Cache, key: str, pid: int, kind: str = "models") -> Path:
    """A work folder as process `pid` on this host would name it, with a checkpoint inside."""
    mine = Entries(cache.root / kind, log=lambda _: None).workdir(key)
    theirs = mine.with_name(mine.name.replace(f"-{os.getpid()}-", f"-{pid}-"))
    mine.rename(theirs)
    (theirs / "checkpoint.pt").write_bytes(b"\0" * 1000)
    return theirs


def invoke(*args: object, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner(env={"DRBENCH_STORE": None, **(env or {})}).invoke(app, [str(a) for a in args])


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(fragment in lines[0] for fragment in fragments), lines[0]


# --- ls -------------------------------------------------------------------------------------

def test_ls_lists_every_kind(cache: Cache) -> None:
    result = invoke("cache", "ls", "--cache-dir", cache.root)
    assert result.exit_code == 0, result.output
    for fragment in ("4 entries", cache.star[:12], "star (star), 40 steps", "adore (adore)",
                     cache.negatives[:12], "bm25, depth 200", cache.embeddings[:12], "minilm on beir/scifact",
                     "just now"):
        assert fragment in result.stdout, fragment
    assert "dead processes" not in result.stdout and "moved aside" not in result.stdout


def test_ls_shows_a_swept_models_point(tmp_path: Path) -> None:
    publish_model(tmp_path / "cache", key("point"), "star[lr=2e-05]", "star")
    result = invoke("cache", "ls", "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0 and "star[lr=2e-05] (star), 40 steps" in result.stdout, result.stdout


def test_ls_json_and_leftovers(cache: Cache, other_process: int) -> None:
    work_folder(cache, cache.star, dead_pid())
    work_folder(cache, key("training"), other_process)
    result = invoke("cache", "ls", "--cache-dir", cache.root, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    entries = {(r["kind"], r["key"]): r for r in rows if r["state"] == "entry"}
    assert set(entries) == {("models", cache.star), ("models", cache.adore), ("negatives", cache.negatives),
                            ("embeddings", cache.embeddings)}
    assert entries["models", cache.star]["produced_by"]["variant"] == "star"
    assert entries["embeddings", cache.embeddings]["what"] == "minilm on beir/scifact"
    assert all(r["size"] > 0 and r["created_at"] and r["last_used"] for r in entries.values())
    assert sorted((r["state"], r["key"]) for r in rows if r["state"] != "entry") == sorted(
        [("stale", cache.star), ("in progress", key("training"))])
    table = invoke("cache", "ls", "--cache-dir", cache.root).stdout
    assert "left by dead processes (work folders, interrupted writes): 1, 1000 B" in table
    assert "writes in progress (live processes, or another host's): 1, 1000 B; left alone" in table


@pytest.mark.parametrize("fmt, expected", [("table", "no cache folder (nothing cached yet)"), ("json", "[]")])
def test_ls_without_a_cache(tmp_path: Path, fmt: str, expected: str) -> None:
    result = invoke("cache", "ls", "--cache-dir", tmp_path / "none", "--format", fmt)
    assert result.exit_code == 0 and result.stdout.strip().endswith(expected), result.output
    assert len(result.stdout.strip().splitlines()) == 1


def test_ls_empty_cache_and_recipe_cache_dir(tmp_path: Path) -> None:
    (tmp_path / "c" / "models").mkdir(parents=True)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[experiment]\nname = "x"\ncache_dir = "{tmp_path / "c"}"\n[data]\neval = ["cranfield"]\n'
                      '[variant.bm25]\nkind = "bm25"\n')
    result = invoke("cache", "ls", "--recipe", recipe)
    assert result.exit_code == 0 and result.stdout.strip() == f"{tmp_path / 'c'}: nothing cached", result.output


# --- verify ---------------------------------------------------------------------------------

def test_verify_intact_cache(cache: Cache) -> None:
    listed = sum(meta["size"] for folder in [cache.model(cache.star), cache.model(cache.adore),
                                             cache.root / "negatives" / cache.negatives]
                 for meta in json.loads((folder / "manifest.json").read_text())["files"].values())
    before = snapshot(cache.root)
    result = invoke("cache", "verify", "--cache-dir", cache.root)
    assert result.exit_code == 0, result.output
    assert "4 entries checked" in result.stdout and "0 damaged" in result.stdout
    assert f"{human_size(listed + cache.npy().stat().st_size)} hashed" in result.stdout
    assert snapshot(cache.root) == before


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def orphan_npy(cache: Cache) -> None:
    """An .npy whose json is gone, old enough not to be a write in progress."""
    cache.npy().with_suffix(".json").unlink()
    os.utime(cache.npy(), (time.time() - 2 * DAY,) * 2)


DAMAGE = [
    pytest.param(lambda c: flip(c.model(c.star) / "model.safetensors"), "models/{star}",
                 "model.safetensors sha256 mismatch", id="flipped-byte"),
    pytest.param(lambda c: truncate(c.root / "negatives" / c.negatives / "negatives.json"), "negatives/{negatives}",
                 "negatives.json size", id="truncated"),
    pytest.param(lambda c: (c.model(c.adore) / "config.json").unlink(), "models/{adore}", "config.json missing",
                 id="deleted-file"),
    pytest.param(lambda c: (c.model(c.star) / "manifest.json").write_text("{"), "models/{star}",
                 "no readable manifest", id="broken-manifest"),
    pytest.param(lambda c: flip(c.npy()), "embeddings/{embeddings}", ".npy sha256 mismatch", id="embedding-flipped"),
    pytest.param(lambda c: truncate(c.npy()), "embeddings/{embeddings}", ".npy size", id="embedding-truncated"),
    pytest.param(lambda c: c.npy().unlink(), "embeddings/{embeddings}", ".npy missing", id="embedding-deleted"),
    pytest.param(orphan_npy, "embeddings/{embeddings}", "no readable manifest", id="embedding-json-deleted"),
]


@pytest.mark.parametrize("damage, label, reason", DAMAGE)
def test_verify_names_the_damaged_entry(cache: Cache, damage, label: str, reason: str) -> None:
    damage(cache)
    before = snapshot(cache.root)
    result = invoke("cache", "verify", "--cache-dir", cache.root)
    assert result.exit_code == 1, result.output
    damaged = [line for line in result.stdout.splitlines() if "is damaged" in line]
    assert len(damaged) == 1 and damaged[0].startswith(f"cache: {label.format(**vars(cache))} is damaged ("), damaged
    assert reason in damaged[0]
    assert "4 entries checked" in result.stdout and "1 damaged" in result.stdout
    assert "drbench cache prune --damaged" in result.stdout
    assert snapshot(cache.root) == before  # a check: nothing moved aside, nothing deleted


def test_a_fresh_npy_without_json_is_a_write_in_progress(cache: Cache) -> None:
    cache.npy().with_suffix(".json").unlink()
    assert invoke("cache", "verify", "--cache-dir", cache.root).exit_code == 0
    result = invoke("cache", "prune", "--cache-dir", cache.root, "--damaged", "--older-than", "0")
    assert cache.npy().is_file() and "left 1 write in progress alone" in result.stdout, result.output


# --- prune ----------------------------------------------------------------------------------

@pytest.fixture
def leftovers(cache: Cache, other_process: int) -> dict[str, Path]:
    """A damaged entry moved aside (as `Entries.get` does), a dead process's work folder, a
    legacy `.partial` one, and a live process's work folder."""
    flip(cache.model(cache.adore) / "model.safetensors")
    assert Entries(cache.root / "models", log=lambda _: None).get(cache.adore) is None
    partial = cache.root / "negatives" / f"{key('old')}.partial"
    partial.mkdir()
    (partial / "negatives.json").write_text("{}")
    return {"aside": next((cache.root / "models" / ".damaged").iterdir()),
            "stale": work_folder(cache, key("crashed"), dead_pid()), "partial": partial,
            "live": work_folder(cache, key("training"), other_process)}


def test_prune_dry_run_changes_nothing(cache: Cache, leftovers: dict[str, Path]) -> None:
    os.utime(cache.model(cache.star) / "manifest.json", (time.time() - 40 * DAY,) * 2)
    before = snapshot(cache.root)
    result = invoke("cache", "prune", "--cache-dir", cache.root, "--dry-run", "--older-than", "30")
    assert result.exit_code == 0, result.output
    assert snapshot(cache.root) == before
    would = [line for line in result.stdout.splitlines() if line.startswith("would remove")]
    assert len(would) == 4, result.stdout
    assert any(f"models/{cache.star} " in line and "not used for 40 days" in line for line in would)
    assert "would free" in result.stdout and "in 4 items; left 1 write in progress alone" in result.stdout


def test_prune_removes_leftovers_but_not_live_work(cache: Cache, leftovers: dict[str, Path]) -> None:
    result = invoke("cache", "prune", "--cache-dir", cache.root)
    assert result.exit_code == 0, result.output
    assert not leftovers["aside"].exists() and not leftovers["stale"].exists() and not leftovers["partial"].exists()
    assert (leftovers["live"] / "checkpoint.pt").is_file()
    assert not list((cache.root / "models" / ".damaged").iterdir())
    assert invoke("cache", "verify", "--cache-dir", cache.root).exit_code == 0  # published entries untouched
    assert "freed" in result.stdout and "in 3 items" in result.stdout


def test_prune_older_than(cache: Cache) -> None:
    old = time.time() - 40 * DAY
    os.utime(cache.model(cache.star) / "manifest.json", (old, old))
    os.utime(cache.npy().with_suffix(".json"), (old, old))
    result = invoke("cache", "prune", "--cache-dir", cache.root, "--older-than", "30")
    assert result.exit_code == 0, result.output
    assert not cache.model(cache.star).exists() and not cache.npy().exists()
    assert not cache.npy().with_suffix(".json").exists()
    assert cache.model(cache.adore).is_dir() and (cache.root / "negatives" / cache.negatives).is_dir()
    assert not [p for p in (cache.root / "models").iterdir() if p.name != cache.adore and p.name != ".damaged"]
    assert not list((cache.root / "models" / ".damaged").iterdir())


def test_prune_unreferenced_keeps_models_runs_use(cache: Cache, tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    db = open_store(store)
    write_run(db, make_experiment(), make_run(model={"name": "star", "path": str(cache.model(cache.star)),
                                                     "fingerprint": "f", "trained": {"key": cache.star}}))
    db.close()
    result = invoke("cache", "prune", "--cache-dir", cache.root, "--unreferenced", "--store", store)
    assert result.exit_code == 0, result.output
    assert cache.model(cache.star).is_dir() and not cache.model(cache.adore).exists()
    assert (cache.root / "negatives" / cache.negatives).is_dir() and cache.npy().is_file()
    assert f"models/{cache.adore} " in result.stdout and "no stored run uses it" in result.stdout


def test_prune_damaged(cache: Cache) -> None:
    flip(cache.npy())
    result = invoke("cache", "prune", "--cache-dir", cache.root, "--damaged")
    assert result.exit_code == 0, result.output
    assert not cache.npy().exists() and not cache.npy().with_suffix(".json").exists()
    assert "damaged (" in result.stdout and invoke("cache", "verify", "--cache-dir", cache.root).exit_code == 0


@pytest.mark.parametrize("args, fragments", [
    (["ls", "--cache-dir", "{file}"], ["is a file, not a cache folder"]),
    (["verify", "--cache-dir", "{file}"], ["is a file, not a cache folder"]),
    (["prune", "--cache-dir", "{file}"], ["is a file, not a cache folder"]),
    (["prune", "--cache-dir", "{cache}", "--unreferenced"], ["--unreferenced needs", "--store FILE"]),
    (["prune", "--cache-dir", "{cache}", "--unreferenced", "--store", "{missing}"], ["no results store at"]),
])
def test_bad_input_is_one_line_and_exit_2(cache: Cache, tmp_path: Path, args: list[str],
                                          fragments: list[str]) -> None:
    (tmp_path / "file").write_text("not a folder")
    paths = {"file": tmp_path / "file", "cache": cache.root, "missing": tmp_path / "missing.db"}
    before = snapshot(cache.root)
    assert_one_line_error(invoke("cache", *[a.format(**paths) for a in args]), *fragments)
    assert snapshot(cache.root) == before and not paths["missing"].exists()


def test_cache_commands_never_import_torch(cache: Cache) -> None:
    code = textwrap.dedent(f"""
        import sys
        for name in ("torch", "transformers", "sentence_transformers", "faiss"):
            sys.modules[name] = None  # any import of them now raises ImportError
        import harness.cli
        from typer.testing import CliRunner
        for args in (["ls"], ["ls", "--format", "json"], ["verify"], ["prune", "--dry-run", "--damaged"]):
            result = CliRunner().invoke(harness.cli.app, ["cache", *args, "--cache-dir", {str(cache.root)!r}])
            assert result.exit_code == 0, (args, result.output, result.exception)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip().endswith("ok")
