"""Several processes on torch.distributed (gloo, CPU): the same recipe run by 1 and by 2
processes must train the same objective and store the same numbers.

The tiny BERT here has no dropout, the one source of difference the process count may
introduce (each process draws masks for its own share of a batch; see harness.train.loop).
Every 2-process run goes through torchrun's launcher, as users run it.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from harness.errors import RecipeError
from harness.model.compute import resolve_compute
from harness.pipeline import RunOptions, run_recipe
from harness.recipe import load_recipe
from harness.world import World
from conftest import REPO, build_tiny_bert

RECIPE = """\
[experiment]
name = "dist"
seed = 7
store = "{folder}/drbench.db"
cache_dir = "{folder}/cache"

[model]
base = "{model}"
batch_size = 64

[data]
train = "cranfield"
eval = ["cranfield"]

[eval]
indexes = ["Flat"]
metrics = ["ndcg@10", "mrr@10", "recall@100"]
depth = 100

[variant.zero-shot]
kind = "zero-shot"

[variant.star]
kind = "star"
max_steps = 4
batch_size = {batch}
grad_accum = 2
lr = 1e-3
warmup_steps = 1
negatives_depth = 20
checkpoint_every = 2

[variant.adore]
kind = "adore"
index_from = "star"
max_steps = 4
batch_size = {batch}
lr = 1e-3
warmup_steps = 1
"""


def write_recipe(folder: Path, model: Path, batch: int = 7, extra: str = "") -> Path:
    """An odd batch (7): the two processes get unequal shares (3 and 4 queries)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.toml"
    path.write_text(RECIPE.format(folder=folder, model=model, batch=batch) + extra)
    return path


def drbench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "250"})


@pytest.fixture(scope="module")
def no_dropout_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-no-dropout"), dropout=0.0)


def run_one_and_two(tmp_path_factory: pytest.TempPathFactory, mirror: Path, model: Path,
                    extra: str = "") -> tuple[Path, Path]:
    """The recipe run in this process, and by `drbench run --nproc 2`, each into its own folder."""
    one = tmp_path_factory.mktemp("one-process")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the 2 processes runs (2 cores / 2 processes)
    try:
        run_recipe(load_recipe(write_recipe(one, model, extra=extra)), RunOptions(mirror=str(mirror)),
                   Console(file=io.StringIO()))
    finally:
        torch.set_num_threads(before)
    two = tmp_path_factory.mktemp("two-processes")
    done = drbench("run", str(write_recipe(two, model, extra=extra)), "--mirror", str(mirror), "--nproc", "2",
                   cwd=two)
    assert done.returncode == 0, done.stderr[-3000:]
    return one, two


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, mirror: Path, no_dropout_model: Path) -> tuple[Path, Path]:
    return run_one_and_two(tmp_path_factory, mirror, no_dropout_model)


