"""News-aware answers over the dated fixture corpus: event dates, date filters from the
question, "as of", the latest, timelines, and one story however many copies."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.stores import cli_env, make_settings

from ingest.pipeline import ingest
from rag.answer.assemble import by_recency, event_day
from rag.answer.engine import Engine
from rag.answer.request import Ask
from rag.answer.retrieve import Filters
from rag.dates.plan import anchor_day, plan, without_dates
from rag.store.articles import ArticleStore
from rag.store.metadata import chunk_dates
from rag.types import Answer, AppliedFilter, Citation, Passage, Related, TimelineEvent
from web.ui import render

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "eval" / "datasets" / "dated_news.jsonl"
JUNE = date(2025, 6, 30)


@pytest.fixture(scope="module")
def news(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    data = tmp_path_factory.mktemp("dated")
    settings = make_settings(data, collection="dated")
    store = ArticleStore(settings)
    report = ingest([str(CORPUS)], store, settings, progress=False)
    assert report.count("added") == 51, report.summary()
    articles = store.list_articles()
    by_url = {a.url: a for a in articles}
    return SimpleNamespace(settings=settings, store=store,
                           engine=Engine.from_settings(settings, store=store),
                           articles=articles, by_url=by_url, data=data)


def _url(news: SimpleNamespace, tail: str) -> str:
    found = [u for u in news.by_url if u and u.endswith(tail)]
    assert len(found) == 1, (tail, found)
    return found[0]


# -- dates in the text, stored per chunk ----------------------------------------------


def test_chunks_carry_the_days_they_speak_of(news: SimpleNamespace) -> None:
    ferry = news.by_url[_url(news, "/2025/04/30/ferry-runs-aground-off-tessel-island")]
    got = news.store.chunks.get(where={"article_id": ferry.id}, include=["metadatas"])
    # "on Monday evening" in an article of Wednesday 30 April 2025 is 28 April
    assert any("20250428-20250428" in m.get("dates", "") for m in got["metadatas"])
    assert chunk_dates("Nothing dated here.", date(2025, 4, 30)) == {"dates": ""}
    assert chunk_dates("It happened on Monday.", None) == {"dates": ""}  # no anchor, no guess


def test_date_filters_keep_what_cannot_be_ruled_out() -> None:
    march = Filters(when_from=date(2025, 3, 1), when_to=date(2025, 3, 31))
    assert march.match({"published_int": 20250315, "dates": ""})
    assert march.match({"published_int": 20250401, "dates": "20250328-20250328"})
    assert not march.match({"published_int": 20250401, "dates": "20250402-20250402"})
    assert march.match({"dates": ""})  # undated and naming no day: nothing rules it out
    assert not march.match({"dates": "20240101-20241231"})
    assert march.match({"published_int": 20250601})  # stored before dates were read
    week = Filters(when_from=date(2025, 5, 12), when_to=date(2025, 5, 18))
    assert not week.match({"published_int": 20250423, "dates": "20250501-20250531"})  # "May"
    assert week.match({"published_int": 20250423, "dates": "20250514-20250514"})
    since = Filters(when_from=date(2025, 4, 1))
    assert since.match({"published_int": 20250101, "dates": "20250301-20250430"})
    assert not Filters(as_of=date(2025, 3, 12)).match({"published_int": 20250313})
    assert Filters(as_of=date(2025, 3, 12)).match({"dates": ""})


# -- what a question asks of time ------------------------------------------------------


def test_the_day_questions_are_read_against() -> None:
    assert anchor_day(date(2025, 3, 1), date(2005, 12, 31))[0] == date(2025, 3, 1)
    day, note = anchor_day(None, date(2005, 12, 31), today=date(2026, 11, 28))
    assert day == date(2005, 12, 31) and "newest article" in note  # an archive
    assert anchor_day(None, date(2026, 11, 20), today=date(2026, 11, 28))[0] == date(
        2026, 11, 28)
    p = plan("What did Iran say about the corridor in 2024?", today=JUNE)
    assert (p.window.first, p.window.last) == (date(2024, 1, 1), date(2024, 12, 31))
    assert p.query == "What did Iran say about the corridor?"
    assert plan("What did the 2023 embassy attack lead to?", today=JUNE).window is None
    assert plan("What is the latest on the recall?").intent == "latest"
    assert plan("What is the current account deficit?").intent is None
    assert plan("How did relations between Iran and Azerbaijan develop?").intent == "timeline"
    assert plan("Timeline of the water contamination").intent == "timeline"
    assert plan("What did Quillon originally say about the recall?").wants_older


def test_a_date_in_the_question_becomes_a_filter_the_answer_shows(news: SimpleNamespace
                                                                  ) -> None:
    q = "What did the Velland foreign ministry say about the Hallen Gate crossing in March?"
    answer = news.engine.ask(Ask(q, as_of=JUNE))
    f = answer.date_filter
    assert f is not None and (f.first, f.last) == ("2025-03-01", "2025-03-31")
    assert f.phrase == "in March" and "30 Jun 2025" in f.anchor_note
    assert "hostile and unjustified" in answer.answer
    for c in answer.citations:
        assert c.published.startswith("2025-03") or (c.event_date or "").startswith("2025-03")
    unfiltered = news.engine.ask(Ask(q, as_of=JUNE, dates_narrow=False))
    assert unfiltered.date_filter is None
    topic = news.engine.ask(Ask("What did the 2023 flood inquiry find about the Hollin "
                                "treatment works?", as_of=JUNE))
    assert topic.date_filter is None  # a year that names a topic is no filter


def test_citations_show_the_day_a_sentence_speaks_of(news: SimpleNamespace) -> None:
    answer = news.engine.ask(Ask("When did the Tessel Star ferry run aground?", as_of=JUNE))
    assert answer.citations[0].event_date == "2025-04-28"
    assert answer.citations[0].event_text == "28 Apr 2025"
    assert event_day("The union met on Monday.", "2025-04-30") == ("2025-04-28", "28 Apr 2025")
    assert event_day("Prices rose in March.", "2025-04-30") == (None, "Mar 2025")
    assert event_day("No day here.", None) == (None, None)


def test_as_of_leaves_out_what_was_not_yet_published(news: SimpleNamespace) -> None:
    answer = news.engine.ask(Ask("What is the latest on the Kessling water outbreak?",
                                 as_of=date(2025, 3, 12)))
    assert answer.citations[0].url.endswith("kessling-water-illness-cases-climb-updated")
    assert "79" in answer.answer
    assert all(c.published is None or c.published <= "2025-03-12" for c in answer.citations)
    assert all(r.published is None or r.published <= "2025-03-12"
               for c in answer.citations for r in c.also_in)


def test_the_latest_is_the_newest_relevant_article(news: SimpleNamespace) -> None:
    answer = news.engine.ask(Ask("What is the latest on the Quillon Halo 5 battery recall?",
                                 as_of=JUNE))
    assert answer.citations[0].url.endswith("quillon-launches-redesigned-halo-5r-battery")
    passages = [Passage(chunk_id=f"{n}:v:0", article_id=str(n), text="t", start=0, end=1,
                        score=s, published=d)
                for n, s, d in ((1, 0.9, "2025-01-01"), (2, 0.8, "2025-06-01"),
                                (3, 0.3, "2025-07-01"))]
    assert [p.article_id for p in by_recency(passages)] == ["2", "1", "3"]


# -- one story, many copies ------------------------------------------------------------


def test_wire_copies_and_updates_are_one_story(news: SimpleNamespace) -> None:
    hallen = [news.by_url[_url(news, t)] for t in (
        "northernpost.vl/world/2025/03/15/drossmark-shuts-hallen-gate-to-freight-as-border-"
        "row-deepens", "coastlinewire.vl/world/2025/03/15/drossmark-closes-hallen-gate-border-"
        "crossing-to-lorries", "hallen-gate-closed-to-freight-after-tobacco-seizure")]
    assert len({a.story for a in hallen}) == 1
    ferry = [news.by_url[_url(news, t)] for t in (
        "/2025/04/30/ferry-runs-aground-off-tessel-island",
        "/2025/05/01/ferry-runs-aground-off-tessel-island-updated")]
    assert ferry[0].story == ferry[1].story
    assert hallen[0].story != ferry[0].story
    stories = {a.story for a in news.articles}
    assert 38 <= len(stories) <= 46  # 51 articles, 5 wire groups and 4 updates at most


def test_an_update_replaces_the_old_version_unless_the_older_is_asked_for(
        news: SimpleNamespace) -> None:
    answer = news.engine.ask(Ask("How many people were injured when the Tessel Star ran aground?",
                                 as_of=JUNE))
    assert "17" in answer.answer
    assert not any(c.url.endswith("/2025/04/30/ferry-runs-aground-off-tessel-island")
                   for c in answer.citations)
    first = answer.citations[0]
    assert [r.url for r in first.also_in] == [
        _url(news, "/2025/04/30/ferry-runs-aground-off-tessel-island")]
    older = news.engine.ask(Ask("How many people were initially reported injured when the "
                                "Tessel Star ran aground?", as_of=JUNE))
    assert any(c.url.endswith("/2025/04/30/ferry-runs-aground-off-tessel-island")
               for c in older.citations)


def test_copies_count_once_and_citations_name_the_others(news: SimpleNamespace) -> None:
    answer = news.engine.ask(Ask("When did Drossmark close the Hallen Gate crossing to freight?",
                                 as_of=JUNE))
    cited = answer.citations[0]
    assert len(cited.also_in) == 2 and cited.story
    retrieved_stories = [news.store.get_article(r.article_id).story for r in answer.retrieved]
    quotes = [c.quote for c in answer.citations]
    assert len(quotes) == len(set(quotes))
    assert retrieved_stories.count(cited.story) <= 4


# -- timelines -----------------------------------------------------------------------------


def test_a_timeline_is_dated_quoted_cited_and_in_order(news: SimpleNamespace) -> None:
    answer = news.engine.ask(Ask("How did the Hallen Gate border dispute between Velland and "
                                 "Drossmark develop?", as_of=JUNE))
    days = [e.date for e in answer.timeline]
    assert len(days) >= 4 and days == sorted(days)
    assert "2025-03-14" in days and "2025-05-14" in days
    by_n = {c.n: c for c in answer.citations}
    for event in answer.timeline:
        assert event.sentence in by_n[event.citation].quote  # verbatim, cited
    assert answer.answer.splitlines()[0].startswith(f"- {answer.timeline[0].date_text}: ")
    data = answer.to_json()
    assert data["timeline"][0].keys() >= {"date", "sentence", "citation"}


def test_a_timeline_keeps_to_the_dates_asked(news: SimpleNamespace) -> None:
    answer = news.engine.ask(Ask("How did the Port Alder strike develop in February?", as_of=JUNE))
    assert answer.date_filter is not None and answer.timeline
    assert all(e.date.startswith("2025-02") for e in answer.timeline)


def test_the_cli_answers_as_of_a_day_and_says_which_dates_it_searched(
        news: SimpleNamespace) -> None:
    args = [sys.executable, "-m", "rag", "ask", "--data-dir", str(news.data), "--collection",
            "dated", "--as-of", "2025-06-30"]
    proc = subprocess.run([*args, "What happened at Port Alder in May?"], cwd=ROOT,
                          env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "searched only passages about 1–31 May 2025" in proc.stderr
    assert "--no-date-filter" in proc.stderr
    proc = subprocess.run([*args, "--json", "Timeline of the Quillon Halo 5 battery recall"],
                          cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    timeline = json.loads(proc.stdout)["timeline"]
    assert len(timeline) >= 3 and [e["date"] for e in timeline] == sorted(
        e["date"] for e in timeline)
    bad = subprocess.run([*args[:-1], "2025-13-01", "Anything?"], cwd=ROOT, env=cli_env(),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--as-of" in bad.stderr


# -- the page ------------------------------------------------------------------------------


def test_the_page_shows_the_timeline_the_filter_and_the_other_copies() -> None:
    from rag.types import AnswerSentence

    citation = Citation(n=1, article_id="a", title="Crossing <closed>", quote="It shut.",
                        published="2025-03-15", event_text="14 Mar 2025",
                        also_in=[Related(article_id="b", title="Copy <b>", outlet="Wire",
                                         published="2025-03-15", url="https://x.vl/b")])
    answer = Answer(
        answer="- 14 Mar 2025: It shut. [1]",
        sentences=[AnswerSentence(text="It shut.", citations=[1], supported=True)],
        citations=[citation],
        timeline=[TimelineEvent(date="2025-03-14", date_text="14 Mar 2025",
                                sentence="It shut.", citation=1)],
        date_filter=AppliedFilter(first="2025-03-01", last="2025-03-31", phrase="in <March>",
                                  text="1–31 Mar 2025", anchor="2025-06-30",
                                  anchor_note="as of 30 Jun 2025"))
    html = render.answer_html(answer, "t1")
    assert '<ol class="rag-timeline">' in html and '<time class="rag-day" datetime=' \
        '"2025-03-14">14 Mar 2025</time>' in html
    assert "1–31 Mar 2025" in html and "in &lt;March&gt;" in html
    assert "about 14 Mar 2025" in html and "also in 1 other article" in html
    assert "Copy &lt;b&gt;" in html and "<b>Copy" not in html


def test_the_latest_falls_back_to_older_articles_when_the_newest_does_not_answer(
        tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", collection="latest")
    store = ArticleStore(settings)
    src = tmp_path / "bridge.jsonl"
    src.write_text("\n".join(json.dumps(x) for x in (
        {"title": "Builder chosen for Zorland bridge", "published": "2025-01-10",
         "outlet": "Wire", "url": "https://wire.vl/bridge-builder",
         "text": "The regional council chose Ostmark Builders to build the new Zorland bridge "
                 "over the Ems river, it said on Thursday. The contract is worth 40 million "
                 "crowns."},
        {"title": "Zorland bridge building starts", "published": "2025-03-02",
         "outlet": "Wire", "url": "https://wire.vl/bridge-opens",
         "text": "Building work on the Zorland bridge over the Ems river began on Saturday. "
                 "The company building the bridge expects to finish it by 2027."})) + "\n")
    ingest([str(src)], store, settings, progress=False)
    engine = Engine.from_settings(settings, store=store)
    newest = engine.ask(Ask("What is the latest on the Zorland bridge?", as_of=JUNE))
    assert newest.citations[0].url == "https://wire.vl/bridge-opens"
    # The picker sometimes answers from a passage that does not hold the fact; here it
    # is made to refuse the newest article, as it does when nothing there matches.
    real = engine.extractive.draft
    seen: list[set[str]] = []

    def draft(question: str, passages: list[Passage], window=None):  # noqa: ANN001, ANN202
        seen.append({p.url for p in passages})
        if seen[-1] == {"https://wire.vl/bridge-opens"}:
            from rag.types import Draft

            return Draft(refused=True)
            yield
        return (yield from real(question, passages, window))

    engine.extractive.draft = draft
    builder = engine.ask(Ask("What is the latest on which company is building the Zorland "
                             "bridge?", as_of=JUNE))
    assert seen[0] == {"https://wire.vl/bridge-opens"} and len(seen) == 2
    assert "https://wire.vl/bridge-builder" in seen[1]
    assert not builder.refused  # answered from the other articles, newest first


def test_the_export_keeps_the_timeline_the_filter_and_the_copies(news: SimpleNamespace) -> None:
    from rag.types import Turn
    from web.ui.export import conversation_markdown

    answer = news.engine.ask(Ask("How did the Port Alder strike develop in February?", as_of=JUNE))
    md = conversation_markdown([Turn(question="How did the strike develop?", result=answer)])
    first = answer.timeline[0]
    assert f"- **{first.date_text}**: " in md
    assert "Searched passages about 1–28 Feb 2025" in md
    copies = news.engine.ask(Ask("When did Drossmark close the Hallen Gate crossing to freight?",
                                 as_of=JUNE))
    md = conversation_markdown([Turn(question="When?", result=copies)])
    assert "Also in 2 other article(s)" in md and "about 14 Mar 2025" in md


def test_articles_stored_before_dates_and_stories_are_rewritten_on_re_ingest(
        tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", collection="upgrade")
    store = ArticleStore(settings)
    src = tmp_path / "port.txt"
    src.write_text("Port strike ends\n\nDockworkers voted on Monday to end their strike.\n")
    first = ingest([str(src)], store, settings, progress=False).results[0]
    # what an older version of this program stored: no story, no dates on the chunks
    store.articles.update(ids=[first.article_id], metadatas=[{"story": None}])
    got = store.chunks.get(where={"article_id": first.article_id}, include=["metadatas"])
    store.chunks.update(ids=got["ids"], metadatas=[{"dates": None}] * len(got["ids"]))
    assert store.get_article(first.article_id).story is None
    again = ingest([str(src)], store, settings, progress=False).results[0]
    assert again.status == "updated" and "before event dates" in " ".join(again.notes)
    assert store.get_article(first.article_id).story == first.article_id
    got = store.chunks.get(where={"article_id": first.article_id}, include=["metadatas"])
    assert all("dates" in m for m in got["metadatas"])
    third = ingest([str(src)], store, settings, progress=False).results[0]
    assert third.status == "unchanged"


def test_what_changed_since_shows_how_things_stood_before(news: SimpleNamespace) -> None:
    answer = news.engine.ask(Ask("What changed in the Hallen Gate dispute since April?",
                                 as_of=JUNE))
    assert answer.date_filter is not None and answer.date_filter.first == "2025-04-01"
    first, *rest = answer.timeline
    assert first.before and first.date < "2025-04-01"
    assert rest and all(not e.before and e.date >= "2025-04-01" for e in rest)
    assert answer.answer.splitlines()[0].startswith(f"- {first.date_text} (before): ")
    by_n = {c.n: c for c in answer.citations}
    assert first.sentence in by_n[first.citation].quote
    html = render.answer_html(answer, "t1")
    assert '<li class="rag-before">' in html and "rag-before-tag" in html
    plain = news.engine.ask(Ask("How did the Hallen Gate dispute develop since April?", as_of=JUNE))
    assert not any(e.before for e in plain.timeline)  # only "what changed" looks back


# -- the words a date filter applied are not asked of the answer -----------------------

# Our own small dated library: two Port Vellmar stories a year apart, one naming an
# earlier inquiry by its year, two distractors of 2024 and an undated explainer.
PORT_NEWS = [
    {"title": "Port Vellmar dockers walk out over pay", "published": "2024-03-12",
     "outlet": "Harbour Wire", "url": "https://harbourwire.vl/2024/03/12/vellmar-walkout",
     "text": "Dockers at Port Vellmar walked out on Tuesday after talks with the harbour "
             "board collapsed. The dockers' union demanded a nine percent pay rise and an "
             "end to rolling night shifts. Ships queued in the outer roads while the cranes "
             "stood idle. The harbour board said it would meet union officials again on "
             "Friday."},
    {"title": "Crane safety row at Port Vellmar", "published": "2023-05-04",
     "outlet": "Harbour Wire", "url": "https://harbourwire.vl/2023/05/04/vellmar-cranes",
     "text": "A crane collapsed on the eastern quay at Port Vellmar on Wednesday, injuring "
             "two workers. The dockers' union demanded an independent inspection of every "
             "crane on the quay. Union officials said the findings of the 2022 crane inquiry "
             "had been ignored by the harbour board."},
    {"title": "Oster valley grain harvest shrinks", "published": "2024-08-20",
     "outlet": "Harbour Wire", "url": "https://harbourwire.vl/2024/08/20/oster-harvest",
     "text": "Farmers in the Oster valley brought in a smaller grain harvest this summer. A "
             "dry spring cut yields by a fifth, the farmers' association said. Bread flour "
             "prices rose in local markets."},
    {"title": "Island ferry adds winter sailings", "published": "2024-11-02",
     "outlet": "Harbour Wire", "url": "https://harbourwire.vl/2024/11/02/ferry-winter",
     "text": "The island ferry line will add two winter sailings a week from December. The "
             "company said bookings had grown by a third since the spring."},
    {"title": "Who runs Port Vellmar", "outlet": "Harbour Wire",
     "url": "https://harbourwire.vl/explainers/who-runs-port-vellmar",
     "text": "Port Vellmar is run by a harbour board of nine members appointed by the "
             "city. The dockers' union demanded a seat on the harbour board for its "
             "members. The board sets berth fees and hires the pilots."},
]
DEMAND = "What did the dockers' union at Port Vellmar demand"
PAY = ("The dockers' union demanded a nine percent pay rise and an end to rolling night "
       "shifts.")
CRANES = "The dockers' union demanded an independent inspection of every crane on the quay."


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    data = tmp_path_factory.mktemp("port")
    settings = make_settings(data / "data", collection="port")
    store = ArticleStore(settings)
    src = data / "port.jsonl"
    src.write_text("\n".join(json.dumps(a) for a in PORT_NEWS) + "\n")
    report = ingest([str(src)], store, settings, progress=False)
    assert report.count("added") == len(PORT_NEWS), report.summary()
    return Engine.from_settings(settings, store=store)


@pytest.mark.parametrize(("question", "as_of", "first", "last", "quote"), [
    (f"{DEMAND} in 2024?", date(2025, 1, 15), "2024-01-01", "2024-12-31", PAY),
    (f"{DEMAND} in 2023?", date(2025, 1, 15), "2023-01-01", "2023-12-31", CRANES),
    ("In 2024, what did the dockers' union at Port Vellmar demand?", date(2025, 1, 15),
     "2024-01-01", "2024-12-31", PAY),
    (f"{DEMAND} since 2024?", date(2025, 1, 15), "2024-01-01", None, PAY),
    (f"{DEMAND} in March 2024?", date(2025, 1, 15), "2024-03-01", "2024-03-31", PAY),
    (f"{DEMAND} in March?", date(2024, 6, 1), "2024-03-01", "2024-03-31", PAY),
    (f"{DEMAND} last week?", date(2024, 3, 19), "2024-03-11", "2024-03-17", PAY),
    (f"{DEMAND} last month?", date(2024, 4, 10), "2024-03-01", "2024-03-31", PAY),
    (f"{DEMAND} last year?", date(2025, 1, 15), "2024-01-01", "2024-12-31", PAY),
], ids=["year", "another-year", "year-first", "since-year", "month-year", "month",
        "last-week", "last-month", "last-year"])
def test_the_dates_a_filter_applied_are_no_words_the_answer_must_hold(
        port: Engine, question: str, as_of: date, first: str, last: str | None,
        quote: str) -> None:
    """The articles of 2024 don't say "2024" (nor "March", nor "last week"): once the
    question's dates are the filter, the answer is the plain sentence that answers it.
    (Before, the extractive answer refused: no passage held the year or the month.)"""
    answer = port.ask(Ask(question, as_of=as_of, mode="extractive"))
    f = answer.date_filter
    assert f is not None and (f.first, f.last) == (first, last)
    assert not answer.refused, answer.answer
    assert quote in [s.text for s in answer.sentences]
    other_year = CRANES if quote == PAY else PAY
    assert other_year not in answer.answer  # the filter left that article out


def test_a_passage_kept_only_as_undated_must_still_hold_the_year(port: Engine) -> None:
    """The filter keeps an undated passage that names no day (nothing rules it out) but
    has not checked its dates: the year asked is still a word it must hold, or an
    undated library would answer a question about any year."""
    answer = port.ask(Ask(f"{DEMAND} in 2021?", as_of=date(2025, 1, 15), mode="extractive"))
    assert answer.date_filter is not None and answer.date_filter.first == "2021-01-01"
    assert answer.retrieved and all("explainers" in (r.url or "") for r in answer.retrieved)
    assert answer.refused


def test_a_year_naming_a_topic_is_still_a_word_the_answer_must_hold(port: Engine) -> None:
    named = port.ask(Ask("What did the dockers' union say about the 2022 crane inquiry?",
                         as_of=date(2025, 1, 15), mode="extractive"))
    assert named.date_filter is None and not named.refused
    assert any("2022 crane inquiry" in s.text for s in named.sentences)
    unknown = port.ask(Ask("What did the dockers' union say about the 2019 crane inquiry?",
                           as_of=date(2025, 1, 15), mode="extractive"))
    assert unknown.date_filter is None and unknown.refused  # no article names 2019's


def test_without_dates_drops_the_phrase_the_filter_came_from() -> None:
    def undated(question: str) -> str:
        window = plan(question, today=JUNE).window
        assert window is not None
        return without_dates(question, window)

    assert undated(f"{DEMAND} in 2024?") == f"{DEMAND}?"
    assert undated("In March 2024, what did the union demand?") == "What did the union demand?"
    assert undated("What did the union demand last week?") == "What did the union demand?"
    assert undated("What has Iran's 2024 budget done since March?") == (
        "What has Iran's 2024 budget done?")
    window = plan("What happened in 2024?", today=JUNE).window
    assert window is not None and without_dates("And the port?", window) == "And the port?"
