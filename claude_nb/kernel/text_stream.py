"""The iterator both kinds of streamed answer share: text pieces as they arrive, usable in a
`with` block, and `close()` stops whatever produces them."""
from __future__ import annotations

from typing import Iterator


class TextStream:
    """Subclasses set `self._iter` (a generator of text pieces) and may override `_release()`
    to stop what feeds it once the generator is closed."""

    _iter: Iterator[str]

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._iter)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._iter.close()
        self._release()

    def _release(self) -> None:
        pass
