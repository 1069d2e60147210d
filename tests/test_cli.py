"""`drbench` through typer's CliRunner: validate, leaderboard, ls, export-run, and exit codes.

The store the read-only commands look at comes from the end-to-end run of test_run.py
(run once per session, whichever module asks first).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from harness.cli import app
from test_run import EndToEnd, end_to_end

REPO = Path(__file__).resolve().parent.parent
METRICS = {"ndcg@10", "mrr@10", "recall@100"}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_model: Path) -> EndToEnd:
    return end_to_end(tmp_path_factory, mirror, tiny_model)


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables at 200 columns: at CliRunner's default 80, rich wraps "zero-shot" inside a cell."""
    from harness.cli import common

    monkeypatch.setattr(common.out, "width", 200)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("validate", "run", "leaderboard", "ls", "export-run"):
        assert command in result.output


@pytest.mark.parametrize("command", [[], ["run"], ["leaderboard"], ["cache", "verify"]])
def test_help_shows_no_value_after_a_flag(command: list[str]) -> None:
    result = invoke(*command, "--help")  # typer alone prints `--help <bool>`, as if it took a value
    assert result.exit_code == 0 and "--help" in result.output and "<bool>" not in result.output


def test_check_takes_runs_options_as_run_declares_them() -> None:
    """`check --run` runs a recipe: the options it passes on are run's own, declared once."""
    import typer.main

    commands = typer.main.get_command(app).commands
    declared = {name: {p.name: (tuple(p.opts), p.envvar, p.help, p.default) for p in commands[name].params}
                for name in ("run", "check")}
    shared = ("mirror", "force", "store", "cache_dir", "device", "precision")
    assert {n: declared["check"][n] for n in shared} == {n: declared["run"][n] for n in shared}


def test_the_default_store_is_the_recipe_keys_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import fields

    from harness.cli.common import DEFAULT_STORE, STORE_ENV
    from harness.recipe.model import ExperimentConfig

    assert DEFAULT_STORE == next(f.default for f in fields(ExperimentConfig) if f.name == "store")
    monkeypatch.chdir(tmp_path)
    result = CliRunner(env={STORE_ENV: None}).invoke(app, ["ls"])
    assert result.exit_code == 2 and DEFAULT_STORE in result.stderr, result.output


# --- validate and run on bad recipes --------------------------------------------------------

def _recipe(folder: Path, tiny_model: Path, change: tuple[str, str] | None) -> Path:
    text = textwrap.dedent(f"""\
        [experiment]
        name = "cli"
        store = "{folder}/drbench.db"
        [model]
        base = "{tiny_model}"
        [data]
        eval = ["cranfield"]
        [eval]
        indexes = ["Flat"]
        [variant.bm25]
        kind = "bm25"
        [variant.zs]
        kind = "zero-shot"
        """)
    if change:
        assert change[0] in text
        text = text.replace(*change)
    path = folder / "recipe.toml"
    path.write_text(text)
    return path


def test_validate_ok(tmp_path: Path, tiny_model: Path) -> None:
    result = invoke("validate", _recipe(tmp_path, tiny_model, None))
    assert result.exit_code == 0, result.output
    assert "ok — 2 variants [bm25 (bm25), zs (zero-shot)]" in result.stdout
    assert not (tmp_path / "drbench.db").exists()


def test_validate_counts_in_the_singular(tmp_path: Path, tiny_model: Path) -> None:
    recipe = _recipe(tmp_path, tiny_model, ('[variant.zs]\nkind = "zero-shot"\n', ""))
    result = invoke("validate", "--offline", recipe)
    assert result.exit_code == 0, result.output
    assert "ok — 1 variant [bm25 (bm25)] x 1 collection x 1 index: 1 run" in result.stdout, result.stdout


TRAINED = ('[variant.zs]\nkind = "zero-shot"\n', '[variant.zs]\nkind = "zero-shot"\n[variant.star]\nkind = "star"\n')


