"""The per-query drill-down: for the queries where the systems disagree most, each system's top
10 with titles and relevance labels, and every system's per-query metrics. This is where a
reader sees *why* one system wins.

Its data goes into the page as JSON, which the page's script renders when a query is picked. A
system of several seeds shows the rankings of its first seed's run and per-query metrics averaged
over its seeds (the numbers `drbench compare` tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from harness.store import ranks_of, run_results
from leaderboard.report.texts import Texts
from leaderboard.select import System

TOP = 10
RELEVANT = 20  # judged relevant documents listed per query, highest grade first


def drill_down(db: Any, systems: list[System], scores: dict[str, tuple[list[str], dict[int, np.ndarray]]],
               read_texts: Callable[[list[str], list[str]], Texts], limit: int) -> dict[str, Any]:
    """JSON-ready drill-down of one collection.

    `scores` maps each metric (the first one orders the queries) to (query ids, {system run id:
    per-query means over seeds}); `limit` caps the queries shown (0: all), keeping those with the
    widest spread between the best and worst system on the first metric."""
    metrics = list(scores)
    query_ids, first = scores[metrics[0]]
    spread = np.ptp(np.vstack([first[s.run_id] for s in systems]), axis=0)
    order = sorted(range(len(query_ids)), key=lambda i: (-spread[i], query_ids[i]))
    shown = order[:limit] if limit else order
    chosen = [query_ids[i] for i in shown]
    wanted = set(chosen)
    rankings = {s.run_id: {q: ranked for q, ranked in run_results(db, s.run_id, TOP).items() if q in wanted}
                for s in systems}
    shown_docs = {doc for ranked in rankings.values() for top in ranked.values() for doc, _ in top}
    texts = read_texts(chosen, sorted(shown_docs))
    position = {q: i for i, q in enumerate(query_ids)}
    relevant = {q: sorted((d for d, grade in texts.qrels.get(q, {}).items() if grade > 0),
                          key=lambda d: (-texts.qrels[q][d], d))[:RELEVANT] for q in chosen}
    pairs = [(q, d) for q, docs in relevant.items() for d in docs]
    ranks = {s.run_id: ranks_of(db, s.run_id, pairs) for s in systems} if pairs else {}
    queries = []
    for q, i in zip(chosen, shown):
        judged = texts.qrels.get(q, {})
        queries.append({
            "id": q, "text": texts.queries.get(q, ""), "spread": round(float(spread[i]), 4),
            "relevant": sum(1 for grade in judged.values() if grade > 0),
            "metrics": [[round(float(scores[m][1][s.run_id][position[q]]), 4) for m in metrics] for s in systems],
            "top": [[[doc, round(float(score), 4), judged.get(doc)] for doc, score in rankings[s.run_id].get(q, [])]
                    for s in systems],
            "judged": [[doc, judged[doc], [ranks[s.run_id].get((q, doc)) for s in systems]] for doc in relevant[q]],
        })
    return {"systems": [s.label for s in systems], "seeds": [list(s.seeds) for s in systems], "metrics": metrics,
            "queries": queries, "titles": {d: texts.titles[d] for d in sorted(shown_docs | {d for _, d in pairs})
                                           if d in texts.titles},
            "covered": len(chosen), "total": len(query_ids), "judged": not texts.missing,
            "missing": texts.missing, "top": TOP}
