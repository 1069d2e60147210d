"""A declared collection's split as an ir_datasets dataset, built from ir_datasets' own parts.

Documents are ir_datasets' `BeirTitleDoc` (doc_id, text, title; an absent title is ""), queries
its `GenericQuery`, judgments its `TrecQrel`, all on its `BaseDocs`/`BaseQueries`/`BaseQrels`
interfaces, and the document store its `PickleLz4FullStore` (what the report's drill-down looks
titles up in), kept under IR_DATASETS_HOME by the corpus's sha256, so that it is built once per
corpus content wherever the folder moves. To every stage after loading, a declared collection is
an ir_datasets dataset like any other.

Not ir_datasets' `BeirDocs`/`BeirQrels` themselves: those require a `title` on every line and a
header row in every qrels file, and keep their store under `beir/<name>`, where two folders of one
name would share it; BEIR's own loader accepts both absences (:mod:`harness.data.local.read`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.data.local import read
from harness.data.local.check import Summary
from harness.data.local.declared import FileCollection


def file_dataset(collection: FileCollection, split: str, summary: Summary) -> Any:
    """The ir_datasets dataset of `collection`'s `split`: its documents, the queries that split
    judges, and the split's qrels."""
    import ir_datasets
    from ir_datasets.datasets.base import Dataset, FilteredQueries
    from ir_datasets.datasets.beir import BeirTitleDoc
    from ir_datasets.formats import BaseDocs, BaseQrels, BaseQueries, GenericQuery, TrecQrel
    from ir_datasets.indices import PickleLz4FullStore

    corpus_sha = summary.files["corpus"].sha256
    store_path = Path(ir_datasets.util.home_path()) / "drbench-local" / corpus_sha[:16] / "docs.pklz4"
    qrels_path = collection.splits()[split]
    qrels_reader = read.beir_qrels if collection.format == "beir" else read.trec_qrels

    class Docs(BaseDocs):  # type: ignore[misc]
        def docs_iter(self) -> Iterator[Any]:
            return _docs()  # streamed from the file; the store is built only when looked up

        def docs_cls(self) -> type:
            return BeirTitleDoc

        def docs_store(self, field: str = "doc_id") -> Any:
            return PickleLz4FullStore(path=str(store_path), init_iter_fn=_docs, data_cls=BeirTitleDoc,
                                      lookup_field=field, index_fields=["doc_id"], count_hint=summary.documents)

        def docs_count(self) -> int:
            return summary.documents

        def docs_namespace(self) -> str:
            return collection.name

        def docs_lang(self) -> None:
            return None

    def _docs() -> Iterator[Any]:
        for doc in read.docs(collection.docs):
            yield BeirTitleDoc(doc.doc_id, doc.text, doc.title)

    class Queries(BaseQueries):  # type: ignore[misc]
        def queries_iter(self) -> Iterator[Any]:
            for query in read.queries(collection.queries):
                yield GenericQuery(query.query_id, query.text)

        def queries_cls(self) -> type:
            return GenericQuery

        def queries_namespace(self) -> str:
            return collection.name

        def queries_lang(self) -> None:
            return None

    class Qrels(BaseQrels):  # type: ignore[misc]
        def qrels_iter(self) -> Iterator[Any]:
            for qrel in qrels_reader(qrels_path):
                yield TrecQrel(qrel.query_id, qrel.doc_id, qrel.relevance, "0")

        def qrels_cls(self) -> type:
            return TrecQrel

        def qrels_defs(self) -> dict[int, str]:
            return {}

        def qrels_path(self) -> str:
            return str(qrels_path)

    qrels = Qrels()
    return Dataset(Docs(), FilteredQueries(Queries(), lambda: {q.query_id for q in qrels.qrels_iter()},
                                           mode="include"), qrels)
