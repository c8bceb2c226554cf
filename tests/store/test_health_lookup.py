"""`rag.store.health`'s lookup of chunks by their own vector, against a stand-in collection
whose approximate search misses a present vector in its first 10 results (as Chroma's
HNSW did among hundreds of near-identical chunks) but returns it in a wider search."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from rag.store.health import _unfound

IDS = [f"c{i}" for i in range(30)]
GONE = "c7"  # its row and vector are stored, but the index never returns it
CROWDED = "c3"  # present, but outside the first 10 of its own search


class Chunks:
    def __init__(self) -> None:
        self.vectors = {i: [float(k), 1.0] for k, i in enumerate(IDS)}
        self.asked: list[int] = []

    def get(self, ids: list[str], include: list[str]) -> dict[str, Any]:
        return {"ids": ids, "embeddings": [self.vectors[i] for i in ids]}

    def query(self, query_embeddings: np.ndarray, n_results: int,
              include: list[str]) -> dict[str, Any]:
        self.asked.append(n_results)
        ids, dists = [], []
        for vec in query_embeddings:
            me = IDS[int(vec[0])]
            order = [i for i in IDS if i != GONE and (i != CROWDED or n_results > 10)]
            if me in order and me != CROWDED:
                order.remove(me)
                order.insert(0, me)
            ids.append(order[:n_results])
            dists.append([0.1 * (k + 1) for k in range(len(ids[-1]))])
        return {"ids": ids, "distances": dists}


def test_a_crowded_out_vector_is_found_by_a_wider_search_and_a_lost_one_is_not() -> None:
    chunks = Chunks()
    store = SimpleNamespace(chunks=chunks)
    assert _unfound(store, IDS, None) == [GONE]  # type: ignore[arg-type]
    assert chunks.asked == [10, 30]  # the wider search only for the two it missed
