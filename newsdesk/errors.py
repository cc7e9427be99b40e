"""The error hierarchy. Every message is one line a user can act on."""


class NewsdeskError(Exception):
    """Base class; the CLI prints ``str(error)`` and exits non-zero."""


class UsageError(NewsdeskError):
    """The request itself is wrong (empty question, bad date); exit code 2."""


class EmptyQuestion(UsageError):
    """The question is empty (or only whitespace)."""


class QuestionTooLong(UsageError):
    """The question is longer than ``max_question_chars``; ``length`` and ``limit`` say by how much."""

    def __init__(self, message: str, length: int, limit: int) -> None:
        super().__init__(message)
        self.length = length
        self.limit = limit


class IngestError(NewsdeskError):
    """One input could not be read; ingest names it and carries on with the rest."""


class StoreUnavailable(NewsdeskError):
    """The Chroma store cannot be reached or opened."""


class ModelUnavailable(NewsdeskError):
    """The embedding or reranking model cannot be loaded (missing, wrong checksum)."""


class LLMError(NewsdeskError):
    """The optional LLM failed or timed out; the caller falls back to the offline answerer."""
