"""Issue 13: article text, ids, file names and option values are never markup or terminal codes; options,
questions and data dirs are checked; damaged, read-only and unreachable stores give one actionable line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from newsdesk.app import cli, commands
from newsdesk.app.console import markup, visible
from newsdesk.errors import StoreUnavailable
from newsdesk.models import Answer, Article, Chunk, Citation, IngestFailure, IngestReport, RelatedArticle
from newsdesk.settings import Settings

NEWSDESK = Path(sys.executable).with_name("newsdesk")
ROOT = Path(__file__).resolve().parents[1]

#: Values an article, a feed or a file name can carry that a terminal or rich would act on.
HOSTILE = [
    "[/]",
    "[bold red]x.txt",
    "clear\x1b[2Jscreen",
    "title\x1b]0;owned\x07bar",
    "\x1b]8;;http://evil.example\x07click\x1b]8;;\x07",
    "bell\x07 back\x08 c1\x9b31m",
    "bidi \u202egnp.exe",
]


def invoke(*args: str):
    return CliRunner().invoke(cli.app, list(args))


def assert_inert(output: str) -> None:
    """Nothing a terminal would act on: no ESC, BEL, BS, CSI, bidi override."""
    for char in ("\x1b", "\x07", "\x08", "\x9b", "\u202e"):
        assert char not in output, repr(output)


def make_store(data_dir: Path, articles: list[Article]) -> None:
    """A real embedded store holding ``articles`` (one chunk each; 8-dimensional vectors are enough for
    commands that never embed)."""
    from newsdesk.store import Store

    store = Store.from_settings(Settings(data_dir=data_dir))
    items = [(a, [Chunk(article_id=a.id, index=0, text=a.text, char_start=0, char_end=len(a.text))])
             for a in articles]
    store.write_articles(items, np.random.default_rng(0).random((len(items), 8), dtype=np.float32))


@pytest.fixture
def hostile_store(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    make_store(data, [Article(id=value, title=value, source=value, text=f"Story number {i}.")
                      for i, value in enumerate(HOSTILE)])
    return data


# --- the rule itself ---------------------------------------------------------------------------------
def test_visible_shows_control_characters_and_keeps_newlines_and_tabs() -> None:
    assert visible("a\x1b[2Jb\tc\nd\x7f\udcff\u202e") == "a\\x1b[2Jb\tc\nd\\x7f\\udcff\\u202e"


def test_markup_escapes_values_but_keeps_its_template() -> None:
    from rich.text import Text

    rendered = Text.from_markup(markup("[red]error:[/red] {}", "[/] [bold]x\x1b[2J"))
    assert rendered.plain == "error: [/] [bold]x\\x1b[2J"


def test_plain_strings_are_never_markup(capsys) -> None:
    cli.out.print("[bold red]x.txt [/]")
    assert capsys.readouterr().out.strip() == "[bold red]x.txt [/]"


# --- commands --------------------------------------------------------------------------------------
def test_sources_shows_hostile_titles_and_ids_as_text(hostile_store: Path) -> None:
    result = invoke("sources", "--data-dir", str(hostile_store))
    assert result.exit_code == 0, result.output
    assert "[/]" in result.stdout and "[bold red]x.txt" in result.stdout
    assert "\\x1b" in result.stdout  # shown, not sent
    assert_inert(result.output)


def test_remove_markup_id(hostile_store: Path) -> None:
    result = invoke("remove", "[/]", "--data-dir", str(hostile_store))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "removed [/]"
    missing = invoke("remove", "[/]", "--data-dir", str(hostile_store))
    assert missing.exit_code == 1
    assert missing.stderr.strip() == "error: no such article: [/] (see `newsdesk sources`)"


def test_ingest_report_with_markup_in_warnings_and_failures(capsys) -> None:
    report = IngestReport(warnings=[f"{v}: not valid UTF-8, decoded as cp1252" for v in HOSTILE],
                          failed=[IngestFailure(source=v, error=v) for v in HOSTILE])
    cli._print_report(report)
    captured = capsys.readouterr()
    assert "[bold red]x.txt" in captured.err and "[/]" in captured.err
    assert_inert(captured.out + captured.err)


def test_answer_with_escape_sequences_is_inert(capsys) -> None:
    evil = "\x1b[2J\x1b]0;title\x07\x1b]8;;http://evil.example\x07here\x1b]8;;\x07 [/]"
    answer = Answer(question="q", text=f"The dam opened {evil} [1].",
                    citations=[Citation(number=1, article_id=evil, quote=evil, char_start=0, char_end=5,
                                        title=evil, source=evil, url=f"http://x.example/{evil}")])
    commands.print_answer(answer)
    abstained = Answer(question="q", text=f"Not stated {evil}", abstained=True,
                       related=[RelatedArticle(article_id=evil, title=evil, source=evil)])
    commands.print_answer(abstained)
    captured = capsys.readouterr()
    assert "[/]" in captured.out and "\\x1b]8;;http://evil.example" in captured.out
    assert_inert(captured.out + captured.err)


def test_since_after_until_is_refused() -> None:
    result = invoke("ask", "Who?", "--since", "2024-05-01", "--until", "2024-01-01")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --since 2024-05-01 is after --until 2024-01-01: nothing can match"


def test_markup_in_an_option_value_is_quoted_back() -> None:
    result = invoke("ask", "Who?", "--since", "[/]")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --since wants a date like 2024-10-31, not '[/]'"


@pytest.mark.parametrize("command", ["ask", "sources", "stats", "remove"])
def test_reading_a_data_dir_that_does_not_exist_does_not_create_it(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    args = {"ask": ["ask", "Who?"], "sources": ["sources"], "stats": ["stats"], "remove": ["remove", "x"]}
    result = invoke(*args[command], "--data-dir", str(missing))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: there is no store at {missing}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not missing.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask"], "error: Missing argument 'question'. (see `newsdesk ask --help`)"),
        (["ask", "q", "--bogus"], "error: No such option: --bogus (see `newsdesk ask --help`)"),
        (["nosuch"], "error: No such command 'nosuch'. (see `newsdesk --help`)"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], message: str) -> None:
    result = subprocess.run([str(NEWSDESK), *args], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == message


def test_question_that_is_not_utf8(tmp_path: Path) -> None:
    result = subprocess.run([os.fsencode(NEWSDESK), b"ask", b"who won \xff?", b"--data-dir",
                             os.fsencode(tmp_path / "none")], capture_output=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        "error: the question is not valid UTF-8 text: check the terminal's encoding")


# --- damaged, read-only, unreachable stores --------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_store_is_named_not_shown_empty(damage: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_store(data, [Article(id=f"a{i}", text=f"Story {i}.") for i in range(3)])
    database = data / "chroma" / "chroma.sqlite3"
    if damage == "truncate":
        database.write_bytes(b"")
    else:
        database.unlink()
    for command in (["sources"], ["stats"], ["ask", "Who?"]):
        result = invoke(*command, "--data-dir", str(data))
        assert result.exit_code == 1, result.output
        line = result.stderr.strip()
        assert line.startswith(f"error: the store at {data / 'chroma'} is damaged: chroma.sqlite3 is ")
        assert line.endswith("re-ingest into a new dir (--data-dir NEW) or restore "
                             f"{data / 'chroma'} from a backup")
    assert not database.exists() or database.stat().st_size == 0  # nothing was "repaired" into emptiness


def test_garbage_database_is_called_damaged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_store(data, [Article(id="a", text="Story.")])
    (data / "chroma" / "chroma.sqlite3").write_bytes(os.urandom(40_000))
    result = invoke("sources", "--data-dir", str(data))
    assert result.exit_code == 1
    assert "is damaged: " in result.stderr and "restore" in result.stderr


@pytest.fixture
def read_only_copy(tmp_path: Path):
    """The data dir bind-mounted read-only (root ignores file modes, so a mount is the honest test)."""
    data = tmp_path / "data"
    make_store(data, [Article(id="dam", title="Dam opens", text="The dam opened on Monday.")])
    view = tmp_path / "ro"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(data), str(view)], capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.decode().strip()}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], capture_output=True,
                                 check=False)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.decode().strip()}")
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=False)


def test_read_only_data_dir_can_be_read(read_only_copy: Path) -> None:
    result = invoke("sources", "--data-dir", str(read_only_copy))
    assert result.exit_code == 0, result.output
    assert "Dam opens" in result.stdout
    stats = invoke("stats", "--data-dir", str(read_only_copy), "--json")
    assert stats.exit_code == 0 and "\"articles\": 1" in stats.stdout, stats.output
    refused = invoke("remove", "dam", "--data-dir", str(read_only_copy))
    assert refused.exit_code == 1
    assert "is read-only: reading works, but ingest and remove need write access" in refused.stderr


def test_two_processes_creating_the_same_new_store_both_succeed(tmp_path: Path) -> None:
    script = (
        "import sys, numpy as np\n"
        "from newsdesk.store import Store\nfrom newsdesk.settings import Settings\n"
        "from newsdesk.models import Article, Chunk\n"
        "store = Store.from_settings(Settings(data_dir=sys.argv[1]))\n"
        "a = Article(id=sys.argv[2], text='Story.')\n"
        "store.write_articles([(a, [Chunk(article_id=a.id, index=0, text='Story.', char_start=0, "
        "char_end=6)])], np.ones((1, 8), dtype=np.float32))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for round_ in range(4):
        data = tmp_path / f"data{round_}"
        runs = [subprocess.Popen([sys.executable, "-c", script, str(data), name], env=env,
                                 stderr=subprocess.PIPE) for name in ("one", "two")]
        for run in runs:
            _, stderr = run.communicate(timeout=300)
            assert run.returncode == 0, stderr.decode()[-500:]
        from newsdesk.store import Store

        assert set(Store.from_settings(Settings(data_dir=data), create=False).records()) == {"one", "two"}


@pytest.fixture
def tarpit():
    """A local server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.timeout(60)
def test_tarpit_chroma_server_times_out_with_a_clear_message(tarpit: str, tmp_path: Path) -> None:
    from newsdesk.store import Store

    settings = Settings(data_dir=tmp_path, chroma_url=tarpit, chroma_timeout=1, chroma_connect_timeout=1)
    with pytest.raises(StoreUnavailable) as caught:
        Store.from_settings(settings)
    assert str(caught.value) == (
        f"the Chroma server at {tarpit} accepted the connection but did not answer within 1 s "
        "(NEWSDESK_CHROMA_TIMEOUT); is that address a Chroma server?")