@pytest.mark.parametrize("dev", ["", '\ndev = "vaswani"'], ids=["no-dev", "named-dev"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_training_on_an_evaluation_split_warns_in_one_line(tmp_path: Path, tiny_model: Path,
                                                           monkeypatch: pytest.MonkeyPatch, command: str,
                                                           dev: str) -> None:
    """With a dev split too: choosing on dev does not stop the models learning the test queries."""
    recipe = _recipe(tmp_path, tiny_model, TRAINED)
    recipe.write_text(recipe.read_text().replace('eval = ["cranfield"]',
                                                 'train = "cranfield"\neval = ["cranfield"]' + dev))
    if command == "run":  # what is checked here is the line before any work, not the work
        import harness.pipeline
        from harness.cli import recipes

        monkeypatch.setattr(harness.pipeline, "run_recipe", lambda *args: None)
        monkeypatch.setattr(recipes, "print_leaderboard", lambda *args: None)
    result = invoke(command, recipe, *(["--offline"] if command == "validate" else []))
    assert result.exit_code == 0, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("warning: ") and '[data] train = "cranfield" is also an evaluation split' in line, line
    assert "(star)" in line and "(star, zs)" not in line


def test_no_warning_when_training_on_another_split(tmp_path: Path, tiny_model: Path) -> None:
    recipe = _recipe(tmp_path, tiny_model, TRAINED)
    recipe.write_text(recipe.read_text().replace('eval = ["cranfield"]', 'train = "vaswani"\neval = ["cranfield"]'))
    result = invoke("validate", "--offline", recipe)
    assert result.exit_code == 0 and result.stderr == "", result.output


BAD = [
    pytest.param(("name =", "nmae ="), ['[experiment] nmae: unknown key; did you mean "name"?'],
                 id="unknown-key"),
    pytest.param(('"cranfield"', '"cranfeld"'), ["[data] eval", "did you mean 'cranfield'"],
                 id="unknown-collection"),
    pytest.param(('"Flat"', '"Flatt"'), ['[eval] indexes = "Flatt"', "faiss rejects"], id="bad-index"),
    pytest.param(('base = "', 'base = "/no/such/'), ["[model] base", "does not exist"],
                 id="missing-model"),
    pytest.param(("[eval]", "[eval"), ["invalid TOML"], id="invalid-toml"),
    pytest.param(('kind = "bm25"', 'kind = "bm52"'), ['did you mean "bm25"?'], id="unknown-kind"),
]


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("change, fragments", BAD)
def test_bad_recipe_exits_2_with_one_line(tmp_path: Path, tiny_model: Path, command: str,
                                          change: tuple[str, str], fragments: list[str]) -> None:
    recipe = _recipe(tmp_path, tiny_model, change)
    assert_one_line_error(invoke(command, recipe), str(recipe), *fragments)
    assert not (tmp_path / "drbench.db").exists()


@pytest.mark.parametrize("command", ["validate", "run"])
def test_missing_recipe_file(tmp_path: Path, command: str) -> None:
    assert_one_line_error(invoke(command, tmp_path / "nope.toml"), "nope.toml: no such recipe file")


def test_validate_without_a_recipe() -> None:
    assert_one_line_error(invoke("validate"), "--explain")


# --- reading a store ------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["leaderboard"], ["ls"], ["export-run", "bm25", "cranfield", "-o", "x"]])
def test_missing_store_is_a_clear_error(tmp_path: Path, command: list[str]) -> None:
    store = tmp_path / "missing.db"
    assert_one_line_error(invoke(*command, "--store", store), f"no results store at {store}", "drbench run")
    assert not store.exists()


def test_leaderboard_table_lists_every_variant(e2e: EndToEnd, wide: None) -> None:
    result = invoke("leaderboard", "--store", e2e.store)
    assert result.exit_code == 0, result.output
    assert "cranfield" in result.stdout and "225 queries" in result.stdout
    for name in ("bm25", "zero-shot", "Flat", "PQ8", *METRICS):
        assert name in result.stdout


def test_leaderboard_json(e2e: EndToEnd) -> None:
    result = invoke("leaderboard", "--store", e2e.store, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {(r["variant"], r["index"]) for r in rows} == {
        ("bm25", "bm25"), ("zero-shot", "Flat"), ("zero-shot", "PQ8")}
    for row in rows:
        assert (row["experiment"], row["collection"], row["n_queries"]) == ("e2e", "cranfield", 225)
        assert set(row["metrics"]) == METRICS and all(0 <= v <= 1 for v in row["metrics"].values())


@pytest.mark.parametrize("option, value, expected", [
    ("--collection", "cranfield", 3), ("--collection", "vaswani", 0),
    ("--experiment", "e2e", 3), ("--experiment", "other", 0)])
def test_leaderboard_filters(e2e: EndToEnd, option: str, value: str, expected: int) -> None:
    result = invoke("leaderboard", "--store", e2e.store, "--format", "json", option, value)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == expected


@pytest.mark.parametrize("recipe_text, columns", [
    ('[experiment]\nname = "d"\n', ["ndcg@10", "mrr@10", "recall@100"]),  # the declared defaults' order
    ('[eval]\nmetrics = ["recall@100", "ndcg@10", "mrr@10"]\n', ["recall@100", "ndcg@10", "mrr@10"]),
    ('[eval]\nmetrics = "mrr@10"\n', ["mrr@10", "ndcg@10", "recall@100"]),  # a lone string, then the rest sorted
], ids=["default", "listed", "lone-string"])
def test_leaderboard_columns_follow_the_recipe(tmp_path: Path, wide: None, recipe_text: str,
                                               columns: list[str]) -> None:
    from harness.store import open_store, write_run
    from test_store import make_experiment, make_run

    db = open_store(tmp_path / "s.db")
    write_run(db, make_experiment("d", recipe_text=recipe_text),
              make_run("d", metrics={"recall@100": 0.9, "mrr@10": 0.4, "ndcg@10": 0.5}))
    db.close()
    result = invoke("leaderboard", "--store", tmp_path / "s.db", "--format", "json")
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)[0]["metrics"]) == columns
    table = invoke("leaderboard", "--store", tmp_path / "s.db").stdout
    header = next(line for line in table.splitlines() if "ndcg@10" in line)
    assert sorted(columns, key=header.index) == columns, header


def test_ls_lists_experiment_and_runs(e2e: EndToEnd, wide: None) -> None:
    result = invoke("ls", "--store", e2e.store)
    assert result.exit_code == 0, result.output
    assert "e2e" in result.stdout and "experiments" in result.stdout and "runs" in result.stdout
    for name in ("bm25", "zero-shot", "Flat", "PQ8", "cranfield"):
        assert name in result.stdout


def test_ls_names_runs_as_other_commands_take_them(tmp_path: Path, wide: None) -> None:
    from harness.store import open_store, write_run
    from test_store import make_experiment, make_run

    db = open_store(tmp_path / "s.db")
    write_run(db, make_experiment("e[1]"), make_run("e[1]", "star[lr=2e-05]", collection="cranfield[holdout:0.2]"))
    db.close()
    result = invoke("ls", "--store", tmp_path / "s.db")
    assert result.exit_code == 0, result.output
    for name in ("e[1]", "star[lr=2e-05]", "cranfield[holdout:0.2]"):
        assert name in result.stdout, name
    exported = invoke("export-run", "star[lr=2e-05]", "cranfield[holdout:0.2]", "-o", tmp_path / "run.trec",
                      "--store", tmp_path / "s.db")
    assert exported.exit_code == 0, exported.output


@pytest.mark.parametrize("variant, index", [("bm25", None), ("zero-shot", "PQ8")])
def test_export_run_writes_trec_lines(e2e: EndToEnd, tmp_path: Path, variant: str,
                                      index: str | None) -> None:
    output = tmp_path / "run.trec"
    args = ["export-run", variant, "cranfield", "-o", output, "--store", e2e.store]
    result = invoke(*args, *(["--index", index] if index else []))
    assert result.exit_code == 0, result.output
    with closing(sqlite3.connect(e2e.store)) as conn:
        stored = conn.execute("SELECT COUNT(*) FROM results JOIN runs ON runs.id = run_id WHERE "
                              "variant = ? AND index_factory = ?", (variant, index or "bm25")).fetchone()[0]
    lines = output.read_text().splitlines()
    assert len(lines) == stored > 0
    ranks: dict[str, list[int]] = {}
    for line in lines:
        query_id, q0, doc_id, rank, score, tag = line.split()
        assert (q0, tag) == ("Q0", variant) and doc_id
        float(score)
        ranks.setdefault(query_id, []).append(int(rank))
    assert len(ranks) == 225 and all(r == list(range(1, len(r) + 1)) for r in ranks.values())


@pytest.mark.parametrize("args, fragments", [
    (["zero-shot", "cranfield"], ["ambiguous", "Flat, PQ8", "--index"]),
    (["nope", "cranfield"], ["no run of variant 'nope'", "bm25, zero-shot"]),
    (["bm25", "vaswani"], ["no run of variant 'bm25' on 'vaswani'"]),
    (["zero-shot", "cranfield", "--index", "HNSW32"], ["with index 'HNSW32'", "stored for it: indexes Flat, PQ8"]),
    (["bm25", "cranfield", "--seed", "99"], ["no run of variant 'bm25' on 'cranfield' with seed 99; stored for it: "
                                             "seeds 7"]),
    (["bm25", "cranfield", "-e", "nope"], ["in experiment 'nope'; stored for it: experiments "]),
], ids=["ambiguous", "unknown-variant", "unknown-collection", "unknown-index", "unknown-seed", "unknown-experiment"])
def test_export_run_errors(e2e: EndToEnd, tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    output = tmp_path / "run.trec"
    assert_one_line_error(invoke("export-run", *args, "-o", output, "--store", e2e.store), *fragments)
    assert not output.exists()


# --- light imports --------------------------------------------------------------------------

def test_read_side_and_validate_never_import_torch(e2e: EndToEnd, tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        for name in ("torch", "transformers", "sentence_transformers"):
            sys.modules[name] = None  # any import of them now raises ImportError
        import harness.cli, harness.recipe, harness.store, leaderboard
        from typer.testing import CliRunner
        store = {str(e2e.store)!r}
        for args in (["validate", {str(e2e.recipe)!r}], ["validate", "--explain"],
                     ["leaderboard", "--store", store], ["ls", "--store", store],
                     ["export-run", "bm25", "cranfield", "-o", {str(tmp_path / "x.trec")!r},
                      "--store", store]):
            result = CliRunner().invoke(harness.cli.app, args)
            assert result.exit_code == 0, (args, result.output, result.exception)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip().endswith("ok")


def test_a_filter_that_matches_nothing_says_what_is_stored(e2e: EndToEnd) -> None:
    result = invoke("leaderboard", "--store", e2e.store, "--collection", "vaswani")
    assert result.exit_code == 0, result.output
    assert "no runs match --collection vaswani; stored experiments: e2e; collections: cranfield" in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (["plan"], "Missing argument 'recipe'. (see drbench plan --help)"),
    (["export-run", "bm25", "cranfield"], "Missing option '--output' / '-o'. (see drbench export-run --help)"),
    (["leaderboard", "--format", "yaml"], "'yaml' is not one of 'table', 'json'. (see drbench leaderboard --help)"),
    (["serve", "--port", "abc"], "Invalid value for '--port'"),
    (["nosuch"], "No such command 'nosuch'. (see drbench --help)"),
])
def test_a_command_line_mistake_is_one_line_and_exit_2(args: list[str], fragment: str) -> None:
    # the console script (drbench = harness.cli.__main__:main), not CliRunner, which shows click's box
    done = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], done.stderr
    assert done.stdout == ""

