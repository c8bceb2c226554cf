"""Fetching a URL for ingest without letting web users reach the server's own network.

Anyone who can add a URL could otherwise make this server fetch loopback, intranet or
cloud-metadata addresses (SSRF), directly or through a redirect, and read the answers
or the error texts as a port scanner. So every hop is resolved once, every address it
resolves to is judged by a `FetchPolicy`, the connection goes to the address that was
judged (a second DNS answer cannot switch it), redirects are followed by hand, and one
deadline covers the whole download. Everything that would tell a refused address from
a closed port or an unknown name gives the same `UNREACHABLE` text; the log has the reason.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import TYPE_CHECKING, Any

import httpx

from ingest.formats import SourceError

if TYPE_CHECKING:
    from rag.settings import Settings

logger = logging.getLogger(__name__)

USER_AGENT = "newsrag/0.1 (+article ingestion)"
MAX_REDIRECTS = 5
UNREACHABLE = "could not fetch: the address is not allowed or not reachable"

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_REDIRECTS = frozenset({301, 302, 303, 307, 308})

# Refused on top of what `ipaddress` calls non-global. Each is listed because Python's
# tables let it through (multicast, site-local and CGNAT count as "global" in some
# versions, and the tables changed between 3.11 and 3.13 patch releases) or do not know it.
_EXTRA_REFUSED: tuple[IPNetwork, ...] = tuple(ip_network(n) for n in (
    "0.0.0.0/8",        # "this network": Linux connects 0.x.x.x to the local host
    "100.64.0.0/10",    # CGNAT shared space: the carrier's internal network
    "192.0.0.0/24",     # IETF protocol assignments: Python exempts parts (192.0.0.9 ...)
    "192.88.99.0/24",   # deprecated 6to4 relay anycast (RFC 7526)
    "198.18.0.0/15",    # benchmarking: lab networks
    "224.0.0.0/4",      # multicast: is_global is True for it
    "240.0.0.0/4",      # reserved, and 255.255.255.255 broadcast
    "::/96",            # IPv4-compatible (deprecated): may be routed into a local tunnel
    "64:ff9b:1::/48",   # local-use NAT64 (RFC 8215): translates into a private network
    "100::/64",         # discard-only
    "2001::/23",        # IETF protocol assignments: Teredo (2001::/32) hides its client
    "2001:db8::/32",    # documentation
    "3fff::/20",        # documentation (RFC 9637): unknown to older Pythons
    "5f00::/16",        # SRv6 segment ids (RFC 9602)
    "fc00::/7",         # unique local (the IPv6 RFC 1918)
    "fe80::/10",        # link-local
    "fec0::/10",        # site-local (deprecated): is_global is True for it
    "ff00::/8",         # multicast
))
_NAT64 = ip_network("64:ff9b::/96")  # well-known NAT64 prefix: the low 32 bits are an IPv4


def _in(address: IPAddress, network: IPNetwork) -> bool:
    # `in` across versions compares raw integers, so 0.0.0.1 would be "in" ::/96.
    return address.version == network.version and address in network


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped or NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if _in(address, _NAT64):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """True for an ordinary internet address; False for anything on a local or special network."""
    if isinstance(address, IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:  # the connection ends at that IPv4 address: judge it
            return is_public(embedded)
        if address.sixtofour is not None and not is_public(address.sixtofour):
            return False  # 6to4 tunnels to the embedded IPv4 address
        if address.scope_id or address.is_site_local:
            return False
    if any(_in(address, network) for network in _EXTRA_REFUSED):
        return False
    return address.is_global and not (
        address.is_private or address.is_loopback or address.is_link_local
        or address.is_multicast or address.is_reserved or address.is_unspecified
    )


@dataclass(frozen=True)
class FetchPolicy:
    """Which non-public addresses a fetch may reach; public addresses always may.

    The default refuses every private, loopback and special address. `networks` and
    `hosts` opt in an intranet (a host listed by name may resolve to any address);
    `allow_private` turns the address check off (a trusted CLI user's `--allow-private`).
    """

    allow_private: bool = False
    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        """From `fetch_allow` (RAG_FETCH_ALLOW, checked when the settings were made) and
        `fetch_allow_private`."""
        networks, hosts = settings.fetch_allow_parsed
        return cls(bool(settings.fetch_allow_private), networks, hosts)

    def allows(self, address: IPAddress, host: str = "") -> bool:
        """May a URL naming `host` connect to `address`?"""
        if self.allow_private or is_public(address):
            return True
        if host and host.lower().rstrip(".") in self.hosts:
            return True
        candidates = [address]
        if isinstance(address, IPv6Address) and (embedded := embedded_ipv4(address)):
            candidates.append(embedded)
        return any(_in(a, n) for a in candidates for n in self.networks)


class _Refused(Exception):
    """Anything the user must not be able to tell apart; the message is only logged."""


class _TimedOut(Exception):
    pass


def check_size(size: int, max_bytes: int) -> None:
    """Refuse a source over the size limit (files, stdin and downloads alike)."""
    if size > max_bytes:
        limit = f"{max_bytes / 1048576:g} MiB" if max_bytes >= 1048576 else f"{max_bytes} bytes"
        raise SourceError(f"larger than the {limit} limit (set RAG_MAX_FILE_MB to raise it)")


@dataclass(frozen=True)
class Fetched:
    body: bytes  # empty when not modified
    content_type: str
    url: str  # after redirects
    status: int  # 200, or 304: not modified since the validators given
    etag: str | None = None
    last_modified: str | None = None


def fetch(url: str, max_bytes: int, timeout: float, policy: FetchPolicy | None = None
          ) -> tuple[bytes, str, str | None]:
    """The body of `url`, its content type and the final URL after redirects.

    `timeout` bounds the whole download (DNS, redirects and a server that trickles).
    Raises SourceError with a one-line reason; see the module docstring for which.
    """
    got = fetch_if_changed(url, max_bytes, timeout, policy)
    return got.body, got.content_type, got.url


def fetch_if_changed(url: str, max_bytes: int, timeout: float,
                     policy: FetchPolicy | None = None, etag: str | None = None,
                     last_modified: str | None = None) -> Fetched:
    """`fetch` as a conditional request: with the validators of an earlier response
    (ETag, Last-Modified), a server whose copy has not changed answers 304 and sends
    nothing (`status` 304, no body). The response's own validators come back."""
    deadline = time.monotonic() + timeout
    headers = {k: v for k, v in (("If-None-Match", etag), ("If-Modified-Since", last_modified))
               if v}
    try:
        return _fetch(url, max_bytes, deadline, policy or FetchPolicy(), headers)
    except _Refused as exc:
        logger.info("fetch %s refused: %s", url, exc)
        raise SourceError(UNREACHABLE) from None
    except (_TimedOut, httpx.TimeoutException) as exc:
        raise SourceError(f"timed out after {timeout:g} s") from exc
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise SourceError(f"invalid URL ({exc})") from exc
    except httpx.HTTPError as exc:  # refused, reset, TLS failure...: as neutral as a refusal
        logger.info("fetch %s failed: %s: %s", url, type(exc).__name__, exc)
        raise SourceError(UNREACHABLE) from None


def _fetch(url: str, max_bytes: int, deadline: float, policy: FetchPolicy,
           headers: dict[str, str]) -> Fetched:
    current = _checked_url(httpx.URL(url))
    # trust_env=False: a proxy from the environment would connect by name, undoing the pin.
    with httpx.Client(trust_env=False, follow_redirects=False,
                      headers={"User-Agent": USER_AGENT}) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            response = _send(client, current, policy, deadline, headers)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    current = _checked_url(current.join(location))
                    continue
                validators = (response.headers.get("etag"),
                              response.headers.get("last-modified"))
                if response.status_code == 304 and headers:
                    return Fetched(b"", "", str(current), 304, *validators)
                if response.status_code != 200:
                    raise SourceError(
                        f"HTTP {response.status_code} {response.reason_phrase}".strip())
                body = _read_body(response, max_bytes, deadline)
                return Fetched(body, response.headers.get("content-type", ""), str(current),
                               200, *validators)
            finally:
                response.close()
    raise SourceError(f"too many redirects (more than {MAX_REDIRECTS})")


def _checked_url(url: httpx.URL) -> httpx.URL:
    if url.scheme not in ("http", "https"):
        raise SourceError(f"unsupported URL scheme {url.scheme or '(none)'!r}; "
                          "only http and https")
    if not url.host:
        raise SourceError(f"invalid URL (no host in {str(url)[:80]!r})")
    return url


def _send(client: httpx.Client, url: httpx.URL, policy: FetchPolicy, deadline: float,
          headers: dict[str, str] | None = None) -> httpx.Response:
    """Resolve `url`'s host once, judge every address, and send the request to the first."""
    host = url.raw_host.decode("ascii")  # IDNA-encoded; IPv6 without brackets
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = _resolve(host, port, deadline)
    refused = [a for a in addresses if not policy.allows(a, url.host)]
    if refused:
        raise _Refused(f"{host} resolves to {refused[0]}, which the policy refuses")
    address = addresses[0]
    extensions: dict[str, Any] = {}
    if url.scheme == "https" and not _is_ip(host):
        extensions["sni_hostname"] = host  # TLS name and certificate check use the real name
    request = client.build_request(
        "GET", url.copy_with(host=str(address)),
        headers={**(headers or {}), "Host": url.netloc.decode("ascii")},
        extensions=extensions, timeout=_remaining(deadline),
    )
    logger.debug("fetch %s via %s", url, address)
    return client.send(request, stream=True)


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def _resolve(host: str, port: int, deadline: float) -> list[IPAddress]:
    """Every address `host` resolves to, within the deadline (getaddrinfo has no timeout)."""
    if _is_ip(host):
        return [ip_address(host)]
    found: list[Any] = []
    failed: list[BaseException] = []

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            failed.append(exc)

    thread = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(_remaining(deadline))
    if thread.is_alive():
        raise _TimedOut
    if failed or not found:
        raise _Refused(f"cannot resolve {host}: {failed[0] if failed else 'no address'}")
    addresses: list[IPAddress] = []
    for info in found:
        address = ip_address(str(info[4][0]))
        if address not in addresses:
            addresses.append(address)
    return addresses


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _TimedOut
    return left


def _read_body(response: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    """The body, under the size cap, cut off at the deadline however slowly it arrives.

    Read timeouts apply per read, so a server sending a byte a second never trips them;
    a watchdog shuts the socket down at the deadline. (Closing it from another thread
    would not wake a blocked read on Linux; a shutdown does.)
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit():
        check_size(int(declared), max_bytes)
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    fired = threading.Event()

    def cut_off() -> None:
        fired.set()
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
            else:
                response.close()
        except Exception:  # already closed: nothing left to cut
            logger.debug("watchdog: connection already closed", exc_info=True)

    watchdog = threading.Timer(_remaining(deadline), cut_off)
    watchdog.daemon = True
    watchdog.start()
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            check_size(size, max_bytes)
            chunks.append(chunk)
            if time.monotonic() >= deadline:
                raise _TimedOut
    except httpx.HTTPError:
        if fired.is_set():
            raise _TimedOut from None
        raise
    finally:
        watchdog.cancel()
    if fired.is_set():  # a body without a length ends at EOF, so a cut one looks complete
        raise _TimedOut
    return b"".join(chunks)
