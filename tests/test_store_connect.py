"""Reading a results store that may not be written: a read-only file, a read-only folder, old schemas.

Every read command (leaderboard, ls, compare, plot, check, export-run) must work on such a store
and leave it exactly as it was. Root ignores file permissions, so as root the refusals SQLite
meets on a read-only share are reached two ways: forced (the fallback logic, in this process) and
for real, in a child process run as the unprivileged user `nobody`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from harness.cli import app
from harness.errors import StoreError
from harness.store import (
    READABLE_FROM,
    SCHEMA_VERSION,
    open_store,
    open_store_readonly,
    schema_version,
    write_run,
    write_training_log,
)
from harness.store import connect
from test_check import RECIPE  # the gate recipe: bm25 and zero-shot on cranfield
from test_store import make_experiment, make_run, store_at_version

REPO = Path(__file__).resolve().parent.parent
NOBODY = 65534

EXPECT = """
recipe = "gate.toml"
[[expect]]
variant = "bm25"
collection = "cranfield"
index = "bm25"
metric = "ndcg@10"
value = 0.4
"""
# Every read command, with its outputs in {out}, never beside the store.
READ_COMMANDS = {
    "leaderboard": ["leaderboard", "--format", "json"],
    "ls": ["ls"],
    "compare": ["compare", "--format", "json"],
    "plot": ["plot", "--out", "{out}/plots", "--metrics", "ndcg@10"],
    "check": ["check", "{expect}"],
    "export-run": ["export-run", "bm25", "cranfield", "-o", "{out}/bm25.trec"],
}


def gate_run(variant: str, index: str, value: float, **changes):
    offsets = (-0.02, -0.01, 0.01, 0.02)  # mean 0, so the stored mean is `value`
    per_query = {m: {f"q{q}": value + d * (1 + value) for q, d in enumerate(offsets)} for m in ("ndcg@10", "mrr@10")}
    return make_run("gate", variant, index_factory=index, collection="cranfield", n_queries=4,
                    kind="bm25" if variant == "bm25" else "zero-shot", model=None if variant == "bm25" else {"m": 1},
                    metrics={m: value for m in per_query}, query_metrics=per_query,
                    index_stats={} if variant == "bm25" else {"bytes_per_doc": 64.0 if index == "PQ8" else 1536.0},
                    **changes)


def build_store(folder: Path) -> Path:
    """A small complete store: BM25 and a dense variant on two indexes, with a training log; seed 42,
    the gate recipe's (which `check` reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "drbench.db"
    db = open_store(path)
    write_training_log(db, "gate", "zero-shot", [{"step": s, "loss": 1.0 / s, "lr": 1e-5} for s in range(1, 4)],
                       seed=42)
    for variant, index, value in (("bm25", "bm25", 0.4), ("zero-shot", "Flat", 0.5), ("zero-shot", "PQ8", 0.45)):
        write_run(db, make_experiment("gate", seed=42), gate_run(variant, index, value))
    db.close()
    return path


