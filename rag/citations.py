"""Citations: resolve `[n]` to exact article spans, and check that each one supports its claim.

The support score is deterministic: how much of the sentence's content (stemmed
words, numbers, names) the cited passage contains, blended with the embedding
similarity to the passage's closest sentence. Numbers the passage lacks count
double: invented figures are the commonest unsupported claim.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rag.retrieval import Passage
from rag.text import content_terms, numbers, sentence_spans

SUPPORT_THRESHOLD = 0.5
_CITE = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass
class Citation:
    n: int
    article_id: str
    title: str
    url: str | None
    path: str | None
    published: str | None
    chunk_id: str
    start: int  # span of the supporting text in the article
    end: int
    quote: str
    outlet: str | None = None


@dataclass
class AnswerSentence:
    text: str
    citations: list[int] = field(default_factory=list)
    supported: bool = False
    score: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def split_cited_sentences(answer: str) -> list[AnswerSentence]:
    """An answer text with `[n]` markers to sentences, each with the numbers it cites.

    A marker right after a sentence's end (`... end. [2]`) belongs to that sentence.
    """
    # Attach markers that follow the full stop to the sentence before it.
    text = re.sub(r"([.!?][\"”’)]?)(\s*)((?:\[\d+(?:\s*,\s*\d+)*\]\s*)+)",
                  lambda m: " " + m.group(3).strip() + m.group(1) + " ", answer)
    out: list[AnswerSentence] = []
    for start, end in sentence_spans(text):
        raw = text[start:end]
        cites = [int(n) for group in _CITE.findall(raw) for n in re.split(r"\s*,\s*", group)]
        clean = " ".join(_CITE.sub("", raw).split())
        clean = re.sub(r"\s+([.,;:!?])", r"\1", clean)
        if clean:
            out.append(AnswerSentence(clean, list(dict.fromkeys(cites))))
    return out


class SupportScorer:
    """Scores how well a passage supports a sentence; embeddings are optional."""

    def __init__(self, embed_model: Any | None = None) -> None:
        self.embed_model = embed_model
        self._vectors: dict[str, np.ndarray] = {}

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, each text embedded once per answer however often it is cited."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            for text, vec in zip(missing, self.embed_model.get_text_embedding_batch(missing),
                                 strict=True):
                vec = np.asarray(vec, dtype=np.float32)
                self._vectors[text] = vec / (np.linalg.norm(vec) + 1e-9)
        return np.stack([self._vectors[t] for t in texts])

    def best_span(self, sentence: str, passage: Passage) -> tuple[float, int, int]:
        """(score, start, end): the support score and the passage sentence that supports
        the claim best, as a span in the article."""
        exact = passage.text.find(sentence)
        if exact >= 0:  # quoted verbatim: nothing to weigh
            return 1.0, passage.start + exact, passage.start + exact + len(sentence)
        spans = sentence_spans(passage.text) or [(0, len(passage.text))]
        texts = [passage.text[a:b] for a, b in spans]
        lexical = [self._lexical(sentence, t, passage.text) for t in texts]
        if self.embed_model is not None:
            vectors = self._embed([sentence, *texts])
            sims = vectors[1:] @ vectors[0]
            scores = [0.5 * lex + 0.5 * max(float(sim), 0.0) for lex, sim in zip(lexical, sims,
                                                                                 strict=True)]
        else:
            scores = lexical
        best = int(np.argmax(scores))
        if _missing_numbers(sentence, passage.text):
            scores[best] *= 0.5
        a, b = spans[best]
        return scores[best], passage.start + a, passage.start + b

    @staticmethod
    def _lexical(sentence: str, window: str, passage: str) -> float:
        terms = set(content_terms(sentence))
        if not terms:
            return 0.0
        near = set(content_terms(window))
        wide = set(content_terms(passage))
        # Words in the closest sentence count fully, elsewhere in the passage half.
        return sum(1.0 if t in near else 0.5 if t in wide else 0.0 for t in terms) / len(terms)


def _missing_numbers(sentence: str, passage: str) -> bool:
    return bool(numbers(sentence) - numbers(passage))


def verify(
    sentences: list[AnswerSentence],
    passages: list[Passage],
    scorer: SupportScorer,
    threshold: float = SUPPORT_THRESHOLD,
) -> list[Citation]:
    """Drop citations to passages that were not given, score the rest, and resolve each
    to the span that supports its sentence.

    Sentence `[n]` markers arrive as passage numbers; they leave as citation numbers,
    one per distinct span, so two claims from one passage each open their own quote.
    """
    citations: list[Citation] = []
    index: dict[tuple[str, int, int], int] = {}
    for sentence in sentences:
        cited: list[int] = []
        best_score = 0.0
        for n in dict.fromkeys(sentence.citations):
            if not 1 <= n <= len(passages):
                continue  # the answerer was never given such a passage
            passage = passages[n - 1]
            score, start, end = scorer.best_span(sentence.text, passage)
            best_score = max(best_score, score)
            key = (passage.chunk_id, start, end)
            if key not in index:
                citations.append(Citation(
                    n=len(citations) + 1, article_id=passage.article_id, title=passage.title,
                    url=passage.url, path=passage.path, published=passage.published,
                    chunk_id=passage.chunk_id, start=start, end=end,
                    quote=_quote(passage, start, end), outlet=passage.outlet,
                ))
                index[key] = len(citations)
            cited.append(index[key])
        sentence.citations = cited
        sentence.score = round(best_score, 3)
        sentence.supported = bool(cited) and best_score >= threshold
    return citations


def _quote(passage: Passage, start: int, end: int) -> str:
    return passage.text[start - passage.start:end - passage.start]
