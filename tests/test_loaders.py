import json
import os
import shutil
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfWriter

from ingest.loaders import LoadResult, load_file, load_sources
from ingest.metadata import decode_bytes, infer_metadata, normalise_text, parse_date
from newsdesk.settings import Settings

PROJECT = Path(__file__).resolve().parents[1]
CORPUS = PROJECT / "data" / "sample"  # the project's copy of ../shared/corpus (the same two articles)
ID_000 = "000_70bec7e4b0fc20fc.txt"
ID_004 = "004_ad935d4100d70209.txt"


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data")


def make_pdf(lines: list[str]) -> bytes:
    """A minimal one-page PDF whose text layer holds ``lines`` (Helvetica, WinAnsi)."""
    ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def by_id(result: LoadResult) -> dict:
    return {article.id: article for article in result.articles}


def failure_map(result: LoadResult) -> dict[str, str]:
    return {failure.source: failure.error for failure in result.failures}


# --- sample corpus -------------------------------------------------------------------------------


def test_sample_corpus_directory(settings):
    result = load_sources([str(CORPUS)], settings)
    articles = by_id(result)
    assert ID_000 in articles and ID_004 in articles
    assert result.failures == []
    assert result.roots == [str(CORPUS)]

    a000 = articles[ID_000]
    raw000 = (CORPUS / ID_000).read_text(encoding="utf-8")
    assert a000.text == raw000.strip()  # verbatim
    assert a000.origin == str(CORPUS / ID_000)
    assert a000.title.startswith("Dr. Ahmad Javed Qazi, the home secretary")
    assert "ISLAMABAD" not in a000.title
    assert len(a000.title) <= 125
    assert a000.author == ""
    assert a000.published is None  # "on Wednesday" is not a date: nothing invented

    a004 = articles[ID_004]
    assert (CORPUS / ID_004).read_text(encoding="utf-8").startswith("By Asif Shahzad\n")
    assert a004.author == "Asif Shahzad"
    assert a004.source == "Reuters"
    assert a004.title.startswith("Beijing is pushing Pakistan")
    assert "Chinese language" in a004.text  # spinner wording kept as is


def test_project_sample_directory_relative_ids(settings, monkeypatch):
    monkeypatch.chdir(PROJECT)
    result = load_sources(["data/sample"], settings)
    ids = [a.id for a in result.articles]
    assert ID_000 in ids and ID_004 in ids
    assert result.roots == [str(PROJECT / "data" / "sample")]
    assert by_id(result)[ID_000].origin == str(PROJECT / "data" / "sample" / ID_000)


def test_single_file_id_is_file_name(settings):
    result = load_sources([str(CORPUS / ID_004)], settings)
    assert [a.id for a in result.articles] == [ID_004]
    assert result.roots == [str(CORPUS / ID_004)]


def test_load_file_helper(settings):
    result = load_file(CORPUS / ID_000, settings)
    assert [a.id for a in result.articles] == [ID_000]
    assert result.failures == []


# --- directories ---------------------------------------------------------------------------------


def test_recursive_directory_sorted_hidden_and_unsupported_skipped(settings, tmp_path, monkeypatch):
    root = tmp_path / "news"
    (root / "b" / "deep").mkdir(parents=True)
    (root / ".hidden_dir").mkdir()
    (root / "z.txt").write_text("Zed story text.", encoding="utf-8")
    (root / "a.txt").write_text("Alpha story text.", encoding="utf-8")
    (root / "b" / "deep" / "c.MD").write_text("Deep markdown story.", encoding="utf-8")
    (root / "b" / "notes.docx").write_bytes(b"PK\x03\x04 not loaded")
    (root / ".secret.txt").write_text("hidden", encoding="utf-8")
    (root / ".hidden_dir" / "x.txt").write_text("hidden too", encoding="utf-8")
    seen: list[str] = []

    monkeypatch.chdir(tmp_path)
    result = load_sources(["news"], settings, progress=seen.append)

    assert [a.id for a in result.articles] == ["a.txt", "b/deep/c.MD", "z.txt"]
    assert result.failures == []
    assert seen == ["news/a.txt", "news/b/deep/c.MD", "news/z.txt"]
    assert by_id(result)["b/deep/c.MD"].origin == str(root / "b" / "deep" / "c.MD")
    assert result.roots == [str(root)]


