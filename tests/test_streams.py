"""`Streamed`: progress items, then one final value; closing stops the work."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from rag.streams import Streamed


def _work(log: list[str]) -> Generator[int, None, str]:
    try:
        for i in range(3):
            log.append(f"step {i}")
            yield i
        return "done"
    finally:
        log.append("closed")


def test_items_then_the_result_and_result_drains_the_rest() -> None:
    log: list[str] = []
    stream = Streamed(_work(log))
    it = iter(stream)
    assert next(it) == 0 and log == ["step 0"]
    assert stream.result == "done"  # drains steps 1 and 2
    assert log == ["step 0", "step 1", "step 2", "closed"]
    assert list(stream) == [] and stream.result == "done"


def test_closing_stops_the_work_and_result_says_so() -> None:
    log: list[str] = []
    stream = Streamed(_work(log))
    for item in stream:
        if item == 1:
            break
    stream.close()
    assert log == ["step 0", "step 1", "closed"]
    with pytest.raises(RuntimeError, match="closed before it finished"):
        _ = stream.result


def test_an_abandoned_iteration_closes_the_work() -> None:
    log: list[str] = []
    stream = Streamed(_work(log))
    it = iter(stream)
    next(it)
    it.close()  # what a closed consumer (gradio's Stop) does to the generator it holds
    assert log == ["step 0", "closed"]
    with pytest.raises(RuntimeError):
        _ = stream.result
