"""The mean over seeds: the one rule by which a variant's several seed runs become one number.

A variant run with several seeds stores one run per seed. Its mean is taken over the seeds whose
run is stored and holds the metric, and it always carries those seeds with it: a seed whose run
is missing makes the mean one over fewer seeds, never a hidden gap, and the mean of no seed is
None. Every reader applies it alike:

* the leaderboard (`leaderboard/rows.py`) shows the mean, its sd and its seeds (their count in
  the table), and compare and plot (`leaderboard/select.py`) rank and draw that same mean;
* Datasette's canned leaderboard (`leaderboard/datasette.py`) is this mean in SQL: `avg(value)`
  over the `metrics` rows a variant's runs have, with `count(*)` as its number of seeds;
* a reader that needs particular seeds (the regression gate, `leaderboard/check.py`; a sweep's
  choice on dev, `harness/pipeline/selection.py`) hands over only those seeds' values and refuses
  a mean that does not cover them all (`covers`): the gate reports it missing, selection raises.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SeedMean:
    """A mean over seeds, the sample standard deviation around it (0.0 for one seed), and the
    seeds it is over, ascending."""

    value: float
    sd: float
    seeds: tuple[int, ...]

    def covers(self, seeds: Iterable[int]) -> bool:
        """Whether every one of `seeds` is behind this mean."""
        return set(seeds) <= set(self.seeds)


def seed_mean(values: Iterable[tuple[int, float | None]]) -> SeedMean | None:
    """The mean over the seeds that have a value, from (seed, value) pairs, one per stored run
    (value None: that run lacks the metric); None when no seed has one.

    >>> seed_mean([(15, 0.5), (13, 0.25), (14, None)])
    SeedMean(value=0.375, sd=0.1767766952966369, seeds=(13, 15))
    >>> seed_mean([(13, 0.5)]), seed_mean([(13, None)])
    (SeedMean(value=0.5, sd=0.0, seeds=(13,)), None)
    >>> seed_mean([(13, 0.25), (15, 0.5)]).covers((13, 14, 15))
    False
    """
    present = sorted((seed, value) for seed, value in values if value is not None)
    if not present:
        return None
    numbers = [value for _, value in present]
    sd = statistics.stdev(numbers) if len(numbers) > 1 else 0.0
    return SeedMean(statistics.fmean(numbers), sd, tuple(seed for seed, _ in present))