def _query(folder: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(folder / "drbench.db") as db:
        return db.execute(sql).fetchall()


def test_stored_metrics_are_identical(runs: tuple[Path, Path]) -> None:
    sql = "SELECT r.variant, m.metric, m.value FROM metrics m JOIN runs r ON r.id = m.run_id ORDER BY 1, 2"
    one, two = (_query(folder, sql) for folder in runs)
    assert len(one) == 9 and one == two


def test_with_the_dropout_key_at_zero_two_processes_store_the_one_process_metrics(
        tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_model: Path) -> None:
    """A model with dropout in its config (the tiny BERT's 0.1) trained with `dropout = 0.0`: no
    process draws masks, so N processes train what one does (README, "Several processes").
    Without the key the two runs' metrics differ (checked when this test was written)."""
    one, two = run_one_and_two(tmp_path_factory, mirror, tiny_model, extra="\n[train]\ndropout = 0.0\n")
    sql = "SELECT r.variant, m.metric, m.value FROM metrics m JOIN runs r ON r.id = m.run_id ORDER BY 1, 2"
    first, second = _query(one, sql), _query(two, sql)
    assert len(first) == 9 and [row[:2] for row in first] == [row[:2] for row in second]
    assert np.allclose([row[2] for row in first], [row[2] for row in second], rtol=0, atol=1e-6)


def test_per_step_losses_match_one_process_at_the_same_global_batch(runs: tuple[Path, Path]) -> None:
    sql = "SELECT variant, step, loss, extra FROM training_log ORDER BY variant, step"
    one, two = (_query(folder, sql) for folder in runs)
    assert [r[:2] for r in one] == [r[:2] for r in two] and len(one) == 8  # star and adore, 4 steps each
    for a, b in zip(one, two):
        assert b[2] == pytest.approx(a[2], abs=1e-5), a[:2]
        for key, value in json.loads(a[3] or "{}").items():
            assert json.loads(b[3])[key] == pytest.approx(value, abs=1e-5), (a[:2], key)


def _trained(folder: Path) -> dict[str, Path]:
    """Trained model folders by variant name."""
    models = (folder / "cache" / "models").glob("*/drbench.json")
    return {json.loads(meta.read_text())["variant"]: meta.parent for meta in models}


def test_trained_weights_are_allclose(runs: tuple[Path, Path]) -> None:
    one, two = (_trained(folder) for folder in runs)
    assert one.keys() == two.keys() == {"star", "adore"}
    # The process count is in no key: STAR's key (base model, data, params, seed) is the same. ADORE's
    # names STAR's weights by their digest, and those differ by float rounding.
    assert one["star"].name == two["star"].name
    for variant in one:
        left, right = load_file(one[variant] / "model.safetensors"), load_file(two[variant] / "model.safetensors")
        for name in left:
            # atol 5e-5: ADORE's official loss (issue 12) doubled its gradients, and one weight in
            # 4096 then differed by 1.08e-5 after 4 steps (float summation order of the gathers).
            torch.testing.assert_close(right[name], left[name], rtol=1e-4, atol=5e-5)


def test_sharded_corpus_encoding_is_bit_identical(runs: tuple[Path, Path]) -> None:
    one, two = ({p.name: np.load(p) for p in (folder / "cache" / "embeddings").glob("*/*.npy")} for folder in runs)
    shared = one.keys() & two.keys()
    assert len(one) == len(two) == 2 and len(shared) == 1  # the base model's corpus; STAR's weights differ
    for name in shared:
        assert np.array_equal(one[name], two[name]), name


def test_runs_record_their_process_count(runs: tuple[Path, Path]) -> None:
    sql = "SELECT compute FROM runs ORDER BY variant"
    assert {json.loads(c[0]).get("processes") for c in _query(runs[0], sql)} == {None}
    assert {json.loads(c[0])["processes"] for c in _query(runs[1], sql)} == {2}


def test_the_leaderboard_shows_how_many_processes_ran(runs: tuple[Path, Path]) -> None:
    from harness.cli import app
    from typer.testing import CliRunner

    store = str(runs[1] / "drbench.db")
    rows = json.loads(CliRunner().invoke(app, ["leaderboard", "--store", store, "--format", "json"]).stdout)
    assert {(r["variant"], r["processes"], r["precision"], r["device"]) for r in rows} == {
        (v, 2, "fp32", "cpu") for v in ("zero-shot", "star", "adore")}
    assert CliRunner().invoke(app, ["leaderboard", "--store", store]).stdout.count("fp32 cpu x2") == 3


def test_a_second_two_process_run_skips_every_stored_run(runs: tuple[Path, Path], mirror: Path) -> None:
    two = runs[1]
    done = drbench("run", str(two / "recipe.toml"), "--mirror", str(mirror), "--nproc", "2", cwd=two)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("skip ") == 3 and "training" not in done.stderr


def test_under_torchrun_an_error_stops_every_process_with_one_line(tmp_path: Path, mirror: Path,
                                                                     no_dropout_model: Path) -> None:
    recipe = write_recipe(tmp_path, no_dropout_model, batch=1)  # a batch of 1 cannot be split over 2
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "harness", "run", str(recipe), "--mirror", str(mirror)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {recipe} [variant.star] batch_size = 1 cannot be split over 2 processes; use a "
                      "batch_size of at least 2, or fewer processes"], done.stderr[-2000:]
    assert not (tmp_path / "drbench.db").exists()


@pytest.mark.parametrize(("nproc", "problem"), [
    ("0", "--nproc 0: give at least 1 process"),
    ("2", "batch_size = 1 cannot be split over 2 processes"),
])
def test_drbench_run_refuses_a_bad_process_count_before_any_work(tmp_path: Path, mirror: Path, tiny_model: Path,
                                                                   nproc: str, problem: str) -> None:
    recipe = write_recipe(tmp_path, tiny_model, batch=1)
    done = drbench("run", str(recipe), "--mirror", str(mirror), "--nproc", nproc, cwd=tmp_path)
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if line.strip()] == [
        line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert problem in done.stderr and not (tmp_path / "drbench.db").exists()


def test_more_processes_than_gpus_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RecipeError, match="2 processes on this machine need one GPU each, but torch sees 1 GPU"):
        resolve_compute("cuda", "fp32", world=World(0, 2, 0, 2), device_label="--nproc 2 with device cuda")
    with pytest.raises(RecipeError, match='names one GPU, but this run has 2 processes; use "cuda"'):
        resolve_compute("cuda:0", "fp32", world=World(0, 2, 0, 2))