def write_expectations(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gate.toml").write_text(RECIPE)
    (folder / "gate.expect.toml").write_text(EXPECT)
    return folder / "gate.expect.toml"


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file in `folder`: size, mtime and content hash."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.iterdir())}


def make_read_only(path: Path) -> None:
    for file in path.parent.iterdir():
        file.chmod(0o444)
    path.parent.chmod(0o555)


def make_writable(folder: Path) -> None:
    folder.chmod(0o755)
    for file in folder.iterdir():
        file.chmod(0o644)


def command(name: str, store: Path, out: Path, expect: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)  # an output's folder must exist (harness/cli/output.py)
    return [a.format(out=out, expect=expect) for a in READ_COMMANDS[name]] + ["--store", str(store)]


def invoke(args: list[str]) -> Result:
    result = CliRunner().invoke(app, args)
    gc.collect()  # the CLI drops its connection when the command returns; collect it now
    return result


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def published(tmp_path: Path) -> Iterator[Path]:
    """A store with its file read-only (444) in a read-only folder (555), as on a published share."""
    store = build_store(tmp_path / "share")
    make_read_only(store)
    yield store
    make_writable(store.parent)


@pytest.fixture
def expect(tmp_path: Path) -> Path:
    return write_expectations(tmp_path / "gate")


def refuse_unless_immutable(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make SQLite's refusal in a read-only folder happen whatever this process may do; return the URIs tried."""
    tried: list[str] = []
    probe = connect._probe

    def refusing(uri: str) -> sqlite3.Connection:
        tried.append(uri)
        if "immutable=1" not in uri:
            exc = sqlite3.OperationalError("attempt to write a readonly database")
            exc.sqlite_errorcode, exc.sqlite_errorname = 1544, "SQLITE_READONLY_DIRECTORY"
            raise exc
        return probe(uri)

    monkeypatch.setattr(connect, "_probe", refusing)
    return tried


# -- every read command on a read-only store ------------------------------------------------

@pytest.mark.parametrize("name", list(READ_COMMANDS))
def test_read_command_leaves_a_read_only_store_as_it_was(published: Path, expect: Path, tmp_path: Path,
                                                         name: str) -> None:
    before = snapshot(published.parent)
    result = invoke(command(name, published, tmp_path / "out", expect))
    assert result.exit_code == 0, result.output
    assert snapshot(published.parent) == before  # no -wal/-shm left, not a byte or mtime changed


@pytest.mark.parametrize("name", list(READ_COMMANDS))
def test_read_command_falls_back_to_immutable(published: Path, expect: Path, tmp_path: Path, name: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    tried = refuse_unless_immutable(monkeypatch)
    before = snapshot(published.parent)
    result = invoke(command(name, published, tmp_path / "out", expect))
    assert result.exit_code == 0, result.output
    # mode=rw (root may write the file) or not, then mode=ro, and only then immutable=1
    assert [uri.split("?")[1] for uri in tried][-2:] == ["mode=ro", "mode=ro&immutable=1"]
    assert snapshot(published.parent) == before


def test_read_commands_print_the_stored_results(published: Path, expect: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = json.loads(invoke(command("leaderboard", published, out, expect)).stdout)
    assert {(r["variant"], r["index"]) for r in rows} == {("bm25", "bm25"), ("zero-shot", "Flat"),
                                                          ("zero-shot", "PQ8")}
    assert "1 OK" in invoke(command("check", published, out, expect)).stdout
    assert "zero-shot" in invoke(command("compare", published, out, expect)).stdout
    for name in ("export-run", "plot"):
        assert invoke(command(name, published, out, expect)).exit_code == 0
    assert len((out / "bm25.trec").read_text().splitlines()) == 4 * 5
    assert {p.name for p in (out / "plots").iterdir()} == {"gate-training.png", "cranfield-metrics.png",
                                                           "cranfield-size.png"}


def test_read_connection_refuses_writes(published: Path) -> None:
    db = open_store_readonly(published)
    with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
        db.execute("DELETE FROM runs")
    db.close()


def test_read_only_open_keeps_foreign_keys_and_wal(published: Path) -> None:
    db = open_store_readonly(published)
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA query_only").fetchone()[0] == 1
    db.close()
    assert published.read_bytes()[18:20] == b"\x02\x02"  # the header still says WAL


# -- commits still in the WAL --------------------------------------------------------------

def copy_with_open_wal(folder: Path, *, shm: bool) -> Path:
    """A copy of a store taken while its writer holds a commit in the -wal (CI artifacts of a live run)."""
    origin = build_store(folder.parent / f"{folder.name}-origin")
    db = open_store(origin)
    db.execute("PRAGMA wal_autocheckpoint = 0")
    write_run(db, make_experiment("gate", seed=42), gate_run("late", "Flat", 0.9))
    folder.mkdir()
    for suffix in ("", "-wal", "-shm") if shm else ("", "-wal"):
        shutil.copyfile(f"{origin}{suffix}", folder / f"drbench.db{suffix}")
    db.close()
    assert (folder / "drbench.db-wal").stat().st_size > 0
    return folder / "drbench.db"


def leaderboard_variants(store: Path) -> set[str]:
    result = invoke(["leaderboard", "--format", "json", "--store", str(store)])
    assert result.exit_code == 0, result.output
    return {r["variant"] for r in json.loads(result.stdout)}


def test_commits_in_the_wal_are_read(tmp_path: Path) -> None:
    store = copy_with_open_wal(tmp_path / "copy", shm=False)
    assert "late" in leaderboard_variants(store)


def test_commits_in_the_wal_of_a_read_only_folder_are_an_error_not_missed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = copy_with_open_wal(tmp_path / "copy", shm=False)
    refuse_unless_immutable(monkeypatch)
    assert_one_line_error(invoke(["leaderboard", "--store", str(store)]), "drbench.db-wal",
                          "never checkpointed", "copy drbench.db with drbench.db-wal to a writable folder")


# -- schema versions ---------------------------------------------------------------------

def old_store(path: Path, version: int) -> Path:
    """A store at `version` holding one run, inserted by hand (write_run needs the current columns)."""
    db = store_at_version(path, version)
    db.execute("INSERT INTO experiments (name) VALUES ('gate')")
    db.execute("INSERT INTO runs (experiment, variant, collection, index_factory, run_key) "
               "VALUES ('gate', 'bm25', 'cranfield', 'bm25', 'k')")
    db.execute("INSERT INTO metrics VALUES (1, 'ndcg@10', 0.4)")
    db.close()
    return path


def test_readable_older_store_is_read_without_migrating(tmp_path: Path) -> None:
    store = old_store(tmp_path / "v.db", READABLE_FROM)
    before = snapshot(tmp_path)
    assert leaderboard_variants(store) == {"bm25"}
    assert snapshot(tmp_path) == before
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == READABLE_FROM


def test_store_too_old_to_read_is_upgraded_where_it_may_be_written(tmp_path: Path) -> None:
    store = old_store(tmp_path / "v1.db", READABLE_FROM - 1)
    assert leaderboard_variants(store) == {"bm25"}
    db = open_store_readonly(store)
    assert schema_version(db) == SCHEMA_VERSION
    db.close()


def test_store_too_old_to_read_and_read_only_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = old_store(tmp_path / "v1.db", READABLE_FROM - 1)
    before = snapshot(tmp_path)

    def read_only(db, where):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(connect, "migrate", read_only)
    assert_one_line_error(invoke(["ls", "--store", str(store)]), f"schema version {READABLE_FROM - 1}",
                          "cannot be upgraded here (attempt to write a readonly database)",
                          "once with write access")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("content, fragment", [
    (None, "is not a drbench results store"),
    (b"this is not sqlite" * 100, "cannot open results store"),
    ("newer", "knows only up to"),
], ids=["empty-sqlite", "not-sqlite", "newer-schema"])
def test_what_cannot_be_read_is_a_store_error(tmp_path: Path, content: bytes | str | None, fragment: str) -> None:
    path = tmp_path / "x.db"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE t (x)")
            if content == "newer":
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=fragment):
        open_store_readonly(path)
    assert_one_line_error(invoke(["ls", "--store", str(path)]), fragment)


def test_missing_store_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no results store at"):
        open_store_readonly(tmp_path / "none.db")
    with pytest.raises(StoreError, match="is a folder; pass the store file"):
        open_store_readonly(tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- for real, as a user file permissions apply to -----------------------------------------

_CHILD = textwrap.dedent("""
    import gc, json, sys
    from typer.testing import CliRunner
    from harness.cli import app
    answers = []
    for name, args in json.loads(sys.argv[1]):
        result = CliRunner().invoke(app, args)
        gc.collect()
        answers.append({"name": name, "exit_code": result.exit_code, "stdout": result.stdout,
                        "stderr": result.stderr, "exception": repr(result.exception)})
    print(json.dumps(answers))
""")


def _unprivileged(env: dict[str, str]) -> tuple[list[str], dict]:
    """The interpreter and subprocess arguments of a child that file permissions apply to.

    Not root: this interpreter as this user. Root: uid 65534 (nobody), with an interpreter it may
    run: a virtualenv's python often points into /root, which nobody cannot enter, so the system
    python of the same version is tried too, given this environment's packages on PYTHONPATH.
    """
    if os.geteuid() != 0:
        return [sys.executable], {"env": env}
    kwargs = {"user": NOBODY, "group": NOBODY, "extra_groups": [], "env": env}
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, getattr(sys, "_base_executable", sys.executable),
                  shutil.which(f"python{version}"), f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    check = f"import sys, harness.cli, numpy; assert sys.version.startswith('{version}.')"
    for exe in dict.fromkeys(c for c in candidates if c):
        try:
            done = subprocess.run([exe, "-c", check], capture_output=True, timeout=60, **kwargs)
        except OSError:
            continue
        if done.returncode == 0:
            return [exe], kwargs
    pytest.skip(f"running as root and no python {version} that uid {NOBODY} may run with this environment")


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder outside pytest's 0700 tmp tree, so that `nobody` can reach it; removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="drbench-readonly-"))
    base.chmod(0o755)
    yield base
    for folder, _, files in os.walk(base):
        Path(folder).chmod(0o755)
        for file in files:
            (Path(folder) / file).chmod(0o644)
    shutil.rmtree(base)


def unprivileged_cases(base: Path) -> dict[str, Path]:
    """One store per case, each in its own folder under `base`, as the unprivileged reader meets it."""
    file_only = build_store(base / "file")  # the file read-only, its folder the reader's own
    file_only.chmod(0o444)
    if os.geteuid() == 0:
        os.chown(file_only.parent, NOBODY, NOBODY)
    (base / "old").mkdir()
    stores = {"file": file_only, "folder": build_store(base / "folder"),
              "wal+shm": copy_with_open_wal(base / "walshm", shm=True),
              "wal": copy_with_open_wal(base / "wal", shm=False),
              "old": old_store(base / "old" / "drbench.db", READABLE_FROM - 1)}
    for name in ("folder", "wal+shm", "wal", "old"):
        make_read_only(stores[name])
    return stores


def test_read_only_store_for_real_as_an_unprivileged_user(shared_folder: Path) -> None:
    base = shared_folder
    out = base / "out"
    out.mkdir()
    out.chmod(0o777)  # the child's plots, TREC file and matplotlib cache
    expect = write_expectations(base / "gate")
    # This process's import path, so another interpreter of the same version finds the same packages.
    path = [str(REPO), *(p for p in sys.path if p and Path(p).is_dir())]
    env = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(path)), "PATH": os.environ.get("PATH", ""),
           "HOME": str(out), "MPLCONFIGDIR": str(out / "mpl")}
    argv, kwargs = _unprivileged(env)
    stores = unprivileged_cases(base)
    before = {name: snapshot(store.parent) for name, store in stores.items()}
    calls = [(f"{case} {name}", command(name, stores[case], out, expect))
             for case in ("file", "folder") for name in READ_COMMANDS]
    calls += [(f"{case} leaderboard", command("leaderboard", stores[case], out, expect))
              for case in ("wal+shm", "wal", "old")]
    done = subprocess.run([*argv, "-c", _CHILD, json.dumps(calls)], capture_output=True, text=True, timeout=300,
                          cwd=out, **kwargs)
    assert done.returncode == 0, done.stderr
    answers = {a["name"]: a for a in json.loads(done.stdout)}

    for case in ("file", "folder"):
        for name in READ_COMMANDS:
            answer = answers[f"{case} {name}"]
            assert answer["exit_code"] == 0, answer
    # A read-only folder: not a file added, changed or touched.
    for case in ("folder", "wal+shm", "wal", "old"):
        assert snapshot(stores[case].parent) == before[case], case
    # A read-only file in a writable folder: SQLite's mode=ro reader may leave an empty -wal and
    # its -shm index there (documented in harness/store/connect.py); the store itself is untouched.
    after = snapshot(stores["file"].parent)
    assert after["drbench.db"] == before["file"]["drbench.db"]
    assert set(after) <= {"drbench.db", "drbench.db-wal", "drbench.db-shm"}
    assert after.get("drbench.db-wal", (0,))[0] == 0
    # Commits still in the WAL are read when its index exists, refused (not missed) when not.
    assert "late" in {r["variant"] for r in json.loads(answers["wal+shm leaderboard"]["stdout"])}
    for case, fragment in (("wal", "never checkpointed"), ("old", "cannot be upgraded here")):
        answer = answers[f"{case} leaderboard"]
        assert answer["exit_code"] == 2 and fragment in answer["stderr"], answer
        assert len(answer["stderr"].strip().splitlines()) == 1
    assert stat.S_IMODE(stores["folder"].parent.stat().st_mode) == 0o555
