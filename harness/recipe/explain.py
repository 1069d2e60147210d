"""The recipe reference, generated from the declarations (never written by hand): the fixed
tables' dataclasses and every registered kind's parameters.

`explain_text` is what `drbench validate --explain` prints for people: sections, wrapped to the
terminal, the sweep syntax and one example recipe. `explain_markdown` is the README's reference
(`--format markdown`); `python -m harness.recipe.explain README.md` rewrites that section.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import replace
from pathlib import Path

from harness.api import params as P
from harness.api.kind import Kind
from harness.recipe.collections import FILE_KEYS, FILES_HEADER, FILES_HELP, SPLIT_HEADER, SPLIT_HELP, SPLIT_KEYS
from harness.recipe.loader import train_keys, variant_keys
from harness.recipe.model import TABLES

SWEEP_HEADER = "[variant.NAME.sweep]"
SWEEP_HELP = ("Keys of the variant's kind, each with a list of values to try: the variant runs once per point of "
              "the grid (named like `star[lr=2e-05]`). With a `[data] dev` split, the best point on dev (its first "
              "metric) is the one evaluated and reported; `[data] select = \"none\"` reports every point instead. "
              "A swept key cannot also be set in the variant's own table.")
TRAIN_HELP = ("Defaults shared by every trained variant; a key a variant sets itself wins, and a key "
              "neither sets keeps the kind's default. Kinds that do not train ignore it.")

# A recipe that uses what people look up most: [train], seeds, a sweep, a dev split, a chained
# variant. tests/test_recipe.py parses it with the real loader, so it stays valid.
EXAMPLE = '''\
[experiment]
name = "example"
seeds = [13, 14, 15]          # each trained variant trains and is evaluated once per seed

[data]
train = "beir/scifact/train"
eval = ["beir/scifact/test"]
dev = "holdout:0.1"           # sweep points are chosen on held-out training queries, never on test

[eval]
indexes = ["Flat", "PQ48"]
metrics = ["ndcg@10", "mrr@10", "recall@100"]

[train]                       # defaults for every trained variant
epochs = 1
lr = 2e-5
scale = 20.0

[variant.bm25]
kind = "bm25"

[variant.star]
kind = "star"
negatives_from = "base"

[variant.star.sweep]          # one run per value; the best on dev is reported
lr = [2e-5, 5e-5]

[variant."star+adore"]
kind = "star+adore"
star = "star"                 # starts from STAR's point chosen on dev
lr = 1e-5
'''


def _default(param: P.Param, header: str) -> str:
    if param.required:
        return "required"
    if param.default is None:
        return {"[model]": "(from model)", "[train]": "(the kind's)"}.get(header, "(unset)")
    if isinstance(param.default, str):
        return f'"{param.default}"'
    if isinstance(param.default, bool):
        return str(param.default).lower()
    if isinstance(param.default, (list, tuple)):
        return "[" + ", ".join(f'"{v}"' for v in param.default) + "]"
    return str(param.default)


def _allowed(param: P.Param) -> str:
    """Its choices, or its bounds: the minimum, and the `bound` its check declares (`< 1`)."""
    if param.choices:
        return ", ".join(param.choices)
    bounds = [f">= {param.minimum:g}"] if param.minimum is not None else []
    return ", ".join(bounds + [bound] if (bound := getattr(param.check, "bound", None)) else bounds)


def sections(builtin_only: bool = False) -> list[tuple[str, tuple[P.Param, ...]]]:
    """(table header, params) in the order a recipe is usually written; `builtin_only` leaves out
    the kinds of installed plug-ins (the README documents drbench's own)."""
    out = [(f"[{name}]", P.declared(cls)) for name, cls in TABLES.items()]
    out += [(FILES_HEADER, FILE_KEYS), (SPLIT_HEADER, SPLIT_KEYS)]
    out.append(("[train]", train_keys()))
    kinds = _kinds(builtin_only)
    every = tuple(replace(p, choices=tuple(kinds)) if p.name == "kind" else p for p in variant_keys())
    out.append(("[variant.NAME] (every kind)", every))
    out += [(_kind_header(name), P.declared(k.Params)) for name, k in kinds.items()]
    return out


def _kind_header(name: str) -> str:
    return f'[variant.NAME] kind = "{name}"'


def _kinds(builtin_only: bool) -> dict[str, Kind]:
    from harness.api.registry import kinds, origin

    return {name: k for name, k in kinds().items() if not (builtin_only and origin(name))}


def _helps(builtin_only: bool = False) -> dict[str, str]:
    """Each section's paragraph: a kind's help, and for a plug-in the package it comes from."""
    from harness.api.registry import origin

    helps = {}
    for name, k in _kinds(builtin_only).items():
        source = origin(name)
        helps[_kind_header(name)] = k.help + (f" From package {source}." if source else "")
    helps["[train]"] = TRAIN_HELP
    helps[FILES_HEADER], helps[SPLIT_HEADER] = FILES_HELP, SPLIT_HELP
    return helps


def explain_markdown(builtin_only: bool = False) -> str:
    """Markdown tables of every recipe key; `builtin_only`: the README's recipe reference, without
    the kinds of whatever plug-ins are installed here."""
    helps = _helps(builtin_only)
    lines: list[str] = []
    for header, decls in sections(builtin_only):
        lines += [f"#### `{header}`", ""]
        if header in helps:
            lines += [helps[header], ""]
        lines += ["| key | type | default | allowed | paper / official | meaning |", "|---|---|---|---|---|---|"]
        for p in decls:
            lines.append(f"| `{p.name}` | {p.toml_type} | {_default(p, header)} | {_allowed(p)} | {p.paper or ''} | "
                         f"{p.help} |")
        lines.append("")
    lines += [f"#### `{SWEEP_HEADER}`", "", SWEEP_HELP, "", "```toml", "[variant.star.sweep]",
              "lr = [2e-5, 5e-5]", "epochs = [1, 3]", "```", ""]
    return "\n".join(lines)


def explain_text(width: int = 100) -> str:
    """Every recipe key for a terminal: one section per table, each key on its own line with its
    type, default and allowed values, its help wrapped below; then the sweep syntax and an example."""
    width = max(60, min(width, 120))
    key = textwrap.TextWrapper(width=width, initial_indent="  ", subsequent_indent="      ")
    fill = textwrap.TextWrapper(width=width, initial_indent="    ", subsequent_indent="    ")
    helps = _helps()
    lines = ["Recipe reference: every table and key a recipe takes (markdown: --format markdown).", ""]
    for header, decls in sections():
        lines += [header, "=" * len(header)]
        if header in helps:
            lines += [*textwrap.wrap(helps[header], width), ""]
        for p in decls:
            facts = [p.toml_type, f"default {_default(p, header)}"] + ([f"allowed {_allowed(p)}"] if _allowed(p) else [])
            facts += [f"paper {p.paper}"] if p.paper else []
            lines += key.wrap(f"{p.name}  ({'; '.join(facts)})")
            lines += fill.wrap(p.help)
        lines.append("")
    lines += [SWEEP_HEADER, "=" * len(SWEEP_HEADER), *textwrap.wrap(SWEEP_HELP, width), "",
              "Example", "=======", *EXAMPLE.splitlines()]
    return "\n".join(lines)


REFERENCE = ("<!-- reference:start -->\n", "\n<!-- reference:end -->")


def splice_reference(readme: str) -> str:
    """`readme` with the text between its reference markers replaced by :func:`explain_markdown`."""
    start, end = REFERENCE
    if start not in readme or end not in readme:
        raise ValueError(f"no {start.strip()} ... {end.strip()} markers")
    head, rest = readme.split(start, 1)
    return head + start + explain_markdown(builtin_only=True) + end + rest.split(end, 1)[1]


def main(argv: list[str]) -> int:
    """`python -m harness.recipe.explain README.md`: regenerate the README's recipe reference."""
    if len(argv) != 1:
        print("usage: python -m harness.recipe.explain README.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.write_text(splice_reference(path.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"rewrote the recipe reference in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
