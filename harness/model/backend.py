"""Which library runs a frozen model's encodes: `[compute] backend`, and what each one can run.

`torch` is the reference, and trains every model. `openvino` and `onnx` (ONNX Runtime) run the
encodes of a model that is not being trained (a corpus, queries at evaluation, mining, ADORE's
frozen documents) from an export of it (:mod:`harness.model.export`), on the CPU. Each runs
its own precisions:

* `torch`: fp32, bf16, fp16 (CUDA), auto;
* `openvino`: fp32 (compiled with `INFERENCE_PRECISION_HINT = f32`: OpenVINO's own default on a
  CPU with native bf16 is bf16), bf16, int8 (NNCF static quantisation, calibrated on the
  collection's own documents, the rest of the graph in f32), auto (bf16 on CPUs with native bf16);
* `onnx`: fp32, int8 (ONNX Runtime's dynamic quantisation: int8 weights, activations quantised
  per batch; no calibration).

Nothing here imports a backend: whether one is installed is asked of the import system, so a
recipe is checked (and a plan listed) without loading anything.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

BACKENDS = ("torch", "openvino", "onnx")
_PRECISIONS = {"torch": ("fp32", "bf16", "fp16", "auto"), "openvino": ("fp32", "bf16", "int8", "auto"),
               "onnx": ("fp32", "int8")}
# The modules a backend imports (to export, quantise and run), and the extra that installs them.
_MODULES = {"openvino": ("openvino", "nncf"), "onnx": ("onnxruntime", "onnx")}
# The distributions whose releases change a backend's vectors: part of export and embedding keys.
_DISTRIBUTIONS = {"openvino": ("openvino", "nncf"), "onnx": ("onnxruntime", "onnx")}


def backend_problem(backend: str, precision: str) -> str | None:
    """Why `backend` cannot run `precision` (or is no backend drbench knows), or None.

    >>> backend_problem("openvino", "int8") is None, backend_problem("torch", "int8")
    (True, 'torch runs fp32, bf16, fp16 or auto; int8 needs backend = "openvino" or "onnx"')
    >>> backend_problem("tensorrt", "fp32")
    'unknown backend; use one of torch, openvino, onnx'
    """
    if backend not in BACKENDS:
        return f"unknown backend; use one of {', '.join(BACKENDS)}"
    allowed = _PRECISIONS[backend]
    if precision in allowed:
        return None
    others = [b for b in BACKENDS if precision in _PRECISIONS[b]]
    instead = " or ".join(f'"{b}"' for b in others)
    return f"{backend} runs {', '.join(allowed[:-1])} or {allowed[-1]}" + (
        f"; {precision} needs backend = {instead}" if others else "")


def missing_library(backend: str) -> str | None:
    """The one-line reason `backend` cannot run here (a module it needs is not installed, and the
    extra that installs it), or None.

    >>> missing_library("torch") is None
    True
    """
    for module in _MODULES.get(backend, ()):
        if importlib.util.find_spec(module) is None:
            return f"backend {backend} needs the {module} package, which is not installed; pip install " \
                   f"'drbench[{backend}]'"
    return None


def runtime_versions(backend: str) -> str:
    """The releases of the libraries that run `backend`, as keys record them ("" for torch).

    >>> runtime_versions("torch")
    ''
    """
    return " ".join(f"{name} {importlib.metadata.version(name)}" for name in _DISTRIBUTIONS.get(backend, ()))
