"""Dates in news text and questions.

An article's "on Monday" means a day only once it is read against the publication date,
and a question's "in March" is a filter on when things happened. Both are resolved here,
with pure functions, so ingest can date every sentence and retrieval can filter by date.
"""

from __future__ import annotations

import calendar
import logging
import re
from dataclasses import dataclass
from datetime import date, timedelta

logger = logging.getLogger(__name__)

# Why not dateparser (installed): measured here, `search_dates` takes ~50 ms a sentence
# (ingest runs over every sentence), returns points rather than ranges ("in January" ->
# 30 January, "last week" -> one day) and reads "Theresa May" as a month. The grammar
# below is small and fixed, so one precompiled regex finds candidates, a few context
# checks drop the false ones and plain date arithmetic resolves the rest.

_MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS_FULL = ("January|February|March|April|May|June|July|August|September|October"
                "|November|December")
_MONTHS_SHORT = "Sept|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
                 "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
                 "twelve": 12}
_NUM = r"\d{1,3}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
_DAY = r"(?:3[01]|[12]\d|0?[1-9])(?:st|nd|rd|th)?(?![\d%]|[.,:]\d)"
_YEAR = r"(?:19|20)\d\d(?![\w%]|[-–/.,]\d)"


def _compile(strict_case: bool) -> re.Pattern[str]:
    """One alternation for every expression; earlier alternatives win at the same spot.

    In article text month and weekday names must be capitalised ("protesters march", "may
    rise"); questions are typed by people, so there they may be in any case.
    """

    def names(alternatives: str) -> str:
        return (f"(?-i:{alternatives})" if strict_case else f"(?:{alternatives})") + r"(?!\w)"

    month = names(_MONTHS_FULL)
    month_any = f"(?:{month}|{names(_MONTHS_SHORT)}\\.?)"  # a dot only after "Jan."
    weekday = names(_WEEKDAY_NAMES)
    parts = [
        r"(?P<iso>(?P<iso_y>(?:19|20)\d\d)-(?P<iso_m>0[1-9]|1[0-2])"
        r"-(?P<iso_d>0[1-9]|[12]\d|3[01])(?![\d-]))",
        rf"(?P<dmy>(?:{weekday},?\s+)?(?:the\s+)?(?P<dmy_d>{_DAY})(?:\s+of)?\s+"
        rf"(?P<dmy_m>{month_any})(?:,?\s+(?P<dmy_y>{_YEAR}))?)",
        rf"(?P<mdy>(?:{weekday},?\s+)?(?P<mdy_m>{month_any})\s+(?P<mdy_d>{_DAY})"
        rf"(?:,?\s+(?P<mdy_y>{_YEAR}))?)",
        rf"(?P<my>(?P<my_m>{month_any}),?\s+(?P<my_y>{_YEAR}))",
        rf"(?P<qual>(?P<q>early|mid|late)(?:\s+|-)(?:(?P<q_m>{month})"
        rf"(?:,?\s+(?P<q_my>{_YEAR}))?|(?P<q_y>{_YEAR})))",
        rf"(?P<roll>(?:the\s+(?:past|last)|past|last(?=\s+(?:{_NUM})\s))\s+"
        rf"(?:(?P<roll_n>{_NUM})\s+)?(?P<roll_u>day|week|fortnight|month|year)s?)"
        r"(?!\w|\s+of\b)",
        rf"(?P<ago>(?P<ago_n>{_NUM}|an?)\s+(?P<ago_u>day|week|fortnight|month|year)s?\s+ago)"
        r"(?!\w)",
        r"(?P<part>(?P<part_w>earlier|later)\s+(?:this|in\s+the)\s+"
        r"(?P<part_u>week|month|year))(?!\w)",
        r"(?P<rel>(?P<rel_w>yesterday|tomorrow|today|tonight|last\s+night|this\s+morning"
        r"|this\s+afternoon|this\s+evening)(?:\s+(?:morning|afternoon|evening|night))?)(?!\w)",
        r"(?P<per>(?P<per_mod>last|this|next|coming)\s+(?P<per_u>weekend|week|month|year))"
        r"(?!\w|\s+of\b)",
        rf"(?P<wd>(?:(?P<wd_mod>last|this|next|past|coming)\s+)?(?P<wd_n>{weekday})"
        r"(?:\s+(?P<wd_p>morning|afternoon|evening|night)(?!\w))?)",
        rf"(?P<mon>(?:(?P<mon_mod>last|this|next|past|coming)\s+)?(?P<mon_m>{month}))",
        rf"(?P<yr>{_YEAR})",
    ]
    return re.compile(r"(?<![\w£$€#@/–—-])(?<!\d[.,:])(?:" + "|".join(parts) + ")", re.I)


