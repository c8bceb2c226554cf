"""The LLM answerer: OpenAI or any OpenAI-compatible endpoint, through llama-index.

The model sees numbered passages and must cite `[n]` on every claim, or say the
articles don't say. What it writes is checked afterwards (`rag.citations.verify`);
nothing here trusts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llama_index.core.llms import LLM, ChatMessage

from rag.retrieval import Passage
from rag.settings import Settings

SYSTEM_PROMPT = """You answer questions about news articles using ONLY the numbered passages \
given to you. Rules:
- Every sentence of your answer must end with the number of the passage that supports it, in \
square brackets, like [1] or [2][3].
- Use only facts stated in the passages. Do not add anything from your own knowledge.
- If the passages do not answer the question, reply exactly: "The articles don't say."
- Be short: two to five sentences."""

CONDENSE_PROMPT = """Rewrite the last question as one standalone question that can be understood \
without the conversation. Keep names and subjects from earlier turns that it refers to. Reply with \
the question only.

Conversation:
{history}

Last question: {question}
Standalone question:"""


class LLMError(RuntimeError):
    """The endpoint failed; the message is one line a user can act on."""


def llm_configured(settings: Settings) -> bool:
    return bool(settings.llm_model and (settings.openai_api_key or settings.openai_base_url))


def build_llm(settings: Settings) -> LLM:
    if not settings.llm_model:
        raise LLMError("no LLM configured: set RAG_LLM_MODEL (and OPENAI_API_KEY and/or "
                       "OPENAI_BASE_URL)")
    common: dict[str, Any] = {
        "model": settings.llm_model,
        "api_key": settings.openai_api_key or "not-needed",
        "temperature": 0.1,
        "max_tokens": settings.llm_max_tokens,
        "timeout": settings.llm_timeout,
        "max_retries": 1,
    }
    if settings.openai_base_url:
        from llama_index.llms.openai_like import OpenAILike

        return OpenAILike(api_base=settings.openai_base_url, is_chat_model=True,
                          context_window=settings.llm_context_window, **common)
    from llama_index.llms.openai import OpenAI

    return OpenAI(**common)


def describe_error(exc: Exception, settings: Settings) -> str:
    """One line for a failed call, without a stack trace."""
    import openai

    where = settings.openai_base_url or "api.openai.com"
    if isinstance(exc, openai.AuthenticationError):
        return f"the LLM endpoint {where} rejected the API key (401): check OPENAI_API_KEY"
    if isinstance(exc, openai.RateLimitError):
        return f"the LLM endpoint {where} is rate-limiting requests (429): try again shortly"
    if isinstance(exc, openai.APITimeoutError):
        return f"the LLM endpoint {where} timed out after {settings.llm_timeout:g} s"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach the LLM endpoint {where}: is the server running?"
    if isinstance(exc, openai.NotFoundError):
        return f"the LLM endpoint {where} has no model {settings.llm_model!r} (404)"
    if isinstance(exc, openai.APIStatusError):
        return f"the LLM endpoint {where} answered HTTP {exc.status_code}"
    return f"the LLM call failed ({type(exc).__name__}: {' '.join(str(exc).split())[:100]})"


def format_passages(passages: list[Passage]) -> str:
    blocks = []
    for n, p in enumerate(passages, start=1):
        about = ", ".join(x for x in (p.title, p.published, p.outlet) if x)
        blocks.append(f"[{n}] ({about})\n{p.text}")
    return "\n\n".join(blocks)


class LLMAnswerer:
    def __init__(self, settings: Settings, llm: LLM | None = None) -> None:
        self.settings = settings
        self.llm = llm or build_llm(settings)

    @property
    def model(self) -> str:
        return str(self.settings.llm_model)

    def messages(self, question: str, passages: list[Passage]) -> list[ChatMessage]:
        return [
            ChatMessage(role="system", content=SYSTEM_PROMPT),
            ChatMessage(role="user", content=f"Passages:\n\n{format_passages(passages)}\n\n"
                                             f"Question: {question}"),
        ]

    def stream(self, question: str, passages: list[Passage]) -> Iterator[str]:
        """Text deltas as the model writes them; raises LLMError on endpoint failure."""
        try:
            for chunk in self.llm.stream_chat(self.messages(question, passages)):
                if chunk.delta:
                    yield chunk.delta
        except Exception as exc:
            raise LLMError(describe_error(exc, self.settings)) from exc

    def condense(self, question: str, history: list[dict[str, Any]]) -> str:
        lines = [f"{t.get('role', 'user')}: {t.get('content', '')}" for t in history[-6:]]
        prompt = CONDENSE_PROMPT.format(history="\n".join(lines), question=question)
        try:
            text = self.llm.complete(prompt).text.strip().strip('"').splitlines()
        except Exception as exc:
            raise LLMError(describe_error(exc, self.settings)) from exc
        return text[0].strip() if text and text[0].strip() else question
