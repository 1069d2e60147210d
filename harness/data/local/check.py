"""The checks a declared collection's files pass before any work, and what they count.

One streaming pass over each file (:mod:`harness.data.local.read`): documents, then queries, then
each split's qrels. Only ids and 8-byte digests of the texts are held, never the texts. The
first problem stops the pass with one line naming file:line (a DataError); qrels that name a
document the corpus lacks are counted, not refused: ir_datasets and trec_eval keep such
judgments (a relevant document no system can retrieve), and `data check` shows the count.

A summary is remembered for the process while its files' sizes and modification times stay, so
the check that precedes a run and the load that follows it read each file once.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.data.local import read
from harness.data.local.declared import FileCollection
from harness.errors import DataError


@dataclass(frozen=True)
class FileDigest:
    """One file a collection reads: its role (`corpus`, `queries`, `qrels/SPLIT`), size and sha256."""

    role: str
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class SplitCounts:
    judged: int  # queries with a qrel of relevance > 0
    grades: dict[int, int]  # relevance -> qrels rows
    missing_docs: int  # qrels rows naming a document the corpus lacks


@dataclass(frozen=True)
class Summary:
    """What `drbench data check` prints, and the digests that identify the collection in keys."""

    name: str
    documents: int
    queries: int
    duplicate_texts: int
    titled: int  # documents with a non-empty title
    splits: dict[str, SplitCounts] = field(default_factory=dict)
    files: dict[str, FileDigest] = field(default_factory=dict)


_remembered: dict[tuple, Summary] = {}


def check_collection(collection: FileCollection, advance: Callable[[int], None] | None = None) -> Summary:
    """Check every file of `collection` (all its splits); DataError on the first problem.
    `advance(n)` is called with the bytes read since its last call."""
    splits = collection.splits()
    if problem := collection.folder_problem():
        raise DataError(problem)
    if not splits:
        where = collection.root / "qrels" if collection.format == "beir" else f"[collections.{collection.name}]"
        raise DataError(f"{where}: no qrels; a BEIR folder has qrels/<split>.tsv, TREC files declare qrels = "
                        '{ test = "qrels.txt" }')
    paths = collection.files()
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: no such file; check [collections.{collection.name}]"
                            + (" (a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv)"
                               if collection.format == "beir" else ""))
    stamp = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    key = (collection.name, collection.format, stamp)
    if key not in _remembered:
        _remembered[key] = _check(collection, splits, advance or (lambda n: None))
    return _remembered[key]


def _check(collection: FileCollection, splits: dict[str, Path], report: Callable[[int], None]) -> Summary:
    files: dict[str, FileDigest] = {}
    shown = [0, 0]  # bytes of the files done, bytes reported

    def advance(within: int) -> None:
        report(shown[0] + within - shown[1])
        shown[1] = shown[0] + within

    def done(role: str, lines: read.Lines) -> None:
        files[role] = FileDigest(role, lines.path, lines.size, lines.sha256)
        shown[0] += lines.size

    lines = read.Lines(collection.docs)
    doc_ids: set[str] = set()
    texts: set[bytes] = set()
    duplicates = titled = 0
    for doc in read.docs(collection.docs, lines):
        if doc.doc_id in doc_ids:
            raise lines.error(doc.line, f"duplicate document id {doc.doc_id!r}; ids must be unique")
        doc_ids.add(doc.doc_id)
        digest = hashlib.blake2b(f"{doc.title}\n{doc.text}".encode(), digest_size=8).digest()
        duplicates += digest in texts
        texts.add(digest)
        titled += bool(doc.title.strip())
        if len(doc_ids) % 10_000 == 0:
            advance(lines.size)
    if not doc_ids:
        raise DataError(f"{collection.docs}: no documents; the corpus must hold at least one")
    advance(lines.size)
    done("corpus", lines)
    lines = read.Lines(collection.queries)
    query_ids: set[str] = set()
    for query in read.queries(collection.queries, lines):
        if query.query_id in query_ids:
            raise lines.error(query.line, f"duplicate query id {query.query_id!r}; ids must be unique")
        query_ids.add(query.query_id)
    advance(lines.size)
    done("queries", lines)
    counts = {}
    reader = read.beir_qrels if collection.format == "beir" else read.trec_qrels
    for split, path in splits.items():
        lines = read.Lines(path)
        grades: Counter[int] = Counter()
        judged: set[str] = set()
        missing = 0
        for qrel in reader(path, lines):
            if qrel.query_id not in query_ids:
                raise lines.error(qrel.line, f"query {qrel.query_id!r} is not in {collection.queries.name}; "
                                             "every judged query needs a text")
            grades[qrel.relevance] += 1
            missing += qrel.doc_id not in doc_ids
            if qrel.relevance > 0:
                judged.add(qrel.query_id)
        if not judged:
            raise DataError(f"{path}: split {split!r} has no judged query (no qrels row with relevance > 0); "
                            "it cannot be evaluated or trained on")
        advance(lines.size)
        done(f"qrels/{split}", lines)
        counts[split] = SplitCounts(len(judged), dict(sorted(grades.items())), missing)
    return Summary(collection.name, len(doc_ids), len(query_ids), duplicates, titled, counts, files)
