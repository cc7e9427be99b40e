"""`newsdesk ask` and `newsdesk chat` through the real entry point: output, filters and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsdesk.app import cli
from newsdesk.models import Answer

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
QAZI = "000_70bec7e4b0fc20fc.txt"
REUTERS = "004_ad935d4100d70209.txt"
KARACHI = "How many Chinese engineers were killed in the Karachi airport bombing?"
DAMS = "How many homes will the new dam on the Indus supply with power?"
SPU = "What is happening to the capacity of the Special Protection Unit?"
DATED = [
    {"id": "dam-2022", "title": "Dam opens", "source": "Wire", "published": "2022-01-15",
     "text": "The new hydroelectric dam on the Indus opened on Monday after six years of building. Officials "
             "said the dam would supply power to two million homes."},
    {"id": "dam-2024", "title": "Second dam opens", "source": "Gazette", "published": "2024-05-01",
     "text": "A second hydroelectric dam on the Indus opened on Tuesday. Officials said the new dam would "
             "supply power to three million homes."},
]


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli.app, list(args), input=input, env=env)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample articles and two dated ones, ingested through `newsdesk ingest`."""
    corpus = tmp_path_factory.mktemp("ask-corpus")
    for path in SAMPLE.glob("*.txt"):
        shutil.copy(path, corpus / path.name)
    (corpus / "dams.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DATED), encoding="utf-8")
    data = tmp_path_factory.mktemp("ask-data")
    result = invoke("ingest", str(corpus), "--json", "--data-dir", str(data))
    assert result.exit_code == 0, result.stderr
    assert sorted(json.loads(result.stdout)["added"]) == sorted([QAZI, REUTERS, "dam-2022", "dam-2024"])
    return data


def ask_json(data_dir: Path, question: str, *options: str) -> Answer:
    result = invoke("ask", question, "--json", *options, "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.stderr
    return Answer.model_validate_json(result.stdout)  # one JSON document and nothing else on stdout


def stored_texts(data_dir: Path) -> dict[str, str]:
    from newsdesk.settings import Settings
    from newsdesk.store import Store

    store = Store.from_settings(Settings(data_dir=data_dir))
    return store.article_texts(list(store.records()))


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.slow
def test_ask_json_is_an_answer_with_verified_citations(data_dir: Path) -> None:
    answer = ask_json(data_dir, KARACHI)
    assert not answer.abstained and answer.answerer == "extractive"
    assert {c.article_id for c in answer.citations} == {QAZI, REUTERS}
    texts = stored_texts(data_dir)
    for c in answer.citations:
        assert texts[c.article_id][c.char_start : c.char_end] == c.quote
    assert [c.number for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert "[1]" in answer.text and "killed two Chinese" in answer.text


@pytest.mark.slow
def test_ask_prints_the_answer_and_numbered_sources(data_dir: Path) -> None:
    result = invoke("ask", SPU, "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "The capacity of the Special Protection Unit is being enhanced" in out
    assert "Sources" in out and "[1]" in out
    assert f"{QAZI} @" in out
    assert result.stderr == ""


@pytest.mark.slow
def test_ask_source_filter(data_dir: Path) -> None:
    answer = ask_json(data_dir, KARACHI, "--source", "Reuters")
    assert not answer.abstained
    assert {c.article_id for c in answer.citations} == {REUTERS}
    assert {c.source for c in answer.citations} == {"Reuters"}
    both = ask_json(data_dir, DAMS, "--source", "Wire", "--source", "Gazette", "-k", "2")
    assert {c.article_id for c in both.citations} <= {"dam-2022", "dam-2024"} and both.citations


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (("--since", "2023-01-01"), "dam-2024"),
        (("--until", "2023-01-01"), "dam-2022"),
        (("--since", "2022-01-15", "--until", "2022-01-15"), "dam-2022"),  # both ends inclusive
    ],
)
def test_ask_date_filters(data_dir: Path, options: tuple[str, ...], expected: str) -> None:
    answer = ask_json(data_dir, DAMS, *options)
    assert not answer.abstained
    assert {c.article_id for c in answer.citations} == {expected}


@pytest.mark.slow
def test_ask_date_range_with_nothing_in_it_abstains(data_dir: Path) -> None:
    answer = ask_json(data_dir, DAMS, "--since", "2030-01-01")
    assert answer.abstained and answer.citations == []


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_question_exits_2_with_one_line(tmp_path: Path, question: str) -> None:
    result = invoke("ask", question, "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 2
    assert "empty" in one_line_error(result)
    assert result.stdout == ""


def test_over_long_question_exits_2(tmp_path: Path) -> None:
    result = invoke("ask", "Why " + "x" * 600, "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 2
    assert "500" in one_line_error(result)


@pytest.mark.parametrize(("option", "value"), [("--since", "yesterday"), ("--until", "2024-13-01")])
def test_bad_date_exits_2(tmp_path: Path, option: str, value: str) -> None:
    result = invoke("ask", "When did the dam open?", option, value, "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 2
    line = one_line_error(result)
    assert option in line and repr(value) in line


@pytest.mark.slow
def test_empty_store_says_to_ingest_first(tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    invoke("ingest", str(tmp_path / "nothing"), "--data-dir", str(tmp_path / "empty"))  # a store, no articles
    assert (tmp_path / "empty").is_dir()
    result = invoke("ask", "When did the dam open?", "--data-dir", str(tmp_path / "empty"))
    assert result.exit_code == 2
    assert "newsdesk ingest" in one_line_error(result)


@pytest.mark.slow
def test_unloadable_reranker_exits_1_with_one_line(data_dir: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-reranker")
    result = invoke("ask", SPU, "--data-dir", str(data_dir), env={"NEWSDESK_RERANKER": missing})
    assert result.exit_code == 1
    assert "reranker" in one_line_error(result)


@pytest.mark.slow
def test_chat_answers_a_question_and_its_follow_up_then_quits_on_eof(data_dir: Path) -> None:
    result = invoke("chat", "--data-dir", str(data_dir), input=f"{SPU}\nWho said that?\n")
    assert result.exit_code == 0, result.stderr
    turns = result.stdout.split("? ")
    assert len(turns) == 4  # banner, two answers, the prompt that read EOF
    assert turns[0].startswith("Ask about the articles.")
    first, second = turns[1], turns[2]
    assert "Special Protection Unit is being enhanced" in first and "[1]" in first
    # on its own "Who said that?" finds nothing; after the first question it retrieves with its words
    assert "The articles don't say." not in second
    assert "Sources" in second and QAZI in second
    assert turns[3].strip() == ""


@pytest.mark.slow
def test_chat_reports_a_bad_question_and_carries_on(data_dir: Path) -> None:
    result = invoke("chat", "--data-dir", str(data_dir), input="Why " + "x" * 600 + "\n" + SPU + "\nquit\n")
    assert result.exit_code == 0
    assert "limit is 500" in result.stderr
    assert "Special Protection Unit is being enhanced" in result.stdout


def test_bot_without_a_token_is_a_one_line_usage_error(tmp_path):
    result = CliRunner().invoke(cli.app, ["bot", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "DISCORD_TOKEN" in result.output
    assert "Traceback" not in result.output


def test_short_answer_is_printed_first_then_the_quotes(capsys: pytest.CaptureFixture[str]) -> None:
    from newsdesk.app.commands import print_answer
    from newsdesk.models import Citation

    quote = "The bombing killed two [bold]Chinese[/bold] engineers."
    answer = Answer(question="How many?", text=f"{quote} [1]", short="two [bold]",
                    citations=[Citation(number=1, article_id="a1", quote=quote, char_start=0, char_end=len(quote))])
    print_answer(answer)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "two [bold]"  # the item first; markup in it is text, never style
    assert lines[1] == f"{quote} [1]"
    assert "Sources" in lines
