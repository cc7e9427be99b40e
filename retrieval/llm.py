"""The optional LLM answerer: a chat model drafts the answer, code checks every quote and numbers the sources.

The model sees the retrieved passages numbered ``[1]..[n]`` between random boundary lines that mark them
as untrusted data (``prompts/answer.md``) and replies with JSON: sentences, each with source numbers and
a quote per source. Nothing it says is shown unchecked. Every quote must lie verbatim (whitespace
folded) in the passage it names; one found in another retrieved passage is re-attributed, one differing
only in typographic punctuation is re-quoted from the stored text, and both count as ``repaired``; any
other claim is ``dropped``, and a sentence left without a verified quote is dropped too. The final
numbers come from :class:`~retrieval.citations.CitationBook`, so markers and sources cannot disagree.
When the model fails, times out or replies with something unparseable, the offline answerer answers and
``Answer.metadata["fallback"]`` says why.

``NEWSDESK_LLM=provider:model`` picks the model through LangChain's ``init_chat_model``, e.g.
``ollama:llama3.1`` or ``openai:gpt-4o-mini`` (with ``NEWSDESK_LLM_BASE_URL`` for any OpenAI-compatible
server such as llama.cpp's, and ``NEWSDESK_LLM_API_KEY``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from string import Template
from typing import Any

from langchain.chat_models import init_chat_model
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field, ValidationError, field_validator

import prompts
from newsdesk.errors import LLMError
from newsdesk.models import Answer, AnswerSentence, Passage
from newsdesk.settings import Settings
from newsdesk.store import Store
from newsdesk.text import fold, validate_question
from retrieval import timeframe  # time (issue 11)
from retrieval.answer import abstention, retrieval_query
from retrieval.base import Answerer, SearchFilters, Turn
from retrieval.citations import CitationBook, locate, render
from retrieval.search import HybridSearcher

logger = logging.getLogger(__name__)

#: Separates a prompt file's system part from its user part.
USER_MARKER = "<!-- user -->"
#: Placeholder key for OpenAI-compatible servers that want no key (llama.cpp, vLLM) when none is set.
_NO_KEY = "not-needed"
#: Model names that reject a temperature other than the default.
_FIXED_TEMPERATURE = re.compile(r"^(o\d|gpt-5(?!-chat))", re.I)
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.S)
_MARKERS = re.compile(r"\s*\[\d+(?:\s*[,;]\s*\d+)*\]")
# One-to-one character replacements, so offsets in the normalised text are offsets in the original.
_PUNCTUATION = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u00a0": " ",
})


# --- the chat model ----------------------------------------------------------------------------------
def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``NEWSDESK_LLM`` into (provider, model); the model part may itself hold colons.

    Raises:
        LLMError: ``spec`` is not ``provider:model``.

    """
    provider, sep, model = spec.strip().partition(":")
    provider, model = provider.strip().lower().replace("-", "_"), model.strip()
    if not sep or not provider or not model:
        raise LLMError(
            f"NEWSDESK_LLM={spec!r} is not provider:model (for example ollama:llama3.1 or openai:gpt-4o-mini)"
        )
    return provider, model


def provider_kwargs(provider: str, model: str, settings: Settings) -> dict[str, Any]:
    """Keyword arguments for the provider's chat model class: base URL, key, timeout, temperature."""
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    if provider == "ollama":
        client: dict[str, Any] = {"timeout": settings.llm_timeout}
        if key:  # e.g. an Ollama behind an authenticating proxy
            client["headers"] = {"Authorization": f"Bearer {key}"}
        # format="json" constrains decoding to valid JSON; both prompts ask for a JSON object
        kwargs: dict[str, Any] = {"format": "json", "temperature": 0, "client_kwargs": client}
        if settings.llm_base_url:
            kwargs["base_url"] = settings.llm_base_url
        return kwargs
    kwargs = {"timeout": settings.llm_timeout}
    if settings.llm_base_url:
        kwargs["base_url"] = settings.llm_base_url
    if key:
        kwargs["api_key"] = key
    if provider in ("openai", "azure_openai"):
        kwargs["max_retries"] = 1  # the answerer falls back instead of waiting through retries
    if not _FIXED_TEMPERATURE.match(model):
        kwargs["temperature"] = 0  # quotes are copied, not composed
    return kwargs


