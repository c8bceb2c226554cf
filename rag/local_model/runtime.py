"""A llama.cpp model run in this process (cyllama's prebuilt wheel), for the local reader
and the local answerer.

Contract: `local_llm(settings)` is the process's one `LocalLLM` for the configured
model, or a `LocalModelError` of one line saying why it can't be had here. A `LocalLLM`
runs one prompt at a time: the logits of the next token (`next_logits`,
`yes_probability`) or generated text (`stream`), with the KV cache of the last prompt
kept, so the next one only computes what follows their common prefix; a fixed prefix's
state is saved to disk and restored by a later process (`saved_prefix`,
`prefix_ready`). Before the model is first loaded, the same runtime and model run one
prompt in a child process (`rag.local_model.build_check`); if that fails, the model is
not loaded and the caller is told why.

Why in process, and why cyllama: docs/decisions/reader-runtime.md.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from rag.errors import ModelError
from rag.local_model import build_check as llama_check
from rag.local_model.weights import ModelUnavailable, model_path
from rag.settings import Settings

logger = logging.getLogger(__name__)
# Flash attention off: with it on (llama.cpp's `auto` picks it on this CPU), a prompt
# evaluated after a longer one's tail was removed from the cache gave logits up to 0.6
# away from the same prompt evaluated fresh (SmolLM2); off, they are equal to the bit,
# and the 1.5B reads a sentence as fast (0.33 s against 0.32 s).
FLASH_ATTN = 0
# Prompt tokens evaluated at a time: a deadline is checked between steps (~1 s of prompt
# on 2 cores). 64 read a 480-token prompt as fast as 512 did (6.6 s against 6.5 s, best
# of 3 side by side).
STEP = 64


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two prompts have in common."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))


class LocalModelError(ModelError):
    """The local model can't run here; the message is one line saying why."""


class DeadlinePassed(LocalModelError):
    """A call's deadline passed before it ended (the model is free again)."""


def runtime_version() -> str:
    """The installed runtime's version (part of a saved state's name: its format)."""
    try:
        return importlib.metadata.version("cyllama")
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def load_model(path: Path):  # noqa: ANN201 - a cyllama LlamaModel
    """The GGUF loaded by cyllama, with llama.cpp's logging off. cyllama 0.2.18's
    `LlamaContext.get_logits*` read `model.n_vocab`, which its `LlamaModel` lacks (an
    AttributeError on every call); the subclass supplies it from the vocabulary."""
    from cyllama.llama import llama_cpp as cy

    class _Model(cy.LlamaModel):
        @property
        def n_vocab(self) -> int:
            return self.get_vocab().n_vocab

    cy.disable_logging()
    return _Model(str(path), cy.LlamaModelParams())


