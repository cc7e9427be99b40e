"""SQLite store for answers shown in Discord and the votes users give them, and the eval-stub export.

Two tables: ``answers`` keeps each answer the bot sent (so a 👍/👎 click, which carries only an
answer id in its button's custom_id, can be tied back to the question even after a restart), and
``feedback`` keeps one vote per user per answer. User ids are stored only as salted SHA-256 hashes.
The salt is kept apart from the database, in a key file next to it (``feedback.key``, mode 0600) or in
the ``NEWSDESK_FEEDBACK_SALT`` setting: someone holding a copy of the database and a member list cannot
recompute the hashes. The database file is created 0600 too (SQLite gives its WAL files the same mode).
A database from before keeps its hashes: its salt is moved out to the key file on first open.

Every method opens its own short-lived connection, so the store can be called from worker threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from newsdesk.models import ABSTAIN_TEXT, Answer

Vote = Literal["up", "down"]

#: How many answers are kept for later votes; older ones are pruned (their votes are kept).
KEEP_ANSWERS = 20_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    answer_id TEXT NOT NULL UNIQUE,
    question TEXT NOT NULL,
    answer_json TEXT NOT NULL,
    channel_id INTEGER,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    answer_id TEXT,
    question TEXT NOT NULL,
    answer_json TEXT NOT NULL,
    citations_json TEXT NOT NULL,
    channel_id INTEGER,
    user_hash TEXT NOT NULL,
    vote TEXT NOT NULL CHECK (vote IN ('up', 'down')),
    reason TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (answer_id, user_hash)
);
"""


@dataclass(frozen=True)
class FeedbackRow:
    """One stored vote."""

    id: int
    answer_id: str | None
    question: str
    answer_json: str
    citations: list[dict[str, object]]
    channel_id: int | None
    user_hash: str
    vote: Vote
    reason: str | None
    created_at: str

    @property
    def answer(self) -> Answer:
        """The answer that was voted on."""
        return Answer.model_validate_json(self.answer_json)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _normalise(question: str) -> str:
    return " ".join(question.casefold().split())


def _private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only, or make an existing one so."""
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(descriptor)
    os.chmod(path, 0o600)


def _write_key(path: Path, value: str, *, replace: bool = False) -> bool:
    """Write the salt to a new 0600 file; False when the file exists (another process made it first)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(value + "\n")
    os.chmod(path, 0o600)
    return True


def _read_or_make_key(path: Path) -> str:
    if not path.exists():
        _write_key(path, secrets.token_hex(16))
    value = path.read_text(encoding="ascii").strip()
    if not value:
        raise ValueError(f"the feedback key file {path} is empty; restore it or remove it with the database")
    return value


