"""Relaying a draft's text while it is written: as the answerer writes it (`recording`),
or only as the answer will stand (`checking`), and what is left to send once the answer
is assembled (`rest_of`).

Contract: a relay yields text and returns the draft's `Draft`; what it sent is appended
to its `sink`; closing the relay closes the draft (a model stops writing).
"""

from __future__ import annotations

import logging
from collections.abc import Generator

from rag.answer.verify import SupportScorer, number_citations, split_cited_sentences, verify
from rag.types import Draft, Passage, answer_text

logger = logging.getLogger(__name__)
SETTLED_CHARS = 12  # a sentence begun this far has ended the one before it for good


def recording(gen: Generator[str, None, Draft], sink: list[str]
              ) -> Generator[str, None, Draft]:
    """Relays a draft's text, noting what went out; closing this closes the draft."""
    try:
        while True:
            try:
                item = next(gen)
            except StopIteration as stop:
                return stop.value
            sink.append(item)
            yield item
    finally:
        gen.close()


def checking(gen: Generator[str, None, Draft], passages: list[Passage],
             scorer: SupportScorer, sink: list[str]) -> Generator[str, None, Draft]:
    """Relays a model's draft as the answer will stand: each sentence once the next
    one has begun, verified and numbered as `assemble` will number it (verify is per
    sentence and numbering is by first use, so a prefix of the answer is numbered as
    the whole will be). Nothing goes out until a sentence is supported, because a draft
    without one is discarded (`stands`); "" between, so the consumer may stop."""
    text, done, shown = "", [], ""
    try:
        while True:
            try:
                text += next(gen)
            except StopIteration as stop:
                return stop.value
            claims = split_cited_sentences(text)
            settled = claims[:-1] if claims and len(claims[-1].text) >= SETTLED_CHARS \
                else claims[:-2]
            done.extend(c for claim in settled[len(done):]
                        for c in verify([claim], passages, scorer))
            out = ""
            if any(c.supported for c in done):
                rendered = answer_text(number_citations(done, passages)[0])
                if rendered.startswith(shown):
                    out, shown = rendered[len(shown):], rendered
            if out:
                sink.append(out)
            yield out
    finally:
        gen.close()


def rest_of(answer: str, sent: str) -> str:
    """What is left to send of a checked answer after `sent`: the rest when what went
    out is its beginning; otherwise (a model that broke off after a checked sentence,
    its replacement next) the whole answer after a blank line."""
    if answer.startswith(sent):
        return answer[len(sent):]
    logger.info("the streamed sentences were not the answer's beginning; sending it whole")
    return "\n\n" + answer
