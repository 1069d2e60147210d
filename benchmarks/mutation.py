"""A small hand-written mutation run: does the test suite notice small, plausible bugs?

Each mutant is one exact-string replacement in one source file (a flipped sign, an off-by-one
cutoff, the raw instead of the adjusted p-value, ...). The script copies the working tree (the
files git lists: tracked and untracked-but-not-ignored, so uncommitted tests count) to a
temporary folder, checks that `harness` and `leaderboard` import from the copy, runs the
relevant tests once unmutated (they must pass), then applies each mutant alone, runs
``pytest -x -q`` on the mutated module's test files and doctests, restores the file, and
reports which test killed the mutant or that it survived. The working tree is never modified.

    .venv/bin/python benchmarks/mutation.py               # every mutant
    .venv/bin/python benchmarks/mutation.py -k holm -k ci  # names containing "holm" or "ci"
    .venv/bin/python benchmarks/mutation.py --list

A replacement that no longer matches exactly once fails the run before any test runs, so the
list cannot silently rot when the code changes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# module -> the test files that own it; its doctests run too (pyproject sets --doctest-modules).
TESTS = {
    "harness/train/losses.py": ["tests/test_losses.py"],
    "harness/evaluate/metrics.py": ["tests/test_metrics.py"],
    "leaderboard/stats.py": ["tests/test_compare.py"],
    "leaderboard/compare.py": ["tests/test_compare.py", "tests/test_compare_seeds.py",
                               "tests/test_compare_baseline.py"],
    "harness/train/strategies/star.py": ["tests/test_strategies.py"],
    "harness/train/strategies/random.py": ["tests/test_strategies.py"],
    "harness/train/strategies/static.py": ["tests/test_strategies.py"],
    # The newer features (issue 20, section 7): seeds, dev selection, holdouts, expansion, the
    # report, the cache, stores and World. Each maps to the fast tests that pin it (hand-built
    # stores, no training), so a mutant costs seconds, not the minutes of test_run_sweeps.
    "leaderboard/select.py": ["tests/test_select.py", "tests/test_compare_seeds.py"],
    "leaderboard/rows.py": ["tests/test_select.py"],
    "leaderboard/plot.py": ["tests/test_select.py", "tests/test_plot.py"],
    "harness/pipeline/selection.py": ["tests/test_selection.py"],
    "harness/pipeline/run.py": ["tests/test_selection.py", "tests/test_run_key.py", "tests/test_run_sweep_bm25.py"],
    "harness/recipe/expand.py": ["tests/test_expand.py"],
    "harness/recipe/plan.py": ["tests/test_selection.py", "tests/test_expand.py", "tests/test_plan.py"],
    "harness/data/holdout.py": ["tests/test_holdout.py"],
    "leaderboard/report/board.py": ["tests/test_report_board.py"],
    "leaderboard/report/build.py": ["tests/test_report_board.py"],
    "leaderboard/report/drilldown.py": ["tests/test_report_board.py"],
    "leaderboard/check.py": ["tests/test_check_seeds.py", "tests/test_check.py"],
    "harness/cache/manifest.py": ["tests/test_manifest.py"],
    "harness/cache/entries.py": ["tests/test_manifest.py",
                                 "tests/test_cache.py::test_a_damaged_entry_is_logged_moved_aside_and_missing",
                                 "tests/test_cache.py::test_a_second_publisher_keeps_the_published_entry"],
    "harness/store/db.py": ["tests/test_store_seeds.py", "tests/test_store.py"],
    "harness/store/schema.py": ["tests/test_store_seeds.py"],
    "harness/world.py": ["tests/test_world.py"],
    "harness/store/seed_mean.py": ["tests/test_seed_mean.py", "tests/test_select.py", "tests/test_check_seeds.py",
                                   "tests/test_selection.py"],
}


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str


def _on(path: str, *specs: tuple[str, str, str]) -> list[Mutant]:
    return [Mutant(name, path, old, new) for name, old, new in specs]


MUTANTS = [
    *_on("harness/train/losses.py",
         ("logistic-sign", "F.softplus(neg.float() - pos.float().unsqueeze(1))",
          "F.softplus(pos.float().unsqueeze(1) - neg.float())"),
         ("logistic-mask-inverted", "torch.where(keep, cost, torch.zeros_like(cost))",
          "torch.where(~keep, cost, torch.zeros_like(cost))"),
         ("logistic-count-ignores-mask", "return total, keep.sum().float()",
          "return total, torch.tensor(float(keep.numel()))"),
         ("inbatch-keeps-diagonal", "keep = ~torch.eye(b, dtype=torch.bool, device=scores.device)",
          "keep = torch.ones(b, b, dtype=torch.bool, device=scores.device)"),
         ("inbatch-rel-mask-or", "keep = keep & rel_mask", "keep = keep | rel_mask"),
         ("mean-no-clamp", "return total / count.clamp(min=1)", "return total / count"),
         ("star-mean-of-means", "loss = _mean(sum_a + sum_b, count_a + count_b)",
          "loss = (mean_a + mean_b) / 2"),
         ("star-alpha-on-hard", "loss = mean_b + alpha * mean_a", "loss = mean_a + alpha * mean_b"),
         ("static-pos-sum-axis", "pos = (qf * d_pos.float()).sum(-1)", "pos = (qf * d_pos.float()).sum(0)"),
         ("adore-mrr-cut-off-by-one", "g[metric_cut:] = 0.0", "g[metric_cut + 1:] = 0.0"),
         ("adore-mrr-rank-0-based", "g = 1.0 / torch.arange(1, n + 1,", "g = 1.0 / torch.arange(2, n + 2,"),
         ("adore-ndcg-discount-off-by-one", "torch.arange(n, dtype=torch.float32) + 2.0)",
          "torch.arange(n, dtype=torch.float32) + 3.0)"),
         ("adore-ndcg-idcg-unsorted", "idcg = (gain.sort(descending=True).values * disc).sum()",
          "idcg = (gain * disc).sum()"),
         ("adore-ranknet-sign", "F.softplus(y.unsqueeze(0) - y.unsqueeze(1))",
          "F.softplus(y.unsqueeze(1) - y.unsqueeze(0))"),
         ("adore-pairs-include-ties", "pairs = rel.unsqueeze(1) > rel.unsqueeze(0)",
          "pairs = rel.unsqueeze(1) >= rel.unsqueeze(0)"),
         # ADORE's loss_version 2 divides by the pairs of one direction; the old loss halved it.
         ("adore-query-halved", "return weighted.sum() / num_pairs",
          "return weighted.sum() / (2 * num_pairs)"),
         ("adore-batch-sum-not-mean", "return total / len(list_scores)", "return total"),
         ("train-metrics-cut-off-by-one", "np.asarray(relevance_of_retrieved)[:cut]",
          "np.asarray(relevance_of_retrieved)[:cut + 1]")),
    *_on("harness/evaluate/metrics.py",
         ("ndcg10-at-cutoff-100", "list(metrics), return_mean=False, make_comparable=True)",
          '[m.replace("ndcg@10", "ndcg@100") for m in metrics], return_mean=False, make_comparable=True)\n'
          "        scores = dict(zip(metrics, scores.values())) if len(metrics) > 1 else scores"),
         ("ties-reversed", "float(score) - i * 1e-9", "float(score) + i * 1e-9"),
         ("mean-over-retrieved-only", "sum(per_query[m].values()) / len(ordered)",
          "sum(per_query[m].values()) / len([q for q in ordered if run_dict[q]])"),
         ("empty-run-drops-queries", "zeros = {m: {q: 0.0 for q in query_ids} for m in metrics}",
          "zeros = {m: {} for m in metrics}")),
    *_on("leaderboard/stats.py",
         ("holm-multiplier-off-by-one", "(m - rank) * float(p_values[i])",
          "(m - rank - 1) * float(p_values[i])"),
         ("holm-not-monotone", "running = max(running, min(1.0, (m - rank) * float(p_values[i])))",
          "running = min(1.0, (m - rank) * float(p_values[i]))"),
         ("bonferroni-uncapped", "[min(1.0, float(p) * m) for p in p_values]",
          "[float(p) * m for p in p_values]"),
         ("bootstrap-90-percent", "tail = (1.0 - level) / 2 * 100", "tail = (1.0 - level) * 100"),
         ("fisher-drop-not-flip", "dtype=np.int8) * 2 - 1", "dtype=np.int8)"),
         ("identical-p-zero", "atol=TIE_ATOL):\n        return 1.0", "atol=TIE_ATOL):\n        return 0.0"),
         ("ties-exact-equality", "ties = np.abs(diff) <= TIE_ATOL", "ties = diff == 0")),
    *_on("leaderboard/compare.py",
         ("significant-on-raw-p", "significant=p <= settings.alpha",
          'significant=r["p_value"] <= settings.alpha'),
         ("ci-on-system-scores", "bootstrap_ci(sys_ - ref,", "bootstrap_ci(sys_,"),
         ("diff-sign", "diff=float(sys_.mean() - ref.mean())", "diff=float(ref.mean() - sys_.mean())"),
         ("wins-losses-swapped", "wins_ties_losses(ref, sys_)", "wins_ties_losses(sys_, ref)"),
         ("marker-arrows-swapped", 'return "▲" if self.diff > 0 else "▼"',
          'return "▼" if self.diff > 0 else "▲"'),
         ("beats-reference-side-sign", "elif c.reference == label and c.diff < 0:",
          "elif c.reference == label and c.diff > 0:"),
         ("all-pairs-skips-first", "list(combinations(systems, 2))", "list(combinations(systems[1:], 2))")),
    # The strategies must hand their relevance masks to the loss (a dropped mask changed a
    # STAR loss from 1.480 to 1.331 and no test noticed before the one-file refactor).
    *_on("harness/train/strategies/star.py",
         ("star-loss-without-masks", "torch.from_numpy(batch.rel_mask), torch.from_numpy(batch.neg_mask),",
          "None, None,")),
    *_on("harness/train/strategies/random.py",
         ("random-loss-without-masks", "torch.from_numpy(batch.rel_mask), torch.from_numpy(batch.neg_mask))",
          "None, None)")),
    *_on("harness/train/strategies/static.py",
         ("static-mask-ignores-positives", "[[row not in set(data.positives[q])", "[[True or row not in set(data.positives[q])"),
         ("static-loss-without-mask", "torch.from_numpy(batch.neg_mask)), {}", "None), {}")),
    # --- the newer features (issue 20, section 7) ---------------------------------------------
    # Seeds: the mean over seeds and the "seeds agree" count, wherever they are computed.
    *_on("leaderboard/select.py",
         ("system-seeds-in-stored-order",
          'seeded = sorted(seeded, key=lambda r: (r.get("seed") is None, r.get("seed") or 0))',
          "seeded = list(seeded)"),
         ("seed-scores-first-seed-only", "dtype=np.float64) for run_id in (s.run_ids or (s.run_id,))]",
          "dtype=np.float64) for run_id in (s.run_ids or (s.run_id,))[:1]]")),
    *_on("leaderboard/compare.py",
         ("seeds-agree-reference-first", "pairs = [(sys_means[s], ref_means[s]) for s in shared] or [",
          "pairs = [(ref_means[s], sys_means[s]) for s in shared] or ["),
         ("seeds-agree-never-by-seed", "if len(ref_seeds) > 1 and len(sys_seeds) > 1 else []",
          "if len(ref_seeds) > 1 and len(sys_seeds) > 1 and False else []"),
         ("compare-scores-first-seed", "scores = {run_id: np.mean(arrays, axis=0) for",
          "scores = {run_id: arrays[0] for"),
         ("baseline-experiment-before-index",
          "lambda c: c.index == system.index, lambda c: c.experiment == system.experiment):",
          "lambda c: c.experiment == system.experiment, lambda c: c.index == system.index):")),
    *_on("leaderboard/rows.py",
         ("rows-in-store-order", "runs = sorted(runs, key=position)", "runs = list(runs)")),
    *_on("leaderboard/plot.py",
         ("bars-first-seed", "per_query = {m: np.mean(values[system.run_id][m], axis=0) for m in metrics}",
          "per_query = {m: values[system.run_id][m][0] for m in metrics}")),
    # The mean over seeds (one rule, harness/store/seed_mean.py) and the readers that need every seed.
    *_on("harness/store/seed_mean.py",
         ("seed-mean-first-seed", "return SeedMean(statistics.fmean(numbers), sd,", "return SeedMean(numbers[0], sd,"),
         ("seed-mean-sd-population", "sd = statistics.stdev(numbers) if", "sd = statistics.pstdev(numbers) if"),
         ("seed-mean-covers-any", "return set(seeds) <= set(self.seeds)", "return bool(set(seeds) & set(self.seeds))")),
    *_on("leaderboard/check.py",
         ("check-mean-over-stored-seeds", "return mean.value if mean and row.seeds and mean.covers(row.seeds) else None",
          "return mean.value if mean else None")),
    *_on("harness/pipeline/selection.py",
         ("selection-mean-over-stored-seeds", "if mean is None or not mean.covers(seeds):", "if mean is None:")),
    # Dev selection: which metric, index, seeds and collection choose; ties.
    *_on("harness/pipeline/selection.py",
         ("selection-last-metric", "metric = recipe.eval.metrics[0]", "metric = recipe.eval.metrics[-1]"),
         ("selection-ties-to-the-last", "best = max(points, key=lambda point: scores[point.name])",
          "best = max(reversed(points), key=lambda point: scores[point.name])"),
         ("selection-reads-every-collection", "stored = list_runs(db, recipe.experiment.name, dev)",
          "stored = list_runs(db, recipe.experiment.name)")),
    # The run key: what re-runs a stored run.
    *_on("harness/pipeline/run.py",
         ("run-key-without-store-depth", 'parts["store_depth"] = recipe.eval.store_depth',
          'parts["depth"] = recipe.eval.depth'),
         ("run-key-first-metric-only", '"metrics": list(recipe.eval.metrics),',
          '"metrics": list(recipe.eval.metrics[:1]),'),
         ("select-before-the-last-point", "last_point.get(name) == specs[-1].id",
          "last_point.get(name) != specs[-1].id")),
    # Expansion: dev order, references, seeds, run counts.
    *_on("harness/recipe/expand.py",
         ("dev-order-chain-before-sweep",
          "for name in dependencies(recipe, variant):\n"
          "            visit(recipe.variant(name))\n"
          "        order.append(variant)",
          "order.append(variant)\n"
          "        for name in dependencies(recipe, variant):\n"
          "            visit(recipe.variant(name))"),
         ("dev-order-visits-twice", "if variant in order:\n            return", "if False:\n            return"),
         ("references-first-point-only", "names += [p.name for p in recipe.sweeps[value]] if value in recipe.sweeps",
          "names += [recipe.sweeps[value][0].name] if value in recipe.sweeps"),
         ("untrained-kind-last-seed", "else (recipe.experiment.seed,)", "else recipe.seeds[-1:]")),
    # The plan: which runs exist, which index chooses, what the evaluation splits report.
    *_on("harness/recipe/plan.py",
         ("selection-last-index", "return run_indexes(recipe, variant)[0]", "return run_indexes(recipe, variant)[-1]"),
         ("reported-every-point", "if variant.sweep_of is None or not recipe.selects:",
          "if variant.sweep_of is None or recipe.selects:"),
         ("reported-every-other-point", "elif variant is recipe.sweeps[variant.sweep_of][0]:",
          "elif variant is not recipe.sweeps[variant.sweep_of][0]:"),
         ("plan-dev-skipped", "if dev is not None:\n        for variant in dev_order(recipe):",
          "if False:\n        for variant in dev_order(recipe):")),
    # Holdouts: deterministic, round(F x n), exactly the held-out judgements.
    *_on("harness/data/holdout.py",
         ("holdout-input-order", "ids = sorted(query_ids)", "ids = list(query_ids)"),
         ("holdout-floor", "return max(1, round(fraction * n))", "return max(1, int(fraction * n))"),
         ("holdout-unseeded", "np.random.default_rng(HOLDOUT_SEED)", "np.random.default_rng()"),
         ("holdout-keeps-every-qrel", "qrels={q: rels for q, rels in train.qrels.items() if q in held}",
          "qrels=dict(train.qrels)")),
    # The report's board and baseline.
    *_on("leaderboard/report/board.py",
         ("board-sd-on-one-seed", '(f" ±{row.sd.get(metric, 0.0):.4f}" if len(row.seeds) > 1 else "")',
          '(f" ±{row.sd.get(metric, 0.0):.4f}" if len(row.seeds) > 0 else "")'),
         ("board-best-exact-equality", "value >= best - 1e-12", "value == best")),
    *_on("leaderboard/report/build.py",
         ("report-baseline-first-system", 'kinds.get(s.run_id) == "zero-shot"), systems[0])',
          'kinds.get(s.run_id) == "no-such-kind"), systems[0])'),
         ("report-scores-first-seed", "{run_id: sum(arrays) / len(arrays) for run_id, arrays in per_seed.items()}",
          "{run_id: arrays[0] for run_id, arrays in per_seed.items()}")),
    *_on("leaderboard/report/drilldown.py",
         ("drill-narrowest-spread-first", "key=lambda i: (-spread[i], query_ids[i])",
          "key=lambda i: (spread[i], query_ids[i])")),
    # The cache: what makes an entry untrustworthy.
    *_on("harness/cache/manifest.py",
         ("manifest-key-unchecked", 'if key is not None and record.get("key") != key:',
          'if key is None and record.get("key") != key:'),
         ("manifest-fresh-ignored", "if fresh or memo not in _HASHED:", "if memo not in _HASHED:"),
         ("manifest-no-size-pass", 'if problem := size_problem(folder / name, meta.get("size"), name):\n'
                                   "            return problem",
          'if problem := size_problem(folder / name, meta.get("size"), name):\n            pass')),
    *_on("harness/cache/entries.py",
         ("entries-get-ignores-key", "reason = damage(final, key)", "reason = damage(final)")),
    # Stores: one run per seed, dropped seeds, the v5 migration.
    *_on("harness/store/db.py",
         ("store-identity-without-seed", 'AND index_factory = ? AND seed = ?",\n        (run.experiment',
          'AND index_factory = ? AND ? IS NOT NULL",\n        (run.experiment'),
         ("link-log-to-any-seed", '"AND variant = ?2 AND model IS ?3 AND seed = ?4) "',
          '"AND variant = ?2 AND model IS ?3) "'),
         ("store-default-seed-zero", "run = replace(run, seed=experiment.seed if experiment.seed is not None else 0)",
          "run = replace(run, seed=0)"),
         ("drop-seeds-keeps-logs", 'f"DELETE FROM training_log WHERE experiment = ?',
          'f"DELETE FROM training_log WHERE 0 AND experiment = ?')),
    *_on("harness/store/schema.py",
         ("migration-log-seed-zero",
          "UPDATE training_log SET seed = (SELECT seed FROM experiments WHERE name = training_log.experiment)",
          "UPDATE training_log SET seed = 0")),
    # World: shares, rank 0's decisions and errors.
    *_on("harness/world.py",
         ("share-drops-remainder", "return n * rank // self.size, n * (rank + 1) // self.size",
          "return n // self.size * rank, n // self.size * (rank + 1)"),
         ("decide-rank-error-on-rank-0", "raise (original(message) if self.main else RankError(message, original))",
          "raise RankError(message, original)"),
         ("from-env-local-rank-zero", 'int(environ.get("LOCAL_RANK", environ["RANK"]))',
          'int(environ.get("LOCAL_RANK", 0))')),
]


def copy_tree(dest: Path) -> None:
    """Copy what git would see (tracked and untracked-but-not-ignored files) into `dest`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        source = REPO / rel
        if source.is_file():  # a tracked file deleted in the working tree is listed but absent
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)