class FeedbackStore:
    """Answers and votes in one SQLite file; see the module docstring."""

    def __init__(self, path: Path | str, *, salt: str | None = None, key_path: Path | str | None = None):
        """Open (creating directories and tables as needed) the database at ``path``.

        Args:
            path: The SQLite file.
            salt: The salt for hashing user ids (a setting); by default the one in ``key_path``, made
                at random on first use.
            key_path: Where that salt is kept; defaults to ``path`` with the suffix ``.key``.
        """
        self.path = Path(path)
        self.key_path = Path(key_path) if key_path is not None else self.path.with_suffix(".key")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _private_file(self.path)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            legacy = conn.execute("SELECT value FROM meta WHERE key = 'user_salt'").fetchone()
            if legacy is not None and salt is None:
                _write_key(self.key_path, legacy[0], replace=True)  # keep the old hashes comparable
            if legacy is not None:
                conn.execute("DELETE FROM meta WHERE key = 'user_salt'")
        self._salt = salt or _read_or_make_key(self.key_path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10)) as conn:
            with conn:  # commits, or rolls back on error
                yield conn

    def hash_user(self, user_id: int) -> str:
        """Salted SHA-256 of a Discord user id: stable within this database, not reversible by lookup."""
        return hashlib.sha256(f"{self._salt}:{user_id}".encode()).hexdigest()

    # --- answers --------------------------------------------------------------------------------

    def remember_answer(self, answer: Answer, channel_id: int | None) -> str:
        """Store an answer that is about to be shown and return its new id (16 hex characters)."""
        answer_id = secrets.token_hex(8)
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO answers (answer_id, question, answer_json, channel_id, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (answer_id, answer.question, answer.model_dump_json(), channel_id, _now()),
            )
            conn.execute(
                "DELETE FROM answers WHERE seq <= (SELECT MAX(seq) FROM answers) - ?", (KEEP_ANSWERS,)
            )
        return answer_id

    def get_answer(self, answer_id: str) -> tuple[Answer, int | None] | None:
        """The stored answer and its channel id, or None when unknown or pruned."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT answer_json, channel_id FROM answers WHERE answer_id = ?", (answer_id,)
            ).fetchone()
        if row is None:
            return None
        return Answer.model_validate_json(row[0]), row[1]

    # --- votes ----------------------------------------------------------------------------------

    def record(
        self,
        *,
        question: str,
        answer: Answer,
        channel_id: int | None,
        user_id: int,
        vote: Vote,
        reason: str | None = None,
        answer_id: str | None = None,
    ) -> int:
        """Store a vote and return its row id.

        With an ``answer_id`` a user has one vote per answer: voting again replaces the earlier vote
        (and its reason).
        """
        if vote not in ("up", "down"):
            raise ValueError(f"vote must be 'up' or 'down', not {vote!r}")
        citations = json.dumps([c.model_dump(mode="json") for c in answer.citations], ensure_ascii=False)
        with self._connect() as conn:
            row = conn.execute(
                "INSERT INTO feedback (answer_id, question, answer_json, citations_json, channel_id, "
                "user_hash, vote, reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (answer_id, user_hash) DO UPDATE SET vote = excluded.vote, "
                "reason = excluded.reason, created_at = excluded.created_at RETURNING id",
                (
                    answer_id,
                    question,
                    answer.model_dump_json(),
                    citations,
                    channel_id,
                    self.hash_user(user_id),
                    vote,
                    reason,
                    _now(),
                ),
            ).fetchone()
        return int(row[0])

    def vote(self, answer_id: str, *, user_id: int, vote: Vote, reason: str | None = None) -> int | None:
        """Record a vote on a remembered answer; None when the answer is unknown or pruned."""
        found = self.get_answer(answer_id)
        if found is None:
            return None
        answer, channel_id = found
        return self.record(
            question=answer.question,
            answer=answer,
            channel_id=channel_id,
            user_id=user_id,
            vote=vote,
            reason=reason,
            answer_id=answer_id,
        )

    def set_reason(self, row_id: int, reason: str | None) -> None:
        """Attach the reason a user gave (in the 👎 modal) to their vote."""
        with self._connect() as conn:
            cleaned = (reason or "").strip() or None
            conn.execute("UPDATE feedback SET reason = ? WHERE id = ?", (cleaned, row_id))

    def rows(self) -> list[FeedbackRow]:
        """Every stored vote, oldest first."""
        with self._connect() as conn:
            found = conn.execute(
                "SELECT id, answer_id, question, answer_json, citations_json, channel_id, user_hash, vote, "
                "reason, created_at FROM feedback ORDER BY id"
            ).fetchall()
        return [
            FeedbackRow(
                id=r[0],
                answer_id=r[1],
                question=r[2],
                answer_json=r[3],
                citations=json.loads(r[4]),
                channel_id=r[5],
                user_hash=r[6],
                vote=r[7],
                reason=r[8],
                created_at=r[9],
            )
            for r in found
        ]

    # --- export ---------------------------------------------------------------------------------

    def export_stubs(self, out_path: Path | str) -> int:
        """Write the 👎 questions as stub eval items (JSON lines) for a maintainer to complete.

        The layout follows ``eval/README.md`` with ``answerable`` left ``null`` and empty ``answers``
        and ``evidence``; ``note`` holds the users' reasons and ``answer_given`` the answer they
        rejected. A question downvoted several times yields one stub. The file is overwritten.

        Returns:
            The number of stubs written.
        """
        stubs: dict[str, dict[str, object]] = {}
        reasons: dict[str, list[str]] = {}
        for row in self.rows():
            if row.vote != "down":
                continue
            key = _normalise(row.question)
            answer = row.answer
            given = answer.text or (ABSTAIN_TEXT if answer.abstained else "")
            stub = stubs.get(key)
            if stub is None:
                stub = {
                    "id": "fb-" + hashlib.sha256(key.encode()).hexdigest()[:10],
                    "question": row.question,
                    "answerable": None,
                    "answers": [],
                    "evidence": [],
                    "note": None,
                    "answer_given": given,
                }
                stubs[key] = stub
            else:
                stub["answer_given"] = given  # the latest rejected answer
            if row.reason and row.reason not in reasons.setdefault(key, []):
                reasons[key].append(row.reason)
                stub["note"] = " | ".join(reasons[key])
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as handle:
            for stub in stubs.values():
                handle.write(json.dumps(stub, ensure_ascii=False) + "\n")
        return len(stubs)
