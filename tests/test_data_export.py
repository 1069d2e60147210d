"""`drbench data export`: a collection as a BEIR folder, re-read with ir_datasets' own BEIR readers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from typer.testing import CliRunner, Result

from harness.cli import app
from harness.data.catalog import ensure_available, open_dataset
from harness.data.collection import doc_text, query_text
from harness.data.export import QRELS_HEADER, Exported, default_split, doc_record, export_beir
from harness.data.quiet import quiet_ir_datasets
from harness.errors import DataError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> dict[str, Exported]:
    """cranfield and beir/scifact/test, each exported once for the module."""
    root = tmp_path_factory.mktemp("exported")
    return {name: export_beir(name, root / name.replace("/", "_"), mirror=mirror)
            for name in ("cranfield", "beir/scifact/test")}


def original(name: str, mirror: Path) -> tuple[list[Any], list[Any], list[Any]]:
    """The collection's docs, queries and qrels as ir_datasets gives them."""
    ensure_available(name, mirror)
    with quiet_ir_datasets():
        dataset = open_dataset(name)
        return list(dataset.docs_iter()), list(dataset.queries_iter()), list(dataset.qrels_iter())


def reread(folder: Path, split: str = "test") -> tuple[list[Any], list[Any], list[Any]]:
    """The folder's docs, queries and qrels through ir_datasets' BEIR readers, as a declared
    collection reads them (documents as BeirTitleDoc, without going through a docstore)."""
    from ir_datasets.datasets.beir import BeirQrels, BeirQueries, BeirTitleDoc
    from ir_datasets.formats import GenericQuery
    from ir_datasets.util.download import LocalDownload

    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        docs = [BeirTitleDoc(r["_id"], r["text"], r["title"]) for r in map(json.loads, handle)]
    queries = list(BeirQueries("export", LocalDownload(folder / "queries.jsonl"), GenericQuery).queries_iter())
    qrels = list(BeirQrels(LocalDownload(folder / "qrels" / f"{split}.tsv"), {}).qrels_iter())
    return docs, queries, qrels


def judgments(qrels: list[Any]) -> Counter[tuple[str, str, int]]:
    return Counter((q.query_id, q.doc_id, q.relevance) for q in qrels)