_TEXT_PATTERN = _compile(strict_case=True)
_QUESTION_PATTERN = _compile(strict_case=False)
# A cheap test that skips the big pattern for the many sentences with no date at all.
_HINT = re.compile(r"\d|day|night|week|month|year|ago|morrow|morning|noon|evening"
                   r"|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec", re.I)

_PREV_WORD = re.compile(r"([A-Za-z][\w'’]*)[ \t]+$")
_NEXT_WORD = re.compile(r"[ \t]+([A-Za-z][\w'’-]*)")
_SENTENCE_BREAK = re.compile(r"[.!?][\"”’')\]]*\s|\n")
_TOKEN = re.compile(r"[a-z]+(?:['’][a-z]+)?")
_LEAD = re.compile(r"\b(?:in|on)\s+$", re.I)
_RANGE_OPEN = re.compile(r"\b(?:between|from)\s+$", re.I)
_RANGE_JOIN = re.compile(r"\s+(?:and|to|until|till|through)\s+|\s*[–—-]\s*", re.I)
_QUESTION_OP = re.compile(
    r"\b(since|after|before|until|till|by|from|through|in|on|during|over|for|of|within"
    r"|up\s+to|prior\s+to|as\s+of)\s+$", re.I)
_LEADING_PREP = re.compile(
    r"(?:since|after|before|until|till|by|from|through|in|on|during|over|for|of|within"
    r"|up\s+to|prior\s+to|as\s+of|between)\s", re.I)
_DANGLING = re.compile(
    r"\s*\b(?:about|around|in|on|at|during|since|from|for|of|until|till|before|after|by"
    r"|over|between|within|to)$", re.I)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words before a bare month ("in May") or bare year ("since 2023") that make it a date.
_DATE_PREPS = _words(
    "in since until till by during before after of from through throughout between and to "
    "around year end start")
# "the 2024 election", "its 2023 report", "Iran's 2024 budget": a year naming a topic.
_TOPIC_DETERMINERS = _words(
    "the a an its his her their our my your this that these those whose")
# Capitalised words that may stand before a month or weekday without making it a name.
_FUNCTION_WORDS = _DATE_PREPS | _words(
    "on at for the a last this next past coming early mid late every as or but then since "
    "by") | {w.lower() for w in _WEEKDAY_NAMES.split("|")}
_TITLE_WORDS = _words(
    "Times Telegraph Mirror Express Post People Herald Mail Sport Star Record Independent "
    "Night League School Service Club Market Best")
_MONTH_OR_DAY_NAMES = frozenset(
    w.lower() for w in f"{_MONTHS_FULL}|{_MONTHS_SHORT}|{_WEEKDAY_NAMES}".split("|"))

_FUTURE_WORDS = _words(
    "will shall won't wont would next tomorrow upcoming scheduled slated planned")
_BEFORE_TO = _words(
    "due expected set going plans plan planning planned intends intend aims aim hopes hope "
    "poised scheduled slated likely is are am")
_PAST_WORDS = _words(
    "said told was were had has have did came went met held made took gave saw spoke wrote "
    "found began left won lost ran hit struck fell rose sent brought became kept led paid "
    "sold shot fled broke chose ago yesterday last")
_NOT_PAST = _words(
    "hundred united limited proposed alleged armed advanced detailed related based "
    "expected scheduled planned slated")


@dataclass(frozen=True)
class DateMention:
    """A date expression in text and the days it names (inclusive)."""

    start: int
    end: int
    phrase: str
    first: date
    last: date


@dataclass(frozen=True)
class DateFilter:
    """The dates a question asks about; None is an open end."""

    first: date | None
    last: date | None
    phrase: str
    start: int
    end: int

    def describe(self) -> str:
        """Short text for showing which dates a question was narrowed to."""
        if self.first is not None and self.last is not None:
            return _days_text(self.first, self.last)
        if self.first is not None:
            return f"since {format_day(self.first)}"
        if self.last is not None:
            return f"before {format_day(self.last + timedelta(days=1))}"
        return "any date"


