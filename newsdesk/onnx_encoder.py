"""The embedding model run by ONNX Runtime: the same vectors as sentence-transformers, without torch.

A cold ``newsdesk ask`` used to spend most of its time importing torch and sentence-transformers (5 s
of ~8 s). A model that is a plain transformer followed by mean pooling (and normalisation), as
all-MiniLM-L6-v2 is, is exported once with torch's own ONNX exporter into the model cache; later runs
load that export with onnxruntime and the model's own ``tokenizer.json`` (the Rust ``tokenizers``
library), which import in a fraction of a second and encode faster on a CPU.

An export is trusted only when it matches: its manifest records the SHA-256 of the weights it was made
from (which are themselves verified against the expected checksum first) and of the ONNX file, and
before it is published its vectors are compared with the torch model's on probe texts.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from newsdesk.checksums import file_sha256
from newsdesk.errors import ModelUnavailable

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
MANIFEST = "export.json"
#: Bump when the export's inputs or outputs change, so older exports are made again.
EXPORT_FORMAT = 1
#: Largest difference allowed between the exported model's vectors and the torch model's.
TOLERANCE = 1e-4
PROBES = [
    "Who won the Masters golf tournament in 2021?",
    "Security for Chinese nationals in Pakistan was tightened after the attack near Karachi airport.",
    "",
    "word " * 400,  # longer than the model's window: truncation must match too
]


@dataclass(frozen=True)
class MeanPooledModel:
    """What an export needs to know about a sentence-transformers directory it can reproduce."""

    directory: Path
    max_seq_length: int
    #: ONNX Runtime's intra-op threads for a session over this model; 0 lets it choose (one per core).
    threads: int = 0


def mean_pooled(model_dir: Path) -> MeanPooledModel | None:
    """``model_dir`` as a transformer + mean pooling (+ normalise) model, or None if it is anything else.

    Only that shape is reproduced outside sentence-transformers; other models keep the torch backend.
    """
    try:
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        if modules[0].get("path", "") != "" or not (model_dir / "tokenizer.json").is_file():
            return None
        pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v is True}
        if modes != {"pooling_mode_mean_tokens"}:
            return None
        config = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
        return MeanPooledModel(model_dir, int(config.get("max_seq_length") or 512))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def export_dir(cache: Path, weights_sha256: str) -> Path:
    """Where the export of the weights with this checksum lives."""
    return cache / "onnx" / weights_sha256[:32]


class OnnxEncoder:
    """Encodes texts like ``SentenceTransformer.encode`` does for a mean-pooled model.

    Args:
        model: the model directory (for its tokenizer) and window length.
        onnx_path: the verified export.
        dimension: the embedding size.

    """

    def __init__(self, model: MeanPooledModel, onnx_path: Path, dimension: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model.directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=model.max_seq_length)
        self.tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # its warnings are for model authors, not for users
        options.intra_op_num_threads = model.threads  # NEWSDESK_ONNX_THREADS
        self.session = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dimension = dimension

    @classmethod
    def load(cls, model: MeanPooledModel, cache: Path, weights_sha256: str) -> OnnxEncoder | None:
        """The export for these weights, or None when there is none or it does not check out."""
        where = export_dir(cache, weights_sha256)
        try:
            manifest = json.loads((where / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if manifest.get("format") != EXPORT_FORMAT or manifest.get("weights_sha256") != weights_sha256:
            return None
        onnx_path = where / ONNX_FILE
        if not onnx_path.is_file() or file_sha256(onnx_path) != manifest.get("onnx_sha256"):
            log.warning("ignoring the ONNX export in %s: it fails its checksum", where)
            return None
        try:
            return cls(model, onnx_path, int(manifest["dimension"]))
        except Exception as exc:  # noqa: BLE001 - a broken export falls back to torch
            log.warning("ignoring the ONNX export in %s: %s", where, exc)
            return None

    def get_embedding_dimension(self) -> int:
        """Embedding size, as sentence-transformers names it."""
        return self.dimension

    def encode(
        self,
        texts: list[str],
        *,
        batch_size: int = 64,
        normalize_embeddings: bool = True,
        convert_to_numpy: bool = True,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Embeddings of ``texts`` as an (n, dimension) float32 array, in the order given."""
        del convert_to_numpy  # always numpy
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([text.strip() for text in texts])
        batches = _batches([len(e.ids) for e in encodings], batch_size)
        if show_progress_bar:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="Batches")
        for index in batches:
            out[index] = self._encode_batch([encodings[i] for i in index])
        if normalize_embeddings:
            out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out

    def _encode_batch(self, encodings: list) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            types[row, : len(enc.ids)] = enc.type_ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]
        weights = mask[..., None].astype(np.float32)
        return (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)


