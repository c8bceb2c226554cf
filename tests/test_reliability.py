"""Nothing lost, ever: the fault matrix of docs/reliability.md, each row a test.

Real processes against one store: `python -m ingest` killed with SIGKILL, the app
(`python app.py`) killed during an upload, app and CLI writing at once, two CLIs at
once, a held writer lock, a read-only folder, a file-size limit (a full disk), a
damaged database, a cancelled library job, and a
long-running reader that must see what a CLI added and removed. LLM and Chroma-server
faults are in tests/test_faults.py; the load test in tests/eval/test_load.py.
"""

from __future__ import annotations

import http.server
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from support.servers import free_port, stop
from support.stores import (
    BBC,
    CORPORA,
    SEED,
    assert_consistent,
    bbc_files,
    cli_env,
    make_settings,
    run_cli,
    snapshot,
)

from rag.answer.engine import Engine
from rag.answer.request import Ask
from rag.settings import Settings
from rag.store.articles import ArticleStore, StoreError, WriterBusyError
from rag.store.health import check_store
from rag.store.keyword import KeywordIndex

pytestmark = [
    pytest.mark.skipif(not SEED.is_file(), reason=f"shared corpora missing: {CORPORA}"),
    pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword)"),
]
ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "lifecycle"
TRACEBACK = "Traceback"


def reader(data: Path) -> ArticleStore:
    """A store object as a new reader would open it (the connection is per process,
    and `sync` makes it see other processes' writes)."""
    store = ArticleStore(make_settings(data))
    store.sync()
    return store


def keyword_ids(store: ArticleStore) -> set[str]:
    """The chunk ids the keyword index holds (what BM25 can return)."""
    table = KeywordIndex.of(store).ensure()
    assert table is not None
    return table.ids()


# -- kill -9 of a CLI ingest ---------------------------------------------------------


