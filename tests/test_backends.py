"""Encode backends: OpenVINO and ONNX Runtime give torch's vectors from a cached export, their
own keys and leaderboard label, calibrate int8 on the collection's documents, train nothing,
and refuse what they cannot run in one line before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import harness.model.backend as backend_mod
import harness.model.export as export_mod
from harness.cli import app
from harness.data.collection import Collection
from harness.dense import DenseModel
from harness.errors import RecipeError
from harness.model.compute import Compute, resolve_compute
from harness.pipeline import RunOptions, run_recipe
from harness.progress import StageProgress
from harness.recipe import parse_recipe
from harness.recipe.model import ModelConfig
from harness.store import list_runs, open_store, run_metrics
from leaderboard import leaderboard_rows
from test_compute import VARIANTS  # zero-shot and a 2-step inbatch, as the bf16 end-to-end test runs them

# Fixtures (cranfield, one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, cranfield, use_cranfield, quiet_console, console_text, recipe_text)


def _encode(model: Path, collection: Collection, cache: Path, backend: str, precision: str,
            console=None) -> tuple[np.ndarray, np.ndarray]:
    console = console or quiet_console()
    dense = DenseModel.open(str(model), ModelConfig(batch_size=16, doc_max_length=48),
                            Compute("cpu", precision, backend=backend))
    docs, _ = dense.encode_corpus(collection, cache, StageProgress(console), console)
    queries = dense.encode_queries(list(collection.queries.values())[:20], lambda _: None, collection, cache, console)
    return np.asarray(docs), queries


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("backend, precision, floor", [
    ("openvino", "fp32", 0.99999), ("onnx", "fp32", 0.99999), ("openvino", "bf16", 0.99),
    ("openvino", "int8", 0.9), ("onnx", "int8", 0.8)])
def test_backends_encode_what_torch_encodes(tiny_model: Path, cranfield: Collection, tmp_path: Path,
                                            one_torch_thread, backend: str, precision: str, floor: float) -> None:
    torch_docs, torch_queries = _encode(tiny_model, cranfield, tmp_path / "torch", "torch", "fp32")
    docs, queries = _encode(tiny_model, cranfield, tmp_path / "other", backend, precision)
    assert docs.shape == torch_docs.shape and queries.shape == torch_queries.shape
    assert _cosines(docs, torch_docs).min() >= floor and _cosines(queries, torch_queries).min() >= floor
    if precision == "fp32":  # the same float32 graph: equal to rounding
        assert np.abs(docs - torch_docs).max() < 1e-4
    else:  # a lower precision is not the fp32 graph in disguise
        assert np.abs(docs - torch_docs).max() > 1e-6


def test_an_export_is_a_cache_entry_keyed_by_backend_and_precision(tiny_model: Path, cranfield: Collection,
                                                                   tmp_path: Path, one_torch_thread,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    console = quiet_console()
    first, _ = _encode(tiny_model, cranfield, tmp_path, "openvino", "fp32", console)
    [entry] = [p for p in (tmp_path / "exports").iterdir() if not p.name.startswith(".")]
    produced = json.loads((entry / "manifest.json").read_text())["produced_by"]
    assert produced["backend"] == "openvino" and produced["precision"] == "fp32"
    assert produced["runtime"].startswith("openvino ") and "nncf " in produced["runtime"]
    assert "exported" in console_text(console) and (entry / "model.xml").is_file()

    # A new process's encode of another collection finds the export (nothing is converted again).
    monkeypatch.setattr(export_mod, "_openvino", lambda *a, **k: pytest.fail("exported again"))
    other = replace(cranfield, docs_id="cranfield-again")
    again, _ = _encode(tiny_model, other, tmp_path, "openvino", "fp32")
    assert np.array_equal(again, first)
    monkeypatch.undo()
    _encode(tiny_model, cranfield, tmp_path, "openvino", "bf16")
    assert len([p for p in (tmp_path / "exports").iterdir() if not p.name.startswith(".")]) == 2

    result = CliRunner().invoke(app, ["cache", "ls", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "exports" in result.output and "for openvino bf16" in result.output


def test_a_failed_export_leaves_nothing_behind(tiny_model: Path, cranfield: Collection, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("converter failed")

    monkeypatch.setattr(export_mod, "_onnx", broken)
    with pytest.raises(RuntimeError, match="converter failed"):
        _encode(tiny_model, cranfield, tmp_path, "onnx", "fp32")
    assert [p.name for p in (tmp_path / "exports").iterdir() if p.name != ".damaged"] == []


def test_int8_calibrates_on_each_collections_own_documents(tiny_model: Path, cranfield: Collection,
                                                           tmp_path: Path, one_torch_thread) -> None:
    _encode(tiny_model, cranfield, tmp_path, "openvino", "int8")
    [entry] = [p for p in (tmp_path / "exports").iterdir() if not p.name.startswith(".")]
    calibration = json.loads((entry / "manifest.json").read_text())["produced_by"]["calibration"]
    rows = export_mod.Calibration(cranfield.docs_id, cranfield.doc_texts).rows()
    assert calibration["docs"] == "cranfield" and calibration["count"] == 300 and calibration["seed"] == 0
    assert calibration["rows_sha256"] == export_mod._digest(rows) and len(rows) == min(300, len(cranfield.doc_ids))
    fewer = replace(cranfield, docs_id="other", doc_ids=cranfield.doc_ids[:100], doc_texts=cranfield.doc_texts[:100])
    _encode(tiny_model, fewer, tmp_path, "openvino", "int8")
    assert len([p for p in (tmp_path / "exports").iterdir() if not p.name.startswith(".")]) == 2


SIGTERM_AFTER_ENCODERS = """
import gc, os, signal, sys, types
from pathlib import Path
from rich.console import Console
from harness.dense import DenseModel
from harness.model.compute import Compute
from harness.progress import StageProgress
from harness.recipe.model import ModelConfig