def test_cranfield_is_every_doc_query_and_judgment(exported: dict[str, Exported]) -> None:
    done = exported["cranfield"]
    assert (done.docs, done.queries, done.judgments, done.qrels_file) == (1400, 225, 1837, "qrels/test.tsv")
    assert sorted(p.relative_to(done.folder).as_posix() for p in done.folder.rglob("*")) == \
        ["corpus.jsonl", "qrels", "qrels/test.tsv", "queries.jsonl"]
    lines = (done.folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[0] == QRELS_HEADER == "query-id\tcorpus-id\tscore\n" and len(lines) == 1 + 1837
    grades = Counter(int(line.split("\t")[2]) for line in lines[1:])
    assert grades == {3: 734, 2: 387, 4: 363, -1: 225, 1: 128}  # Cranfield's -1 and all, not only positives
    assert len((done.folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()) == 1400
    assert len((done.folder / "queries.jsonl").read_text(encoding="utf-8").splitlines()) == 225


@pytest.mark.parametrize("name", ["cranfield", "beir/scifact/test"])
def test_reimport_gives_the_texts_drbench_encodes(exported: dict[str, Exported], mirror: Path, name: str) -> None:
    docs, queries, qrels = original(name, mirror)
    back_docs, back_queries, back_qrels = reread(exported[name].folder)
    assert [d.doc_id for d in back_docs] == [d.doc_id for d in docs]
    assert [doc_text(d) for d in back_docs] == [doc_text(d) for d in docs]
    assert [(q.query_id, query_text(q)) for q in back_queries] == [(q.query_id, query_text(q)) for q in queries]
    assert judgments(back_qrels) == judgments(qrels)


def test_scifact_counts(exported: dict[str, Exported]) -> None:
    done = exported["beir/scifact/test"]
    assert (done.docs, done.queries, done.judgments) == (5183, 300, 339)


def test_a_declared_query_split_exports_its_part(tmp_path: Path, mirror: Path) -> None:
    """A name a recipe declares goes through the catalog as every stage's does: `cran/test` is the
    test part's queries and all their judgments, over every Cranfield document."""
    from harness.data.catalog import partition
    from harness.data.local.declared import QuerySplit, declare

    split = QuerySplit("cran", "cranfield", (("train", 0.8), ("test", 0.2)))
    declare((split,))
    try:
        done = export_beir("cran/test", tmp_path / "cran", mirror=mirror)
        ids = partition(split, mirror)["test"]
    finally:
        declare(())
    _, _, qrels = original("cranfield", mirror)
    _, back_queries, back_qrels = reread(done.folder)
    assert (done.docs, done.queries, done.split) == (1400, len(ids), "test")
    assert {q.query_id for q in back_queries} == ids
    assert judgments(back_qrels) == judgments([q for q in qrels if q.query_id in ids])


class TextlessDoc(NamedTuple):
    doc_id: str
    body: str

    def default_text(self) -> str:
        return f"body: {self.body}"


def test_a_doc_without_a_text_field_exports_its_default_text() -> None:
    record = doc_record(TextlessDoc("d1", "words"))
    assert record == {"_id": "d1", "title": "", "text": "body: words"}
    from ir_datasets.datasets.beir import BeirTitleDoc

    assert doc_text(BeirTitleDoc(record["_id"], record["text"], record["title"])) == "body: words"


@pytest.mark.parametrize("name, split", [("beir/scifact/train", "train"), ("beir/nfcorpus/dev", "dev"),
                                         ("beir/scifact/test", "test"), ("cranfield", "test"),
                                         ("msmarco-passage/dev/small", "test")])
def test_default_split(name: str, split: str) -> None:
    assert default_split(name) == split


# --- whole or nothing ------------------------------------------------------------------------

def fail_after(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Make the n-th document written raise, as a full disk or a kill would stop the export."""
    from harness.data import export

    real, seen = export.doc_record, []

    def record(doc: Any) -> dict[str, str]:
        seen.append(doc)
        if len(seen) == n:
            raise RuntimeError("stopped halfway")
        return real(doc)

    monkeypatch.setattr(export, "doc_record", record)


def test_a_failure_midway_leaves_no_folder(tmp_path: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fail_after(monkeypatch, 700)
    with pytest.raises(DataError, match="stopped halfway"):
        export_beir("cranfield", tmp_path / "out", mirror=mirror)
    assert os.listdir(tmp_path) == []  # neither the folder nor its temp sibling


def test_a_failed_force_keeps_the_old_folder(tmp_path: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "corpus.jsonl").write_text("old")
    fail_after(monkeypatch, 700)
    with pytest.raises(DataError):
        export_beir("cranfield", tmp_path / "out", mirror=mirror, force=True)
    assert os.listdir(tmp_path) == ["out"] and os.listdir(tmp_path / "out") == ["corpus.jsonl"]
    assert (tmp_path / "out" / "corpus.jsonl").read_text() == "old"


# --- the command -----------------------------------------------------------------------------

def invoke(*args: object) -> Result:
    return CliRunner().invoke(app, ["data", "export", *map(str, args)])


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(fragment in lines[0] for fragment in fragments), lines[0]


def test_the_command_says_what_it_wrote(tmp_path: Path, mirror: Path) -> None:
    result = invoke("cranfield", "-o", tmp_path / "cran", "--mirror", mirror, "--split", "all")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines()[-1] == \
        f"wrote {tmp_path / 'cran'}: 1,400 documents, 225 queries, 1,837 judgments (qrels/all.tsv)"
    assert sorted(os.listdir(tmp_path / "cran" / "qrels")) == ["all.tsv"]


@pytest.mark.parametrize("args, fragments", [
    (["cranfeild"], ["unknown collection 'cranfeild'", "did you mean 'cranfield'"]),
    (["beir/scifact"], ["'beir/scifact' has no qrels"]),
    (["cranfield", "--mirror", "{tmp}/no-such-mirror"], ["--mirror", "is not a directory"]),
    (["cranfield", "--split", "../up"], ["split '../up'"]),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, mirror: Path, args: list[str],
                                                         fragments: list[str]) -> None:
    out = tmp_path / "out"
    args = [a.format(tmp=tmp_path) for a in args]
    extra = [] if "--mirror" in args else ["--mirror", mirror]
    assert_one_line_error(invoke(*args, "-o", out, *extra), *fragments)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["cranfield", "beir/scifact/test"])
def test_an_export_declared_as_a_collection_loads_and_exports_as_itself(
        exported: dict[str, Exported], tmp_path: Path, mirror: Path, name: str) -> None:
    """The folder, declared in a recipe (`format = "beir"`), is read by drbench's own loader into the
    texts drbench encodes for the original, and exported again byte for byte."""
    from harness.data.local.declared import declare

    recipe = tmp_path / "recipe.toml"
    recipe.write_text(textwrap.dedent(f"""\
        [experiment]
        name = "again"
        [data]
        eval = ["mine/test"]
        [collections.mine]
        format = "beir"
        path = "{exported[name].folder}"
        [variant.bm25]
        kind = "bm25"
        """))
    try:
        result = invoke("mine/test", "-o", tmp_path / "again", "--recipe", recipe)
        assert result.exit_code == 0, result.output
        with quiet_ir_datasets():
            docs = list(open_dataset("mine/test").docs_iter())
    finally:
        declare(())
    for part in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        assert (tmp_path / "again" / part).read_bytes() == (exported[name].folder / part).read_bytes(), part
    assert [doc_text(d) for d in docs] == [doc_text(d) for d in original(name, mirror)[0]]


def test_a_folder_with_files_is_refused_unless_forced(tmp_path: Path, mirror: Path) -> None:
    out = tmp_path / "out"
    (out / "qrels").mkdir(parents=True)
    (out / "qrels" / "old.tsv").write_text("old")
    assert_one_line_error(invoke("cranfield", "-o", out, "--mirror", mirror), f"{out} is not empty", "--force")
    assert os.listdir(out) == ["qrels"]
    result = invoke("cranfield", "-o", out, "--mirror", mirror, "--force")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ["corpus.jsonl", "qrels", "queries.jsonl"]
    assert os.listdir(out / "qrels") == ["test.tsv"]  # the old split went with the old folder
    assert os.listdir(tmp_path) == ["out"]  # the old folder, moved aside, is gone too


def test_force_replaces_only_a_beir_folder(tmp_path: Path, mirror: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text("old")
    (tmp_path / "notes.txt").write_text("keep")  # `-o ~ --force` must not remove a home folder
    assert_one_line_error(invoke("cranfield", "-o", tmp_path, "--mirror", mirror, "--force"),
                          "holds 'notes.txt', which an export does not write")
    assert sorted(os.listdir(tmp_path)) == ["corpus.jsonl", "notes.txt"]


def test_an_empty_folder_is_filled(tmp_path: Path, mirror: Path) -> None:
    (tmp_path / "out").mkdir()
    assert invoke("cranfield", "-o", tmp_path / "out", "--mirror", mirror).exit_code == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["corpus.jsonl", "qrels", "queries.jsonl"]


def test_the_console_script_exits_2_on_an_unknown_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    assert main(["data", "export", "no-such-collection", "-o", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown collection 'no-such-collection'"), lines
    assert os.listdir(tmp_path) == []


def test_export_never_imports_torch(tmp_path: Path, mirror: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        for name in ("torch", "transformers", "sentence_transformers", "faiss"):
            sys.modules[name] = None  # any import of them now raises ImportError
        import harness.cli
        from typer.testing import CliRunner
        args = ["data", "export", "cranfield", "-o", {str(tmp_path / "out")!r}, "--mirror", {str(mirror)!r}]
        result = CliRunner().invoke(harness.cli.app, args)
        assert result.exit_code == 0, (result.output, result.exception)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip().endswith("ok")
