"""Caches that cannot lie: manifests, damaged entries rebuilt to the same numbers, planted
pickles refused without running, concurrent publishing, stale work folders cleaned."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import harness.train.loop as loop_mod
from harness.cache.entries import Entries
from harness.cache.manifest import MANIFEST, damage, file_record, write_file_manifest
from harness.cli import app
from harness.data.collection import Collection
from harness.pipeline import RunOptions, run_recipe
from harness.recipe import parse_recipe
from harness.store import open_store, run_metrics, list_runs

# Fixtures (cranfield, one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, cranfield, use_cranfield, quiet_console, console_text, recipe_text, assert_same_weights,
    folder_weights, Interrupted, stage_context)

REPO = Path(__file__).resolve().parent.parent


# --- entries ------------------------------------------------------------------------------------

def _entry(entries: Entries, key: str, text: str) -> tuple[Path, bool]:
    work = entries.workdir(key)
    (work / "weights.bin").write_text(text)
    (work / "sub").mkdir()
    (work / "sub" / "more.txt").write_text("more")
    return entries.publish(key, work, produced_by={"what": "test"})


def test_published_entry_has_a_manifest_and_no_work_folder(tmp_path: Path) -> None:
    log: list[str] = []
    entries = Entries(tmp_path / "models", log.append)
    key = "a" * 64
    folder, ours = _entry(entries, key, "v1")
    assert ours and folder == tmp_path / "models" / key
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["key"] == key and manifest["produced_by"] == {"what": "test"}
    assert manifest["files"]["weights.bin"]["size"] == 2 and set(manifest["files"]) == {"weights.bin",
                                                                                         "sub/more.txt"}
    assert entries.get(key) == folder and log == []
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [key]


def test_a_second_publisher_keeps_the_published_entry(tmp_path: Path) -> None:
    entries = Entries(tmp_path / "models", lambda _: None)
    key = "b" * 64
    first = entries.workdir(key)
    second = tmp_path / "models" / f"{key}.tmp-elsewhere-1-00"  # another process's work folder
    second.mkdir()
    (first / "weights.bin").write_text("first")
    (second / "weights.bin").write_text("second")
    assert entries.publish(key, first, {"n": 1}) == (tmp_path / "models" / key, True)
    assert entries.publish(key, second, {"n": 2}) == (tmp_path / "models" / key, False)
    assert (tmp_path / "models" / key / "weights.bin").read_text() == "first" and not second.exists()


@pytest.mark.parametrize("harm", ["flip", "truncate", "delete", "manifest"])
def test_a_damaged_entry_is_logged_moved_aside_and_missing(tmp_path: Path, harm: str) -> None:
    log: list[str] = []
    entries = Entries(tmp_path / "models", log.append)
    key = "c" * 64
    folder, _ = _entry(entries, key, "0123456789")
    target = folder / ("weights.bin" if harm != "manifest" else MANIFEST)
    if harm == "flip":
        target.write_bytes(b"0123X56789")
    elif harm == "truncate":
        target.write_bytes(b"01234")
    else:
        target.unlink()
    assert entries.get(key) is None
    reason = {"flip": "weights.bin sha256 mismatch", "truncate": "weights.bin size 5 != 10",
              "delete": "weights.bin missing", "manifest": "no readable manifest"}[harm]
    assert log == [f"cache: models/{key} is damaged ({reason}); rebuilding"]
    assert not folder.exists() and len(list((tmp_path / "models" / ".damaged").iterdir())) == 1
    _entry(entries, key, "rebuilt")
    assert entries.get(key) is not None


def test_stale_work_folders_are_adopted_or_removed_but_live_ones_kept(tmp_path: Path) -> None:
    entries = Entries(tmp_path / "models", lambda _: None)
    key = "d" * 64
    dead = _dead_pid()
    live = subprocess.Popen(["sleep", "30"])
    try:
        host = entries.workdir(key).name.split(".tmp-")[1].rsplit("-", 2)[0]
        for stale in entries.stale(key):  # this process's own first folder: stale for itself
            shutil.rmtree(stale)
        root = tmp_path / "models"
        dead_empty = root / f"{key}.tmp-{host}-{dead}-00"
        dead_resumable = root / f"{key}.tmp-{host}-{dead}-01"
        legacy = root / f"{key}.partial"
        other_live = root / f"{key}.tmp-{host}-{live.pid}-02"
        other_host = root / f"{key}.tmp-elsewhere-{dead}-03"
        for folder in (dead_empty, dead_resumable, legacy, other_live, other_host):
            folder.mkdir()
        (dead_resumable / "checkpoint.pt").write_text("x")
        mine = entries.workdir(key, resume=lambda p: (p / "checkpoint.pt").exists())
        assert (mine / "checkpoint.pt").exists()  # adopted by rename
        left = sorted(p.name for p in root.iterdir() if p.name != ".damaged")  # claimed there, then deleted
        assert left == sorted([mine.name, other_live.name, other_host.name])
    finally:
        live.kill()
        live.wait()


def _key(text: str, folder: Path, variant: str) -> str:
    """The artifact key `variant` trains under, found by a dry run stopped before training."""
    seen: dict[str, str] = {}

    def stop(work: Path, *_: Any, **__: Any) -> Any:
        seen["key"] = work.name.split(".")[0]
        raise Interrupted

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("harness.train.trainer.train_into", stop)
        with pytest.raises(Interrupted):
            stage_context(text, folder / "probe").resolve(variant)
    return seen["key"]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_file_manifest_guards_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"tensor bytes")
    write_file_manifest(path, step=3)
    assert json.loads(file_record(path).read_text())["produced_by"] == {"step": 3}
    assert loop_mod.checkpoint_damage(tmp_path) is None
    path.write_bytes(b"tensor bytez")
    assert loop_mod.checkpoint_damage(tmp_path) == "checkpoint.pt sha256 mismatch"
    assert damage(tmp_path) == "no readable manifest"  # a work folder is not a published entry


# --- damaged artifacts heal to the same numbers -------------------------------------------------

STAR = """
[variant.star]
kind = "star"
max_steps = 3
batch_size = 8
negatives_depth = 20
query_max_length = 16
doc_max_length = 32
checkpoint_every = 1
"""


def _run(folder: Path, tiny_model: Path, force: bool = False) -> tuple[dict[str, float], str]:
    recipe = parse_recipe(recipe_text(folder, tiny_model, STAR, name="heal"), folder / "recipe.toml")
    console = quiet_console()
    run_recipe(recipe, RunOptions(force=force), console)
    db = open_store(folder / "drbench.db")
    [run] = list_runs(db, experiment="heal")
    return run_metrics(db, [run["id"]])[run["id"]], console_text(console)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, cranfield: Collection) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("healthy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("harness.pipeline.run.load_collection", lambda *a, **k: cranfield)
        mp.setattr("harness.pipeline.models.load_collection", lambda *a, **k: cranfield)
        mp.setattr("harness.pipeline.run.git_commit", lambda _: (None, False))
        metrics, _ = _run(folder, tiny_model)
    return {"folder": folder, "metrics": metrics}


def _artifact_file(cache: Path, kind: str) -> tuple[Path, str]:
    """A file of the cache's single `kind` entry, and the label its log line names."""
    if kind == "embeddings":
        # the trained star's corpus vectors, which evaluation reads (the base model's, which mining
        # read, are not read again once the negatives are cached)
        [meta] = [m for m in (cache / "embeddings").rglob("*.json")
                  if Path(json.loads(m.read_text())["meta"]["model"]).parent.name == "models"]
        npy = meta.with_suffix(".npy")
        return npy, f"embeddings/{npy.stem}"
    [entry] = [p for p in (cache / kind).iterdir() if not p.name.startswith(".")]
    name = "model.safetensors" if kind == "models" else "negatives.json"
    return entry / name, f"{kind}/{entry.name}"


