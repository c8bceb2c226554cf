"""Plain article text to an `Article`: headline, byline, date, and the body without clutter.

Written by hand because no library handles *plain text* news: trafilatura and
htmldate work on HTML. Copied or exported articles still carry image markup,
photo credits and share/subscribe lines; they must not be embedded or quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

_MONTHS = {
    name: i + 1
    for i, names in enumerate([
        ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"),
        ("may",), ("june", "jun"), ("july", "jul"), ("august", "aug"),
        ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
        ("december", "dec"),
    ])
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_NOT_CLOCK = r"(?!\s*(?:GMT|BST|UTC|CET|ET|hrs|h\b))"  # "1 March, 2000 GMT" is 20:00
_DATE_PATTERNS = [
    re.compile(_MONTH + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year>(?:19|20)\d\d)\b"
               + _NOT_CLOCK, re.I),
    re.compile(r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH
               + r",?\s+(?P<year>(?:19|20)\d\d)\b" + _NOT_CLOCK, re.I),
    re.compile(r"\b(?P<year>(?:19|20)\d\d)-(?P<month>\d{2})-(?P<day>\d{2})(?!\d)"),
]

_ON_BEFORE = re.compile(r"\bon\s+(\w+day,?\s+)?$")  # "on <date>", in the 20 characters before
_CREDIT = re.compile(
    r"(\(c\)|©|\bphoto(graph)?s?\s*(:|by\b)|\bcredit\s*:|\bimage\s*(:|by\b)|getty images|"
    r"\bap photo\b|/\s*(afp|reuters|anadolu|epa|ap)\b)",
    re.I,
)
_BOILERPLATE = re.compile(
    r"^(advertisement|share( this( article| story)?)?|share on \w+|read more\b.*|related:.*|"
    r"sign up\b.*|subscribe\b.*|follow us\b.*|click here\b.*|all rights reserved\.?|"
    r"copyright\b.*|skip to (main )?content|listen to (this )?article|"
    r"(email|print|tweet|facebook|twitter|whatsapp|linkedin)( this)?)$",
    re.I,
)
_NAME = r"[A-Z][\w'’.-]*(?:\s+(?:[A-Z][\w'’.-]*|de|van|von|bin|al|el|da|di|le|la))*"
_BYLINE = re.compile(
    r"^(?:[Bb]y|BY)\s+(?P<names>" + _NAME + r"(?:\s*(?:,|&|\band\b)\s*" + _NAME + r")*)"
    r"(?:\s*[,|–—-]\s*[^.]{0,60})?$",
)
_HEADING_MAX = 200


@dataclass
class ParsedText:
    title: str
    body: str  # paragraphs joined by "\n\n"
    authors: list[str] = field(default_factory=list)
    published: date | None = None
    removed: list[str] = field(default_factory=list)


def match_date(match: re.Match[str]) -> date | None:
    """The calendar date a `_DATE_PATTERNS` match names, or None when there is no such
    day (31 February)."""
    month = match.group("month")
    month_n = int(month) if month.isdigit() else _MONTHS[month.lower().rstrip(".")]
    try:
        return date(int(match.group("year")), month_n, int(match.group("day")))
    except ValueError:
        return None


def find_date(text: str, after_on: bool = False) -> date | None:
    """The first full calendar date in the text (month name or ISO), or None.

    `after_on` keeps only dates written "on <date>": in a body that is how the day of
    the reported event reads, while "the three months to 31 December" is not a dateline.
    """
    best: tuple[int, date] | None = None
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            # Slice only the 20 characters before the match: copying all the text before
            # every rejected match made a long lead full of dates quadratic.
            start = match.start()
            if after_on and not _ON_BEFORE.search(text[max(start - 20, 0):start]):
                continue
            found = match_date(match)
            if found is None:
                continue
            if best is None or match.start() < best[0]:
                best = (match.start(), found)
            break
    return best[1] if best else None


def _sub_bracketed(line: str, opener: str, keep_text: bool) -> str:
    """`opener` TEXT `](` URL `)` removed (or replaced by TEXT), in one pass.

    Same matches as the regexes `!\\[[^\\]]*\\]\\([^)]*\\)` (images) and
    `\\[([^\\]]+)\\]\\([^)]*\\)` → TEXT (links), but linear: with `re`, every unclosed
    `![` or `[a](` rescanned the rest of the line, so one long hostile line took
    quadratic time. Here the next `]` and `)` are found once and reused while valid.
    """
    out: list[str] = []
    pos = 0  # line[pos:] is not copied yet
    close_b = close_p = -1  # the first "]" / ")" at or after the last place searched
    i = line.find(opener)
    while i >= 0:
        start = i + len(opener)
        if close_b < start:
            close_b = line.find("]", start)
            if close_b < 0:
                break  # no "]" from here on: no later opener can match either
        if (keep_text and close_b == start) or not line.startswith("(", close_b + 1):
            i = line.find(opener, i + 1)
            continue
        if close_p < close_b + 2:
            close_p = line.find(")", close_b + 2)
            if close_p < 0:
                break  # no ")" after this "](": none after any later one either
        out.append(line[pos:i])
        if keep_text:
            out.append(line[start:close_b])
        pos = close_p + 1
        i = line.find(opener, pos)
    out.append(line[pos:])
    return "".join(out)


def clean_line(line: str, markdown: bool = False) -> str:
    """One line without image markup (and, for Markdown, links, heading, list and bold
    markers), whitespace collapsed."""
    line = _sub_bracketed(line, "![", keep_text=False)
    if markdown:
        line = _sub_bracketed(line, "[", keep_text=True)
        line = re.sub(r"^\s{0,3}#{1,6}\s+", "", line)
        line = re.sub(r"^\s*[-*+]\s+", "", line)
        line = re.sub(r"(\*\*|__)(.+?)\1", r"\2", line)
    return " ".join(line.split())


def is_clutter(line: str) -> bool:
    """Image residue, photo credits and share/subscribe lines: not article text."""
    stripped = line.strip(" |")
    if not stripped or not re.search(r"\w", stripped):
        return True
    if line.rstrip().endswith("|") and len(line) < 400:
        return True  # a caption cell from an exported image table
    if len(stripped) < 300 and _CREDIT.search(stripped[-60:]):
        return True
    if re.match(r"^(photo|image|picture|credit|caption)s?\s*:", stripped, re.I):
        return True
    return len(stripped) < 80 and bool(_BOILERPLATE.match(stripped.rstrip(".:")))


def split_authors(names: str) -> list[str]:
    parts = re.split(r"\s*(?:,|&|\band\b)\s*", names)
    return [" ".join(p.split()) for p in parts if p.strip()]


def parse_byline(line: str) -> list[str] | None:
    if len(line) > 120:  # checked first: no regex work on a long paragraph
        return None
    match = _BYLINE.match(line.strip())
    if not match:
        return None
    return split_authors(match.group("names"))


def _looks_like_headline(line: str) -> bool:
    return 0 < len(line) <= _HEADING_MAX and not re.search(r"[.!?:;,]$", line) or (
        0 < len(line) <= 120 and not line.endswith(".")
    )


_MD_BLOCK_START = re.compile(r"^\s{0,3}(#{1,6}\s|[-*+]\s|\d+[.)]\s|>|!\[)")


def _paragraphs(raw: str, markdown: bool) -> list[str]:
    """One string per paragraph: lines wrapped inside a paragraph are joined.

    Markdown paragraphs are blank-line separated and may wrap anywhere; plain text
    is joined only where a block looks hard-wrapped (lines of similar width, all
    short), so one-paragraph-per-line files such as the BBC's are left alone.
    """
    out: list[str] = []
    for block in re.split(r"\n[ \t]*\n", raw.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [line for line in block.split("\n") if line.strip()]
        if len(lines) < 2 or not (markdown or _hard_wrapped(lines)):
            out.extend(lines)
            continue
        current: list[str] = []
        for line in lines:
            if markdown and _MD_BLOCK_START.match(line) and current:
                out.append(" ".join(current))
                current = []
            current.append(line.strip())
            if markdown and line.lstrip().startswith("#"):
                out.append(" ".join(current))
                current = []
        if current:
            out.append(" ".join(current))
    return out


def _hard_wrapped(lines: list[str]) -> bool:
    widths = [len(line.rstrip()) for line in lines]
    width = max(widths)
    if width > 100:
        return False
    inner = widths[:-1]  # a paragraph's last line may be short
    return sum(w >= 0.6 * width for w in inner) >= 0.8 * len(inner) and width >= 40


def parse_text(raw: str, *, title: str | None = None, markdown: bool = False) -> ParsedText:
    """Headline (first line, unless given), byline, date and clean paragraphs.

    A date is looked for in the headline region and removed captions first (where
    news exports put it), then in the first paragraphs of the body.
    """
    lines = [clean_line(line, markdown) for line in _paragraphs(raw, markdown)]
    kept: list[str] = []
    removed: list[str] = []
    authors: list[str] = []
    for line in lines:
        if not line:
            continue
        if is_clutter(line):
            removed.append(line)
            continue
        if not authors and len(kept) < 8 and (names := parse_byline(line)):
            authors = names
            removed.append(line)
            continue
        kept.append(line)
    if title is not None and kept and kept[0].casefold() == " ".join(title.split()).casefold():
        kept.pop(0)  # pages often repeat the headline as the first block
    if title is None and kept and _looks_like_headline(kept[0]):
        title = kept.pop(0)
    elif title is None and kept:
        first = re.split(r"(?<=[.!?])\s", kept[0], maxsplit=1)[0]
        title = first if len(first) <= 120 else first[:117].rsplit(" ", 1)[0] + "..."
    # Datelines are short lines near the top or captions; a body date is only taken
    # from the lead, written "on <date>". Body dates elsewhere are events, not datelines.
    datelines = (k for k in kept[:4] if len(k) < 100 and not k.endswith((".", "!", "?")))
    header = "\n".join([title or "", *datelines, *removed])
    published = find_date(header) or find_date("\n".join(kept[:1]), after_on=True)
    return ParsedText(
        title=title or "",
        body="\n\n".join(kept),
        authors=authors,
        published=published,
        removed=removed,
    )
