"""A test collection: doc ids, queries and positive qrels in memory; document texts read from
ir_datasets when first needed (:class:`~harness.data.doc_texts.DocTexts`).

Loaded once through the ir_datasets API, after ``ensure_available`` has made sure the archives
are on disk, and handed to the model and evaluation stages as one frozen object.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.archives import require_parts
from harness.data.availability import ArchiveRecord, cached_sha256
from harness.data.catalog import docs_id, ensure_available, open_dataset
from harness.data.doc_texts import DocTexts
from harness.data.quiet import quiet_ir_datasets  # noqa: F401  (re-exported: its long-standing home)
from harness.errors import DataError

log = logging.getLogger(__name__)

# Titles that differ from the start of the text only by a typo or spacing (Cranfield has two)
# still count as already present.
_TITLE_MATCH_RATIO = 0.9


@dataclass(frozen=True)
class Collection:
    """One ir_datasets collection, ready for encoding and evaluation.

    ``docs_id`` is the id of the corpus (``ir_datasets.docs_parent_id``), so splits that share a
    corpus (beir/scifact/train and /test) share it and can share a document index.
    ``doc_ids`` and ``doc_texts`` are parallel and empty when loaded with ``with_docs=False``;
    ``doc_texts`` streams from ir_datasets until something reads a text by row.
    ``queries`` holds exactly the queries that have a key in ``qrels``.
    """

    dataset_id: str
    docs_id: str
    doc_ids: tuple[str, ...]
    doc_texts: Sequence[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    archives: tuple[ArchiveRecord, ...]

    @property
    def archive_digests(self) -> dict[str, str | None]:
        """sha256 per source archive: what identifies this collection's data in cache keys."""
        return {a.relpath: a.sha256 for a in self.archives}


def load_collection(dataset_id: str, mirror: Path | None = None, *,
                    with_docs: bool = True) -> Collection:
    """Load ``dataset_id`` (an ir_datasets id or a name the recipe declares, see
    :mod:`harness.data.catalog`), fetching its archives from ``mirror`` if needed.

    >>> c = load_collection("cranfield", Path("../shared/data/ir_datasets"))
    >>> len(c.doc_ids), len(c.queries)
    (1400, 225)
    """
    records = ensure_available(dataset_id, mirror)
    try:
        with quiet_ir_datasets():
            dataset = open_dataset(dataset_id)
            require_parts(dataset, dataset_id, with_docs)
            qrels = _positive_qrels(dataset, dataset_id)
            queries = _queries(dataset, qrels, dataset_id)
            doc_ids = tuple(d.doc_id for d in dataset.docs_iter()) if with_docs else ()
    except DataError:
        raise
    except Exception as exc:  # the CLI prints DataError as one line; keep the cause chained
        first_line = (str(exc).splitlines() or [""])[0][:200]
        raise DataError(f"ir_datasets could not load {dataset_id!r} "
                        f"({type(exc).__name__}: {first_line}); delete its folder under "
                        "IR_DATASETS_HOME and retry, or pass --mirror DIR") from exc
    return Collection(
        dataset_id=dataset_id,
        docs_id=docs_id(dataset_id),
        doc_ids=doc_ids,
        doc_texts=DocTexts(dataset_id, len(doc_ids), lambda: _texts(dataset_id)),
        queries=queries,
        qrels=qrels,
        archives=tuple(_fill_digests(records)),
    )


def _texts(dataset_id: str) -> Iterator[str]:
    """The texts drbench encodes, in corpus order, read afresh (see :func:`doc_text`)."""
    with quiet_ir_datasets():
        for doc in open_dataset(dataset_id).docs_iter():
            yield doc_text(doc)


# The version of the text rules below (doc_text, query_text): part of every embedding cache key,
# bumped when the text fed to the encoder changes, so caches of the old texts are never reused.
TEXT_FORMAT = 1


def query_text(query: Any) -> str:
    """The text drbench encodes for an ir_datasets query: its ``text``, else ``default_text()``."""
    text = getattr(query, "text", None)
    return text if isinstance(text, str) else query.default_text()


def doc_text(doc: Any) -> str:
    """The text drbench encodes for an ir_datasets doc: ``title + " " + text``.

    The title is left out when it is empty or the text already starts with it (Cranfield's
    texts repeat their titles). Doc classes without a ``text`` field use ``default_text()``.
    """
    text = getattr(doc, "text", None)
    if not isinstance(text, str):
        return doc.default_text()
    title = getattr(doc, "title", None)
    if not isinstance(title, str) or not title.strip() or _starts_with(text, title):
        return text
    return f"{title} {text}"


def _starts_with(text: str, title: str) -> bool:
    # Compare without whitespace: Cranfield wraps titles and texts at different places.
    flat_title = "".join(title.split()).lower()
    flat_text = "".join(text[: 2 * len(title) + 20].split()).lower()
    head = flat_text[: len(flat_title)]
    return head == flat_title or (
        difflib.SequenceMatcher(None, flat_title, head).ratio() >= _TITLE_MATCH_RATIO)


def _positive_qrels(dataset: Any, dataset_id: str) -> dict[str, dict[str, int]]:
    # Only relevance > 0 is kept: ranx treats gains linearly, so a negative judgment (Cranfield
    # uses -1) would subtract from nDCG, and zero is non-relevant anyway. Keeping only positives
    # also lets "queries with a qrel" mean "queries that can be answered".
    qrels: dict[str, dict[str, int]] = {}
    for qrel in dataset.qrels_iter():
        if qrel.relevance > 0:
            judged = qrels.setdefault(qrel.query_id, {})
            judged[qrel.doc_id] = max(qrel.relevance, judged.get(qrel.doc_id, 0))
    if not qrels:
        raise DataError(f"collection {dataset_id!r} has no qrels with relevance > 0; "
                        "pick a split with relevance judgments")
    return qrels


def _queries(dataset: Any, qrels: dict[str, dict[str, int]], dataset_id: str) -> dict[str, str]:
    queries: dict[str, str] = {}
    for query in dataset.queries_iter():
        if query.query_id in qrels:
            queries[query.query_id] = query_text(query)
    orphans = [qid for qid in qrels if qid not in queries]
    if orphans:  # judged but never asked: drop them so every qrels query can be scored
        log.warning("%s: %d judged queries have no text and are dropped (e.g. %s)",
                    dataset_id, len(orphans), orphans[0])
        for qid in orphans:
            del qrels[qid]
    if not queries:
        raise DataError(f"collection {dataset_id!r} has no queries with a positive qrel; "
                        "pick another split")
    return queries


def _fill_digests(records: list[ArchiveRecord]) -> list[ArchiveRecord]:
    """Hash archives that ir_datasets has just downloaded, so every record has a sha256."""
    import ir_datasets

    home = Path(ir_datasets.util.home_path())
    filled = []
    for record in records:
        path = home / record.relpath
        if record.sha256 is None and path.is_file():
            record = record._replace(sha256=cached_sha256(path))
        filled.append(record)
    return filled
