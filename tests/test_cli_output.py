"""The one output-path check (`harness/cli/output.py`) behind every command that writes a file:
a folder, a missing folder, an unwritable path or the store itself is one line and exit 2, before
any work, and the store is never overwritten."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.store import ExperimentRecord, RunRecord, open_store, write_run
from test_check import RECIPE, ROWS

# Each command that writes a file, with {out} where its output path goes and {store} the store.
WRITERS = {
    "export-run": ["export-run", "bm25", "cranfield", "-o", "{out}", "--store", "{store}"],
    "compare": ["compare", "--store", "{store}", "-o", "{out}"],
    "check": ["check", "{expect}", "--store", "{store}", "--junit", "{out}"],
    "report": ["report", "--store", "{store}", "-o", "{out}"],
}
BAD_FILES = {
    "folder": ("{tmp}", "is a folder; pass a file name such as"),
    "missing-folder": ("{tmp}/no/such/out.txt", "does not exist; create the folder"),
    "under-a-file": ("{expect}/out.txt", "is a file, not a folder; create the folder"),
    "unwritable": ("/proc/drbench-output.txt", "cannot write"),
    "device": ("/dev/null", "not a regular file"),
    "store": ("{store}", "is the results store itself"),
    "store-by-link": ("{link}", "is the results store itself"),
}


def store_runs(path: Path) -> Path:
    """BM25 and zero-shot on two queries, with per-query values and rankings, as `check` expects."""
    db = open_store(path)
    experiment = ExperimentRecord(name="gate", recipe_path=None, recipe_text="", recipe_hash="h", git_commit=None,
                                  git_dirty=False, packages={}, python="3.11", platform="test", seed=42,
                                  started_at="t")
    for variant, index, value in (("bm25", "bm25", 0.3), ("zero-shot", "Flat", 0.4)):
        per_query = {"q1": value - 0.1, "q2": value + 0.1}
        write_run(db, experiment, RunRecord(
            experiment="gate", variant=variant, kind=variant, collection="cranfield", index_factory=index,
            run_key="k", model=None, depth=10, n_docs=10, started_at="t", finished_at="t",
            metrics={"ndcg@10": value, "mrr@10": value + 0.2},
            query_metrics={"ndcg@10": per_query, "mrr@10": {q: v + 0.2 for q, v in per_query.items()}},
            results={"q1": [("d1", 2.0), ("d2", 1.0)], "q2": [("d2", 2.0)]}))
    db.close()
    return path


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "gate.toml").write_text(RECIPE)
    expect = tmp_path / "gate.expect.toml"
    expect.write_text(ROWS.format(bm25=0.3))
    store = store_runs(tmp_path / "gate.db")
    (tmp_path / "link.db").symlink_to(store)
    return {"tmp": str(tmp_path), "store": str(store), "expect": str(expect), "link": str(tmp_path / "link.db")}


def invoke(template: list[str], paths: dict[str, str], out: str):
    values = {**paths, "out": out.format(**paths)}
    return CliRunner().invoke(app, [arg.format(**values) for arg in template])


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def assert_refused(result, fragment: str, flag: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output and flag in lines[0] and fragment in lines[0], lines[0]


@pytest.mark.parametrize("command", list(WRITERS))
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_output_file_is_one_line_and_the_store_survives(paths: dict[str, str], command: str,
                                                               case: str) -> None:
    before = digest(paths["store"])
    out, fragment = BAD_FILES[case]
    template = WRITERS[command]
    result = invoke(template, paths, out)
    assert_refused(result, fragment, template[template.index("{out}") - 1])
    assert digest(paths["store"]) == before


@pytest.mark.parametrize("command", list(WRITERS))
def test_a_good_output_file_is_written(paths: dict[str, str], command: str) -> None:
    result = invoke(WRITERS[command], paths, "{tmp}/written.out")
    assert result.exit_code == 0, result.output
    assert (Path(paths["tmp"]) / "written.out").is_file()


@pytest.mark.parametrize("out, fragment", [
    ("{tmp}/gate.toml", "is a file, not a folder"),
    ("{store}/plots", "is a file, not a folder"),
    ("/proc/drbench-plots", "cannot write"),
    ("{store}", "is the results store itself; pass --out another folder"),
], ids=["file", "under-a-file", "unwritable", "store"])
def test_plot_out_must_be_a_folder_it_can_write(paths: dict[str, str], out: str, fragment: str) -> None:
    before = digest(paths["store"])
    assert_refused(invoke(["plot", "--store", "{store}", "--out", "{out}"], paths, out), fragment, "--out")
    assert digest(paths["store"]) == before


def test_check_never_writes_junit_over_its_expectations_file(paths: dict[str, str]) -> None:
    before = digest(paths["expect"])
    result = invoke(WRITERS["check"], paths, "{expect}")
    assert_refused(result, "is the expectations file, which this command reads", "--junit")
    assert digest(paths["expect"]) == before


def test_plot_creates_a_missing_out_folder(paths: dict[str, str]) -> None:
    result = invoke(["plot", "--store", "{store}", "--out", "{out}", "-m", "ndcg@10"], paths, "{tmp}/plots/of/today")
    assert result.exit_code == 0, result.output
    assert (Path(paths["tmp"]) / "plots" / "of" / "today").is_dir()  # as its help says: created if missing
