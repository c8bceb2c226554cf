"""Dates in article text and questions: what "on Monday" means, and which dates a question asks."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.dates.parse import (
    DateFilter,
    format_day,
    format_range,
    question_dates,
    resolve_dates,
    strip_dates,
)

WED = date(2025, 4, 30)  # a Wednesday
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


def spans(text: str, published: date | None = WED) -> list[tuple[str, date, date]]:
    return [(m.phrase, m.first, m.last) for m in resolve_dates(text, published)]


def one(text: str, published: date | None = WED) -> tuple[date, date]:
    found = resolve_dates(text, published)
    assert len(found) == 1, found
    return found[0].first, found[0].last


def day(y: int, m: int, d: int) -> tuple[date, date]:
    return date(y, m, d), date(y, m, d)


# --- weekdays -------------------------------------------------------------------------------

def test_on_monday_in_a_wednesday_article_is_the_monday_just_gone() -> None:
    assert spans("The minister said on Monday that talks had failed.") == [
        ("on Monday", date(2025, 4, 28), date(2025, 4, 28))]


@pytest.mark.parametrize(("text", "published", "expected"), [
    ("Talks collapsed on Monday.", date(2025, 4, 28), day(2025, 4, 28)),  # same day
    ("Talks collapsed last Monday.", date(2025, 4, 28), day(2025, 4, 21)),
    ("Talks collapsed last Friday.", date(2025, 4, 25), day(2025, 4, 18)),
    ("Talks collapsed last Friday.", WED, day(2025, 4, 25)),
    ("Talks collapsed this Tuesday.", WED, day(2025, 4, 29)),
    ("Talks collapsed Sunday night.", date(2025, 4, 28), day(2025, 4, 27)),
    ("Talks collapsed this past Monday.", WED, day(2025, 4, 28)),
    ("Talks resume next Wednesday.", WED, day(2025, 5, 7)),
    ("Monday's vote was close.", WED, day(2025, 4, 28)),
])
def test_weekdays(text: str, published: date, expected: tuple[date, date]) -> None:
    assert one(text, published) == expected


@pytest.mark.parametrize("text", [
    "The union will strike on Monday.",
    "The strike, which is due to begin on Monday, was called off.",
    "Ministers are expected to meet on Monday.",
    "The company plans to announce cuts on Monday.",
    "The vote will be held on Monday.",
    "The board is to decide on Monday.",
])
def test_a_weekday_in_a_future_sentence_is_the_next_one(text: str) -> None:
    assert one(text) == day(2025, 5, 5)


def test_future_weekday_on_that_weekday_is_a_week_later() -> None:
    assert one("The court will rule on Wednesday.", WED) == day(2025, 5, 7)


def test_the_nearest_tense_cue_wins() -> None:
    # "said" is nearer than "will": the Monday is when it was said.
    assert one("The union said on Monday it will strike.") == day(2025, 4, 28)
    assert one("On Monday, the minister said talks would resume.") == day(2025, 4, 28)
    assert one("The strike that will begin on Monday was announced.") == day(2025, 5, 5)


def test_named_days_and_titles_are_not_weekdays() -> None:
    text = ("The Sunday Times and the Mail on Sunday reported Black Friday sales, "
            "Super Tuesday results and Monday Night Football ratings. Shops open every Monday.")
    assert spans(text) == []


# --- relative days, weeks, months, years ------------------------------------------------------

@pytest.mark.parametrize(("phrase", "expected"), [
    ("yesterday", day(2025, 4, 29)),
    ("yesterday afternoon", day(2025, 4, 29)),
    ("today", day(2025, 4, 30)),
    ("this morning", day(2025, 4, 30)),
    ("this afternoon", day(2025, 4, 30)),
    ("this evening", day(2025, 4, 30)),
    ("tonight", day(2025, 4, 30)),
    ("last night", day(2025, 4, 29)),
    ("tomorrow", day(2025, 5, 1)),
    ("last week", (date(2025, 4, 21), date(2025, 4, 27))),
    ("this week", (date(2025, 4, 28), date(2025, 5, 4))),
    ("next week", (date(2025, 5, 5), date(2025, 5, 11))),
    ("last weekend", (date(2025, 4, 26), date(2025, 4, 27))),
    ("last month", (date(2025, 3, 1), date(2025, 3, 31))),
    ("this month", (date(2025, 4, 1), date(2025, 4, 30))),
    ("next month", (date(2025, 5, 1), date(2025, 5, 31))),
    ("last year", (date(2024, 1, 1), date(2024, 12, 31))),
    ("this year", (date(2025, 1, 1), date(2025, 12, 31))),
    ("next year", (date(2026, 1, 1), date(2026, 12, 31))),
    ("two weeks ago", day(2025, 4, 16)),
    ("2 weeks ago", day(2025, 4, 16)),
    ("three days ago", day(2025, 4, 27)),
    ("a fortnight ago", day(2025, 4, 16)),
    ("twelve days ago", day(2025, 4, 18)),
    ("three months ago", (date(2025, 1, 1), date(2025, 1, 31))),
    ("two years ago", (date(2023, 1, 1), date(2023, 12, 31))),
    ("earlier this month", (date(2025, 4, 1), date(2025, 4, 30))),
    ("earlier this year", (date(2025, 1, 1), date(2025, 4, 30))),
    ("later this year", (date(2025, 4, 30), date(2025, 12, 31))),
    ("the past week", (date(2025, 4, 23), date(2025, 4, 30))),
    ("the last three months", (date(2025, 1, 30), date(2025, 4, 30))),
])
def test_relative_expressions(phrase: str, expected: tuple[date, date]) -> None:
    text = f"It happened {phrase}, officials said."
    (found,) = resolve_dates(text, WED)
    assert (found.phrase, found.first, found.last) == (phrase, *expected)


def test_last_week_across_the_year_boundary() -> None:
    assert one("Prices fell last week.", date(2025, 1, 1)) == (date(2024, 12, 23),
                                                              date(2024, 12, 29))
    assert one("Prices fell this week.", date(2025, 1, 1)) == (date(2024, 12, 30),
                                                              date(2025, 1, 5))


def test_week_boundaries_on_sunday_and_monday() -> None:
    sunday, monday = date(2025, 4, 27), date(2025, 4, 28)
    assert one("Prices fell this week.", sunday) == (date(2025, 4, 21), sunday)
    assert one("Prices fell last week.", sunday) == (date(2025, 4, 14), date(2025, 4, 20))
    assert one("Prices fell last week.", monday) == (date(2025, 4, 21), sunday)
    assert one("Prices fell yesterday.", monday) == day(2025, 4, 27)


def test_last_month_on_the_first_of_march() -> None:
    assert one("Sales fell last month.", date(2025, 3, 1)) == (date(2025, 2, 1),
                                                              date(2025, 2, 28))
    assert one("Sales fell last month.", date(2024, 3, 1)) == (date(2024, 2, 1),
                                                              date(2024, 2, 29))
    assert one("Sales fell last month.", date(2025, 1, 15)) == (date(2024, 12, 1),
                                                               date(2024, 12, 31))


# --- months without a year --------------------------------------------------------------------

def test_in_december_in_a_january_article_is_the_previous_december() -> None:
    assert one("Sales fell in December.", date(2025, 1, 10)) == (date(2024, 12, 1),
                                                                date(2024, 12, 31))


def test_a_month_in_a_future_sentence_is_the_next_one() -> None:
    assert one("The election will be held in March.", WED) == (date(2026, 3, 1),
                                                              date(2026, 3, 31))
    assert one("The election will be held in April.", WED) == (date(2025, 4, 1),
                                                              date(2025, 4, 30))
    assert one("The talks began in April.", WED) == (date(2025, 4, 1), date(2025, 4, 30))


@pytest.mark.parametrize(("phrase", "expected"), [
    ("on 3 February", day(2025, 2, 3)),
    ("on the 3rd of February", day(2025, 2, 3)),
    ("February 3", day(2025, 2, 3)),
    ("on Feb. 3", day(2025, 2, 3)),
    ("on 3 May", day(2024, 5, 3)),  # past: the 3 May before publication
    ("early March", (date(2025, 3, 1), date(2025, 3, 10))),
    ("mid-March", (date(2025, 3, 11), date(2025, 3, 20))),
    ("late March", (date(2025, 3, 21), date(2025, 3, 31))),
    ("in late February", (date(2025, 2, 21), date(2025, 2, 28))),
    ("last March", (date(2025, 3, 1), date(2025, 3, 31))),
    ("since January", (date(2025, 1, 1), date(2025, 1, 31))),
])
def test_months_and_days_without_a_year(phrase: str, expected: tuple[date, date]) -> None:
    (found,) = resolve_dates(f"Officials met {phrase}, a report said.", WED)
    assert phrase.endswith(found.phrase.split()[-1])
    assert (found.first, found.last) == expected


def test_leap_day_without_a_year_is_the_last_29_february() -> None:
    assert one("The law passed on 29 February.", WED) == day(2024, 2, 29)
    assert one("The law passed on 29 February.", date(2024, 2, 28)) == day(2020, 2, 29)


def test_leap_years() -> None:
    leap = date(2024, 2, 29)
    assert one("It happened on 29 February 2024.", None) == day(2024, 2, 29)
    assert spans("It happened on 29 February 2023.") == []  # no such day
    assert one("Prices fell yesterday.", date(2024, 3, 1)) == day(2024, 2, 29)
    assert one("Prices fell in February.", leap) == (date(2024, 2, 1), leap)
    assert one("Prices fell in February 2024.", None) == (date(2024, 2, 1), leap)
    assert one("Prices rose the past year.", leap) == (date(2023, 2, 28), leap)
    assert one("Prices rose a year ago.", leap) == (date(2023, 1, 1), date(2023, 12, 31))


# --- absolute dates ---------------------------------------------------------------------------

@pytest.mark.parametrize(("phrase", "expected"), [
    ("14 March 2025", day(2025, 3, 14)),
    ("14th March 2025", day(2025, 3, 14)),
    ("March 14, 2025", day(2025, 3, 14)),
    ("March 14 2025", day(2025, 3, 14)),
    ("Friday 14 March 2025", day(2025, 3, 14)),
    ("Friday, March 14, 2025", day(2025, 3, 14)),
    ("2025-03-14", day(2025, 3, 14)),
    ("14 Mar 2025", day(2025, 3, 14)),
    ("March 2025", (date(2025, 3, 1), date(2025, 3, 31))),
    ("Sept 2024", (date(2024, 9, 1), date(2024, 9, 30))),
    ("in 2024", (date(2024, 1, 1), date(2024, 12, 31))),
    ("early 2024", (date(2024, 1, 1), date(2024, 4, 30))),
    ("late 2024", (date(2024, 9, 1), date(2024, 12, 31))),
    ("mid-March 2024", (date(2024, 3, 11), date(2024, 3, 20))),
])
def test_absolute_dates_need_no_publication_date(phrase: str,
                                                 expected: tuple[date, date]) -> None:
    text = f"The report was published {phrase}, officials said."
    for published in (WED, None):
        (found,) = resolve_dates(text, published)
        assert (found.phrase, found.first, found.last) == (phrase, *expected)


def test_year_ranges_and_bare_years() -> None:
    assert spans("Prices doubled between 2020 and 2023.") == [
        ("between 2020 and 2023", date(2020, 1, 1), date(2023, 12, 31))]
    assert spans("Prices rose from January to March 2024.", None) == [
        ("from January to March 2024", date(2024, 1, 1), date(2024, 3, 31))]
    assert spans("Prices rose from November to February 2024.", None) == [
        ("from November to February 2024", date(2023, 11, 1), date(2024, 2, 29))]
    assert spans("It has not rained since 2023.") == [
        ("2023", date(2023, 1, 1), date(2023, 12, 31))]
    assert spans("Figures for 2024.") == [("2024", date(2024, 1, 1), date(2024, 12, 31))]


def test_topic_years_are_not_dates() -> None:
    text = ("The 2023 flood inquiry, the 2024 election, its 2022 report and Iran's 2024 "
            "budget were discussed before the 2022 World Cup. Some 2024 people attended.")
    assert spans(text) == []
    assert spans("Turnout in the 2024 election fell, as it did in 2019.") == [
        ("in 2019", date(2019, 1, 1), date(2019, 12, 31))]


def test_without_a_publication_date_only_absolute_dates_are_kept() -> None:
    text = ("On Monday the minister said that in March 2025, and again on 14 March 2025, "
            "prices rose, as they had last year, two weeks ago, in January and in 2024.")
    assert [m.phrase for m in resolve_dates(text, None)] == [
        "in March 2025", "on 14 March 2025", "in 2024"]
    assert len(resolve_dates(text, WED)) == 7


# --- false positives --------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "Theresa May said prices may rise.",
    "Theresa May 2019 speech was quoted.",
    "Protesters march through the city.",
    "March on Washington organisers met.",
    "He visited the August Wilson theatre in August Wilson's home town.",
    "The Sunday Times said so.",
    "We spoke to USA Today about the Today programme.",
    "About 10,000 people and 300 soldiers were there; 45% agreed.",
    "The model scored 3.14 points, up 12 from 2.5.",
    "Shops open every Sunday.",
    "Revenue was £2024 million.",
    "He was born in the 1990s.",
    "the 2023-24 season",
])
def test_not_dates(text: str) -> None:
    assert spans(text) == []


def test_may_and_march_as_months_still_count() -> None:
    assert [m.phrase for m in resolve_dates(
        "Theresa May said in May that marchers would march on 3 March.", WED)] == [
        "in May", "on 3 March"]


def test_spans_index_the_text() -> None:
    text = "Yesterday, officials said that on Monday, 28 April, and in 2024 prices rose."
    for m in resolve_dates(text, WED):
        assert text[m.start:m.end] == m.phrase
    assert [m.phrase for m in resolve_dates(text, WED)] == [
        "Yesterday", "on Monday, 28 April", "in 2024"]


# --- questions --------------------------------------------------------------------------------

def q(question: str, today: date = WED) -> tuple[date | None, date | None, str] | None:
    f = question_dates(question, today)
    return None if f is None else (f.first, f.last, f.phrase)


@pytest.mark.parametrize(("question", "expected"), [
    ("What did Iran say about the corridor in 2024?",
     (date(2024, 1, 1), date(2024, 12, 31), "in 2024")),
    ("What happened in March?", (date(2025, 3, 1), date(2025, 3, 31), "in March")),
    ("What happened in April?", (date(2025, 4, 1), date(2025, 4, 30), "in April")),
    ("What happened in May?", (date(2024, 5, 1), date(2024, 5, 31), "in May")),
    ("what happened in march 2024", (date(2024, 3, 1), date(2024, 3, 31), "in march 2024")),
    ("What has happened since March?", (date(2025, 3, 1), None, "since March")),
    ("What has happened since 2023?", (date(2023, 1, 1), None, "since 2023")),
    ("What happened after the 5th of May?", (date(2024, 5, 6), None, "after the 5th of May")),
    ("What happened before 2024?", (None, date(2023, 12, 31), "before 2024")),
    ("What happened before March?", (None, date(2025, 2, 28), "before March")),
    ("What was agreed until March 2024?", (None, date(2024, 3, 31), "until March 2024")),
    ("What was agreed up to 2023?", (None, date(2023, 12, 31), "up to 2023")),
    ("What happened between January and March?",
     (date(2025, 1, 1), date(2025, 3, 31), "between January and March")),
    ("What happened between November and February?",
     (date(2024, 11, 1), date(2025, 2, 28), "between November and February")),
    ("What happened last week?", (date(2025, 4, 21), date(2025, 4, 27), "last week")),
    ("What happened last month?", (date(2025, 3, 1), date(2025, 3, 31), "last month")),
    ("What happened last year?", (date(2024, 1, 1), date(2024, 12, 31), "last year")),
    ("What happened this week?", (date(2025, 4, 28), date(2025, 5, 4), "this week")),
    ("What happened this month?", (date(2025, 4, 1), date(2025, 4, 30), "this month")),
    ("What happened this year?", (date(2025, 1, 1), date(2025, 12, 31), "this year")),
    ("What happened yesterday?", (date(2025, 4, 29), date(2025, 4, 29), "yesterday")),
    ("What happened today?", (WED, WED, "today")),
    ("What happened in the past 3 days?", (date(2025, 4, 27), WED, "in the past 3 days")),
    ("What happened over the past two weeks?",
     (date(2025, 4, 16), WED, "over the past two weeks")),
    ("What happened in the last 2 months?", (date(2025, 2, 28), WED, "in the last 2 months")),
    ("What was said on 3 March?", (date(2025, 3, 3), date(2025, 3, 3), "on 3 March")),
    ("What was said on Monday?", (date(2025, 4, 28), date(2025, 4, 28), "on Monday")),
    ("What was said on Wednesday?", (WED, WED, "on Wednesday")),
    ("What was said on 14 March 2024?", (date(2024, 3, 14), date(2024, 3, 14),
                                         "on 14 March 2024")),
])
def test_question_filters(question: str,
                          expected: tuple[date | None, date | None, str]) -> None:
    assert q(question) == expected


@pytest.mark.parametrize("question", [
    "What did the 2023 embassy attack lead to?",
    "Who won the 2024 election?",
    "What happened at the 2022 World Cup?",
    "What has happened recently in Gaza?",
    "What has Iran said lately?",
    "Why did protesters march?",
    "What may happen next?",
    "What did Theresa May say about Brexit?",
    "How many people died?",
])
def test_questions_without_a_date_filter(question: str) -> None:
    assert question_dates(question, WED) is None


def test_question_month_in_the_current_month_is_this_month() -> None:
    assert q("What happened in March?", date(2025, 3, 2)) == (
        date(2025, 3, 1), date(2025, 3, 31), "in March")
    assert q("What happened in March?", date(2025, 2, 27)) == (
        date(2024, 3, 1), date(2024, 3, 31), "in March")


@pytest.mark.parametrize(("question", "stripped"), [
    ("What did Iran say about the corridor in 2024?", "What did Iran say about the corridor?"),
    ("In 2024, what did Iran say?", "What did Iran say?"),
    ("What happened last week in Gaza?", "What happened in Gaza?"),
    ("What did they agree to in 2024?", "What did they agree to?"),
    ("What was reported at last week's summit?", "What was reported at summit?"),
    ("Who resigned between January and March 2024 and why?", "Who resigned and why?"),
    ("Any news from Kyiv yesterday?", "Any news from Kyiv?"),
    ("What did the minister say about March 2024?", "What did the minister say?"),
])
def test_strip_dates(question: str, stripped: str) -> None:
    f = question_dates(question, WED)
    assert f is not None
    assert question[f.start:f.end] == f.phrase
    assert strip_dates(question, f) == stripped


def test_describe() -> None:
    march = question_dates("news in March?", WED)
    assert march is not None and march.describe() == "1–31 Mar 2025"
    assert DateFilter(date(2025, 4, 1), None, "since April", 0, 11).describe() == (
        "since 1 Apr 2025")
    assert DateFilter(None, date(2023, 12, 31), "before 2024", 0, 11).describe() == (
        "before 1 Jan 2024")
    assert DateFilter(date(2025, 3, 3), date(2025, 3, 3), "", 0, 0).describe() == "3 Mar 2025"
    assert DateFilter(date(2024, 12, 30), date(2025, 1, 5), "", 0, 0).describe() == (
        "30 Dec 2024 – 5 Jan 2025")
    assert DateFilter(date(2025, 4, 28), date(2025, 5, 4), "", 0, 0).describe() == (
        "28 Apr – 4 May 2025")


# --- formatting -------------------------------------------------------------------------------

def test_format_day() -> None:
    assert format_day(date(2025, 4, 28)) == "28 Apr 2025"
    assert format_day(date(2025, 4, 5)) == "5 Apr 2025"


@pytest.mark.parametrize(("first", "last", "text"), [
    (date(2025, 4, 28), date(2025, 4, 28), "28 Apr 2025"),
    (date(2025, 4, 1), date(2025, 4, 30), "Apr 2025"),
    (date(2024, 2, 1), date(2024, 2, 29), "Feb 2024"),
    (date(2024, 1, 1), date(2024, 12, 31), "2024"),
    (date(2020, 1, 1), date(2023, 12, 31), "2020–2023"),
    (date(2025, 1, 1), date(2025, 3, 31), "Jan–Mar 2025"),
    (date(2024, 11, 1), date(2025, 2, 28), "Nov 2024 – Feb 2025"),
    (date(2025, 4, 21), date(2025, 4, 27), "21–27 Apr 2025"),
    (date(2025, 4, 28), date(2025, 5, 4), "28 Apr – 4 May 2025"),
    (date(2024, 12, 30), date(2025, 1, 5), "30 Dec 2024 – 5 Jan 2025"),
])
def test_format_range(first: date, last: date, text: str) -> None:
    assert format_range(first, last) == text


# --- properties -------------------------------------------------------------------------------

published_dates = st.dates(min_value=date(1950, 1, 1), max_value=date(2099, 12, 31))


@given(published_dates, st.integers(0, 6))
def test_last_weekday_is_one_to_seven_days_before(published: date, wd: int) -> None:
    first, last = one(f"Officials met last {WEEKDAYS[wd]}.", published)
    assert first == last
    assert 1 <= (published - first).days <= 7
    assert first.weekday() == wd


@given(published_dates, st.integers(0, 6))
def test_weekday_tense(published: date, wd: int) -> None:
    past, _ = one(f"Officials met on {WEEKDAYS[wd]}.", published)
    future, _ = one(f"Officials will meet on {WEEKDAYS[wd]}.", published)
    assert 0 <= (published - past).days <= 6 and past.weekday() == wd
    assert 1 <= (future - published).days <= 7 and future.weekday() == wd


@given(published_dates, st.integers(0, 11))
def test_question_month_is_the_latest_up_to_today(today: date, month: int) -> None:
    f = question_dates(f"What happened in {MONTHS[month]}?", today)
    assert f is not None and f.first is not None and f.last is not None
    assert f.first.month == month + 1 and f.first.day == 1
    assert f.first <= today < f.first + timedelta(days=366)
    assert (f.last + timedelta(days=1)).day == 1


@given(published_dates, st.integers(1, 12), st.sampled_from(["day", "week", "month"]))
def test_ago_is_before_publication(published: date, n: int, unit: str) -> None:
    first, last = one(f"It started {n} {unit}s ago.", published)
    assert first <= last < published


_FRAGMENTS = ["on Monday", "last Friday", "yesterday", "in March", "14 March 2025", "2025-03-14",
              "the 2024 election", "in 2024", "two weeks ago", "last week", "Theresa May",
              "protesters march", "between January and March 2024", "early May", "tonight",
              "said", "will", "officials", "prices rose", ",", ".", "\n", "  "]


@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=12), st.one_of(st.none(), published_dates))
def test_mentions_index_their_phrase_in_order(parts: list[str], published: date | None) -> None:
    text = " ".join(parts)
    mentions = resolve_dates(text, published)
    previous_end = 0
    for m in mentions:
        assert text[m.start:m.end] == m.phrase
        assert m.first <= m.last
        assert m.start >= previous_end
        previous_end = m.end


@given(st.text(max_size=200), published_dates)
def test_any_text_is_safe(text: str, published: date) -> None:
    for m in resolve_dates(text, published):
        assert text[m.start:m.end] == m.phrase and m.first <= m.last
    f = question_dates(text, published)
    if f is not None:
        assert text[f.start:f.end] == f.phrase
        strip_dates(text, f)
