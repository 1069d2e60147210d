"""A recipe's `[collections.NAME]` tables: the collections it declares from files or splits.

```toml
[collections.mine]          # a BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv
format = "beir"
path = "data/mine"          # relative to the recipe file

[collections.robust]        # TREC files
format = "trec"
docs = "docs.jsonl"         # JSON lines, or TSV of id, (title,) text
queries = "topics.txt"      # TREC topics, TSV, or JSON lines
qrels = { test = "qrels.txt" }

[collections.cran]          # a seeded partition of another collection's judged queries
from = "cranfield"
split = { train = 0.6, dev = 0.2, test = 0.2 }   # or folds = 5
```

Only the text is checked here (instant, nothing read): the files are checked before any work by
:func:`harness.data.catalog.ensure_available`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from harness.api.params import Param
from harness.data.local.declared import FORMATS, SPLIT_NAMES, Declared, FileCollection, QuerySplit
from harness.recipe.where import Where

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
FILES_HEADER = '[collections.NAME] format = "beir" | "trec"'
FILES_HELP = ("A collection from files, used as NAME/SPLIT wherever an ir_datasets id is ([data] train, eval, dev; "
              "a split's `from`). Its files are checked line by line before any work, and each file's sha256 is "
              "what identifies it in keys: editing a file re-runs what reads it, moving the folder does not. "
              "The formats are described under \"Your own collections\".")
FILE_KEYS = (
    Param("format", "str", None, "`beir`: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv, one "
                                 "split per qrels file); `trec`: documents, queries and qrels files named below.",
          choices=FORMATS, required=True),
    Param("path", "str", None, "The BEIR folder (required for beir); for trec, the folder the file names are "
                               "relative to (default: the recipe's). Relative to the recipe file."),
    Param("docs", "str", None, "trec: the documents, JSON lines (`_id`, `title`, `text`) or `.tsv` (id, text or "
                               "id, title, text)."),
    Param("queries", "str", None, "trec: the queries, TREC topics (`<num>`, `<title>`), `.tsv` (id, text) or "
                                  "`.jsonl` (`_id`, `text`)."),
    Param("qrels", "table", None, 'trec: one TREC qrels file per split, e.g. { train = "qrels.train", test = '
                                  '"qrels.test" }; a lone file is the split `test`.'),
    Param("description", "str", "", "Free text."),
)
SPLIT_HEADER = '[collections.NAME] from = "..."'
SPLIT_HELP = ("Another collection's judged queries (relevance > 0), partitioned once: sorted, shuffled with `seed` "
              "and cut in order, the same on every machine and for every recipe seed. Its parts are used as "
              "NAME/train, NAME/dev, NAME/test (or NAME/foldK/train and NAME/foldK/test), over the source's "
              "documents; the partition's digest is part of every key that reads a part.")
SPLIT_KEYS = (
    Param("from", "str", None, "The collection whose queries are split: an ir_datasets id (e.g. cranfield) or "
                               "NAME/SPLIT of a declared file collection.", required=True),
    Param("split", "table", None, "Parts and their fractions (train, dev, test; adding up to 1), e.g. "
                                  "{ train = 0.6, dev = 0.2, test = 0.2 }."),
    Param("folds", "int", None, "K-fold cross-validation instead of split: K folds dealt from the shuffled "
                                "queries; foldK/test is the K-th, foldK/train the rest.", minimum=2),
    Param("seed", "int", 0, "Seed of the partition (not the recipe's: every seed of a recipe sees one "
                            "partition).", minimum=0),
    Param("description", "str", "", "Free text."),
)


def parse_collections(where: Where, raw: Any, base: Path) -> tuple[Declared, ...]:
    """Each `[collections.NAME]`, its paths resolved against `base` (the recipe's folder)."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise where.error("collections", None, None, "expected tables [collections.NAME]")
    out: list[Declared] = []
    for name, table in raw.items():
        label = f"collections.{name}"
        if not _NAME.match(name):
            raise where.error(label, None, None, "collection names use letters, digits, _ . - (no /: NAME/SPLIT "
                                                 "names a split)")
        if not isinstance(table, dict):
            raise where.error(label, None, None, "expected a table")
        out.append(_split(where, label, name, table) if "from" in table else _files(where, label, name, table, base))
    return tuple(out)


def _files(where: Where, label: str, name: str, table: dict[str, Any], base: Path) -> FileCollection:
    _known(where, label, table, tuple(p.name for p in FILE_KEYS))
    fmt = table.get("format")
    if fmt is None:
        raise where.error(label, "format", None, 'missing; declare format = "beir" or "trec", or from = "<collection>" '
                                                 "to split another collection's queries", FORMATS)
    if fmt not in FORMATS:
        raise where.error(label, "format", fmt, "not a format drbench reads", FORMATS)
    folder = _path(where, label, "path", table.get("path"), base) if "path" in table else None
    if fmt == "beir":
        if folder is None:
            raise where.error(label, "path", None, "missing; name the BEIR folder (corpus.jsonl, queries.jsonl, "
                                                   "qrels/<split>.tsv), relative to the recipe")
        for key in ("docs", "queries", "qrels"):
            if key in table:
                raise where.error(label, key, table[key], "a BEIR folder's files have fixed names; use "
                                                          'format = "trec" to name files')
        return FileCollection.beir(name, folder)
    root = folder or base
    for key in ("docs", "queries", "qrels"):
        if key not in table:
            raise where.error(label, key, None, 'missing; format = "trec" names docs, queries and qrels files')
    qrels = table["qrels"]
    if isinstance(qrels, str):
        qrels = {"test": qrels}
    if not isinstance(qrels, dict) or not qrels:
        raise where.error(label, "qrels", qrels, 'expected a table of split = file, e.g. { test = "qrels.txt" }')
    for split in qrels:
        if not _NAME.match(split):
            raise where.error(label, "qrels", split, "split names use letters, digits, _ . -")
    return FileCollection(name, "trec", root, _path(where, label, "docs", table["docs"], root),
                          _path(where, label, "queries", table["queries"], root),
                          {split: _path(where, label, "qrels", file, root) for split, file in qrels.items()})


def _split(where: Where, label: str, name: str, table: dict[str, Any]) -> QuerySplit:
    _known(where, label, table, tuple(p.name for p in SPLIT_KEYS))
    source = table["from"]
    if not isinstance(source, str) or not source:
        raise where.error(label, "from", source, "expected the collection whose queries are split, e.g. "
                                                 '"cranfield" or "mine/test"')
    if source.partition("/")[0] == name:
        raise where.error(label, "from", source, "names this collection itself; name another collection")
    seed = table.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise where.error(label, "seed", seed, "expected a non-negative integer (the partition's seed)")
    split, folds = table.get("split"), table.get("folds")
    if (split is None) == (folds is None):
        raise where.error(label, "split", split, "give split = { train = 0.6, dev = 0.2, test = 0.2 } or "
                                                 "folds = 5, one of the two")
    if folds is not None:
        if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
            raise where.error(label, "folds", folds, "expected an integer of at least 2")
        return QuerySplit(name, source, folds=folds, seed=seed)
    if not isinstance(split, dict) or not split:
        raise where.error(label, "split", split, "expected a table of part = fraction, e.g. "
                                                 "{ train = 0.6, dev = 0.2, test = 0.2 }")
    for part, fraction in split.items():
        if part == "folds":  # k-fold is its own key, beside `from`, not a part of `split`
            raise where.error(label, "split", split, f"folds is not a part; for k-fold write folds = {fraction} "
                                                     "beside from, in place of split")
        if part not in SPLIT_NAMES:
            raise where.error(label, "split", part, "not a part name", SPLIT_NAMES)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise where.error(label, "split", split, f"{part} = {fraction}: a fraction must be in (0, 1)")
    if abs(sum(split.values()) - 1.0) > 1e-9:
        raise where.error(label, "split", split, f"fractions add up to {sum(split.values()):g}; they must add "
                                                 "up to 1")
    return QuerySplit(name, source, tuple((part, float(f)) for part, f in split.items()), seed=seed)


def _known(where: Where, label: str, table: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in table:
        if key not in keys:
            raise where.error(label, key, None, "unknown key", keys)


def _path(where: Where, label: str, key: str, value: Any, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise where.error(label, key, value, "expected a path (relative to the recipe file)")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path