def test_empty_directory_warns(settings, tmp_path):
    (tmp_path / "empty").mkdir()
    result = load_sources([str(tmp_path / "empty")], settings)
    assert result.articles == [] and result.failures == []
    assert len(result.warnings) == 1 and "no supported files" in result.warnings[0]


def test_same_file_twice_loads_once(settings, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "one.txt").write_text("One story.", encoding="utf-8")
    result = load_sources([str(tmp_path / "d"), str(tmp_path / "d" / "one.txt")], settings)
    assert [a.id for a in result.articles] == ["one.txt"]


def test_broken_symlink_in_directory_is_a_failure(settings, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "ok.txt").write_text("Fine story.", encoding="utf-8")
    os.symlink(tmp_path / "gone.txt", tmp_path / "d" / "dangling.txt")
    result = load_sources([str(tmp_path / "d")], settings)
    assert [a.id for a in result.articles] == ["ok.txt"]
    assert failure_map(result) == {f"{tmp_path}/d/dangling.txt": "no such file or directory"}


# --- formats -------------------------------------------------------------------------------------


def test_markdown_front_matter(settings, tmp_path):
    path = tmp_path / "story.md"
    path.write_text(
        "---\ntitle: Bridge opens\nsource: Dawn\nauthor: Jane Doe\npublished: 2024-10-09\n"
        "url: https://example.org/bridge\n---\n\n## Opening\n\nThe **bridge** opened [today](x).\n",
        encoding="utf-8",
    )
    (article,) = load_sources([str(path)], settings).articles
    assert article.title == "Bridge opens"
    assert article.source == "Dawn"
    assert article.author == "Jane Doe"
    assert article.published == date(2024, 10, 9)
    assert article.url == "https://example.org/bridge"
    assert article.text == "## Opening\n\nThe **bridge** opened [today](x)."


def test_markdown_without_front_matter_uses_heading(settings, tmp_path):
    path = tmp_path / "plain.markdown"
    path.write_text("# Floods in Sindh\n\nBy Sara Khan\n\nRains continued on 12 August 2022.\n",
                    encoding="utf-8")
    (article,) = load_sources([str(path)], settings).articles
    assert article.title == "Floods in Sindh"
    assert article.author == "Sara Khan"
    assert article.published == date(2022, 8, 12)
    assert article.text.startswith("# Floods in Sindh")


def test_markdown_bad_front_matter_and_front_matter_only(settings, tmp_path):
    (tmp_path / "bad.md").write_text("---\ntitle: [unclosed\n---\nBody text.\n", encoding="utf-8")
    (tmp_path / "only.md").write_text("---\ntitle: Nothing\n---\n\n", encoding="utf-8")
    result = load_sources([str(tmp_path / "bad.md"), str(tmp_path / "only.md")], settings)
    errors = failure_map(result)
    assert result.articles == []
    assert errors[str(tmp_path / "bad.md")].startswith("invalid YAML front matter")
    assert "\n" not in errors[str(tmp_path / "bad.md")]
    assert errors[str(tmp_path / "only.md")] == "no article text after the front matter"


ARTICLE_HTML = """<!DOCTYPE html>
<html><head>
<title>Port reopens | Example News</title>
<meta property="og:title" content="Karachi port reopens after strike">
<meta property="og:site_name" content="Example News">
<meta name="author" content="Bilal Ahmed">
<meta property="article:published_time" content="2024-10-09T08:30:00+05:00">
<script>var tracking = "do not extract";</script>
</head><body>
<nav><a href="/">Home</a> | <a href="/world">World</a></nav>
<article>
<h1>Karachi port reopens after strike</h1>
<p>KARACHI (Reuters) - Karachi's main port reopened on Wednesday after a three-day strike by dock workers
ended with an agreement on wages, port officials said.</p>
<p>Ships that had queued outside the harbour began unloading cargo in the afternoon, and officials expected
the backlog to clear within a week.</p>
<p>The strike had halted container traffic and raised concerns among exporters about delayed shipments.</p>
</article>
<footer>Copyright Example News</footer>
</body></html>
"""