def _batches(lengths: list[int], size: int, fill: float = 0.75) -> list[list[int]]:
    """Indices grouped for encoding: longest first, at most ``size`` a batch, little padding.

    Every text in a batch is padded to its longest, and padding costs as much as text. A batch
    therefore also ends where a text is shorter than ``fill`` times the batch's first: a question's
    sentences (10 to 60 tokens) then go in a few tight batches, while a chunk batch stays whole.
    """
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if batches and len(batches[-1]) < size and lengths[i] >= fill * lengths[batches[-1][0]]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def export(
    model: SentenceTransformer, spec: MeanPooledModel, cache: Path, weights_sha256: str
) -> OnnxEncoder:
    """Export the loaded torch ``model`` to ONNX in the cache, check it against the model, publish it.

    The files are written to a temporary directory and moved into place only once the exported
    model's vectors match the torch model's, so a crash or a concurrent export never leaves a
    half-written export behind.

    Raises:
        ModelUnavailable: the export failed or does not reproduce the model.

    """
    import torch

    transformer = model[0].auto_model.eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *tensors):  # noqa: D102 - torch's contract
            return self.transformer(**dict(zip(names, tensors, strict=True))).last_hidden_state

    target = export_dir(cache, weights_sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        tokenize = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
        features = tokenize(PROBES[:2])  # a padded batch of two, as the model's tokenizer makes it
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in features]
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter about a graph that is fine
            torch.onnx.export(
                LastHiddenState(), tuple(features[n] for n in names), str(staging / ONNX_FILE),
                input_names=names, output_names=["hidden"],
                dynamic_axes=dict.fromkeys([*names, "hidden"], {0: "batch", 1: "tokens"}),
                opset_version=17, dynamo=False,
            )
        dimension = int(model.get_embedding_dimension())
        encoder = OnnxEncoder(spec, staging / ONNX_FILE, dimension)
        expected = model.encode(PROBES, normalize_embeddings=True, convert_to_numpy=True)
        difference = float(np.abs(encoder.encode(PROBES) - expected).max())
        if difference > TOLERANCE:
            raise ModelUnavailable(f"the ONNX export differs from the model by {difference:.1e}")
        manifest = {
            "format": EXPORT_FORMAT, "weights_sha256": weights_sha256, "dimension": dimension,
            "onnx_sha256": file_sha256(staging / ONNX_FILE), "max_difference": difference,
            "torch": torch.__version__,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _publish(staging, target)
    except ModelUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as one line; the torch model still works
        raise ModelUnavailable(
            f"cannot export the embedding model to ONNX ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        if staging.exists():
            _remove(staging)
    return OnnxEncoder(spec, target / ONNX_FILE, dimension)


# --- the int8 variant ------------------------------------------------------------------------------------
INT8_FILE = "model-int8.onnx"
INT8_MANIFEST = "int8.json"
#: Bump when the quantization recipe changes, so older int8 files are made again.
INT8_FORMAT = 1
#: Every probe's int8 vector must have at least this cosine similarity with the float export's.
INT8_MIN_COSINE = 0.99
#: Texts the int8 model is checked on (no empty text: never a chunk nor a query, and its vector, of
#: the two special tokens alone, is the one quantization moves most).
INT8_PROBES = [
    *(probe for probe in PROBES if probe),
    "The central bank raised interest rates by a quarter point to 5.25% on Wednesday.",
    "Selma Varga lifted the trophy of the 2031 Harbour Cup after beating the defending champion.",
    "Voters elected a new mayor on Sunday; turnout was the highest in a decade.",
    "Hydroelectric dam opens after six years of building across the river gorge",
    "Shares of the chipmaker fell 7 per cent after it cut its forecast for the second quarter.",
    "The striker scored twice in the final minutes as the home side came back to win 3-2.",
    "Wildfires forced thousands to leave their homes in the hills north of the city.",
    "Who is the CEO of the company that bought the social network in 2022?",
    "Ministers met in Brussels to discuss the new trade agreement and tariffs on steel imports. " * 6,
    "nach dem Spiel sagte der Trainer, die Mannschaft habe gut gekämpft",
]


def quantized(float_encoder: OnnxEncoder, spec: MeanPooledModel, cache: Path, weights_sha256: str) -> OnnxEncoder:
    """The int8 (dynamically quantized) variant of the checked float export, made once next to it.

    It is published only when its vectors keep a cosine similarity of at least
    :data:`INT8_MIN_COSINE` with the float export's on every one of :data:`INT8_PROBES`; its manifest
    records the SHA-256 of the float export it was made from and its own, checked at every load.

    Raises:
        ModelUnavailable: quantization failed or moved the vectors too far.
    """
    where = export_dir(cache, weights_sha256)
    float_sha = json.loads((where / MANIFEST).read_text(encoding="utf-8"))["onnx_sha256"]
    loaded = _load_int8(spec, where, float_sha, float_encoder.dimension)
    if loaded is not None:
        return loaded
    staging = Path(tempfile.mkdtemp(prefix=".int8-", dir=where))
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quiet = logging.getLogger()  # the quantizer gives its advice on the root logger
        level = quiet.level
        try:
            quiet.setLevel(logging.ERROR)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # the matrix products only, with a scale per output channel: quantizing every op (the
                # embeddings' Gather too) or one scale per matrix moved vectors to cosine 0.88-0.96
                quantize_dynamic(str(where / ONNX_FILE), str(staging / INT8_FILE), weight_type=QuantType.QInt8,
                                 op_types_to_quantize=["MatMul"], per_channel=True)
        finally:
            quiet.setLevel(level)
        candidate = OnnxEncoder(spec, staging / INT8_FILE, float_encoder.dimension)
        cosine = float((candidate.encode(INT8_PROBES) * float_encoder.encode(INT8_PROBES)).sum(axis=1).min())
        if cosine < INT8_MIN_COSINE:
            raise ModelUnavailable(f"the int8 model's vectors are too far from the float model's (cosine "
                                   f"{cosine:.4f} < {INT8_MIN_COSINE}); set NEWSDESK_EMBEDDING_PRECISION=float32")
        manifest = {"format": INT8_FORMAT, "float_onnx_sha256": float_sha,
                    "int8_sha256": file_sha256(staging / INT8_FILE), "min_cosine": cosine,
                    "probes": len(INT8_PROBES)}
        (staging / INT8_MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        os.replace(staging / INT8_FILE, where / INT8_FILE)  # the manifest last: it vouches for the file
        os.replace(staging / INT8_MANIFEST, where / INT8_MANIFEST)
    except ModelUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - one line for the user; the float model still works
        raise ModelUnavailable(f"cannot make the int8 embedding model ({type(exc).__name__}: {exc}); set "
                               "NEWSDESK_EMBEDDING_PRECISION=float32") from exc
    finally:
        _remove(staging)
    return OnnxEncoder(spec, where / INT8_FILE, float_encoder.dimension)


def _load_int8(spec: MeanPooledModel, where: Path, float_sha: str, dimension: int) -> OnnxEncoder | None:
    try:
        manifest = json.loads((where / INT8_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("format") != INT8_FORMAT or manifest.get("float_onnx_sha256") != float_sha:
        return None
    path = where / INT8_FILE
    if not path.is_file() or file_sha256(path) != manifest.get("int8_sha256"):
        log.warning("ignoring the int8 model in %s: it fails its checksum", where)
        return None
    try:
        return OnnxEncoder(spec, path, dimension)
    except Exception as exc:  # noqa: BLE001 - made again
        log.warning("ignoring the int8 model in %s: %s", where, exc)
        return None


def _publish(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``, replacing an older export; another process's equal one may win."""
    if target.exists():
        retired = target.with_name(f".retired-{target.name}-{os.getpid()}")
        try:
            target.rename(retired)
        except OSError:
            return  # another process is replacing it right now; its export is as good as ours
        _remove(retired)
    try:
        staging.rename(target)
    except OSError:
        pass  # another process published first


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
