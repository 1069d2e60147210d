"""Variant kinds: the one registration point.

A kind is declared in one file, as a :class:`Kind` subclass instance named `KIND`: its name,
its typed parameters and how the pipeline runs it. `BUILTIN` maps each built-in kind to that
module, imported on first use; the declaring modules import nothing heavy at import time, so
`validate`, `ls` and `compare` never import torch. A new training strategy is one file in
`harness/train/strategies/` plus one line here (or a :func:`register` call).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable

from harness.recipe.params import Params

if TYPE_CHECKING:
    from harness.data.collection import Collection

BUILTIN: dict[str, str] = {
    "bm25": "harness.kinds.bm25",
    "zero-shot": "harness.kinds.zero_shot",
    "inbatch": "harness.train.strategies.inbatch",
    "random": "harness.train.strategies.random",
    "static": "harness.train.strategies.static",
    "star": "harness.train.strategies.star",
    "adore": "harness.train.strategies.adore",
    "star+adore": "harness.train.strategies.star_adore",
}


class Kind:
    """What every variant kind declares. Subclasses add what their family runs:

    * `family = "sparse"`: ranks documents itself (`rank`, see :mod:`harness.kinds.bm25`);
    * `family = "dense"`: yields encoders that the shared encode -> index -> search stages use;
      untrained (`model_name`, see :mod:`harness.kinds.zero_shot`) or trained
      (:class:`harness.train.strategy.Strategy`).
    """

    name: str = ""
    help: str = ""
    family: str = "dense"
    trains: bool = False  # True: needs `[data] train`
    Params: type[Params] = Params

    def rank(self, collection: Collection, params: Any, depth: int,
             progress: Callable[[int], None] | None = None) -> dict[str, list[tuple[str, float]]]:
        """Sparse kinds: the top-`depth` (doc_id, score) of every evaluated query."""
        raise NotImplementedError(f"{self.name} is not a sparse kind")

    def model_name(self, params: Any, base: str) -> str:
        """Untrained dense kinds: the model folder or name the variant evaluates as is."""
        raise NotImplementedError(f"{self.name} is not an untrained dense kind")


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