def chat_model_from_settings(settings: Settings) -> BaseChatModel:
    """The chat model named by ``settings.llm`` (``provider:model``), built with ``init_chat_model``.

    Raises:
        LLMError: ``settings.llm`` is unset or malformed, the provider is unknown, its package is not
            installed, or the model cannot be set up (e.g. no API key).

    """
    if not settings.llm:
        raise LLMError("no LLM configured: set NEWSDESK_LLM=provider:model, e.g. ollama:llama3.1")
    spec = settings.llm
    provider, model = parse_spec(spec)
    kwargs = provider_kwargs(provider, model, settings)
    try:
        return init_chat_model(model, model_provider=provider, **kwargs)
    except ImportError as exc:
        named = re.search(r"requires the ([\w.-]+) package", str(exc))
        package = named.group(1) if named else f"langchain-{provider.replace('_', '-')}"
        raise LLMError(
            f"NEWSDESK_LLM={spec!r} needs the {package} package: pip install {package}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - every provider fails in its own way; the user needs one line
        if isinstance(exc, ValueError) and str(exc).startswith("Unsupported"):
            raise LLMError(
                f"NEWSDESK_LLM={spec!r}: unknown provider {provider!r} (for example ollama, openai)"
            ) from None
        if provider == "openai" and settings.llm_base_url and not settings.llm_api_key:
            try:  # a local OpenAI-compatible server usually wants no key, but the client insists on one
                return init_chat_model(model, model_provider=provider, **kwargs, api_key=_NO_KEY)
            except Exception:  # noqa: BLE001
                pass
        raise LLMError(
            f"cannot set up NEWSDESK_LLM={spec!r} ({type(exc).__name__}: {one_line(str(exc))}); "
            "check NEWSDESK_LLM_API_KEY and NEWSDESK_LLM_BASE_URL"
        ) from None


# --- what the model must return ----------------------------------------------------------------------
class Claim(BaseModel):
    """A source number and the quote the model says it copied from that source."""

    source: int | None = None
    quote: str = ""

    @field_validator("source", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        # "[2]", "2" and 2 all mean source 2; anything else is an unknown source (repaired or dropped)
        if isinstance(value, bool):
            return None
        if isinstance(value, str):
            match = re.fullmatch(r"\s*\[?\s*(\d+)\s*\]?\s*", value)
            return int(match.group(1)) if match else None
        if isinstance(value, float):
            return int(value) if value.is_integer() else None
        return value if isinstance(value, int) else None

    @field_validator("quote", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        return "" if value is None else value


class DraftSentence(BaseModel):
    """One sentence as the model wrote it, with its claimed support."""

    text: str
    citations: list[Claim] = Field(default_factory=list)


class Draft(BaseModel):
    """The model's whole reply. ``answerable: false`` is its explicit "the passages don't say"."""

    answerable: bool = True
    sentences: list[DraftSentence] = Field(default_factory=list)


def _strip_wrapping(reply: str) -> str:
    text = _THINK.sub("", reply).strip()
    fence = _FENCE.search(text)
    return fence.group(1).strip() if fence else text


def _first_json(text: str) -> Any:
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        raise LLMError("the model's reply holds no JSON object")
    try:
        value, _ = json.JSONDecoder().raw_decode(text, min(starts))
    except json.JSONDecodeError as exc:
        raise LLMError(f"the model's reply is not valid JSON ({exc.msg} at character {exc.pos})") from None
    return value


def parse_draft(reply: str) -> Draft:
    """The :class:`Draft` in a model reply; tolerates code fences, ``<think>`` blocks and text around it.

    Raises:
        LLMError: no JSON object, invalid JSON, or JSON that does not fit the schema.

    """
    data = _first_json(_strip_wrapping(reply))
    if isinstance(data, list):  # a bare list of sentences
        data = {"sentences": data}
    try:
        return Draft.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "reply"
        raise LLMError(f"the model's JSON does not fit the answer schema ({where}: {first['msg']})") from None


def parse_question(reply: str) -> str:
    """The standalone question in a condensing reply: ``{"question": ...}`` or a plain line of text."""
    text = _strip_wrapping(reply)
    if text.startswith(("{", "[")) or '"question"' in text:
        try:
            data = _first_json(text)
        except LLMError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("question"), str):
            return one_line(data["question"])
    for line in text.splitlines():
        line = re.sub(r"^\s*(standalone question|question)\s*:\s*", "", line, flags=re.I).strip().strip('"“”')
        if line:
            return one_line(line)
    return ""


def one_line(text: str, limit: int = 200) -> str:
    """``text`` folded onto one line and cut to ``limit`` characters."""
    text = fold(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split_prompt(text: str) -> tuple[str, str]:
    """(system part, user part) of a prompt file."""
    system, marker, user = text.partition(USER_MARKER)
    if not marker:
        raise LLMError(f"prompt has no {USER_MARKER} line")
    return system.strip(), user.strip()


def format_source(number: int, passage: Passage, boundary: str) -> str:
    """One numbered passage between boundary lines, with a bracketed header of its article's metadata."""
    header = " · ".join(
        part for part in (passage.source, passage.published.isoformat() if passage.published else "",
                          passage.title) if part
    )
    lines = [f"<<<SOURCE {number} {boundary}>>>"]
    if header:
        lines.append(f"[{header}]")
    lines.append(passage.text.strip())
    lines.append(f"<<<END SOURCE {number} {boundary}>>>")
    return "\n".join(lines)


@dataclass
class _Support:
    """A verified span supporting a sentence."""

    passage: Passage
    start: int
    end: int
    repaired: bool


# --- the answerer ------------------------------------------------------------------------------------
class LLMAnswerer:
    """Answers with a chat model; every quote it gives is verified and numbered by code.

    Args:
        chat_model: any LangChain chat model (see :func:`chat_model_from_settings`).
        searcher: hybrid search over the store.
        store: where article texts are read for verifying quotes.
        settings: top_k, llm_timeout, max_question_chars.
        fallback: the offline answerer used when the model fails.

    """

    #: a quote shorter than this (after folding whitespace) supports nothing
    min_quote_chars = 8
    #: answers of earlier turns are cut to this many characters in the condensing prompt
    history_answer_chars = 600

    def __init__(
        self,
        chat_model: BaseChatModel,
        searcher: HybridSearcher,
        store: Store,
        settings: Settings,
        fallback: Answerer,
    ) -> None:
        self.chat_model = chat_model
        self.searcher = searcher
        self.store = store
        self.settings = settings
        self.fallback = fallback
        self.name = f"llm:{_model_name(chat_model, settings)}"

    def answer(
        self,
        question: str,
        *,
        history: list[Turn] | None = None,
        filters: SearchFilters | None = None,
        k: int | None = None,
    ) -> Answer:
        """Answer ``question`` from the store with the chat model, abstain, or fall back.

        Raises:
            UsageError: the question is empty or too long.

        """
        started = time.perf_counter()
        question = validate_question(question, self.settings)
        timings: dict[str, float] = {}
        notes: dict[str, object] = {}
        llm_seconds = 0.0
        prompt_question, query = question, question
        if history:
            before = time.perf_counter()
            try:
                prompt_question = query = self.condense(question, history)
                notes["standalone_question"] = query
            except Exception as exc:  # noqa: BLE001 - any failure: retrieve as the offline answerer does
                query = retrieval_query(question, history)
                notes["condense_error"] = _reason(exc)
                logger.warning("condensing the follow-up failed: %s", notes["condense_error"])
            llm_seconds += time.perf_counter() - before
            timings["condense_ms"] = _ms(time.perf_counter() - before)
        filters, _ = timeframe.narrow(question, filters, self.settings.as_of, self.searcher)  # time (issue 11)
        before = time.perf_counter()
        passages = self.searcher.search(query, k=k or self.settings.top_k, filters=filters)
        timings["retrieve_ms"] = _ms(time.perf_counter() - before)
        if not passages:
            answer = self._abstain(question, passages, "nothing was retrieved")
        else:
            before = time.perf_counter()
            try:
                draft = parse_draft(self._invoke(self.answer_messages(prompt_question, passages)))
            except Exception as exc:  # noqa: BLE001 - any failure of the model: answer offline and say so
                llm_seconds += time.perf_counter() - before
                answer = self._fall_back(question, _reason(exc), history, filters, k)
                answer.metadata = {**answer.metadata, **notes}
                answer.timings = {
                    **answer.timings,
                    **{key: value for key, value in timings.items() if key != "retrieve_ms"},
                    "llm_ms": _ms(llm_seconds),
                    "total_ms": _ms(time.perf_counter() - started),
                }
                return answer
            llm_seconds += time.perf_counter() - before
            answer = self._compose(question, draft, passages)
        answer.metadata = {**answer.metadata, **notes}
        answer.timings = {
            **timings,
            "llm_ms": _ms(llm_seconds),
            "total_ms": _ms(time.perf_counter() - started),
        }
        return answer

    # --- prompts ---------------------------------------------------------------------------------
    def answer_messages(
        self, question: str, passages: list[Passage], boundary: str | None = None
    ) -> list[BaseMessage]:
        """The answering prompt: rules as the system message, numbered delimited sources and the question."""
        boundary = boundary or _boundary(passages)
        system, user = split_prompt(prompts.load("answer"))
        sources = "\n\n".join(format_source(n, p, boundary) for n, p in enumerate(passages, start=1))
        return [
            SystemMessage(Template(system).substitute(boundary=boundary)),
            HumanMessage(Template(user).substitute(boundary=boundary, sources=sources, question=question)),
        ]

    def condense_messages(self, question: str, history: list[Turn]) -> list[BaseMessage]:
        """The condensing prompt: earlier turns and the follow-up to rewrite."""
        system, user = split_prompt(prompts.load("condense"))
        turns = "\n\n".join(
            f"User: {one_line(turn.question, 500)}"
            + (f"\nAssistant: {one_line(turn.answer, self.history_answer_chars)}" if turn.answer else "")
            for turn in history
        )
        return [
            SystemMessage(Template(system).substitute()),
            HumanMessage(Template(user).substitute(history=turns, question=question)),
        ]

    def condense(self, question: str, history: list[Turn]) -> str:
        """``question`` rewritten by the model as a standalone question, using ``history``.

        Raises:
            LLMError: the model failed, timed out or returned no question.

        """
        standalone = parse_question(self._invoke(self.condense_messages(question, history)))
        if not standalone:
            raise LLMError("the model returned no standalone question")
        return standalone[: self.settings.max_question_chars]

    def _invoke(self, messages: list[BaseMessage]) -> str:
        """The model's reply text, or LLMError after ``settings.llm_timeout`` seconds.

        The call runs in a daemon thread so that a provider ignoring its own timeout cannot hold the
        question (or the process) hostage; the context is copied so LangChain callbacks still apply.
        """
        box: dict[str, Any] = {}
        done = threading.Event()
        context = contextvars.copy_context()

        def run() -> None:
            try:
                box["reply"] = context.run(self.chat_model.invoke, messages)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=run, name="newsdesk-llm", daemon=True).start()
        if not done.wait(self.settings.llm_timeout):
            raise LLMError(
                f"the model did not reply within {self.settings.llm_timeout:g}s (NEWSDESK_LLM_TIMEOUT)"
            )
        if "error" in box:
            raise box["error"]
        return _text(box["reply"])

    # --- checking ----------------------------------------------------------------------------------
    def _compose(self, question: str, draft: Draft, passages: list[Passage]) -> Answer:
        if not draft.answerable:
            return self._abstain(question, passages, "the model found no answer in the passages")
        texts = self.store.article_texts(sorted({p.article_id for p in passages}))
        normalised: dict[str, str] = {}
        book = CitationBook(texts)
        counts = _no_counts()
        sentences: list[AnswerSentence] = []
        for drafted in draft.sentences:
            supports = []
            for claim in drafted.citations:
                support = self._support(claim, passages, texts, normalised)
                if support is None:
                    counts["dropped"] += 1
                else:
                    counts["repaired"] += support.repaired
                    supports.append(support)
            text = _MARKERS.sub("", drafted.text).strip()
            if not text or not supports:
                counts["dropped_sentences"] += 1
                continue
            # numbered only now, for a sentence that is shown: numbers follow first use with no gaps
            numbers = [book.cite(s.passage, s.start, s.end) for s in supports]
            numbers = list(dict.fromkeys(n for n in numbers if n is not None))
            sentences.append(AnswerSentence(text=text, citations=numbers))
        if not sentences:
            reason = "no sentence had a verified quote" if draft.sentences else "the model gave no sentences"
            return self._abstain(question, passages, reason, counts)
        return Answer(
            question=question,
            text=render(sentences),
            sentences=sentences,
            citations=book.citations,
            answerer=self.name,
            metadata=dict(counts),
        )

    def _support(
        self, claim: Claim, passages: list[Passage], texts: dict[str, str], normalised: dict[str, str]
    ) -> _Support | None:
        """Where ``claim``'s quote lies: in the passage it names, else in another retrieved passage."""
        quote = claim.quote.strip()
        if len(fold(quote)) < self.min_quote_chars:
            return None
        named = claim.source - 1 if claim.source is not None and 1 <= claim.source <= len(passages) else None
        order = ([named] if named is not None else []) + [i for i in range(len(passages)) if i != named]
        for exact in (True, False):  # an exact match anywhere beats a punctuation-normalised one
            for i in order:
                passage = passages[i]
                text = texts.get(passage.article_id)
                if text is None:
                    continue
                if exact:
                    span = locate(quote, text, passage.char_start, passage.char_end)
                else:
                    if passage.article_id not in normalised:
                        normalised[passage.article_id] = text.translate(_PUNCTUATION)
                    span = locate(quote.translate(_PUNCTUATION), normalised[passage.article_id],
                                  passage.char_start, passage.char_end)
                if span:
                    return _Support(passage, span[0], span[1], repaired=(i != named) or not exact)
        return None

    # --- outcomes ----------------------------------------------------------------------------------
    def _abstain(
        self, question: str, passages: list[Passage], reason: str, counts: dict[str, int] | None = None
    ) -> Answer:
        return abstention(
            question, passages, self.name, {**(counts or _no_counts()), "abstain_reason": reason}
        )

    def _fall_back(
        self,
        question: str,
        reason: str,
        history: list[Turn] | None,
        filters: SearchFilters | None,
        k: int | None,
    ) -> Answer:
        """The fallback's answer to ``question``, saying in ``metadata["fallback"]`` why it was needed."""
        logger.warning("%s fell back to %s: %s", self.name, self.fallback.name, reason)
        answer = self.fallback.answer(question, history=history, filters=filters, k=k)
        answer.answerer = answer.answerer or self.fallback.name
        answer.metadata = {**answer.metadata, "fallback": reason}
        return answer


def _no_counts() -> dict[str, int]:
    return {"repaired": 0, "dropped": 0, "dropped_sentences": 0}


def _boundary(passages: list[Passage]) -> str:
    """A random code no passage contains, so no passage can forge the line that closes it."""
    while True:
        boundary = secrets.token_hex(6)
        if not any(boundary in p.text or boundary in p.title for p in passages):
            return boundary


def _text(reply: object) -> str:
    text = getattr(reply, "text", reply)
    if callable(text):  # langchain-core < 1 had text() as a method
        text = text()
    return text if isinstance(text, str) else str(text)


def _reason(exc: BaseException) -> str:
    """One line saying why the model's answer could not be used."""
    if isinstance(exc, LLMError):
        return one_line(str(exc))
    return f"the model call failed ({type(exc).__name__}: {one_line(str(exc), 160)})"


def _model_name(chat_model: BaseChatModel, settings: Settings) -> str:
    if settings.llm and ":" in settings.llm:
        return settings.llm.partition(":")[2].strip()
    for attribute in ("model_name", "model", "model_id"):
        value = getattr(chat_model, attribute, None)
        if isinstance(value, str) and value:
            return value
    return chat_model._llm_type


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