def check_mutants(root: Path, mutants: list[Mutant]) -> None:
    """Every replacement must match exactly once, or the list is stale."""
    counts = {m.name: (root / m.path).read_text().count(m.old) for m in mutants}
    bad = [f"{m.name}: {m.path} holds {counts[m.name]} copies of {m.old!r}"
           for m in mutants if counts[m.name] != 1]
    bad += [f"{m.name}: no tests listed for {m.path}" for m in mutants if m.path not in TESTS]
    if len({m.name for m in MUTANTS}) != len(MUTANTS):
        bad.append("mutant names must be unique")
    if bad:
        sys.exit("stale mutants (each must apply exactly once):\n  " + "\n  ".join(bad))


def environment(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The copy first: drbench is installed editable from the real tree.
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # No .pyc: a mutant and its restore can share a size and an mtime second, and a stale .pyc
    # would then run the wrong code.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("DRBENCH_TEST_MIRROR", str(REPO.parent / "shared" / "data" / "ir_datasets"))
    return env


def check_imports(root: Path, env: dict[str, str]) -> None:
    code = "import harness, leaderboard; print(harness.__file__); print(leaderboard.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    if not all(Path(p).resolve().is_relative_to(root.resolve()) for p in out):
        sys.exit(f"imports resolve outside the copy {root}: {out}")


def run_tests(root: Path, env: dict[str, str], path: str, timeout: float) -> tuple[bool, str, float]:
    """(passed, first failing test or '', seconds) of the tests that own `path`."""
    args = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS[path], path]
    start = time.perf_counter()
    try:
        done = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"(timeout after {timeout:.0f} s)", time.perf_counter() - start
    seconds = time.perf_counter() - start
    if done.returncode == 0:
        return True, "", seconds
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, flags=re.M)
    return False, failed[0] if failed else f"(exit {done.returncode})\n{done.stdout[-2000:]}", seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", dest="keywords", action="append", default=[],
                        help="run only mutants whose name contains this (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per test run")
    args = parser.parse_args()
    mutants = [m for m in MUTANTS if not args.keywords or any(k in m.name for k in args.keywords)]
    if not mutants:
        sys.exit(f"no mutant name contains any of {args.keywords}; see --list")
    if args.list:
        for m in mutants:
            print(f"{m.name:32} {m.path}")
        return

    with tempfile.TemporaryDirectory(prefix="drbench-mutation-") as tmp:
        root = Path(tmp)
        copy_tree(root)
        check_mutants(root, mutants)
        env = environment(root)
        check_imports(root, env)
        for path in dict.fromkeys(m.path for m in mutants):
            passed, failed, seconds = run_tests(root, env, path, args.timeout)
            if not passed:
                sys.exit(f"unmutated tests for {path} fail ({failed}); fix them before a mutation run")
            print(f"baseline {path}: passes ({seconds:.0f} s)", flush=True)

        rows = []
        for m in mutants:
            target = root / m.path
            original = target.read_text()
            target.write_text(original.replace(m.old, m.new, 1))
            try:
                passed, failed, seconds = run_tests(root, env, m.path, args.timeout)
            finally:
                target.write_text(original)
            rows.append((m, "survived" if passed else f"killed by {failed}"))
            print(f"{m.name:32} {rows[-1][1]} ({seconds:.0f} s)", flush=True)

    killed = sum(not verdict.startswith("survived") for _, verdict in rows)
    print(f"\nkilled {killed}/{len(rows)} ({killed / len(rows):.0%})\n")
    print("| mutant | file | result |\n|---|---|---|")
    for m, verdict in rows:
        cell = ("**survived**" if verdict == "survived"
                else f"killed by `{verdict.removeprefix('killed by ')}`")
        print(f"| `{m.name}` | `{m.path}` | {cell} |")


if __name__ == "__main__":
    main()
