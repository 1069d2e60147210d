"""Encode with OpenVINO or ONNX Runtime: a frozen model's export (:mod:`harness.model.export`)
run in the batches torch's encoder runs (:class:`~harness.model.batched.BatchedEncoder`).

The graph takes token ids and returns the pooled (and normalised) vectors, so tokenising is the
only work left in Python. OpenVINO compiles for the CPU with the precision as its inference
precision hint (`f32` for fp32 and for int8's unquantised operations, `bf16` for bf16: OpenVINO's
own default is bf16 wherever the processor has it natively) and one stream (`LATENCY`), on
torch's thread count; ONNX Runtime runs the CPU provider on the same threads.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.model.batched import BatchedEncoder
from harness.model.export import GRAPH, INPUTS
from harness.world import ONE, World

_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


class RuntimeEncoder(BatchedEncoder):
    """Texts to float32 vectors through an export folder, with the tokenizer of `tokenizer_path`."""

    def __init__(self, folder: Path, tokenizer_path: Path, *, backend: str, precision: str, dim: int,
                 max_length: int | None, batch_size: int = 64, prefix: str = "", world: World = ONE,
                 threads: int | None = None) -> None:
        import torch
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        self.names: list[str] = json.loads((folder / INPUTS).read_text())
        self.dim, self.max_length, self.batch_size, self.prefix, self.world = dim, max_length, batch_size, prefix, world
        threads = threads or torch.get_num_threads()
        self._run = (_openvino(folder, precision, threads) if backend == "openvino"
                     else _onnx(folder, self.names, threads))

    def _vectors(self, texts: Sequence[str], max_length: int | None) -> np.ndarray:
        batch = self.tokenizer([self.prefix + t for t in texts], padding=True, truncation=True,
                               max_length=max_length or self.max_length, return_tensors="np")
        return np.array(self._run([batch[n].astype(np.int64) for n in self.names]), dtype=np.float32)


def _openvino(folder: Path, precision: str, threads: int) -> Callable[[list[np.ndarray]], Any]:
    compiled = _core().compile_model(str(folder / GRAPH["openvino"]), "CPU", {
        "INFERENCE_PRECISION_HINT": _HINTS[precision], "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    return lambda inputs: request.infer(inputs)[0]


@functools.cache
def _core() -> Any:
    """One OpenVINO Core for the process, never destroyed. Each Core's CPU plugin installs an
    alternate signal stack on the thread that compiles, and restores the one it found when it
    goes: two Cores gone in the order they came leave the first one's freed stack installed, and
    the next signal handled (a SIGTERM, which an encode turns into a clean exit) is a
    segmentation fault (OpenVINO 2026.4; tests/test_backends.py)."""
    import openvino as ov

    return ov.Core()


def _onnx(folder: Path, names: list[str], threads: int) -> Callable[[list[np.ndarray]], Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(folder / GRAPH["onnx"]), options, providers=["CPUExecutionProvider"])
    return lambda inputs: session.run(None, dict(zip(names, inputs)))[0]
