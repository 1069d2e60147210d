"""The recipe reference, generated from the declarations (never written by hand): the fixed
tables' dataclasses and every registered kind's parameters."""

from __future__ import annotations

from harness.api import params as P
from harness.recipe.loader import train_keys, variant_keys
from harness.recipe.model import TABLES


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


def sections() -> list[tuple[str, tuple[P.Param, ...]]]:
    """(table header, params) in the order a recipe is usually written."""
    from harness.api.registry import kinds

    out = [(f"[{name}]", P.declared(cls)) for name, cls in TABLES.items()]
    out.append(("[train]", train_keys()))
    out.append(("[variant.NAME] (every kind)", variant_keys()))
    out += [(f'[variant.NAME] kind = "{name}"', P.declared(k.Params)) for name, k in kinds().items()]
    return out


def explain_markdown() -> str:
    """Markdown tables of every recipe key (the README's recipe reference)."""
    from harness.api.registry import kinds

    helps = {f'[variant.NAME] kind = "{name}"': k.help for name, k in kinds().items()}
    helps["[train]"] = ("Defaults shared by every trained variant; a key a variant sets itself wins, and a key "
                        "neither sets keeps the kind's default. Kinds that do not train ignore it.")
    lines: list[str] = []
    for header, decls in sections():
        lines += [f"#### `{header}`", ""]
        if header in helps:
            lines += [helps[header], ""]
        lines += ["| key | type | default | allowed | paper / official | meaning |", "|---|---|---|---|---|---|"]
        for p in decls:
            allowed = ", ".join(p.choices) if p.choices else (f">= {p.minimum:g}" if p.minimum is not None else "")
            lines.append(f"| `{p.name}` | {p.toml_type} | {_default(p, header)} | {allowed} | {p.paper or ''} | {p.help} |")
        lines.append("")
    return "\n".join(lines)
