"""Variant kinds by name: the one registration point, and the lookup every layer uses.

A kind is declared in one file, as a :class:`~harness.api.kind.Kind` subclass instance named
`KIND`. `BUILTIN` maps each built-in kind to that module as a string (data, not an import:
this module sits at the bottom and imports nothing above it); the module is imported on the
first lookup. The declaring modules import nothing heavy at import time, so `validate`, `ls` and
`compare` never import torch. A new training strategy is one file in
`harness/train/strategies/` plus one line here (or a :func:`register` call).

Kinds from other packages come through the entry-point group `drbench.strategies` (`GROUP`):
a distribution declares ``mykind = "mypkg.strategy:KIND"`` (or just ``"mypkg.strategy"``, whose
`KIND` is taken) and its module is imported with the built-ins, on the first lookup. A plug-in
never stops the others: one that fails to load (import error, missing attribute, not a `Kind`,
another name), that two distributions declare, or that takes a built-in's name is left out and
its one-line reason kept in :func:`problems`, for the recipe loader to report where a recipe
names it (an error) and `validate --explain` to print (a warning); a recipe that names no broken
plug-in hears nothing, so an unrelated broken package fails no one's CI. A built-in keeps its
name; a recipe that uses it while a plug-in claims it is warned.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

from harness.api.kind import Kind

GROUP = "drbench.strategies"

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
_ORIGINS: dict[str, Any] = {}  # plug-in kind -> the importlib.metadata.EntryPoint it came from
_PROBLEMS: dict[str, str] = {}  # kind name -> why the plug-in(s) under it were left out, one line


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
    """Every registered kind by name, built-ins first, then the plug-ins (imported on the first call)."""
    if not _KINDS:
        loaded = {}  # all or nothing: a built-in that fails to import leaves no partial registry
        for name, module in BUILTIN.items():
            kind = importlib.import_module(module).KIND
            if kind.name != name:
                raise ValueError(f"{module} declares kind {kind.name!r}, registered as {name!r}")
            loaded[name] = kind
        plugins, origins, problems = _plugins(set(loaded))
        _ORIGINS.clear()
        _ORIGINS.update(origins)
        _PROBLEMS.clear()
        _PROBLEMS.update(problems)
        _KINDS.update({**loaded, **plugins})
    return _KINDS


def kind(name: str) -> Kind:
    """The kind called `name` (the recipe loader has already checked that it exists); a plug-in
    left out raises `LookupError` with its one-line reason."""
    loaded = kinds()
    if name not in loaded and name in _PROBLEMS:
        raise LookupError(_PROBLEMS[name])
    return loaded[name]


def origin(name: str) -> str | None:
    """Where a plug-in kind comes from, `"mypkg 1.2 (entry point mykind = mypkg.strategy:KIND)"`;
    None for drbench's own kinds (built-in or :func:`register`-ed)."""
    kinds()
    return _describe(_ORIGINS[name]) if name in _ORIGINS else None


def package(name: str) -> str | None:
    """The distribution a plug-in kind comes from (`"mypkg"`, for provenance); None for drbench's own."""
    kinds()
    dist = getattr(_ORIGINS.get(name), "dist", None)
    return dist.name if dist is not None else None


def problems() -> dict[str, str]:
    """Kind name -> the one line saying why the plug-in(s) declaring it were left out.

    A name here that :func:`kinds` also holds is a built-in a plug-in tried to take.
    """
    kinds()
    return dict(_PROBLEMS)


def reset() -> None:
    """Forget every kind (those added with :func:`register` too): the next lookup imports the
    built-ins and reads the entry points again. For tests that install a plug-in."""
    _KINDS.clear()


def _describe(ep: Any) -> str:
    """`mypkg 1.2 (entry point mykind = mypkg.strategy:KIND)`: the distribution, and the line it declares."""
    dist = getattr(ep, "dist", None)
    package = f"{dist.name} {dist.version}" if dist is not None else "an unnamed package"
    return f"{package} (entry point {ep.name} = {ep.value})"


def _plugins(builtin: set[str]) -> tuple[dict[str, Kind], dict[str, Any], dict[str, str]]:
    """The kinds the `GROUP` entry points declare, their origins, and the problems of those left out."""
    declared: dict[str, list[Any]] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        declared.setdefault(ep.name, []).append(ep)
    plugins: dict[str, Kind] = {}
    origins: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, eps in declared.items():
        where = " and ".join(_describe(ep) for ep in eps)
        if name in builtin:
            problems[name] = (f'plug-in kind "{name}" from {where} is refused: "{name}" is a built-in kind, '
                              "which keeps the name; rename the entry point")
        elif len(eps) > 1:
            problems[name] = (f'plug-in kind "{name}" is declared twice, by {where}; uninstall one or rename its '
                              "entry point")
        else:
            try:
                plugins[name] = _load(eps[0])
                origins[name] = eps[0]
            except (Exception, SystemExit) as exc:  # someone else's code failing, or exiting: reported, never raised
                first = (str(exc).strip().splitlines() or [""])[0]
                problems[name] = (f'plug-in kind "{name}" from {where} failed to load: {type(exc).__name__}'
                                  + (f": {first}" if first else ""))
    return plugins, origins, problems


def _load(ep: Any) -> Kind:
    """The `Kind` an entry point names: `module:attr`, or a module's `KIND`."""
    target = ep.load()
    if ep.attr is None:
        if not hasattr(target, "KIND"):
            raise AttributeError(f"module {ep.module!r} declares no KIND")
        target = target.KIND
    if isinstance(target, type) and issubclass(target, Kind):
        raise TypeError(f"{ep.value} is a Kind class, not an instance: declare KIND = {target.__name__}()")
    if not isinstance(target, Kind):
        raise TypeError(f"{ep.value} is of type {type(target).__name__}, not a harness.api.kind.Kind instance")
    if target.name != ep.name:
        raise ValueError(f"{ep.value} declares kind {target.name!r}, registered as {ep.name!r}")
    return target
