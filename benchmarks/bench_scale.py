"""Cost model for drbench on MS MARCO passage: per-document and per-query figures measured on
small samples here, extrapolated to 8,841,823 passages, 6,980 dev and 502,939 training queries.

Two encoders: the packaged all-MiniLM-L6-v2 (22M parameters, 384 dims) and a BERT-base-sized
one (110M, 768 dims: `transformers.BertConfig()` defaults, random weights, MiniLM's uncased
BERT tokenizer; nothing is downloaded). No MS MARCO text is here, so passages are SciFact
documents cut to their first 60 words (MS MARCO passages average about 56) and queries are
SciFact test queries cut to 6 words (MS MARCO queries average about 6).

Five measurement sections, each run in child processes of its own so that peak RSS
(``resource.getrusage``) belongs to that stage alone:

1. encode   drbench ``Encoder.encode``: docs/s and queries/s, fp32 and bf16, max_length 128,
            batch 64, the two precisions timed alternately (best of `--repeats`);
2. train    a STAR-like step at batch 32 (32 queries at 32 tokens, 32 positives + 32 hard
            negatives at 128 tokens) through ``Encoder.embed``, ``star_loss``, drbench's AdamW
            (``optimizer_for``), clipping at 1.0: 1 warm-up step, then 3 timed;
3. faiss    ``build_index`` / ``search`` / ``code_size`` for Flat and OPQ48,PQ48 at 384 and 768
            dims on synthetic unit vectors, at 100,000 and 300,000 documents, depth 1000 (and 200,
            about the STAR mining depth; best of 3 passes of 256 queries), faiss's default threads;
            and Flat again at the largest n in 1,024-query batches (faiss switches to BLAS only
            when queries x dim reaches its distance_compute_blas_threshold);
4. store    ``write_run`` of one synthetic 500-query x depth-1000 run into a fresh SQLite store,
            without and with per-query metrics (3 metrics);
5. memory   tracemalloc of the Python objects drbench holds per document / per result row, and
            of a bm25s index (drbench's BM25 settings) over the SciFact passages.

The machine may be shared (another process running a test suite): before each section the
script records ``os.getloadavg()`` and the cores other processes kept busy over 2 seconds
(/proc/stat; the 1-minute load average still includes this script's own previous section), and
waits 20 s (at most 3 times) while the load is above 1.5 with someone else busy.

    .venv/bin/python benchmarks/bench_scale.py                  # ~13 min on 2 quiet cores, 23 on busy ones
    .venv/bin/python benchmarks/bench_scale.py --sections store memory
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MSMARCO_DOCS = 8_841_823
MSMARCO_DEV = 6_980
MSMARCO_TRAIN = 502_939  # training queries with qrels (qrels.train.tsv)
MINING_DEPTH = 200
SECTIONS = ("encode", "train", "faiss", "store", "memory")
MODELS = {"minilm": {"params": "22M", "dim": 384}, "bert-base": {"params": "110M", "dim": 768}}
DATASET = "beir/scifact/test"
PASSAGE_WORDS, QUERY_WORDS = 60, 6
GiB = 1024 ** 3


# ----------------------------------------------------------------------------- shared helpers

def _collection(mirror: Path):
    from harness.data.collection import load_collection

    return load_collection(DATASET, mirror)


def _passages(collection, n: int | None = None) -> list[str]:
    texts = collection.doc_texts if n is None else collection.doc_texts[:n]
    return [" ".join(t.split()[:PASSAGE_WORDS]) for t in texts]


def _queries(collection, n: int) -> list[str]:
    qs = [" ".join(collection.queries[q].split()[:QUERY_WORDS]) for q in sorted(collection.queries)]
    return (qs * (n // len(qs) + 1))[:n]


def _model_path(name: str, workdir: Path) -> Path:
    """The packaged MiniLM, or a random-weight BERT-base saved beside MiniLM's tokenizer."""
    from harness.model.spec import resolve_model

    minilm = resolve_model("minilm")
    if name == "minilm":
        return minilm
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = workdir / "bert-base-random"
    if not (folder / "config.json").exists():
        torch.manual_seed(0)
        BertModel(BertConfig()).save_pretrained(folder)
        AutoTokenizer.from_pretrained(minilm).save_pretrained(folder)
    return folder


