"""Near-duplicate grouping: wire copies and updates join one story, same-topic stories don't."""

from __future__ import annotations

import json
import random
from datetime import date
from itertools import combinations
from pathlib import Path

import pytest

from eval.bench_grouping import (
    ground_truth,
    ingest_labels,
    load_corpus,
    pairwise,
    similar_pairs,
    versions_truth,
)
from eval.minhash_stories import StoryIndex, from_signature, lsh_bands, signature
from ingest.grouping import SHINGLE_SIZE, shingles
from rag.answer.settle import Record, supersedes

BBC = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "bbc"

RATES = [
    "The Bank of England has raised interest rates to 4.75%, the first rise in eight months, "
    "as policymakers moved to cool a housing market that shows few signs of slowing.",
    "The nine members of the Monetary Policy Committee voted seven to two in favour of the "
    "quarter-point increase, according to minutes published on Wednesday.",
    "Governor Mervyn King said the decision reflected concern that strong consumer spending "
    "and rising import prices would push inflation above its 2% target next year.",
    "House prices rose 1.2% in January alone, the Nationwide building society said last week, "
    "and mortgage approvals reached their highest level since the summer of 2003.",
    "Retailers reacted angrily, warning that higher borrowing costs would hit sales in the "
    "crucial spring season and could cost thousands of jobs in the high street.",
    "The British Retail Consortium said its members had already endured the weakest "
    "Christmas trading period for more than a decade and could not absorb further pressure.",
    "Economists were divided over whether further increases would follow, with several "
    "City analysts predicting that rates would peak at 5% before the end of the summer.",
    "Manufacturers, who have struggled with a strong pound, said the move would make their "
    "exports less competitive and urged the Bank to hold rates for the rest of the year.",
    "The Treasury declined to comment on the decision, saying that setting rates was a "
    "matter for the independent committee under the framework established in 1997.",
    "The pound rose half a cent against the dollar after the announcement, while shares in "
    "housebuilders fell sharply on fears that demand for new homes would weaken.",
]

# Same topic, same names, written independently: must stay a separate story.
RATES_OTHER = [
    "Interest rates have been left unchanged at 4.75% by the Bank of England for the sixth "
    "month running, despite pressure from retailers for a cut.",
    "The Monetary Policy Committee said inflation was close to its 2% target and that the "
    "housing market had cooled since the autumn.",
    "Mervyn King, the Bank's governor, has warned that consumer spending remains fragile "
    "and that the outlook for the high street is uncertain.",
    "The British Retail Consortium had called for a quarter-point reduction, saying its "
    "members faced their toughest spring in years.",
    "City analysts had widely expected the decision, and the pound was little changed "
    "against the dollar and the euro after the announcement.",
    "Manufacturers welcomed the pause but said exporters still needed relief from the "
    "strength of sterling, which has hurt orders from Europe.",
    "The Treasury said it would not comment on the decisions of the independent committee.",
]

FOOTBALL = [
    "Chelsea moved eight points clear at the top of the Premiership with a 2-0 win over "
    "Everton at Stamford Bridge on Saturday afternoon.",
    "Arjen Robben opened the scoring after 20 minutes and Eidur Gudjonsson added a second "
    "shortly after half-time to seal a comfortable victory.",
    "Manager Jose Mourinho praised his side's discipline and said the title race was far "
    "from over with fourteen games still to play.",
]


def text(paragraphs: list[str]) -> str:
    return "\n\n".join(paragraphs)


def same_story(*texts: str, threshold: float | None = None) -> bool:
    records = [(f"a{i}", signature(t)) for i, t in enumerate(texts)]
    index = StoryIndex(records) if threshold is None else StoryIndex(records, threshold)
    return len(index.groups()) == 1


def exact_jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


ORIGINAL = text(RATES)


def test_wire_copies_with_small_edits_group_with_the_original() -> None:
    changed_sentence = RATES.copy()
    changed_sentence[4] = ("Retail groups said the rise was badly timed and would deter "
                           "shoppers at the start of the spring season.")
    trimmed = RATES[:8]  # an outlet cut the last two paragraphs
    new_intro = ["Borrowing costs in the UK rose on Thursday after the Bank of England "
                 "increased rates by a quarter point to 4.75%."] + RATES[1:]
    restyled = ORIGINAL.upper().replace(",", " ,").replace("\n\n", "  ")  # formatting only
    for copy in (changed_sentence, trimmed, new_intro):
        assert same_story(ORIGINAL, text(copy)), copy[0]
    assert same_story(ORIGINAL, restyled)
    assert exact_jaccard(ORIGINAL, restyled) == 1.0