@dataclass(frozen=True)
class _Atom:
    """One matched expression, parsed but not yet resolved against a date."""

    start: int
    end: int
    kind: str  # day, month, year, weekday, rel, period, rolling, ago, part
    month: int = 0
    day: int = 0
    year: int | None = None
    weekday: int = 0
    mod: str = ""  # last/this/next, early/mid/late, earlier/later
    n: int = 0
    unit: str = ""
    weak: bool = False  # a date only as the end of a range ("between May and June")


def format_day(d: date) -> str:
    """28 Apr 2025: unambiguous in any locale, unlike 04/28."""
    return f"{d.day} {_MONTH_ABBR[d.month - 1]} {d.year}"


def format_range(first: date, last: date) -> str:
    """A mention's dates as people write them: "Apr 2025", "2024", "21–27 Apr 2025"."""
    if first == last:
        return format_day(first)
    whole_months = first.day == 1 and last == _month_end(last.year, last.month)
    if whole_months and (first.month, last.month) == (1, 12):
        return str(first.year) if first.year == last.year else f"{first.year}–{last.year}"
    if whole_months:
        a, b = _MONTH_ABBR[first.month - 1], _MONTH_ABBR[last.month - 1]
        if (first.year, first.month) == (last.year, last.month):
            return f"{a} {first.year}"
        if first.year == last.year:
            return f"{a}–{b} {first.year}"
        return f"{a} {first.year} – {b} {last.year}"
    return _days_text(first, last)


def resolve_dates(text: str, published: date | None) -> list[DateMention]:
    """Date expressions in `text` with the days they name, read from `published`.

    Without a publication date only absolute dates ("14 March 2025", "March 2025",
    "in 2024") are returned: a relative one would be a guess.
    """
    if not _HINT.search(text):
        return []
    mentions = []
    for start, end, a, b in _groups(text, _atoms(text, _TEXT_PATTERN)):
        if b is None:
            if a.weak:
                continue
            dates = _resolve(a, published, _tense(text, a.start, a.end))
            lead = _LEAD.search(text, max(0, start - 12), start)
            if lead:
                start = lead.start()
        else:
            dates = _resolve_range(a, b, published, _tense(text, a.start, b.end))
        if dates is not None:
            mentions.append(DateMention(start, end, text[start:end], *dates))
    return mentions


def question_dates(question: str, today: date) -> DateFilter | None:
    """The first date expression in a question, as a filter; None if there is none.

    "recently" is not a filter (recency is ranked elsewhere), nor is a year naming a topic
    ("the 2024 election").
    """
    for start, end, a, b in _groups(question, _atoms(question, _QUESTION_PATTERN)):
        if b is not None:
            dates = _resolve_range(a, b, today, -1)
            if dates is not None:
                return DateFilter(dates[0], dates[1], question[start:end], start, end)
            continue
        if a.weak:
            continue
        dates = _resolve(a, today, -1)
        if dates is None:
            continue
        first, last = dates
        op = _QUESTION_OP.search(question, max(0, start - 12), start)
        word = re.sub(r"\s+", " ", op.group(1).lower()) if op else ""
        if op:
            start = op.start()
        if word == "since":
            bounds: tuple[date | None, date | None] = (first, None)
        elif word == "after":
            bounds = (last + timedelta(days=1), None)
        elif word in ("before", "prior to"):
            bounds = (None, first - timedelta(days=1))
        elif word in ("until", "till", "up to", "by", "through", "as of"):
            bounds = (None, last)
        else:
            bounds = (first, last)
        return DateFilter(bounds[0], bounds[1], question[start:end], start, end)
    return None


def strip_dates(question: str, f: DateFilter) -> str:
    """The question without its date phrase, as retrieval text."""
    left, right = question[:f.start].rstrip(), question[f.end:].lstrip()
    if right[:2] in ("'s", "’s"):
        right = right[2:].lstrip()
    ends_clause = not right or right[0] in ",.?!;:"
    if ends_clause and not _LEADING_PREP.match(f.phrase + " "):
        left = _DANGLING.sub("", left)
    out = re.sub(r"\s+", " ", f"{left} {right}").strip()
    out = re.sub(r"\s+([,.?!;:])", r"\1", out)
    out = re.sub(r"([,;:])(?=[,.?!;:])", "", out).lstrip(",;: ")
    if out and question[:1].isupper():
        out = out[0].upper() + out[1:]
    return out


def _atoms(text: str, pattern: re.Pattern[str]) -> list[_Atom]:
    atoms = []
    for m in pattern.finditer(text):
        try:
            atom = _parse(m, text)
        except ValueError:
            logger.debug("not a date: %r", m.group(0))
            continue
        if atom is not None:
            atoms.append(atom)
    return atoms


