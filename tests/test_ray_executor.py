"""`drbench run --executor ray`: the plan's tasks on a real local Ray store what the local
executor stores, a task whose process is killed mid-training is started again and resumes, and
bad input stops in one line before any work."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from harness.cache.manifest import file_damage
from harness.cli import app
from harness.pipeline import RunOptions, run_recipe
from harness.pipeline.ray_executor import RayExecutor
from harness.recipe import load_recipe, parse_recipe
from harness.recipe.plan import build_plan
from harness.recipe.tasks import plan_tasks

pytest.importorskip("ray")

RECIPE = """\
[experiment]
name = "parallel"
seeds = [3, 4]
store = "{folder}/local.db"
cache_dir = "{folder}/cache-local"

[model]
base = "{model}"

[collections.cran]
from = "cranfield"
split = {{ train = 0.6, test = 0.4 }}

[data]
train = "cran/train"
dev = "holdout:0.2"
eval = ["cran/test"]

[eval]
depth = 100

[train]
max_steps = 3
batch_size = 8

[variant.star]
kind = "star"

[variant.star.sweep]
lr = [1e-3, 5e-3]

[variant.adore]
kind = "star+adore"
star = "star"
lr = 1e-3
"""

KILLED = """\
[experiment]
name = "killed"
store = "{folder}/local.db"
cache_dir = "{folder}/cache-local"

[model]
base = "{model}"

[data]
train = "cranfield"
eval = ["cranfield"]

[eval]
depth = 100

[variant.star]
kind = "star"
max_steps = 150
batch_size = 8
lr = 1e-3
checkpoint_every = 1
"""


def _numbers(store: Path) -> dict:
    """Everything a run stores that the executor must not change (ids, times and timings aside)."""
    with closing(sqlite3.connect(store)) as conn:
        return {
            # the model's record less its cache paths (each executor here has its own cache)
            "runs": sorted(conn.execute("SELECT experiment, variant, collection, index_factory, seed, run_key, "
                                        "json_remove(model, '$.path', '$.query_path', '$.name'), selection, n_queries, n_docs "
                                        "FROM runs")),
            "metrics": sorted(conn.execute("SELECT variant, collection, index_factory, seed, metric, value FROM metrics "
                                           "JOIN runs ON runs.id = run_id")),
            "query_metrics": sorted(conn.execute(
                "SELECT variant, collection, index_factory, seed, query_id, metric, value FROM query_metrics "
                "JOIN runs ON runs.id = run_id")),
            "results": sorted(conn.execute("SELECT variant, collection, seed, query_id, doc_id, rank, score "
                                           "FROM results JOIN runs ON runs.id = run_id")),
            "logs": sorted(conn.execute("SELECT experiment, variant, seed, step, loss, lr, extra FROM training_log")),
            "linked": sorted(conn.execute("SELECT variant, seed, count(*) FROM training_log WHERE run_id IS NOT NULL "
                                          "GROUP BY variant, seed")),
        }


def _both(folder: Path, text: str, model: Path, mirror: Path, during_ray=None) -> tuple[Path, Path, str]:
    """Run the recipe with the local executor and on a local Ray with 2 workers, each with its own
    cache (nothing trained by one serves the other); the stores and Ray's log."""
    recipe = folder / "recipe.toml"
    recipe.write_text(text.format(folder=folder, model=model))
    # One thread each, as each Ray task has: torch splits a product's sums by its threads, so its
    # last bits (scores, losses) follow the thread count (README, "Many runs at once").
    run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror), threads=1), Console(file=io.StringIO()))
    log = io.StringIO()
    watcher = threading.Thread(target=during_ray, daemon=True) if during_ray else None
    if watcher:
        watcher.start()
    run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror), store=str(folder / "ray.db"),
                                               cache_dir=str(folder / "cache-ray")),
               Console(file=log, width=400), RayExecutor(workers=2))
    if watcher:
        watcher.join(timeout=1)
    return folder / "local.db", folder / "ray.db", log.getvalue()


@pytest.fixture(scope="module")
def parallel(tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_model: Path) -> tuple[Path, Path, str]:
    return _both(tmp_path_factory.mktemp("ray"), RECIPE, tiny_model, mirror)


def test_ray_stores_what_the_local_executor_stores(parallel: tuple[Path, Path, str]) -> None:
    local, ray, log = parallel
    mine, theirs = _numbers(local), _numbers(ray)
    assert len(mine["runs"]) == 10 and len(mine["logs"]) > 0
    assert len({row[5] for row in mine["metrics"] if row[4] == "ndcg@10"}) > 1  # the variants differ: a real check
    for part in mine:
        assert theirs[part] == mine[part], part
    lines = log.splitlines()
    assert sum(" started " in line for line in lines) == 10 and sum(" done " in line for line in lines) == 10
    assert "[10/10] done eval/" in log and "star: chose star[lr=" in log


