"""What the drill-down shows beside document ids: query texts, document titles, relevance labels.

The store keeps rankings and scores, not texts or qrels, so they are read through ir_datasets from
the collection itself (its archives fetched from the offline mirror where needed). When the
collection cannot be read here, the drill-down still shows ids, scores and per-query metrics, and
the page says why the texts are missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import DrbenchError

_TITLE_CHARS = 120


@dataclass(frozen=True)
class Texts:
    """Query texts, document titles and qrels ({query: {doc: grade}}) for one collection;
    `missing` says why they could not be read (everything else empty then)."""

    queries: dict[str, str] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    missing: str | None = None


def dataset_id(collection: str) -> str:
    """The ir_datasets id behind a stored collection name: a holdout dev split is stored as
    `beir/scifact/train[holdout:0.1]`, whose texts and qrels are the training split's.

    >>> dataset_id("beir/scifact/train[holdout:0.1]"), dataset_id("cranfield")
    ('beir/scifact/train', 'cranfield')
    """
    return re.sub(r"\[[^\]]*\]$", "", collection)


def read_texts(collection: str, query_ids: Iterable[str], doc_ids: Iterable[str],
               mirror: Path | None = None) -> Texts:
    """The texts and labels of `query_ids`, the titles of `doc_ids` and of every document judged
    relevant to one of the queries, in `collection` (see the module docstring)."""
    from harness.data.availability import ensure_available
    from harness.data.collection import quiet_ir_datasets

    name = dataset_id(collection)
    wanted_queries, wanted_docs = set(query_ids), set(doc_ids)
    try:
        with quiet_ir_datasets():
            ensure_available(name, mirror)
            import ir_datasets

            dataset = ir_datasets.load(name)
            queries = {q.query_id: _query_text(q) for q in dataset.queries_iter() if q.query_id in wanted_queries}
            qrels: dict[str, dict[str, int]] = {}
            for qrel in dataset.qrels_iter():
                if qrel.query_id in wanted_queries:
                    qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
            wanted_docs |= {d for judged in qrels.values() for d, grade in judged.items() if grade > 0}
            docs = dataset.docs_store().get_many(sorted(wanted_docs))
            titles = {doc_id: _title(doc) for doc_id, doc in docs.items()}
    except (DrbenchError, KeyError, OSError) as exc:
        return Texts(missing=f"texts and labels of {name} could not be read here: {exc}")
    return Texts(queries, titles, qrels)


def _query_text(query: object) -> str:
    return str(getattr(query, "text", None) or getattr(query, "title", None) or query[1])  # type: ignore[index]


def _title(doc: object) -> str:
    """The document's title, else the start of its text."""
    title = (getattr(doc, "title", None) or "").strip()
    if title:
        return title
    text = " ".join(str(getattr(doc, "text", "") or "").split())
    return text if len(text) <= _TITLE_CHARS else text[:_TITLE_CHARS - 1] + "…"
