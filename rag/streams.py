"""A stream of progress items that ends in one final value.

Answering yields text deltas and ends in an `Answer`; ingesting yields per-source
results and ends in a `Report`. Callers iterate for the progress and read `.result`
for the end (in the spirit of llama-index's `StreamingAgentChatResponse`), instead of
sorting one mixed stream by type. Closing the stream (or abandoning the iteration)
closes the generator underneath, so work stops at its next step.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Generic, TypeVar

Item = TypeVar("Item")
Final = TypeVar("Final")


class Streamed(Generic[Item, Final]):
    """Wraps a generator that yields items and `return`s the final value."""

    def __init__(self, gen: Generator[Item, None, Final]) -> None:
        self._gen = gen
        self._done = False
        self._closed = False
        self._result: Final | None = None

    def __iter__(self) -> Iterator[Item]:
        if self._done or self._closed:
            return
        try:
            self._result = yield from self._gen
        except GeneratorExit:  # the iteration was abandoned: so is the work
            self._closed = True
            raise
        self._done = True

    @property
    def result(self) -> Final:
        """The final value; drains whatever was not iterated yet."""
        if not self._done:
            for _ in self:
                pass
        if not self._done:
            raise RuntimeError("the stream was closed before it finished")
        return self._result  # type: ignore[return-value]

    def close(self) -> None:
        if not self._done:
            self._closed = True
        self._gen.close()
