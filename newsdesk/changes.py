"""A change feed of the store: which articles a write touched, in sequence, for indexes derived from Chroma.

The ``<name>-changes`` collection holds one small entry per article write or removal, and its collection
metadata holds ``seq``, a counter bumped by every write. Indexes kept outside Chroma (the SQLite BM25
index of :mod:`retrieval.lexical`) read the entries after the last ``seq`` they applied, fetch the
current state of just those articles and apply it: catching up costs what changed, not the archive.

A write logs its *intent* first (``put`` with the version being written, or ``delete``), before any
chunk changes, and bumps ``seq`` once more when it is done. So a writer killed at any point leaves an
entry behind: a reader waits for the article's record to be ``ready`` with the logged version (or gone)
before it indexes it, and never indexes a half-written article. Two writers at once may both take the
same ``seq``; entries carry unique ids, and readers look back :data:`LOOKBACK` sequence numbers to
catch an entry that was committed late.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import chromadb

PUT, DELETE = "put", "delete"
#: Sequence numbers a reader looks back for entries another writer committed late under an older seq.
LOOKBACK = 4


@dataclass(frozen=True)
class Change:
    """One logged write: ``op`` on ``article_id``; ``version`` names what a ``put`` writes."""

    entry_id: str
    seq: int
    article_id: str
    op: str
    version: str = ""


def version_of(fingerprint: str, chunking: str) -> str:
    """What identifies a written version of an article: its fingerprint and how it was chunked."""
    return f"{fingerprint}|{chunking}"


class ChangeLog:
    """The ``<name>-changes`` collection.

    Args:
        client: the Chroma client the store uses.
        name: the store's chunk collection name.
    """

    def __init__(self, client: chromadb.ClientAPI, name: str) -> None:
        self.client = client
        self.name = f"{name}-changes"
        self.collection = client.get_or_create_collection(self.name, embedding_function=None)

    def head(self) -> int:
        """The latest sequence number (0 before the first write); read fresh from Chroma."""
        meta = self.client.get_collection(self.name, embedding_function=None).metadata or {}
        return int(meta.get("seq", 0))

    def bump(self) -> int:
        """Increment and return the sequence number (a write begins or ends)."""
        seq = self.head() + 1
        self.collection.modify(metadata={"seq": seq})
        return seq

    def log(self, changes: Sequence[tuple[str, str, str]], max_batch: int) -> int:
        """Log ``(article_id, op, version)`` entries under a new sequence number; return it."""
        seq = self.bump()
        tag = uuid.uuid4().hex[:12]
        for start in range(0, len(changes), max_batch):
            batch = changes[start : start + max_batch]
            self.collection.add(
                ids=[f"{seq:012d}-{tag}-{start + i}" for i in range(len(batch))],
                metadatas=[{"seq": seq, "article_id": a, "op": op, "version": v} for a, op, v in batch],
                embeddings=[[1.0]] * len(batch),
            )
        return seq

    def since(self, seq: int, page: int = 5000) -> list[Change]:
        """Every entry with a sequence number above ``seq``, oldest first."""
        out: list[Change] = []
        offset = 0
        while True:
            got = self.collection.get(where={"seq": {"$gt": seq}}, include=["metadatas"], limit=page,
                                      offset=offset)
            out.extend(_change(entry_id, meta) for entry_id, meta in zip(got["ids"], got["metadatas"],
                                                                          strict=True))
            if len(got["ids"]) < page:
                break
            offset += page
        return sorted(out, key=lambda c: (c.seq, c.entry_id))


def _change(entry_id: str, meta: dict[str, Any]) -> Change:
    return Change(entry_id=entry_id, seq=int(meta["seq"]), article_id=str(meta["article_id"]),
                  op=str(meta["op"]), version=str(meta.get("version", "")))
