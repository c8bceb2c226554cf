"""One story, however many copies: retrieved passages settled against their story groups.

Ingest groups near-duplicate articles into stories (`ingest.grouping`). Here, per
question: a passage whose article was replaced by an updated version (same outlet, same
URL or headline, published later) gives way to that version, unless the question asks
about the earlier one; a passage repeating, near word for word, one already kept from
another copy is dropped; and each cited article learns which other articles tell the
same story, for "also in N other articles".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from rag.records import StoredArticle, canonical_url, plain_title
from rag.store.articles import ArticleStore
from rag.text import word_overlap
from rag.types import Passage, Related

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Record:
    """What `supersedes` needs of an article."""

    id: str
    title: str = ""
    outlet: str | None = None
    url: str | None = None
    published: date | None = None


def supersedes(newer: Record, older: Record) -> bool:
    """Is `newer` an updated version of `older`: same outlet, same page, published later.

    Same page means the same canonical URL (tracking parameters, `www.` and trailing
    slashes aside) or the same title once update markers are removed. Without both dates
    nothing can be said to be newer, so the answer is False.
    """
    if not newer.outlet or not older.outlet:
        return False
    if newer.outlet.strip().casefold() != older.outlet.strip().casefold():
        return False
    if newer.published is None or older.published is None or newer.published <= older.published:
        return False
    if newer.url and older.url and canonical_url(newer.url) == canonical_url(older.url):
        return True
    plain = plain_title(newer.title)
    return bool(plain) and plain == plain_title(older.title)


SAME_TEXT = 0.6  # token Jaccard from which two passages of one story say the same thing


def _record(a: StoredArticle) -> Record:
    return Record(id=a.id, title=a.title, outlet=a.outlet, url=a.url, published=a.published)


def _same_text(a: str, b: str) -> bool:
    return word_overlap(a, b) >= SAME_TEXT


def related(article: StoredArticle) -> Related:
    return Related(article_id=article.id, title=article.title, outlet=article.outlet,
                   published=article.published.isoformat() if article.published else None,
                   url=article.url)


@dataclass
class Settled:
    """The passages to answer from, and for each article the other tellings of its story."""

    passages: list[Passage]
    others: dict[str, list[Related]]  # article id -> other articles of its story
    backup: list[Passage] = field(default_factory=list)  # if `passages` give no answer


def settle(passages: list[Passage], store: ArticleStore, wants_older: bool = False,
           fetch: Callable[[str], list[Passage]] | None = None,
           as_of: date | None = None) -> Settled:
    """`fetch(article_id)`: the best passages of an updated version that retrieval did not
    return, so that replacing an old version never leaves the answer without it. `as_of`:
    versions published later do not exist yet."""
    stories = {p.story or p.article_id for p in passages}
    members = store.story_members(stories) if stories else {}
    if as_of is not None:
        members = {s: [a for a in group if a.published is None or a.published <= as_of]
                   for s, group in members.items()}
    replaced: dict[str, str] = {}
    if not wants_older:
        for group in members.values():
            for old in group:
                newer = [a for a in group if a.id != old.id
                         and supersedes(_record(a), _record(old))]
                if newer:
                    replaced[old.id] = max(newer, key=lambda a: (a.published, a.id)).id
    # Follow chains of updates to the newest version.
    for old, new in list(replaced.items()):
        seen = {old}
        while new in replaced and new not in seen:
            seen.add(new)
            new = replaced[new]
        replaced[old] = new

    kept: list[Passage] = []
    have = {p.article_id for p in passages if p.article_id not in replaced}
    for p in passages:
        if p.article_id in replaced:
            newer = replaced[p.article_id]
            if newer not in have and fetch is not None:
                for q in fetch(newer):
                    kept.append(q.model_copy(update={"score": p.score}))
                have.add(newer)
            continue
        story = p.story or p.article_id
        if any((k.story or k.article_id) == story and k.article_id != p.article_id
               and _same_text(k.text, p.text) for k in kept):
            continue  # a copy of a passage already kept
        kept.append(p)
    kept.sort(key=lambda p: -p.score)
    others = {}
    for p in kept:
        group = members.get(p.story or p.article_id, [])
        others[p.article_id] = [related(a) for a in group if a.id != p.article_id]
    if replaced:
        logger.debug("updated versions replaced %s", replaced)
    return Settled(kept, others)
