"""Reading a declared collection's files, record by record, each problem named by file:line.

What is accepted is what BEIR's loader accepts, and the common TREC layouts:

* documents: JSON lines with `_id` (also `id`, `doc_id` or `docno`), `text` (also `contents`)
  and an optional `title`; or TSV of `id, text` or `id, title, text`;
* queries: JSON lines with `_id` (or `id`, `query_id`) and `text`; TSV of `id, text`; or TREC
  topics (`<top>`, `<num>`, `<title>`: the title is the query);
* qrels: BEIR's TSV `query-id, corpus-id, score` (the header row optional), or TREC's
  `query-id iteration doc-id relevance`, separated by any whitespace.

Every file may start with a UTF-8 byte order mark and end its lines with CRLF; blank lines are
skipped; extra JSON fields are ignored. A file is read once, streaming, and its sha256 is taken
on the way (:class:`Lines`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from harness.errors import DataError

_DOC_IDS = ("_id", "id", "doc_id", "docno")
_DOC_TEXTS = ("text", "contents")
_QUERY_IDS = ("_id", "id", "query_id")
_BOM = b"\xef\xbb\xbf"


class Doc(NamedTuple):
    line: int
    doc_id: str
    title: str
    text: str


class Query(NamedTuple):
    line: int
    query_id: str
    text: str


class Qrel(NamedTuple):
    line: int
    query_id: str
    doc_id: str
    relevance: int


class Lines:
    """The lines of a UTF-8 text file as `(line number, text)`, without their line ends; its
    `size` and `sha256` are known once every line has been read."""

    def __init__(self, path: Path):
        self.path = path
        self.size = 0
        self._hash = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def __iter__(self) -> Iterator[tuple[int, str]]:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            raise DataError(f"{self.path}: no such file; check the path in [collections]") from None
        except IsADirectoryError:
            raise DataError(f"{self.path}: is a folder, not a file; name the file in [collections]") from None
        except OSError as exc:
            raise DataError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        with handle:
            for number, raw in enumerate(handle, 1):
                self.size += len(raw)
                self._hash.update(raw)
                if number == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM):]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{self.path}:{number}: invalid UTF-8 at byte {exc.start + 1} of the line; "
                                    "save the file as UTF-8") from None
                yield number, text.rstrip("\r\n")

    def error(self, line: int, problem: str) -> DataError:
        return DataError(f"{self.path}:{line}: {problem}")


def _json_objects(lines: Lines) -> Iterator[tuple[int, dict]]:
    for number, text in lines:
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise lines.error(number, f"not JSON ({exc.msg} at column {exc.colno}); write one JSON object "
                                      "per line") from None
        if not isinstance(value, dict):
            raise lines.error(number, f"expected a JSON object, got {type(value).__name__}")
        yield number, value


def _field(lines: Lines, number: int, record: dict, names: tuple[str, ...], what: str,
           required: bool = True) -> str:
    for name in names:
        if name in record and record[name] is not None:
            value = record[name]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise lines.error(number, f'"{name}" is {type(value).__name__}, expected a string')
            return value
    if required:
        raise lines.error(number, f'{what} without "{names[0]}"; every line needs one')
    return ""


def _tsv(lines: Lines) -> Iterator[tuple[int, list[str]]]:
    for number, text in lines:
        if text.strip():
            yield number, text.split("\t")


def docs(path: Path, lines: Lines | None = None) -> Iterator[Doc]:
    """The documents of a JSONL file (BEIR's corpus.jsonl) or, for a `.tsv` name, a TSV file."""
    lines = lines or Lines(path)
    if path.suffix.lower() == ".tsv":
        for number, cols in _tsv(lines):
            if len(cols) not in (2, 3):
                raise lines.error(number, f"{len(cols)} tab-separated columns; a TSV corpus has id, text or "
                                          "id, title, text")
            title, text = (cols[1], cols[2]) if len(cols) == 3 else ("", cols[1])
            yield Doc(number, _id(lines, number, cols[0], "document"), title, text)
        return
    for number, record in _json_objects(lines):
        doc_id = _id(lines, number, _field(lines, number, record, _DOC_IDS, "a document"), "document")
        yield Doc(number, doc_id, _field(lines, number, record, ("title",), "", required=False),
                  _field(lines, number, record, _DOC_TEXTS, "", required=False))


def queries(path: Path, lines: Lines | None = None) -> Iterator[Query]:
    """The queries of a JSONL file (BEIR's queries.jsonl), a `.tsv` file, or TREC topics (any
    other name)."""
    lines = lines or Lines(path)
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        for number, cols in _tsv(lines):
            if len(cols) != 2:
                raise lines.error(number, f"{len(cols)} tab-separated columns; a TSV queries file has id, text")
            yield Query(number, _id(lines, number, cols[0], "query"), cols[1])
    elif suffix in (".jsonl", ".json"):
        for number, record in _json_objects(lines):
            query_id = _id(lines, number, _field(lines, number, record, _QUERY_IDS, "a query"), "query")
            yield Query(number, query_id, _field(lines, number, record, ("text",), "a query"))
    else:
        yield from _topics(lines)


_TAG = re.compile(r"^\s*<(/?)(\w+)>\s*(.*)$")


def _topics(lines: Lines) -> Iterator[Query]:
    """TREC topics: `<top>` blocks whose `<num>` is the id and whose `<title>` (to the next tag)
    is the query text."""
    start, number_, title, in_title = 0, None, [], False
    for number, text in lines:
        tag = _TAG.match(text)
        if tag is None:
            if in_title:
                title.append(text.strip())
            elif text.strip() and not start:
                raise lines.error(number, "not a TREC topic line (expected <top>); name TSV queries *.tsv and "
                                          "JSON lines *.jsonl")
            continue
        closing, name, rest = tag.group(1), tag.group(2).lower(), tag.group(3)
        in_title = False
        if name == "top" and closing:
            if number_ is None:
                raise lines.error(start, "topic without <num>")
            query = " ".join(t for t in title if t).strip()
            if not query:
                raise lines.error(start, f"topic {number_} without <title> text")
            yield Query(start, number_, query)
            start, number_, title = 0, None, []
        elif name == "top":
            if start:
                raise lines.error(number, f"<top> inside the <top> block opened at line {start} (missing </top>)")
            start = number
        elif not start:
            raise lines.error(number, f"<{name}> outside a <top> block")
        elif name == "num":
            number_ = _id(lines, number, re.sub(r"^\s*Number:\s*", "", rest).strip(), "topic")
        elif name == "title":
            title, in_title = [re.sub(r"^\s*Topic:\s*", "", rest).strip()], True
    if start:
        raise lines.error(start, "<top> block without </top>")


def beir_qrels(path: Path, lines: Lines | None = None) -> Iterator[Qrel]:
    """BEIR's `qrels/<split>.tsv`: query-id, corpus-id, score; a first row whose score is not a
    number is its header."""
    lines = lines or Lines(path)
    for number, cols in _tsv(lines):
        if len(cols) == 1 and len(cols[0].split()) == 3:
            cols = cols[0].split()  # space-separated, as BEIR's own reader (str.split) accepts
        if len(cols) != 3:
            raise lines.error(number, f"{len(cols)} columns; a BEIR qrels row has query-id, corpus-id, score "
                                      "separated by tabs")
        if number == 1 and _grade(cols[2]) is None:
            continue  # the header row (query-id, corpus-id, score)
        yield Qrel(number, cols[0], cols[1], _score(lines, number, cols[2]))


def trec_qrels(path: Path, lines: Lines | None = None) -> Iterator[Qrel]:
    """TREC qrels: query-id, iteration, doc-id, relevance, separated by whitespace."""
    lines = lines or Lines(path)
    for number, text in lines:
        cols = text.split()
        if not cols:
            continue
        if len(cols) != 4:
            raise lines.error(number, f"{len(cols)} columns; a TREC qrels row has query-id, iteration, doc-id, "
                                      "relevance")
        yield Qrel(number, cols[0], cols[2], _score(lines, number, cols[3]))


def _grade(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _score(lines: Lines, number: int, text: str) -> int:
    grade = _grade(text.strip())
    if grade is None:
        raise lines.error(number, f"relevance {text!r} is not an integer; qrels grades are integers (0, 1, 2...)")
    return grade


def _id(lines: Lines, number: int, value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise lines.error(number, f"{what} with an empty id")
    return value
