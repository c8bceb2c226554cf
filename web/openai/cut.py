"""What a client is sent of an answer's content: cut before the first `stop` sequence
(`finish_reason` "stop") or at `max_tokens` tokens ("length"), tokens counted with
tiktoken's cl100k_base (the GPT-4 encoding). `Cut` is fed the content as it is written
and sends the same whether the response is whole or a stream; it never sends half a
character or takes back what it sent.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from web.openai.params import Asked


@cache
def _encoding() -> Any:  # noqa: ANN401 - tiktoken's Encoding
    """cl100k_base (GPT-4's encoding), from tiktoken's files bundled with llama-index."""
    from llama_index.core.utils import get_tokenizer

    return get_tokenizer().func.__self__  # the Encoding whose encode it is


def count_tokens(text: str) -> int:
    """How many tokens `text` is in cl100k_base."""
    return len(_encoding().encode(text, disallowed_special=())) if text else 0


def first_tokens(text: str, count: int) -> str:
    """The longest beginning of `text` within `count` tokens (never half a character)."""
    encoding = _encoding()
    tokens = encoding.encode(text, disallowed_special=())
    if len(tokens) <= count:
        return text
    return encoding.decode_bytes(tokens[:count]).decode("utf-8", "ignore")


class Cut:
    """What a client is sent of a content, fed as it is written: it ends before the
    first stop sequence (`finish` "stop") or at `max_tokens` tokens (`finish`
    "length"). The end of what was fed that may begin a stop sequence, and with a
    token limit the last word (its tokens depend on how it ends), are held back until
    the next piece (or `end`) settles them; so a stream sends what a whole response
    would."""

    def __init__(self, stop: list[str], max_tokens: int | None) -> None:
        self.stops, self.max_tokens = stop, max_tokens
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.held = self.sent = ""
        self.finish: str | None = None  # "stop" or "length" once the content is cut

    @classmethod
    def of(cls, asked: Asked) -> Cut:
        return cls(asked.stop, asked.max_tokens)

    def feed(self, text: str) -> str:
        """What may be sent of the content so far, beyond what already was."""
        if self.finish:
            return ""
        self.held += text
        found = [i for i in (self.held.find(s) for s in self.stops) if i >= 0]
        if found:
            out, self.held, self.finish = self.held[:min(found)], "", "stop"
        else:
            keep = min(self.hold, len(self.held))
            if self.max_tokens is not None:  # a word's tokens depend on how it ends
                word = re.search(r"\s+\S*$", self.held)
                keep = max(keep, len(self.held) - word.start() if word else len(self.held))
            out, self.held = self.held[:len(self.held) - keep], self.held[len(self.held) - keep:]
        return self._release(out)

    def end(self) -> str:
        """The rest, once there is no more content."""
        out, self.held = ("" if self.finish else self.held), ""
        return self._release(out)

    def _release(self, out: str) -> str:
        if self.max_tokens is not None and out:
            whole = self.sent + out
            if count_tokens(whole) > self.max_tokens:
                cut = first_tokens(whole, self.max_tokens)
                out, self.finish, self.held = cut[len(self.sent):], "length", ""
                if not cut.startswith(self.sent):  # a token boundary moved: send no more
                    out = ""
        self.sent += out
        return out
