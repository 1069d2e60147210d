"""Where a recipe's mistake is: `FILE [TABLE] KEY = VALUE: problem; did you mean ...? (allowed)`."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from harness.errors import RecipeError


def as_toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(as_toml(v) for v in value) + "]"
    return str(value)


class Where:
    """Formats a file's errors: `FILE [TABLE] KEY = VALUE: problem; did you mean ...? (allowed)`."""

    def __init__(self, path: Path):
        self.path = path
        # variant -> the keys it took from [train]: a check on the merged values names [train],
        # where the user wrote them, not the variant table they were merged into
        self.inherited: dict[str, set[str]] = {}

    def variant_table(self, variant: str, key: str) -> str:
        """The table `key` of `variant` (a swept variant's own name) was written in."""
        return "train" if key in self.inherited.get(variant, ()) else f"variant.{variant}"

    def error(self, table: str, key: str | None, value: Any, problem: str,
              allowed: tuple[str, ...] | list[str] | None = None) -> RecipeError:
        where = f"{self.path} [{table}]"
        if key is not None:
            where += f" {key} = {as_toml(value)}" if value is not None else f" {key}"
        message = f"{where}: {problem}"
        if allowed:
            guess = value if isinstance(value, str) else (key or table) if value is None else None
            close = difflib.get_close_matches(guess, list(allowed), n=1) if guess else []
            if close:
                message += f'; did you mean "{close[0]}"?'
            message += f" ({', '.join(allowed)})"
        return RecipeError(message)