def _parse(m: re.Match[str], text: str) -> _Atom | None:
    """The match as an atom, or None when its context says it is not a date."""
    kind, start, end = m.lastgroup, m.start(), m.end()
    g = m.group
    prev = _prev_word(text, start)
    if kind == "iso":
        y, mo, d = int(g("iso_y")), int(g("iso_m")), int(g("iso_d"))
        date(y, mo, d)
        return _Atom(start, end, "day", mo, d, y)
    if kind in ("dmy", "mdy"):
        p = kind + "_"
        if kind == "mdy" and _is_name(prev):  # "Theresa May 3"
            return None
        mo, d = _month(g(p + "m")), int(re.sub(r"\D", "", g(p + "d")))
        y = int(g(p + "y")) if g(p + "y") else None
        date(y or 2000, mo, d)  # 2000 is a leap year: 29 Feb without a year is fine
        return _Atom(start, end, "day", mo, d, y)
    if kind == "my":
        if _is_name(prev):  # "Theresa May 2019"
            return None
        return _Atom(start, end, "month", _month(g("my_m")), year=int(g("my_y")))
    if kind == "qual":
        q = g("q").lower()
        if g("q_y"):
            return _Atom(start, end, "year", year=int(g("q_y")), mod=q)
        y = int(g("q_my")) if g("q_my") else None
        return _Atom(start, end, "month", _month(g("q_m")), year=y, mod=q)
    if kind == "roll":
        n = _number(g("roll_n")) if g("roll_n") else 1
        return _Atom(start, end, "rolling", n=n, unit=g("roll_u").lower())
    if kind == "ago":
        return _Atom(start, end, "ago", n=_number(g("ago_n")), unit=g("ago_u").lower())
    if kind == "part":
        return _Atom(start, end, "part", mod=g("part_w").lower(), unit=g("part_u").lower())
    if kind == "rel":
        word = g("rel_w")
        if word == "Today" and not _sentence_start(text, start):  # "USA Today", "Today"
            return None
        first = word.split()[0].lower()
        offset = {"yesterday": -1, "tomorrow": 1}.get(first, -1 if first == "last" else 0)
        return _Atom(start, end, "rel", n=offset)
    if kind == "per":
        mod = {"coming": "next"}.get(g("per_mod").lower(), g("per_mod").lower())
        return _Atom(start, end, "period", mod=mod, unit=g("per_u").lower())
    if kind == "wd":
        return _weekday_atom(m, text, prev)
    if kind == "mon":
        mod = (g("mon_mod") or "").lower()
        nxt = _next_word(text, end)
        if not mod and nxt[:1].isupper() and nxt.lower() not in _MONTH_OR_DAY_NAMES:
            return None  # "August Wilson"
        weak = not mod and prev.lower() not in _DATE_PREPS
        mod = {"past": "last", "coming": "next"}.get(mod, mod)
        return _Atom(start, end, "month", _month(g("mon_m")), mod=mod, weak=weak)
    if kind == "yr":
        low = prev.lower()
        if low in _TOPIC_DETERMINERS or low.endswith(("'s", "’s", "s'")):
            return None  # "the 2024 election"
        after = text[end:end + 2].lstrip(" \t")
        strong = low in _DATE_PREPS or not after or after[0] in ",.;:!?)]\"”’'\n"
        return _Atom(start, end, "year", year=int(g("yr")), weak=not strong)
    return None


def _weekday_atom(m: re.Match[str], text: str, prev: str) -> _Atom | None:
    start, end = m.start(), m.end()
    mod = (m.group("wd_mod") or "").lower()
    part = m.group("wd_p") or ""
    nxt = _next_word(text, end)
    if _is_name(prev) or prev.lower() in ("every", "each"):
        return None  # "Black Friday", "Super Tuesday", "every Monday"
    if part[:1].isupper() or nxt in _TITLE_WORDS:
        return None  # "Sunday Times", "Monday Night Football"
    if re.search(r"\bMail\s+on\s+$", text[max(0, start - 12):start]):
        return None
    if not mod and prev.lower() != "on" and nxt[:1].isupper() \
            and nxt.lower() not in _MONTH_OR_DAY_NAMES:
        return None
    mod = {"past": "last", "coming": "next"}.get(mod, mod)
    return _Atom(start, end, "weekday", weekday=_WEEKDAYS.index(m.group("wd_n")[:3].lower()),
                 mod=mod)


