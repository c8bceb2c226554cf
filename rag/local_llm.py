"""A llama.cpp model run in this process (llama-cpp-python), for the local reader.

In-process rather than through a server: the reader needs the logits of one next
token (a server's API gives sampled text and top log-probabilities at best), and the
KV cache of the last prompt stays in memory, so the next prompt only computes what
follows their common prefix (the fixed instructions and the question). A llama.cpp
built for another CPU crashed on its first multi-token prompt, which in-process
would take the app down: so before the model is first loaded here, the same build
and model run one prompt in a child process (`rag.llama_check`); if that fails, the
model is not loaded and the caller is told why, once.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag import llama_check
from rag.local_model import ModelUnavailable, model_path
from rag.settings import Settings

logger = logging.getLogger(__name__)


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two prompts have in common."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))


class LocalModelError(RuntimeError):
    """The local model can't run here; the message is one line saying why."""


class LocalLLM:
    """One model shared by every question, one prompt at a time (a llama context is
    not thread-safe)."""

    def __init__(self, path: Path, threads: int = 2, n_ctx: int = 2048,
                 state_dir: Path | None = None) -> None:
        result = llama_check.check_once(path)
        if not result.ok:
            raise LocalModelError(result.line)
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # the check above ran in a child with the same venv
            raise LocalModelError("llama-cpp-python is not installed: run `make llama`") from exc
        self.path = path
        self.state_dir = state_dir or path.parent  # where prompt states are kept
        started = time.monotonic()
        self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads,
                         n_threads_batch=threads, n_batch=512, verbose=False, seed=1)
        self.lock = threading.Lock()
        # Freed before the interpreter tears down llama_cpp's module globals: its own
        # __del__ at exit then calls a library function already set to None.
        atexit.register(self.llm.close)
        self.loaded_in = time.monotonic() - started
        logger.info("local model %s loaded in %.1f s", path.name, self.loaded_in)

    def chat_tokens(self, system: str, user: str,
                    shots: Sequence[tuple[str, str]] = ()) -> list[int]:
        """A ChatML prompt (the template of the Qwen models this runs), ready for the
        assistant's reply, after `shots`: earlier (user, assistant) turns showing the
        model what is wanted. The model's own template is not read, to keep the prefix
        byte-identical from one question to the next (so its cache is reused)."""
        turns = "".join(f"<|im_start|>user\n{u}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>\n"
                        for u, a in shots)
        text = (f"<|im_start|>system\n{system}<|im_end|>\n{turns}<|im_start|>user\n{user}"
                "<|im_end|>\n<|im_start|>assistant\n")
        return self.llm.tokenize(text.encode(), add_bos=False, special=True)

    def token_ids(self, *texts: str) -> list[int]:
        """The single-token ids of these texts (those that are one token)."""
        ids = []
        for text in texts:
            found = self.llm.tokenize(text.encode(), add_bos=False, special=False)
            if len(found) == 1:
                ids.append(found[0])
        return ids

    def _eval_reusing(self, tokens: list[int]) -> None:
        """Evaluate `tokens`, keeping the cached prefix they share with the last prompt."""
        llm = self.llm
        if len(tokens) >= llm.n_ctx():
            raise LocalModelError(f"the prompt is {len(tokens)} tokens, over the model's "
                                  f"context of {llm.n_ctx()}")
        keep = shared_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
        keep = min(keep, len(tokens) - 1)  # at least one token is evaluated: its logits
        llm.n_tokens = keep
        llm.eval(tokens[keep:])

    def prefix_ready(self, tokens: list[int], saved: Path) -> None:
        """Have `tokens` (a fixed prompt prefix) in the cache: from `saved` when an
        earlier process kept it there, else computed and kept. The reader's worked
        examples take seconds to compute on 2 cores, and every CLI question is a new
        process; their KV state (12 MB for the 1.5B) loads in a few hundredths of a
        second. llama-cpp-python saves only whole states, logits of every token
        included (260 MB here), so the sequence's KV cells are saved by llama.cpp's
        own per-sequence calls. A file that does not load is computed again."""
        import llama_cpp

        with self.lock:
            ctx = self.llm._ctx.ctx
            cached = self.llm.input_ids[: self.llm.n_tokens].tolist()
            if saved.is_file():
                if shared_prefix(cached, tokens) == len(tokens) or self._load(tokens, saved):
                    return
                logger.warning("the saved prompt state %s did not load: computing it", saved)
            self._eval_reusing(tokens)  # then the cache holds exactly `tokens` (one token
            # evaluated if they were there already)
            size = llama_cpp.llama_state_seq_get_size(ctx, 0)
            buf = (ctypes.c_uint8 * size)()
            if llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0) != size:
                return
            try:
                part = saved.with_name(f"{saved.name}.{os.getpid()}.part")
                part.write_bytes(bytes(buf))
                os.replace(part, saved)
            except OSError as exc:  # a read-only cache: computed each time, said once
                logger.warning("could not keep the prompt state in %s: %s", saved, exc)

    def _load(self, tokens: list[int], saved: Path) -> bool:
        """Replace the cache with the saved state of `tokens`; on failure, an empty cache."""
        import llama_cpp

        data = saved.read_bytes()
        self.llm.reset()
        self.llm._ctx.kv_cache_clear()
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_cpp.llama_state_seq_set_data(self.llm._ctx.ctx, buf, len(data), 0) != len(data):
            self.llm._ctx.kv_cache_clear()  # whatever part of it did load
            return False
        self.llm.input_ids[: len(tokens)] = tokens
        self.llm.n_tokens = len(tokens)
        return True

    def saved_prefix(self, tokens: list[int]) -> Path:
        """Where the state of this prefix is kept (`state_dir`, by default beside the model,
        in the model cache), named by the model, the llama.cpp version (its state format)
        and the tokens."""
        import llama_cpp

        key = hashlib.sha256(f"{self.path.name}|{self.path.stat().st_size}|"
                             f"{llama_cpp.__version__}|{tokens}".encode()).hexdigest()[:16]
        return self.state_dir / f"{self.path.stem}.prefix-{key}.kv"

    def next_logits(self, tokens: list[int]) -> np.ndarray:
        """Logits of the token after `tokens`: one forward pass, nothing sampled."""
        with self.lock:
            self._eval_reusing(tokens)
            ptr = self.llm._ctx.get_logits()  # the last evaluated token's row
            return np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),)).copy()

    def yes_probability(self, tokens: list[int], yes: list[int], no: list[int]) -> float:
        """P(yes) against P(no) for the next token, each summed over its spellings."""
        logits = self.next_logits(tokens)
        y, n = np.logaddexp.reduce(logits[yes]), np.logaddexp.reduce(logits[no])
        return float(1.0 / (1.0 + np.exp(n - y)))

    def stream(self, tokens: list[int], max_tokens: int, stop: list[str]) -> Iterator[str]:
        """Generated text, greedily, as it is written (the lock is held until it ends)."""
        with self.lock:
            chunks: Any = self.llm.create_completion(tokens, max_tokens=max_tokens,
                                                     temperature=0.0, stop=stop, stream=True)
            for chunk in chunks:
                yield chunk["choices"][0]["text"]


_SHARED: dict[tuple[str, int], LocalLLM] = {}
_SHARED_LOCK = threading.Lock()


def shared(path: Path, threads: int = 2) -> LocalLLM:
    """One loaded model per file and thread count in this process: the reader and the
    local answerer use the same weights in memory (1.1 GB for the 1.5B)."""
    key = (str(path), threads)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = LocalLLM(path, threads=threads)
        return _SHARED[key]


def local_llm(settings: Settings) -> LocalLLM:
    """The settings' local model (assembled and checked if need be), loaded once per
    process. Raises LocalModelError, one line, when it can't be had: parts missing,
    hash wrong, or llama.cpp unable to run it."""
    try:
        path = model_path(settings.model_cache, settings.local_model)
    except ModelUnavailable as exc:
        raise LocalModelError(str(exc)) from exc
    return shared(path, settings.local_threads)
