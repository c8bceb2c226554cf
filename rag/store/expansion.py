"""News-vocabulary query expansion for the keyword side.

Groups of words news writing uses interchangeably for one idea: `expand_query` adds a
question's related words to a BM25 query, and `related_stems` gives a word's related
stems (extractive scoring counts them for less than the user's own word).

Why: docs/decisions/query-expansion.md.
"""

from __future__ import annotations

from functools import lru_cache

from rag.text import content_terms

# Groups of words news writing uses interchangeably for one idea.
_GROUPS: list[list[str]] = [
    ["sour", "soured", "deteriorate", "worsen", "strain", "strained", "tension", "tensions",
     "hostility", "hostilities", "friction", "rift", "feud", "dispute", "mistrust", "row",
     "clash", "animosity", "escalate", "escalated", "breakdown", "frosty"],
    ["improve", "improved", "thaw", "warm", "warming", "repair", "reconcile", "reconciliation",
     "rapprochement", "normalise", "normalize", "restore", "reset", "mend", "ease", "eased"],
    ["rise", "rose", "increase", "increased", "jump", "jumped", "soar", "soared", "climb",
     "climbed", "surge", "surged", "grow", "grew", "growth", "boost", "gain"],
    ["fall", "fell", "drop", "dropped", "decline", "declined", "slump", "slumped", "plunge",
     "plunged", "slide", "shrink", "shrank", "cut", "loss", "losses"],
    ["profit", "profits", "earnings", "income", "surplus"],
    ["sack", "sacked", "fire", "fired", "dismiss", "dismissed", "axe", "axed", "oust", "ousted"],
    ["resign", "resigned", "quit", "step down", "stood down"],
    ["buy", "bought", "acquire", "acquired", "acquisition", "takeover", "purchase", "deal",
     "merger", "bid"],
    ["win", "won", "victory", "beat", "triumph", "defeat", "defeated"],
    ["attack", "assault", "stormed", "raid", "bombing", "shooting", "gunman"],
    ["oppose", "opposed", "opposition", "object", "reject", "rejected", "criticise",
     "criticised", "condemn", "condemned"],
    ["meet", "met", "meeting", "talks", "summit", "visit"],
    ["cooperation", "cooperate", "ties", "alliance", "partnership", "relations",
     "relationship"],
    ["law", "bill", "legislation", "act", "rules", "regulation"],
    ["job", "jobs", "employment", "workers", "staff", "workforce", "redundancies", "layoffs"],
    ["film", "movie", "picture"],
    ["phone", "mobile", "handset", "smartphone"],
]


@lru_cache(maxsize=1)
def _by_stem() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for group in _GROUPS:
        stems = {s for word in group for s in content_terms(word)}
        for stem in stems:
            table.setdefault(stem, set()).update(stems - {stem})
    return {k: frozenset(v) for k, v in table.items()}


def related_stems(stem: str) -> frozenset[str]:
    """Stems that news writing uses for the same idea as `stem` (not including it)."""
    return _by_stem().get(stem, frozenset())


def expand_query(question: str) -> str:
    """The question plus related words, for BM25 (which has no notion of synonyms)."""
    extra: list[str] = []
    for group in _GROUPS:
        stems = {s for word in group for s in content_terms(word)}
        if stems & set(content_terms(question)):
            extra.extend(w for w in group if " " not in w)
    return f"{question} {' '.join(dict.fromkeys(extra))}" if extra else question
