"""What the drill-down shows beside document ids: query texts, document titles, relevance labels.

The store keeps rankings and scores, not texts or qrels, so they are read through ir_datasets from
the collection itself (its archives fetched from the offline mirror where needed), by the rules the
encoder's texts are made by (`harness.data.collection`); a holdout dev split is read as the
training split it is held out of (`harness.data.holdout`). When the collection cannot be read
here, the drill-down still shows ids, scores and per-query metrics, and the page says why the
texts are missing.
"""

from __future__ import annotations

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


def read_texts(collection: str, query_ids: Iterable[str], doc_ids: Iterable[str],
               mirror: Path | None = None) -> Texts:
    """The texts and labels of `query_ids`, the titles of `doc_ids` and of every document judged
    relevant to one of the queries, in `collection` (see the module docstring)."""
    from harness.data.catalog import ensure_available, open_dataset
    from harness.data.collection import query_text, quiet_ir_datasets
    from harness.data.holdout import held_out_of

    name = held_out_of(collection)  # a holdout dev split's texts and qrels are its training split's
    wanted_queries, wanted_docs = set(query_ids), set(doc_ids)
    try:
        with quiet_ir_datasets():
            ensure_available(name, mirror)
            dataset = open_dataset(name)
            queries = {q.query_id: query_text(q) for q in dataset.queries_iter() if q.query_id in wanted_queries}
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


def _title(doc: object) -> str:
    """The document's title, else the start of the text drbench encodes for it."""
    from harness.data.collection import doc_text

    title = (getattr(doc, "title", None) or "").strip()
    if title:
        return title
    text = " ".join(doc_text(doc).split())
    return text if len(text) <= _TITLE_CHARS else text[:_TITLE_CHARS - 1] + "…"
