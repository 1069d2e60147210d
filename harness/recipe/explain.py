"""The recipe reference, generated from the parameter declarations (never written by hand)."""

from __future__ import annotations

from harness.recipe import params as P


def _default(param: P.Param) -> str:
    if param.required:
        return "required"
    if param.default is None:
        return "(from model/unset)" if param.name not in ("train", "mirror", "model") else "(unset)"
    if isinstance(param.default, str):
        return f'"{param.default}"'
    if isinstance(param.default, bool):
        return str(param.default).lower()
    if isinstance(param.default, list):
        return "[" + ", ".join(f'"{v}"' for v in param.default) + "]"
    return str(param.default)


def sections() -> list[tuple[str, tuple[P.Param, ...]]]:
    """(table header, params) in the order a recipe is usually written."""
    out: list[tuple[str, tuple[P.Param, ...]]] = [(f"[{name}]", decls) for name, decls in P.TABLES.items()]
    out.append(("[variant.NAME] (every kind)", P.VARIANT_COMMON))
    out += [(f'[variant.NAME] kind = "{kind}"', decls) for kind, decls in P.KIND_PARAMS.items()]
    return out


def explain_markdown() -> str:
    """Markdown tables of every recipe key (the README's recipe reference)."""
    lines: list[str] = []
    for header, decls in sections():
        lines += [f"#### `{header}`", "", "| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
        for p in decls:
            allowed = ", ".join(p.choices) if p.choices else ""
            lines.append(f"| `{p.name}` | {p.kind} | {_default(p)} | {allowed} | {p.help} |")
        lines.append("")
    return "\n".join(lines)