@pytest.mark.parametrize("kind", ["models", "negatives", "embeddings"])
@pytest.mark.parametrize("harm", ["flip", "truncate", "delete"])
def test_a_damaged_artifact_is_rebuilt_to_the_same_numbers(healthy: dict[str, Any], tiny_model: Path,
                                                           tmp_path: Path, use_cranfield: Collection,
                                                           kind: str, harm: str) -> None:
    shutil.copytree(healthy["folder"], tmp_path, dirs_exist_ok=True)
    target, label = _artifact_file(tmp_path / "cache", kind)
    data = target.read_bytes()
    if harm == "flip":
        middle = len(data) // 2
        target.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 16]) + data[middle + 16:])
    elif harm == "truncate":
        target.write_bytes(data[:len(data) // 2])
    else:
        target.unlink()
    metrics, console = _run(tmp_path, tiny_model, force=True)
    assert metrics == healthy["metrics"]
    damaged = [line for line in console.splitlines() if "is damaged" in line]
    assert len(damaged) == 1 and label in damaged[0] and "rebuilding" in damaged[0], console


def test_a_damaged_checkpoint_restarts_training_to_the_same_model(tiny_model: Path, tmp_path: Path,
                                                                  use_cranfield: Collection,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    text = recipe_text(tmp_path, tiny_model, STAR)
    whole = Path(stage_context(text, tmp_path / "whole").resolve("star").query)

    original = loop_mod._one_step
    calls = {"n": 0}

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise Interrupted
        return original(*args, **kwargs)

    monkeypatch.setattr(loop_mod, "_one_step", dying)
    with pytest.raises(Interrupted):
        stage_context(text, tmp_path / "cut").resolve("star")
    monkeypatch.setattr(loop_mod, "_one_step", original)
    [work] = [p for p in (tmp_path / "cut" / "models").iterdir() if ".tmp-" in p.name]
    checkpoint = work / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # cut short

    ctx = stage_context(text, tmp_path / "cut")
    healed = Path(ctx.resolve("star").query)
    assert "checkpoint in" in console_text(ctx.console) and "training from scratch" in console_text(ctx.console)
    assert "resuming from" not in console_text(ctx.console)
    assert_same_weights(folder_weights(healed), folder_weights(whole))
    assert sorted(p.name for p in (tmp_path / "cut" / "models").iterdir() if p.name != ".damaged") == [healed.name]


# --- planted pickles ------------------------------------------------------------------------------

class _Payload:
    """Unpickling this runs code: it touches a sentinel file."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self) -> Any:
        return (Path.touch, (self.sentinel,))


def _one_line_error(result: Any, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    # progress lines may precede it (a run logs as it goes); the error itself is one line
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and result.stderr.rstrip().endswith(lines[0]), result.stderr
    assert all(f in lines[0] for f in fragments), lines[0]
    return lines[0]


def test_a_planted_checkpoint_runs_nothing_and_stops_with_one_line(tiny_model: Path, tmp_path: Path,
                                                                   use_cranfield: Collection) -> None:
    text = recipe_text(tmp_path, tiny_model, STAR)
    recipe_file = tmp_path / "recipe.toml"
    recipe_file.write_text(text)
    key = _key(text, tmp_path, "star")
    work = tmp_path / "cache" / "models" / f"{key}.partial"  # where an attacker would plant it
    work.mkdir(parents=True)
    sentinel = tmp_path / "payload-ran"
    torch.save({"step": 1, "model": _Payload(sentinel)}, work / "checkpoint.pt")
    write_file_manifest(work / "checkpoint.pt")  # a matching manifest: the load itself must refuse
    result = CliRunner().invoke(app, ["run", str(recipe_file)])
    _one_line_error(result, "refusing to load a checkpoint")
    assert not sentinel.exists()


def test_a_pickle_model_is_refused_before_any_work(tiny_model: Path, tmp_path: Path) -> None:
    model = shutil.copytree(tiny_model, tmp_path / "pickled")
    (model / "model.safetensors").unlink()
    sentinel = tmp_path / "payload-ran"
    torch.save({"weight": _Payload(sentinel)}, model / "pytorch_model.bin")
    recipe_file = tmp_path / "recipe.toml"
    recipe_file.write_text(recipe_text(tmp_path, model, '[variant.zs]\nkind = "zero-shot"\n'))
    for command in (["validate"], ["run"]):
        line = _one_line_error(CliRunner().invoke(app, [*command, str(recipe_file)]),
                               "[model] base", "pickle", "safetensors", "allow_pickle = true")
    assert "pytorch_model.bin" in line and not sentinel.exists()
    assert not (tmp_path / "drbench.db").exists()  # nothing half-written


# --- two processes, one key ----------------------------------------------------------------------

_WORKER = textwrap.dedent("""
    import sys
    from dataclasses import replace
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from rich.console import Console
    import harness.pipeline.models as models, harness.pipeline.run as run
    from harness.data.collection import load_collection
    from harness.pipeline import RunOptions, run_recipe
    from harness.recipe import parse_recipe
    full = load_collection("cranfield", Path(sys.argv[3]))
    keep = set(full.doc_ids[:300])
    qrels = {q: {d: r for d, r in rels.items() if d in keep} for q, rels in full.qrels.items()}
    qrels = {q: r for q, r in qrels.items() if r}
    cut = replace(full, doc_ids=full.doc_ids[:300], doc_texts=full.doc_texts[:300],
                  queries={q: full.queries[q] for q in qrels}, qrels=qrels)
    models.load_collection = run.load_collection = lambda *a, **k: cut
    run.git_commit = lambda _: (None, False)
    recipe = parse_recipe(Path(sys.argv[1]).read_text(), sys.argv[1])
    run_recipe(recipe, RunOptions(store=sys.argv[2]), Console(stderr=True))
""")

INBATCH = """
[variant.inb]
kind = "inbatch"
max_steps = 4
batch_size = 8
query_max_length = 16
doc_max_length = 32
"""


def test_two_processes_training_one_key(tiny_model: Path, tmp_path: Path, mirror: Path,
                                        irds_home: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "IR_DATASETS_HOME": str(irds_home)}
    numbers = set()
    for round_ in range(5):
        folder = tmp_path / f"round{round_}"
        recipe = folder / "recipe.toml"
        folder.mkdir()
        recipe.write_text(recipe_text(folder, tiny_model, INBATCH, name="race"))
        procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(recipe), str(folder / f"{i}.db"),
                                   str(mirror)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for i in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        entries = sorted(p for p in (folder / "cache" / "models").iterdir() if p.name != ".damaged")
        assert len(entries) == 1 and not entries[0].name.count("."), entries  # one published, no leftovers
        for i in range(2):
            db = open_store(folder / f"{i}.db")
            [run] = list_runs(db)
            numbers.add(json.dumps(run_metrics(db, [run["id"]])[run["id"]], sort_keys=True))
    assert len(numbers) == 1  # every process of every round stored the same numbers


def test_a_killed_training_leaves_nothing_the_next_run_trips_on(tiny_model: Path, tmp_path: Path,
                                                               use_cranfield: Collection) -> None:
    text = recipe_text(tmp_path, tiny_model, INBATCH)
    key = _key(text, tmp_path, "inb")
    models = tmp_path / "cache" / "models"
    models.mkdir(parents=True)
    host = Entries(models, print).workdir(key).name.split(".tmp-")[1].rsplit("-", 2)[0]
    for leftover in models.iterdir():
        leftover.rmdir()
    killed = models / f"{key}.tmp-{host}-{_dead_pid()}-0"
    killed.mkdir()  # what kill -9 during training leaves: a work folder, no checkpoint yet
    folder = Path(stage_context(text, tmp_path / "cache").resolve("inb").query)
    assert sorted(p.name for p in models.iterdir() if p.name != ".damaged") == [folder.name]
    assert not list((models / ".damaged").iterdir())  # the dead folder was claimed there and deleted


def test_a_cache_folder_that_is_a_file_stops_the_run_before_any_work(tiny_model: Path, tmp_path: Path) -> None:
    recipe_file = tmp_path / "recipe.toml"
    recipe_file.write_text(recipe_text(tmp_path, tiny_model, INBATCH))
    (tmp_path / "a-file").write_text("")
    line = _one_line_error(CliRunner().invoke(app, ["run", str(recipe_file), "--cache-dir", str(tmp_path / "a-file")]),
                           "is a file", "--cache-dir")
    assert "a-file" in line and not (tmp_path / "drbench.db").exists()