def test_an_updated_version_with_changed_figures_groups_with_its_original() -> None:
    updated = (ORIGINAL.replace("4.75%", "5%").replace("seven to two", "six to three")
               .replace("1.2%", "1.4%").replace("half a cent", "almost a cent")
               .replace("eight months", "nine months"))
    updated = "UPDATED: " + updated + "\n\nThe Bank will publish its inflation report next week."
    assert 0.5 < exact_jaccard(ORIGINAL, updated) < 0.9  # a real edit, not a copy
    assert same_story(ORIGINAL, updated)


def test_unrelated_articles_on_the_same_topic_stay_apart() -> None:
    assert exact_jaccard(ORIGINAL, text(RATES_OTHER)) < 0.05
    assert not same_story(ORIGINAL, text(RATES_OTHER))
    assert not same_story(ORIGINAL, text(FOOTBALL))
    # Half of a story is not the story: a digest quoting two paragraphs stays apart.
    assert not same_story(ORIGINAL, text(RATES[:2] + RATES_OTHER))


def test_story_ids_are_deterministic() -> None:
    copy = text(RATES[:8])
    records = [("b-copy", signature(copy), date(2005, 2, 3)),
               ("z-original", signature(ORIGINAL), date(2005, 2, 2)),
               ("c-other", signature(text(RATES_OTHER)), date(2005, 2, 1)),
               ("d-undated", signature(text(RATES[1:])), None)]
    expected = {"z-original": ["z-original", "b-copy", "d-undated"], "c-other": ["c-other"]}
    for seed in range(5):  # the earliest published founds the story, whatever the order
        shuffled = records.copy()
        random.Random(seed).shuffle(shuffled)
        index = StoryIndex(shuffled)
        assert index.groups() == expected
        assert index.story_for("b-copy", records[0][1]) == "z-original"
    assert index.members("z-original") == expected["z-original"]
    assert index.members("nope") == []
    assert len(index) == 4 and "b-copy" in index

    # An article like two existing stories joins the one with the smallest id.
    a, c = ORIGINAL, text(FOOTBALL * 3 + RATES_OTHER)
    both = a + "\n\n" + c
    for order in (("s2", "s1"), ("s1", "s2")):
        index = StoryIndex(threshold=0.3)
        index.add(order[0], signature(a if order[0] == "s2" else c))
        index.add(order[1], signature(a if order[1] == "s2" else c))
        assert len(index.groups()) == 2
        assert index.story_for("new", signature(both)) == "s1"
        assert "new" not in index  # story_for only looks
        assert index.add("new", signature(both)) == "s1"
        assert index.add("new", signature(both)) == "s1"  # adding twice changes nothing
        assert index.members("s1") == ["s1", "new"]


def test_new_articles_start_their_own_story() -> None:
    index = StoryIndex([("a", signature(ORIGINAL))])
    assert index.story_for("x", signature(text(FOOTBALL))) == "x"
    assert index.add("y", signature(text(RATES[:9]))) == "a"
    assert index.groups() == {"a": ["a", "y"]}


def test_signature_round_trip() -> None:
    sig = signature(ORIGINAL, "Rates rise")
    assert isinstance(sig, str) and sig.isascii() and len(sig) < 1000
    assert json.loads(json.dumps({"sig": sig}))["sig"] == sig  # fits a metadata string
    assert sig == signature(ORIGINAL)  # the body decides, not the headline
    mh = from_signature(sig)
    assert len(mh) == 128 and mh.jaccard(from_signature(sig)) == 1.0
    assert from_signature(signature(ORIGINAL.upper())).jaccard(mh) == 1.0
    assert abs(mh.jaccard(from_signature(signature(text(RATES[:7])))) - 0.7) < 0.1
    with pytest.raises(ValueError):
        from_signature("not a signature")
    with pytest.raises(ValueError):
        from_signature(sig[:-8])


def test_signatures_of_other_settings_are_refused() -> None:
    index = StoryIndex([("a", signature(ORIGINAL))])
    other = signature(ORIGINAL, k=SHINGLE_SIZE - 1)
    with pytest.raises(ValueError, match="does not compare"):
        index.story_for("b", other)


