"""A test collection: doc ids, queries and positive qrels in memory; document texts read from
ir_datasets when first needed (:class:`~harness.data.doc_texts.DocTexts`).

Loaded once through the ir_datasets API, after ``ensure_available`` has made sure the archives
are on disk, and handed to the model and evaluation stages as one frozen object.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.archives import require_parts
from harness.data.availability import (ArchiveRecord, cached_sha256, check_dataset_id,
                                       ensure_available)
from harness.data.doc_texts import DocTexts
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
    """Load ``dataset_id`` through ir_datasets, fetching its archives from ``mirror`` if needed.

    >>> c = load_collection("cranfield", Path("../shared/data/ir_datasets"))
    >>> len(c.doc_ids), len(c.queries)
    (1400, 225)
    """
    import ir_datasets

    check_dataset_id(dataset_id)
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
        docs_id=ir_datasets.docs_parent_id(dataset_id),
        doc_ids=doc_ids,
        doc_texts=DocTexts(dataset_id, len(doc_ids), lambda: _texts(dataset_id)),
        queries=queries,
        qrels=qrels,
        archives=tuple(_fill_digests(records)),
    )


def open_dataset(dataset_id: str) -> Any:
    """The ir_datasets dataset object behind `dataset_id` (docs_iter, queries_iter, qrels_iter,
    docs_store), its archives not fetched: call `ensure_available` first."""
    import ir_datasets

    return ir_datasets.load(dataset_id)


def _texts(dataset_id: str) -> Iterator[str]:
    """The texts drbench encodes, in corpus order, read afresh (see :func:`doc_text`)."""
    with quiet_ir_datasets():
        for doc in open_dataset(dataset_id).docs_iter():
            yield doc_text(doc)


def docs_count(dataset_id: str) -> int | None:
    """Number of documents from ir_datasets' metadata, without loading anything; None if unknown."""
    import ir_datasets

    check_dataset_id(dataset_id)
    with quiet_ir_datasets():
        return ir_datasets.load(dataset_id).docs_count()


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


@contextlib.contextmanager
def quiet_ir_datasets() -> Iterator[None]:
    """Silence ir_datasets' INFO logging and tqdm bars; drbench shows its own progress.

    ir_datasets has no switch for its bars and tqdm reads TQDM_DISABLE only when imported, so
    its cached tqdm module is swapped for one whose bars are disabled, and restored after.
    """
    import ir_datasets
    import tqdm

    logger = ir_datasets.log.easy().logger()  # created first: creating it resets it to INFO
    cache = getattr(ir_datasets.lazy_libs, "_cache", None)

    class QuietTqdm(tqdm.tqdm):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    level, pbar_env = logger.level, os.environ.get("IR_DATASETS_DL_DISABLE_PBAR")
    had_tqdm, old_tqdm = (cache is not None and "tqdm" in cache), (cache or {}).get("tqdm")
    logger.setLevel(logging.WARNING)
    os.environ["IR_DATASETS_DL_DISABLE_PBAR"] = "true"
    if isinstance(cache, dict):
        cache["tqdm"] = types.SimpleNamespace(tqdm=QuietTqdm)
    try:
        yield
    finally:
        logger.setLevel(level)
        if pbar_env is None:
            os.environ.pop("IR_DATASETS_DL_DISABLE_PBAR", None)
        else:
            os.environ["IR_DATASETS_DL_DISABLE_PBAR"] = pbar_env
        if isinstance(cache, dict):
            if had_tqdm:
                cache["tqdm"] = old_tqdm
            else:
                cache.pop("tqdm", None)