def test_html_meta_and_main_text(settings, tmp_path):
    (tmp_path / "port.html").write_text(ARTICLE_HTML, encoding="utf-8")
    (article,) = load_sources([str(tmp_path / "port.html")], settings).articles
    assert article.id == "port.html"
    assert article.title == "Karachi port reopens after strike"
    assert article.source == "Example News"
    assert article.author == "Bilal Ahmed"
    assert article.published == date(2024, 10, 9)
    assert "three-day strike by dock workers" in article.text
    assert "do not extract" not in article.text
    assert "Copyright" not in article.text  # boilerplate dropped
    assert "World" not in article.text


def test_html_title_tag_and_broken_markup(settings, tmp_path):
    broken = ("<html><head><title>Broken page</title><body><p>Officials said the road "
              "<b>was closed<div>after floods")
    (tmp_path / "broken.htm").write_text(broken, encoding="utf-8")
    result = load_sources([str(tmp_path / "broken.htm")], settings)
    (article,) = result.articles
    assert article.title == "Broken page"
    assert "after floods" in article.text


def test_html_without_text_is_a_failure(settings, tmp_path):
    (tmp_path / "empty.html").write_text("<html><head><script>x=1</script></head><body> </body></html>")
    result = load_sources([str(tmp_path / "empty.html")], settings)
    assert result.articles == []
    assert failure_map(result) == {str(tmp_path / "empty.html"): "no article text found in the HTML"}


def test_html_meta_charset(settings, tmp_path):
    html = ('<html><head><meta charset="windows-1252"><title>Caf\xe9</title></head>'
            "<body><p>Le caf\xe9 est ouvert.</p></body></html>")
    (tmp_path / "latin.html").write_bytes(html.encode("cp1252"))
    result = load_sources([str(tmp_path / "latin.html")], settings)
    (article,) = result.articles
    assert article.text == "Le café est ouvert."
    assert result.warnings == []  # declared, not guessed


def test_pdf_text_layer(settings, tmp_path):
    lines = ["By Jane Doe", "LAHORE (Reuters) - The new bridge opened on October 9, 2024.",
             "Traffic was heavy."]
    (tmp_path / "bridge.pdf").write_bytes(make_pdf(lines))
    (article,) = load_sources([str(tmp_path / "bridge.pdf")], settings).articles
    assert article.text == "\n".join(lines)
    assert article.author == "Jane Doe"
    assert article.source == "Reuters"
    assert article.published == date(2024, 10, 9)
    assert article.title == "The new bridge opened on October 9, 2024"


def test_pdf_without_text_and_corrupt_pdf(settings, tmp_path):
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    with open(tmp_path / "scan.pdf", "wb") as handle:
        writer.write(handle)
    (tmp_path / "junk.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf\n")
    result = load_sources([str(tmp_path / "scan.pdf"), str(tmp_path / "junk.pdf")], settings)
    errors = failure_map(result)
    assert result.articles == []
    assert errors[str(tmp_path / "scan.pdf")] == "no text layer (scanned PDF?); skipped"
    assert errors[str(tmp_path / "junk.pdf")].startswith("not a readable PDF")


