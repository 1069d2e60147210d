"""Variant kinds by name: the one registration point, and the lookup every layer uses.

A kind is declared in one file, as a :class:`~harness.api.kind.Kind` subclass instance named
`KIND`. `BUILTIN` maps each built-in kind to that module as a string (data, not an import:
this module sits at the bottom and imports nothing above it); the module is imported on the
first lookup. The declaring modules import nothing heavy at import time, so `validate`, `ls` and
`compare` never import torch. A new training strategy is one file in
`harness/train/strategies/` plus one line here (or a :func:`register` call).
"""

from __future__ import annotations

import importlib

from harness.api.kind import Kind

BUILTIN: dict[str, str] = {
    "bm25": "harness.kinds.bm25",
    "zero-shot": "harness.kinds.zero_shot",
    "inbatch": "harness.train.strategies.inbatch",
    "random": "harness.train.strategies.random",
    "static": "harness.train.strategies.static",
    "star": "harness.train.strategies.star",
    "adore": "harness.train.strategies.adore",
    "star+adore": "harness.train.strategies.star_adore",
    "ance": "harness.train.strategies.ance",
}


_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add `kind`; a second kind under the same name is an error."""
    kinds()
    if kind.name in _KINDS:
        raise ValueError(f"variant kind {kind.name!r} registered twice")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind added with :func:`register` (tests register toy kinds)."""
    del _KINDS[name]


def kinds() -> dict[str, Kind]:
    """Every registered kind by name, built-ins first (imported on the first call)."""
    if not _KINDS:
        loaded = {}  # all or nothing: a module that fails to import leaves no partial registry
        for name, module in BUILTIN.items():
            kind = importlib.import_module(module).KIND
            if kind.name != name:
                raise ValueError(f"{module} declares kind {kind.name!r}, registered as {name!r}")
            loaded[name] = kind
        _KINDS.update(loaded)
    return _KINDS


def kind(name: str) -> Kind:
    """The kind called `name` (the recipe loader has already checked that it exists)."""
    return kinds()[name]
