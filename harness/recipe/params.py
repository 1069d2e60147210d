"""How a recipe key is declared, once: a field of a frozen dataclass made with :func:`param`.

The field's type, default, allowed values, minimum, help and the paper's value validate recipes
(:mod:`harness.recipe.loader`), document them (`drbench validate --explain`, the README's
reference tables) and are what the trainers read, typed, as attributes.

>>> @dataclass(frozen=True)
... class Knobs(Params):
...     depth: int = param(10, "How deep.", minimum=1, paper="1000")
>>> [(p.name, p.kind, p.default, p.paper) for p in declared(Knobs)]
[('depth', 'int', 10, '1000')]
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Callable



def _ranx_metric_names() -> tuple[str, ...]:
    """The metric names ranx evaluates: those its `ranx.metrics.metric_switch` dispatches on, read
    from its source, since importing ranx takes seconds (numba, scipy) and `validate` must not."""
    import ast
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("ranx")
    if spec is None or not spec.submodule_search_locations:
        return ()
    source = Path(spec.submodule_search_locations[0]) / "metrics" / "__init__.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    return tuple(node.comparators[0].value for switch in ast.walk(tree)
                 if isinstance(switch, ast.FunctionDef) and switch.name == "metric_switch"
                 for node in ast.walk(switch)
                 if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name)
                 and isinstance(node.comparators[0], ast.Constant) and isinstance(node.comparators[0].value, str))


# ranx metric names, `@k` optional for the rank-wide ones; tests/test_metrics.py pins them to ranx.
RANX_METRICS = _ranx_metric_names()
_METRIC_RE = re.compile(r"^(?P<name>[a-z_-]+?)(?:@(?P<k>[1-9][0-9]*))?$")
# Rank-biased precision takes a persistence, not a cut: `rbp.95` is p = 0.95 (ranx's spelling).
_PERSISTENCE = {"rbp": re.compile(r"^rbp\.[0-9]+$")}


@dataclass(frozen=True)
class Param:
    """One recipe key. `kind` is the TOML type: str, int, float, bool, list[str], list[int]."""

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    required: bool = False
    minimum: float | None = None
    check: Callable[[Any], str | None] | None = None  # returns a problem, or None
    paper: str | None = None  # the paper's (or official code's) value, where there is one
    refers: tuple[str, ...] | None = None  # names another variant, or one of these built-ins
    added: bool = False  # added after results existed: in no key while at its default (Params.key_dict)


def metric_problem(metric: str) -> str | None:
    """Why `metric` is not a ranx metric name, or None when it is.

    >>> metric_problem("ndcg@10"), metric_problem("rbp.95"), metric_problem("rbp@10")
    (None, None, 'unknown metric')
    """
    name = metric.partition(".")[0]
    if name in _PERSISTENCE and name in RANX_METRICS:
        return None if _PERSISTENCE[name].match(metric) else "unknown metric"
    match = _METRIC_RE.match(metric)
    if not match or match["name"] not in RANX_METRICS or match["name"] in _PERSISTENCE:
        return "unknown metric"
    return None


def metric_cutoff(metric: str) -> int | None:
    """The `k` of `name@k`, or None for a rank-wide metric."""
    match = _METRIC_RE.match(metric)
    return int(match["k"]) if match and match["k"] else None


def metrics_problem(values: list[str]) -> str | None:
    bad = [m for m in values if metric_problem(m)]
    if not bad:
        return None
    name, _, k = bad[0].partition("@")
    close = difflib.get_close_matches(name.lower(), RANX_METRICS, n=1)
    cut = ".95" if close and close[0] in _PERSISTENCE else "@" + k if k else ""
    hint = f'; did you mean "{close[0]}{cut}"?' if close else ""
    return (f"unknown metric {bad[0]!r}{hint} (ranx names: {', '.join(RANX_METRICS)}, optionally @k; "
            "rbp with its persistence: rbp.95)")



class Params:
    """Base of every frozen parameter dataclass a recipe table or a variant kind declares."""

    def as_dict(self) -> dict[str, Any]:
        """Every key with its value: what provenance stores."""
        return asdict(self)  # type: ignore[call-overload]

    def key_dict(self) -> dict[str, Any]:
        """What run keys and artifact keys hash: every key, but one declared `added` that still has
        its default, so adding a key keeps every cache entry and stored run valid."""
        values = self.as_dict()
        for f in fields(self):  # type: ignore[arg-type]
            meta = f.metadata.get("drbench", {})
            if meta.get("added") and values[f.name] == f.default:
                del values[f.name]
        return values


def param(default: Any, help: str, *, choices: tuple[str, ...] | None = None, required: bool = False,
          minimum: float | None = None, check: Callable[[Any], str | None] | None = None,
          paper: str | None = None, refers: tuple[str, ...] | None = None, added: bool = False) -> Any:
    """A dataclass field that is also a recipe key (see :func:`declared`).

    `paper` names the paper's or the official code's value where there is one;
    `refers` marks a key whose value is another variant's name (or one of these built-ins);
    `added` marks a key added after results existed, left out of keys at its default.
    """
    meta = {"help": help, "choices": choices, "required": required, "minimum": minimum, "check": check,
            "paper": paper, "refers": refers, "added": added}
    return field(default=default, metadata={"drbench": meta})


# Python annotation -> recipe (TOML) type name.
_KINDS = {str: "str", int: "int", float: "float", bool: "bool", tuple[str, ...]: "list[str]",
          tuple[int, ...]: "list[int]"}


def _kind(annotation: Any) -> str:
    if isinstance(annotation, types.UnionType):  # `X | None`: the key is optional, typed X
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return _KINDS[annotation]


def declared(cls: type) -> tuple[Param, ...]:
    """The recipe keys a :class:`Params` dataclass declares, in field order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        if "drbench" not in f.metadata:
            continue
        default = None if f.default is MISSING else f.default
        out.append(Param(f.name, _kind(hints[f.name]), default, **f.metadata["drbench"]))
    return tuple(out)


def like(cls: type, name: str, **changes: Any) -> Any:
    """Field `name` of the dataclass `cls`, redeclared with `changes` (a new default, paper value,
    help...): how a subclass overrides one key without repeating its declaration."""
    base = cls.__dataclass_fields__[name]  # type: ignore[attr-defined]
    meta = {**base.metadata["drbench"], **{k: v for k, v in changes.items() if k != "default"}}
    return field(default=changes.get("default", base.default), metadata={"drbench": meta})