def test_empty_and_headline_only_items() -> None:
    assert shingles("") == set() and shingles("Hello, world!") == {"hello world"}
    index = StoryIndex([("e1", signature("")), ("e2", signature(" \n "))])
    assert index.groups() == {"e1": ["e1"], "e2": ["e2"]}  # nothing in common to go on
    title = "Bank of England raises interest rates to 4.75 per cent"
    index = StoryIndex([("t1", signature("", title)), ("t2", signature("", title.upper()))])
    assert index.groups() == {"t1": ["t1", "t2"]}


def test_lsh_bands_keep_misses_at_the_threshold_rare() -> None:
    for threshold in (0.3, 0.5, 0.7, 0.9):
        bands, rows = lsh_bands(threshold)
        assert bands * rows <= 128 and (1 - threshold**rows) ** bands <= 0.01


def _rec(id: str, title: str, url: str | None, day: int | None, outlet: str = "Reuters"
         ) -> Record:
    return Record(id=id, title=title, outlet=outlet, url=url,
                  published=date(2005, 2, day) if day else None)


def test_supersedes() -> None:
    old = _rec("1", "Bank raises rates", "https://www.reuters.com/rates/", 2)
    assert supersedes(_rec("2", "Rates rise again", "https://reuters.com/rates?utm_source=x",
                           3), old)  # same page, canonical URL
    for title in ("UPDATE: Bank raises rates", "Bank raises rates (updated)",
                  "bank RAISES rates [Update 2]", "Updated - Bank raises rates",
                  "UPDATE 1-Bank raises rates"):
        assert supersedes(_rec("2", title, None, 3), old), title
    assert not supersedes(_rec("2", "UPDATE: Bank raises rates", None, 3, "AP"), old)
    assert not supersedes(_rec("2", "UPDATE: Bank raises rates", None, 2), old)  # not later
    assert not supersedes(old, _rec("2", "UPDATE: Bank raises rates", None, 3))  # older
    assert not supersedes(_rec("2", "UPDATE: Bank raises rates", None, None), old)
    assert not supersedes(_rec("2", "Bank holds rates", "https://reuters.com/hold", 3), old)
    assert not supersedes(_rec("2", "UPDATE:", None, 3), _rec("1", "", None, 2))


def test_prefix_filtering_finds_every_similar_pair() -> None:
    rng = random.Random(7)
    base = [set(rng.sample(range(60), rng.randint(1, 25))) for _ in range(25)]
    sets = [{str(x) for x in s} for s in base] + [set()]
    sets += [{x for x in s if rng.random() < 0.8} | {"n"} for s in sets[:25]]
    for cut in (0.2, 0.5, 0.8):
        brute = {(i, j) for i, j in combinations(range(len(sets)), 2)
                 if sets[i] and sets[j] and len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= cut}
        assert set(similar_pairs(sets, cut)) == brute


@pytest.mark.skipif(not BBC.is_dir(), reason="BBC corpus not present")
def test_bbc_grouping_matches_exact_jaccard() -> None:
    docs = load_corpus(BBC, folders=("business", "tech"))
    assert len(docs) == 911
    truth = ground_truth(docs)
    assert len(truth.pairs) >= 50 and truth.exact_groups  # the subset has copies to find
    sigs = [signature(d.text, d.title) for d in docs]
    index = StoryIndex([(d.id, s) for d, s in zip(docs, sigs, strict=True)])
    stories = [index.story_for(d.id, s) for d, s in zip(docs, sigs, strict=True)]
    score = pairwise(stories, truth.labels)
    assert score.precision >= 0.95 and score.recall >= 0.9, score
    assert all(len({stories[i] for i in g}) == 1 for g in truth.exact_groups)


@pytest.mark.slow
@pytest.mark.skipif(not BBC.is_dir(), reason="BBC corpus not present")
def test_ingest_groups_bbc_copies_and_versions() -> None:
    """What ingest itself stores (vector-search candidates, exact shingle Jaccard, same
    outlet and headline) against copies and same-headline versions, on one category."""
    docs = load_corpus(BBC, ["business"])
    truth = ground_truth(docs)
    either, n_versions = versions_truth(docs, truth)
    assert n_versions >= 10 and truth.exact_groups
    labels, _ = ingest_labels([BBC / "business"], docs)
    score = pairwise(labels, either)
    assert score.precision >= 0.95 and score.recall >= 0.95, score
    assert all(len({labels[i] for i in g}) == 1 for g in truth.exact_groups)
