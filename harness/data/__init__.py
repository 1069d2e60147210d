"""Collections: which archives a dataset needs, where they come from, and loading them.

``availability`` never imports ir_datasets at module level (so ``validate`` and ``ls`` stay
light); ``collection`` loads docs, queries and positive qrels through the ir_datasets API.
"""

from harness.data.availability import (Archive, ArchiveRecord, archives_for, check_dataset_id,
                                       ensure_available, known_dataset_ids, resolve_mirror)
from harness.data.collection import Collection, doc_text, docs_count, load_collection

__all__ = [
    "Archive",
    "ArchiveRecord",
    "Collection",
    "archives_for",
    "check_dataset_id",
    "doc_text",
    "docs_count",
    "ensure_available",
    "known_dataset_ids",
    "load_collection",
    "resolve_mirror",
]
