"""Collections declared from files ([collections.NAME] format = "beir" | "trec"): SciFact's own BEIR
folder gives the numbers of `beir/scifact/test`; Cranfield written as TREC files gives those of
`cranfield`; keys follow the files' contents, not their place; the report reads their titles."""

from __future__ import annotations

import io
import shutil
import sqlite3
import zipfile
from contextlib import closing
from pathlib import Path

import pytest
from rich.console import Console

from harness.data.local.declared import declare
from harness.pipeline import RunOptions, run_recipe
from harness.recipe import load_recipe

RECIPE = """\
[experiment]
name = "{name}"
store = "{folder}/drbench.db"
cache_dir = "{cache}"

[model]
base = "{model}"
batch_size = 256

[collections.{declared}]
{declaration}

[data]
eval = {eval}

[eval]
metrics = ["ndcg@10", "mrr@10", "recall@100"]
depth = 100

[variant.bm25]
kind = "bm25"
{more}"""

ZERO_SHOT = '[variant.zero-shot]\nkind = "zero-shot"\n'


def write(folder: Path, *, declaration: str, eval: list[str], model: Path, cache: Path, name: str = "files",
          declared: str = "sf", more: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    recipe = folder / "recipe.toml"
    recipe.write_text(RECIPE.format(name=name, folder=folder, cache=cache, model=model, declared=declared,
                                    declaration=declaration, eval=str(eval).replace("'", '"'), more=more))
    return recipe


def run(recipe: Path, mirror: Path) -> str:
    log = io.StringIO()
    run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror)), Console(file=log, width=200))
    return log.getvalue()


def stored(store: Path) -> dict[tuple[str, str], dict]:
    """{(variant, collection): {"metrics": {...}, "per_query": {...}, "key": run_key}}."""
    with closing(sqlite3.connect(store)) as conn:
        out = {}
        for run_id, variant, collection, key in conn.execute("SELECT id, variant, collection, run_key FROM runs"):
            out[(variant, collection)] = {
                "metrics": dict(conn.execute("SELECT metric, value FROM metrics WHERE run_id = ?", (run_id,))),
                "per_query": {(q, m): v for q, m, v in conn.execute(
                    "SELECT query_id, metric, value FROM query_metrics WHERE run_id = ?", (run_id,))},
                "key": key}
        return out