def test_a_rerun_on_ray_makes_only_what_is_missing(parallel: tuple[Path, Path, str], mirror: Path) -> None:
    local, ray, _ = parallel
    folder = ray.parent
    with closing(sqlite3.connect(ray)) as conn, conn:
        gone = conn.execute("SELECT id FROM runs WHERE variant = 'adore' AND seed = 4 AND collection = 'cran/test'")
        run_id, = gone.fetchone()
        for table in ("metrics", "query_metrics", "results"):
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    log = io.StringIO()
    outcomes = run_recipe(load_recipe(folder / "recipe.toml"),
                          RunOptions(mirror=str(mirror), store=str(ray), cache_dir=str(folder / "cache-ray")),
                          Console(file=log, width=400), RayExecutor(workers=2))
    assert [o.status for o in outcomes].count("done") == 1 and [o.status for o in outcomes].count("skipped") == 9
    assert log.getvalue().count(" started ") == 1  # the stored runs' tasks start no process
    assert _numbers(ray)["metrics"] == _numbers(local)["metrics"]


def test_a_killed_task_is_started_again_and_resumes(tmp_path: Path, mirror: Path, tiny_model: Path) -> None:
    killed: list[int] = []

    def kill_mid_training() -> None:
        """SIGKILL the process training in the Ray run's cache once it has saved a checkpoint (and
        its manifest, which a resume checks: killed between the two, it would rightly start over)."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for checkpoint in (tmp_path / "cache-ray" / "models").glob("*.tmp-*/checkpoint.pt"):
                if file_damage(checkpoint) is not None:
                    continue
                pid = int(checkpoint.parent.name.split(".tmp-")[1].split("-")[-2])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    local, ray, log = _both(tmp_path, KILLED, tiny_model, mirror, kill_mid_training)
    assert killed, "training finished before a checkpoint was seen"
    assert "started again eval/star/" in log
    assert "star: resuming from" in (tmp_path / "ray.db.ray" / "task1" / "log.txt").read_text()
    assert _numbers(ray) == _numbers(local)
    with closing(sqlite3.connect(ray)) as conn:  # no partial row: every run has its numbers
        assert conn.execute("SELECT count(*) FROM runs WHERE id NOT IN (SELECT run_id FROM metrics)").fetchone()[0] == 0


def test_tasks_follow_the_plan() -> None:
    recipe = parse_recipe(RECIPE.format(folder="/tmp", model="minilm"), "r.toml")
    plan = build_plan(recipe)
    tasks = plan_tasks(plan)
    assert sum(len(t.runs) for t in tasks) == len(plan) == 10
    position = {t.id: n for n, t in enumerate(tasks)}
    owner = {run.id: t.id for t in tasks for run in t.runs}
    for task in tasks:  # every dependency comes first, and is the task of a run it comes after
        assert all(position[before] < position[task.id] for before in task.after)
        assert set(task.after) == {owner[b] for run in task.runs for b in run.after if owner[b] != task.id}
    adore = next(t for t in tasks if t.runs[0].id == "eval/adore/3/cran/test/Flat")
    dev_points = {t.id for t in tasks if t.runs[0].phase == "dev" and t.runs[0].sweep == "star"}
    assert len(dev_points) == 4 and dev_points <= set(adore.after)  # its star is chosen on every point's dev runs


@pytest.mark.parametrize(("args", "fragment"), [
    (["--executor", "ray", "--address", "127.0.0.1:9"], "no Ray cluster answers there"),
    (["--executor", "ray", "--address", "nowhere"], "write HOST:PORT"),
    (["--executor", "ray", "--address", "auto", "RAY_ADDRESS=garbage"], "--address auto (found garbage): write"),
    (["--executor", "ray", "--address", "auto", "RAY_ADDRESS=127.0.0.1:9"], "(found 127.0.0.1:9): no Ray cluster"),
    (["--executor", "ray", "--nproc", "2"], "leave --nproc out"),
    (["--workers", "2"], "--workers goes with --executor ray"),
])
def test_bad_ray_options_are_one_line_before_any_work(args: list[str], fragment: str, tmp_path: Path,
                                                      tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(folder=tmp_path, model=tiny_model))
    for setting in [a for a in args if "=" in a]:  # an environment variable the case sets
        monkeypatch.setenv(*setting.split("=", 1))
    result = CliRunner().invoke(app, ["run", str(recipe), *[a for a in args if "=" not in a]])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and fragment in result.stderr, result.output
    assert not (tmp_path / "local.db").exists() and not (tmp_path / "cache-local").exists()


def test_without_ray_installed_the_executor_says_how_to_install_it(tmp_path: Path, tiny_model: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def no_ray(name: str, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(folder=tmp_path, model=tiny_model))
    result = CliRunner().invoke(app, ["run", str(recipe), "--executor", "ray"])
    assert result.exit_code == 2 and "pip install 'drbench[ray]'" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "local.db").exists()


FAILING = """\
[experiment]
name = "failing"
store = "{folder}/ray.db"
cache_dir = "{folder}/cache"

