"""How a recipe key is declared, once: a field of a frozen dataclass made with :func:`param`.

The field's type, default, allowed values, minimum, help and the paper's value validate recipes
(:mod:`harness.recipe.loader`), document them (`drbench validate --explain`, the README's
reference tables) and are what the trainers read, typed, as attributes.

>>> @dataclass(frozen=True)
... class Knobs(Params):
...     depth: int = param(10, "How deep.", minimum=1, paper="1000")
>>> [(p.name, p.toml_type, p.default, p.paper) for p in declared(Knobs)]
[('depth', 'int', 10, '1000')]
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Callable, ClassVar


@dataclass(frozen=True)
class Param:
    """One recipe key, of TOML type `toml_type`: str, int, float, bool, list[str], list[int]."""

    name: str
    toml_type: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    required: bool = False
    minimum: float | None = None
    check: Callable[[Any], str | None] | None = None  # returns a problem, or None
    paper: str | None = None  # the paper's (or official code's) value, where there is one
    refers: tuple[str, ...] | None = None  # names another variant, or one of these built-ins
    added: bool = False  # added after results existed: in no key while at its default (Params.key_dict)


class Params:
    """Base of every frozen parameter dataclass a recipe table or a variant kind declares."""

    # key another kind takes -> why this one does not, and what to set instead: the loader's
    # answer to that key, rather than "unknown key; did you mean" a neighbour of another meaning
    instead: ClassVar[dict[str, str]] = {}

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
_TOML_TYPES = {str: "str", int: "int", float: "float", bool: "bool", tuple[str, ...]: "list[str]",
          tuple[int, ...]: "list[int]"}


def _toml_type(annotation: Any) -> str:
    if isinstance(annotation, types.UnionType):  # `X | None`: the key is optional, typed X
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return _TOML_TYPES[annotation]


def declared(cls: type) -> tuple[Param, ...]:
    """The recipe keys a :class:`Params` dataclass declares, in field order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        if "drbench" not in f.metadata:
            continue
        default = None if f.default is MISSING else f.default
        out.append(Param(f.name, _toml_type(hints[f.name]), default, **f.metadata["drbench"]))
    return tuple(out)


def like(cls: type, name: str, **changes: Any) -> Any:
    """Field `name` of the dataclass `cls`, redeclared with `changes` (a new default, paper value,
    help...): how a subclass overrides one key without repeating its declaration."""
    base = cls.__dataclass_fields__[name]  # type: ignore[attr-defined]
    meta = {**base.metadata["drbench"], **{k: v for k, v in changes.items() if k != "default"}}
    return field(default=changes.get("default", base.default), metadata={"drbench": meta})
