"""A feed's bytes to a `Feed`, bounded in time: RSS 2.0, Atom, JSON Feed, sitemaps,
sitemap indexes and Google News sitemaps.

The contract: `parse` returns a `Feed` or raises `FeedError`, whose message is one
line a person can act on, for any bytes at all: never another exception, never a
traceback. What is read from a feed is checked:

- text fields are strings with no control characters and no line breaks; a field of
  the wrong type (a JSON Feed's `"title": 5`, `"authors": "bob"`) is left out, and the
  feed's notes say which;
- an entry's link is an http(s) URL with a host, or none (a `javascript:` link is
  dropped, noted);
- RSS and Atom are parsed by feedparser in a child process (`python -m
  ingest.feedparse`) with a deadline, `PARSE_SECONDS`: feedparser is pure Python and a
  hostile feed within the download limit can keep it busy for a minute. The child first
  measures the XML's nesting (expat, C speed) and refuses more than `MAX_DEPTH` levels.
  Starting it costs about 0.15 s a parse; an unchanged feed (a 304) is not parsed.
- JSON Feeds and sitemaps are parsed here (the json module and expat: C, linear);
  nesting too deep for them is a `FeedError`. Entity expansion bombs are refused by
  expat and external entities are never fetched.

This module imports nothing heavy (no store), so the child starts fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ingest.formats import SourceError, parse_date

logger = logging.getLogger(__name__)
PARSE_SECONDS = 20.0  # an RSS or Atom feed's parse, child start included
MAX_DEPTH = 256  # XML nesting: real feeds (XHTML content included) stay far below
CHILD_MEMORY = 2 << 30  # bytes of address space the parsing child may use
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_NEWS_NS = "{http://www.google.com/schemas/sitemap-news/0.9}"
# Control characters and every line break `str.splitlines` knows: what no one-line field
# may hold (a feed's text; a feeds file line, where one would write a second line).
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class FeedError(SourceError):
    """A feed that cannot be read; the message is one line."""


@dataclass
class Entry:
    key: str  # the entry's id, else its link
    link: str | None
    title: str = ""
    published: date | None = None  # the day in the feed's own time zone
    stamp: str = ""  # changes when the entry does (its updated date, else its content)
    authors: list[str] = field(default_factory=list)
    summary: str = ""  # plain text


@dataclass
class Feed:
    kind: str  # rss, atom, json, sitemap, sitemap index
    title: str | None = None
    entries: list[Entry] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)  # an index's children
    notes: list[str] = field(default_factory=list)


def parse(data: bytes, url: str, content_type: str = "", *,
          seconds: float = PARSE_SECONDS) -> Feed:
    """A feed or sitemap from its bytes; FeedError (one line) for anything else,
    including a parse that takes longer than `seconds`."""
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        return _json_feed(data)
    if re.search(rb"<(?:\w+:)?(urlset|sitemapindex)\b", data[:4096]):
        return _sitemap(data)
    return _xml_feed_in_child(data, url, content_type, seconds)


# -- RSS and Atom: feedparser, in a child process ---------------------------------------


def _xml_feed_in_child(data: bytes, url: str, content_type: str, seconds: float) -> Feed:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    command = [sys.executable, "-m", "ingest.feedparse", url, content_type or ""]
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=seconds,
                              env=env, check=False)
    except subprocess.TimeoutExpired:
        raise FeedError(f"not read: parsing it took longer than {seconds:g} s "
                        f"({len(data) / 1e6:.1f} MB)") from None
    except OSError as exc:
        raise FeedError(f"not read: the feed parser could not start ({exc.strerror})") \
            from None
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        logger.warning("feed parser for %s exited %s: %s", url, done.returncode,
                       done.stderr.decode("utf-8", "replace")[-800:])
        raise FeedError(f"not read: the feed parser failed (exit {done.returncode})") \
            from None
    if "error" in answer:
        raise FeedError(str(answer["error"]))
    return _feed_from_json(answer["feed"])


def _feed_from_json(doc: dict[str, Any]) -> Feed:
    entries = [Entry(**{**e, "published": date.fromisoformat(e["published"])
                        if e.get("published") else None}) for e in doc.pop("entries")]
    return Feed(**doc, entries=entries)


def _feed_to_json(feed: Feed) -> dict[str, Any]:
    doc = asdict(feed)
    for entry in doc["entries"]:
        entry["published"] = entry["published"].isoformat() if entry["published"] else None
    return doc


def _child(argv: list[str]) -> int:
    """The child's side: the feed's bytes on stdin, `{"feed": …}` or `{"error": "…"}`
    on stdout."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
    except (ImportError, ValueError, OSError):
        pass
    url, content_type = (argv + ["", ""])[:2]
    data = sys.stdin.buffer.read()
    try:
        answer: dict[str, Any] = {"feed": _feed_to_json(read_xml_feed(data, url,
                                                                      content_type))}
    except FeedError as exc:
        answer = {"error": str(exc)}
    except RecursionError:
        answer = {"error": "not a readable feed: nested too deeply"}
    except MemoryError:
        answer = {"error": "not a readable feed: parsing it needs more memory than allowed"}
    except (UnicodeError, LookupError) as exc:
        answer = {"error": f"not a readable feed: its encoding can't be read ({_short(exc)})"}
    except Exception as exc:  # feedparser's own failure: said, never a traceback
        answer = {"error": f"not a readable feed: the parser failed "
                           f"({type(exc).__name__}: {_short(exc)})"}
    sys.stdout.write(json.dumps(answer))
    return 0


