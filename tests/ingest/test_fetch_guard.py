"""The fetch guard: a URL cannot make the server reach its own network (SSRF).

Property tests judge addresses from every refused range (and their IPv6 disguises);
real HTTP servers on loopback check the whole fetch: refusal, the neutral error,
redirects checked hop by hop, one deadline, and the connection pinned to the address
that was checked. No test sends traffic beyond loopback: names are resolved by
/etc/hosts or by a patched resolver.
"""

from __future__ import annotations

import http.server
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_network
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.servers import free_port, self_signed_tls

from ingest.cli import build_parser, settings_from
from ingest.fetch import UNREACHABLE, FetchPolicy, IPAddress, fetch, is_public
from ingest.formats import SourceError
from ingest.pipeline import ingest
from rag.settings import Settings
from rag.store.articles import ArticleStore

MAX_BYTES = 1_000_000
PAGE = b"<html><body><p>Harbour bridge reopens after repairs.</p></body></html>"
DEFAULT = FetchPolicy()
LOOPBACK_ONLY = FetchPolicy(networks=(ip_network("127.0.0.1/32"),))

# -- addresses ----------------------------------------------------------------------

REFUSED_V4 = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "255.255.255.255/32",
]
REFUSED_V6 = [
    "::/128", "::1/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "2001:db8::/32",
    "3fff::/20", "2001::/32", "100::/64", "64:ff9b:1::/48",
]
PUBLIC_V4 = ["8.0.0.0/8", "1.1.1.0/24", "9.9.9.0/24", "151.101.0.0/16"]
PUBLIC_V6 = ["2606:4700::/32", "2a00:1450::/32"]


def addresses(networks: list[str]) -> st.SearchStrategy[IPAddress]:
    def inside(cidr: str) -> st.SearchStrategy[IPAddress]:
        net = ip_network(cidr)
        kind = type(net.network_address)
        return st.integers(int(net.network_address), int(net.broadcast_address)).map(kind)

    return st.sampled_from(networks).flatmap(inside)


def disguised(v4: IPv4Address, low: int) -> list[IPv6Address]:
    """IPv6 forms that lead to `v4`: mapped, NAT64, 6to4 (`low` fills its free bits)."""
    return [IPv6Address(0xFFFF << 32 | int(v4)),
            IPv6Address(0x64FF9B << 96 | int(v4)),
            IPv6Address(0x2002 << 112 | int(v4) << 80 | low)]


@given(addresses(REFUSED_V4), st.integers(0, 2**80 - 1))
def test_refused_ipv4_ranges_and_their_ipv6_forms_are_refused(v4: IPv4Address, low: int
                                                              ) -> None:
    for address in [v4, *disguised(v4, low), IPv6Address(int(v4))]:  # last: IPv4-compatible
        assert not is_public(address), address
        assert not DEFAULT.allows(address), address


@given(addresses(REFUSED_V6))
def test_refused_ipv6_ranges_are_refused(address: IPv6Address) -> None:
    assert not is_public(address)
    assert not DEFAULT.allows(address)


@given(addresses(PUBLIC_V4), st.integers(0, 2**80 - 1))
def test_public_addresses_pass(v4: IPv4Address, low: int) -> None:
    for address in [v4, *disguised(v4, low)]:
        assert is_public(address), address
        assert DEFAULT.allows(address), address


@given(addresses(PUBLIC_V6))
def test_public_ipv6_addresses_pass(address: IPv6Address) -> None:
    assert DEFAULT.allows(address)


@given(st.integers(0, 2**24 - 1), st.integers(8, 32), addresses(REFUSED_V4))
def test_an_allowed_cidr_lets_its_addresses_through_and_nothing_else(
    base: int, prefix: int, v4: IPv4Address
) -> None:
    allowed = ip_network((IPv4Address(0x0A000000 | base), prefix), strict=False)
    policy = FetchPolicy.from_settings(Settings(fetch_allow=f" {allowed} , "))
    assert policy.networks == (allowed,)
    for address in (v4, IPv6Address(0xFFFF << 32 | int(v4))):
        assert policy.allows(address) == (v4 in allowed), (allowed, address)
    inside = IPv4Address(int(allowed.network_address) + base % allowed.num_addresses)
    assert policy.allows(inside)