console = Console(file=open(os.devnull, "w"))
corpus = types.SimpleNamespace(docs_id="toy", doc_ids=["1", "2"], doc_texts=["a cell", "the growth of cells"])
model = DenseModel.open(sys.argv[1], ModelConfig(), Compute("cpu", "fp32", backend="openvino"))
model.encode_corpus(corpus, Path(sys.argv[2]), StageProgress(console), console)
model.encode_queries(["cells"], lambda _: None, corpus, Path(sys.argv[2]), console)  # a second compiled model
model._encoders.clear()
gc.collect()  # both compiled models gone, first one first


def stop(signum, frame):
    raise SystemExit(143)


signal.signal(signal.SIGTERM, stop)
os.kill(os.getpid(), signal.SIGTERM)
"""


def test_a_sigterm_after_openvino_encoders_are_gone_is_still_a_clean_exit(tiny_model: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SIGTERM_AFTER_ENCODERS, str(tiny_model), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 143, done.stderr[-2000:]  # -11 (SIGSEGV) with a Core per encoder


def test_keys_and_records_name_the_backend_and_its_releases(tiny_model: Path) -> None:
    assert Compute().key_parts() == {}  # torch fp32 on the CPU keeps the keys it always had
    parts = Compute("cpu", "fp32", backend="openvino").key_parts()
    assert parts["backend"] == "openvino" and parts["precision"] == "fp32" and parts["runtime"].startswith("openvino ")
    assert Compute("cpu", "int8", backend="onnx").key_parts()["runtime"].startswith("onnxruntime ")
    assert Compute("cpu", "int8", backend="onnx").record()["backend"] == "onnx"
    assert "backend" not in Compute("cpu", "bf16").record()
    assert Compute("cpu", "int8", backend="openvino").train_precision == "fp32"
    # What a model trained from another keys on: torch trains it, so the backend is not in it.
    reference = DenseModel.open(str(tiny_model), ModelConfig(), Compute())
    assert reference.training_identity == reference.identity
    int8 = DenseModel.open(str(tiny_model), ModelConfig(), Compute("cpu", "int8", backend="openvino"))
    bf16 = DenseModel.open(str(tiny_model), ModelConfig(), Compute("cpu", "bf16", backend="openvino"))
    assert int8.identity != reference.identity and int8.training_identity == reference.identity
    assert bf16.training_identity == DenseModel.open(str(tiny_model), ModelConfig(), Compute("cpu", "bf16")).identity


def test_a_recipe_runs_with_a_backend_beside_torch(tiny_model: Path, tmp_path: Path, use_cranfield: Collection,
                                                   one_torch_thread) -> None:
    recipe_file = tmp_path / "recipe.toml"
    recipe_file.write_text(recipe_text(tmp_path, tiny_model, VARIANTS, name="ov"))
    recipe = parse_recipe(recipe_file.read_text(), recipe_file)
    torch_runs = run_recipe(recipe, RunOptions(device="cpu", store=str(tmp_path / "torch.db")), quiet_console())
    ov_runs = run_recipe(recipe, RunOptions(device="cpu", backend="openvino"), quiet_console())
    assert {o.status for o in torch_runs} == {o.status for o in ov_runs} == {"done"}
    # Torch trains either way: the inbatch model trained for the torch run serves the openvino one,
    # whose corpus vectors (zero-shot's and inbatch's) are its own.
    models = [p for p in (tmp_path / "cache" / "models").iterdir() if not p.name.startswith(".")]
    embeddings = sorted((tmp_path / "cache" / "embeddings").rglob("*.json"))
    assert len(models) == 1 and len(embeddings) == 4
    assert len({json.loads(p.read_text())["key"] for p in embeddings}) == 4
    again = run_recipe(recipe, RunOptions(device="cpu", backend="openvino"), quiet_console())
    assert {o.status for o in again} == {"skipped"}

    db = open_store(tmp_path / "drbench.db")
    last = list_runs(db)[-1]
    assert last["compute"]["backend"] == "openvino" and last["compute"]["precision"] == "fp32"
    labels = {row.variant: row.precision_label for row in leaderboard_rows(db, experiment="ov")}
    assert labels == {"zs": "fp32 openvino cpu", "inb": "fp32 openvino cpu"}
    # fp32 both: the same numbers, to rounding
    assert _mrr(open_store(tmp_path / "torch.db")) == pytest.approx(_mrr(db), abs=1e-3)

    result = CliRunner().invoke(app, ["plan", str(recipe_file), "--backend", "openvino",
                                      "--device", "cpu", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert {run["status"] for run in json.loads(result.stdout)["runs"]} == {"stored"}


def _mrr(db) -> dict[str, float]:
    runs = list_runs(db)
    metrics = run_metrics(db, [run["id"] for run in runs])
    return {run["variant"]: metrics[run["id"]]["mrr@10"] for run in runs}


@pytest.mark.parametrize("args, fragment", [
    (["--backend", "tensorrt"], "--backend tensorrt: unknown backend; use one of torch, openvino, onnx"),
    (["--precision", "int8"], 'int8 needs backend = "openvino" or "onnx"'),
    (["--backend", "onnx", "--precision", "bf16"], "onnx runs fp32 or int8"),
    (["--backend", "openvino", "--device", "cuda"], "openvino runs on the CPU"),
])
def test_what_a_backend_cannot_run_is_one_line_before_any_work(tiny_model: Path, tmp_path: Path, args: list[str],
                                                               fragment: str) -> None:
    recipe_file = tmp_path / "recipe.toml"
    recipe_file.write_text(recipe_text(tmp_path, tiny_model, VARIANTS))
    result = CliRunner().invoke(app, ["run", str(recipe_file), *args])
    assert result.exit_code == 2, result.output
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert fragment in line and "Traceback" not in result.output
    assert not (tmp_path / "drbench.db").exists() and not (tmp_path / "cache").exists()


def test_a_backend_whose_library_is_missing_names_the_extra(tiny_model: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real = backend_mod.importlib.util.find_spec
    monkeypatch.setattr(backend_mod.importlib.util, "find_spec",
                        lambda name, *a: None if name == "nncf" else real(name, *a))
    with pytest.raises(RecipeError, match=r"needs the nncf package, which is not installed; pip install "
                                          r"'drbench\[openvino\]'"):
        resolve_compute("cpu", "fp32", backend="openvino")
    recipe_file = tmp_path / "recipe.toml"
    recipe_file.write_text(recipe_text(tmp_path, tiny_model, VARIANTS))
    result = CliRunner().invoke(app, ["run", str(recipe_file), "--backend", "openvino"])
    assert result.exit_code == 2 and "pip install 'drbench[openvino]'" in result.stderr
    assert not (tmp_path / "drbench.db").exists()


def test_a_recipe_names_its_backend_and_is_checked_on_load() -> None:
    text = ('[experiment]\nname = "x"\n[data]\neval = ["cranfield"]\n[compute]\ndevice = "cpu"\n'
            'backend = "openvino"\nprecision = "int8"\n[variant.b]\nkind = "bm25"\n')
    assert parse_recipe(text, "x.toml").compute.backend == "openvino"
    with pytest.raises(RecipeError, match=r'x.toml \[compute\] precision = "int8": with backend "torch": torch runs'):
        parse_recipe(text.replace('backend = "openvino"\n', ""), "x.toml")
    with pytest.raises(RecipeError, match=r'x.toml \[compute\] backend = "openvino": openvino runs on the CPU'):
        parse_recipe(text.replace('"cpu"', '"cuda"'), "x.toml")
    with pytest.raises(RecipeError, match="backend"):
        parse_recipe(text.replace('"openvino"', '"tensorrt"'), "x.toml")
