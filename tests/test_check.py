"""drbench check: expectations files, OK / OKish / FAIL, exit codes, one-line config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.store import ExperimentRecord, RunRecord, open_store, write_run
from leaderboard.check import load_expectations, status

RECIPE = """
[experiment]
name = "gate"

[data]
eval = ["cranfield"]

[eval]
metrics = ["ndcg@10", "mrr@10"]

[variant.bm25]
kind = "bm25"

[variant.zero-shot]
kind = "zero-shot"
"""

ROWS = """
recipe = "gate.toml"
tolerance = 0.01

[[expect]]
variant = "bm25"
collection = "cranfield"
index = "bm25"
metric = "ndcg@10"
value = {bm25}

[[expect]]
variant = "bm25"
collection = "cranfield"
index = "bm25"
metric = "mrr@10"
value = 0.5
tolerance = 0.001

[[expect]]
variant = "zero-shot"
collection = "cranfield"
index = "Flat"
metric = "ndcg@10"
value = 0.4
"""
DUPLICATE = """
[[expect]]
variant = "bm25"
collection = "cranfield"
index = "bm25"
metric = "ndcg@10"
value = 0.3
"""


def store_runs(path: Path, runs: dict[tuple[str, str], dict[str, float]]) -> Path:
    db = open_store(path)
    experiment = ExperimentRecord(name="gate", recipe_path=None, recipe_text="", recipe_hash="h", git_commit=None,
                                  git_dirty=False, packages={}, python="3.11", platform="test", seed=42,
                                  started_at="t")
    for (variant, index), metrics in runs.items():
        write_run(db, experiment, RunRecord(
            experiment="gate", variant=variant, kind=variant, collection="cranfield", index_factory=index,
            run_key="k", model=None, depth=10, n_docs=10, started_at="t", finished_at="t", metrics=metrics))
    db.close()
    return path


@pytest.fixture
def setup(tmp_path: Path):
    (tmp_path / "gate.toml").write_text(RECIPE)
    store = store_runs(tmp_path / "gate.db", {("bm25", "bm25"): {"ndcg@10": 0.3, "mrr@10": 0.5},
                                              ("zero-shot", "Flat"): {"ndcg@10": 0.4, "mrr@10": 0.6}})

    def run(bm25: float = 0.3, text: str | None = None):
        expect = tmp_path / "gate.expect.toml"
        expect.write_text(text if text is not None else ROWS.format(bm25=bm25))
        return CliRunner().invoke(app, ["check", str(expect), "--store", str(store)])

    run.store = store
    return run


def statuses(output: str) -> list[str]:
    rows = [line for line in output.splitlines() if "│" in line]  # table rows, not the count line
    return [word for line in rows for word in line.replace("│", " ").split() if word in ("OK", "OKish", "FAIL")]


def test_matching_values_pass(setup) -> None:
    result = setup(0.30004)
    assert result.exit_code == 0, result.output
    assert statuses(result.output) == ["OK", "OK", "OK"]
    assert "3 OK, 0 OKish, 0 FAIL" in result.output


def test_inside_tolerance_is_okish(setup) -> None:
    result = setup(0.305)
    assert result.exit_code == 0, result.output
    assert statuses(result.output) == ["OKish", "OK", "OK"]


def test_outside_tolerance_fails_with_exit_1(setup) -> None:
    result = setup(0.32)
    assert result.exit_code == 1, result.output
    assert statuses(result.output) == ["FAIL", "OK", "OK"]


def test_moved_stored_value_fails(setup) -> None:
    store_runs(setup.store, {("bm25", "bm25"): {"ndcg@10": 0.3, "mrr@10": 0.502}})  # beyond 0.001
    result = setup(0.3)
    assert result.exit_code == 1
    assert statuses(result.output)[:2] == ["OK", "FAIL"]


def test_missing_run_fails(setup, tmp_path: Path) -> None:
    store_runs(tmp_path / "other.db", {("bm25", "bm25"): {"ndcg@10": 0.3, "mrr@10": 0.5}})
    expect = tmp_path / "gate.expect.toml"
    expect.write_text(ROWS.format(bm25=0.3))
    result = CliRunner().invoke(app, ["check", str(expect), "--store", str(tmp_path / "other.db")])
    assert result.exit_code == 1
    assert statuses(result.output) == ["OK", "OK", "FAIL"] and "missing" in result.output


def test_rows_on_a_compressed_index_get_the_compressed_tolerance(tmp_path: Path) -> None:
    from leaderboard.check import load_expectations

    (tmp_path / "gate.toml").write_text(RECIPE.replace('metrics = ["ndcg@10", "mrr@10"]',
                                                       'metrics = ["ndcg@10", "mrr@10"]\nindexes = ["Flat", "PQ8"]'))
    row = ('[[expect]]\nvariant = "zero-shot"\ncollection = "cranfield"\nindex = "{index}"\nmetric = "ndcg@10"\n'
           'value = 0.4\n')
    expect = tmp_path / "gate.expect.toml"
    expect.write_text('recipe = "gate.toml"\ntolerance = 0.01\n' + row.format(index="Flat") + row.format(index="PQ8")
                      + row.format(index="PQ8").replace("ndcg@10", "mrr@10") + "tolerance = 0.005\n")
    flat, pq, own = load_expectations(expect).rows
    assert (flat.tolerance, pq.tolerance, own.tolerance) == (0.01, 0.02, 0.005)  # a row's own wins
    text = expect.read_text().replace("tolerance = 0.01\n", "tolerance = 0.01\ncompressed_tolerance = 0.03\n", 1)
    expect.write_text(text)
    assert load_expectations(expect).rows[1].tolerance == 0.03


def test_junit_and_markdown_report_every_row(setup, tmp_path: Path) -> None:
    from junitparser import Failure, JUnitXml

    setup(bm25=0.3)
    expect = tmp_path / "gate.expect.toml"
    expect.write_text(ROWS.format(bm25=0.25))  # the first row fails: 0.3 stored, 0.25 expected, tolerance 0.01
    report = tmp_path / "check.xml"
    result = CliRunner().invoke(app, ["check", str(expect), "--store", str(setup.store), "--junit", str(report),
                                      "--format", "markdown"])
    assert result.exit_code == 1
    assert "| bm25 | 42 | cranfield | bm25 | ndcg@10 | 0.2500 | 0.3000 | +0.0500 | 0.01 | **FAIL** |" in result.stdout
    assert result.stdout.rstrip().endswith("2 OK, 0 OKish, 1 FAIL")
    suite = next(iter(JUnitXml.fromfile(str(report))))
    cases = {case.name: case for case in suite}
    assert suite.tests == 3 and suite.failures == 1 and set(cases) == {"bm25 ndcg@10", "bm25 mrr@10",
                                                                        "zero-shot ndcg@10"}
    [failure] = [r for r in cases["bm25 ndcg@10"].result if isinstance(r, Failure)]
    assert failure.message == "expected 0.250000, stored 0.300000 (seed 42), tolerance 0.01, diff +0.050000: FAIL"
    assert cases["zero-shot ndcg@10"].classname == "cranfield.Flat" and cases["zero-shot ndcg@10"].is_passed


def test_an_unwritable_junit_file_is_one_line_before_any_work(setup, tmp_path: Path) -> None:
    setup()
    expect = tmp_path / "gate.expect.toml"
    result = CliRunner().invoke(app, ["check", str(expect), "--store", str(setup.store), "--junit",
                                      str(tmp_path / "no" / "such" / "check.xml")])
    assert result.exit_code == 2 and "--junit" in result.output and "does not exist" in result.output


def test_status_boundaries() -> None:
    assert status(0.30009, 0.3, 0.01) == "OK"
    assert status(0.3002, 0.3, 0.01) == "OKish"
    assert status(0.31, 0.3, 0.01) == "OKish"
    assert status(0.3101, 0.3, 0.01) == "FAIL"
    assert status(None, 0.3, 0.01) == "FAIL"
    assert status(0.30005, 0.3, 0.0) == "FAIL"  # a zero tolerance demands the same number


@pytest.mark.parametrize("edit, fragments", [
    (lambda t: t.replace('metric = "mrr@10"', 'metric = "mrr@1O"'),
     ['[expect.2] metric = "mrr@1O": not a metric of', 'did you mean "mrr@10"?']),
    (lambda t: t.replace('variant = "zero-shot"', 'variant = "zero-shto"'),
     ['[expect.3] variant = "zero-shto"', 'did you mean "zero-shot"?']),
    (lambda t: t.replace('index = "Flat"', 'index = "PQ8"'), ['[expect.3] index = "PQ8"', "(Flat)"]),
    (lambda t: t.replace("value = 0.4", 'value = "0.4"'), ['[expect.3] value = "0.4": expected float, got str']),
    (lambda t: t.replace("value = 0.4", "value = 0.4\nvalu = 1"), ["[expect.3] valu: unknown key"]),
    (lambda t: t.replace("tolerance = 0.01", "tolerance = -1"), ["[top level] tolerance = -1.0: must be >= 0"]),
    (lambda t: t.replace('"gate.toml"', '"nope.toml"'), ['[top level] recipe = "nope.toml": no such recipe file']),
    (lambda t: t + DUPLICATE, ["[expect.4]: repeats [expect.1]"]),
    (lambda t: t.replace("[[expect]]", "[[expect]", 1), ["invalid TOML"]),
    (lambda t: t.split("[[expect]]")[0], ["declare at least one [[expect]] table"]),
], ids=["metric", "variant", "index", "type", "unknown-key", "tolerance", "recipe", "duplicate", "toml", "no-rows"])
def test_malformed_expectations_exit_2_with_one_line(setup, edit, fragments: list[str]) -> None:
    result = setup(text=edit(ROWS.format(bm25=0.3)))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "gate.expect.toml" in lines[0], result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_shipped_smoke_expectations_are_valid() -> None:
    expected = load_expectations(Path(__file__).resolve().parent.parent / "recipes" / "smoke.expect.toml")
    assert expected.recipe.experiment.name == "smoke"
    assert {row.variant for row in expected.rows} == {"bm25", "zero-shot", "adore"}
