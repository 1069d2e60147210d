"""End to end on Cranfield from the offline mirror with the tiny model: runs, skips, re-runs,
reproducibility, atomicity when a run dies half-way, and failing fast when a collection is missing.

The first run is shared with test_cli.py through `end_to_end` (cached per session); tests that
change a store work on a copy of it, and reuse its embedding cache so nothing is encoded twice.
"""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import harness.pipeline.run as pipeline_run
from harness.cli import app
from harness.data import availability
from harness.index import faiss_index
from harness.pipeline import Outcome, RunOptions, run_recipe
from harness.errors import RecipeError
from harness.recipe import load_recipe, parse_recipe
from harness.store import db as store_db

DEPTH = 100
RUNS = {("bm25", "bm25"), ("zero-shot", "Flat"), ("zero-shot", "PQ8")}
RECIPE = """\
[experiment]
name = "e2e"
seed = 7
store = "{folder}/drbench.db"
cache_dir = "{folder}/cache"

[model]
base = "{model}"
batch_size = 128

[data]
eval = ["{collection}"]

[eval]
indexes = ["Flat", "PQ8"]
metrics = ["ndcg@10", "mrr@10", "recall@100"]
depth = {depth}

[variant.bm25]
kind = "bm25"
{bm25_extra}
[variant.zero-shot]
kind = "zero-shot"
"""


@dataclass(frozen=True)
class EndToEnd:
    folder: Path
    recipe: Path
    store: Path
    cache: Path
    outcomes: tuple[Outcome, ...]


_SHARED: list[EndToEnd] = []


def write_recipe(folder: Path, model: Path, *, bm25_extra: str = "",
                 collection: str = "cranfield") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.toml"
    path.write_text(RECIPE.format(folder=folder, model=model, collection=collection, depth=DEPTH,
                                  bm25_extra=bm25_extra))
    return path


def run(recipe: Path, mirror: Path, **options: object) -> tuple[list[Outcome], str]:
    log = io.StringIO()
    outcomes = run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror), **options),
                          Console(file=log, width=200))
    return outcomes, log.getvalue()


def end_to_end(tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_model: Path) -> EndToEnd:
    """The recipe run once per session into its own store (never changed afterwards)."""
    if not _SHARED:
        folder = tmp_path_factory.mktemp("e2e")
        recipe = write_recipe(folder, tiny_model)
        outcomes, _ = run(recipe, mirror)
        _SHARED.append(EndToEnd(folder, recipe, folder / "drbench.db", folder / "cache", tuple(outcomes)))
    return _SHARED[0]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_model: Path) -> EndToEnd:
    return end_to_end(tmp_path_factory, mirror, tiny_model)


def read_store(path: Path) -> dict[tuple[str, str], dict]:
    """{(variant, index): run row plus metrics, per-query metrics and result counts}."""
    with closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        runs = {}
        for row in conn.execute("SELECT * FROM runs"):
            run_id = row["id"]
            runs[(row["variant"], row["index_factory"])] = {
                **dict(row),
                "metrics": dict(conn.execute("SELECT metric, value FROM metrics WHERE run_id = ?",
                                             (run_id,)).fetchall()),
                "query_metrics": {(q, m): v for q, m, v in conn.execute(
                    "SELECT query_id, metric, value FROM query_metrics WHERE run_id = ?", (run_id,))},
                "results": conn.execute("SELECT query_id, doc_id, rank, score FROM results "
                                        "WHERE run_id = ? ORDER BY query_id, rank", (run_id,)).fetchall(),
            }
    return runs


def assert_only_complete_runs(path: Path) -> dict[tuple[str, str], dict]:
    runs = read_store(path)
    for key, stored in runs.items():
        assert stored["metrics"] and stored["query_metrics"] and stored["results"], key
    return runs