def test_policy_from_settings() -> None:
    policy = FetchPolicy.from_settings(Settings(
        fetch_allow="10.0.0.0/8, 192.168.1.5,fd00::/8, Intranet.Example.",
        fetch_allow_private=False))
    assert policy.networks == (ip_network("10.0.0.0/8"), ip_network("192.168.1.5/32"),
                               ip_network("fd00::/8"))
    assert policy.hosts == frozenset({"intranet.example"})
    assert policy.allows(IPv4Address("127.0.0.1"), "intranet.example")
    assert not policy.allows(IPv4Address("127.0.0.1"), "other.example")
    assert FetchPolicy.from_settings(Settings(fetch_allow_private=True)).allows(
        IPv4Address("127.0.0.1"))
    for bad in ("10.0.0.0/33", "10.0.0.300", "192.168.1.0/24/8", "not a host"):
        with pytest.raises(ValueError, match="RAG_FETCH_ALLOW"):
            FetchPolicy.from_settings(Settings(fetch_allow=bad))


def test_cli_allow_private_flag() -> None:
    parser = build_parser()
    assert settings_from(parser.parse_args(["add", "--allow-private", "x"])).fetch_allow_private
    assert not settings_from(parser.parse_args(["add", "x"])).fetch_allow_private


# -- real servers on loopback -----------------------------------------------------------


@dataclass
class Site:
    host: str
    port: int = 0
    scheme: str = "http"
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _handler(site: Site, stop: threading.Event) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            site.requests.append((self.path, self.headers.get("Host", "")))
            try:
                if url.path == "/page":
                    self._send(200, PAGE)
                elif url.path == "/to":  # /to?url=...: a redirect anywhere
                    self._redirect(parse_qs(url.query)["url"][0])
                elif url.path.startswith("/chain/"):  # /chain/N: N redirects, then the page
                    left = int(url.path.rsplit("/", 1)[1])
                    if left:
                        self._redirect(f"/chain/{left - 1}")
                    else:
                        self._send(200, PAGE)
                elif url.path == "/drip":  # 40 bytes, one every 0.5 s
                    self._head(200, 40)
                    for _ in range(40):
                        if stop.wait(0.5):
                            return
                        self.wfile.write(b"x")
                        self.wfile.flush()
                elif url.path == "/stall":  # a few bytes, then nothing
                    self._head(200, 1000)
                    self.wfile.write(b"<html>")
                    self.wfile.flush()
                    stop.wait(30)
                elif url.path == "/hangup":  # no answer at all
                    self.close_connection = True
                else:
                    self._send(404, b"not here")
            except OSError:
                pass  # the client gave up

        def _head(self, status: int, length: int) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(length))
            self.end_headers()

        def _send(self, status: int, body: bytes) -> None:
            self._head(status, len(body))
            self.wfile.write(body)

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


Serve = Callable[..., Site]


@pytest.fixture(scope="module")
def serve() -> Iterator[Serve]:
    """serve(host, port=0, tls=None) -> Site: an HTTP server on a loopback address."""
    stop = threading.Event()
    running: list[tuple[http.server.ThreadingHTTPServer, threading.Thread]] = []

    def start(host: str, port: int = 0, tls: ssl.SSLContext | None = None) -> Site:
        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True
            block_on_close = False

        site = Site(host)
        httpd = Server((host, port), _handler(site, stop))
        if tls is not None:
            httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
            site.scheme = "https"
        site.port = httpd.server_address[1]
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        running.append((httpd, thread))
        return site

    yield start
    stop.set()
    for httpd, thread in running:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def site(serve: Serve) -> Site:
    return serve("127.0.0.1")


