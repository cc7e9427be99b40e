"""Several processes on one `chroma run` server: answering processes stay correct while another ingests.

Three long-lived answering processes (the real model, the default answerer; one with a data dir of its
own, two sharing one, as bot shards would) answer questions read from stdin, while separate
`newsdesk ingest` and `newsdesk remove` processes add and remove articles on the same server. Every
answer must be right and cited with verbatim quotes throughout, and each answering process must
answer from a new article at its first question after the ingest that added it has exited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.chroma_server import chroma_server
from tests.support import CUP, SHARED, needs_shared

pytestmark = pytest.mark.slow

NEWSDESK = Path(sys.executable).with_name("newsdesk")
RGB = SHARED / "bench" / "rgb" / "articles.jsonl"
CUP_QUESTION = "Who won the 2031 Harbour Cup?"
BRIDGE = {"id": "bridge", "title": "Footbridge opens", "source": "Orlen Post", "published": "2032-03-04",
          "text": "The Vessa Bridge, a new footbridge in the town of Orlen, was designed by the engineer Petra "
                  "Lindqvist. It opened to walkers in March 2032."}
BRIDGE_QUESTION = "Who designed the Vessa Bridge?"
TEXTS = {**dict(CUP), BRIDGE["id"]: BRIDGE["text"]}

ANSWERER = r'''
import json, sys
from newsdesk.app.runtime import Services
from newsdesk.settings import Settings

services = Services.from_settings(Settings())
print("READY", flush=True)
for line in sys.stdin:
    answer = services.answerer.answer(line.strip())
    lexical = [p.article_id for p in services.searcher.lexical(line.strip(), 10)]  # the BM25 side alone
    print(json.dumps({"text": answer.text, "abstained": answer.abstained, "lexical": lexical,
                      "citations": [c.model_dump(mode="json") for c in answer.citations]}), flush=True)
'''


class Answering:
    """A long-lived answering process: one question in, one JSON answer out."""

    def __init__(self, script: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.process.stdout.readline()
        assert line.strip() == "READY", self.process.stderr.read()[-2000:]

    def ask(self, question: str) -> dict:
        self.process.stdin.write(question + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, self.process.stderr.read()[-2000:]
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def assert_cited(answer: dict, expected: str, article_prefix: str) -> None:
    """Not abstained, names ``expected``, and every quote is verbatim at its offsets in its article."""
    assert not answer["abstained"] and expected in answer["text"], answer["text"]
    assert answer["citations"], answer
    assert any(c["article_id"].startswith(article_prefix) for c in answer["citations"]), answer["citations"]
    for citation in answer["citations"]:
        text = TEXTS.get(citation["article_id"])
        if text is not None:  # filler articles are checked by the answerer's own verification
            assert text[citation["char_start"] : citation["char_end"]] == citation["quote"]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run([str(NEWSDESK), *args], capture_output=True, text=True, env=env, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@needs_shared("bench", "rgb", "articles.jsonl")  # filler articles
def test_answering_processes_stay_right_while_another_ingests_and_removes(tmp_path: Path, embedder) -> None:
    (tmp_path / "server").mkdir()
    with chroma_server(tmp_path / "server" / "db") as url:
        base = {**os.environ, "NEWSDESK_CHROMA_URL": url, "NEWSDESK_COLLECTION": "shared",
                "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        ingest_env = {**base, "NEWSDESK_DATA_DIR": str(tmp_path / "ingest-data")}
        cup = tmp_path / "cup.jsonl"
        cup.write_text("".join(json.dumps({"id": i, "source": "Sail News", "text": t}) + "\n" for i, t in CUP),
                       encoding="utf-8")
        run("ingest", str(cup), env=ingest_env)

        script = tmp_path / "answerer.py"
        script.write_text(ANSWERER, encoding="utf-8")
        answering = [
            Answering(script, {**base, "NEWSDESK_DATA_DIR": str(tmp_path / "shard-a")}),
            Answering(script, {**base, "NEWSDESK_DATA_DIR": str(tmp_path / "shards-bc")}),
            Answering(script, {**base, "NEWSDESK_DATA_DIR": str(tmp_path / "shards-bc")}),
        ]
        try:
            for each in answering:
                assert_cited(each.ask(CUP_QUESTION), "Selma Varga", "cup-varga")
                assert not any(c["article_id"] == "bridge" for c in each.ask(BRIDGE_QUESTION)["citations"])

            assert answering[0].ask(CUP_QUESTION)["lexical"][0].startswith("cup-")
            # churn: 40 filler articles added, 15 of them removed, 20 more added, in separate processes,
            # while every answering process keeps answering (a bounded number of questions)
            lines = RGB.read_text(encoding="utf-8").splitlines(True)
            first, second = tmp_path / "filler-1.jsonl", tmp_path / "filler-2.jsonl"
            first.write_text("".join(lines[:40]), encoding="utf-8")
            second.write_text("".join(lines[40:60]), encoding="utf-8")
            removed = [json.loads(line)["id"] for line in lines[:15]]
            failures: list[BaseException] = []

            def churn() -> None:
                try:
                    run("ingest", str(first), env=ingest_env)
                    run("remove", *removed, env=ingest_env)
                    run("ingest", str(second), env=ingest_env)
                except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                    failures.append(exc)

            writer = threading.Thread(target=churn)
            writer.start()
            asked = 0
            while writer.is_alive() and asked < 60:
                for each in answering:
                    assert_cited(each.ask(CUP_QUESTION), "Selma Varga", "cup-varga")
                asked += 1
            writer.join(timeout=600)
            assert not writer.is_alive() and not failures, failures
            assert asked >= 1

            # a new article: each process answers from it at its first question after the ingest exits
            bridge = tmp_path / "bridge.jsonl"
            bridge.write_text(json.dumps(BRIDGE) + "\n", encoding="utf-8")
            run("ingest", str(bridge), env=ingest_env)
            for each in answering:
                answer = each.ask(BRIDGE_QUESTION)
                assert_cited(answer, "Petra Lindqvist", "bridge")
                assert answer["lexical"][:1] == ["bridge"]  # BM25 in each process caught up too
            # and removed: at the next question no process cites it any more
            run("remove", "bridge", env=ingest_env)
            for each in answering:
                answer = each.ask(BRIDGE_QUESTION)
                assert not any(c["article_id"] == "bridge" for c in answer["citations"]), answer
                assert "Lindqvist" not in answer["text"] and "bridge" not in answer["lexical"]
                assert_cited(each.ask(CUP_QUESTION), "Selma Varga", "cup-varga")
            # the removed filler articles are gone from every process's BM25 side, the kept ones are there
            for number in (0, 20, 45):
                row = json.loads(lines[number])
                answer = answering[number % 3].ask(row["text"][:200])
                if number < 15:
                    assert not set(answer["lexical"]) & set(removed), answer["lexical"]
                else:
                    assert row["id"] in answer["lexical"], (row["id"], answer["lexical"])
        finally:
            for each in answering:
                each.close()