def test_jsonl_good_and_bad_lines(settings, tmp_path):
    records = [
        {"id": "r1", "title": "First", "text": "First story body.", "source": "AP", "url": "https://x.test/1",
         "published": "2024-10-09", "author": "A. Writer"},
        "this is not json",
        {"title": "no id", "text": "Body."},
        {"id": "r4", "title": "no text"},
        {"id": "r5", "text": "By Omar Ali\nPESHAWAR (AFP) - Fifth story body. More text."},
        {"id": "r1", "text": "Duplicate id."},
        {"id": 7, "text": "Numeric id story.", "published": "sometime"},
        [1, 2],
    ]
    lines = [json.dumps(r) if not isinstance(r, str) else r for r in records]
    lines.insert(4, "")  # a blank line is ignored, numbering follows the file
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = load_sources([str(path)], settings)

    articles = by_id(result)
    assert sorted(articles) == ["7", "r1", "r5"]
    assert articles["r1"].published == date(2024, 10, 9)
    assert articles["r1"].source == "AP" and articles["r1"].author == "A. Writer"
    assert articles["r1"].url == "https://x.test/1"
    assert all(a.origin == str(path) for a in result.articles)
    assert articles["r5"].author == "Omar Ali" and articles["r5"].source == "AFP"
    assert articles["r5"].title == "Fifth story body"
    assert articles["7"].published is None
    errors = failure_map(result)
    assert set(errors) == {f"{path}:2", f"{path}:3", f"{path}:4", f"{path}:7", f"{path}:9"}
    assert errors[f"{path}:2"].startswith("not valid JSON")
    assert "'id'" in errors[f"{path}:3"]
    assert "'text'" in errors[f"{path}:4"]
    assert errors[f"{path}:7"] == "duplicate id 'r1' (first on line 1)"
    assert errors[f"{path}:9"] == "not a JSON object"
    assert any("cannot parse published date 'sometime'" in w for w in result.warnings)


# --- bad input -----------------------------------------------------------------------------------


