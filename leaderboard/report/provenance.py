"""Where an experiment's numbers came from, and the command that reproduces them, as pyserini's
two-click reproduction pages put it beside every row: the recipe text and its hash, the git
commit (and whether the tree was dirty), package versions, Python and platform, the sha256 of
every data archive and the faiss build its runs searched with."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Provenance:
    experiment: str
    recipe_path: str | None
    recipe_text: str | None
    recipe_hash: str | None
    git_commit: str | None
    git_dirty: bool | None
    packages: dict[str, str | None] = field(default_factory=dict)
    python: str | None = None
    platform: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    archives: dict[str, str | None] = field(default_factory=dict)  # archive -> sha256
    faiss: tuple[str, ...] = ()  # faiss builds its dense runs searched with
    runs: int = 0

    @property
    def command(self) -> str:
        """`git checkout C && drbench run recipes/x.toml`: what reproduces the experiment."""
        run = f"drbench run {shlex.quote(_shown_path(self.recipe_path))}" if self.recipe_path else \
            "drbench run RECIPE  # the recipe text below, saved to a file"
        return f"git checkout {self.git_commit} && {run}" if self.git_commit else run


def provenance(experiments: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[Provenance]:
    """One Provenance per stored experiment (`list_experiments`) that has a run in `runs`."""
    records = []
    for exp in experiments:
        mine = [r for r in runs if r["experiment"] == exp["name"]]
        if not mine:
            continue
        archives: dict[str, str | None] = {}
        for run in mine:
            archives.update((run.get("data") or {}).get("archives") or {})
        faiss = tuple(sorted({(r.get("compute") or {}).get("faiss") for r in mine} - {None}))
        records.append(Provenance(
            experiment=exp["name"], recipe_path=exp.get("recipe_path"), recipe_text=exp.get("recipe_text"),
            recipe_hash=exp.get("recipe_hash"), git_commit=exp.get("git_commit"), git_dirty=exp.get("git_dirty"),
            packages=exp.get("packages") or {}, python=exp.get("python"), platform=exp.get("platform"),
            started_at=exp.get("started_at"), finished_at=exp.get("finished_at"),
            archives=dict(sorted(archives.items())), faiss=faiss, runs=len(mine)))
    return records


def _shown_path(path: str) -> str:
    """The recipe path relative to the current folder when it lies under it (a repository
    checkout), as stored otherwise.

    >>> _shown_path("recipes/x.toml")
    'recipes/x.toml'
    """
    stored = Path(path)
    try:
        return str(stored.relative_to(Path.cwd())) if stored.is_absolute() else path
    except ValueError:
        parts = stored.parts
        # A checkout elsewhere: the part from its recipes/ folder down is what a clone has too.
        return str(Path(*parts[parts.index("recipes"):])) if "recipes" in parts else path
