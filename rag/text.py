"""Words and sentences: the tokenising that retrieval, answers and citations share."""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*|\d+(?:[.,]\d+)*%?")
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself also said
    says say according would could may might must shall still yet one two s t happen happened
    happens happening""".split()  # noqa: SIM905
)


@lru_cache(maxsize=1)
def _stemmer():  # noqa: ANN202 - PyStemmer has no type stubs
    import Stemmer

    return Stemmer.Stemmer("english")


def content_terms(text: str) -> list[str]:
    """Stemmed content words and numbers, in order."""
    # "Azerbaijan’s" is "azerbaijan": a curly apostrophe's possessive must go as a
    # straight one's does, or the name stops matching.
    words = [re.sub(r"'s$", "", w.replace("’", "'").lower()).strip("'-")
             for w in _WORD.findall(text)]
    words = [w for w in words if w and w not in STOPWORDS]
    return _stemmer().stemWords(words)


def numbers(text: str) -> set[str]:
    return {n.rstrip("%").replace(",", "") for n in re.findall(r"\d+(?:[.,]\d+)*%?", text)}


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence spans (trimmed) with the Punkt model llama-index bundles."""
    from llama_index.core.utils import globals_helper

    spans = []
    for start, end in globals_helper.punkt_tokenizer.span_tokenize(text):
        # Headings and paragraphs arrive joined by newlines: split those too.
        offset = start
        for part in re.split(r"(\n+)", text[start:end]):
            if part.strip() and not part.startswith("\n"):
                lead = len(part) - len(part.lstrip())
                spans.append((offset + lead, offset + len(part.rstrip())))
            offset += len(part)
    return spans


def word_overlap(a: str, b: str) -> float:
    """Jaccard similarity of two texts' lowercased words: how nearly they say the same
    thing in the same words (copies of a passage, one event told twice)."""
    wa, wb = set(re.findall(r"\w+", a.lower())), set(re.findall(r"\w+", b.lower()))
    return len(wa & wb) / len(wa | wb) if wa and wb else 0.0
