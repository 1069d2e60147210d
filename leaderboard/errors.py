"""Errors the comparison layer raises; the CLI turns them into one line and exit code 2."""

from __future__ import annotations

import difflib

from harness.errors import DrbenchError


class CompareError(DrbenchError):
    """A comparison or plot cannot be made as asked (unknown baseline, collection, metric, ...)."""


def unknown(what: str, value: str, allowed: list[str], hint: str = "") -> CompareError:
    """`unknown baseline 'zero-shto'; did you mean "zero-shot"? (bm25, zero-shot)`."""
    message = f"unknown {what} {value!r}"
    close = difflib.get_close_matches(value, allowed, n=1)
    if close:
        message += f'; did you mean "{close[0]}"?'
    message += f" ({', '.join(allowed) or 'none stored'})"
    return CompareError(message + (f"; {hint}" if hint else ""))
