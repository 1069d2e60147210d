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
    compute: dict[str, str] = field(default_factory=dict)  # device, precision: where every dense run agrees

    @property
    def command(self) -> str:
        """What reproduces the experiment: `git checkout C && drbench run recipes/x.toml`, pinned
        to the device and precision its runs used (a recipe's `auto` may resolve otherwise on
        another machine). A tree with uncommitted changes (or no commit) reruns the stored recipe
        text itself, which is what ran."""
        pins = "".join(f" --{k} {shlex.quote(v)}" for k, v in sorted(self.compute.items()))
        checkout = f"git checkout {self.git_commit}" if self.git_commit else ""
        if self.git_dirty or not self.git_commit or not self.recipe_path:
            if self.recipe_text is None:
                return " && ".join(filter(None, [checkout, f"drbench run RECIPE{pins}"]))
            name = Path(self.recipe_path).name if self.recipe_path else "recipe.toml"
            note = "# the working tree had uncommitted changes: run the recipe text that ran\n" if self.git_dirty else ""
            return (f"{note}{checkout + chr(10) if checkout else ''}cat > {shlex.quote(name)} <<'DRBENCH_RECIPE'\n"
                    f"{self.recipe_text.rstrip()}\nDRBENCH_RECIPE\ndrbench run {shlex.quote(name)}{pins}")
        return f"{checkout} && drbench run {shlex.quote(_shown_path(self.recipe_path))}{pins}"


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
        computes = [r["compute"] for r in mine if r.get("compute")]
        compute = {k: computes[0][k] for k in ("device", "precision", "backend")
                   if computes and k in computes[0] and all(c.get(k) == computes[0][k] for c in computes)}
        records.append(Provenance(
            experiment=exp["name"], recipe_path=exp.get("recipe_path"), recipe_text=exp.get("recipe_text"),
            recipe_hash=exp.get("recipe_hash"), git_commit=exp.get("git_commit"), git_dirty=exp.get("git_dirty"),
            packages=exp.get("packages") or {}, python=exp.get("python"), platform=exp.get("platform"),
            started_at=exp.get("started_at"), finished_at=exp.get("finished_at"),
            archives=dict(sorted(archives.items())), faiss=faiss, runs=len(mine), compute=compute))
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