def copy_store(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return target


# --- the first run --------------------------------------------------------------------------

def test_every_variant_and_index_is_stored_complete_and_paired(e2e: EndToEnd) -> None:
    assert {(o.variant, o.index, o.status) for o in e2e.outcomes} == {(*r, "done") for r in RUNS}
    runs = assert_only_complete_runs(e2e.store)
    assert set(runs) == RUNS
    for key, stored in runs.items():
        assert stored["status"] == "complete" and stored["n_queries"] == 225, key
        assert set(stored["metrics"]) == {"ndcg@10", "mrr@10", "recall@100"}
        per_query = stored["query_metrics"]
        assert len(per_query) == 3 * 225  # every judged query, every metric, every run
        mean = sum(v for (_, m), v in per_query.items() if m == "ndcg@10") / 225
        assert stored["metrics"]["ndcg@10"] == pytest.approx(mean)


def test_bm25_is_sane_on_cranfield(e2e: EndToEnd) -> None:
    metrics = read_store(e2e.store)[("bm25", "bm25")]["metrics"]
    assert 0.3 < metrics["ndcg@10"] < 0.6 and metrics["recall@100"] > 0.6


def test_results_are_ranked_up_to_depth(e2e: EndToEnd) -> None:
    for key, stored in read_store(e2e.store).items():
        per_query: dict[str, list[tuple[int, float]]] = {}
        for query_id, _, rank, score in stored["results"]:
            per_query.setdefault(query_id, []).append((rank, score))
        assert len(per_query) == 225 and max(map(len, per_query.values())) == DEPTH, key
        for ranked in per_query.values():
            assert [r for r, _ in ranked] == list(range(1, len(ranked) + 1))
            assert all(a >= b for (_, a), (_, b) in zip(ranked, ranked[1:]))
        if key[0] == "zero-shot":  # dense search always fills the depth
            assert set(map(len, per_query.values())) == {DEPTH}


def test_provenance_is_stored(e2e: EndToEnd) -> None:
    text = e2e.recipe.read_text()
    with closing(sqlite3.connect(e2e.store)) as conn:
        name, recipe_text, recipe_hash, packages, seed = conn.execute(
            "SELECT name, recipe_text, recipe_hash, packages, seed FROM experiments").fetchone()
    assert (name, recipe_text, seed) == ("e2e", text, 7)
    assert recipe_hash == hashlib.sha256(text.encode()).hexdigest()
    assert '"numpy"' in packages and '"ranx"' in packages
    runs = read_store(e2e.store)
    assert {(r["seed"], r["recipe_hash"], r["depth"]) for r in runs.values()} == {(7, recipe_hash, DEPTH)}
    assert '"cranfield/cran.tar.gz"' in runs[("bm25", "bm25")]["data"]
    assert '"fingerprint"' in runs[("zero-shot", "Flat")]["model"]
    assert '"search"' in runs[("zero-shot", "PQ8")]["timings"]


# --- re-runs --------------------------------------------------------------------------------

def test_second_run_skips_everything(e2e: EndToEnd, mirror: Path) -> None:
    before = read_store(e2e.store)
    outcomes, log = run(e2e.recipe, mirror)
    assert {(o.variant, o.index, o.status) for o in outcomes} == {(*r, "skipped") for r in RUNS}
    assert "encod" not in log  # neither encoded nor even read from the cache
    assert read_store(e2e.store) == before


def test_a_run_keeps_ranx_compiled_functions_in_its_cache(e2e: EndToEnd, mirror: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """numba's cache folder comes from the run's cache folder, chosen before anything evaluates."""
    chosen: list[Path] = []
    monkeypatch.setattr(pipeline_run, "use_numba_cache", chosen.append)
    run(e2e.recipe, mirror)
    assert chosen == [e2e.cache]


def test_force_reruns_reproducibly_from_cached_embeddings(e2e: EndToEnd, mirror: Path,
                                                          tmp_path: Path) -> None:
    store = copy_store(e2e.store, tmp_path / "copy.db")
    outcomes, log = run(e2e.recipe, mirror, force=True, store=str(store))
    assert {(o.variant, o.index, o.status) for o in outcomes} == {(*r, "done") for r in RUNS}
    assert "corpus embeddings of cranfield from cache" in log
    assert {o.timings["encode_docs"] for o in outcomes if o.variant == "zero-shot"} == {0.0}
    first, again = read_store(e2e.store), read_store(store)
    for key in RUNS:  # same recipe and seed: the same numbers and rankings, to the bit
        assert again[key]["id"] != first[key]["id"]
        for part in ("run_key", "metrics", "query_metrics", "results"):
            assert again[key][part] == first[key][part], (key, part)


def test_changed_param_reruns_only_that_variant(e2e: EndToEnd, mirror: Path, tiny_model: Path,
                                                tmp_path: Path) -> None:
    store = copy_store(e2e.store, tmp_path / "copy.db")
    recipe = write_recipe(tmp_path, tiny_model, bm25_extra="k1 = 0.9")
    outcomes, _ = run(recipe, mirror, store=str(store), cache_dir=str(e2e.cache))
    assert {(o.variant, o.index): o.status for o in outcomes} == {
        ("bm25", "bm25"): "done", ("zero-shot", "Flat"): "skipped", ("zero-shot", "PQ8"): "skipped"}
    first, changed = read_store(e2e.store), read_store(store)
    assert changed[("bm25", "bm25")]["run_key"] != first[("bm25", "bm25")]["run_key"]
    assert changed[("bm25", "bm25")]["results"] != first[("bm25", "bm25")]["results"]
    assert changed[("zero-shot", "Flat")]["id"] == first[("zero-shot", "Flat")]["id"]


def test_new_codebook_training_reruns_only_compressed_runs(e2e: EndToEnd, mirror: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # A run on PQ8 stored before the codebooks trained another way holds other codes: re-run it.
    store = copy_store(e2e.store, tmp_path / "copy.db")
    monkeypatch.setattr(faiss_index, "CODEBOOK_VERSION", faiss_index.CODEBOOK_VERSION + 1)
    outcomes, _ = run(e2e.recipe, mirror, store=str(store), cache_dir=str(e2e.cache))
    assert {(o.variant, o.index): o.status for o in outcomes} == {
        ("bm25", "bm25"): "skipped", ("zero-shot", "Flat"): "skipped", ("zero-shot", "PQ8"): "done"}
    first, again = read_store(e2e.store), read_store(store)
    assert again[("zero-shot", "PQ8")]["run_key"] != first[("zero-shot", "PQ8")]["run_key"]


# --- atomicity ------------------------------------------------------------------------------

def _fail_on_second_call(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
    real, calls = getattr(owner, name), []

    def flaky(*args, **kwargs):
        calls.append(1)
        out = real(*args, **kwargs)  # the insert half-happens before the failure
        if len(calls) == 2:
            raise RuntimeError("stage failed")
        return out
    monkeypatch.setattr(owner, name, flaky)


@pytest.mark.parametrize("owner, name", [(pipeline_run, "evaluate"),
                                         (store_db, "_insert_children")], ids=["evaluate", "insert"])
def test_failure_between_runs_leaves_only_complete_runs(e2e: EndToEnd, mirror: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        owner: object, name: str) -> None:
    store, options = tmp_path / "fresh.db", {"cache_dir": str(e2e.cache)}
    with monkeypatch.context() as patch:
        _fail_on_second_call(patch, owner, name)
        with pytest.raises(RuntimeError, match="stage failed"):
            run(e2e.recipe, mirror, store=str(store), **options)
    assert set(assert_only_complete_runs(store)) == {("bm25", "bm25")}
    outcomes, _ = run(e2e.recipe, mirror, store=str(store), **options)
    assert {(o.variant, o.status) for o in outcomes} == {("bm25", "skipped"), ("zero-shot", "done")}
    assert set(assert_only_complete_runs(store)) == RUNS


def test_sigkill_mid_run_then_resume(e2e: EndToEnd, mirror: Path, tmp_path: Path) -> None:
    store = tmp_path / "killed.db"
    # A fresh cache dir: the child encodes Cranfield (seconds) right after the BM25 run is stored.
    command = [sys.executable, "-m", "harness.cli", "run", str(e2e.recipe), "--mirror", str(mirror),
               "--store", str(store), "--cache-dir", str(tmp_path / "cache")]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "COLUMNS": "200"})
    watchdog = threading.Timer(300, child.kill)
    watchdog.start()
    try:
        seen = []
        for line in child.stderr:
            seen.append(line)
            if "done bm25 " in line:  # the run stored (not a stage's plain "...: done" progress line)
                child.kill()
                break
    finally:
        watchdog.cancel()
        child.kill()
        child.wait()
    assert any("done bm25" in line for line in seen), "".join(seen)
    assert set(assert_only_complete_runs(store)) == {("bm25", "bm25")}  # killed while encoding
    outcomes, _ = run(e2e.recipe, mirror, store=str(store), cache_dir=str(e2e.cache))
    assert {(o.variant, o.status) for o in outcomes} == {("bm25", "skipped"), ("zero-shot", "done")}
    assert set(assert_only_complete_runs(store)) == RUNS


def test_store_depth_keeps_fewer_documents_and_the_same_metrics(e2e: EndToEnd, mirror: Path, tmp_path: Path) -> None:
    text = e2e.recipe.read_text().replace("depth = 100", "depth = 100\nstore_depth = 10")
    recipe = tmp_path / "shallow.toml"
    recipe.write_text(text.split("[variant.zero-shot]")[0])  # BM25 only: seconds
    run(recipe, mirror, store=str(tmp_path / "shallow.db"))
    shallow, full = read_store(tmp_path / "shallow.db"), read_store(e2e.store)
    bm25 = shallow[("bm25", "bm25")]
    assert bm25["metrics"] == full[("bm25", "bm25")]["metrics"]  # recall@100 too: computed at depth 100
    assert bm25["query_metrics"] == full[("bm25", "bm25")]["query_metrics"]
    assert max(rank for *_, rank, _ in bm25["results"]) == 10 and len(bm25["results"]) < len(
        full[("bm25", "bm25")]["results"])
    with pytest.raises(RecipeError, match=r"\[eval\] store_depth = 200: deeper than depth = 100"):
        parse_recipe(text.replace("store_depth = 10", "store_depth = 200"), "r.toml")


# --- a collection that cannot be had --------------------------------------------------------

def test_missing_collection_offline_fails_fast(mirror: Path, tiny_model: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("[Errno 101] Network is unreachable")
    monkeypatch.setattr(availability.socket, "create_connection", refuse)
    recipe = write_recipe(tmp_path, tiny_model, collection="antique/test")  # not in the mirror
    start = time.monotonic()
    result = CliRunner().invoke(app, ["run", str(recipe), "--mirror", str(mirror)])
    assert time.monotonic() - start < 20
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    [message] = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "'antique/test' is not cached" in message and "--mirror" in message


def test_a_dense_evaluation_streams_the_corpus_texts(tmp_path: Path, mirror: Path, tiny_model: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Encoding reads the texts in chunks; nothing in a zero-shot run reads them by row, so they are
    never all held at once (what lets MS MARCO's 8.8M passages through)."""
    from harness.data.doc_texts import DocTexts

    def by_row(self, index):
        raise AssertionError("a text was read by row")

    monkeypatch.setattr(DocTexts, "__getitem__", by_row)
    recipe = write_recipe(tmp_path, tiny_model)
    text = recipe.read_text()
    recipe.write_text(text[:text.index("[variant.bm25]")] + '[variant.zero-shot]\nkind = "zero-shot"\n')
    outcomes, _ = run(recipe, mirror)
    assert {(o.variant, o.index, o.status) for o in outcomes} == {("zero-shot", "Flat", "done"),
                                                                 ("zero-shot", "PQ8", "done")}