def _short(exc: BaseException) -> str:
    return " ".join(CONTROLS.sub(" ", str(exc)).split())[:120]


def xml_depth(data: bytes, limit: int = MAX_DEPTH) -> int:
    """How deep the XML nests (up to the first error, if it is ill-formed); stops
    counting past `limit`."""
    import xml.parsers.expat

    parser = xml.parsers.expat.ParserCreate()
    depth = deepest = 0

    class Deep(Exception):
        pass

    def start(name: str, attrs: object) -> None:
        nonlocal depth, deepest
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                raise Deep

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    with contextlib.suppress(Deep, xml.parsers.expat.ExpatError, ValueError):
        parser.Parse(data, True)  # ill-formed: the depth up to the error
    return deepest


def read_xml_feed(data: bytes, url: str, content_type: str = "") -> Feed:
    """RSS or Atom through feedparser, in this process (the child calls it)."""
    depth = xml_depth(data)
    if depth > MAX_DEPTH:
        raise FeedError(f"not a readable feed: its XML nests more than {MAX_DEPTH} "
                        "elements deep")
    import feedparser

    with warnings.catch_warnings():  # its notice that `updated` falls back to `published`
        warnings.simplefilter("ignore", DeprecationWarning)
        parsed = feedparser.parse(data, response_headers={
            "content-location": url, "content-type": content_type or "application/xml"})
    return _read_xml_feed(parsed)


