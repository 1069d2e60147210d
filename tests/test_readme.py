"""The README's recipe reference is the generated one, and its commands exist."""

from __future__ import annotations

from pathlib import Path

from harness.recipe.explain import explain_markdown, splice_reference

README = Path(__file__).resolve().parent.parent / "README.md"
QUICKSTART = (README.parent / "recipes" / "quickstart.toml").read_text()


def test_recipe_reference_matches_the_declarations() -> None:
    text = README.read_text()
    start, end = "<!-- reference:start -->\n", "\n<!-- reference:end -->"
    assert text[text.index(start) + len(start):text.index(end)] == explain_markdown(builtin_only=True), \
        "README recipe reference is stale: run `python -m harness.recipe.explain README.md` to regenerate it"


def test_the_reference_is_regenerated_in_place() -> None:
    text = README.read_text()
    stale = text.replace("| `name` | str | required |", "| `name` | str | (edited by hand) |", 1)
    assert stale != text and splice_reference(stale) == text


def test_readme_names_every_cli_command() -> None:
    from harness.cli import app

    text = README.read_text()
    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    assert names and all(f"drbench {name}" in text for name in names)


def test_quickstart_table_is_what_the_leaderboard_prints() -> None:
    """Same columns, names, row order and 4-decimal values as `drbench leaderboard` for these runs."""
    import io

    from rich.console import Console

    from harness.store import ExperimentRecord, RunRecord, open_memory_store, write_run
    from leaderboard.rows import leaderboard_rows
    from leaderboard.table import render

    text = README.read_text()
    start, end = "<!-- quickstart:start -->\n", "\n<!-- quickstart:end -->"
    lines = text[text.index(start) + len(start):text.index(end)].splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    metrics = header[2:]
    # Stored as `drbench run recipes/quickstart.toml` stores them: in recipe order, BM25 first.
    db = open_memory_store()
    experiment = ExperimentRecord(name="quickstart", recipe_path="recipes/quickstart.toml", recipe_text=QUICKSTART,
                                  recipe_hash="h", git_commit=None, git_dirty=False, packages={}, python="3.11",
                                  platform="test", seed=13, started_at="t")
    for row in sorted(rows, key=lambda r: r[0] != "bm25"):
        write_run(db, experiment, RunRecord(
            experiment="quickstart", variant=row[0], kind=row[0], collection="beir/scifact/test", index_factory=row[1],
            run_key="k", model=None, depth=1000, n_docs=5183, started_at="t", finished_at="t",
            metrics={m: float(v) for m, v in zip(metrics, row[2:])}))
    board = leaderboard_rows(db)
    console = Console(file=io.StringIO(), width=200, color_system=None)
    render(board, console)
    printed = [line for line in console.file.getvalue().splitlines() if "│" in line or "┃" in line]
    cells = [[cell.strip().rstrip("*").strip() for cell in line.strip("│┃ ").replace("┃", "│").split("│")]
             for line in printed]
    assert cells[0][:len(header)] == header  # column names and order
    assert [row[:len(header)] for row in cells[1:]] == rows  # row order and the values as printed
