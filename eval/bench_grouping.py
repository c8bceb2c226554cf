"""Near-duplicate grouping benchmark: MinHash stories against exact-Jaccard ground truth.

    python -m eval.bench_grouping [--corpus ../shared/corpora/bbc] [--ingest]

Ground truth: two BBC texts (the headline line removed) are the same story when the exact
Jaccard similarity of their word-shingle sets is >= 0.5; stories are the connected
components of those pairs. Exact Jaccard is computed only for candidate pairs found by
prefix filtering, which provably misses no pair at or above the cut (2.5M brute-force
comparisons would take minutes). For each shingle size and threshold the table gives
pairwise precision, recall and F1 of `StoryIndex` (`eval.minhash_stories`), its number
of groups, and seconds.
The tests import `load_corpus`, `ground_truth` and `pairwise` from here.

`--ingest` measures what ingest itself stores instead: the corpus goes through the real
pipeline into a temporary store, where each new article is compared (exactly, at
`THRESHOLD`) with the stored articles nearest to it in meaning; the table gives that
grouping's pairwise precision and recall against the same ground truth.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from eval.bench_ingest import BBC_CORPUS
from eval.minhash_stories import NUM_PERM, StoryIndex, signature
from ingest.grouping import SHINGLE_SIZE, THRESHOLD, normalise, shingles

TRUTH_JACCARD = 0.5
CLOSE_JACCARD = 0.2  # pairs below the cut that a low threshold might still join
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8)
SHINGLE_SIZES = (3, 4, 5)


@dataclass(frozen=True)
class Doc:
    id: str  # "business/001"
    title: str
    text: str


def load_corpus(corpus: Path, folders: Sequence[str] | None = None) -> list[Doc]:
    """Every `<folder>/*.txt`; the first line is the headline. One BBC file is not UTF-8."""
    docs = []
    for path in sorted(corpus.glob("*/*.txt")):
        if folders is not None and path.parent.name not in folders:
            continue
        raw = path.read_bytes().decode("utf-8", errors="replace")
        title, _, body = raw.partition("\n")
        docs.append(Doc(f"{path.parent.name}/{path.stem}", title.strip(), body))
    return docs


def similar_pairs(sets: Sequence[set[str]], cut: float = TRUTH_JACCARD
                  ) -> dict[tuple[int, int], float]:
    """All pairs (i < j) with exact Jaccard >= cut, with their Jaccard.

    Prefix filtering: with elements ordered rarest first, two sets with J >= cut must share
    an element among the first |s| - ceil(cut * |s|) + 1 of each, so only pairs sharing a
    prefix element (and of compatible size) are compared. Rare prefixes make that few.
    """
    freq = Counter(x for s in sets for x in s)
    rank = {x: (n, x) for x, n in freq.items()}
    index: dict[str, list[int]] = defaultdict(list)
    found: dict[tuple[int, int], float] = {}
    order = sorted((i for i, s in enumerate(sets) if s), key=lambda i: len(sets[i]))
    for i in order:  # ascending size: every earlier set is no larger
        s = sets[i]
        prefix = sorted(s, key=rank.__getitem__)[:len(s) - math.ceil(cut * len(s) - 1e-9) + 1]
        candidates = {j for x in prefix for j in index[x]}
        for j in candidates:
            t = sets[j]
            if len(t) < cut * len(s):
                continue
            inter = len(s & t)
            jac = inter / (len(s) + len(t) - inter)
            if jac >= cut:
                found[(min(i, j), max(i, j))] = jac
        for x in prefix:
            index[x].append(i)
    return found


def _components(n: int, pairs: Iterable[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [root(a) for a in range(n)]


@dataclass
class Truth:
    labels: list[int]  # story per document: component of the >= cut pairs
    pairs: dict[tuple[int, int], float]  # near-duplicate pairs and their exact Jaccard
    close: dict[tuple[int, int], float]  # pairs with CLOSE_JACCARD <= J < cut
    exact_groups: list[list[int]]  # documents with identical normalised text, size >= 2


def ground_truth(docs: Sequence[Doc], k: int = SHINGLE_SIZE, cut: float = TRUTH_JACCARD
                 ) -> Truth:
    sets = [shingles(d.text, k) for d in docs]
    found = similar_pairs(sets, min(cut, CLOSE_JACCARD))
    pairs = {p: j for p, j in found.items() if j >= cut}
    close = {p: j for p, j in found.items() if j < cut}
    by_text: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(docs):
        by_text[hashlib.sha1(normalise(d.text).encode("utf-8")).hexdigest()].append(i)
    exact = sorted(g for g in by_text.values() if len(g) > 1)
    return Truth(_components(len(docs), pairs), pairs, close, exact)


@dataclass
class Score:
    precision: float
    recall: float
    f1: float
    groups: int


def _pairs_in(sizes: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in sizes)


def pairwise(predicted: Sequence[object], truth: Sequence[object]) -> Score:
    """Pairwise precision/recall of one labelling against another (same documents)."""
    both = _pairs_in(Counter(zip(predicted, truth, strict=True)).values())
    said = _pairs_in(Counter(predicted).values())
    real = _pairs_in(Counter(truth).values())
    p = both / said if said else 1.0
    r = both / real if real else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return Score(p, r, f1, len(set(predicted)))


def model_f1(truth: Truth, threshold: float, num_perm: int = NUM_PERM) -> float:
    """Pairwise F1 expected over MinHash seeds, so the choice does not ride on one seed.

    A pair of exact Jaccard J agrees on Binomial(num_perm, J) of the hash values; it is
    joined when that count reaches the threshold. Ignores banding misses and chaining.
    """
    need = math.ceil(threshold * num_perm - 1e-9)

    def joined(j: float) -> float:
        return sum(math.comb(num_perm, x) * j**x * (1 - j) ** (num_perm - x)
                   for x in range(need, num_perm + 1))

    tp = sum(joined(j) for j in truth.pairs.values())
    fp = sum(joined(j) for j in truth.close.values())
    if not tp:
        return 0.0
    p, r = tp / (tp + fp), tp / len(truth.pairs)
    return 2 * p * r / (p + r)


def group(docs: Sequence[Doc], sigs: Sequence[str], threshold: float = THRESHOLD) -> list[str]:
    """Story id per document, from a `StoryIndex` built over all of them."""
    index = StoryIndex([(d.id, s) for d, s in zip(docs, sigs, strict=True)], threshold)
    return [index.story_for(d.id, s) for d, s in zip(docs, sigs, strict=True)]


def versions_truth(docs: Sequence[Doc], truth: Truth) -> tuple[list[int], int]:
    """A truth that does not lean on the shingle measure alone: copies, joined with the
    files one outlet (BBC) published under the same headline (its updated versions).
    Also returns the number of version pairs."""
    by_title: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(docs):
        by_title[normalise(d.title)].append(i)
    versions = [(g[0], x) for g in by_title.values() for x in g[1:]]
    return _components(len(docs), [*truth.pairs, *versions]), len(versions)


def ingest_labels(sources: Sequence[Path], docs: Sequence[Doc], outlet: str = "BBC News"
                  ) -> tuple[list[str], float]:
    """Ingest the sources as a user would (into a temporary store); the story the store
    gave each document, and the seconds the ingest took."""
    import tempfile

    from ingest.pipeline import ingest
    from rag.settings import get_settings
    from rag.store.articles import ArticleStore

    with tempfile.TemporaryDirectory() as tmp:
        settings = get_settings().override(data_dir=Path(tmp), collection="grouping")
        store = ArticleStore(settings)
        started = time.perf_counter()
        ingest([str(s) for s in sources], store, settings, outlet=outlet, progress=False)
        seconds = time.perf_counter() - started
        story = {f"{Path(path).parent.name}/{Path(path).stem}": article.story or article.id
                 for article in store.list_articles() for path in article.paths}
    return [story.get(d.id, d.id) for d in docs], seconds


def ingested(corpus: Path, docs: Sequence[Doc]) -> None:
    """Ingest the corpus and score the stories the store holds."""
    truth = ground_truth(docs, SHINGLE_SIZE)
    either, n_versions = versions_truth(docs, truth)
    labels, seconds = ingest_labels([corpus], docs)
    score = pairwise(labels, truth.labels)
    whole = sum(len({labels[i] for i in g}) == 1 for g in truth.exact_groups)
    print(f"ingest stored {len(set(labels))} stories for {len(docs)} files in {seconds:.0f} s")
    print(f"vs copies (exact Jaccard >= {TRUTH_JACCARD}): precision {score.precision:.3f}  "
          f"recall {score.recall:.3f}  F1 {score.f1:.3f}  ({len(set(truth.labels))} stories; "
          f"exact-duplicate groups found whole: {whole}/{len(truth.exact_groups)})")
    score = pairwise(labels, either)
    print(f"vs copies or same-headline versions ({n_versions} version pairs): precision "
          f"{score.precision:.3f}  recall {score.recall:.3f}  F1 {score.f1:.3f}  "
          f"({len(set(either))} stories)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_grouping")
    parser.add_argument("--corpus", type=Path, default=BBC_CORPUS)
    parser.add_argument("--ingest", action="store_true",
                        help="score the stories a real ingest stores (takes ~2 min)")
    args = parser.parse_args()
    docs = load_corpus(args.corpus)
    if args.ingest:
        print(f"{len(docs)} articles; cores: {os.cpu_count()}")
        ingested(args.corpus, docs)
        return
    distinct = len({normalise(d.text) for d in docs})
    print(f"{len(docs)} articles, {distinct} distinct texts; cores: {os.cpu_count()}")
    print(f"ground truth: exact Jaccard of word-shingle sets >= {TRUTH_JACCARD}, "
          f"stories = connected components")
    print(f"{'k':>2} {'thresh':>6} {'prec':>6} {'recall':>6} {'F1':>6} {'groups':>6} "
          f"{'exact':>7} {'model':>6} {'sig s':>6} {'index s':>7}")
    for k in SHINGLE_SIZES:
        started = time.perf_counter()
        truth = ground_truth(docs, k)
        truth_s = time.perf_counter() - started
        exact_pairs = {(a, b) for g in truth.exact_groups for a in g for b in g if a < b}
        near = {p: j for p, j in truth.pairs.items() if p not in exact_pairs}
        print(f"-- k={k}: truth in {truth_s:.1f}s: {len(truth.exact_groups)} exact-duplicate "
              f"groups ({_pairs_in(map(len, truth.exact_groups))} pairs), {len(near)} "
              f"near-duplicate pairs (J {min(near.values(), default=0):.2f}-"
              f"{max(near.values(), default=0):.2f}), "
              f"{len(set(truth.labels))} stories")
        started = time.perf_counter()
        sigs = [signature(d.text, d.title, k) for d in docs]
        sig_s = time.perf_counter() - started
        for threshold in THRESHOLDS:
            started = time.perf_counter()
            stories = group(docs, sigs, threshold)
            index_s = time.perf_counter() - started
            score = pairwise(stories, truth.labels)
            whole = sum(len({stories[i] for i in g}) == 1 for g in truth.exact_groups)
            mark = " <" if (k, threshold) == (SHINGLE_SIZE, THRESHOLD) else ""
            print(f"{k:>2} {threshold:>6.2f} {score.precision:>6.3f} {score.recall:>6.3f} "
                  f"{score.f1:>6.3f} {score.groups:>6} {whole:>3}/{len(truth.exact_groups):<3} "
                  f"{model_f1(truth, threshold):>6.3f} {sig_s:>6.2f} {index_s:>7.2f}{mark}")
    print("exact: exact-duplicate groups found whole; model: F1 expected over MinHash seeds "
          "(binomial, pairs only); '<': the module's SHINGLE_SIZE/THRESHOLD")


if __name__ == "__main__":
    main()
