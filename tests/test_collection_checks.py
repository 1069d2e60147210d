"""The checks a declared collection's files pass before any work: each problem is one line naming
file:line, exit 2, and nothing written; what BEIR accepts (a header row or none, CRLF, a byte
order mark, extra fields) is accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.data.catalog import summary
from harness.data.local.check import check_collection
from harness.data.local.declared import FileCollection, declare
from harness.errors import DataError

DOCS = [{"_id": "d1", "title": "Alpha", "text": "first document"},
        {"_id": "d2", "title": "Beta", "text": "second document"},
        {"_id": "d3", "text": "third document, no title", "extra": [1, 2]}]
QUERIES = [{"_id": "q1", "text": "first"}, {"_id": "q2", "text": "second", "metadata": {}}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t0\n"


def beir_folder(root: Path, *, corpus: bytes | None = None, queries: bytes | None = None,
                qrels: bytes | None = None) -> Path:
    folder = root / "mine"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_bytes(corpus if corpus is not None else
                                          "".join(json.dumps(d) + "\n" for d in DOCS).encode())
    (folder / "queries.jsonl").write_bytes(queries if queries is not None else
                                           "".join(json.dumps(q) + "\n" for q in QUERIES).encode())
    (folder / "qrels" / "test.tsv").write_bytes(qrels if qrels is not None else QRELS.encode())
    return folder


def declared(folder: Path) -> FileCollection:
    return FileCollection.beir("mine", folder)


def good_lines(items: list[dict]) -> list[str]:
    return [json.dumps(item) for item in items]


BAD = {
    "not JSON": ("corpus", "\n".join(good_lines(DOCS[:1]) + ['{"_id": "d2", "text": '] + good_lines(DOCS[2:])),
                 "corpus.jsonl:2: not JSON"),
    "document without _id": ("corpus", "\n".join(good_lines(DOCS[:2]) + ['{"text": "no id"}']),
                             'corpus.jsonl:3: a document without "_id"'),
    "duplicate document id": ("corpus", "\n".join(good_lines(DOCS) + good_lines(DOCS[1:2])),
                              "corpus.jsonl:4: duplicate document id 'd2'"),
    "query without _id": ("queries", '{"text": "x"}\n', 'queries.jsonl:1: a query without "_id"'),
    "duplicate query id": ("queries", "\n".join(good_lines(QUERIES) + good_lines(QUERIES[:1])),
                           "queries.jsonl:3: duplicate query id 'q1'"),
    "non-integer score": ("qrels", "q1\td1\t1\nq2\td2\tyes\n", "test.tsv:2: relevance 'yes' is not an integer"),
    "wrong columns": ("qrels", "q1\td1\t1\nq2\td2\n", "test.tsv:2: 2 columns"),
    "unknown query": ("qrels", "q1\td1\t1\nq9\td2\t1\n", "test.tsv:2: query 'q9' is not in queries.jsonl"),
    "no judged query": ("qrels", "q1\td1\t0\n", "test.tsv: split 'test' has no judged query"),
    "empty corpus": ("corpus", "\n", "corpus.jsonl: no documents"),
    "invalid UTF-8": ("corpus", b'{"_id": "d1", "text": "caf\xe9"}\n', "corpus.jsonl:1: invalid UTF-8"),
}


def _bad_folder(root: Path, case: str) -> tuple[Path, str]:
    part, content, expected = BAD[case]
    data = content if isinstance(content, bytes) else content.encode()
    return beir_folder(root, **{part: data}), expected


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_stops_the_run_in_one_line_before_anything_is_written(tmp_path: Path, case: str) -> None:
    folder, expected = _bad_folder(tmp_path, case)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f'[experiment]\nname = "x"\nstore = "{tmp_path}/out.db"\ncache_dir = "{tmp_path}/cache"\n'
                      f'[collections.mine]\nformat = "beir"\npath = "mine"\n'
                      '[data]\neval = ["mine/test"]\n[variant.bm25]\nkind = "bm25"\n')
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert str(folder) in lines[0]  # the file's path, so the user knows which file
    assert not (tmp_path / "out.db").exists() and not (tmp_path / "cache").exists()
    for command in (["validate", str(recipe)], ["data", "check", str(folder)]):
        checked = CliRunner().invoke(app, command)
        assert checked.exit_code == 2 and expected in checked.stderr, (command, checked.output)


@pytest.mark.parametrize("missing", ["folder", "corpus.jsonl", "queries.jsonl", "qrels"])
def test_a_missing_file_or_folder_is_named(tmp_path: Path, missing: str) -> None:
    folder = beir_folder(tmp_path)
    if missing == "folder":
        import shutil

        shutil.rmtree(folder)
    elif missing == "qrels":
        (folder / "qrels" / "test.tsv").unlink()
    else:
        (folder / missing).unlink()
    with pytest.raises(DataError) as caught:
        check_collection(declared(folder))
    assert str(folder / ("" if missing == "folder" else missing)).rstrip("/") in str(caught.value)


def test_what_beir_accepts_is_accepted(tmp_path: Path) -> None:
    """No header row, CRLF line ends, a byte order mark, blank lines and extra fields: the same
    counts as the plain files."""
    plain = check_collection(declared(beir_folder(tmp_path / "plain")))
    corpus = b"\xef\xbb\xbf" + "\r\n".join(json.dumps(d) for d in DOCS).encode() + b"\r\n\r\n"
    qrels = QRELS.split("\n", 1)[1].replace("\n", "\r\n").encode()
    odd = check_collection(declared(beir_folder(tmp_path / "odd", corpus=corpus, qrels=qrels)))
    assert (odd.documents, odd.queries, odd.titled, odd.splits) == (plain.documents, plain.queries, plain.titled,
                                                                    plain.splits)
    assert plain.documents == 3 and plain.titled == 2 and plain.splits["test"].judged == 2
    assert plain.splits["test"].grades == {0: 1, 1: 1, 2: 1}
    assert odd.files["corpus"].sha256 != plain.files["corpus"].sha256  # other bytes, another collection


def test_qrels_naming_missing_documents_are_counted(tmp_path: Path) -> None:
    folder = beir_folder(tmp_path, qrels=(QRELS + "q1\tnowhere\t1\nq2\tgone\t1\n").encode())
    declare((declared(folder),))
    try:
        assert summary("mine").splits["test"].missing_docs == 2
        result = CliRunner().invoke(app, ["data", "check", str(folder)])
        assert result.exit_code == 0
        assert "warning: 2 qrels rows of test name documents the corpus lacks" in result.stdout
    finally:
        declare(())


def test_duplicate_texts_are_counted(tmp_path: Path) -> None:
    copies = DOCS + [{**DOCS[0], "_id": "d9"}]
    folder = beir_folder(tmp_path, corpus="".join(json.dumps(d) + "\n" for d in copies).encode())
    assert check_collection(declared(folder)).duplicate_texts == 1


def test_a_declared_name_may_not_shadow_ir_datasets(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f'[experiment]\nname = "x"\n[collections.beir]\nformat = "beir"\npath = "mine"\n'
                      '[data]\neval = ["beir/scifact/test"]\n[variant.bm25]\nkind = "bm25"\n')
    result = CliRunner().invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 2 and "'beir' is also an ir_datasets name" in result.stderr


def test_a_topic_left_open_is_named_not_lost(tmp_path: Path) -> None:
    from harness.data.local import read

    topics = tmp_path / "topics.txt"
    topics.write_text("<top>\n<num> Number: 90\n<title> first\n\n<top>\n<num> Number: 1\n<title> second\n</top>\n")
    with pytest.raises(DataError, match=r"topics.txt:5: <top> inside the <top> block opened at line 1"):
        list(read.queries(topics))


def test_a_missing_beir_folder_says_so(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[experiment]\nname = "x"\n[collections.mine]\nformat = "beir"\npath = "gone"\n'
                      '[data]\neval = ["mine/test"]\n[variant.bm25]\nkind = "bm25"\n')
    result = CliRunner().invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 2 and f"no such folder {tmp_path / 'gone'}; check [collections.mine] path" in result.stderr
