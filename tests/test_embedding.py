"""Embedding: the weights' checksum is verified before loading; custom model paths work offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from newsdesk.checksums import file_sha256
from newsdesk.embedding import (
    BUNDLED_SHA256,
    Embedder,
    bundled_model_dir,
    load_sentence_transformer,
    verify_weights,
)
from newsdesk.errors import ModelUnavailable
from newsdesk.settings import BUNDLED_MODEL, Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A faithful copy of the bundled model directory, outside the package."""
    target = tmp_path_factory.mktemp("models") / "minilm-copy"
    shutil.copytree(bundled_model_dir(), target)
    return target


def _tampered(source: Path, target: Path) -> Path:
    """A copy whose weights differ in one byte in the middle: still loadable, but not the same model."""
    shutil.copytree(source, target)
    weights = target / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.seek(weights.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    return target


def test_bundled_model_is_verified_and_normalised(embedder: Embedder) -> None:
    assert file_sha256(bundled_model_dir() / "model.safetensors") == BUNDLED_SHA256
    assert embedder.name == BUNDLED_MODEL
    assert embedder.dimension == 384
    vectors = embedder.encode(["Karachi airport bombing", "a cat sat on the mat", ""])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embedder.embed_query_array("Karachi airport bombing"), vectors[0], atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)
    assert len(embedder.embed_documents(["x", "y"])) == 2


def test_custom_path_with_the_right_checksum_loads_the_same_model(
    model_copy: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSDESK_EMBEDDING_MODEL", str(model_copy))
    monkeypatch.setenv("NEWSDESK_EMBEDDING_SHA256", BUNDLED_SHA256.upper())  # case does not matter
    custom = Embedder.from_settings(Settings())
    assert custom.name == str(model_copy)
    text = ["Security for Chinese nationals in Pakistan"]
    np.testing.assert_allclose(custom.encode(text), embedder.encode(text), atol=1e-5)


def test_custom_path_with_a_wrong_checksum_is_refused(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSDESK_EMBEDDING_MODEL", str(model_copy))
    monkeypatch.setenv("NEWSDESK_EMBEDDING_SHA256", "0" * 64)
    with pytest.raises(ModelUnavailable, match="fail their checksum") as caught:
        Embedder.from_settings(Settings())
    assert "\n" not in str(caught.value)


def test_tampered_weights_are_refused_before_loading(
    model_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tampered = _tampered(model_copy, tmp_path / "tampered")
    with pytest.raises(ModelUnavailable, match="fail their checksum"):
        verify_weights(tampered, BUNDLED_SHA256)

    import sentence_transformers

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before its checksum was checked")

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", must_not_load)
    monkeypatch.setenv("NEWSDESK_EMBEDDING_MODEL", str(tampered))
    monkeypatch.setenv("NEWSDESK_EMBEDDING_SHA256", BUNDLED_SHA256)
    with pytest.raises(ModelUnavailable, match="fail their checksum"):
        Embedder.from_settings(Settings())


def test_tampered_bundled_model_is_refused(
    model_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bundled name always checks the published checksum, wherever the package puts the files.
    tampered = _tampered(model_copy, tmp_path / "tampered")
    monkeypatch.setattr("newsdesk.embedding.bundled_model_dir", lambda: tampered)
    with pytest.raises(ModelUnavailable, match="fail their checksum"):
        Embedder.from_settings(Settings())


def test_missing_model_directory_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no-such-model"
    monkeypatch.setenv("NEWSDESK_EMBEDDING_MODEL", str(missing))
    for sha in (None, BUNDLED_SHA256):
        if sha:
            monkeypatch.setenv("NEWSDESK_EMBEDDING_SHA256", sha)
        with pytest.raises(ModelUnavailable) as caught:
            Embedder.from_settings(Settings())
        message = str(caught.value)
        assert "\n" not in message and str(missing) in message and "does not exist" in message


def test_directory_without_weights_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(ModelUnavailable, match="no weights file"):
        load_sentence_transformer(str(tmp_path / "empty-model"), BUNDLED_SHA256)


def test_unknown_hub_name_fails_offline_with_a_hint() -> None:
    with pytest.raises(ModelUnavailable, match="NEWSDESK_EMBEDDING_MODEL") as caught:
        load_sentence_transformer("newsdesk-tests/no-such-model")
    assert "\n" not in str(caught.value)
