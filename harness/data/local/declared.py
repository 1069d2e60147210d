"""Collections a recipe declares in `[collections.NAME]`, and the names they answer to.

A declared collection is used wherever an ir_datasets id is: `NAME/SPLIT` names one of its splits.
Two kinds exist:

* :class:`FileCollection`: a BEIR folder or TREC files on disk (`format = "beir" | "trec"`);
* :class:`QuerySplit`: another collection's judged queries, partitioned into seeded splits
  (`from = "cranfield"` with `split = {train = 0.6, dev = 0.2, test = 0.2}`).

The recipe parser declares them here (:func:`declare`), as ir_datasets registers its own ids, so
every stage that takes a collection name (loading, keys, the plan, the report) resolves them alike.
Nothing here reads a file: :mod:`harness.data.local.check` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

FORMATS = ("beir", "trec")
SPLIT_NAMES = ("train", "dev", "test")


@dataclass(frozen=True)
class FileCollection:
    """Documents, queries and one qrels file per split, on disk.

    For `format = "beir"`, `qrels` is empty when declared: the splits are the folder's
    `qrels/<split>.tsv` files, found by :meth:`splits`.
    """

    name: str
    format: Literal["beir", "trec"]
    root: Path  # the BEIR folder; for TREC files, the folder their paths are relative to
    docs: Path
    queries: Path
    qrels: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def beir(cls, name: str, folder: Path) -> FileCollection:
        """A BEIR folder: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`."""
        return cls(name, "beir", folder, folder / "corpus.jsonl", folder / "queries.jsonl")

    def files(self) -> list[Path]:
        """Every file it reads: documents, queries, each split's qrels."""
        return [self.docs, self.queries, *self.splits().values()]

    def folder_problem(self) -> str | None:
        """Why a BEIR folder cannot be read at all (it is missing), else None."""
        if self.format == "beir" and not self.root.is_dir():
            return (f"no such folder {self.root}; check [collections.{self.name}] path (a BEIR folder holds "
                    "corpus.jsonl, queries.jsonl and qrels/<split>.tsv)")
        return None

    def splits(self) -> dict[str, Path]:
        """Split name -> its qrels file (for a BEIR folder, whatever `qrels/*.tsv` holds now)."""
        if self.format == "trec":
            return dict(self.qrels)
        folder = self.root / "qrels"
        return {p.stem: p for p in sorted(folder.glob("*.tsv"))} if folder.is_dir() else {}

    def role_files(self, split: str | None) -> dict[str, Path]:
        """The files a split reads, by role (`corpus`, `queries`, `qrels/SPLIT`): what its keys
        name, so that renaming or moving the files leaves the keys alone."""
        files = {"corpus": self.docs, "queries": self.queries}
        if split is not None:
            files[f"qrels/{split}"] = self.splits().get(split, self.root / "qrels" / f"{split}.tsv")
        return files


@dataclass(frozen=True)
class QuerySplit:
    """The judged queries of `source` (an ir_datasets id or a declared split) partitioned once,
    with `seed`, into `fractions` (`NAME/train`, `NAME/dev`, `NAME/test`), or into `folds` folds
    (`NAME/foldK/train` and `NAME/foldK/test`, K from 1)."""

    name: str
    source: str
    fractions: tuple[tuple[str, float], ...] = ()  # (part, fraction), in declared order
    folds: int | None = None
    seed: int = 0

    def split_names(self) -> tuple[str, ...]:
        """The parts a recipe may name; with folds, also `train` and `test`, every fold's parts at
        once (a recipe over them runs once per fold; as a collection, each is every judged query)."""
        if self.folds:
            return tuple(f"fold{k}/{part}" for k in range(1, self.folds + 1) for part in ("train", "test")) + (
                "train", "test")
        return tuple(name for name, _ in self.fractions)


Declared = FileCollection | QuerySplit

_declared: dict[str, Declared] = {}


def declare(collections: tuple[Declared, ...]) -> None:
    """Make `collections` (a recipe's `[collections]`) the declared ones, replacing any before."""
    _declared.clear()
    _declared.update({c.name: c for c in collections})


def declared() -> dict[str, Declared]:
    """The declared collections by name."""
    return dict(_declared)


def lookup(dataset_id: str) -> tuple[Declared, str | None] | None:
    """(the declared collection, the split) that `dataset_id` names, `(collection, None)` for a
    bare declared name, None for a name no declaration claims.

    >>> declare((QuerySplit("cran", "cranfield", (("train", 0.8), ("test", 0.2))),))
    >>> c, split = lookup("cran/test"); (c.name, split), lookup("cranfield")
    (('cran', 'test'), None)
    >>> declare(())
    """
    name, _, split = dataset_id.partition("/")
    found = _declared.get(name)
    return None if found is None else (found, split or None)


def split_problem(collection: Declared, split: str | None) -> str | None:
    """Why `split` does not name one of `collection`'s splits (None if it does)."""
    import difflib

    if isinstance(collection, FileCollection):
        if problem := collection.folder_problem():
            return problem
        known = tuple(collection.splits())
        if not known:
            return (f"{collection.root / 'qrels'} holds no <split>.tsv file; a BEIR folder has qrels/test.tsv "
                    "(and train.tsv, dev.tsv)" if collection.format == "beir" else "declares no qrels")
    else:
        known = collection.split_names()
    if split in known:
        return None
    close = difflib.get_close_matches(split or "", known, n=1)
    hint = f'did you mean "{collection.name}/{close[0]}"? ' if close else "its splits are "
    what = "names no split" if split is None else f"has no split {split!r}"
    return f"{collection.name} {what}; {hint}({', '.join(f'{collection.name}/{s}' for s in known)})"