class LocalLLM:
    """One model shared by every question, one prompt at a time (a llama context is
    not thread-safe). `cached` is the prompt whose KV state the context holds."""

    def __init__(self, path: Path, threads: int = 2, n_ctx: int = 2048,
                 state_dir: Path | None = None, checked: bool = False) -> None:
        """`checked`: the runtime is known to run this model here (the child process of
        `rag.local_model.build_check` itself); otherwise that check runs first, in a child."""
        result = llama_check.BuildCheck(True, "") if checked else llama_check.check_once(path)
        if not result.ok:
            raise LocalModelError(result.line)
        try:
            from cyllama.llama import llama_cpp as cy
        except ImportError as exc:  # the check above ran in a child with the same venv
            raise LocalModelError("cyllama is not installed: run `make setup`") from exc
        self.path = path
        self.state_dir = state_dir or path.parent  # where prompt states are kept
        started = time.monotonic()
        self._cy = cy
        self._model = load_model(path)
        self._vocab = self._model.get_vocab()
        params = cy.LlamaContextParams()
        params.n_ctx, params.n_batch = n_ctx, 512
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = FLASH_ATTN
        self._ctx = cy.LlamaContext(self._model, params)
        self._n_ctx = n_ctx
        self.cached: list[int] = []
        self.lock = threading.Lock()
        atexit.register(self.close)  # freed before the interpreter tears the module down
        self.loaded_in = time.monotonic() - started
        logger.info("local model %s loaded in %.1f s", path.name, self.loaded_in)

    @classmethod
    def unchecked(cls, path: Path, n_ctx: int = 2048) -> LocalLLM:
        """Loaded without the child-process check: only for that check's child."""
        return cls(path, n_ctx=n_ctx, checked=True)

    def close(self) -> None:
        with self.lock:
            if self._ctx is not None:
                self._ctx.close()
                self._ctx = None

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        """Tokens of `text`, no BOS; `special`: "<|im_start|>" and the like are read as
        the model's control tokens."""
        return list(self._vocab.tokenize(text, add_special=False, parse_special=special))

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._vocab.detokenize(list(tokens))

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
        return self.tokenize(text, special=True)

    def token_ids(self, *texts: str) -> list[int]:
        """The single-token ids of these texts (those that are one token)."""
        ids = []
        for text in texts:
            found = self.tokenize(text)
            if len(found) == 1:
                ids.append(found[0])
        return ids

    def forget(self) -> None:
        """Empty the KV cache (the next prompt is computed from its first token)."""
        with self.lock:
            self._ctx.kv_cache_clear()
            self.cached = []

    def _decode(self, tokens: list[int], start: int, deadline: float | None = None) -> None:
        """Evaluate `tokens` at positions from `start`, `STEP` at a time, so that a
        `deadline` (time.monotonic()) is checked about every second of prompt."""
        for i in range(0, len(tokens), STEP):
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlinePassed("the local model's deadline passed while it read the "
                                     "prompt")
            self._ctx.decode(self._cy.llama_batch_get_one(tokens[i: i + STEP], start + i))
            self.cached[start + i:] = tokens[i: i + STEP]  # what the cache now holds

    def _eval_reusing(self, tokens: list[int], deadline: float | None = None) -> None:
        """Evaluate `tokens`, keeping the cached prefix they share with the last prompt.
        Stopped by the deadline, the cache holds the part evaluated (`cached` says which)."""
        if len(tokens) >= self._n_ctx:
            raise LocalModelError(f"the prompt is {len(tokens)} tokens, over the model's "
                                  f"context of {self._n_ctx}")
        keep = shared_prefix(self.cached, tokens)
        keep = min(keep, len(tokens) - 1)  # at least one token is evaluated: its logits
        self._ctx.memory_seq_rm(0, keep, -1)
        self.cached = tokens[:keep]
        self._decode(tokens[keep:], keep, deadline)

    def prefix_ready(self, tokens: list[int], saved: Path) -> None:
        """Have `tokens` (a fixed prompt prefix) in the cache: from `saved` when an
        earlier process kept it there, else computed and kept. The reader's worked
        examples take 8 s to compute on 2 cores, and every CLI question is a new
        process; their KV state (12 MB for the 1.5B) loads in a few milliseconds. A file
        that does not load is computed again."""
        with self.lock:
            if saved.is_file():
                if shared_prefix(self.cached, tokens) == len(tokens) or self._load(tokens, saved):
                    return
                logger.warning("the saved prompt state %s did not load: computing it", saved)
            self._eval_reusing(tokens)  # then the cache holds exactly `tokens` (one token
            # evaluated if they were there already)
            data = self._ctx.get_state_seq_data(0)
            try:
                part = saved.with_name(f"{saved.name}.{os.getpid()}.part")
                part.write_bytes(bytes(data))
                os.replace(part, saved)
            except OSError as exc:  # a read-only cache: computed each time, said once
                logger.warning("could not keep the prompt state in %s: %s", saved, exc)

    def _load(self, tokens: list[int], saved: Path) -> bool:
        """Replace the cache with the saved state of `tokens`; on failure, an empty cache."""
        data = saved.read_bytes()
        self._ctx.kv_cache_clear()
        self.cached = []
        try:
            self._ctx.set_state_seq_data(data, 0)
        except ValueError:
            self._ctx.kv_cache_clear()  # whatever part of it did load
            return False
        if self._ctx.memory_seq_pos_max(0) != len(tokens) - 1:  # a state of another prompt
            self._ctx.kv_cache_clear()
            return False
        self.cached = list(tokens)
        return True

    def saved_prefix(self, tokens: list[int]) -> Path:
        """Where the state of this prefix is kept (`state_dir`, by default beside the model,
        in the model cache), named by the model, the runtime's version (its state format)
        and the tokens."""
        key = hashlib.sha256(f"{self.path.name}|{self.path.stat().st_size}|cyllama-"
                             f"{runtime_version()}|{tokens}".encode()).hexdigest()[:16]
        return self.state_dir / f"{self.path.stem}.prefix-{key}.kv"

    def _last_logits(self) -> np.ndarray:
        return np.asarray(self._ctx.get_logits_ith(-1), dtype=np.float32)

    def next_logits(self, tokens: list[int]) -> np.ndarray:
        """Logits of the token after `tokens`: one forward pass, nothing sampled."""
        with self.lock:
            self._eval_reusing(tokens)
            return self._last_logits()

    def yes_probability(self, tokens: list[int], yes: list[int], no: list[int]) -> float:
        """P(yes) against P(no) for the next token, each summed over its spellings."""
        logits = self.next_logits(tokens)
        y, n = np.logaddexp.reduce(logits[yes]), np.logaddexp.reduce(logits[no])
        return float(1.0 / (1.0 + np.exp(n - y)))

    def stream(self, tokens: list[int], max_tokens: int, stop: list[str],
               deadline: float | None = None) -> Iterator[str]:
        """Generated text, greedily, as it is written (the lock is held until it ends).
        The text is decoded from all tokens written so far, so a character split over
        two tokens goes out whole; nothing after a stop string goes out.

        `deadline` (time.monotonic()): `DeadlinePassed` is raised once it passes, whether
        waiting for the model (another answer has it), reading the prompt or writing."""
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self.lock.acquire(timeout=wait):
            raise DeadlinePassed("the local model's deadline passed while another answer "
                                 "had the model")
        try:
            yield from self._stream(tokens, max_tokens, stop, deadline)
        finally:
            self.lock.release()

    def _stream(self, tokens: list[int], max_tokens: int, stop: list[str],
                deadline: float | None) -> Iterator[str]:
        self._eval_reusing(tokens, deadline)
        written: list[int] = []
        sent = ""
        hold = max((len(s) for s in stop), default=1) - 1  # a stop string may be starting
        for _ in range(max_tokens):
            token = int(np.argmax(self._last_logits()))
            if self._vocab.is_eog(token):
                break
            written.append(token)
            text = self.detokenize(written)
            cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
            if cut >= 0:
                if cut > len(sent):
                    yield text[len(sent): cut]
                return
            ready = len(text) - hold if not text.endswith("\ufffd") else len(sent)
            if ready > len(sent):
                yield text[len(sent): ready]
                sent = text[:ready]
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlinePassed("the local model's deadline passed while it wrote")
            self._decode([token], len(self.cached))
        text = self.detokenize(written)
        if len(text) > len(sent):
            yield text[len(sent):]


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
