"""The sentence-transformers side of `bench_encode.py`, as a worker in its own Python (the peer's
backends need optimum / optimum-intel, which pin transformers below drbench's).

Reads one JSON command a line on stdin and answers one JSON line on stdout (library output goes
to stderr):

- `{"op": "hello"}` -> `{"versions": {...}}`
- `{"op": "load", "mode": ..., "path": MODEL, "threads": N, "batch_size": B, "max_length": L,
  "calibration": TEXTS_JSON}` -> `{"ok": true, "seconds": S, "version": ...}` (exports and
  quantises now) or `{"ok": false, "error": ...}`
- `{"op": "encode", "mode": ..., "texts": TEXTS_JSON, "out": NPY}` -> `{"seconds": S}`: the
  vectors go to NPY as float32; S times `encode` alone.

Modes: `torch fp32`, `torch bf16 autocast`, `onnx fp32`, `onnx int8` (ONNX Runtime, through
`export_dynamic_quantized_onnx_model` with the avx512_vnni config), `openvino fp32` (inference
precision hint f32), `openvino bf16` (OpenVINO's default hint on a CPU with native bf16),
`openvino int8` (static, optimum-intel's OVQuantizer calibrated on the given documents, as
`export_static_quantized_openvino_model` does with GLUE, which it would download). Exports are
made in a copy of the model folder under the worker's temp dir, never in the installed package.

    python benchmarks/peer_encode.py   # driven by bench_encode.py --peer-python
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

PACKAGES = ("sentence-transformers", "transformers", "torch", "optimum", "optimum-onnx", "optimum-intel", "openvino",
            "nncf", "onnxruntime", "numpy", "huggingface-hub")


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the libraries print goes to stderr, never into the answers
    sys.stdout = sys.stderr
    worker = Worker(Path(tempfile.mkdtemp(prefix="peer-encode-")))
    try:
        for line in sys.stdin:
            answers.write(json.dumps(worker.handle(json.loads(line))) + "\n")
    finally:
        shutil.rmtree(worker.work, ignore_errors=True)


class Worker:
    """The loaded models (by mode) and the text lists read so far (by file)."""

    def __init__(self, work: Path):
        self.work = work
        self.models: dict[str, Callable[[list[str]], np.ndarray]] = {}
        self.st: dict[str, Any] = {}
        self.texts: dict[str, list[str]] = {}

    def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command["op"]
        if op == "hello":
            return {"versions": _versions()}
        if op == "load":
            start = time.perf_counter()
            try:
                self.models[command["mode"]] = self.load(command)
            except Exception as error:  # a backend that cannot load here is reported, not fatal
                return {"ok": False, "error": f"{type(error).__name__}: {error}".splitlines()[0][:300]}
            from importlib.metadata import version

            return {"ok": True, "seconds": time.perf_counter() - start,
                    "version": f"sentence-transformers {version('sentence-transformers')}"}
        if op == "encode":
            texts = self._texts(command["texts"])
            encode = self.models[command["mode"]]
            start = time.perf_counter()
            vectors = encode(texts)
            seconds = time.perf_counter() - start
            np.save(command["out"], vectors)
            return {"seconds": seconds}
        raise ValueError(f"unknown op {op!r}")

    def _texts(self, path: str) -> list[str]:
        if path not in self.texts:
            self.texts[path] = json.loads(Path(path).read_text())
        return self.texts[path]

    def load(self, c: dict[str, Any]) -> Callable[[list[str]], np.ndarray]:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(c["threads"])
        mode, threads = c["mode"], c["threads"]
        backend, _, precision = mode.partition(" ")
        folder = self._copy(Path(c["path"]), backend)

        def open_(**kwargs: Any) -> Any:
            model = SentenceTransformer(str(folder), device="cpu", **kwargs)
            model.max_seq_length = c["max_length"]
            return model

        autocast = False
        if backend == "torch":
            model = open_()
            autocast = precision == "bf16 autocast"
        elif backend == "onnx":
            model = self._onnx(open_, folder, precision, threads)
        elif backend == "openvino":
            model = self._openvino(open_, folder, precision, threads, c)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        self.st[mode] = model

        def encode(texts: list[str]) -> np.ndarray:
            context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
            with context:
                out = model.encode(texts, batch_size=c["batch_size"], convert_to_numpy=False, convert_to_tensor=True,
                                   normalize_embeddings=False, show_progress_bar=False)
            return out.float().cpu().numpy()
        return encode

    def _copy(self, path: Path, backend: str) -> Path:
        """A copy of the model folder per backend, where that backend's exports are saved."""
        folder = self.work / f"model-{backend}"
        if not folder.exists():
            shutil.copytree(path, folder, ignore=shutil.ignore_patterns("onnx", "openvino"))
        return folder

    def _onnx(self, open_: Callable[..., Any], folder: Path, precision: str, threads: int) -> Any:
        import onnxruntime as ort

        def kwargs(**more: Any) -> dict[str, Any]:
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            return {"provider": "CPUExecutionProvider", "session_options": options, **more}

        if precision == "fp32":
            model = open_(backend="onnx", model_kwargs=kwargs())
            model.save_pretrained(str(folder))  # onnx/model.onnx, which int8 quantises
            return model
        from sentence_transformers import export_dynamic_quantized_onnx_model

        fp32 = self.st.get("onnx fp32") or open_(backend="onnx", model_kwargs=kwargs())
        export_dynamic_quantized_onnx_model(fp32, "avx512_vnni", str(folder))
        return open_(backend="onnx", model_kwargs=kwargs(file_name="onnx/model_qint8_avx512_vnni.onnx"))

    def _openvino(self, open_: Callable[..., Any], folder: Path, precision: str, threads: int,
                  c: dict[str, Any]) -> Any:
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if not (folder / "openvino" / "openvino_model.xml").exists():
            open_(backend="openvino", model_kwargs={"ov_config": dict(config)}).save_pretrained(str(folder))
        if precision == "fp32":
            return open_(backend="openvino", model_kwargs={"ov_config": {**config, "INFERENCE_PRECISION_HINT": "f32"}})
        if precision == "bf16":
            return open_(backend="openvino", model_kwargs={"ov_config": dict(config)})
        import nncf
        from optimum.intel import OVConfig, OVQuantizationConfig, OVQuantizer

        # A model of its own: OVQuantizer quantises the model it is given in place.
        fp32 = open_(backend="openvino", model_kwargs={"ov_config": dict(config)})
        tokenizer = fp32.tokenizer
        samples = [{k: v.astype(np.int64) for k, v in tokenizer([text], truncation=True, max_length=c["max_length"],
                                                                   return_tensors="np").items()}
                   for text in self._texts(c["calibration"])]
        quantizer = OVQuantizer.from_pretrained(fp32.transformers_model)
        target = self.work / "openvino-int8"
        quantizer.quantize(calibration_dataset=nncf.Dataset(samples), save_directory=str(target),
                           ov_config=OVConfig(quantization_config=OVQuantizationConfig(num_samples=len(samples))))
        saved = target / "openvino" if (target / "openvino").is_dir() else target  # sentence-transformers' subfolder
        for suffix in (".xml", ".bin"):  # where export_static_quantized_openvino_model puts it
            shutil.copy(saved / f"openvino_model{suffix}", folder / "openvino" / f"openvino_model_qint8_quantized{suffix}")
        return open_(backend="openvino", model_kwargs={"ov_config": dict(config),
                                                       "file_name": "openvino/openvino_model_qint8_quantized.xml"})


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            out[package] = version(package)
    return out


if __name__ == "__main__":
    main()
