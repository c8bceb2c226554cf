"""Several machines on one Chroma server, nothing lost (issue 29; docs/scaling.md).

One `chroma run` server (the `chroma_server` fixture) and three data folders standing
for three machines, A, B and C, each with its own local state (its keyword table under
`<data dir>/keyword/`). Started together, each machine's `python -m ingest` writes 15
BBC articles of its own into one collection; the writer lease (rag/store/lock.py) makes
them take turns. Then: every article is stored exactly once, as every machine lists it;
each machine's keyword table, left behind by the others' writes, catches up and finds
their articles; `ingest check` passes from every machine; and two apps, on A and B,
answer over the OpenAI-compatible API from an article only C wrote. The web page's
queue, though, is each app's own: an event joined on A cannot be read from B.

The children run this tree's code (PYTHONPATH), not an installed copy of the project.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from support.servers import free_port, stop
from support.stores import BBC, CORPORA, bbc_files, cli_env, make_settings

from rag.store.articles import ArticleStore
from rag.store.keyword import KeywordIndex

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "cluster"
SUMMARY = re.compile(r"(\d+) added, (\d+) updated, (\d+) unchanged, (\d+) failed")
FILES = {"C": bbc_files(3, 0), "A": bbc_files(3, 3), "B": bbc_files(3, 6)}  # disjoint
# asked of the apps on A and B; the answers are in articles only C wrote
QUESTIONS = {"A": ("How many net cafes did Chinese authorities close?", BBC / "tech" / "002.txt",
                   "12,575"),
             "B": ("By how much did TimeWarner's quarterly profits jump?",
                   BBC / "business" / "001.txt", "76%")}

pytestmark = [
    pytest.mark.skipif(not BBC.is_dir(), reason=f"shared corpora missing: {CORPORA}"),
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword)"),
]


def machine_env(server: SimpleNamespace, **extra: str) -> dict[str, str]:
    return cli_env(CHROMA_HOST=server.host, CHROMA_PORT=str(server.port),
                   RAG_COLLECTION=COLLECTION, PYTHONPATH=str(ROOT), **extra)


def cli(server: SimpleNamespace, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ingest", "--data-dir", str(data), *args],
                          cwd=data.parent, env=machine_env(server), capture_output=True,
                          text=True, timeout=300)


def start_app(server: SimpleNamespace, data: Path, port: int, log: Path) -> subprocess.Popen:
    env = machine_env(server, RAG_READER="heuristic", RAG_HOST="127.0.0.1",
                      GRADIO_ANALYTICS_ENABLED="False")
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--data-dir",
                                 str(data)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_for_app(proc: subprocess.Popen, port: int, log: Path, limit: float = 150) -> None:
    started = time.monotonic()
    while True:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() - started < limit, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)


def page_event_messages(join_port: int, read_port: int) -> list[dict]:
    """Gradio's own protocol: join the queue (the library listing) on one app, read the
    event's messages from another (or the same)."""
    config = httpx.get(f"http://127.0.0.1:{join_port}/config", timeout=30).json()
    prefix = config["api_prefix"]
    fn = next(d for d in config["dependencies"] if d.get("api_name") == "library")
    session = uuid.uuid4().hex
    joined = httpx.post(f"http://127.0.0.1:{join_port}{prefix}/queue/join", timeout=30,
                        json={"data": [None] * len(fn["inputs"]), "fn_index": fn["id"],
                              "session_hash": session, "event_data": None,
                              "trigger_id": None})
    assert joined.status_code == 200, joined.text
    messages: list[dict] = []
    with contextlib.suppress(httpx.RemoteProtocolError), httpx.stream(
            "GET", f"http://127.0.0.1:{read_port}{prefix}/queue/data", timeout=60,
            params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                messages.append(json.loads(line.removeprefix("data:")))
                if messages[-1].get("msg") in ("process_completed", "unexpected_error"):
                    break
    assert messages
    return messages


def test_three_machines_write_one_server_at_once_and_every_machine_sees_everything(
        chroma_server: SimpleNamespace, tmp_path: Path) -> None:
    dirs = {name: tmp_path / f"machine-{name}" / "data" for name in "ABC"}
    for data in dirs.values():
        data.parent.mkdir()

    # -- the three ingests, started together -------------------------------------------
    procs = {name: subprocess.Popen(
        [sys.executable, "-m", "ingest", "--data-dir", str(dirs[name]), "--wait", "600", "-q",
         *map(str, FILES[name])],
        cwd=dirs[name].parent, env=machine_env(chroma_server), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for name in "CAB"}
    outputs = {name: proc.communicate(timeout=600) for name, proc in procs.items()}
    for name, proc in procs.items():
        out, err = outputs[name]
        assert proc.returncode == 0, f"machine {name}: {err}"
        counts = SUMMARY.search(out)
        assert counts and counts.groups() == ("15", "0", "0", "0"), f"machine {name}: {out}"

    # -- every article once, as every machine lists it ---------------------------------
    every_file = {str(p) for files in FILES.values() for p in files}
    listed = {}
    for name, data in dirs.items():
        proc = cli(chroma_server, data, "list", "--json")
        assert proc.returncode == 0, proc.stderr
        rows = json.loads(proc.stdout)
        ids = [row["id"] for row in rows]
        assert len(ids) == len(set(ids)) == len(every_file), f"machine {name}"
        paths = [p for row in rows for p in row["paths"]]
        assert sorted(paths) == sorted(every_file), f"machine {name}"
        listed[name] = {p: row["id"] for row in rows for p in row["paths"]}
    assert listed["A"] == listed["B"] == listed["C"]
    by_path = listed["A"]
    writer = {by_path[str(p)]: name for name, files in FILES.items() for p in files}

    # -- each machine's keyword table catches up with the others' writes ---------------
    stores = {name: ArticleStore(make_settings(data, chroma_host=chroma_server.host,
                                               chroma_port=chroma_server.port,
                                               collection=COLLECTION))
              for name, data in dirs.items()}
    generation = stores["A"].generation()
    behind = sorted(n for n, s in stores.items() if s.keywords.generation != generation)
    assert len(behind) == 2, behind  # all but the last writer's were left behind
    chunk_ids = {r["id"] for r in stores["A"].chunk_records()}
    for name, store in stores.items():
        table = KeywordIndex.of(store).ensure()
        assert table is not None and table.generation == generation
        assert table.ids() == chunk_ids, f"machine {name}"
        for other in "ABC":
            if other == name:
                continue
            for path in (FILES[other][0], FILES[other][-1]):  # a business and a tech story
                title = path.read_text().splitlines()[0]
                hits = table.search(title, 3)
                assert hits and hits[0][2]["article_id"] == by_path[str(path)], (
                    f"machine {name} searching {other}'s {title!r}: "
                    f"{[(h[2]['title'], writer.get(h[2]['article_id'])) for h in hits]}")

    for name, data in dirs.items():
        proc = cli(chroma_server, data, "check", "--json")
        health = json.loads(proc.stdout or "{}")
        assert proc.returncode == 0 and health.get("ok"), f"machine {name}: {proc.stdout}"
        assert (health["articles"], health["chunks"]) == (45, len(chunk_ids))
        assert health["lost"] == health["orphans"] == health["keyword_missing"] == 0

    # -- two apps, on A and B, answer from what C wrote ---------------------------------
    apps = {}
    try:
        for name in "AB":
            port, log = free_port(), tmp_path / f"app-{name}.log"
            apps[name] = (start_app(chroma_server, dirs[name], port, log), port, log)
        for proc, port, log in apps.values():
            wait_for_app(proc, port, log)
        for name, (_, port, _log) in apps.items():
            base = f"http://127.0.0.1:{port}/v1"
            model = httpx.get(f"{base}/models", timeout=30).json()["data"][0]["id"]
            question, source, fact = QUESTIONS[name]
            assert writer[by_path[str(source)]] == "C"
            reply = httpx.post(f"{base}/chat/completions", timeout=120, json={
                "model": model, "messages": [{"role": "user", "content": question}]})
            assert reply.status_code == 200, reply.text
            got = reply.json()
            assert not got["rag"]["refused"], (name, got["rag"])
            cited = [c["article_id"] for c in got["citations"]]
            assert by_path[str(source)] in cited, (name, question, got["citations"])
            assert fact in got["choices"][0]["message"]["content"], (name, got["rag"])
        # The page's queue is the process's own: an event joined on A is unknown to B
        # (behind a load balancer the page needs sticky sessions; the /v1 API does not)
        (_, port_a, _), (_, port_b, _) = apps["A"], apps["B"]
        assert page_event_messages(port_a, port_b)[0]["session_not_found"]
        last = page_event_messages(port_a, port_a)[-1]
        assert last["msg"] == "process_completed" and last["success"], last
        assert len(last["output"]["data"][0]) == 45  # the library, as A lists it
    finally:
        for proc, _, _ in apps.values():
            stop(proc)
