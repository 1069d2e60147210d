"""The README's recipe reference is the generated one, and its commands exist."""

from __future__ import annotations

from pathlib import Path

from harness.recipe.explain import explain_markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def test_recipe_reference_matches_the_declarations() -> None:
    text = README.read_text()
    start, end = "<!-- reference:start -->\n", "\n<!-- reference:end -->"
    assert text[text.index(start) + len(start):text.index(end)] == explain_markdown(), \
        "README recipe reference is stale: regenerate it from `drbench validate --explain`"


def test_readme_names_every_cli_command() -> None:
    from harness.cli import app

    text = README.read_text()
    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    assert names and all(f"drbench {name}" in text for name in names)