def _encoder(name: str, workdir: Path, precision: str, batch_size: int = 64):
    from harness.model.encoder import Encoder

    return Encoder(_model_path(name, workdir), pooling="mean", normalize=True, max_length=128,
                   batch_size=batch_size, precision=precision)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# ----------------------------------------------------------------------------- child sections

def child_encode(model: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from harness.model.compute import Compute

    collection = _collection(args.mirror)
    n_docs = args.minilm_docs if model == "minilm" else args.bert_docs
    passages, queries = _passages(collection, n_docs), _queries(collection, args.queries)
    workdir = Path(args.workdir)
    _model_path(model, workdir)  # build BERT-base's folder before the RSS baseline
    rss_before_model = _rss()
    enc = _encoder(model, workdir, "fp32")
    rss_model = _rss()
    computes = {"fp32": Compute("cpu", "fp32"), "bf16": Compute("cpu", "bf16")}
    tokens = enc.tokenizer(passages, truncation=True, max_length=128)["input_ids"]
    q_tokens = enc.tokenizer(queries, truncation=True, max_length=128)["input_ids"]
    out: dict[str, Any] = {"docs": len(passages), "queries": len(queries), "dim": enc.dim,
                           "params": sum(p.numel() for p in enc.model.parameters()),
                           "mean_doc_tokens": sum(map(len, tokens)) / len(tokens),
                           "truncated_docs": sum(len(t) >= 128 for t in tokens),
                           "mean_query_tokens": sum(map(len, q_tokens)) / len(q_tokens),
                           "threads": torch.get_num_threads(), "timings": {}}
    for precision, compute in computes.items():  # warm-up (oneDNN builds its bf16 kernels here)
        enc.compute = compute
        enc.encode(passages[:64])
    for _ in range(args.repeats):
        for precision, compute in computes.items():
            enc.compute = compute
            start = time.perf_counter()
            enc.encode(passages)
            docs_s = time.perf_counter() - start
            start = time.perf_counter()
            enc.encode(queries)
            q_s = time.perf_counter() - start
            t = out["timings"].setdefault(precision, {"docs": [], "queries": []})
            t["docs"].append(docs_s)
            t["queries"].append(q_s)
    out["rss_before_model"], out["rss_model"], out["peak_rss"] = rss_before_model, rss_model, _peak_rss()
    return out


def child_train(model: str, precision: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from harness.train.loop import optimizer_for
    from harness.train.losses import star_loss
    from harness.api.train_params import TrainParams

    collection = _collection(args.mirror)
    passages, queries = _passages(collection, 64 * (args.train_steps + 1)), _queries(collection, 32 * (args.train_steps + 1))
    enc = _encoder(model, Path(args.workdir), precision)
    params = TrainParams()
    optimizer, scheduler = optimizer_for(enc.model, params, total_steps=100)
    enc.model.train()
    rss_model = _rss()
    seconds = []
    for step in range(args.train_steps + 1):
        qs = queries[32 * step:32 * (step + 1)]
        ds = passages[64 * step:64 * (step + 1)]  # 32 positives then 32 hard negatives
        start = time.perf_counter()
        with enc.compute.autocast():
            q = enc.embed(qs, max_length=params.query_max_length)
            d = enc.embed(ds, max_length=params.doc_max_length)
            loss, _ = star_loss(q.float() * 20.0, d[:32].float(), d[32:].float(), None, None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(enc.model.parameters(), params.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - start)
    return {"warmup": seconds[0], "steps": seconds[1:], "rss_model": rss_model, "peak_rss": _peak_rss(),
            "params": sum(p.numel() for p in enc.model.parameters())}


def child_faiss(dim: int, args: argparse.Namespace) -> dict[str, Any]:
    import faiss
    import numpy as np

    from harness.index.faiss_index import BuiltIndex, build_index, code_size, search

    sizes = args.faiss_sizes
    rng = np.random.default_rng(dim)
    vectors = rng.standard_normal((max(sizes), dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    many = rng.standard_normal((max(args.faiss_queries, 1024), dim), dtype=np.float32)
    many /= np.linalg.norm(many, axis=1, keepdims=True)
    queries = many[:args.faiss_queries]
    out: dict[str, Any] = {"threads": faiss.omp_get_max_threads(), "indexes": {}}
    for factory in args.faiss_indexes:
        built = build_index(factory, vectors[:sizes[0]], seed=0, train_sample=args.opq_train_sample)
        rec: dict[str, Any] = {"code_size": code_size(built), "build_seconds": built.build_seconds,
                               "first_n": sizes[0], "search": {}}
        added, add_seconds = sizes[0], 0.0
        for n in sizes:
            if n > added:  # grow the same index: the extra rows' add time, no retraining
                start = time.perf_counter()
                for row in range(added, n, 16384):
                    built.index.add(vectors[row:min(n, row + 16384)])
                add_seconds += time.perf_counter() - start
                built = BuiltIndex(factory, built.index, built.build_seconds, built.index.ntotal)
                rec["add_rows"], rec["add_seconds"] = n - sizes[0], add_seconds
                added = n
            for k in (1000, MINING_DEPTH):  # best of 3: OpenMP threads suffer most from a busy machine
                rec["search"][f"{n}@{k}"] = min(search(built, queries, k)[2] for _ in range(3)) / len(queries)
        # faiss-cpu >= 1.14 computes Flat scores through BLAS only when queries x dim reaches
        # distance_compute_blas_threshold (128,000): drbench's 256-query batches at 384 dims do not.
        rec["blas_threshold"] = int(faiss.cvar.distance_compute_blas_threshold)
        rec["search_batch_1024"] = min(search(built, many[:1024], 1000, batch_size=1024)[2]
                                       for _ in range(3)) / 1024
        out["indexes"][factory] = rec
    out["train_sample"] = args.opq_train_sample
    return out


def child_store(args: argparse.Namespace) -> dict[str, Any]:
    import random
    import tracemalloc

    from harness.store import ExperimentRecord, RunRecord, open_store, utc_now, write_run

    rng = random.Random(0)
    n_q, depth = args.store_queries, 1000
    qids = [str(rng.randrange(1, 1_200_000)) for _ in range(n_q)]  # MS MARCO dev qids are 1-7 digits
    pool = {}  # doc-id strings shared across results, as drbench shares collection.doc_ids
    draws = [[rng.randrange(MSMARCO_DOCS) for _ in range(depth)] for _ in range(n_q)]
    for ranked in draws:
        for d in ranked:
            pool.setdefault(d, str(d))
    tracemalloc.start()
    results = {q: [(pool[d], 100.0 - 0.01 * r) for r, d in enumerate(ranked)] for q, ranked in zip(qids, draws)}
    results_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    metrics = ("ndcg@10", "mrr@10", "recall@100")
    exp = ExperimentRecord(name="scale", recipe_path=None, recipe_text="", recipe_hash="0" * 64, git_commit=None,
                           git_dirty=False, packages={}, python=sys.version.split()[0], platform=sys.platform,
                           seed=0, started_at=utc_now())
    out: dict[str, Any] = {"queries": n_q, "depth": depth, "rows": n_q * depth,
                           "results_python_bytes": results_bytes}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for label, with_qm in (("results", False), ("results+query_metrics", True)):
            path = Path(tmp) / f"{label}.db"
            open_store(path).close()
            empty = _db_bytes(path)
            run = RunRecord(experiment="scale", variant="v", kind="zero-shot", collection="msmarco-passage/dev/small",
                            index_factory="Flat", run_key="k", model={"name": "m"}, depth=depth,
                            n_docs=MSMARCO_DOCS, started_at=utc_now(), finished_at=utc_now(),
                            metrics={m: 0.5 for m in metrics},
                            query_metrics={m: {q: rng.random() for q in qids} for m in metrics} if with_qm else {},
                            results=results)
            db = open_store(path)
            start = time.perf_counter()
            write_run(db, exp, run)
            seconds = time.perf_counter() - start
            db.close()
            out[label] = {"empty_bytes": empty, "bytes": _db_bytes(path), "write_seconds": seconds}
    return out


def _db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def child_memory(args: argparse.Namespace) -> dict[str, Any]:
    import tracemalloc

    import numpy as np

    collection = _collection(args.mirror)
    raw = list(collection.doc_texts)
    out: dict[str, Any] = {"docs": len(raw)}

    tracemalloc.start()
    passages = [" ".join(t.split()[:PASSAGE_WORDS]) for t in raw]
    out["text_bytes_per_doc"] = tracemalloc.get_traced_memory()[0] / len(passages)
    tracemalloc.stop()
    out["text_chars_per_doc"] = sum(map(len, passages)) / len(passages)
    out["non_ascii_docs"] = sum(not p.isascii() for p in passages)
    out["getsizeof_ascii_overhead"] = sys.getsizeof("")  # 49 bytes + 1 per character when ASCII
    out["getsizeof_per_char"] = {"ascii": 1, "ucs2": sys.getsizeof("\u0101" * 101) - sys.getsizeof("\u0101"),
                                 "ucs4": sys.getsizeof("😀" * 101) - sys.getsizeof("😀")}
    out["getsizeof_per_char"] = {k: v / 100 if k != "ascii" else v for k, v in out["getsizeof_per_char"].items()}

    n = 200_000
    tracemalloc.start()
    ids = tuple(str(i) for i in range(MSMARCO_DOCS - n, MSMARCO_DOCS))  # 7-digit ids like MS MARCO's
    out["doc_id_bytes"] = tracemalloc.get_traced_memory()[0] / n
    row = {d: i for i, d in enumerate(ids)}
    out["id_to_row_dict_bytes"] = (tracemalloc.get_traced_memory()[0]) / n - out["doc_id_bytes"]
    del row
    tracemalloc.stop()

    # A mined ranking as drbench holds it (dense_ranking: list[int] of rows per query).
    rng = np.random.default_rng(0)
    tops = rng.integers(0, MSMARCO_DOCS, size=(1000, MINING_DEPTH))
    tracemalloc.start()
    ranked = {str(q): [int(i) for i in tops[q]] for q in range(len(tops))}
    out["ranked_list_int_bytes_per_row"] = tracemalloc.get_traced_memory()[0] / tops.size
    del ranked
    tracemalloc.stop()

    out["bm25"] = _bm25_memory(passages)
    return out


def _bm25_memory(passages: list[str]) -> dict[str, Any]:
    import tracemalloc

    import bm25s
    import Stemmer

    from harness.retrieval.bm25 import BM25Params

    p = BM25Params()
    stem = Stemmer.Stemmer(p.stemmer).stemWords
    tracemalloc.start()
    start = time.perf_counter()
    tokens = bm25s.tokenize(passages, stopwords=p.stopwords, stemmer=stem, show_progress=False)
    tokens_bytes = tracemalloc.get_traced_memory()[0]
    retriever = bm25s.BM25(k1=p.k1, b=p.b, method=p.method)
    retriever.index(tokens, show_progress=False)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    vocab = len(tokens.vocab)
    del tokens
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    arrays = sum(v.nbytes for v in retriever.scores.values() if hasattr(v, "nbytes"))
    n = len(passages)
    return {"docs": n, "vocab": vocab, "nnz": int(len(retriever.scores["data"])), "index_seconds": seconds,
            "tokens_bytes_per_doc": tokens_bytes / n, "peak_bytes_per_doc": peak / n,
            "kept_bytes_per_doc": kept / n, "score_arrays_bytes_per_doc": arrays / n}


# ----------------------------------------------------------------------------- driver

def _busy_cores(seconds: float = 2.0) -> float:
    """Cores busy over `seconds` (from /proc/stat), while this script itself sleeps."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (os.cpu_count() or 1) * (busy1 - busy0) / max(1, total1 - total0)


def _wait_for_quiet(name: str) -> dict[str, Any]:
    waited = 0
    while True:
        load, busy = os.getloadavg()[0], _busy_cores()
        if load <= 1.5 or busy <= 0.5 or waited == 3:
            break
        print(f"[{name}] load {load:.2f}, {busy:.2f} cores busy elsewhere; waiting 20 s", file=sys.stderr)
        time.sleep(20)
        waited += 1
    return {"loadavg_start": os.getloadavg(), "busy_cores_before": busy, "waited_s": 20 * waited}


def _child(argv: list[str], args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", *argv, "--workdir", str(args.workdir),
           "--mirror", str(args.mirror), "--repeats", str(args.repeats), "--minilm-docs", str(args.minilm_docs),
           "--bert-docs", str(args.bert_docs), "--queries", str(args.queries),
           "--train-steps", str(args.train_steps), "--opq-train-sample", str(args.opq_train_sample),
           "--faiss-queries", str(args.faiss_queries), "--store-queries", str(args.store_queries),
           "--faiss-indexes", *args.faiss_indexes, "--faiss-sizes", *map(str, args.faiss_sizes)]
    print(f"  running {' '.join(argv)} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    if proc.returncode:
        raise SystemExit(f"child {argv} failed ({proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - start
    return result


def run_section(name: str, args: argparse.Namespace) -> dict[str, Any]:
    state = _wait_for_quiet(name)
    print(f"[{name}] loadavg {state['loadavg_start'][0]:.2f}, {state['busy_cores_before']:.2f} cores busy "
          "before start", file=sys.stderr, flush=True)
    if name == "encode":
        data = {m: _child(["encode", m], args) for m in MODELS}
    elif name == "train":
        data = {f"{m}/{p}": _child(["train", m, p], args) for m in MODELS for p in ("fp32", "bf16")}
    elif name == "faiss":
        data = {str(dim): _child(["faiss", str(dim)], args) for dim in args.faiss_dims}
    else:
        data = _child([name], args)
    state["loadavg_end"] = os.getloadavg()
    return {"load": state, "data": data}


def _mirror_copy() -> None:
    """ir_datasets writes into its home; point it at a writable copy of the shared mirror."""
    if os.environ.get("IR_DATASETS_HOME"):
        return
    target = Path(tempfile.gettempdir()) / "scale_irds"
    if not target.exists():
        shutil.copytree("/work/shared/data/ir_datasets", target)
    os.environ["IR_DATASETS_HOME"] = str(target)


# ----------------------------------------------------------------------------- report

def _fmt_time(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    import faiss
    import torch

    print(f"# bench_scale: {time.strftime('%Y-%m-%d')}, torch {torch.__version__}, faiss {faiss.__version__}, "
          f"{os.cpu_count()} cores\n")
    print("| section | loadavg at start (1/5/15 min) | cores busy elsewhere before | waited | loadavg at end | wall |")
    print("|---|---|---:|---:|---|---:|")
    for name, res in results.items():
        ld = res["load"]
        walls = [v["wall_s"] for v in res["data"].values()] if name in ("encode", "train", "faiss") \
            else [res["data"]["wall_s"]]
        print(f"| {name} | {' / '.join(f'{x:.2f}' for x in ld['loadavg_start'])} | {ld['busy_cores_before']:.2f} "
              f"| {ld['waited_s']} s | {' / '.join(f'{x:.2f}' for x in ld['loadavg_end'])} | {sum(walls):.0f} s |")
    extra = {}
    if "memory" in results:
        m = results["memory"]["data"]
        extra["text"] = m["text_bytes_per_doc"] + m["doc_id_bytes"] + 8 * 2  # text + id + two tuple slots
    if "encode" in results:
        print("\n## Encode (drbench Encoder.encode, max_length 128, batch 64, best of "
              f"{args.repeats})\n")
        print("| encoder | precision | sample | docs/s | bf16 vs fp32 | MS MARCO corpus (8.84M) | queries/s "
              "| dev queries (6,980) | train queries (502,939) | peak RSS (sample) |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for model, r in results["encode"]["data"].items():
            fp32_rate = r["docs"] / min(r["timings"]["fp32"]["docs"])
            for precision, t in r["timings"].items():
                rate, qrate = r["docs"] / min(t["docs"]), r["queries"] / min(t["queries"])
                print(f"| {model} ({r['params'] / 1e6:.0f}M, {r['dim']}d) | {precision} | {r['docs']} passages "
                      f"({r['mean_doc_tokens']:.0f} tokens avg), {r['queries']} queries ({r['mean_query_tokens']:.1f}) "
                      f"| {rate:.1f} | {rate / fp32_rate:.2f}x | {_fmt_time(MSMARCO_DOCS / rate)} | {qrate:.0f} "
                      f"| {_fmt_time(MSMARCO_DEV / qrate)} | {_fmt_time(MSMARCO_TRAIN / qrate)} "
                      f"| {_fmt_bytes(r['peak_rss'])} |")
        print("\nPeak memory of a one-process MS MARCO corpus encode = measured peak RSS + texts and ids + "
              "the float32 output matrix:\n")
        print("| encoder | model+activations (measured RSS) | texts+ids (8.84M) | float32 matrix | total |")
        print("|---|---:|---:|---:|---:|")
        for model, r in results["encode"]["data"].items():
            texts = extra.get("text", 0) * MSMARCO_DOCS
            matrix = MSMARCO_DOCS * r["dim"] * 4
            print(f"| {model} | {_fmt_bytes(r['peak_rss'])} | {_fmt_bytes(texts)} | {_fmt_bytes(matrix)} "
                  f"| {_fmt_bytes(r['peak_rss'] + texts + matrix)} |")
    if "train" in results:
        steps = -(-MSMARCO_TRAIN // 32)
        print(f"\n## Training step (STAR-like, batch 32; one MS MARCO epoch = {steps:,} steps)\n")
        print("| encoder | precision | warm-up s | s/step (mean of 3) | min | bf16 vs fp32 | one epoch | peak RSS |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        data = results["train"]["data"]
        for key, r in data.items():
            model, precision = key.split("/")
            mean = sum(r["steps"]) / len(r["steps"])
            fp32 = data[f"{model}/fp32"]
            ratio = (sum(fp32["steps"]) / len(fp32["steps"])) / mean
            print(f"| {model} | {precision} | {r['warmup']:.2f} | {mean:.2f} | {min(r['steps']):.2f} | {ratio:.2f}x "
                  f"| {_fmt_time(mean * steps)} | {_fmt_bytes(r['peak_rss'])} |")
    if "faiss" in results:
        print(f"\n## faiss (synthetic unit vectors, {args.faiss_queries} queries, faiss threads: "
              f"{next(iter(results['faiss']['data'].values()))['threads']}; OPQ trained on a "
              f"{args.opq_train_sample:,}-vector sample)\n")
        print("| dim | index | bytes/doc | build (train+add) at first n | add us/doc | ms/query @1000, n="
              + ", ".join(f"{n:,}" for n in args.faiss_sizes) + f" | ms/query @{MINING_DEPTH} at "
              f"{args.faiss_sizes[-1]:,} | per-query us per 1k docs | MS MARCO: index RAM | add | dev search "
              f"@1000 | train-query search @{MINING_DEPTH} |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for dim, r in results["faiss"]["data"].items():
            for factory, rec in r["indexes"].items():
                big = args.faiss_sizes[-1]
                per_q = [rec["search"][f"{n}@1000"] for n in args.faiss_sizes]
                # linear model through the two points: per-query cost = a + b * n
                n0, n1 = args.faiss_sizes[0], big
                b = (per_q[-1] - per_q[0]) / (n1 - n0)
                a = per_q[0] - b * n0
                at_full = a + b * MSMARCO_DOCS
                per_q_mine = rec["search"][f"{big}@{MINING_DEPTH}"]
                mine_full = per_q_mine * MSMARCO_DOCS / big
                add_us = 1e6 * rec["add_seconds"] / rec["add_rows"]
                print(f"| {dim} | {factory} | {rec['code_size']} | {rec['build_seconds']:.1f} s at {rec['first_n']:,} "
                      f"| {add_us:.2f} | {' / '.join(f'{1e3 * x:.2f}' for x in per_q)} | {1e3 * per_q_mine:.2f} "
                      f"| {1e9 * b:.2f} | {_fmt_bytes(rec['code_size'] * MSMARCO_DOCS)} "
                      f"| {_fmt_time(add_us * 1e-6 * MSMARCO_DOCS)} | {_fmt_time(at_full * MSMARCO_DEV)} "
                      f"| {_fmt_time(mine_full * MSMARCO_TRAIN)} |")
    if "faiss" in results:
        print(f"\nSame index at {args.faiss_sizes[-1]:,} docs, depth 1000, 1,024 queries in one batch "
              "(faiss uses BLAS only when queries x dim >= distance_compute_blas_threshold):\n")
        print(f"| dim | index | blas threshold | ms/query, 1,024-query batches | vs {args.faiss_queries}-query batches |")
        print("|---|---|---:|---:|---:|")
        for dim, r in results["faiss"]["data"].items():
            for factory, rec in r["indexes"].items():
                default = rec["search"][f"{args.faiss_sizes[-1]}@1000"]
                print(f"| {dim} | {factory} | {rec['blas_threshold']:,} | {1e3 * rec['search_batch_1024']:.2f} "
                      f"| {default / rec['search_batch_1024']:.2f}x faster |")
    if "store" in results:
        r = results["store"]["data"]
        print(f"\n## Store (write_run, {r['queries']} queries x depth {r['depth']} = {r['rows']:,} rows)\n")
        print("| what is stored | file bytes | bytes/row | write s | MS MARCO dev run (6,980 x 1000) |")
        print("|---|---:|---:|---:|---:|")
        s = r["results"]
        per_row = (s["bytes"] - s["empty_bytes"]) / r["rows"]
        print(f"| results rows (+ run row, 3 metrics) | {s['bytes']:,} | {per_row:.1f} | {s['write_seconds']:.1f} "
              f"| {_fmt_bytes(per_row * MSMARCO_DEV * 1000)}, write "
              f"{_fmt_time(s['write_seconds'] / r['rows'] * MSMARCO_DEV * 1000)} |")
        qm = r["results+query_metrics"]
        qm_rows = 3 * r["queries"]
        per_qm = (qm["bytes"] - s["bytes"]) / qm_rows
        print(f"| + query_metrics, 3 metrics ({qm_rows:,} rows) | {qm['bytes']:,} | {per_qm:.1f} per query-metric "
              f"| {qm['write_seconds']:.1f} | +{_fmt_bytes(per_qm * 3 * MSMARCO_DEV)} |")
        print(f"\nPython results dict (list of (doc_id, score) tuples, ids shared): "
              f"{r['results_python_bytes'] / r['rows']:.1f} B/row -> "
              f"{_fmt_bytes(r['results_python_bytes'] / r['rows'] * MSMARCO_DEV * 1000)} for a dev run")
    if "memory" in results:
        m = results["memory"]["data"]
        bm = m["bm25"]
        print(f"\n## Memory (tracemalloc; {m['docs']:,} SciFact docs cut to {PASSAGE_WORDS} words)\n")
        print("| object | bytes per unit | MS MARCO |")
        print("|---|---:|---:|")
        rows = [
            (f"passage text as str ({m['text_chars_per_doc']:.0f} chars avg, {m['non_ascii_docs']} of "
             f"{m['docs']} non-ASCII)", m["text_bytes_per_doc"], MSMARCO_DOCS),
            ("doc id as str (7 digits)", m["doc_id_bytes"], MSMARCO_DOCS),
            ("doc id -> row dict entry (mining)", m["id_to_row_dict_bytes"], MSMARCO_DOCS),
            (f"mined ranking as list[int], per row (502,939 x {MINING_DEPTH})", m["ranked_list_int_bytes_per_row"],
             MSMARCO_TRAIN * MINING_DEPTH),
            (f"bm25s tokens (peak while tokenizing), per doc", bm["tokens_bytes_per_doc"], MSMARCO_DOCS),
            (f"bm25s score arrays (CSC: {bm['nnz'] / bm['docs']:.1f} nnz/doc)", bm["score_arrays_bytes_per_doc"],
             MSMARCO_DOCS),
            (f"bm25s index kept (arrays + vocab of {bm['vocab']:,}), per doc", bm["kept_bytes_per_doc"],
             MSMARCO_DOCS),
            ("bm25s tokenize+index peak, per doc", bm["peak_bytes_per_doc"], MSMARCO_DOCS),
        ]
        for label, per, count in rows:
            print(f"| {label} | {per:.1f} | {_fmt_bytes(per * count)} |")
        print(f"\nstr sizes: {m['getsizeof_ascii_overhead']} B + 1 B/char ASCII, "
              f"{m['getsizeof_per_char']['ucs2']:.0f} B/char with any non-Latin-1 BMP char, "
              f"{m['getsizeof_per_char']['ucs4']:.0f} B/char with any astral char; bm25s indexed "
              f"{bm['docs']:,} docs in {bm['index_seconds']:.1f} s")
        for dim in (384, 768):
            print(f"embedding matrix {MSMARCO_DOCS:,} x {dim}: fp32 {_fmt_bytes(MSMARCO_DOCS * dim * 4)}, "
                  f"fp16 {_fmt_bytes(MSMARCO_DOCS * dim * 2)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--repeats", type=int, default=2, help="alternating timed encode passes per precision")
    parser.add_argument("--minilm-docs", type=int, default=256)
    parser.add_argument("--bert-docs", type=int, default=128)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--train-steps", type=int, default=3, help="timed steps after one warm-up")
    parser.add_argument("--faiss-sizes", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--faiss-queries", type=int, default=256)
    parser.add_argument("--faiss-dims", type=int, nargs="+", default=[384, 768])
    parser.add_argument("--faiss-indexes", nargs="+", default=["Flat", "OPQ48,PQ48"])
    parser.add_argument("--opq-train-sample", type=int, default=10_000,
                        help="vectors OPQ is trained on (faiss itself caps OPQ and PQ training at 65,536)")
    parser.add_argument("--store-queries", type=int, default=500)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mirror", type=Path, default=Path("/work/shared/data/ir_datasets"))
    args = parser.parse_args()

    if args.child:
        kind, *rest = args.child
        fn = {"encode": child_encode, "train": child_train, "store": child_store, "memory": child_memory,
              "faiss": lambda dim, a: child_faiss(int(dim), a)}[kind]
        print(json.dumps(fn(*rest, args)))
        return

    _mirror_copy()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as workdir:
        args.workdir = workdir
        results = {name: run_section(name, args) for name in SECTIONS if name in args.sections}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    report(results, args)
    print(f"\ntotal wall time {_fmt_time(time.perf_counter() - started)}")


if __name__ == "__main__":
    main()