@pytest.fixture(scope="module")
def scifact_folder(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Path:
    """SciFact's BEIR folder, as BEIR distributes it: the mirror's source.zip unzipped."""
    folder = tmp_path_factory.mktemp("beir")
    with zipfile.ZipFile(mirror / "beir" / "scifact" / "source.zip") as archive:
        archive.extractall(folder)
    return folder / "scifact"


@pytest.fixture(scope="module")
def scifact_run(tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_model: Path,
                scifact_folder: Path) -> tuple[Path, Path, dict]:
    folder = tmp_path_factory.mktemp("sf-run")
    recipe = write(folder, declaration=f'format = "beir"\npath = "{scifact_folder}"', model=tiny_model,
                   cache=folder / "cache", eval=["sf/test", "beir/scifact/test"], more=ZERO_SHOT)
    run(recipe, mirror)
    return folder, recipe, stored(folder / "drbench.db")


def test_a_beir_folder_gives_the_numbers_of_its_ir_datasets_id(scifact_run: tuple[Path, Path, dict]) -> None:
    _, _, runs = scifact_run
    for variant in ("bm25", "zero-shot"):
        mine, theirs = runs[(variant, "sf/test")], runs[(variant, "beir/scifact/test")]
        assert mine["metrics"].keys() == theirs["metrics"].keys() == {"ndcg@10", "mrr@10", "recall@100"}
        for metric, value in theirs["metrics"].items():
            assert mine["metrics"][metric] == pytest.approx(value, abs=1e-9), (variant, metric)
        assert len(mine["per_query"]) == 300 * 3
        assert mine["per_query"].keys() == theirs["per_query"].keys()
        assert all(mine["per_query"][k] == pytest.approx(v, abs=1e-9) for k, v in theirs["per_query"].items())
    assert runs[("bm25", "sf/test")]["metrics"]["ndcg@10"] == pytest.approx(0.6791, abs=5e-5)


def test_keys_follow_contents_not_places(scifact_run: tuple[Path, Path, dict], tmp_path: Path,
                                         mirror: Path, scifact_folder: Path) -> None:
    """Moving the folder keeps every run (skipped); editing a qrels file re-runs what reads it."""
    folder, recipe, runs = scifact_run
    moved = tmp_path / "moved"
    shutil.copytree(scifact_folder, moved)
    store = tmp_path / "drbench.db"
    shutil.copy(folder / "drbench.db", store)
    text = recipe.read_text().replace(str(scifact_folder), str(moved)).replace(str(folder / "drbench.db"), str(store))
    recipe_moved = tmp_path / "recipe.toml"
    recipe_moved.write_text(text)
    log = run(recipe_moved, mirror)
    assert log.count("skip ") == 4 and "done bm25" not in log and "done zero-shot" not in log, log
    lines = (moved / "qrels" / "test.tsv").read_text().splitlines()
    (moved / "qrels" / "test.tsv").write_text("\n".join(lines[:-1]) + "\n")  # one judgment fewer
    log = run(recipe_moved, mirror)
    assert "done bm25 / sf/test" in log and "done zero-shot / sf/test" in log
    assert "skip bm25 / beir/scifact/test" in log
    after = stored(store)
    assert after[("bm25", "sf/test")]["key"] != runs[("bm25", "sf/test")]["key"]
    assert after[("bm25", "beir/scifact/test")]["key"] == runs[("bm25", "beir/scifact/test")]["key"]


def test_the_report_shows_a_declared_collections_titles(scifact_run: tuple[Path, Path, dict]) -> None:
    from harness.store import open_store_readonly
    from leaderboard.report import ReportOptions, build_report

    folder, _, _ = scifact_run
    declare(())  # as a fresh `drbench report` process: only the store says what was declared
    report = build_report(open_store_readonly(folder / "drbench.db"), "drbench.db", ReportOptions(queries=5))
    sections = {c.name: c for c in report.collections}
    mine, theirs = sections["sf/test"].drill, sections["beir/scifact/test"].drill
    assert mine.get("missing") is None and len(mine["titles"]) >= 5
    assert mine["titles"] == theirs["titles"] and mine["queries"] == theirs["queries"]


def _cranfield_as_trec(folder: Path) -> None:
    """Cranfield's documents as TSV (id, title, text), its queries as TREC topics, its qrels as TREC qrels."""
    import ir_datasets

    from harness.data.collection import quiet_ir_datasets

    with quiet_ir_datasets():
        dataset = ir_datasets.load("cranfield")
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "docs.tsv").open("w") as out:
            for doc in dataset.docs_iter():
                out.write("\t".join([doc.doc_id, " ".join(doc.title.split()), " ".join(doc.text.split())]) + "\n")
        with (folder / "topics.txt").open("w") as out:
            for query in dataset.queries_iter():
                out.write(f"<top>\n<num> Number: {query.query_id}\n<title> {' '.join(query.text.split())}\n\n"
                          "<desc> Description:\nnot read\n</top>\n\n")
        with (folder / "qrels.txt").open("w") as out:
            for qrel in dataset.qrels_iter():
                out.write(f"{qrel.query_id} 0 {qrel.doc_id} {qrel.relevance}\n")


def test_trec_files_give_the_numbers_of_their_ir_datasets_id(tmp_path: Path, mirror: Path, tiny_model: Path) -> None:
    """BM25 ranks words, so whitespace normalised in the files changes nothing."""
    from harness.data.catalog import ensure_available

    ensure_available("cranfield", mirror)
    _cranfield_as_trec(tmp_path / "trec")
    recipe = write(tmp_path / "run", declared="cran",
                   declaration='format = "trec"\npath = "../trec"\ndocs = "docs.tsv"\nqueries = "topics.txt"\n'
                               'qrels = { test = "qrels.txt" }',
                   model=tiny_model, cache=tmp_path / "cache", eval=["cran/test", "cranfield"])
    run(recipe, mirror)
    runs = stored(tmp_path / "run" / "drbench.db")
    mine, theirs = runs[("bm25", "cran/test")], runs[("bm25", "cranfield")]
    assert mine["per_query"].keys() == theirs["per_query"].keys() and len(mine["per_query"]) == 225 * 3
    for metric, value in theirs["metrics"].items():
        assert mine["metrics"][metric] == pytest.approx(value, abs=1e-9), metric


def test_an_export_reimported_gives_the_same_numbers(tmp_path: Path, mirror: Path, tiny_model: Path) -> None:
    """`drbench data export beir/scifact/test`, declared as a BEIR folder: BM25's numbers, per query."""
    from harness.data.export import export_beir

    export_beir("beir/scifact/test", tmp_path / "exported", mirror=mirror)
    recipe = write(tmp_path / "run", declaration=f'format = "beir"\npath = "{tmp_path / "exported"}"',
                   model=tiny_model, cache=tmp_path / "cache", eval=["sf/test", "beir/scifact/test"])
    run(recipe, mirror)
    runs = stored(tmp_path / "run" / "drbench.db")
    mine, theirs = runs[("bm25", "sf/test")], runs[("bm25", "beir/scifact/test")]
    assert mine["per_query"].keys() == theirs["per_query"].keys() and len(mine["per_query"]) == 300 * 3
    assert all(mine["per_query"][k] == pytest.approx(v, abs=1e-9) for k, v in theirs["per_query"].items())