@dataclass
class Resolver:
    answers: dict[str, list[str]] = field(default_factory=dict)  # name -> one per lookup
    lookups: list[str] = field(default_factory=list)


@pytest.fixture()
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    """Names in `answers` give their answers in turn (the last repeats); others resolve as
    usual, and `.invalid` names fail like a DNS miss, without asking any server."""
    fake_dns = Resolver()
    real = socket.getaddrinfo

    def fake(host: str, port: object, *args: object, **kwargs: object) -> list:
        fake_dns.lookups.append(host)
        if host in fake_dns.answers:
            queue = fake_dns.answers[host]
            return real(queue.pop(0) if len(queue) > 1 else queue[0], port, *args, **kwargs)
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake_dns


def error_of(url: str, policy: FetchPolicy, timeout: float = 10.0) -> str:
    with pytest.raises(SourceError) as info:
        fetch(url, MAX_BYTES, timeout, policy)
    return str(info.value)


def test_loopback_is_refused_by_default(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ingest.fetch")
    for url in (f"{site.base}/page", f"http://localhost:{site.port}/page",
                f"http://127.1:{site.port}/page", f"http://2130706433:{site.port}/page",
                f"{site.base}/to?url=/page"):
        assert error_of(url, DEFAULT) == UNREACHABLE, url
    assert site.requests == []
    assert "policy refuses" in caplog.text  # the real reason is logged, not shown


def test_ipv6_loopback_is_refused_by_default(serve: Serve) -> None:
    try:
        site6 = serve("::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here ({exc})")
    assert error_of(f"{site6.base}/page", DEFAULT) == UNREACHABLE
    assert error_of(f"http://[::ffff:127.0.0.1]:{site6.port}/page", DEFAULT) == UNREACHABLE
    assert site6.requests == []


def test_refused_closed_reset_and_unknown_all_read_the_same(site: Site, resolver: Resolver) -> None:
    """No port scanner: the text does not tell a refused address from a dead one."""
    refused = error_of(f"{site.base}/page", DEFAULT)
    closed = error_of(f"http://127.0.0.1:{free_port()}/page", LOOPBACK_ONLY)
    hangup = error_of(f"{site.base}/hangup", LOOPBACK_ONLY)
    unknown = error_of("http://no-such-host.invalid/page", DEFAULT)
    assert refused == closed == hangup == unknown == UNREACHABLE
    # An allowed server's own answer may still be told.
    assert error_of(f"{site.base}/missing", LOOPBACK_ONLY) == "HTTP 404 Not Found"


def test_an_allowed_address_is_fetched(site: Site) -> None:
    policy = FetchPolicy.from_settings(Settings(fetch_allow="127.0.0.1/32"))
    data, content_type, final_url = fetch(f"{site.base}/page", MAX_BYTES, 10, policy)
    assert (data, content_type, final_url) == (PAGE, "text/html; charset=utf-8",
                                               f"{site.base}/page")
    by_name = FetchPolicy.from_settings(Settings(fetch_allow="localhost"))
    assert fetch(f"http://localhost:{site.port}/page", MAX_BYTES, 10, by_name)[0] == PAGE
    assert fetch(f"{site.base}/page", MAX_BYTES, 10, FetchPolicy(allow_private=True))[0] == PAGE


def test_a_redirect_to_a_refused_address_is_refused(site: Site, serve: Serve) -> None:
    try:
        other = serve("127.0.0.2")
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.0.2 ({exc})")
    url = f"{site.base}/to?url={other.base}/page"
    assert error_of(url, LOOPBACK_ONLY) == UNREACHABLE
    assert other.requests == []
    # The same chain with both allowed ends at the other server.
    both = FetchPolicy(networks=(ip_network("127.0.0.0/8"),))
    assert fetch(url, MAX_BYTES, 10, both)[1:] == ("text/html; charset=utf-8",
                                                   f"{other.base}/page")
    assert other.requests == [("/page", f"127.0.0.2:{other.port}")]


def test_redirects_are_limited_and_checked_for_scheme(site: Site) -> None:
    data, _, final_url = fetch(f"{site.base}/chain/5", MAX_BYTES, 10, LOOPBACK_ONLY)
    assert data == PAGE and final_url == f"{site.base}/chain/0"
    assert error_of(f"{site.base}/chain/6", LOOPBACK_ONLY) == "too many redirects (more than 5)"
    assert error_of(f"{site.base}/to?url=file:///etc/passwd", LOOPBACK_ONLY) == (
        "unsupported URL scheme 'file'; only http and https")
    assert error_of("ftp://example.com/x", DEFAULT) == (
        "unsupported URL scheme 'ftp'; only http and https")


@pytest.mark.parametrize("path", ["/drip", "/stall"])
def test_one_deadline_cuts_off_a_slow_server(site: Site, path: str) -> None:
    started = time.monotonic()
    assert error_of(f"{site.base}{path}", LOOPBACK_ONLY, timeout=2) == "timed out after 2 s"
    assert time.monotonic() - started < 8  # a hang guard, not a precision test


def test_the_size_cap_applies_while_streaming(site: Site) -> None:
    with pytest.raises(SourceError, match=r"^larger than the 10 bytes limit"):
        fetch(f"{site.base}/page", 10, 10, LOOPBACK_ONLY)


def test_the_connection_goes_to_the_address_that_was_checked(
    site: Site, serve: Serve, resolver: Resolver
) -> None:
    """A name that answers 127.0.0.1 to the check and 127.0.0.2 later (DNS rebinding)."""
    try:
        decoy = serve("127.0.0.2", site.port)
    except OSError:
        decoy = None  # then a second lookup would fail to connect: the test still holds
    resolver.answers["news.pinned.test"] = ["127.0.0.1", "127.0.0.2"]
    url = f"http://news.pinned.test:{site.port}/page"
    before = len(site.requests)
    assert fetch(url, MAX_BYTES, 10, LOOPBACK_ONLY) == (PAGE, "text/html; charset=utf-8", url)
    assert site.requests[before:] == [("/page", f"news.pinned.test:{site.port}")]
    assert resolver.lookups.count("news.pinned.test") == 1
    assert decoy is None or decoy.requests == []


def test_https_to_the_pinned_address_checks_the_real_name(
    serve: Serve, resolver: Resolver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS goes to the checked IP, yet SNI and the certificate check use the host name."""
    cert, tls = self_signed_tls(tmp_path, "news.pinned.test", "DNS:news.pinned.test")
    names: list[str | None] = []
    tls.sni_callback = lambda sock, name, ctx: names.append(name)
    secure = serve("127.0.0.1", tls=tls)
    import certifi  # httpx's trust store: trust the test certificate instead

    monkeypatch.setattr(certifi, "where", lambda: str(cert))
    resolver.answers["news.pinned.test"] = ["127.0.0.1"]
    url = f"https://news.pinned.test:{secure.port}/page"
    assert fetch(url, MAX_BYTES, 10, LOOPBACK_ONLY)[0] == PAGE
    assert names == ["news.pinned.test"]
    assert secure.requests == [("/page", f"news.pinned.test:{secure.port}")]
    # By IP the certificate does not match: refused like any failure to connect.
    assert error_of(f"https://127.0.0.1:{secure.port}/page", LOOPBACK_ONLY) == UNREACHABLE


# -- through the pipeline -------------------------------------------------------------------


def test_ingest_refuses_a_loopback_url_and_writes_nothing(site: Site, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "store", collection="fetch-guard", fetch_allow="",
                        fetch_allow_private=False)
    store = ArticleStore(settings)
    before = len(site.requests)
    report = ingest([f"{site.base}/page"], store, settings, progress=False)
    assert [(r.status, r.reason) for r in report.results] == [("failed", UNREACHABLE)]
    assert store.list_articles() == []
    assert site.requests[before:] == []
