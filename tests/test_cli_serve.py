"""`drbench serve`: Datasette on a store, read-only; its canned leaderboard is `drbench leaderboard`'s."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.store import ExperimentRecord, RunRecord, open_store, write_run
from conftest import REPO

pytest.importorskip("datasette", reason="drbench serve needs the optional extra drbench[serve]")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BM25 once, STAR with two seeds, on one collection; and a training log."""
    path = tmp_path_factory.mktemp("serve") / "results.db"
    db = open_store(path)
    experiment = ExperimentRecord(name="served", recipe_path=None, recipe_text='[eval]\nmetrics = ["ndcg@10"]\n',
                                  recipe_hash="h", git_commit=None, git_dirty=False, packages={}, python="3.11",
                                  platform="test", seed=13, started_at="t")
    for variant, seed, value in (("bm25", 13, 0.30), ("star", 13, 0.41), ("star", 14, 0.44)):
        write_run(db, experiment, RunRecord(
            experiment="served", variant=variant, kind=variant, collection="cranfield",
            index_factory="bm25" if variant == "bm25" else "Flat", run_key="k", model=None, depth=10, n_docs=10,
            started_at="t", finished_at="t", seed=seed, metrics={"ndcg@10": value, "mrr@10": value + 0.1},
            query_metrics={"ndcg@10": {"q1": value, "q2": value}}))
    db.close()
    return path


def get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_serve_answers_the_canned_leaderboard_as_drbench_leaderboard_does(store: Path) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--store", str(store), "--port", str(port)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                get(f"{base}/-/versions.json")
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "Datasette did not start in 90 s"
                time.sleep(0.5)
        served = get(f"{base}/results/leaderboard.json?_shape=array")
        board = CliRunner().invoke(app, ["leaderboard", "--store", str(store), "--format", "json"])
        expected = {(r["experiment"], r["variant"], r["collection"], r["index"], metric): (value, len(r["seeds"]))
                    for r in json.loads(board.output) for metric, value in r["metrics"].items()}
        got = {(r["experiment"], r["variant"], r["collection"], r["index"], r["metric"]): (r["value"], r["seeds"])
               for r in served}
        assert got.keys() == expected.keys()
        for key, (value, seeds) in expected.items():
            assert got[key][0] == pytest.approx(value, abs=1e-12) and got[key][1] == seeds
        # Descriptions and the other canned queries are there; writing is not.
        meta = get(f"{base}/-/metadata.json")
        assert "seed" in meta["databases"]["results"]["tables"]["runs"]["columns"]
        side = get(f"{base}/results/side_by_side.json?_shape=array&run_a=1&run_b=3")
        assert [row["diff"] for row in side] == pytest.approx([0.14, 0.14])  # star seed 14 - bm25, q1 and q2
        with pytest.raises(urllib.error.HTTPError):
            get(f"{base}/results.json?sql=DELETE+FROM+runs")
        assert len(get(f"{base}/results/runs.json?_shape=array")) == 3
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_errors_are_one_line_and_exit_2(store: Path, tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["serve", "--store", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "none.db" in missing.output
    open_store(tmp_path / "empty.db").close()
    empty = CliRunner().invoke(app, ["serve", "--store", str(tmp_path / "empty.db")])
    assert empty.exit_code == 2 and "holds no runs yet" in empty.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = CliRunner().invoke(app, ["serve", "--store", str(store), "--port", str(port)])
    assert busy.exit_code == 2 and f"port {port} on 127.0.0.1 is in use" in busy.output


@pytest.mark.parametrize("args, fragment", [
    (["--port", "70000"], "--port 70000 is not a port; pass one in 0-65535"),
    (["--port", "-1"], "--port -1 is not a port"),
    (["--host", "no-such-host.invalid"], "--host no-such-host.invalid does not resolve"),
    (["--host", "192.0.2.1"], "cannot listen on 192.0.2.1"),  # TEST-NET-1: resolves, but is no address of ours
], ids=["port-too-big", "port-negative", "host", "foreign-address"])
def test_bad_port_or_host_is_one_line(store: Path, args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(app, ["serve", "--store", str(store), *args])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.output
    assert "in use" not in result.output


def wait_until_served(server: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            get(url)
            return
        except OSError:
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "Datasette did not start in 90 s"
            time.sleep(0.5)


def test_sigterm_stops_datasette_and_removes_the_temporary_folder(store: Path, tmp_path: Path) -> None:
    port, temp = free_port(), tmp_path / "tmp"
    temp.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--store", str(store), "--port", str(port)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(temp)})
    url = f"http://127.0.0.1:{port}/-/versions.json"
    try:
        wait_until_served(server, url)
        assert [p.name for p in temp.iterdir()][0].startswith("drbench-serve-")
        server.terminate()  # SIGTERM to drbench's pid only, as a service manager or `kill PID` sends it
        assert server.wait(timeout=30) == 0, server.stdout.read()
    finally:
        if server.poll() is None:
            server.kill()
    with pytest.raises(OSError):  # Datasette is gone, not answering on
        get(url)
    assert list(temp.iterdir()) == []


def test_without_datasette_serve_says_how_to_install_it(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "datasette" else real(name, *a))
    result = CliRunner().invoke(app, ["serve", "--store", str(store)])
    assert result.exit_code == 2 and "pip install 'drbench[serve]'" in result.output
