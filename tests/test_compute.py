"""Devices and precision: resolution and its errors, keys that keep fp32 CPU runs as they were
and keep bf16 apart, the fp16 gradient scaler's wiring, and a bf16 run end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import harness.model.compute as compute_mod
from harness.cli import app
from harness.data.collection import Collection
from harness.errors import RecipeError
from harness.model.compute import Compute, resolve_compute
from harness.pipeline import RunOptions, run_recipe
from harness.progress import StageProgress
from harness.recipe import parse_recipe
from harness.store import list_runs, open_store
from harness.train.loop import CHECKPOINT, train
from leaderboard import leaderboard_rows

# Fixtures (cranfield, one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, cranfield, use_cranfield, quiet_console, console_text, recipe_text, loop_params, load_tiny)


# --- resolution ---------------------------------------------------------------------------------

class FakeCuda:
    def __init__(self, count: int, bf16: bool = True):
        self.count, self.bf16 = count, bf16

    def is_available(self) -> bool:
        return self.count > 0

    def device_count(self) -> int:
        return self.count

    def get_device_capability(self, index: int) -> tuple[int, int]:
        assert index < self.count
        return (8, 0) if self.bf16 else (7, 5)  # Ampere and later compute bf16 natively; a T4 does not


@pytest.mark.parametrize("gpus, bf16, device, precision, expected", [
    (0, True, "auto", "fp32", Compute("cpu", "fp32")),
    (1, True, "auto", "fp32", Compute("cuda:0", "fp32")),
    (1, True, "auto", "auto", Compute("cuda:0", "bf16")),
    (1, False, "cuda", "auto", Compute("cuda:0", "fp16")),
    (2, True, "cuda:1", "fp16", Compute("cuda:1", "fp16")),
])
def test_devices_and_auto_precision(monkeypatch: pytest.MonkeyPatch, gpus: int, bf16: bool, device: str,
                                    precision: str, expected: Compute) -> None:
    monkeypatch.setattr(torch, "cuda", FakeCuda(gpus, bf16))
    assert resolve_compute(device, precision) == expected


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch: pytest.MonkeyPatch, native: bool,
                                                   expected: str) -> None:
    monkeypatch.setattr(compute_mod, "cpu_has_native_bf16", lambda: native)
    assert resolve_compute("cpu", "auto").precision == expected


@pytest.mark.parametrize("gpus, device, precision, fragment", [
    (0, "cuda", "fp32", '[compute] device = "cuda": torch sees no GPU'),
    (1, "cuda:1", "fp32", '[compute] device = "cuda:1": torch sees 1 GPU(s)'),
    (0, "cpu", "fp16", '[compute] precision = "fp16": fp16 runs on CUDA only'),
    (0, "gpu", "fp32", '[compute] device = "gpu": unknown device'),
    (0, "cpu", "fp8", '[compute] precision = "fp8": unknown precision'),
])
def test_impossible_compute_is_one_line(monkeypatch: pytest.MonkeyPatch, gpus: int, device: str, precision: str,
                                        fragment: str) -> None:
    monkeypatch.setattr(torch, "cuda", FakeCuda(gpus))
    with pytest.raises(RecipeError) as err:
        resolve_compute(device, precision)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_emulated_bf16_is_a_warning_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compute_mod, "cpu_has_native_bf16", lambda: False)
    warnings: list[str] = []
    assert resolve_compute("cpu", "bf16", warn=warnings.append) == Compute("cpu", "bf16")
    assert len(warnings) == 1 and "no native bf16" in warnings[0]


def test_native_bf16_is_read_from_cpu_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t: fpu sse2 avx512f avx512_bf16\n")
    assert compute_mod.cpu_has_native_bf16(info)
    info.write_text("flags\t: fpu sse2 avx2\n")
    assert not compute_mod.cpu_has_native_bf16(info)
    assert not compute_mod.cpu_has_native_bf16(tmp_path / "missing")


def test_keys_and_scaler_follow_device_and_precision() -> None:
    assert Compute("cpu", "fp32").key_parts() == {}  # the reference keeps the keys it always had
    assert Compute("cpu", "bf16").key_parts() == {"device": "cpu", "precision": "bf16"}
    assert Compute("cuda:3", "fp32").key_parts() == {"device": "cuda", "precision": "fp32"}
    assert [c.scales_gradients for c in (Compute("cuda:0", "fp16"), Compute("cuda:0", "bf16"),
                                         Compute("cpu", "bf16"))] == [True, False, False]


def test_gradient_scaler_is_wired_through_training(tiny_model: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """fp16 on CUDA scales the loss; no GPU here, so run the scaler on the CPU (torch has a CPU
    GradScaler) in fp32: scaling then unscaling must leave training where it was, and the
    scaler's state must travel in the checkpoint."""
    from test_loop import QUERY_IDS, toy_step

    def run(folder: Path, scaled: bool) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
        monkeypatch.setattr(Compute, "scales_gradients", property(lambda self: scaled))
        model, tok = load_tiny(tiny_model)
        params = loop_params(max_steps=4, checkpoint_every=2, grad_clip=0.5)
        log, _ = train(model, params, QUERY_IDS, 5, toy_step(model, tok, []), folder,
                       StageProgress(quiet_console()), "x", compute=Compute("cpu", "fp32"))
        return log, model.state_dict()

    plain_log, plain = run(tmp_path / "plain", False)
    scaled_log, scaled = run(tmp_path / "scaled", True)
    assert [r["loss"] for r in scaled_log] == pytest.approx([r["loss"] for r in plain_log], rel=1e-5)
    assert all(torch.allclose(plain[k], scaled[k], atol=1e-6) for k in plain)
    state = torch.load(tmp_path / "scaled" / CHECKPOINT, weights_only=True)
    assert state["scaler"]["scale"] > 0 and not torch.load(tmp_path / "plain" / CHECKPOINT,
                                                           weights_only=True)["scaler"]


