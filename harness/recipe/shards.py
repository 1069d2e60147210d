"""A plan cut into shards for array jobs (`drbench run RECIPE --shard I/N`): each shard runs its
runs into its own store, and `drbench merge` joins the stores.

A run and every run it comes after (the runs that train what it needs, a sweep's dev runs before
the point chosen from them, a fold before the combination of folds) are one chain; chains never
cross shards, so no shard waits for another. Chains are dealt to the shards heaviest first, each
to the shard with the least work so far (a run counts 1, a run that trains 10), ties to the
lowest shard: the same cut on every machine.
"""

from __future__ import annotations

import re
from dataclasses import replace

from harness.errors import RecipeError
from harness.recipe.plan import Plan, RunSpec

_TRAIN_WEIGHT = 10
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N), 1 <= I <= N; a RecipeError naming the option otherwise.

    >>> parse_shard("2/4")
    (2, 4)
    """
    match = _SHARD.match(text)
    if match is None:
        raise RecipeError(f"--shard {text!r}: write I/N, shard I of N (1 <= I <= N), e.g. --shard 1/4")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise RecipeError(f"--shard {text}: N, the number of shards, must be at least 1")
    if not 1 <= index <= count:
        raise RecipeError(f"--shard {text}: shard {index} of {count} does not exist; I runs from 1 to N")
    return index, count


def chains(runs: tuple[RunSpec, ...]) -> list[list[RunSpec]]:
    """The runs grouped into chains (connected by `after`), each in plan order, in order of first run."""
    parent = {run.id: run.id for run in runs}

    def root(run_id: str) -> str:
        while parent[run_id] != run_id:
            parent[run_id] = parent[parent[run_id]]
            run_id = parent[run_id]
        return run_id

    for run in runs:
        for before in run.after:
            parent[root(before)] = root(run.id)
    groups: dict[str, list[RunSpec]] = {}
    for run in runs:
        groups.setdefault(root(run.id), []).append(run)
    return list(groups.values())


def shard_of(plan: Plan, index: int, count: int) -> Plan:
    """The runs of shard `index` of `count` (see the module docstring), as a plan of their own."""
    load = [0] * count
    mine: set[str] = set()
    weighted = [(sum(_TRAIN_WEIGHT if run.trains else 1 for run in chain), n, chain)
                for n, chain in enumerate(chains(plan.runs))]
    for weight, _, chain in sorted(weighted, key=lambda item: (-item[0], item[1])):
        target = load.index(min(load))
        load[target] += weight
        if target == index - 1:
            mine.update(run.id for run in chain)
    keep = tuple(run for run in plan.runs if run.id in mine)
    folds = tuple(replace(fold, runs=tuple(run for run in fold.runs if run.id in mine)) for fold in plan.folds)
    return replace(plan, runs=keep, folds=folds)
