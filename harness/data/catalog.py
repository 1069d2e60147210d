"""Every collection name drbench takes, and where it comes from.

A name is one of three things:

* an ir_datasets id (`beir/scifact/test`): archives under IR_DATASETS_HOME (:mod:`availability`);
* a split of files a recipe declares (`mine/test` for `[collections.mine] format = "beir"`):
  checked and hashed by :mod:`harness.data.local`;
* a part of a declared query split (`cran/train` for `[collections.cran] from = "cranfield"`):
  a seeded partition of another collection's judged queries, over its documents.

The functions here answer the same questions for all three (is the name known, make it
available, what identifies it, the ir_datasets dataset behind it), so that loading, keys, the
plan and the report never ask which kind a name is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.archives import ArchiveRecord, check_dataset_id, check_dataset_parts
from harness.data.local.check import Summary, check_collection
from harness.data.local.declared import FileCollection, QuerySplit, lookup, split_problem
from harness.errors import DataError


def check_name(dataset_id: str) -> None:
    """DataError unless `dataset_id` names a split drbench can load (nothing is read but
    ir_datasets' registry and, for a BEIR folder, the names of its qrels files)."""
    found = lookup(dataset_id)
    if found is None:
        check_dataset_id(dataset_id)
        check_dataset_parts(dataset_id)
        return
    collection, split = found
    if problem := split_problem(collection, split):
        raise DataError(f"collection {dataset_id!r}: {problem}")
    if isinstance(collection, QuerySplit):
        source = lookup(collection.source)
        if source is not None and isinstance(source[0], QuerySplit):
            raise DataError(f"[collections.{collection.name}] from = {collection.source!r}: splits are taken "
                            "of an ir_datasets id or a declared file collection's split, not of another split")
        check_name(collection.source)


def ensure_available(dataset_id: str, mirror: Path | None = None,
                     advance: Callable[[int], None] | None = None, probe_timeout: float = 3.0) -> list[ArchiveRecord]:
    """Make the collection's data readable and say what identifies it: for an ir_datasets id,
    its archives (fetched from `mirror` if needed); for declared files, each file's sha256 after
    the checks pass (:func:`harness.data.local.check.check_collection`); for a query split, its
    source's records and the partition's own digest."""
    from harness.data.availability import ensure_available as ensure_archives

    check_name(dataset_id)
    found = lookup(dataset_id)
    if found is None:
        return ensure_archives(dataset_id, mirror, probe_timeout)
    collection, split = found
    if isinstance(collection, FileCollection):
        summary = check_collection(collection, advance)
        return [ArchiveRecord(role, summary.files[role].sha256, "local")
                for role in collection.role_files(split)]
    records = ensure_available(collection.source, mirror, advance, probe_timeout)
    ids = partition(collection, mirror, probe_timeout)[str(split)]
    digest = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
    return [*records, ArchiveRecord(f"queries of {dataset_id}", digest, "local")]


def open_dataset(dataset_id: str) -> Any:
    """The ir_datasets dataset behind `dataset_id` (docs_iter, queries_iter, qrels_iter,
    docs_store); call :func:`ensure_available` first."""
    import ir_datasets

    found = lookup(dataset_id)
    if found is None:
        return ir_datasets.load(dataset_id)
    collection, split = found
    if isinstance(collection, FileCollection):
        from harness.data.local.dataset import file_dataset

        return file_dataset(collection, str(split), check_collection(collection))
    from ir_datasets.datasets.base import Dataset, FilteredQrels, FilteredQueries

    source = open_dataset(collection.source)
    ids = partition(collection, None)[str(split)]
    return Dataset(source.docs_handler(), FilteredQueries(source.queries_handler(), lambda: ids),
                   FilteredQrels(source.qrels_handler(), lambda: ids))


def docs_id(dataset_id: str) -> str:
    """What names the corpus of `dataset_id` in embedding keys: splits that share a corpus share
    it. ir_datasets' parent id; for declared files, the name and the corpus's sha256 (an edited
    corpus is another corpus); for a query split, its source's."""
    import ir_datasets

    found = lookup(dataset_id)
    if found is None:
        return ir_datasets.docs_parent_id(dataset_id)
    collection, _ = found
    if isinstance(collection, FileCollection):
        return f"{collection.name}@{check_collection(collection).files['corpus'].sha256[:16]}"
    return docs_id(collection.source)


def docs_count(dataset_id: str) -> int | None:
    """Documents in the corpus, without loading it where that is known (None where not)."""
    import ir_datasets

    from harness.data.quiet import quiet_ir_datasets

    found = lookup(dataset_id)
    if found is None:
        check_dataset_id(dataset_id)
        with quiet_ir_datasets():
            return ir_datasets.load(dataset_id).docs_count()
    collection, _ = found
    if isinstance(collection, FileCollection):
        return summary(dataset_id).documents if collection.docs.is_file() else None
    return docs_count(collection.source)


def declared_counts(dataset_id: str) -> tuple[int | None, int | None]:
    """(documents, judged queries) of a declared split, from its checks; None each where its
    data cannot be read here (nothing is fetched)."""
    found = lookup(dataset_id)
    assert found is not None, dataset_id
    collection, split = found
    try:
        if isinstance(collection, FileCollection):
            counts = check_collection(collection)
            return counts.documents, counts.splits[str(split)].judged
        return docs_count(collection.source), len(partition(collection, None, probe_timeout=0.0)[str(split)])
    except (DataError, KeyError):
        return None, None


def shared_queries(train: str, other: str, mirror: Path | None, probe_timeout: float = 3.0) -> int:
    """How many judged queries `other` shares with `train` over the same corpus (0 over another
    corpus: query ids of two collections need not mean the same queries)."""
    if docs_id(train) != docs_id(other):
        return 0
    return len(set(_judged_ids(train, mirror, probe_timeout)) & set(_judged_ids(other, mirror, probe_timeout)))


def is_file_collection(dataset_id: str) -> bool:
    """Whether `dataset_id` names a split of declared files."""
    found = lookup(dataset_id)
    return found is not None and isinstance(found[0], FileCollection)


def summary(dataset_id: str, advance: Callable[[int], None] | None = None) -> Summary:
    """The checks' counts of a declared file collection (`NAME` or `NAME/SPLIT`)."""
    found = lookup(dataset_id)
    if found is None or not isinstance(found[0], FileCollection):
        raise DataError(f"{dataset_id!r} is not a declared file collection")
    return check_collection(found[0], advance)


def partition(split: QuerySplit, mirror: Path | None, probe_timeout: float = 3.0) -> dict[str, frozenset[str]]:
    """The query ids of each part of `split` (`train`, `dev`, `test`, or `foldK/train` and
    `foldK/test`): the source's judged queries (relevance > 0), sorted, shuffled with the split's
    seed, and cut in order of the declared fractions (each part rounded, the last taking the
    rest); folds deal the shuffled queries round-robin. The same on every machine."""
    return _partition(split, _judged_ids(split.source, mirror, probe_timeout))


@lru_cache(maxsize=32)
def _partition(split: QuerySplit, judged: tuple[str, ...]) -> dict[str, frozenset[str]]:
    order = [judged[i] for i in np.random.default_rng(split.seed).permutation(len(judged))]
    if split.folds:
        parts = {}
        for k in range(split.folds):
            test = frozenset(order[k::split.folds])
            parts[f"fold{k + 1}/train"] = frozenset(q for q in order if q not in test)
            parts[f"fold{k + 1}/test"] = test
        parts["train"] = parts["test"] = frozenset(order)  # every fold at once: each query is in one test part
        return parts
    parts, start, total = {}, 0, 0.0
    for i, (name, fraction) in enumerate(split.fractions):
        total += fraction
        end = len(order) if i == len(split.fractions) - 1 else round(total * len(order))
        parts[name] = frozenset(order[start:end])
        start = end
    return parts


def _judged_ids(dataset_id: str, mirror: Path | None, probe_timeout: float) -> tuple[str, ...]:
    """The sorted ids of the queries with a positive qrel in `dataset_id`."""
    records = ensure_available(dataset_id, mirror, probe_timeout=probe_timeout)
    return _judged_ids_cached(dataset_id, tuple(r.sha256 or "" for r in records))


@lru_cache(maxsize=32)
def _judged_ids_cached(dataset_id: str, digests: tuple[str, ...]) -> tuple[str, ...]:
    from harness.data.quiet import quiet_ir_datasets

    with quiet_ir_datasets():
        return tuple(sorted({q.query_id for q in open_dataset(dataset_id).qrels_iter() if q.relevance > 0}))
