"""`newsdesk ingest / remove / sources / stats` through the real entry point: output and exit codes."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from newsdesk.app import cli

NEWSDESK = Path(sys.executable).with_name("newsdesk")
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
JSON_KEYS = {"added", "updated", "unchanged", "duplicates", "removed", "failed", "chunks_embedded", "seconds"}


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli.app, list(args), env=env)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Good files, a JSONL file with one bad line, and inputs that cannot be read."""
    root = tmp_path / "corpus"
    root.mkdir()
    for path in SAMPLE.glob("*.txt"):
        (root / path.name).write_bytes(path.read_bytes())
    (root / "wire.jsonl").write_text(
        '{"id": "w1", "title": "Dam opens", "source": "Wire", "published": "2024-05-01", '
        '"text": "The new dam opened on Monday. Officials praised the builders."}\n'
        '{"id": "w2", "text": "this line is cut short\n'
        '{"id": "w3", "title": "Port strike", "text": "Dock workers struck at the port on Friday."}\n',
        encoding="utf-8",
    )
    (root / "scan.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    (root / "dangling.txt").symlink_to(root / "no-such-target.txt")
    return root


def data_args(tmp_path: Path) -> list[str]:
    return ["--data-dir", str(tmp_path / "data")]


@pytest.mark.slow
def test_ingest_json_reports_every_outcome_and_exit_1_on_failures(corpus: Path, tmp_path: Path) -> None:
    result = invoke("ingest", str(corpus), "--json", *data_args(tmp_path))
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)  # one JSON object and nothing else on stdout
    assert JSON_KEYS <= set(report)
    assert sorted(report["added"]) == ["000_70bec7e4b0fc20fc.txt", "004_ad935d4100d70209.txt", "w1", "w3"]
    assert report["updated"] == report["unchanged"] == report["duplicates"] == report["removed"] == []
    failed = {Path(f["source"]).name: f["error"] for f in report["failed"]}
    assert set(failed) == {"wire.jsonl:2", "scan.pdf", "dangling.txt"}
    assert "not valid JSON" in failed["wire.jsonl:2"]
    assert "PDF" in failed["scan.pdf"] and "no such file" in failed["dangling.txt"]
    assert report["chunks_embedded"] >= 6 and isinstance(report["seconds"], float)

    again = invoke("ingest", str(corpus), "--json", *data_args(tmp_path))
    second = json.loads(again.stdout)
    assert again.exit_code == 1 and second["chunks_embedded"] == 0 and second["added"] == []
    assert sorted(second["unchanged"]) == sorted(report["added"])


@pytest.mark.slow
def test_ingest_human_summary_and_exit_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke("ingest", str(SAMPLE), *data_args(tmp_path))
    assert result.exit_code == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("added 2, updated 0, unchanged 0, duplicates 0, removed 0, failed 0; ")
    assert "chunks embedded in" in line
    assert re.search(r"embedded in [\d.]+ s \(and \d+ answer sentences\)$", line), line
    assert result.stderr == "", "no progress bar (or anything else) on stderr when it is not a terminal"

    def no_model(settings):
        raise AssertionError("an unchanged corpus must not load the model")

    monkeypatch.setattr(cli, "load_embedder", no_model)
    again = invoke("ingest", str(SAMPLE), *data_args(tmp_path))
    assert again.exit_code == 0 and "unchanged 2" in again.stdout and "; 0 chunks embedded" in again.stdout


@pytest.mark.slow
def test_ingest_failures_named_on_stderr(corpus: Path, tmp_path: Path) -> None:
    result = invoke("ingest", str(corpus), str(tmp_path / "missing-dir"), *data_args(tmp_path))
    assert result.exit_code == 1
    assert "added 4," in result.stdout and "failed 4;" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(errors) == 4 and any("missing-dir: no such file or directory" in line for line in errors)
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_progress_bar_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=screen, force_terminal=True, width=100))
    result = invoke("ingest", str(SAMPLE), *data_args(tmp_path))
    assert result.exit_code == 0
    assert "embedding chunks" in screen.getvalue() and "\x1b[" in screen.getvalue()


