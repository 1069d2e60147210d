"""A frozen model exported for OpenVINO or ONNX Runtime: a cache entry like a trained model.

An export is the transformer *with* its pooling and normalisation, one graph from token ids to
the vectors drbench stores, so the backend runs the whole encode. It is made by the libraries'
own converters (`openvino.convert_model` and `torch.onnx.export`, from the float32 module
drbench loads) and quantised by their own quantisers (NNCF's `nncf.quantize` for OpenVINO's
static int8, as optimum-intel's `OVQuantizer`, and so sentence-transformers'
`export_static_quantized_openvino_model`, call it; `onnxruntime.quantization.quantize_dynamic`
for ONNX Runtime's dynamic int8). optimum itself is not used: optimum-intel 2.2 requires
transformers < 5.6.

`<cache>/exports/<key>/` holds `model.xml` + `model.bin` (OpenVINO) or `model.onnx`, and
`inputs.json` (the tokenizer outputs the graph takes, in order), published atomically with a
manifest. The key is the model's fingerprint, pooling, normalisation, backend, precision, the
releases of torch and of the backend's libraries, and for a calibrated int8 the calibration.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.cache.entries import Entries
from harness.errors import ModelError
from harness.model.backend import runtime_versions
from harness.model.embedding_cache import EmbeddingCache
from harness.model.encoder import Pooled, load_pretrained

EXPORT_VERSION = 1
GRAPH = {"openvino": "model.xml", "onnx": "model.onnx"}
INPUTS = "inputs.json"
ONNX_OPSET = 17  # what sentence-transformers' ONNX exports (through optimum) use for BERT-likes


@dataclass(frozen=True)
class Calibration:
    """The documents a static int8 export is calibrated on: `count` of a collection's documents,
    drawn with `seed` (as sentence-transformers' OpenVINO export takes 300 samples), one per
    calibration sample, tokenised as the encode tokenises them."""

    docs_id: str
    texts: Sequence[str]
    count: int = 300
    seed: int = 0

    def rows(self) -> list[int]:
        """The documents drawn, in corpus order."""
        size = len(self.texts)
        chosen = np.random.default_rng(self.seed).choice(size, min(self.count, size), replace=False)
        return sorted(int(i) for i in chosen)

    def key(self) -> dict[str, Any]:
        return {"docs": self.docs_id, "doc_count": len(self.texts), "count": self.count, "seed": self.seed}


@dataclass(frozen=True)
class ExportSpec:
    """What an export is made of: the model folder and how its vectors are pooled, by which
    backend and at which precision; `calibration` for OpenVINO's int8."""

    path: Path
    fingerprint: str
    pooling: str
    normalize: bool
    backend: str
    precision: str
    calibration: Calibration | None = None
    prefix: str = ""  # calibration documents are tokenised with the documents' prefix
    max_length: int | None = None

    def key(self) -> str:
        parts: dict[str, Any] = {"what": "export", "version": EXPORT_VERSION, "model": self.fingerprint,
                                 "pooling": self.pooling, "normalize": self.normalize, "backend": self.backend,
                                 "precision": self.precision, "torch": torch.__version__.split("+")[0],
                                 "runtime": runtime_versions(self.backend)}
        if self.calibration is not None:
            parts.update(calibration=self.calibration.key(), prefix=self.prefix, max_length=self.max_length)
        return EmbeddingCache.key(**parts)


def exported(spec: ExportSpec, cache_dir: Path, log: Callable[[str], None], *, name: str,
             allow_pickle: bool = False) -> Path:
    """The export folder of `spec`, from the cache or made now (and cached)."""
    entries = Entries(cache_dir / "exports", log)
    key = spec.key()
    found = entries.get(key)
    if found is not None:
        return found
    work = entries.workdir(key)
    produced: dict[str, Any] = {"what": "export", "model": name, "backend": spec.backend, "precision": spec.precision,
                                "runtime": runtime_versions(spec.backend)}
    try:
        tokenizer, module, names = _module(spec, allow_pickle)
        if spec.backend == "openvino":
            _openvino(spec, tokenizer, module, names, work, produced)
        elif spec.backend == "onnx":
            _onnx(spec, tokenizer, module, names, work)
        else:
            raise ValueError(f"backend {spec.backend!r} has no export")
        (work / INPUTS).write_text(json.dumps(names))
    except BaseException:  # a failed or interrupted export leaves nothing half-written behind
        entries.discard(work)
        raise
    folder, ours = entries.publish(key, work, produced_by=produced)
    if ours:
        log(f"exported {name} for {spec.backend} {spec.precision} ({folder.name[:12]})")
    return folder


def _module(spec: ExportSpec, allow_pickle: bool) -> tuple[Any, Any, list[str]]:
    """The tokenizer, the float32 model with its pooling as one module taking the tokenizer's
    outputs by position, and their names."""
    tokenizer, model = load_pretrained(spec.path, torch.device("cpu"), allow_pickle)
    example = tokenizer(["a"], return_tensors="pt")
    names = [n for n in tokenizer.model_input_names if n in example]
    if "input_ids" not in names or "attention_mask" not in names:
        raise ModelError(f"{spec.path}: its tokenizer gives {', '.join(example)}; exporting needs input_ids and "
                         "attention_mask")
    return tokenizer, _Positional(Pooled(model, pooling=spec.pooling, normalize=spec.normalize), names).eval(), names


def _example(tokenizer: Any, names: list[str]) -> tuple[Any, ...]:
    batch = tokenizer(["dense retrieval with hard negatives", "a second, longer example text for the trace"],
                      padding=True, return_tensors="pt")
    return tuple(batch[n] for n in names)


def _openvino(spec: ExportSpec, tokenizer: Any, module: Any, names: list[str], work: Path,
              produced: dict[str, Any]) -> None:
    import openvino as ov

    with torch.inference_mode(False), torch.no_grad(), _quiet():
        model = ov.convert_model(module, example_input=_example(tokenizer, names),
                                 input=[ov.PartialShape([-1, -1])] * len(names))
    if spec.precision == "int8":
        calibration = spec.calibration
        if calibration is None:
            raise ValueError("an OpenVINO int8 export needs calibration documents")
        rows = calibration.rows()
        model = _quantize_openvino(model, [_tokens(tokenizer, names, spec.prefix + calibration.texts[i], spec)
                                          for i in rows])
        produced["calibration"] = {**calibration.key(), "rows_sha256": _digest(rows)}
    # compress_to_fp16=False: save_model's default halves the weights, which moves fp32 vectors.
    ov.save_model(model, str(work / GRAPH["openvino"]), compress_to_fp16=False)


def _quantize_openvino(model: Any, samples: list[list[np.ndarray]]) -> Any:
    import nncf
    from nncf.common.logging import track_progress

    # NNCF draws its own rich progress bars, which would tear the pipeline's; switched off here.
    init = track_progress.track.__init__

    def silent(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **{**kwargs, "disable": True})

    track_progress.track.__init__ = silent  # type: ignore[method-assign]
    try:
        with _quiet():
            return nncf.quantize(model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
                                 subset_size=len(samples))
    finally:
        track_progress.track.__init__ = init  # type: ignore[method-assign]


def _onnx(spec: ExportSpec, tokenizer: Any, module: Any, names: list[str], work: Path) -> None:
    graph = work / GRAPH["onnx"]
    target = graph if spec.precision == "fp32" else work / "model-fp32.onnx"
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    with torch.inference_mode(False), torch.no_grad(), _quiet():
        # dynamo=False: the TorchScript exporter, which sentence-transformers' exports (through
        # optimum) use too; the dynamo one needs onnxscript and gives the same graph for BERT-likes.
        torch.onnx.export(module, _example(tokenizer, names), str(target), input_names=names,
                          output_names=["vectors"], dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False)
    if spec.precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _quiet():
            # As sentence-transformers' export_dynamic_quantized_onnx_model does (optimum's
            # avx512_vnni config, per_channel=True by default): int8 weights per output channel, activations
            # quantised per batch.
            quantize_dynamic(str(target), str(graph), weight_type=QuantType.QInt8, per_channel=True)
        target.unlink()


def _tokens(tokenizer: Any, names: list[str], text: str, spec: ExportSpec) -> list[np.ndarray]:
    batch = tokenizer([text], truncation=True, max_length=spec.max_length, return_tensors="np")
    return [batch[n].astype(np.int64) for n in names]


def _digest(rows: list[int]) -> str:
    import hashlib

    return hashlib.sha256(",".join(map(str, rows)).encode()).hexdigest()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The converters' and quantisers' warnings (tracer notes, deprecations) are theirs, not the user's."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


class _Positional(torch.nn.Module):
    """The pooled model taking the tokenizer's outputs by position (`names`), as converters trace it."""

    def __init__(self, pooled: torch.nn.Module, names: list[str]):
        super().__init__()
        self.pooled, self.names = pooled, list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.pooled(dict(zip(self.names, tensors)))