[model]
base = "{model}"

[data]
eval = ["cranfield"]

[eval]
depth = 100
indexes = ["Flat", "PQ4x16"]   # valid, but 1,400 documents cannot train 65,536 centroids

[variant.zero-shot]
kind = "zero-shot"
"""


def test_a_failing_task_lands_what_it_finished_and_says_why(tmp_path: Path, mirror: Path, tiny_model: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")  # a Ray started here is its own, whatever this names
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(FAILING.format(folder=tmp_path, model=tiny_model))
    result = CliRunner().invoke(app, ["run", str(recipe), "--mirror", str(mirror), "--executor", "ray",
                                      "--workers", "1"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert any("done eval/zero-shot/42/cranfield/Flat: ndcg@10" in line and "before the task failed" in line
               for line in lines)
    failed = [line for line in lines if " failed eval/zero-shot/42/cranfield/PQ4x16: " in line]
    assert len(failed) == 1 and "PQ4x16" in failed[0] and "log: " in failed[0]
    assert lines[-1].startswith("error: 1 of 2 runs failed")
    with closing(sqlite3.connect(tmp_path / "ray.db")) as conn:  # the finished run is stored, whole
        assert conn.execute("SELECT index_factory FROM runs").fetchall() == [("Flat",)]
        assert conn.execute("SELECT count(*) FROM results").fetchone()[0] > 0
    assert "Traceback (most recent call last)" in (tmp_path / "ray.db.ray" / "task1" / "log.txt").read_text()
    assert not list((tmp_path / "ray.db.ray").rglob("*.db*"))  # landed; only logs stay


def test_a_task_no_node_can_run_is_one_line_before_any_starts() -> None:
    from harness.errors import RecipeError
    from harness.pipeline.ray_executor import _check_feasible

    class Cluster:  # what ray.nodes() says of a cluster of two 4-CPU nodes without GPUs
        @staticmethod
        def nodes() -> list[dict]:
            return [{"Alive": True, "Resources": {"CPU": 4.0}}, {"Alive": False, "Resources": {"CPU": 64.0}}]

    tasks = plan_tasks(build_plan(parse_recipe(RECIPE.format(folder="/tmp", model="minilm"), "r.toml")))
    _check_feasible(Cluster, tasks, 4, "cpu")
    with pytest.raises(RecipeError, match="no node of the Ray cluster has 8 CPUs for dev/star"):
        _check_feasible(Cluster, tasks, 8, "cpu")
    with pytest.raises(RecipeError, match="has 1 CPUs and a GPU"):
        _check_feasible(Cluster, tasks, 1, "cuda")


def test_sigterm_stops_a_ray_run_as_ctrl_c_does(tmp_path: Path, mirror: Path, tiny_model: Path) -> None:
    import subprocess
    import sys

    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(folder=tmp_path, model=tiny_model))
    driver = subprocess.Popen([sys.executable, "-m", "harness", "run", str(recipe), "--mirror", str(mirror),
                               "--executor", "ray", "--workers", "2"], stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = []
    for line in driver.stderr:  # type: ignore[union-attr]
        lines.append(line)
        if " started " in line:
            driver.send_signal(signal.SIGTERM)
            break
    rest = driver.communicate(timeout=120)[1]
    assert driver.returncode == 130, "".join(lines) + rest
    assert rest.strip().splitlines()[-1] == "error: interrupted; completed runs are stored, the rest re-run next time"


def test_address_auto_without_a_ray_here_is_one_line(tmp_path: Path, tiny_model: Path, mirror: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from ray._private import services

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray-tmp"))  # no `ray start` of this machine is found there
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: [], raising=False)  # nor a gcs_server in `ps`
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(folder=tmp_path, model=tiny_model))
    result = CliRunner().invoke(app, ["run", str(recipe), "--mirror", str(mirror), "--executor", "ray",
                                      "--address", "auto"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith("error: --address auto: no running Ray found here")
    assert not (tmp_path / "local.db").exists() and not (tmp_path / "cache-local").exists()  # nothing written
