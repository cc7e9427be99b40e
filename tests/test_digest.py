"""`newsdesk digest`: the period's articles, copies and near-duplicates grouped, biggest first, leads cited."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsdesk.app import cli
from retrieval.digest import DigestArticle, build_digest, parse_since

STORY = ("The city council approved a new tram line on Tuesday after a four-hour debate, clearing the way for "
         "construction to begin next spring. The line will link the station with the university and the "
         "hospital, and is expected to carry 40,000 passengers a day. Opponents said the cost had doubled "
         "since the plan was first put forward and called for a public inquiry.")
EDITED = STORY.replace("four-hour debate", "long debate").replace("called for", "demanded")
OTHER = ("Heavy snow closed the mountain pass for a second day on Wednesday, stranding lorries at the border "
         "and forcing the cancellation of dozens of bus services across the region, officials said.")
ARTICLES = [
    {"id": "tram-wire", "source": "Wire", "published": "2024-03-12", "title": "Tram approved", "text": STORY},
    {"id": "tram-herald", "source": "Herald", "published": "2024-03-13", "title": "Tram line approved",
     "text": EDITED},
    {"id": "tram-copy", "source": "Courier", "published": "2024-03-13", "title": "Tram", "text": STORY},
    {"id": "snow", "source": "Wire", "published": "2024-03-14", "title": "Snow", "text": OTHER},
    {"id": "old", "source": "Wire", "published": "2024-01-02", "title": "Old", "text": OTHER + " Old."},
]


def _articles() -> list[DigestArticle]:
    return [DigestArticle(id=a["id"], text=a["text"], title=a["title"], source=a["source"],
                          published=date.fromisoformat(a["published"])) for a in ARTICLES]


def test_copies_and_near_duplicates_form_one_group_with_a_verbatim_cited_lead() -> None:
    groups = build_digest(_articles(), date(2024, 3, 8), date(2024, 3, 15))
    assert [sorted(a.id for a in g.articles) for g in groups] == [["tram-copy", "tram-herald", "tram-wire"],
                                                                  ["snow"]]
    tram = groups[0]
    assert tram.outlets == ["Courier", "Herald", "Wire"]
    assert tram.articles[0].id == "tram-wire"  # the earliest report leads
    assert tram.lead is not None and tram.lead.number == 1
    assert STORY[tram.lead.char_start:tram.lead.char_end] == tram.lead.quote
    assert tram.lead.quote.startswith("The city council approved a new tram line")
    assert groups[1].lead is not None and groups[1].lead.number == 2


def test_source_filter_and_period() -> None:
    groups = build_digest(_articles(), date(2024, 3, 8), date(2024, 3, 15), sources=["wire"])
    assert [[a.id for a in g.articles] for g in groups] == [["snow"], ["tram-wire"]]  # equal size: newest first
    assert parse_since("7d", date(2024, 3, 15)) == date(2024, 3, 8)
    assert parse_since("2w", date(2024, 3, 15)) == date(2024, 3, 1)
    assert parse_since("2024-03-01", date(2024, 3, 15)) == date(2024, 3, 1)
    with pytest.raises(ValueError):
        parse_since("last week", date(2024, 3, 15))


def invoke(*args: str):
    return CliRunner().invoke(cli.app, list(args))


@pytest.mark.slow
def test_digest_command_reads_the_store(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.jsonl").write_text("".join(json.dumps(a) + "\n" for a in ARTICLES), encoding="utf-8")
    data = tmp_path / "data"
    assert invoke("ingest", str(corpus), "--data-dir", str(data)).exit_code == 0
    result = invoke("digest", "--since", "7d", "--as-of", "2024-03-15", "--json", "--data-dir", str(data))
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    # the byte-identical copy is stored once by ingest; the edited rewrite is grouped by the digest
    assert report["since"] == "2024-03-08" and report["articles"] == 3
    assert [g["size"] for g in report["groups"]] == [2, 1]
    text = invoke("digest", "--since", "7d", "--as-of", "2024-03-15", "--data-dir", str(data))
    assert "2 stories from 3 articles" in text.stdout and "2 articles: Wire 2024-03-12" in text.stdout
    bad = invoke("digest", "--since", "soon", "--data-dir", str(data))
    assert bad.exit_code == 2 and "--since wants" in bad.stderr


def test_a_lead_longer_than_the_segmented_window_is_never_cut() -> None:
    from retrieval.digest import LEAD_WINDOW, lead_span

    first = "The council said " + ", ".join(f"item {i} was approved" for i in range(LEAD_WINDOW // 10)) + "."
    text = f"{first} A second sentence follows here with more words."
    assert len(first) > LEAD_WINDOW
    assert lead_span(text) == (0, len(first))
    short = "Heavy snow closed the mountain pass on Wednesday. " * 30
    assert lead_span(short) == (0, len("Heavy snow closed the mountain pass on Wednesday."))
