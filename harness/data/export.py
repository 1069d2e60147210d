"""A collection drbench can load, written as a BEIR folder (`drbench data export`), so it can be
handed to BEIR, MTEB or sentence-transformers' evaluators:

    DIR/corpus.jsonl        {"_id", "title", "text"} per document, in corpus order
    DIR/queries.jsonl       {"_id", "text"} per query: every query of the collection
    DIR/qrels/<split>.tsv   `query-id<TAB>corpus-id<TAB>score`, then every judgment, 0 and -1 included

A document's `title` and `text` are its own fields, so BEIR's "title + text" and drbench's
`doc_text` give back what drbench encodes for the original; a doc class without a `text` field
exports `default_text()` with an empty title. The folder is filled beside DIR and renamed into
place whole (`harness.files.replacing_folder`): a failure leaves no DIR, or the old one.

The collection is found as every stage finds one, through :mod:`harness.data.catalog`, so a name
a recipe declares in `[collections]` exports as an ir_datasets id does. Torch-free; ir_datasets is
imported by the catalog's functions.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.archives import require_parts
from harness.data.catalog import docs_count, ensure_available, open_dataset
from harness.data.collection import query_text
from harness.data.quiet import quiet_ir_datasets
from harness.errors import DataError, DrbenchError
from harness.files import replacing_folder
from harness.progress import StageProgress

# The split names BEIR folders use; an id ending in one (beir/scifact/test) names its qrels file.
BEIR_SPLITS = ("train", "dev", "test", "validation")
QRELS_HEADER = "query-id\tcorpus-id\tscore\n"
_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EXPORTED = frozenset({"corpus.jsonl", "queries.jsonl", "qrels"})  # what a folder `--force` replaces may hold
_BATCH = 1000  # documents written between progress updates


class ExportError(DrbenchError):
    """A collection cannot be exported where asked (a folder that holds files, a bad split name)."""


@dataclass(frozen=True)
class Exported:
    """What `export_beir` wrote: the folder and how many lines each file holds (besides the header)."""

    folder: Path
    split: str
    docs: int
    queries: int
    judgments: int

    @property
    def qrels_file(self) -> str:
        return f"qrels/{self.split}.tsv"


def default_split(dataset_id: str) -> str:
    """The qrels file's name: the id's last part when BEIR would name a split so, else `test`.

    >>> default_split("beir/scifact/train"), default_split("cranfield"), default_split("msmarco-passage/dev/small")
    ('train', 'test', 'test')
    """
    last = dataset_id.rstrip("/").rsplit("/", 1)[-1]
    return last if last in BEIR_SPLITS else "test"


def _check_split(split: str) -> None:
    if not _SPLIT_NAME.fullmatch(split):
        raise ExportError(f"split {split!r} cannot name qrels/<split>.tsv; use letters, digits, '.', '_' "
                          f"and '-' (e.g. {', '.join(BEIR_SPLITS)})")


def _check_target(folder: Path, force: bool) -> None:
    held = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if held and not force:
        raise ExportError(f"{folder} is not empty; pass --force to replace it, or another folder")
    # `--force` removes the old folder: never one that holds more than an export (`-o ~ --force`)
    other = [name for name in held if name not in _EXPORTED]
    if other:
        raise ExportError(f"{folder} holds {other[0]!r}, which an export does not write; --force replaces only a "
                          "BEIR folder (corpus.jsonl, queries.jsonl, qrels/): remove the rest or pass another folder")


def export_beir(dataset_id: str, folder: Path, *, mirror: Path | None = None, split: str | None = None,
                force: bool = False, progress: StageProgress | None = None) -> Exported:
    """Write `dataset_id` as a BEIR folder at `folder` (see the module docstring); `force` replaces
    a BEIR folder there (one that holds other files is refused). Documents are counted on `progress`
    as they are written.

    >>> import tempfile
    >>> done = export_beir("cranfield", Path(tempfile.mkdtemp()) / "cran", mirror=Path("../shared/data/ir_datasets"))
    >>> done.docs, done.queries, done.judgments, done.qrels_file
    (1400, 225, 1837, 'qrels/test.tsv')
    """
    split = split or default_split(dataset_id)
    _check_split(split)
    _check_target(folder, force)
    ensure_available(dataset_id, mirror)  # checks the name first: an unknown one writes nothing
    with quiet_ir_datasets():
        dataset = open_dataset(dataset_id)
        require_parts(dataset, dataset_id)
        folder.parent.mkdir(parents=True, exist_ok=True)
        with replacing_folder(folder, replace=force) as tmp:
            try:
                queries = _write_lines(tmp / "queries.jsonl", map(_query_line, dataset.queries_iter()))
                (tmp / "qrels").mkdir()
                judgments = _write_lines(tmp / "qrels" / f"{split}.tsv",
                                         _qrels_lines(dataset.qrels_iter()), header=QRELS_HEADER)
                with ExitStack() as stack:
                    advance = _docs_progress(stack, progress, dataset_id, docs_count(dataset_id))
                    docs = _write_lines(tmp / "corpus.jsonl", map(_doc_line, dataset.docs_iter()), advance)
            except (DrbenchError, OSError):
                raise
            except Exception as exc:  # ir_datasets failing to read its own files: one line, cause chained
                first_line = (str(exc).splitlines() or [""])[0][:200]
                raise DataError(f"ir_datasets could not read {dataset_id!r} ({type(exc).__name__}: "
                                f"{first_line}); delete its folder under IR_DATASETS_HOME and retry") from exc
    return Exported(folder, split, docs, queries, judgments)


def doc_record(doc: Any) -> dict[str, str]:
    """A document as BEIR stores it: its own title and text, or `default_text()` where it has no
    `text` field (re-read, `doc_text` gives what it gives for `doc`)."""
    text = getattr(doc, "text", None)
    if not isinstance(text, str):
        return {"_id": doc.doc_id, "title": "", "text": doc.default_text()}
    title = getattr(doc, "title", "")
    return {"_id": doc.doc_id, "title": title if isinstance(title, str) else "", "text": text}


def _doc_line(doc: Any) -> str:
    return json.dumps(doc_record(doc), ensure_ascii=False) + "\n"


def _query_line(query: Any) -> str:
    return json.dumps({"_id": query.query_id, "text": query_text(query)}, ensure_ascii=False) + "\n"


def _qrels_lines(qrels: Iterable[Any]) -> Iterator[str]:
    for qrel in qrels:
        for value in (qrel.query_id, qrel.doc_id):
            if not value or any(c in value for c in "\t\r\n"):
                raise ExportError(f"id {value!r} (query {qrel.query_id!r}) cannot be written to a TSV qrels "
                                  "file: it is empty or holds a tab or line break")
        yield f"{qrel.query_id}\t{qrel.doc_id}\t{int(qrel.relevance)}\n"


def _write_lines(path: Path, lines: Iterable[str], advance: Callable[[int], object] | None = None, *,
                 header: str = "") -> int:
    """Write `header` and `lines` to `path` (UTF-8, `\\n` line ends), flushed to disk; the count of `lines`."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(header)
        for count, line in enumerate(lines, 1):
            handle.write(line)
            if advance is not None and count % _BATCH == 0:
                advance(_BATCH)
        handle.flush()
        os.fsync(handle.fileno())
    if advance is not None and count % _BATCH:
        advance(count % _BATCH)
    return count


def _docs_progress(stack: ExitStack, progress: StageProgress | None, dataset_id: str,
                   total: int | None) -> Callable[[int], object] | None:
    """A count of documents written on `progress`, or a spinner where ir_datasets does not know how many."""
    if progress is None:
        return None
    label = f"exporting {dataset_id}"
    if total is None:
        stack.enter_context(progress.spinner(label))
        return None
    return stack.enter_context(progress.task(label, total, "docs"))
