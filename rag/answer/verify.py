"""Citations: resolve `[n]` to exact article spans, and check that each one supports its claim.

The support score is deterministic: how much of the sentence's content (stemmed
words, numbers, names) the cited passage contains, blended with the embedding
similarity to the passage's closest sentence. Numbers the passage lacks count
double: invented figures are the commonest unsupported claim.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from rag.text import content_terms, numbers, sentence_spans
from rag.types import AnswerSentence, Checked, Citation, Claim, Draft, Passage, Span

SUPPORT_THRESHOLD = 0.5
_CITE = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")


def split_cited_sentences(answer: str) -> list[Claim]:
    """An answer text with `[n]` markers to claims, each with the passage numbers it cites.

    A marker right after a sentence's end (`... end. [2]`) belongs to that sentence.
    """
    # Attach markers that follow the full stop to the sentence before it.
    text = re.sub(r"([.!?][\"”’)]?)(\s*)((?:\[\d+(?:\s*,\s*\d+)*\]\s*)+)",
                  lambda m: " " + m.group(3).strip() + m.group(1) + " ", answer)
    out: list[Claim] = []
    for start, end in sentence_spans(text):
        raw = text[start:end]
        cites = [int(n) for group in _CITE.findall(raw) for n in re.split(r"\s*,\s*", group)]
        clean = " ".join(_CITE.sub("", raw).split())
        clean = re.sub(r"\s+([.,;:!?])", r"\1", clean)
        if clean:
            out.append(Claim(text=clean, passages=list(dict.fromkeys(cites))))
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


def _quoted_at(claim: Claim, index: int, passage: Passage) -> bool:
    """Whether the claim carries its span in this passage and the text there is its own
    (a span is trusted only when the passage says exactly that at that place)."""
    span = claim.span
    if span is None or span.passage != index:
        return False
    a, b = span.start - passage.start, span.end - passage.start
    return 0 <= a < b <= len(passage.text) and passage.text[a:b] == claim.text


def verify(
    claims: list[Claim],
    passages: list[Passage],
    scorer: SupportScorer,
    threshold: float = SUPPORT_THRESHOLD,
) -> list[Checked]:
    """Each claim with the span of each cited passage that supports it best, and its
    best score. Citations of passages that were not given are dropped."""
    checked: list[Checked] = []
    for claim in claims:
        spans: list[Span] = []
        best_score = 0.0
        for n in dict.fromkeys(claim.passages):
            if not 1 <= n <= len(passages):
                continue  # the answerer was never given such a passage
            if _quoted_at(claim, n - 1, passages[n - 1]):
                span = claim.span  # the reader's own sentence: cited where it stands
                best_score = 1.0
                spans.append(Span(passage=n - 1, start=span.start, end=span.end))
                continue
            score, start, end = scorer.best_span(claim.text, passages[n - 1])
            best_score = max(best_score, score)
            spans.append(Span(passage=n - 1, start=start, end=end))
        checked.append(Checked(text=claim.text, spans=spans, score=round(best_score, 3),
                               supported=bool(spans) and best_score >= threshold))
    return checked


def verify_draft(draft: Draft, passages: list[Passage], scorer: SupportScorer) -> list[Checked]:
    """Verify each claim of a draft against the passages it cites."""
    return [] if draft.refused else verify(draft.claims, passages, scorer)


def number_citations(checked: list[Checked], passages: list[Passage]
                     ) -> tuple[list[AnswerSentence], list[Citation]]:
    """Citations numbered 1, 2, 3... in order of first use, one per distinct span (two
    claims from one passage each open their own quote), and the sentences citing them."""
    citations: list[Citation] = []
    number: dict[tuple[str, int, int], int] = {}
    sentences: list[AnswerSentence] = []
    for claim in checked:
        cited: list[int] = []
        for span in claim.spans:
            passage = passages[span.passage]
            key = (passage.chunk_id, span.start, span.end)
            if key not in number:
                number[key] = len(citations) + 1
                citations.append(Citation(
                    n=number[key], article_id=passage.article_id, title=passage.title,
                    url=passage.url, path=passage.path, published=passage.published,
                    chunk_id=passage.chunk_id, start=span.start, end=span.end,
                    quote=_quote(passage, span.start, span.end), outlet=passage.outlet,
                ))
            cited.append(number[key])
        sentences.append(AnswerSentence(text=claim.text, citations=cited,
                                        supported=claim.supported, score=claim.score))
    return sentences, citations


def _quote(passage: Passage, start: int, end: int) -> str:
    return passage.text[start - passage.start:end - passage.start]