def _groups(text: str, atoms: list[_Atom]) -> list[tuple[int, int, _Atom, _Atom | None]]:
    """Atoms with "between/from A and/to B" joined into one range."""
    out: list[tuple[int, int, _Atom, _Atom | None]] = []
    i = 0
    while i < len(atoms):
        a = atoms[i]
        if i + 1 < len(atoms):
            b = atoms[i + 1]
            opener = _RANGE_OPEN.search(text, max(0, a.start - 10), a.start)
            if opener and _RANGE_JOIN.fullmatch(text, a.end, b.start):
                out.append((opener.start(), b.end, a, b))
                i += 2
                continue
        out.append((a.start, a.end, a, None))
        i += 1
    return out


def _resolve_range(a: _Atom, b: _Atom, anchor: date | None,
                   tense: int) -> tuple[date, date] | None:
    """"between January and March 2024": January takes March's year."""
    end = _resolve(b, anchor, tense)
    if end is None:
        return None
    if a.kind in ("day", "month") and a.year is None and b.kind in ("day", "month") \
            and b.year is not None:
        year = b.year - ((a.month, a.day) > (b.month, b.day))
        start = _resolve(a, None, tense, year)
    elif a.kind in ("day", "month", "weekday") and a.year is None and anchor is not None:
        start = _resolve(a, min(anchor, end[0]), -1)  # the one before the range's end
    else:
        start = _resolve(a, anchor, tense)
    if start is None or start[0] > end[1]:
        return None
    return start[0], end[1]


def _resolve(a: _Atom, anchor: date | None, tense: int,
             year: int | None = None) -> tuple[date, date] | None:
    """The days an atom names; relative atoms need an anchor (the publication date)."""
    year = year if year is not None else a.year
    try:
        if a.kind == "year" and year is not None:
            return _year_part(year, a.mod)
        if a.kind == "day" and year is not None:
            d = date(year, a.month, a.day)
            return d, d
        if a.kind == "month" and year is not None:
            return _month_part(year, a.month, a.mod)
        if anchor is None:
            return None
        return _resolve_relative(a, anchor, tense)
    except (ValueError, OverflowError):
        logger.debug("date out of range: %r from %s", a, anchor)
        return None


def _resolve_relative(a: _Atom, p: date, tense: int) -> tuple[date, date] | None:
    if a.kind == "day":
        step = 1 if tense > 0 else -1
        for k in range(9):  # 29 Feb: up to eight years to the nearest leap year
            try:
                d = date(p.year + step * k, a.month, a.day)
            except ValueError:
                continue
            if (d >= p) if tense > 0 else (d <= p):
                return d, d
        return None
    if a.kind == "month":
        if a.mod == "last":
            y = p.year if a.month < p.month else p.year - 1
        elif a.mod == "next":
            y = p.year if a.month > p.month else p.year + 1
        elif a.mod == "this":
            y = p.year
        elif tense > 0:
            y = p.year if a.month >= p.month else p.year + 1
        else:
            y = p.year if a.month <= p.month else p.year - 1
        return _month_part(y, a.month, a.mod)
    if a.kind == "weekday":
        back = (p.weekday() - a.weekday) % 7  # 0..6 days to the latest on or before p
        ahead = (a.weekday - p.weekday()) % 7  # 0..6 days to the next on or after p
        if a.mod == "last":
            d = p - timedelta(days=back or 7)
        elif a.mod == "next" or (not a.mod and tense > 0):
            d = p + timedelta(days=ahead or 7)
        elif a.mod == "this" and tense > 0:
            d = p + timedelta(days=ahead)
        else:
            d = p - timedelta(days=back)
        return d, d
    if a.kind == "rel":
        d = p + timedelta(days=a.n)
        return d, d
    if a.kind == "period":
        k = {"last": -1, "this": 0, "next": 1}[a.mod]
        if a.unit in ("week", "weekend"):
            monday = p - timedelta(days=p.weekday()) + timedelta(weeks=k)
            if a.unit == "weekend":
                return monday + timedelta(days=5), monday + timedelta(days=6)
            return monday, monday + timedelta(days=6)
        if a.unit == "month":
            first = _add_months(p.replace(day=1), k)
            return first, _month_end(first.year, first.month)
        return date(p.year + k, 1, 1), date(p.year + k, 12, 31)
    if a.kind == "rolling":
        return _shift(p, -a.n, a.unit), p
    if a.kind == "ago":
        d = _shift(p, -a.n, a.unit)
        if a.unit == "month":
            return d.replace(day=1), _month_end(d.year, d.month)
        if a.unit == "year":
            return date(d.year, 1, 1), date(d.year, 12, 31)
        return d, d
    if a.kind == "part":
        if a.unit == "week":
            first, last = p - timedelta(days=p.weekday()), p + timedelta(days=6 - p.weekday())
        elif a.unit == "month":
            first, last = p.replace(day=1), _month_end(p.year, p.month)
        else:
            first, last = date(p.year, 1, 1), date(p.year, 12, 31)
        return (first, p) if a.mod == "earlier" else (p, last)
    return None