def _ingest_until_killed(data: Path, files: list[Path], after: int, delay: float) -> int:
    """Start `python -m ingest -v`, SIGKILL it `delay` s after its `after`-th result
    line (or when it ends by itself); the number of result lines it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "--data-dir", str(data), "--collection",
         COLLECTION, "-v", *map(str, files)],
        cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.split(" ", 1)[0] in ("added", "updated", "unchanged"):
            seen += 1
            if seen >= after:
                time.sleep(delay)
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return seen


def test_kill_9_of_cli_ingest_at_random_moments_then_a_run_equals_a_clean_ingest(
        tmp_path: Path) -> None:
    """Five SIGKILLs at seeded random moments while writing; after each, a reader sees
    only whole articles, each as a clean ingest stores it; the run that follows ends
    equal to a clean ingest: same article and chunk ids, every chunk findable by its
    own vector, the same keyword index."""
    files = [SEED, *bbc_files(5)]
    clean = tmp_path / "clean"
    done = run_cli("--data-dir", str(clean), "--collection", COLLECTION, "-q",
                   *map(str, files), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    clean_store = reader(clean)
    want = snapshot(clean_store)
    want_keyword = keyword_ids(clean_store)

    crashed = tmp_path / "crashed"
    rng = random.Random(11)
    moments = [(rng.randint(1, len(files) - 2), rng.uniform(0.0, 0.4)) for _ in range(5)]
    for after, delay in moments:
        _ingest_until_killed(crashed, files, after, delay)
        store = reader(crashed)
        if not store.exists:
            continue
        articles, chunks = snapshot(store)
        # a committed article is whole and exactly what a clean run stores
        for aid, value in articles.items():
            assert want[0][aid] == value
        committed = {cid: c for cid, c in chunks.items() if c[0] in articles}
        assert all(want[1][cid] == c for cid, c in committed.items())

    final = run_cli("--data-dir", str(crashed), "--collection", COLLECTION, "-q",
                    *map(str, files), cwd=tmp_path)
    assert final.returncode == 0, final.stderr
    store = reader(crashed)
    assert snapshot(store) == want
    assert_consistent(store)
    health = check_store(store)
    assert health.ok, health.report()
    assert health.checked == len(want[1])
    assert keyword_ids(store) == want_keyword


# -- the app: killed during an upload; writing while the CLI writes ------------------


def _app(data: Path, port: int, log: Path) -> subprocess.Popen:
    env = cli_env(RAG_DATA_DIR=str(data), RAG_COLLECTION=COLLECTION, RAG_PORT=str(port),
                  RAG_HOST="127.0.0.1", GRADIO_ANALYTICS_ENABLED="False")
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    started = time.monotonic()
    while True:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() - started < 120, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)


_WHO = ["inspector", "harbour master", "ferry captain", "councillor", "engineer", "fisher",
        "baker", "teacher", "nurse", "lock keeper"]
_DID = ["logged", "repaired", "counted", "painted", "inspected", "replaced", "reported",
        "photographed", "measured", "cleaned"]
_WHAT = ["lanterns", "bollards", "nets", "crates", "signal lamps", "mooring rings", "railings",
         "benches", "gutters", "tide gauges"]
_WHERE = ["on the quay", "by the lighthouse", "near the fish market", "at the old pier",
          "along the sea wall", "behind the customs house", "under the bridge", "in the dry dock"]


def _story(n: int, sentences: int = 40) -> str:
    """A made-up article of our own, its sentences distinct so every chunk is new, and
    varied in their words: a long article of one sentence shape with only its numbers
    changing gives hundreds of near-identical vectors, among which the approximate
    index sometimes cannot reach one (a flake of the index, not of what is tested)."""
    town = f"Vellmoor{n}"
    rng = random.Random(n)
    body = " ".join(  # the first ten in one shape: what the tests ask about
        f"In {town}, inspector {k} logged {n * 1000 + k} lantern repairs on the quay." if k < 10
        else f"In {town}, the {rng.choice(_WHO)} {k} {rng.choice(_DID)} {n * 1000 + k} "
             f"{rng.choice(_WHAT)} {rng.choice(_WHERE)}."
        for k in range(sentences))
    return f"{town} lantern survey\n\n{body}\n"


def test_app_killed_during_an_upload_leaves_no_half_article_and_re_adding_completes(
        tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "app.log"
    seeded = run_cli("--data-dir", str(data), "--collection", COLLECTION, "-q", str(SEED),
                     cwd=tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    port = free_port()
    proc = _app(data, port, log)
    big = _story(7, sentences=2500)  # ~187 KB (the paste limit is 200,000): hundreds of chunks
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        client.submit(big, "", "", api_name="/add_text")
        # kill at a seeded moment of the job: reading, embedding, mid-write, or after
        time.sleep(random.Random(5).uniform(0.3, 2.5))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    title = "Vellmoor7 lantern survey"
    store = reader(data)
    listed = {a.title: a for a in store.list_articles()}
    if title in listed:  # it finished before the kill: then it is whole
        whole = listed[title]
        assert len(store.chunk_records(whole.id)) == whole.chunks
    question = "How many lantern repairs did inspector 3 log in Vellmoor7?"
    proc = _app(data, port, log)  # the restart rolls back a half-written article
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        answer = client.predict(question, api_name="/ask")
        if title not in listed:
            assert all(title != c["title"] for c in answer["citations"])
        assert store.half_written() == []
        report = client.predict(big, "", "", api_name="/add_text")
        want = "unchanged" if title in listed else "added"
        assert report["done"] and report["counts"][want] == 1, report
        answer = client.predict(question, api_name="/ask")
        assert answer["citations"] and answer["citations"][0]["title"] == title
    finally:
        stop(proc)
    store = reader(data)
    assert_consistent(store)
    assert check_store(store).ok


def test_app_and_cli_writing_at_once_lose_nothing_in_either_order(tmp_path: Path) -> None:
    """Measured before the writer lock: every chunk the app wrote earlier was lost from
    the vector index. Now, in both orders, every chunk is found by its own vector and
    the CLI's articles are stored exactly as a CLI run alone stores them."""
    data, log = tmp_path / "data", tmp_path / "app.log"
    seeded = run_cli("--data-dir", str(data), "--collection", COLLECTION, "-q", str(SEED),
                     cwd=tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    first, second = bbc_files(3), bbc_files(3, start=3)
    alone = tmp_path / "alone"
    ref = run_cli("--data-dir", str(alone), "--collection", COLLECTION, "-q",
                  *map(str, first + second), cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    want_chunks = snapshot(reader(alone))[1]
    port = free_port()
    proc = _app(data, port, log)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for n, (files, cli_first) in enumerate([(first, True), (second, False)]):
            def cli(files: list[Path] = files) -> subprocess.CompletedProcess[str]:
                return run_cli("--data-dir", str(data), "--collection", COLLECTION, "-q",
                               *map(str, files), cwd=tmp_path)

            outcome: dict[str, Any] = {}
            worker = threading.Thread(
                target=lambda out=outcome, run=cli: out.update(cli=run()))
            if cli_first:
                worker.start()
                time.sleep(2.0)
            reports = [client.predict(_story(10 * n + k), "", "", api_name="/add_text")
                       for k in range(3)]
            if not cli_first:
                worker.start()
            worker.join(timeout=300)
            assert outcome["cli"].returncode == 0, outcome["cli"].stderr
            assert all(r["counts"]["added"] == 1 for r in reports), reports
    finally:
        stop(proc)
    store = reader(data)
    assert_consistent(store)
    health = check_store(store)
    assert health.ok, health.report()
    assert len(store.list_articles()) == 1 + len(first) + len(second) + 6
    chunks = snapshot(store)[1]
    assert {cid: chunks[cid] for cid in want_chunks} == want_chunks


# -- two writers: wait, refuse, never interleave -----------------------------------------


def test_two_cli_ingests_at_once_end_as_one_sequential_run(tmp_path: Path) -> None:
    files = bbc_files(4)
    half = len(files) // 2
    sequential = tmp_path / "sequential"
    ref = run_cli("--data-dir", str(sequential), "--collection", COLLECTION, "-q",
                  *map(str, files), cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--collection", COLLECTION, "-q"]
    procs = [subprocess.Popen([sys.executable, "-m", "ingest", *args, *map(str, part)],
                              cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for part in (files[:half + 3], files[half - 3:])]  # overlapping on purpose
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert TRACEBACK not in err
    store = reader(data)
    want = snapshot(reader(sequential))
    got = snapshot(store)
    assert got[1] == want[1]
    assert {k: v[:3] for k, v in got[0].items()} == {k: v[:3] for k, v in want[0].items()}
    assert check_store(store).ok


_OPEN = ("import sys; from rag.settings import Settings; from rag.store.connection import connect; "
         "connect(Settings(data_dir=sys.argv[1])).client.list_collections(); print('opened')")


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Chroma creates its database on open without a lock: unguarded, 3 of 24 such
    openings failed here with "table collections already exists"."""
    for round_ in range(6):
        data = tmp_path / f"data{round_}"
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN, str(data)], cwd=ROOT,
                                  env=cli_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0 and out.strip() == "opened", err[-400:]


def test_opening_a_store_waits_while_another_process_opens_it(tmp_path: Path) -> None:
    from filelock import FileLock

    data = tmp_path / "data"
    data.mkdir()
    held = FileLock(str(data / "chroma.open.lock"))
    held.acquire()
    proc = subprocess.Popen([sys.executable, "-c", _OPEN, str(data)], cwd=ROOT, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(6)  # ample for an import and an open on 2 cores
        assert proc.poll() is None, proc.communicate()
        assert not (data / "chroma" / "chroma.sqlite3").exists()
    finally:
        held.release()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out.strip() == "opened", err[-400:]


def test_a_writer_waits_for_the_lock_or_refuses_with_who_holds_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = ArticleStore(make_settings(data))
    args = ["--data-dir", str(data), "--collection", COLLECTION, "-q", str(SEED)]
    with store.writing("test holder"):
        refused = run_cli("--wait", "0", *args, cwd=tmp_path)
        assert refused.returncode == 1
        assert refused.stderr.startswith("error: the store is busy: another test holder "
                                         f"(pid {os.getpid()}) is writing to it")
        assert TRACEBACK not in refused.stderr and len(refused.stderr.splitlines()) == 1
        waited = run_cli("--wait", "1", "remove", "nothing-here", cwd=tmp_path,
                         env=cli_env(RAG_DATA_DIR=str(data), RAG_COLLECTION=COLLECTION))
        assert "busy" in waited.stderr and "waited 1 s" in waited.stderr
        waiting = subprocess.Popen([sys.executable, "-m", "ingest", *args], cwd=ROOT,
                                   env=cli_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        assert waiting.stderr is not None
        line = waiting.stderr.readline()
        assert line.startswith(f"waiting for another test holder (pid {os.getpid()})"), line
        assert waiting.poll() is None
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert "1 added" in out
    # a holder in this process is not a stranger: its own writes go through
    with store.writing("outer"):
        assert store.recover(wait=0) == 0


def test_recovery_never_touches_a_live_writers_work(tmp_path: Path) -> None:
    """A record mid-write while its writer holds the lock is left alone by other
    processes (check reports it, ingest refuses or waits); once the writer is gone, the
    next writer rolls it back."""
    data = tmp_path / "data"
    store = ArticleStore(make_settings(data))
    seeded = run_cli("--data-dir", str(data), "--collection", COLLECTION, "-q", str(SEED),
                     cwd=tmp_path)
    assert seeded.returncode == 0
    store.sync()
    [seed] = store.list_articles()
    with store.writing("slow writer"):
        store._bump_generation(writing=True)  # as a writer's first step does
        store.articles.update(ids=[seed.id], metadatas=[{"dirty": True, "writer": "me"}])
        seen = run_cli("--data-dir", str(data), "--collection", COLLECTION, "check",
                       "--json", cwd=tmp_path)
        assert json.loads(seen.stdout)["half_written"] == [[seed.id, "me"]]
        busy = run_cli("--data-dir", str(data), "--collection", COLLECTION, "--wait", "0",
                       "check", "--repair", cwd=tmp_path)
        assert busy.returncode == 1 and "busy" in busy.stderr
        assert store.half_written() == [(seed.id, "me")]  # untouched
        store.articles.update(ids=[seed.id], metadatas=[{"dirty": False, "writer": None}])
        store._bump_generation()
    assert check_store(store).ok


# -- a folder that cannot be written, a full disk, a damaged database ---------------------


def _seeded_copy(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    done = run_cli("--data-dir", str(data), "--collection", COLLECTION, "-q", str(SEED),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return data


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="runs the CLI as another user (needs root and setpriv)")
def test_read_only_data_dir_is_one_clear_line_and_the_store_stays_intact(
        tmp_path: Path) -> None:
    data = _seeded_copy(tmp_path)
    before = snapshot(reader(data))
    tmp_path.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    proc = subprocess.run(
        [*nobody, sys.executable, "-m", "ingest", "--data-dir", str(data), "--collection",
         COLLECTION, "-q", str(BBC / "tech" / "001.txt")],
        cwd=ROOT, env=cli_env(HOME=str(home)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "cannot be written" in proc.stderr
    assert str(data) in proc.stderr and "writable folder" in proc.stderr
    assert TRACEBACK not in proc.stderr and len(proc.stderr.splitlines()) == 1
    store = reader(data)
    assert snapshot(store) == before
    assert check_store(store).ok


def _limit_file_size(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_full_disk_is_one_clear_line_and_a_later_run_completes(tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE) stands in for a full disk."""
    data = _seeded_copy(tmp_path)
    before = snapshot(reader(data))
    biggest = max(f.stat().st_size for f in data.rglob("*") if f.is_file())
    files = [str(p) for p in bbc_files(2)]
    args = [sys.executable, "-m", "ingest", "--data-dir", str(data), "--collection",
            COLLECTION, "-q", *files]
    proc = subprocess.run(args, cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                          timeout=300, preexec_fn=lambda: _limit_file_size(biggest + 20_000))
    assert proc.returncode == 1
    assert "full" in proc.stderr and str(data) in proc.stderr, proc.stderr
    assert TRACEBACK not in proc.stderr
    store = reader(data)
    seed_id = next(iter(before[0]))
    assert snapshot(store)[0][seed_id] == before[0][seed_id]
    assert store.chunk_records(seed_id) and store.get_article(seed_id) is not None
    again = subprocess.run(args, cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    store = reader(data)
    assert_consistent(store)
    assert check_store(store).ok
    assert len(store.list_articles()) == 1 + len(files)


@pytest.mark.parametrize("damage", ["header", "middle"])
def test_a_damaged_database_is_one_clear_line_and_a_non_zero_exit(tmp_path: Path,
                                                                  damage: str) -> None:
    data = _seeded_copy(tmp_path)
    db = data / "chroma" / "chroma.sqlite3"
    size = db.stat().st_size
    with db.open("r+b") as f:
        if damage == "header":
            f.write(b"\0" * 100)
        else:
            f.seek(size // 2)
            f.write(random.Random(3).randbytes(size // 4))
    env = cli_env(RAG_DATA_DIR=str(data), RAG_COLLECTION=COLLECTION)
    runs = [
        run_cli("list", cwd=tmp_path, env=env),
        run_cli("check", cwd=tmp_path, env=env),
        subprocess.run([sys.executable, "-m", "rag", "ask", "why did relations sour?"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300),
    ]
    for proc in runs:
        assert proc.returncode != 0
        assert TRACEBACK not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: the store at ")
        assert str(data) in lines[0]
    assert "damaged" in runs[1].stderr and "backup" in runs[1].stderr


def test_a_runaway_vector_index_is_refused_before_it_fills_the_disk(tmp_path: Path) -> None:
    """chroma-core/chroma#7510: after a writer dies while Chroma saves its index, each
    later save writes link_lists.bin further past its end (56 GiB in 35 minutes here,
    until the disk was full). A write is refused, check says so in one line, and
    `drop` (the way out) still works."""
    import sqlite3

    data = _seeded_copy(tmp_path)
    chroma = data / "chroma"
    with sqlite3.connect(chroma / "chroma.sqlite3") as con:
        [segment] = [r[0] for r in con.execute(
            "SELECT s.id FROM segments s JOIN collections c ON s.collection = c.id "
            "WHERE s.scope = 'VECTOR' AND c.name = ?", (COLLECTION,))]
    folder = chroma / segment
    folder.mkdir(exist_ok=True)
    level0 = folder / "data_level0.bin"
    if not level0.exists():  # a small store's index may not be saved yet
        level0.write_bytes(b"\0" * 4096)
    with (folder / "link_lists.bin").open("ab") as f:
        f.truncate(3 << 30)  # sparse: 3 GiB apparent, nothing on disk
    env = cli_env(RAG_DATA_DIR=str(data), RAG_COLLECTION=COLLECTION)
    other = tmp_path / "other.txt"
    other.write_text("Lantern fair\n\nThe lantern fair in Vellmoor opens on Friday.\n")
    for proc in (run_cli("-q", str(other), cwd=tmp_path, env=env),
                 run_cli("check", cwd=tmp_path, env=env)):
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "chroma-core/chroma#7510" in lines[0], proc.stderr
        assert "3.0 GiB" in lines[0] and repr(COLLECTION) in lines[0]
    assert (folder / "link_lists.bin").stat().st_size == 3 << 30  # nothing written
    dropped = run_cli("drop", "--yes", cwd=tmp_path, env=env)
    assert dropped.returncode == 0, dropped.stderr
    again = run_cli("-q", str(other), cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr


def test_check_finds_the_fixture_s_lost_vectors_and_repair_brings_them_back(
        tmp_path: Path) -> None:
    """`../shared/fixtures`: a real store that the app and the CLI wrote at once."""
    fixture = CORPORA.parent / "fixtures" / "lost-vectors-store.tar.gz"
    if not fixture.is_file():
        pytest.skip(f"no fixture at {fixture}")
    subprocess.run(["tar", "xzf", str(fixture), "-C", str(tmp_path)], check=True)
    env = cli_env(RAG_DATA_DIR=str(tmp_path / "lost-vectors-store"), RAG_COLLECTION="articles")
    found = run_cli("check", "--json", cwd=tmp_path, env=env)
    assert found.returncode == 1
    seen = json.loads(found.stdout)
    assert not seen["ok"] and seen["lost"] > 0 and seen["repeats"] > 0
    fixed = run_cli("check", "--repair", cwd=tmp_path, env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "rebuilt the vector index" in fixed.stdout and "ok: every check passed" in fixed.stdout
    after = json.loads(run_cli("check", "--json", cwd=tmp_path, env=env).stdout)
    assert after["ok"] and after["lost"] == 0 and after["checked"] == after["chunks"]
    assert after["articles"] == seen["articles"]  # no article lost by the repair


# -- the keyword index, a cancelled job, a reader that keeps up -------------------------------


class _Slow(http.server.BaseHTTPRequestHandler):
    """Three articles on loopback, each taking DELAY seconds to arrive."""

    DELAY = 3.0
    served: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).served.append(self.path)
        time.sleep(self.DELAY)
        n = self.path.strip("/")
        body = _story(int(n[-1]) + 50, sentences=8).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slow_site() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_cancelling_a_library_job_stops_it(tmp_path: Path, slow_site: str) -> None:
    from web import server as web_server
    from web.service import NewsApp

    settings = make_settings(tmp_path / "data", fetch_allow="127.0.0.1", fetch_timeout=10)
    news = NewsApp(settings)
    news.store.ensure()
    port = free_port()
    demo = web_server.start(news, "127.0.0.1", port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        urls = [f"{slow_site}/a{k}" for k in (1, 2, 3)]
        job = client.submit(urls, "", api_name="/add_urls")
        deadline = time.monotonic() + 60
        while not news.store.list_articles():
            assert time.monotonic() < deadline, "the first article never arrived"
            time.sleep(0.2)
        job.cancel()
        time.sleep(_Slow.DELAY * 3)  # long enough for the rest, had it gone on
        titles = {a.title for a in news.articles()}
        assert "Vellmoor53 lantern survey" not in titles, titles
        assert len(titles) <= 2
        assert "/a3" not in _Slow.served
    finally:
        demo.close()


def test_a_running_app_sees_what_the_cli_adds_and_removes(tmp_path: Path) -> None:
    """The app's engine (this process) keeps answering while a CLI adds an article and
    then removes the seed; its next answers reflect both, without a restart."""
    data = tmp_path / "data"
    seeded = run_cli("--data-dir", str(data), "--collection", COLLECTION, "-q", str(SEED),
                     cwd=tmp_path)
    assert seeded.returncode == 0
    engine = Engine.from_settings(make_settings(data))
    question = "What did the Vellmoor99 inspectors log on the quay?"
    first = engine.ask(Ask(question))
    assert all("Vellmoor99" not in c.title for c in first.citations)
    story = tmp_path / "story.txt"
    story.write_text(_story(99, sentences=6))
    added = run_cli("--data-dir", str(data), "--collection", COLLECTION, "-q", str(story),
                    cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    answer = engine.ask(Ask(question))
    assert answer.citations and answer.citations[0].title == "Vellmoor99 lantern survey"
    seed_question = "Why did relations between Iran and Azerbaijan sour?"
    assert engine.ask(Ask(seed_question)).citations[0].title.startswith("Iranian president")
    removed = run_cli("--data-dir", str(data), "--collection", COLLECTION, "remove",
                      str(SEED), cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    after = engine.ask(Ask(seed_question))
    assert all(not c.title.startswith("Iranian president") for c in after.citations)
    assert [a.title for a in engine.store.list_articles()] == ["Vellmoor99 lantern survey"]


def test_store_errors_name_the_folder_and_what_to_do(tmp_path: Path) -> None:
    """The unit under the matrix rows: how a failure of the store becomes one line."""
    from rag.store.connection import store_error

    where = str(tmp_path)
    full = store_error(OSError(28, "No space left on device"), where, "writing article x")
    assert "is full" in str(full) and where in str(full)
    big = store_error(OSError(27, "File too large"), where, "writing article x")
    assert "is full" in str(big)
    read_only = store_error(PermissionError(13, "Permission denied"), where, "opening it")
    assert "cannot be written" in str(read_only)
    damaged = store_error(RuntimeError("file is not a database"), where, "opening it")
    assert "damaged" in str(damaged) and "backup" in str(damaged)
    assert isinstance(full, StoreError) and issubclass(WriterBusyError, StoreError)
    assert isinstance(Settings(data_dir=tmp_path).write_wait, float)


# -- a Chroma server: the lease lock ---------------------------------------------------------

def test_server_writers_take_turns_through_a_lease_that_a_dead_holder_loses(
        chroma_server: Any, tmp_path: Path) -> None:
    """Two machines share no lock file: the lease record in the server serialises them.
    A holder killed with SIGKILL stops renewing, and its lease lapses."""
    from rag.store.lock import LeaseWriterLock

    settings = make_settings(tmp_path / "unused", chroma_host=chroma_server.host,
                             chroma_port=chroma_server.port, collection="leased")
    store = ArticleStore(settings)
    env = cli_env(CHROMA_HOST=chroma_server.host, CHROMA_PORT=str(chroma_server.port))
    with store.writing("lease test"):
        refused = run_cli("--collection", "leased", "--wait", "0", "-q", str(SEED),
                          cwd=tmp_path, env=env)
        assert refused.returncode == 1
        assert "busy: another lease test" in refused.stderr, refused.stderr
    added = run_cli("--collection", "leased", "--wait", "0", "-q", str(SEED), cwd=tmp_path,
                    env=env)
    assert added.returncode == 0, added.stderr
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import time, chromadb\nfrom rag.store.lock import LeaseWriterLock\n"
         f"c = chromadb.HttpClient(host={chroma_server.host!r}, port={chroma_server.port})\n"
         "lock = LeaseWriterLock(c, 'leased', lease=3)\n"
         "with lock.hold('doomed writer', None):\n"
         "    print('held', flush=True)\n    time.sleep(600)\n"],
        cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    lock = LeaseWriterLock(store.client, "leased", lease=3)
    with pytest.raises(WriterBusyError, match="doomed writer"), lock.hold("second", wait=0):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    started = time.monotonic()
    with lock.hold("second", wait=30):
        assert lock.current()["what"] == "second"
    assert time.monotonic() - started < 30
    assert lock.current() is None  # released


def test_the_app_looks_at_the_store_at_start_and_says_what_needs_a_repair(
        tmp_path: Path) -> None:
    """The light part of `ingest check` at start-up: the fixture's lost vectors show
    above the page's tabs with the command that repairs them."""
    from web.service import NewsApp

    fixture = CORPORA.parent / "fixtures" / "lost-vectors-store.tar.gz"
    if not fixture.is_file():
        pytest.skip(f"no fixture at {fixture}")
    subprocess.run(["tar", "xzf", str(fixture), "-C", str(tmp_path)], check=True)
    news = NewsApp(Settings(data_dir=tmp_path / "lost-vectors-store", collection="articles",
                            reader="heuristic"))
    news.start_up()  # as a starting server does, in a thread: ready first, then the look
    assert news._warm
    banner = news.banner()
    assert banner.startswith("**The store needs a repair:**"), banner
    assert "python -m ingest check --repair" in banner and "lost" in banner
    assert str(tmp_path) not in banner  # the data folder stays private
