"""Corpus encodes that resume (`harness.cache.partial`): an encode stopped mid-way (SIGKILL,
SIGTERM, Ctrl-C) by one process or two leaves a partial that the next run resumes from its last
recorded group, to the bytes of an uninterrupted encode; a partial made for another key, shape or
batch size, or damaged, is discarded with a log line; `drbench cache ls` and `prune` treat a dead
process's partial as a leftover, never as a write in progress.

The encodes run as their own processes (tests/encode_worker.py), as a killed `drbench run` is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import REPO
from harness.cache.partial import Schedule, partial_problem
from harness.cli import app
from harness.model.embedding_cache import EmbeddingCache

WORKER = REPO / "tests" / "encode_worker.py"
DOCS = 90  # sort chunks of 40, 40, 10; groups of 8 rows: 5 + 5 + 2 groups


def encode(model: Path, cache: Path, stop_after: int = 0, how: str = "kill",
           nproc: int = 1) -> subprocess.CompletedProcess[str]:
    args = [str(WORKER), str(model), str(cache), str(DOCS), str(stop_after), how]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"] if nproc > 1 \
        else [sys.executable]
    return subprocess.run(launch + args, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})


def published(cache: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (cache / "embeddings").glob("??/*.npy")}


def partials(cache: Path) -> list[Path]:
    return sorted((cache / "embeddings").glob("*.tmp-*"))


def progress(folder: Path) -> dict:
    return json.loads((folder / "progress.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    cache = tmp_path_factory.mktemp("whole")
    done = encode(tiny_model, cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming" not in done.stderr and not partials(cache)
    return published(cache)


def test_a_killed_encode_resumes_from_its_last_group_to_the_same_bytes(tiny_model: Path, tmp_path: Path,
                                                                      uninterrupted: dict[str, bytes]) -> None:
    killed = encode(tiny_model, tmp_path, stop_after=5)  # the first sort chunk, whole
    assert killed.returncode == -signal.SIGKILL and not published(tmp_path)
    [work] = partials(tmp_path)
    assert progress(work)["done"] == 40
    listed = CliRunner().invoke(app, ["cache", "ls", "--cache-dir", str(tmp_path)])
    assert "1 partial encode the next run of the same key resumes" in listed.stdout, listed.output
    assert "in progress" not in listed.stdout  # its process is dead: nothing is being written

    resumed = encode(tiny_model, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming a partial encode from 40 of 90 rows" in resumed.stderr, resumed.stderr
    assert "encoded 50 documents" in resumed.stderr and "40 more resumed" in resumed.stderr
    assert published(tmp_path) == uninterrupted and not partials(tmp_path)


def test_two_processes_resume_one_process_and_one_resumes_two(tiny_model: Path, tmp_path: Path,
                                                            uninterrupted: dict[str, bytes]) -> None:
    # Killed inside the second sort chunk (7 groups: 40 + 16 rows), resumed by 2 processes.
    killed = encode(tiny_model, tmp_path / "a", stop_after=7)
    assert killed.returncode == -signal.SIGKILL and progress(partials(tmp_path / "a")[0])["done"] == 56
    resumed = encode(tiny_model, tmp_path / "a", nproc=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming a partial encode from 56 of 90 rows" in resumed.stderr, resumed.stderr[-3000:]
    assert published(tmp_path / "a") == uninterrupted and not partials(tmp_path / "a")

    # Two processes stopped by SIGTERM (rank 0's, as torchrun passes it on), resumed by one.
    stopped = encode(tiny_model, tmp_path / "b", stop_after=3, how="term", nproc=2)
    assert stopped.returncode != 0
    [work] = partials(tmp_path / "b")
    assert progress(work)["done"] == 24 and "stopped after 24 of 90 rows; kept" in stopped.stderr
    resumed = encode(tiny_model, tmp_path / "b")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming a partial encode from 24 of 90 rows" in resumed.stderr
    assert published(tmp_path / "b") == uninterrupted and not partials(tmp_path / "b")


@pytest.mark.parametrize("how, code", [("term", 128 + signal.SIGTERM), ("int", None)])
def test_sigterm_and_ctrl_c_keep_recorded_groups_for_resume_and_say_so(tiny_model: Path, tmp_path: Path,
                                                                      how: str, code: int | None) -> None:
    stopped = encode(tiny_model, tmp_path, stop_after=2, how=how)
    assert stopped.returncode != 0 and (code is None or stopped.returncode == code), stopped.stderr[-2000:]
    [work] = partials(tmp_path)
    assert progress(work)["done"] == 16
    assert f"stopped after 16 of 90 rows; kept {work}" in stopped.stderr.replace("\n", "")


# --- what is resumed, and what is discarded ---------------------------------------------------

SHAPE, SCHEDULE = (10, 3), Schedule(batch_size=2, every=2, chunk=6)  # groups of 4, 2, 4 rows


def _stopped(cache: EmbeddingCache, key: str, groups: int, log: list[str]) -> Path:
    """A partial with `groups` groups recorded, left as a stopped encode leaves it (this process's
    pid counts as dead: `Entries.stale`)."""
    vectors = np.arange(30, dtype=np.float32).reshape(SHAPE)
    sizes = list(SCHEDULE.group_sizes(SHAPE[0]))
    with pytest.raises(KeyboardInterrupt):
        with cache.writer(key, SHAPE, {}, SCHEDULE) as partial:
            position = 0
            for size in sizes[:groups]:
                rows = np.arange(position, position + size)[::-1]  # encode order is not row order
                partial.vectors[rows] = vectors[rows]
                position += size
                partial.commit(position, rows)
            raise KeyboardInterrupt
    [work] = sorted(cache.root.glob(f"{key}.tmp-*"))
    return work


def test_a_stopped_partial_resumes_with_its_rows(tmp_path: Path) -> None:
    log: list[str] = []
    cache = EmbeddingCache(tmp_path, log.append)
    key = cache.key(model="f")
    _stopped(cache, key, 2, log)
    assert "stopped after 6 of 10 rows; kept" in log[-1]
    with cache.writer(key, SHAPE, {}, SCHEDULE) as partial:
        assert partial.done == 6 and "resuming a partial encode from 6 of 10 rows" in log[-1]
        np.testing.assert_array_equal(partial.vectors[:6], np.arange(18, dtype=np.float32).reshape(6, 3))
        partial.vectors[6:] = np.arange(18, 30, dtype=np.float32).reshape(4, 3)
        partial.commit(10, np.arange(6, 10))
    np.testing.assert_array_equal(cache.load(key), np.arange(30, dtype=np.float32).reshape(SHAPE))
    assert sorted(p.name for p in tmp_path.iterdir()) == [key[:2]]  # the work folder is gone


def test_a_partial_stopped_after_its_last_group_is_published_as_it_is(tmp_path: Path) -> None:
    log: list[str] = []
    cache = EmbeddingCache(tmp_path, log.append)
    key = cache.key(model="f")
    _stopped(cache, key, 3, log)  # every row recorded, killed before publishing
    with cache.writer(key, SHAPE, {}, SCHEDULE) as partial:
        assert partial.done == 10 and "from 10 of 10 rows" in log[-1]
    np.testing.assert_array_equal(cache.load(key), np.arange(30, dtype=np.float32).reshape(SHAPE))


def _flip_done_row(work: Path) -> None:
    vectors = np.load(work / "vectors.npy", mmap_mode="r+")
    vectors[1, 0] += 1.0
    vectors.flush()


@pytest.mark.parametrize("harm, reason", [
    ("other key", "made for another cache key"),
    ("batch size", "made with another shape or batch size"),
    ("flipped", "sha256 of the rows done mismatch"),
    ("truncated", "matrix unreadable or truncated"),
    ("no record", "no readable progress record"),
    ("mid-group", "rows done end inside a group"),
])
def test_a_partial_that_does_not_fit_is_discarded_with_a_log_line(tmp_path: Path, harm: str, reason: str) -> None:
    log: list[str] = []
    cache = EmbeddingCache(tmp_path, log.append)
    key, schedule = cache.key(model="f"), SCHEDULE
    work = _stopped(cache, key, 2, log)
    record = json.loads((work / "progress.json").read_text())
    if harm == "other key":  # a folder renamed to another key's name: its record still names its own
        key = cache.key(model="g")
        work.rename(work.with_name(key + work.name[64:]))
    elif harm == "batch size":
        schedule = Schedule(batch_size=1, every=4, chunk=6)
    elif harm == "flipped":
        _flip_done_row(work)
    elif harm == "truncated":
        with open(work / "vectors.npy", "r+b") as handle:
            handle.truncate(100)
    elif harm == "no record":
        (work / "progress.json").unlink()
    else:
        (work / "progress.json").write_text(json.dumps({**record, "done": 5}))
    with cache.writer(key, SHAPE, {}, schedule) as partial:
        assert partial.done == 0
        partial.vectors[:] = 0.0
    assert any(reason in line and "discarding the partial encode" in line for line in log), log
    assert not list(tmp_path.glob("*.tmp-*"))  # discarded, not left beside the new entry


def test_partial_problem_accepts_only_the_encode_that_made_it(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    key = cache.key(model="f")
    work = _stopped(cache, key, 3, [])
    assert partial_problem(work, key, SHAPE, SCHEDULE) is None
    assert partial_problem(work, key, (10, 4), SCHEDULE) == "made with another shape or batch size"
    assert partial_problem(work, key, SHAPE, Schedule(2, 2, 7)) == "made with another shape or batch size"


def test_nothing_is_kept_when_no_group_was_recorded(tmp_path: Path) -> None:
    log: list[str] = []
    cache = EmbeddingCache(tmp_path, log.append)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit):
        with cache.writer(cache.key(model="f"), SHAPE, {}, SCHEDULE):
            os.kill(os.getpid(), signal.SIGTERM)  # raised here as SystemExit, not a death
    assert not list(tmp_path.iterdir()) and not log
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the encode's only


def test_schedule_groups_follow_batches_within_sort_chunks() -> None:
    assert list(SCHEDULE.group_sizes(10)) == [4, 2, 4]
    assert list(Schedule(batch_size=4, every=2, chunk=40).group_sizes(90)) == [8] * 5 + [8] * 5 + [8, 2]
    assert Schedule.of(64, 100_000) == Schedule(64, 16, 100_000) and Schedule.of(5000, 10).every == 1


# --- cache ls and prune -----------------------------------------------------------------------

def test_prune_removes_a_dead_processs_partial_and_leaves_a_live_ones(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "embeddings")
    dead = _stopped(cache, cache.key(model="dead"), 1, [])
    done = subprocess.Popen(["true"])
    done.wait()
    dead = dead.rename(dead.with_name(dead.name.replace(f"-{os.getpid()}-", f"-{done.pid}-")))
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        live = _stopped(cache, cache.key(model="live"), 1, [])
        live = live.rename(live.with_name(live.name.replace(f"-{os.getpid()}-", f"-{sleeper.pid}-")))
        listed = CliRunner().invoke(app, ["cache", "ls", "--cache-dir", str(tmp_path), "--format", "json"])
        states = {item["paths"][0]: (item["state"], item["what"]) for item in json.loads(listed.stdout)}
        assert states == {str(dead): ("stale", "resumable encode, 4 of 10 rows"),
                          str(live): ("in progress", "resumable encode, 4 of 10 rows")}
        pruned = CliRunner().invoke(app, ["cache", "prune", "--cache-dir", str(tmp_path)])
        assert pruned.exit_code == 0, pruned.output
        assert not dead.exists() and (live / "vectors.npy").is_file()
        assert "left 1 write in progress alone" in pruned.stdout and "left by a dead process" in pruned.stdout
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not list((tmp_path / "embeddings" / ".damaged").iterdir())


def test_prune_help_says_it_removes_resumable_partials() -> None:
    result = CliRunner().invoke(app, ["cache", "prune", "--help"], env={"COLUMNS": "200"})
    assert "partial corpus embeddings" in result.stdout and "from row 0" in result.stdout