def _tense(text: str, start: int, end: int) -> int:
    """-1 past, 1 future, 0 unknown: the nearest tense cue in the expression's sentence.

    Nearest first, because "said on Monday it will strike" is a past Monday and "the
    strike that will begin on Monday" a future one.
    """
    lo = max(0, start - 300)
    s0 = lo
    for br in _SENTENCE_BREAK.finditer(text, lo, start):
        s0 = br.end()
    br = _SENTENCE_BREAK.search(text, end, end + 300)
    s1 = br.start() if br else min(len(text), end + 300)
    before = _TOKEN.findall(text[s0:start].lower())[-8:]
    after = _TOKEN.findall(text[end:s1].lower())[:8]
    for i in range(len(before) - 1, -1, -1):
        cue = _cue(before, i)
        if cue:
            return cue
    for i in range(len(after)):
        cue = _cue(after, i)
        if cue:
            return cue
    return 0


def _cue(tokens: list[str], i: int) -> int:
    w, prev = tokens[i], tokens[i - 1] if i else ""
    if w in _FUTURE_WORDS or w.endswith(("'ll", "’ll")) or (w == "to" and prev in _BEFORE_TO):
        return 1
    past = w in _PAST_WORDS or (len(w) > 4 and w.endswith("ed") and not w.endswith("eed")
                                and w not in _NOT_PAST)
    if past and prev not in ("be", "been", "being", "to"):  # "will be held": not a tense
        return -1
    return 0


def _prev_word(text: str, i: int) -> str:
    m = _PREV_WORD.search(text, max(0, i - 40), i)
    return m.group(1) if m else ""


def _next_word(text: str, j: int) -> str:
    m = _NEXT_WORD.match(text, j)
    return m.group(1) if m else ""


def _is_name(word: str) -> bool:
    """A capitalised word that is not a preposition or modifier: "Theresa" in "Theresa May"."""
    return word[:1].isupper() and word.lower() not in _FUNCTION_WORDS


def _sentence_start(text: str, i: int) -> bool:
    before = text[:i].rstrip(" \t")
    return not before or before[-1] in ".!?\n\"“‘'(:"


def _month(name: str) -> int:
    return _MONTH_ABBR.index(name[:3].title()) + 1


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS[word.lower()]


def _month_end(y: int, m: int) -> date:
    return date(y, m, calendar.monthrange(y, m)[1])


def _add_months(d: date, n: int) -> date:
    y, m = divmod(d.month - 1 + n, 12)
    y += d.year
    return date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


def _shift(d: date, n: int, unit: str) -> date:
    if unit == "day":
        return d + timedelta(days=n)
    if unit in ("week", "fortnight"):
        return d + timedelta(weeks=n * (2 if unit == "fortnight" else 1))
    return _add_months(d, n * (12 if unit == "year" else 1))


def _month_part(y: int, m: int, q: str) -> tuple[date, date]:
    """A month, or its early (1–10), mid (11–20) or late (21–end) part."""
    end = _month_end(y, m)
    if q == "early":
        return date(y, m, 1), date(y, m, 10)
    if q == "mid":
        return date(y, m, 11), date(y, m, 20)
    if q == "late":
        return date(y, m, 21), end
    return date(y, m, 1), end


def _year_part(y: int, q: str) -> tuple[date, date]:
    """A year, or its early (Jan–Apr), mid (May–Aug) or late (Sep–Dec) third."""
    first, last = {"early": (1, 4), "mid": (5, 8), "late": (9, 12)}.get(q, (1, 12))
    return date(y, first, 1), _month_end(y, last)


def _days_text(first: date, last: date) -> str:
    if first == last:
        return format_day(first)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}–{format_day(last)}"
    if first.year == last.year:
        return f"{first.day} {_MONTH_ABBR[first.month - 1]} – {format_day(last)}"
    return f"{format_day(first)} – {format_day(last)}"
