"""Stories by MinHash LSH: the in-memory index `eval.bench_grouping` compares ingest's
exact grouping with (ingest does not use it: docs/decisions/story-grouping.md).

`signature` is an article's MinHash as a string (`mh1-k<k>-p<perm>:<base64>`: settings
recorded, so signatures made otherwise are refused rather than compared), and
`StoryIndex` maps article ids to story ids: an article joins the story of any indexed
member whose estimated Jaccard reaches the threshold, the smallest story id winning,
and stories never merge.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np
from datasketch import MinHash, MinHashLSH

from ingest.grouping import SHINGLE_SIZE, THRESHOLD, shingles

logger = logging.getLogger(__name__)

NUM_PERM = 128  # estimate's standard error at J = 0.5: sqrt(.25 / 128) = 0.044
SEED = 20050101  # fixed: signatures are stored, so the permutations must never change
SCHEME = "affine32"  # datasketch >= 2.0: uint32 hash values, 4 bytes per permutation

# The LSH index only proposes candidates; each is then checked against the threshold on
# the full signature. Its bands are chosen so that a pair right at the threshold is missed
# by banding with probability <= LSH_MISS (datasketch's default tuning, which weighs misses
# and false candidates equally, lost a pair at exact J = 0.57 on BBC).
LSH_MISS = 0.01

_HEADER = re.compile(r"mh1-k(\d+)-p(\d+):")


@lru_cache(maxsize=1)
def _template() -> MinHash:
    """One MinHash holding the permutations: generating them per article would dominate."""
    return MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME)


def _minhash(hashvalues: np.ndarray) -> MinHash:
    return MinHash(seed=SEED, hashvalues=hashvalues, permutations=_template().permutations,
                   scheme=SCHEME)


def signature(text: str, title: str = "", k: int = SHINGLE_SIZE) -> str:
    """MinHash of the text's word shingles as `mh1-k<k>-p<perm>:<base64>` (~700 chars).

    The body alone is hashed: copies of one story often carry different headlines. The
    title counts only when the body has no words, so a headline-only item still groups.
    The header records k and the permutation count, so signatures made with other settings
    are refused rather than compared (their Jaccard estimates would be meaningless).
    """
    grams = shingles(text, k) or shingles(title, k)
    mh = _template().copy()
    mh.update_batch(g.encode("utf-8") for g in grams)
    raw = mh.hashvalues.astype("<u4").tobytes()
    return f"mh1-k{k}-p{NUM_PERM}:" + base64.b64encode(raw).decode("ascii")


def signature_header(sig: str) -> str:
    """The settings part of a signature (`mh1-k5-p128:`); only equal headers compare."""
    match = _HEADER.match(sig)
    if not match:
        raise ValueError(f"not a grouping signature: {sig[:20]!r}")
    if int(match.group(2)) != NUM_PERM:
        raise ValueError(f"signature made with another permutation count: {match.group(0)}")
    return match.group(0)


def from_signature(sig: str) -> MinHash:
    """The MinHash back from `signature`'s string (it compares with `.jaccard`)."""
    header = signature_header(sig)
    values = np.frombuffer(base64.b64decode(sig[len(header):], validate=True), dtype="<u4")
    if values.size != NUM_PERM:
        raise ValueError(f"signature has {values.size} values, expected {NUM_PERM}")
    return _minhash(values.astype(np.uint32))


def lsh_bands(threshold: float) -> tuple[int, int]:
    """(bands, rows): the most rows per band (fewest false candidates) that keeps the chance
    of banding missing a pair at `threshold`, (1 - t^rows)^bands, within LSH_MISS."""
    best = (NUM_PERM, 1)
    for rows in range(1, NUM_PERM + 1):
        bands = NUM_PERM // rows
        if bands < 2 or (1 - threshold**rows) ** bands > LSH_MISS:
            break
        best = (bands, rows)
    return best


@dataclass(frozen=True)
class Entry:
    """One indexed article; `published` orders members and founders of stories."""

    article_id: str
    signature: str
    published: date | None = None
    outlet: str | None = None
    title: str = ""
    story: str | None = None  # the story it was stored under, kept as it is


def _order(entry: Entry) -> tuple[bool, date, str]:
    return (entry.published is None, entry.published or date.min, entry.article_id)


class StoryIndex:
    """Article id -> story id, for near-duplicates found by MinHash LSH.

    Built from records, the earliest published article (then the smallest id) founds each
    story, whatever the order the records came in. An article joins the story of any
    indexed member whose estimated Jaccard is >= threshold; when several stories match,
    the smallest story id wins, so the answer never depends on set iteration order.
    Stories never merge: a story id, once handed out, stays valid.
    """

    def __init__(self, records: Iterable[Entry | tuple] = (), threshold: float = THRESHOLD
                 ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self._lsh = MinHashLSH(num_perm=NUM_PERM, params=lsh_bands(threshold))
        self._values: dict[str, np.ndarray] = {}
        self._entries: dict[str, Entry] = {}
        self._story: dict[str, str] = {}
        self._members: dict[str, list[str]] = {}
        self._header: str | None = None
        entries = [r if isinstance(r, Entry) else Entry(*r) for r in records]
        for entry in sorted(entries, key=_order):
            self._add(entry)

    def __len__(self) -> int:
        return len(self._story)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._story

    def _check(self, sig: str) -> MinHash:
        header = signature_header(sig)
        if self._header is None:
            self._header = header
        elif header != self._header:
            raise ValueError(f"signature {header} does not compare with {self._header}")
        return from_signature(sig)

    def _match(self, article_id: str, mh: MinHash) -> str:
        if mh.is_empty():  # no words at all: equal to every other empty text, like to none
            return article_id
        stories = set()
        for key in self._lsh.query(mh):
            agree = np.count_nonzero(self._values[key] == mh.hashvalues) / NUM_PERM
            if agree >= self.threshold:
                stories.add(self._story[key])
        return min(stories) if stories else article_id

    def story_for(self, article_id: str, signature: str) -> str:
        """The story the article belongs to (its own id when new); indexes nothing."""
        if article_id in self._story:
            return self._story[article_id]
        return self._match(article_id, self._check(signature))

    def add(self, article_id: str, signature: str, published: date | None = None,
            outlet: str | None = None, title: str = "", story: str | None = None) -> str:
        """Index the article and return its story id (unchanged if already indexed;
        `story` if given: the store's word stands, ids never move)."""
        return self._add(Entry(article_id, signature, published, outlet, title, story))

    def _add(self, entry: Entry) -> str:
        if entry.article_id in self._story:
            return self._story[entry.article_id]
        mh = self._check(entry.signature)
        story = entry.story or self._match(entry.article_id, mh)
        if not mh.is_empty():
            self._lsh.insert(entry.article_id, mh, check_duplication=False)
        self._values[entry.article_id] = mh.hashvalues
        self._entries[entry.article_id] = entry
        self._story[entry.article_id] = story
        self._members.setdefault(story, []).append(entry.article_id)
        if story != entry.article_id:
            logger.debug("%s joins story %s", entry.article_id, story)
        return story

    def entry(self, article_id: str) -> Entry:
        return self._entries[article_id]

    def members(self, story_id: str) -> list[str]:
        """Article ids of the story: its founder, then the rest earliest published first."""
        return sorted(self._members.get(story_id, ()),
                      key=lambda a: (a != story_id, _order(self._entries[a])))

    def groups(self) -> dict[str, list[str]]:
        """Every story id with its members, singletons included."""
        return {story: self.members(story) for story in sorted(self._members)}
