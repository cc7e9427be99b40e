"""Issue 13: one bad or unlucky input never stops the rest (loaders, chunking, charsets, PDFs, HTML)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.chunking import chunk_article
from ingest.loaders import load_sources
from ingest.metadata import decode_bytes, fill_missing
from ingest.web import extract_html
from newsdesk.models import Article
from newsdesk.settings import Settings
from tests.support import SHARED, needs_shared

FIXTURES = Path(__file__).parent / "fixtures"
BBC_199 = SHARED / "bench" / "bbc" / "articles" / "sport" / "199.txt"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def test_file_name_that_is_not_utf8_loads_with_a_printable_id(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    bad = os.fsdecode(os.fsencode(str(root)) + b"/bad\xff.txt")
    with open(bad, "w", encoding="utf-8") as handle:
        handle.write("The dam opened on Monday after four years of work.")
    (root / "good.txt").write_text("Dock workers struck at the port on Friday.", encoding="utf-8")
    result = load_sources([str(root)], settings)
    assert not result.failures
    ids = sorted(article.id for article in result.articles)
    assert ids == ["bad\\xff.txt", "good.txt"]
    for article in result.articles:  # everything stored or printed must be valid text
        for value in (article.id, article.origin, article.title):
            value.encode("utf-8")


def test_unreadable_file_with_undecodable_name_is_named_in_the_failure(tmp_path: Path, settings) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    os.symlink(root / "missing", os.fsdecode(os.fsencode(str(root)) + b"/gone\xfe.txt"))
    result = load_sources([str(root)], settings)
    assert [f.source.rsplit("/", 1)[-1] for f in result.failures] == ["gone\\xfe.txt"]
    result.failures[0].source.encode("utf-8")


@pytest.mark.timeout(120)  # the quadratic chunker took hours on 2 MB; linear takes well under a second
def test_multi_megabyte_single_line_is_chunked_whole(settings: Settings) -> None:
    sentence = "The council met on Monday and approved the budget for the new tram line. "
    text = (sentence * (2_000_000 // len(sentence))).strip()
    article = fill_missing(Article(id="long.txt", text=text))
    chunks = chunk_article(article, 800, 150)
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(text)
    for chunk in chunks:
        assert text[chunk.char_start:chunk.char_end] == chunk.text
        assert len(chunk.text) <= 800
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert not text[before.char_end:after.char_start].strip()  # nothing between chunks is lost
    assert all(c.text.startswith("The council") and c.text.endswith("line.") for c in chunks)
    assert article.title.startswith("The council met on Monday")


@pytest.mark.timeout(120)
def test_single_line_without_spaces_is_cut_hard() -> None:
    text = "x" * 1_000_000
    chunks = chunk_article(Article(id="blob.txt", text=text), 800, 150)
    assert "".join(c.text for c in chunks) == text
    assert all(len(c.text) == 800 for c in chunks[:-1])


def test_long_line_chunking_keeps_sentence_boundaries() -> None:
    sentence = "Officials said the dam would open in May. "
    text = (sentence * 1000).strip()
    chunks = chunk_article(Article(id="a", text=text), 800, 150)
    assert all(c.text.endswith(".") and c.text.startswith("Officials") for c in chunks)


def test_cp1252_fixture_is_decoded_as_windows_1252() -> None:
    data = (FIXTURES / "cafe-cp1252.txt").read_bytes()
    text, guessed = decode_bytes(data)
    assert guessed == "cp1252"
    assert "Café owners in Zürich" in text and "€5 million" in text and "“naïve”" in text


@needs_shared("bench", "bbc", "articles", "sport", "199.txt")
def test_bbc_pound_sign_survives() -> None:
    text, guessed = decode_bytes(BBC_199.read_bytes())
    assert guessed == "cp1252"
    assert "£15.8m" in text and "｣" not in text


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        ("Это тестовая новость о строительстве плотины в Москве в понедельник.", "cp1251"),
        ("Zażółć gęślą jaźń: minister ogłosił budowę tamy w Łodzi.", "cp1250"),
        ("今日は東京で新しいダムの建設が始まりました。大臣が発表しました。", "shift_jis"),
        ("Ο υπουργός ανακοίνωσε την κατασκευή του φράγματος στην Αθήνα.", "cp1253"),
    ],
)
def test_other_code_pages_are_not_forced_to_cp1252(text: str, codec: str) -> None:
    decoded, guessed = decode_bytes(text.encode(codec))
    assert decoded == text
    assert guessed != "cp1252"


def test_pypdf_warnings_go_to_the_report_not_stderr(tmp_path: Path, settings, capfd) -> None:
    (tmp_path / "scan.pdf").write_bytes(b"xx%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>")
    (tmp_path / "ok.txt").write_text("The port reopened on Friday.", encoding="utf-8")
    result = load_sources([str(tmp_path)], settings)
    captured = capfd.readouterr()
    assert "pdf" not in (captured.err + captured.out).lower()
    assert [a.id for a in result.articles] == ["ok.txt"]
    assert [Path(f.source).name for f in result.failures] == ["scan.pdf"]
    assert any("invalid pdf header" in w for w in result.warnings)


@pytest.mark.parametrize(
    "html",
    [
        "<html><head><script>var a = 1;<p>Story text about the dam opening on Monday.</p>",
        "<html><head><style>p{}</head><body><p>Story text about the dam opening on Monday.</p></body>",
        "<html><head><noscript><p>Story text about the dam opening on Monday.</p></body>",
        "<svg><p>Story text about the dam opening on Monday.</p>",
    ],
)
def test_broken_html_falls_back_to_its_visible_text(html: str) -> None:
    assert "Story text about the dam opening on Monday." in extract_html(html).text


@pytest.mark.timeout(120)
def test_tag_soup_fallback_is_linear() -> None:
    html = "<script>" * 200_000 + "<p>Story text.</p>"
    assert "Story text." in extract_html(html).text


def test_broken_jsonl_line_is_named_in_plain_words(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_text('{"id": "a", "text": "The dam opened."}\n{"id": "b", "text": "no closing quote}\n',
                    encoding="utf-8")
    result = load_sources([str(path)], settings)
    assert [a.id for a in result.articles] == ["a"]
    assert [(f.source, f.error) for f in result.failures] == [
        (f"{path}:2", "not valid JSON (Unterminated string starting at column 21)")]