@pytest.mark.slow
def test_sources_stats_and_remove(tmp_path: Path) -> None:
    assert invoke("ingest", str(SAMPLE), *data_args(tmp_path)).exit_code == 0
    listed = invoke("sources", "--json", *data_args(tmp_path))
    assert listed.exit_code == 0
    records = json.loads(listed.stdout)
    assert [r["id"] for r in records] == ["000_70bec7e4b0fc20fc.txt", "004_ad935d4100d70209.txt"]
    assert all(r["state"] == "ready" and r["chunks"] >= 1 and len(r["fingerprint"]) == 64 for r in records)
    for columns in ("80", "50", "200"):  # ids are never cut: they are what `remove` takes
        table = invoke("sources", *data_args(tmp_path), env={"COLUMNS": columns})
        assert table.exit_code == 0
        assert "000_70bec7e4b0fc20fc.txt" in table.stdout and "004_ad935d4100d70209.txt" in table.stdout

    stats = invoke("stats", "--json", *data_args(tmp_path))
    info = json.loads(stats.stdout)
    assert info["articles"] == 2 and info["chunks"] == sum(r["chunks"] for r in records)
    assert info["embedding_model"] == "all-MiniLM-L6-v2" and info["generation"] >= 2
    assert "articles" in invoke("stats", *data_args(tmp_path)).stdout

    removed = invoke("remove", "000_70bec7e4b0fc20fc.txt", *data_args(tmp_path))
    assert removed.exit_code == 0 and "removed 000_70bec7e4b0fc20fc.txt" in removed.stdout
    missing = invoke("remove", "000_70bec7e4b0fc20fc.txt", *data_args(tmp_path))
    assert missing.exit_code == 1 and "no such article: 000_70bec7e4b0fc20fc.txt" in missing.stderr
    after = json.loads(invoke("stats", "--json", *data_args(tmp_path)).stdout)
    assert after["articles"] == 1 and after["chunks"] == records[1]["chunks"]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert invoke("ingest").exit_code == 2
    assert invoke("ingest", "x", "--no-such-flag").exit_code == 2
    bad = invoke("ingest", str(SAMPLE), *data_args(tmp_path), env={"NEWSDESK_CHUNK_SIZE": "5"})
    assert bad.exit_code == 2 and "invalid settings" in bad.stderr
    assert invoke("remove").exit_code == 2
    for command in ("ingest", "remove", "sources", "stats"):
        assert "--data-dir" in invoke(command, "--help").stdout


def test_empty_store_lists_nothing(tmp_path: Path) -> None:
    from newsdesk.settings import Settings
    from newsdesk.store import Store

    Store.from_settings(Settings(data_dir=tmp_path / "data"))  # a store with no articles (issue 13: a
    # data dir holding no store at all is refused instead, see test_hostile_cli.py)
    listed = invoke("sources", "--json", *data_args(tmp_path))
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    plain = invoke("sources", *data_args(tmp_path))
    assert plain.exit_code == 0 and "no articles stored yet" in plain.stderr
    assert json.loads(invoke("stats", "--json", *data_args(tmp_path)).stdout)["articles"] == 0


@pytest.mark.slow
def test_missing_embedding_model_is_one_line(tmp_path: Path) -> None:
    env = {"NEWSDESK_EMBEDDING_MODEL": str(tmp_path / "no-model")}
    result = invoke("ingest", str(SAMPLE), *data_args(tmp_path), env=env)
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr


def test_unreachable_chroma_server_real_entry_point(tmp_path: Path) -> None:
    from tests.chroma_server import free_port

    url = f"http://127.0.0.1:{free_port()}"  # released at once: nothing listens there
    env = {**os.environ, "NEWSDESK_CHROMA_URL": url}
    for args in (["ingest", str(SAMPLE)], ["sources"]):
        done = subprocess.run([str(NEWSDESK), *args, "--data-dir", str(tmp_path / "data")], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and f"cannot reach the Chroma server at {url}" in lines[0], done.stderr
        assert "chroma run" in lines[0]
