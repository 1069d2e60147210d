"""A corpus's document texts, read from ir_datasets when they are needed, not when it loads.

Encoding a corpus only ever streams its texts, in chunks (:meth:`DocTexts.chunks`), so a dense
evaluation of MS MARCO passage never holds its 8.8M texts at once (about 3 GB as Python strings).
BM25 and training address documents by row, and the first such access reads them all into memory,
once, as a tuple would hold them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import overload

from harness.errors import DataError


class DocTexts(Sequence[str]):
    """`count` texts in corpus order; `read()` yields them afresh from the start on every call.

    >>> texts = DocTexts("toy", 3, lambda: iter(["a", "bb", "ccc"]))
    >>> [len(chunk) for chunk in texts.chunks(2)], texts.loaded
    ([2, 1], False)
    >>> texts[1], texts.loaded
    ('bb', True)
    """

    def __init__(self, source: str, count: int, read: Callable[[], Iterator[str]]):
        self.source, self._count, self._read = source, count, read
        self._all: tuple[str, ...] | None = None

    @property
    def loaded(self) -> bool:
        """Whether every text is held in memory (after the first access by row)."""
        return self._all is not None

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if self._all is None:
            self._all = tuple(self._stream())
        return self._all[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all) if self._all is not None else self._stream()

    def chunks(self, size: int) -> Iterator[list[str]]:
        """The texts in order, `size` at a time, without holding the rest."""
        chunk: list[str] = []
        for text in self:
            chunk.append(text)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DocTexts | tuple | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable cache inside; compared by content

    def _stream(self) -> Iterator[str]:
        count = 0
        try:
            for text in self._read():
                count += 1
                yield text
        except DataError:
            raise
        except Exception as exc:  # ir_datasets failing mid-corpus: one line, the cause chained
            first_line = (str(exc).splitlines() or [""])[0][:200]
            raise DataError(f"ir_datasets failed reading the documents of {self.source!r} at document {count + 1} "
                            f"({type(exc).__name__}: {first_line}); delete its folder under IR_DATASETS_HOME "
                            "and retry") from exc
        if count != self._count:
            raise DataError(f"{self.source!r} yielded {count:,} documents, but {self._count:,} when it was loaded; "
                            "its files changed during the run")


def chunks_of(texts: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """`texts` `size` at a time: streamed for :class:`DocTexts`, sliced for any other sequence."""
    if isinstance(texts, DocTexts):
        yield from texts.chunks(size)
        return
    for start in range(0, len(texts), size):
        yield texts[start:start + size]
