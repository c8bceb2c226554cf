"""A Chroma server reached as a hosted one is: in a database of its own (CHROMA_DATABASE,
CHROMA_TENANT), over HTTPS (CHROMA_SSL), with headers that carry a token
(CHROMA_HEADERS). Real `chroma run` (the `chroma_server` fixture), the real CLI, and a
small TLS proxy in front of the server that records every request's headers and
refuses those without the token, as a hosted Chroma or an authenticating proxy would.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from support.servers import QuietHandler, QuietServer, self_signed_tls
from support.stores import CORPORA, SEED, bbc_files, cli_env, make_settings, run_cli

from ingest.pipeline import ingest
from rag.settings import Settings
from rag.store.articles import ArticleStore, StoreError
from rag.store.connection import location, server_headers
from rag.store.keyword import KeywordIndex
from rag.store.keyword_table import table_path

pytestmark = pytest.mark.skipif(not SEED.is_file(), reason=f"shared corpora missing: {CORPORA}")
ROOT = Path(__file__).resolve().parents[2]
COLLECTION = "tenancy"
TOKEN, BEARER = "xyz-9c1f-token", "abc-77e2-bearer"  # what the proxy wants; never printed
HEADERS = {"Authorization": f"Bearer {BEARER}", "X-Chroma-Token": TOKEN}


def env_of(**extra: str) -> dict[str, str]:
    """A child's environment: this tree's code first (PYTHONPATH: the children run in a
    temporary folder, where an installed copy of the project would be found instead)."""
    return cli_env(PYTHONPATH=str(ROOT), **extra)


def server_env(server: SimpleNamespace, **extra: str) -> dict[str, str]:
    return env_of(CHROMA_HOST=server.host, CHROMA_PORT=str(server.port), **extra)


def settings_of(data: Path, **overrides: object) -> Settings:
    return make_settings(data, collection=COLLECTION, **overrides)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# -- settings alone --------------------------------------------------------------------------


def test_the_defaults_are_chromas_and_the_keyword_table_of_the_default_database_stays_put(
        tmp_path: Path) -> None:
    import chromadb.config

    settings = settings_of(tmp_path, chroma_host="10.0.0.5", chroma_port=8001)
    assert (settings.chroma_tenant, settings.chroma_database) == (
        chromadb.config.DEFAULT_TENANT, chromadb.config.DEFAULT_DATABASE)
    assert settings.chroma_ssl is False and settings.chroma_headers is None
    assert table_path(settings) == tmp_path / "keyword" / "10.0.0.5_8001" / f"{COLLECTION}.sqlite"
    assert location(settings) == "chroma server 10.0.0.5:8001"
    assert table_path(settings_of(tmp_path)) == tmp_path / "keyword" / "local" / (
        f"{COLLECTION}.sqlite")

    other = settings.override(chroma_database="newsroom")
    assert table_path(other) == (tmp_path / "keyword" / "10.0.0.5_8001" / "default_tenant"
                                 / "newsroom" / f"{COLLECTION}.sqlite")
    assert location(other) == ("chroma server 10.0.0.5:8001 (tenant 'default_tenant', "
                               "database 'newsroom')")
    # names that are not file names stay inside the server's folder, and distinct
    paths = {table_path(settings.override(chroma_tenant=t, chroma_database=d))
             for t, d in [("..", "x"), ("a/b", "c"), ("a", "b/c"), ("a.b", "c"), ("a_b", "c"),
                          ("über", ".")]}
    assert len(paths) == 6
    for path in paths:
        rel = path.relative_to(tmp_path / "keyword" / "10.0.0.5_8001")
        assert len(rel.parts) == 3 and not {".", ".."} & set(rel.parts), rel
        assert all(p.replace("%", "").replace("_", "").replace("-", "").isalnum()
                   for p in rel.parts[:2]), rel


def test_headers_are_a_json_object_and_a_malformed_one_is_named_never_shown(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHROMA_HEADERS", json.dumps(HEADERS))
    settings = Settings(data_dir=tmp_path)
    assert server_headers(settings) == HEADERS
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())
    monkeypatch.setenv("RAG_CHROMA_HEADERS", " ")
    monkeypatch.delenv("CHROMA_HEADERS")
    assert server_headers(Settings(data_dir=tmp_path)) is None
    for bad, why in [(f'{{"X-Chroma-Token": "{TOKEN}"', "not JSON"),
                     (f"X-Chroma-Token={TOKEN}", "not JSON"),
                     (f'["{TOKEN}"]', "a JSON list"),
                     (f'{{"X-Chroma-Token: {TOKEN}": ""}}', "the name of header 1"),
                     (f'{{"X-Chroma-Token": "{TOKEN}\\r\\nHost: evil"}}', "line break"),
                     ('{"X-Chroma-Token": 7}', "not a string")]:
        with pytest.raises(ValueError, match="invalid setting CHROMA_HEADERS") as info:
            server_headers(settings_of(tmp_path, chroma_headers=bad))
        assert why in str(info.value) and TOKEN not in str(info.value), bad
        assert "\n" not in str(info.value)


# -- a database of its own -------------------------------------------------------------------


def _admin(server: SimpleNamespace):  # noqa: ANN202 - chromadb's AdminAPI
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.AdminClient(ChromaSettings(
        chroma_api_impl="chromadb.api.fastapi.FastAPI", chroma_server_host=server.host,
        chroma_server_http_port=server.port, anonymized_telemetry=False))


@pytest.mark.slow
def test_a_database_of_its_own_holds_its_articles_apart_from_the_default_one(
        chroma_server: SimpleNamespace, tmp_path: Path) -> None:
    """One data folder, one collection name, two databases of one server: each lists
    only its own articles, keeps its own keyword table and its own writer lease."""
    _admin(chroma_server).create_database("newsroom-b")
    data = tmp_path / "data"
    default = settings_of(data, chroma_host=chroma_server.host, chroma_port=chroma_server.port)
    in_b = default.override(chroma_database="newsroom-b")
    store = ArticleStore(default)
    report = ingest([str(SEED)], store, default, progress=False)
    [seed_id] = [r.article_id for r in report.results]
    files = bbc_files(1)
    env_b = server_env(chroma_server, CHROMA_DATABASE="newsroom-b")
    with store.writing("a long job in the default database"):  # its lease is not b's
        added = run_cli("--data-dir", str(data), "--collection", COLLECTION, "--wait", "0",
                        "-q", *map(str, files), cwd=tmp_path, env=env_b)
    assert added.returncode == 0, added.stderr

    store_b = ArticleStore(in_b)
    assert store_b.conn is not store.conn and store_b.location == location(in_b)
    ids_b = {a.id for a in store_b.list_articles()}
    assert len(ids_b) == len(files) and seed_id not in ids_b
    assert [a.id for a in store.list_articles()] == [seed_id]
    for env, want in [(server_env(chroma_server), {seed_id}), (env_b, ids_b)]:
        listed = run_cli("--data-dir", str(data), "--collection", COLLECTION, "list", "--json",
                         cwd=tmp_path, env=env)
        assert listed.returncode == 0, listed.stderr
        assert {row["id"] for row in json.loads(listed.stdout)} == want

    # each database's keyword table, in its own file, holds that database's chunks
    assert table_path(default).is_file() and table_path(in_b).is_file()
    assert table_path(in_b) == (data / "keyword" / f"127.0.0.1_{chroma_server.port}"
                                / "default_tenant" / "newsroom-b" / f"{COLLECTION}.sqlite")
    for s in (store, store_b):
        table = KeywordIndex.of(s).ensure()
        assert table is not None
        assert table.ids() == {r["id"] for r in s.chunk_records()}
    hits = KeywordIndex.of(store_b).ensure().search("Pezeshkian Aliyev Baku", 5)
    assert all(meta["article_id"] != seed_id for _, _, meta, _ in hits)
    assert KeywordIndex.of(store).ensure().search("Pezeshkian Aliyev Baku", 1)[0][2][
        "article_id"] == seed_id


def test_a_database_or_tenant_that_does_not_exist_is_one_line_saying_how_to_create_it(
        chroma_server: SimpleNamespace, tmp_path: Path) -> None:
    settings = settings_of(tmp_path, chroma_host=chroma_server.host,
                           chroma_port=chroma_server.port, chroma_database="nowhere")
    with pytest.raises(StoreError, match="has no database 'nowhere' in tenant "
                                         "'default_tenant' \\(CHROMA_DATABASE\\)"):
        ArticleStore(settings)
    for extra, said in [({"CHROMA_DATABASE": "nowhere"}, "create_database('nowhere'"),
                        ({"CHROMA_TENANT": "nobody"}, "has no tenant 'nobody' (CHROMA_TENANT)"
                                                      "; create it with chromadb's AdminClient "
                                                      "(`create_tenant('nobody')`")]:
        proc = run_cli("--data-dir", str(tmp_path), "--collection", COLLECTION, "list",
                       cwd=tmp_path, env=server_env(chroma_server, **extra))
        assert proc.returncode == 1
        line = one_line(proc.stderr)
        assert line.startswith("error: the Chroma server at 127.0.0.1:") and said in line, line
    assert not (tmp_path / "keyword").exists()


# -- through a TLS proxy that wants a token --------------------------------------------------


class TokenProxy:
    """HTTPS in front of the Chroma server: records each request's method, path and
    headers; forwards those carrying `want`, answers the others 401 (without a token
    as Chroma does, with a wrong one as a web server's page)."""

    def __init__(self, upstream: str, want: dict[str, str], tls: ssl.SSLContext) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.upstream = httpx.Client(base_url=upstream, timeout=60)
        proxy, lock = self, threading.Lock()

        class Handler(QuietHandler):
            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                got = {k.lower(): v for k, v in self.headers.items()}
                with lock:
                    proxy.seen.append((self.command, self.path, got))
                if all(got.get(k.lower()) == v for k, v in want.items()):
                    reply = proxy.upstream.request(
                        self.command, self.path, content=body or None,
                        headers={"Content-Type": got.get("content-type", "application/json")})
                    status, payload = reply.status_code, reply.content
                    kind = reply.headers.get("content-type", "application/json")
                elif "x-chroma-token" not in got:  # as Chroma's own token auth answers
                    status, kind = 401, "application/json"
                    payload = b'{"error": "AuthorizationError", "message": "Unauthorized"}'
                else:  # a wrong one: as a web server's own page does
                    status, kind = 401, "text/html"
                    payload = b"<html><title>401 Authorization Required</title></html>"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward  # noqa: N815

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, name="chroma-proxy",
                         daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.upstream.close()


@pytest.fixture()
def proxy(chroma_server: SimpleNamespace, tmp_path: Path) -> Iterator[SimpleNamespace]:
    cert, tls = self_signed_tls(tmp_path, "127.0.0.1", "IP:127.0.0.1,DNS:localhost")
    server = TokenProxy(f"http://{chroma_server.host}:{chroma_server.port}", HEADERS, tls)
    try:
        yield SimpleNamespace(port=server.port, seen=server.seen, cert=cert)
    finally:
        server.close()


@pytest.mark.slow
def test_headers_and_https_reach_the_server_through_a_proxy_that_wants_a_token(
        proxy: SimpleNamespace, tmp_path: Path) -> None:
    # SSL_CERT_FILE: the child trusts the test certificate (httpx reads it)
    env = env_of(CHROMA_HOST="127.0.0.1", CHROMA_PORT=str(proxy.port), CHROMA_SSL="true",
                 CHROMA_HEADERS=json.dumps(HEADERS), SSL_CERT_FILE=str(proxy.cert))
    data = ["--data-dir", str(tmp_path / "data"), "--collection", COLLECTION]
    added = run_cli(*data, "-v", str(SEED), cwd=tmp_path, env=env)
    assert added.returncode == 0, added.stderr
    listed = run_cli(*data, "list", "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [row["title"] for row in json.loads(listed.stdout)][0].startswith("Iranian president")
    assert len(proxy.seen) > 10
    assert any("/databases/default_database/collections" in path for _, path, _ in proxy.seen)
    for method, path, headers in proxy.seen:  # every request, over TLS, with both headers
        assert headers.get("x-chroma-token") == TOKEN, (method, path)
        assert headers.get("authorization") == f"Bearer {BEARER}", (method, path)
    for proc in (added, listed):
        assert TOKEN not in proc.stdout + proc.stderr and BEARER not in proc.stdout + proc.stderr

    seen = len(proxy.seen)
    without = {k: v for k, v in env.items() if k != "CHROMA_HEADERS"}
    refused = run_cli(*data, "list", cwd=tmp_path, env=without)
    assert refused.returncode == 1
    line = one_line(refused.stderr)
    assert "refused this client" in line and "CHROMA_HEADERS" in line, line
    assert len(proxy.seen) > seen and "x-chroma-token" not in proxy.seen[-1][2]

    wrong = {**env, "CHROMA_HEADERS": json.dumps({**HEADERS, "X-Chroma-Token": "guess"})}
    refused = run_cli(*data, "list", cwd=tmp_path, env=wrong)
    assert refused.returncode == 1 and "refused this client" in one_line(refused.stderr)
    assert "guess" not in refused.stderr and BEARER not in refused.stderr

    plain = {k: v for k, v in env.items() if k != "CHROMA_SSL"}  # HTTP to an HTTPS port
    unreachable = run_cli(*data, "list", cwd=tmp_path, env=plain)
    assert unreachable.returncode == 1
    assert "cannot reach the Chroma server" in one_line(unreachable.stderr)


def test_malformed_headers_stop_the_cli_and_the_app_with_one_line_naming_the_setting(
        chroma_server: SimpleNamespace, tmp_path: Path) -> None:
    env = server_env(chroma_server, CHROMA_HEADERS=f"Authorization=Bearer {BEARER}")
    proc = run_cli("--data-dir", str(tmp_path), "--collection", COLLECTION, "list",
                   cwd=tmp_path, env=env)
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert line.startswith("error: invalid setting CHROMA_HEADERS: not JSON"), line
    assert BEARER not in proc.stdout + proc.stderr

    app = subprocess.run([sys.executable, "app.py", "--port", "1", "--data-dir", str(tmp_path)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert app.returncode == 1
    assert "error: invalid setting CHROMA_HEADERS: not JSON" in app.stderr
    assert BEARER not in app.stdout + app.stderr and "Traceback" not in app.stderr