def _read_xml_feed(parsed: Any) -> Feed:  # noqa: ANN401 - feedparser's dict
    from xml.sax import SAXException

    version = str(parsed.get("version") or "")
    exc = parsed.get("bozo_exception")
    # Only broken XML counts: feedparser also flags a missing or odd content type.
    problem = _problem(exc) if parsed.bozo and isinstance(exc, SAXException) else ""
    if problem and not parsed.entries:
        raise FeedError(f"not a readable feed: malformed XML ({problem})")
    if not version and not parsed.entries:
        raise FeedError("not a feed (no RSS, Atom or JSON Feed, and no sitemap)")
    feed = Feed(kind="atom" if version.startswith("atom") else "rss",
                title=_clean(parsed.feed.get("title")) or None)
    if problem:
        feed.notes.append(f"malformed XML ({problem}): read what could be read")
    dropped = 0
    for item in parsed.entries:
        raw_link = _string(item.get("link"))
        link = _link(raw_link)
        dropped += bool(raw_link and not link)
        raw = item.get("published") or item.get("updated") or item.get("created")
        summary = _string(item.get("summary"))
        content = item.get("content")
        if not summary and isinstance(content, list) and content \
                and isinstance(content[0], dict):
            summary = _string(content[0].get("value"))
        authors = [_string(a.get("name")) for a in item.get("authors") or []
                   if isinstance(a, dict)]
        if not any(authors) and _string(item.get("author")):
            authors = [_string(item.get("author"))]
        entry = Entry(key=_clean(item.get("id")) or link or "", link=link,
                      title=_clean(item.get("title")), published=_day(_string(raw)),
                      authors=[a for a in (_clean(a) for a in authors) if a],
                      summary=_text(summary))
        entry.stamp = _clean(item.get("updated")) or _digest(entry)
        if entry.key:
            feed.entries.append(entry)
    if dropped:
        feed.notes.append(_dropped_links(dropped))
    return feed


def _problem(exc: Any) -> str:  # noqa: ANN401
    """feedparser's complaint as a few words and where: "line 3: mismatched tag"."""
    what = _short(getattr(exc, "getMessage", lambda: exc)() or exc)
    line = getattr(exc, "getLineNumber", lambda: None)()
    return f"line {line}: {what}" if line else what


# -- JSON Feed ---------------------------------------------------------------------------


def _json_feed(data: bytes) -> Feed:
    """JSON Feed 1.0/1.1 by hand: feedparser 6 reads only XML, and the format is a few
    documented keys (jsonfeed.org/version/1.1). Every field is checked for its type."""
    try:
        doc = json.loads(data)
    except RecursionError:
        raise FeedError("not a readable JSON Feed: nested too deeply") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise FeedError(f"not a readable JSON Feed: {_short(exc)}") from None
    if not isinstance(doc, dict) or "jsonfeed.org" not in _string(doc.get("version")):
        raise FeedError("not a JSON Feed (no jsonfeed.org version)")
    items = doc.get("items", [])
    if not isinstance(items, list):
        raise FeedError(f"not a readable JSON Feed: its items are {_kind(items)}, "
                        "not a list")
    wrong: set[str] = set()
    feed = Feed(kind="json", title=_clean(_typed(doc, "title", str, wrong, "title")) or None)
    skipped = dropped = 0
    for item in items:
        if not isinstance(item, dict):
            skipped += 1
            continue
        raw_link = _typed(item, "url", str, wrong) or _typed(item, "external_url", str, wrong)
        link = _link(raw_link)
        dropped += bool(raw_link and not link)
        people = _typed(item, "authors", list, wrong) or []
        one = _typed(item, "author", dict, wrong)
        if not people and one:
            people = [one]
        names = []
        for person in people:
            name = person.get("name") if isinstance(person, dict) else None
            if isinstance(name, str):
                names.append(_clean(name))
            else:
                wrong.add("authors")
        summary = (_typed(item, "content_text", str, wrong)
                   or _typed(item, "summary", str, wrong)
                   or _text(_typed(item, "content_html", str, wrong) or ""))
        ident = item.get("id")
        if isinstance(ident, bool) or not isinstance(ident, (str, int, type(None))):
            wrong.add("id")
            ident = None
        modified = _typed(item, "date_modified", str, wrong)
        entry = Entry(key=_clean(ident) or link or "", link=link,
                      title=_clean(_typed(item, "title", str, wrong)),
                      published=_day(_typed(item, "date_published", str, wrong) or modified),
                      authors=[n for n in names if n], summary=_clean(summary))
        entry.stamp = _clean(modified) or _digest(entry)
        if entry.key:
            feed.entries.append(entry)
    if wrong:
        feed.notes.append(f"fields of the wrong type left out: {', '.join(sorted(wrong))}")
    if skipped:
        feed.notes.append(f"{skipped} item(s) that are not objects skipped")
    if dropped:
        feed.notes.append(_dropped_links(dropped))
    return feed