def test_each_local_rank_gets_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [resolve_compute("cuda", "fp32", world=World(r, 4, r % 2, 2)).device for r in range(4)] == [
        "cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert resolve_compute("auto", "fp32", world=World(1, 2, 1, 2)).device == "cuda:1"


def _assemble_in(rank: int, port: int, folder: str) -> None:
    """One of two gloo processes: each computed every other row of a 7 x 2 matrix."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    world = World(rank, 2, rank, 2)
    full = np.arange(14, dtype=np.float32).reshape(7, 2)
    rows = np.arange(rank, 7, 2)
    for everyone in (True, False):
        out = np.zeros_like(full)
        out[rows] = full[rows]
        world.assemble(out, rows, everyone=everyone, chunk=2)  # unequal shares (4 and 3), several chunks
        np.save(Path(folder) / f"{rank}-{everyone}.npy", out)
    dist.destroy_process_group()


def test_assemble_gathers_unequal_shares_in_chunks(tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_assemble_in, args=(port, str(tmp_path)), nprocs=2)
    full = np.arange(14, dtype=np.float32).reshape(7, 2)
    for rank in (0, 1):
        np.testing.assert_array_equal(np.load(tmp_path / f"{rank}-True.npy"), full)
    np.testing.assert_array_equal(np.load(tmp_path / "0-False.npy"), full)  # rank 0 only
    partial = np.load(tmp_path / "1-False.npy")
    assert (partial[1::2] == full[1::2]).all() and not partial[0::2].any()


@pytest.mark.parametrize("device, backend", [("cpu", "gloo"), ("cuda:1", "nccl")])
def test_processes_join_over_gloo_on_the_cpu_and_nccl_on_cuda(monkeypatch: pytest.MonkeyPatch, device: str,
                                                              backend: str) -> None:
    import torch.distributed as dist

    joined: list[tuple] = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda name, timeout: joined.append((name, timeout)))
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: joined.append(("set_device", str(d))))
    world = World(1, 2, 1, 2).join(device)
    assert world.device == device and joined[-1][0] == backend
    assert joined[-1][1].total_seconds() >= 3600  # rank 0 may search an index alone for a long while
    assert (("set_device", device) in joined) == (backend == "nccl")
    assert World().join(device) == World()  # a world of one joins nothing


def test_two_processes_resume_from_a_checkpoint(tmp_path: Path, mirror: Path, no_dropout_model: Path,
                                                runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.train.loop as loop

    recipe = write_recipe(tmp_path, no_dropout_model)  # STAR: 4 steps, a checkpoint after step 2
    real = loop._one_step

    def stopped_after_the_checkpoint(model, optim, params, schedule, query_ids, seed, step, *rest, **kwargs):
        if step == 2:
            raise KeyboardInterrupt  # as a Ctrl-C during step 3
        return real(model, optim, params, schedule, query_ids, seed, step, *rest, **kwargs)

    monkeypatch.setattr(loop, "_one_step", stopped_after_the_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror)), Console(file=io.StringIO()))
    monkeypatch.undo()
    [work] = (tmp_path / "cache" / "models").glob("*.tmp-*")
    assert (work / "checkpoint.pt").is_file()
    # As if the interrupted run's process had exited: only a dead process's work is adopted.
    ended = subprocess.Popen(["true"])
    ended.wait()
    key, rest = work.name.split(".tmp-", 1)
    host_pid, token = rest.rsplit("-", 1)
    work.rename(work.with_name(f"{key}.tmp-{host_pid.rsplit('-', 1)[0]}-{ended.pid}-{token}"))

    done = drbench("run", str(recipe), "--mirror", str(mirror), "--nproc", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "star: resuming from" in done.stderr, done.stderr[-6000:]
    resumed, uninterrupted = _trained(tmp_path)["star"], _trained(runs[1])["star"]
    assert resumed.name == uninterrupted.name
    left, right = load_file(uninterrupted / "model.safetensors"), load_file(resumed / "model.safetensors")
    for name in left:
        torch.testing.assert_close(right[name], left[name], rtol=1e-4, atol=1e-5)
