"""Chunking: sentence-aware, bounded, overlapping, and exact offsets over every shared corpus."""

from __future__ import annotations

import json
import random
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ingest.chunking import chunk_article, chunking_key
from newsdesk.models import Article
from newsdesk.sentences import sentence_spans
from tests.support import SAMPLE_DIR, SHARED, needs_shared

BENCH = SHARED / "bench"


def _jsonl(path: Path, field: str, sample: int | None = None) -> list[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if sample is not None:
        rows = random.Random(20240531).sample(rows, sample)
    return [row[field] for row in rows]


def _corpus(name: str) -> list[str]:
    if name == "sample":
        return [p.read_text(encoding="utf-8") for p in sorted(SAMPLE_DIR.glob("*.txt"))]
    if name == "rgb-articles":
        return _jsonl(BENCH / "rgb" / "articles.jsonl", "text")
    if name == "rgb-conflicts":
        return _jsonl(BENCH / "rgb" / "conflicts.jsonl", "text")
    if name == "scifact-300":
        return _jsonl(BENCH / "scifact" / "corpus.jsonl", "text", sample=300)
    if name == "attribution-evidence-200":
        # a sample of both files: the evidence texts run from one line to 190,000 characters
        return (_jsonl(BENCH / "attribution" / "test.jsonl", "evidence", sample=100)
                + _jsonl(BENCH / "attribution" / "test_ood.jsonl", "evidence", sample=100))
    raise KeyError(name)


def check_chunks(text: str, size: int, overlap: int) -> list:
    """Assert every invariant a chunking must keep; return the chunks."""
    article = Article(id="doc", text=text)
    chunks = chunk_article(article, size, overlap)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    covered = bytearray(len(text))
    for chunk in chunks:
        assert article.text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.text and chunk.text == chunk.text.strip()
        assert len(chunk.text) <= size, (len(chunk.text), chunk.text[:80])
        assert chunk.id == f"doc::{chunk.index}"
        covered[chunk.char_start : chunk.char_end] = b"\x01" * (chunk.char_end - chunk.char_start)
    lost = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert not lost, f"characters in no chunk, e.g. {text[lost[0]:lost[0] + 40]!r}"
    for before, after in pairwise(chunks):
        assert after.char_start > before.char_start
        assert after.char_end > before.char_end, "a chunk wholly inside its predecessor"
        assert before.char_end - after.char_start <= overlap
    return chunks


@pytest.mark.parametrize("corpus", [
    "sample",
    pytest.param("rgb-articles", marks=needs_shared("bench", "rgb", "articles.jsonl")),
    pytest.param("rgb-conflicts", marks=needs_shared("bench", "rgb", "conflicts.jsonl")),
    pytest.param("scifact-300", marks=needs_shared("bench", "scifact", "corpus.jsonl")),
    pytest.param("attribution-evidence-200", marks=needs_shared("bench", "attribution", "test_ood.jsonl")),
])
def test_offsets_are_exact_over_shared_corpora(corpus: str) -> None:
    texts = _corpus(corpus)
    assert texts
    for text in texts:
        check_chunks(text, 800, 150)


def test_sample_article_chunks_end_at_sentence_ends() -> None:
    text = (SAMPLE_DIR / "004_ad935d4100d70209.txt").read_text(encoding="utf-8")
    chunks = check_chunks(text, 800, 150)
    assert len(chunks) >= 5
    ends = {span.end for span in sentence_spans(text)}
    starts = {span.start for span in sentence_spans(text)}
    for chunk in chunks:
        assert chunk.char_start in starts and chunk.char_end in ends
    assert sum(1 for a, b in pairwise(chunks) if b.char_start < a.char_end) >= 1, "no overlap at all"


def test_sentences_respect_abbreviations_and_lines() -> None:
    text = "Dr. Smith met U.S. officials at 5 p.m. on Monday. They agreed.\nA new paragraph starts here"
    sentences = [text[s.start : s.end] for s in sentence_spans(text)]
    assert sentences == [
        "Dr. Smith met U.S. officials at 5 p.m. on Monday.",
        "They agreed.",
        "A new paragraph starts here",
    ]


def test_size_and_overlap_shape_the_chunks() -> None:
    text = " ".join(f"Sentence number {i} says something short." for i in range(60))
    small = check_chunks(text, 200, 0)
    large = check_chunks(text, 1000, 0)
    overlapping = check_chunks(text, 200, 100)
    assert len(small) > len(large) >= 2
    assert all(b.char_start > a.char_end for a, b in pairwise(small)), "overlap 0 must not overlap"
    assert all(b.char_start < a.char_end for a, b in pairwise(overlapping))
    assert len(overlapping) > len(small)
    for chunk in small:
        assert chunk.text.startswith("Sentence") and chunk.text.endswith(".")


def test_overlong_sentence_is_cut_at_whitespace() -> None:
    words = [f"word{i:04d}" for i in range(400)]  # one 3,600-character "sentence" without a full stop
    text = "Intro sentence here. " + " ".join(words) + ". Closing sentence."
    chunks = check_chunks(text, 800, 150)
    for chunk in chunks:
        assert text[chunk.char_start - 1].isspace() or chunk.char_start == 0, "cut inside a word"
        assert chunk.char_end == len(text) or text[chunk.char_end].isspace()


def test_word_longer_than_size_is_cut_at_size() -> None:
    text = "Short one. " + "x" * 500 + " and the rest."
    chunks = check_chunks(text, 200, 50)
    assert max(len(c.text) for c in chunks) == 200


def test_no_chunk_repeats_the_tail_of_the_previous_one() -> None:
    # Short sentences, then one that cannot share a chunk with the overlap: the overlap used to become
    # a chunk of its own, a copy of the previous chunk's last sentence (found in SciFact abstracts).
    short = " ".join(["Alpha beta gamma delta epsilon zeta eta theta iota."] * 6)
    text = short + " " + ("Long clause " * 64).strip() + "."
    chunks = check_chunks(text, 800, 150)
    assert len(chunks) == 2
    assert chunks[1].text.startswith("Long clause")


@pytest.mark.parametrize("text", ["", "   ", "\n\n\n", " \t\r\n "])
def test_blank_text_has_no_chunks(text: str) -> None:
    assert chunk_article(Article(id="blank", text=text)) == []


def test_crlf_tabs_and_unicode_keep_offsets() -> None:
    text = ("Première phrase — avec accents. 第二句话。 Emoji 🚀 here!\r\n\r\nTabs\tand  spaces.  "
            "“Quoted,” she said. ¿Qué? Yes.\r\nLast line without stop")
    chunks = check_chunks(text, 100, 30)
    assert "".join(c.text for c in chunks).replace(" ", "") != ""


def test_random_texts_keep_every_invariant() -> None:
    """A seeded fuzz over the awkward cases: abbreviations, numbers, quotes, odd whitespace, long runs."""
    rng = random.Random(7)
    tokens = ["Dr.", "U.S.", "e.g.", "3.14", "p.m.", "Mr.", "(a)", "“quote”", "'", "...", "?!", "é", "中文",
              "🚀",
              "\n", "\n\n", "\r\n", "\t", "  ", "word", "Word", "sentence.", "end!", "x" * 90, "-", ";", ":"]
    for _ in range(300):
        text = " ".join(rng.choice(tokens) for _ in range(rng.randint(0, 250)))
        size = rng.choice([100, 180, 400, 800])
        check_chunks(text, size, rng.choice([0, 20, 60, size // 2]))


def test_chunking_key_names_version_and_parameters() -> None:
    assert chunking_key(800, 150) != chunking_key(800, 100) != chunking_key(600, 100)
    assert chunking_key(800, 150) == chunking_key(800, 150)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(list("abcXYZ .,!?;:'\"()\n\t-0123456789") + ["Dr.", "U.S.", " é", "中", "\r\n"]),
        max_size=400,
    ).map("".join),
    size=st.integers(min_value=100, max_value=500),
    overlap=st.integers(min_value=0, max_value=200),
)
def test_property_invariants_hold_for_any_text(text: str, size: int, overlap: int) -> None:
    check_chunks(text, size, overlap)