def _typed(doc: dict[str, Any], key: str, kind: type, wrong: set[str],
           name: str | None = None) -> Any:  # noqa: ANN401
    """`doc[key]` when it is a `kind`; None when it is missing or null; None, and noted
    in `wrong`, when it is something else."""
    value = doc.get(key)
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    wrong.add(name or key)
    return None


def _kind(value: object) -> str:
    return {str: "a string", int: "a number", float: "a number", bool: "true or false",
            dict: "an object"}.get(type(value), type(value).__name__)


# -- sitemaps ----------------------------------------------------------------------------


def _sitemap(data: bytes) -> Feed:
    try:
        root = ET.fromstring(data)  # noqa: S314 - expat refuses entity expansion bombs
    except ET.ParseError as exc:
        raise FeedError(f"not a readable sitemap: {_short(exc)}") from None
    except RecursionError:
        raise FeedError("not a readable sitemap: nested too deeply") from None
    tag = root.tag.removeprefix(_SITEMAP_NS)
    if tag == "sitemapindex":
        locs = [_link((s.findtext(f"{_SITEMAP_NS}loc") or "").strip())
                for s in root.iter(f"{_SITEMAP_NS}sitemap")]
        return Feed(kind="sitemap index", sitemaps=[u for u in locs if u])
    feed = Feed(kind="sitemap")
    dropped = 0
    for node in root.iter(f"{_SITEMAP_NS}url"):
        raw = (node.findtext(f"{_SITEMAP_NS}loc") or "").strip()
        loc = _link(raw)
        if not loc:
            dropped += bool(raw)
            continue
        news = node.find(f"{_NEWS_NS}news")
        title, published, outlet = "", None, None
        if news is not None:
            title = _clean(news.findtext(f"{_NEWS_NS}title"))
            published = _day(news.findtext(f"{_NEWS_NS}publication_date"))
            outlet = _clean(news.findtext(f"{_NEWS_NS}publication/{_NEWS_NS}name")) or None
            feed.title = feed.title or outlet
        lastmod = _clean(node.findtext(f"{_SITEMAP_NS}lastmod"))
        feed.entries.append(Entry(key=loc, link=loc, title=title, published=published,
                                  stamp=lastmod or title))
    if dropped:
        feed.notes.append(_dropped_links(dropped))
    return feed


# -- fields ------------------------------------------------------------------------------


def _link(value: str | None) -> str | None:
    """An http(s) URL with a host and no control characters or spaces, else None."""
    value = (value or "").strip()
    if not value or CONTROLS.search(value) or any(c.isspace() for c in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def _dropped_links(count: int) -> str:
    return f"{count} link(s) that are not http(s) URLs left out"


def _day(raw: Any) -> date | None:  # noqa: ANN401
    """The day a feed's date names, in its own time zone (`parse_date`, as the
    readers read metadata dates); a date that is not one is left out, and logged."""
    day = parse_date(raw) if isinstance(raw, str) else None
    if day is None and str(raw or "").strip():
        logger.info("feed date %r is not a date; left out", str(raw)[:60])
    return day


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _clean(value: object) -> str:
    """A field as one line of text: a number is written out, anything else that is not
    a string is nothing; markup, control characters and line breaks go."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _text(_string(value))


def _text(html: str) -> str:
    """A summary's plain text (feeds put HTML in it), on one line."""
    html = CONTROLS.sub(" ", html)
    if "<" not in html:
        return " ".join(html.split())
    import lxml.html

    try:
        text = lxml.html.fromstring(html).text_content()
    except (ValueError, lxml.etree.ParserError):
        text = re.sub(r"<[^>]+>", " ", html)
    return " ".join(CONTROLS.sub(" ", text).split())


def _digest(entry: Entry) -> str:
    payload = json.dumps([entry.title, entry.summary, str(entry.published)])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
