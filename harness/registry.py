"""Variant kinds: names mapped to lazy `module:attr` targets, so that `validate`, `ls` and
`leaderboard` never import torch. Trained kinds register here next to these."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Kind:
    """`family` decides the pipeline path: "sparse" kinds retrieve on their own; "dense" kinds
    provide an encoder folder that the shared encode -> index -> search stages use."""

    name: str
    family: str
    target: str
    help: str


def _register(*kinds: Kind) -> dict[str, Kind]:
    table: dict[str, Kind] = {}
    for kind in kinds:
        if kind.name in table:
            raise ValueError(f"variant kind {kind.name!r} registered twice")
        table[kind.name] = kind
    return table


KINDS = _register(
    Kind("bm25", "sparse", "harness.stages:bm25_results", "BM25 (bm25s) over the collection's text."),
    Kind("zero-shot", "dense", "harness.stages:zero_shot_model", "The base encoder, untrained."),
    Kind("inbatch", "dense", "harness.train.stages:train_shared", "In-batch negatives."),
    Kind("random", "dense", "harness.train.stages:train_shared", "In-batch plus uniformly random negatives."),
    Kind("static", "dense", "harness.train.stages:train_shared", "Static hard negatives only."),
    Kind("star", "dense", "harness.train.stages:train_shared", "STAR: static hard + in-batch random negatives."),
    Kind("adore", "dense", "harness.train.stages:train_adore", "ADORE: query encoder vs a frozen index."),
    Kind("star+adore", "dense", "harness.train.stages:train_adore", "ADORE on STAR's frozen index."),
)


def resolve(kind: str) -> Callable[..., Any]:
    """Import and return the callable behind `kind`."""
    module, _, attr = KINDS[kind].target.partition(":")
    return getattr(importlib.import_module(module), attr)
