"""The training split as every strategy sees it: queries with a positive, documents by row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.data.collection import Collection


@dataclass(frozen=True)
class TrainData:
    """Training queries with at least one positive, documents addressed by row number."""

    query_ids: tuple[str, ...]
    queries: dict[str, str]
    positives: dict[str, tuple[int, ...]]
    doc_texts: Sequence[str]  # read into memory on the first access by row (see harness.data.doc_texts)
    relevance: dict[str, dict[int, int]] = field(default_factory=dict)  # graded, for delta-nDCG

    @classmethod
    def from_collection(cls, collection: Collection) -> TrainData:
        row = {doc_id: i for i, doc_id in enumerate(collection.doc_ids)}
        positives = {q: tuple(sorted(row[d] for d in rels if d in row))
                     for q, rels in collection.qrels.items()}
        query_ids = tuple(sorted(q for q, rows in positives.items() if rows and q in collection.queries))
        relevance = {q: {row[d]: r for d, r in rels.items() if d in row} for q, rels in collection.qrels.items()}
        return cls(query_ids, collection.queries, positives, collection.doc_texts, relevance)
