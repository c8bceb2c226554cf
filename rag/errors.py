"""The errors a person can act on: one base, and one line each.

Every error the project raises on purpose is a `RagError`, whose message is one line
that may be shown to whoever caused it (the asker in the chat, an API client, the
person at the command line) and says what to do. Each keeps the built-in class it
had (`ValueError`, `RuntimeError`), so `except ValueError` still catches bad input.

    RagError                          one line a user can act on
    ├── UsageError (ValueError)       what was asked or given is not valid: an empty
    │   │                             question, an unknown mode, a bad date or filter
    │   ├── SettingsError             rag.settings: an environment variable or option
    │   ├── EmbeddingConfigError      rag.store.embeddings: the embedding settings
    │   ├── DatasetError              eval.qa: a question set
    │   ├── TokenError, AuthError     web.tokens, web.auth: API tokens, RAG_AUTH
    │   ├── UnknownFilter             web.service: an article or outlet not in the library
    │   └── ExportError               web.ui.export: a conversation that can't be exported
    ├── StoreError (RuntimeError)     rag.store: the store can't be read or written
    │   ├── WriterBusyError           another writer holds the store
    │   └── EmbeddingMismatchError    the store was written with another model
    ├── ModelError (RuntimeError)     a language model could not write
    │   ├── LLMError                  rag.answer.draft.llm: the endpoint failed
    │   ├── LocalModelError           rag.local_model: the local model can't run here
    │   │   └── DeadlinePassed        a call's deadline passed (the model is free again)
    │   └── ModelUnavailable          rag.local_model.weights: the weights can't be had
    ├── EmptyLibrary                  rag.answer.engine: nothing to answer from yet
    ├── SourceError                   ingest: a file, page or feed can't be read
    │   └── FeedError                 ingest.feedparse: a feed can't be parsed
    ├── NotEditor                     web.auth: only editors may add, remove, follow
    └── ApiError                      web.openai.params: an HTTP error, with its status

Anything else is a bug: the web says only that something failed (the traceback goes to
the log) and a command line lets it through. `exit_code` is the command lines' one way
from an error to a line on stderr and an exit status.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

FAILED = 1
INTERRUPTED = 130


class RagError(Exception):
    """An error whose message is one line a user may see and act on."""


class UsageError(RagError, ValueError):
    """What was asked or given is not valid; the message names it."""


class StoreError(RagError, RuntimeError):
    """A store problem the user can fix; the message says how."""


class ModelError(RagError, RuntimeError):
    """A language model could not write; the message says why."""


def exit_code(run: Callable[[], int], *,
              translate: Callable[[Exception], str | None] = lambda exc: None,
              interrupted: str = "interrupted") -> int:
    """Run a command line's body: our errors (and a file that can't be read) become
    "error: <line>" on stderr and status 1; `translate` may turn a library's failure
    into such a line (Chroma's, by `rag.store.as_store_error`); Ctrl-C says
    `interrupted` and exits 130. Anything else is raised: a bug keeps its traceback."""
    try:
        return run()
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return INTERRUPTED
    except (RagError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return FAILED
    except Exception as exc:
        line = translate(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return FAILED
