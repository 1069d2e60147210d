"""BM25 (harness/retrieval/bm25.py and the `bm25` kind): rankings on a hand-made corpus, its
parameters' checks, and the kind handing the recipe's settings to the engine."""

from __future__ import annotations

import pytest

from harness.api.registry import kind
from harness.data.collection import Collection
from harness.retrieval.bm25 import BM25Params, bm25_search, stemmer_problem

DOC_IDS = ("d0", "d1", "d2", "d3")
DOC_TEXTS = ("the cat sat on the mat", "dogs chase cats in the park", "a cat and a cat and a cat",
             "stock markets fell sharply")


def search(queries: dict[str, str], k: int = 10, **changes: object) -> dict[str, list[tuple[str, float]]]:
    settings = {**BM25Params().as_dict(), **changes}
    return bm25_search(DOC_IDS, DOC_TEXTS, queries, k=k, **settings)


def test_ranks_by_term_frequency_and_drops_documents_sharing_no_term() -> None:
    ranked = search({"q": "cat"})["q"]
    assert [d for d, _ in ranked] == ["d2", "d0", "d1"]  # three cats, one cat, "cats" stemmed to cat
    assert all(a[1] > b[1] for a, b in zip(ranked, ranked[1:]))
    assert "d3" not in dict(ranked)  # score 0: no shared term


def test_stemming_is_what_matches_plural_forms() -> None:
    assert "d1" in dict(search({"q": "cat"})["q"])
    assert "d1" not in dict(search({"q": "cat"}, stemmer="none")["q"])


def test_k_caps_the_ranking_and_every_query_gets_an_entry() -> None:
    results = search({"q": "cat", "empty": "zebra"}, k=1)
    assert [d for d, _ in results["q"]] == ["d2"]
    assert results["empty"] == []


def test_k1_changes_scores_not_the_set_of_matches() -> None:
    low, high = search({"q": "cat"}, k1=0.1)["q"], search({"q": "cat"}, k1=3.0)["q"]
    assert {d for d, _ in low} == {d for d, _ in high}
    assert dict(low)["d2"] != pytest.approx(dict(high)["d2"])


def test_stemmer_problem_names_the_closest_algorithm() -> None:
    assert stemmer_problem("english") is None and stemmer_problem("none") is None
    assert 'did you mean "english"' in stemmer_problem("englsh")


def test_the_bm25_kind_ranks_a_collection_with_its_params() -> None:
    collection = Collection("toy", "toy", DOC_IDS, DOC_TEXTS, {"q": "cat"}, {"q": {"d2": 1}}, ())
    bm25 = kind("bm25")
    assert bm25.family == "sparse" and bm25.Params is BM25Params
    ranked = bm25.rank(collection, BM25Params(stemmer="none"), depth=5)
    assert [d for d, _ in ranked["q"]] == ["d2", "d0"]