# --- end to end ----------------------------------------------------------------------------------

VARIANTS = """
[variant.zs]
kind = "zero-shot"

[variant.inb]
kind = "inbatch"
max_steps = 2
batch_size = 8
query_max_length = 16
doc_max_length = 32
"""


def test_bf16_runs_beside_fp32_with_its_own_keys_and_label(tiny_model: Path, tmp_path: Path,
                                                           use_cranfield: Collection) -> None:
    recipe = parse_recipe(recipe_text(tmp_path, tiny_model, VARIANTS, name="mixed"), tmp_path / "recipe.toml")
    fp32 = run_recipe(recipe, RunOptions(device="cpu"), quiet_console())
    bf16 = run_recipe(recipe, RunOptions(device="cpu", precision="bf16"), quiet_console())
    # a bf16 run is never a stored fp32 run, and nothing fp32 is served to it
    assert {o.status for o in fp32} == {o.status for o in bf16} == {"done"}
    embeddings = sorted((tmp_path / "cache" / "embeddings").rglob("*.json"))
    models = [p for p in (tmp_path / "cache" / "models").iterdir() if not p.name.startswith(".")]
    assert len(embeddings) == 4 and len(models) == 2  # (zs, inb) x (fp32, bf16); inb trained twice
    keys = [json.loads(p.read_text())["key"] for p in embeddings]
    assert len(set(keys)) == 4
    again = run_recipe(recipe, RunOptions(device="cpu", precision="bf16"), quiet_console())
    assert {o.status for o in again} == {"skipped"}  # and a bf16 rerun finds its own runs

    db = open_store(tmp_path / "drbench.db")
    [run] = list_runs(db)[-1:]
    assert {k: run["compute"][k] for k in ("device", "precision")} == {"device": "cpu", "precision": "bf16"}
    rows = [row.as_dict() for row in leaderboard_rows(db, experiment="mixed")]
    assert {(r["variant"], r["precision"], r["device"]) for r in rows} == {("zs", "bf16", "cpu"),
                                                                           ("inb", "bf16", "cpu")}


def test_impossible_compute_stops_run_before_any_work(tiny_model: Path, tmp_path: Path) -> None:
    recipe_file = tmp_path / "recipe.toml"
    recipe_file.write_text(recipe_text(tmp_path, tiny_model, VARIANTS))
    for args, fragment in ((["--precision", "fp16", "--device", "cpu"], "--precision fp16: fp16 runs on CUDA only"),
                           (["--device", "cuda"], "--device cuda: torch sees")):
        result = CliRunner().invoke(app, ["run", str(recipe_file), *args])
        assert result.exit_code == 2, result.output
        [line] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert fragment in line and "Traceback" not in result.output
    assert not (tmp_path / "drbench.db").exists()


def test_validate_catches_fp16_off_cuda_without_probing_for_a_gpu() -> None:
    text = ('[experiment]\nname = "x"\n[data]\neval = ["cranfield"]\n[compute]\ndevice = "cpu"\n'
            'precision = "fp16"\n[variant.b]\nkind = "bm25"\n')
    with pytest.raises(RecipeError, match=r'x.toml \[compute\] precision = "fp16": fp16 runs on CUDA only'):
        parse_recipe(text, "x.toml")
    parse_recipe(text.replace('"cpu"', '"auto"'), "x.toml")  # auto may find a GPU: `run` decides


def test_faiss_goes_to_the_run_gpu_only() -> None:
    assert [Compute(d).faiss_gpu for d in ("cpu", "cuda:0", "cuda:3", "mps")] == [None, 0, 3, None]
