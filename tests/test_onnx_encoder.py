"""The ONNX Runtime backend: sentence-transformers' vectors, from a checked export, with no torch on `ask`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from newsdesk.embedding import BUNDLED_SHA256, Embedder, bundled_model_dir
from newsdesk.errors import ModelUnavailable
from newsdesk.onnx_encoder import MANIFEST, ONNX_FILE, OnnxEncoder, export_dir, mean_pooled
from newsdesk.settings import Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "Who won the Masters golf tournament in 2021?",
    "  Hideki Matsuyama won the 2021 Masters at Augusta National.  ",
    "",
    "Karachi " * 600,  # past the model's 256-token window
    "Ünïcödé — “quotes” and emoji 🙂 survive tokenisation the same way",
]


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    return Embedder.from_settings(Settings(embedding_backend="torch"))


def test_default_backend_is_onnx_and_matches_the_torch_model(
    embedder: Embedder, torch_embedder: Embedder
) -> None:
    assert embedder.backend == "onnx" and torch_embedder.backend == "torch"
    onnx, torch = embedder.encode(TEXTS), torch_embedder.encode(TEXTS)
    assert onnx.shape == torch.shape == (len(TEXTS), 384) and onnx.dtype == np.float32
    np.testing.assert_allclose(onnx, torch, atol=1e-5)
    # batching and order do not change a text's vector
    np.testing.assert_allclose(embedder.model.encode(TEXTS[::-1], batch_size=2)[::-1], onnx, atol=1e-6)


def test_the_export_records_what_it_was_made_from(embedder: Embedder, model_cache: Path) -> None:
    from newsdesk.checksums import file_sha256

    where = export_dir(model_cache, BUNDLED_SHA256)
    manifest = json.loads((where / MANIFEST).read_text())
    assert manifest["weights_sha256"] == BUNDLED_SHA256
    assert manifest["onnx_sha256"] == file_sha256(where / ONNX_FILE)
    assert manifest["max_difference"] < 1e-4


def test_a_corrupted_export_is_ignored_and_made_again(
    tmp_path: Path, embedder: Embedder, model_cache: Path
) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(export_dir(model_cache, BUNDLED_SHA256), export_dir(cache, BUNDLED_SHA256))
    onnx_file = export_dir(cache, BUNDLED_SHA256) / ONNX_FILE
    with onnx_file.open("r+b") as handle:
        handle.seek(onnx_file.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    spec = mean_pooled(bundled_model_dir())
    assert OnnxEncoder.load(spec, cache, BUNDLED_SHA256) is None

    remade = Embedder.from_settings(Settings(model_cache=cache))
    assert remade.backend == "onnx"
    assert OnnxEncoder.load(spec, cache, BUNDLED_SHA256) is not None
    np.testing.assert_allclose(remade.encode(TEXTS), embedder.encode(TEXTS), atol=1e-5)
    assert [p.name for p in (cache / "onnx").iterdir()] == [BUNDLED_SHA256[:32]]  # no staging left behind


def test_an_export_of_other_weights_is_not_used(tmp_path: Path, model_cache: Path) -> None:
    cache = tmp_path / "cache"
    other = "f" * 64
    shutil.copytree(export_dir(model_cache, BUNDLED_SHA256), export_dir(cache, other))
    assert OnnxEncoder.load(mean_pooled(bundled_model_dir()), cache, other) is None  # manifest names others


def test_torch_backend_never_touches_the_cache(tmp_path: Path, torch_embedder: Embedder) -> None:
    Embedder.from_settings(Settings(embedding_backend="torch", model_cache=tmp_path / "cache"))
    assert not (tmp_path / "cache").exists()


def _cls_pooled_copy(target: Path) -> Path:
    shutil.copytree(bundled_model_dir(), target)
    config = target / "1_Pooling" / "config.json"
    pooling = json.loads(config.read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    config.write_text(json.dumps(pooling))
    return target


def test_a_model_of_another_shape_runs_on_torch_or_is_refused_for_onnx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _cls_pooled_copy(tmp_path / "cls-model")
    assert mean_pooled(model) is None and mean_pooled(bundled_model_dir()) is not None
    monkeypatch.setenv("NEWSDESK_EMBEDDING_MODEL", str(model))
    monkeypatch.setenv("NEWSDESK_EMBEDDING_SHA256", BUNDLED_SHA256)
    assert Embedder.from_settings(Settings(model_cache=tmp_path / "cache")).backend == "torch"
    assert not (tmp_path / "cache").exists()
    with pytest.raises(ModelUnavailable, match="cannot run on ONNX") as caught:
        Embedder.from_settings(Settings(embedding_backend="onnx"))
    assert "\n" not in str(caught.value)


def test_answering_imports_neither_torch_nor_langchain_runnables(
    sample_settings: Settings, sample_store, embedder: Embedder, model_cache: Path
) -> None:
    # what a cold `newsdesk ask` pays for: only what answering needs
    script = (
        "import sys\n"
        "from newsdesk.settings import Settings\n"
        "from newsdesk.app.runtime import Services\n"
        f"services = Services.from_settings(Settings(data_dir={str(sample_settings.data_dir)!r}))\n"
        "answer = services.answerer.answer(\n"
        "    'What is happening to the capacity of the Special Protection Unit?')\n"
        "heavy = ['torch', 'transformers', 'sentence_transformers', 'langchain_core.retrievers',\n"
        "         'langchain_core.runnables.base']\n"
        "print(services.embedder.backend, answer.abstained, [m for m in heavy if m in sys.modules])\n"
    )
    env = {**os.environ, "NEWSDESK_MODEL_CACHE": str(model_cache)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["onnx", "False", "[]"]


def test_the_bot_starts_without_torch(sample_settings: Settings, sample_store, embedder: Embedder,
                                      model_cache: Path) -> None:
    # `newsdesk bot` end to end, up to the point where discord.py would connect
    script = (
        "import sys\n"
        "import discord\n"
        "started = []\n"
        "discord.Client.run = lambda self, token, **kwargs: started.append(type(self).__name__)\n"
        "from newsdesk.app.cli import main\n"
        f"sys.argv = ['newsdesk', 'bot', '--data-dir', {str(sample_settings.data_dir)!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "heavy = ['torch', 'transformers', 'sentence_transformers']\n"
        "print(started, code, [m for m in heavy if m in sys.modules])\n"
    )
    env = {**os.environ, "NEWSDESK_MODEL_CACHE": str(model_cache), "NEWSDESK_ALLOWED_GUILDS": "1",
           "DISCORD_TOKEN": "abcdefghijkl.abcdef.abcdefghijklmn"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['NewsBot']", "0", "[]"], done.stdout + done.stderr


def test_onnx_threads_is_a_setting(model_cache: Path) -> None:
    def threads(settings: Settings) -> int:
        model = Embedder.from_settings(settings).model
        return model.session.get_session_options().intra_op_num_threads

    assert threads(Settings(model_cache=model_cache)) == 0  # ONNX Runtime's default: one per core
    assert threads(Settings(model_cache=model_cache, onnx_threads=1)) == 1


def test_batches_keep_lengths_together_and_cover_every_text() -> None:
    from newsdesk.onnx_encoder import _batches

    lengths = [12, 60, 11, 58, 30, 200, 13, 29]
    batches = _batches(lengths, size=3)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert all(len(batch) <= 3 for batch in batches)
    for batch in batches:  # longest first, none padded below three quarters of its length
        assert all(lengths[i] >= 0.75 * lengths[batch[0]] for i in batch)
    assert batches[0] == [5] and [lengths[i] for i in batches[1]] == [60, 58]
    assert _batches([200] * 130, size=64) == [list(range(64)), list(range(64, 128)), [128, 129]]
    assert _batches([], size=8) == []


def test_an_unwritable_cache_leaves_the_model_on_torch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache should be")
    embedder = Embedder.from_settings(Settings(model_cache=blocked))
    assert embedder.backend == "torch"
    assert "embedding on torch" in caplog.text
    assert embedder.encode(["still works"]).shape == (1, 384)
    with pytest.raises(ModelUnavailable, match="EMBEDDING_BACKEND=torch"):
        Embedder.from_settings(Settings(model_cache=blocked, embedding_backend="onnx"))


# --- the int8 variant ---------------------------------------------------------------------------------------
def test_int8_is_made_once_checked_against_the_float_model_and_close_to_it(
    embedder: Embedder, model_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from newsdesk.onnx_encoder import INT8_FILE, INT8_MANIFEST, INT8_MIN_COSINE, INT8_PROBES

    settings = Settings(model_cache=model_cache, embedding_precision="int8")
    int8 = Embedder.from_settings(settings)
    where = export_dir(model_cache, BUNDLED_SHA256)
    manifest = json.loads((where / INT8_MANIFEST).read_text(encoding="utf-8"))
    assert manifest["min_cosine"] >= INT8_MIN_COSINE and manifest["probes"] == len(INT8_PROBES)
    assert manifest["float_onnx_sha256"] == json.loads((where / MANIFEST).read_text())["onnx_sha256"]
    assert int8.backend == "onnx" and int8.name == embedder.name and int8.dimension == embedder.dimension
    texts = [t for t in TEXTS if t]
    cosines = (int8.encode(texts) * embedder.encode(texts)).sum(axis=1)
    assert cosines.min() >= 0.98 and not np.allclose(int8.encode(texts), embedder.encode(texts), atol=1e-4)
    assert (where / INT8_FILE).stat().st_size < 0.8 * (where / ONNX_FILE).stat().st_size
    assert not [p for p in where.iterdir() if p.name.startswith(".")]  # no staging left behind
    assert "pre-processing" not in caplog.text  # the quantizer's advice is not shown to users

    # a damaged int8 file is noticed by its checksum and made again
    stamp = (where / INT8_MANIFEST).stat().st_mtime_ns
    with (where / INT8_FILE).open("r+b") as handle:
        handle.seek((where / INT8_FILE).stat().st_size // 2)
        handle.write(b"\0" * 64)
    again = Embedder.from_settings(settings)
    assert "fails its checksum" in caplog.text and (where / INT8_MANIFEST).stat().st_mtime_ns != stamp
    np.testing.assert_allclose(again.encode(texts), int8.encode(texts), atol=1e-6)


def test_int8_needs_the_onnx_backend(model_cache: Path) -> None:
    with pytest.raises(ModelUnavailable, match="NEWSDESK_EMBEDDING_PRECISION=float32") as caught:
        Embedder.from_settings(Settings(model_cache=model_cache, embedding_precision="int8",
                                        embedding_backend="torch"))
    assert "\n" not in str(caught.value)