def test_bad_inputs_each_fail_and_others_continue(settings, tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_text("  \n\n\t ", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"GIF89a\x00\x01\x02\x03text")
    (tmp_path / "report.docx").write_bytes(b"PK\x03\x04")
    (tmp_path / "good.txt").write_text("A good story.", encoding="utf-8")
    inputs = [str(tmp_path / name) for name in
              ("empty.txt", "blank.txt", "binary.txt", "report.docx", "missing.txt", "good.txt")]

    result = load_sources(inputs, settings)

    assert [a.id for a in result.articles] == ["good.txt"]
    errors = failure_map(result)
    assert errors[inputs[0]] == "empty file"
    assert errors[inputs[1]] == "empty file"
    assert errors[inputs[2]] == "binary file, not text"
    assert errors[inputs[3]].startswith("unsupported file type '.docx'")
    assert errors[inputs[4]] == "no such file or directory"
    assert str(tmp_path / "missing.txt") not in result.roots


def test_size_limit(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", max_file_bytes=100)
    (tmp_path / "big.txt").write_text("x" * 101, encoding="utf-8")
    (tmp_path / "small.txt").write_text("y" * 100, encoding="utf-8")
    result = load_sources([str(tmp_path / "big.txt"), str(tmp_path / "small.txt")], settings)
    assert failure_map(result) == {str(tmp_path / "big.txt"): "over the size limit of 100 bytes"}
    assert [a.id for a in result.articles] == ["small.txt"]


def _failures_as_nobody(inputs: list[str], settings: Settings) -> dict[str, str]:
    """Run load_sources in a forked child that dropped root, so permission checks apply."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.setgid(65534)
            os.setuid(65534)
            payload = json.dumps(failure_map(load_sources(inputs, settings))).encode()
            os.write(write_end, payload)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_unreadable_file(settings, tmp_path):
    public = Path("/tmp") / f"newsdesk-perm-{os.getpid()}"
    public.mkdir(mode=0o755, exist_ok=True)
    path = public / "locked.txt"
    path.write_text("secret", encoding="utf-8")
    path.chmod(0)
    try:
        if os.geteuid() == 0:
            errors = _failures_as_nobody([str(path)], settings)
        else:
            errors = failure_map(load_sources([str(path)], settings))
    finally:
        shutil.rmtree(public)
    assert errors == {str(path): "permission denied"}


def test_not_a_regular_file(settings, tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    result = load_sources([str(fifo)], settings)
    assert failure_map(result) == {str(fifo): "not a regular file"}


def test_invalid_utf8_is_decoded_with_a_warning(settings, tmp_path):
    text = "The café served crème brûlée to the minister’s guests at Noël, officials said. " * 3
    (tmp_path / "notes.txt").write_bytes(text.encode("cp1252"))
    result = load_sources([str(tmp_path / "notes.txt")], settings)
    (article,) = result.articles
    assert article.text == text.strip()
    assert result.warnings == [f"{tmp_path}/notes.txt: not valid UTF-8, decoded as cp1252"]


def test_newlines_bom_and_verbatim_text(settings, tmp_path):
    raw = "\ufeff  Teh goverment   said  it would act.\r\nSecond line.\rThird line.\r\n\r\n"
    (tmp_path / "crlf.txt").write_bytes(raw.encode("utf-8"))
    (tmp_path / "utf16.txt").write_bytes("Wide story text.\r\n".encode("utf-16"))
    result = load_sources([str(tmp_path / "crlf.txt"), str(tmp_path / "utf16.txt")], settings)
    articles = by_id(result)
    assert articles["crlf.txt"].text == "Teh goverment   said  it would act.\nSecond line.\nThird line."
    assert articles["utf16.txt"].text == "Wide story text."
    assert result.warnings == []


def test_unsupported_scheme_and_progress(settings, tmp_path):
    (tmp_path / "a.txt").write_text("Story.", encoding="utf-8")
    seen: list[str] = []
    inputs = ["ftp://example.invalid/x", str(tmp_path / "a.txt")]
    result = load_sources(inputs, settings, progress=seen.append)
    assert failure_map(result) == {inputs[0]: "unsupported URL scheme 'ftp' (only http and https)"}
    assert seen == [str(tmp_path / "a.txt")]


def test_fallback_title_is_file_stem(settings, tmp_path):
    (tmp_path / "only-byline.txt").write_text("By Jane Doe\n", encoding="utf-8")
    (article,) = load_sources([str(tmp_path / "only-byline.txt")], settings).articles
    assert article.title == "only-byline"
    assert article.author == "Jane Doe"


# --- metadata inference --------------------------------------------------------------------------


def test_infer_dateline_byline_and_date():
    inferred = infer_metadata(
        "By Jane Doe and John van Dam, Associated Press\nOctober 9, 2024\n"
        "KARACHI, Pakistan (AP) \u2014 Police said a blast hit the airport. Two were killed."
    )
    assert inferred.author == "Jane Doe and John van Dam"
    assert inferred.source == "AP"
    assert inferred.published == date(2024, 10, 9)
    assert inferred.title == "Police said a blast hit the airport"


def test_infer_does_not_invent():
    inferred = infer_metadata("By Monday, the ministry will decide on the budget.\nNothing else here.")
    assert inferred.author == ""
    assert inferred.source == ""
    assert inferred.published is None
    assert inferred.title == "By Monday, the ministry will decide on the budget"


def test_title_trimmed_at_word_boundary():
    sentence = "Officials " + " ".join(["announced"] * 30) + " a plan."
    title = infer_metadata(sentence).title
    assert title.endswith("\u2026")
    assert len(title) <= 121
    assert title[:-1].split(" ")[-1] == "announced"


def test_parse_date():
    assert parse_date("2024-10-09") == date(2024, 10, 9)
    assert parse_date("9 October 2024") == date(2024, 10, 9)
    assert parse_date("2024-10-09T23:30:00-05:00") == date(2024, 10, 9)
    assert parse_date("October 2024") is None  # no day: not guessed
    assert parse_date("Oct 9") is None  # no year
    assert parse_date("not a date") is None
    assert parse_date(None) is None


def test_decode_and_normalise_helpers():
    assert decode_bytes("naïve".encode()) == ("naïve", None)
    assert normalise_text("\ufeffa\r\nb\rc  ") == "a\nb\nc"
    with pytest.raises(Exception, match="binary file"):
        decode_bytes(b"abc\x00def")


def test_corpus_copy_keeps_id_relative_to_given_root(settings, tmp_path):
    root = tmp_path / "archive"
    (root / "2024").mkdir(parents=True)
    shutil.copy(CORPUS / ID_000, root / "2024" / ID_000)
    result = load_sources([str(root)], settings)
    assert [a.id for a in result.articles] == [f"2024/{ID_000}"]
