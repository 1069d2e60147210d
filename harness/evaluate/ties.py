"""One tie-break for every ranking drbench stores, evaluates and exports: trec_eval's.

trec_eval orders a query's documents by score, highest first, and documents with equal scores
by document id in descending (byte) order. ranx keeps the order it is given, and ir_measures'
providers disagree with one another, so a run with ties could score differently in drbench and in
trec_eval on drbench's own exported file. Ties are common wherever a corpus has duplicate
documents (NFCorpus), and in BM25's long tail. drbench puts every ranked list in trec_eval's order
before it is evaluated or stored, so `trec_eval qrels <(drbench export-run ...)` gives drbench's
numbers.
"""

from __future__ import annotations


def trec_order(ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """`ranked` (doc id, score) pairs by score descending, ties by doc id descending.

    >>> trec_order([("a", 1.0), ("b", 2.0), ("c", 1.0)])
    [('b', 2.0), ('c', 1.0), ('a', 1.0)]
    """
    by_id = sorted(ranked, key=lambda pair: pair[0].encode(), reverse=True)
    return sorted(by_id, key=lambda pair: -pair[1])  # stable: equal scores keep the id order
