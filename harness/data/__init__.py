"""Collections: what a name means (`catalog`: an ir_datasets id, or files or query splits a
recipe declares, `local`), which archives an ir_datasets id needs and where they come from
(`availability`), and loading them (`collection`).

``availability`` never imports ir_datasets at module level (so ``validate`` and ``ls`` stay
light); ``collection`` loads docs, queries and positive qrels through the ir_datasets API.
"""

from harness.data.availability import Archive, ArchiveRecord, archives_for, known_dataset_ids, resolve_mirror
from harness.data.catalog import check_name, docs_count, ensure_available
from harness.data.collection import Collection, doc_text, load_collection

__all__ = [
    "Archive",
    "ArchiveRecord",
    "Collection",
    "archives_for",
    "check_name",
    "doc_text",
    "docs_count",
    "ensure_available",
    "known_dataset_ids",
    "load_collection",
    "resolve_mirror",
]
