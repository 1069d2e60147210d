"""Where, in what precision and with which library models run: `[compute] device`, `precision`
and `backend`, resolved once.

`fp32` on the CPU is the reference: it adds nothing to cache and run keys, so its keys (and
numbers) are what they were before devices and precisions existed. Any other device type or
precision is part of every key whose numbers it changes, so a bf16 corpus embedding is never
served to an fp32 run. So is a backend other than torch (:mod:`harness.model.backend`), with the
releases of its libraries.

`auto` precision picks bf16 on CUDA when the GPU supports it (fp16 otherwise, with a gradient
scaler) and, on the CPU, bf16 only where the processor has native bf16 (AVX512-BF16 or AMX),
since emulated bf16 is slower than fp32; fp32 elsewhere.

Torch is imported only to look for a GPU, and only when the recipe asks for one (or `auto`).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from harness.errors import RecipeError
from harness.model.backend import BACKENDS, backend_problem, missing_library, runtime_versions
from harness.world import ONE, World

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("fp32", "bf16", "fp16", "int8", "auto")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def device_problem(device: str) -> str | None:
    """Why `device` is not a device drbench knows, or None.

    >>> device_problem("cuda:1") is None, device_problem("gpu")
    (True, 'unknown device; use one of auto, cpu, cuda, cuda:N, mps')
    """
    return None if _DEVICE.match(device) else f"unknown device; use one of {', '.join(DEVICES)}"


_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True where the CPU computes bf16 in hardware (AVX512-BF16 or AMX); Linux flags only."""
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class Compute:
    """A resolved device (`cpu`, `cuda:0`, `mps`), precision (`fp32`, `bf16`, `fp16`, `int8`) and
    backend of frozen encodes (`torch`, `openvino`, `onnx`), and the processes the run is split
    over (:class:`~harness.world.World`; not part of any key: N processes compute what one does,
    see the README's "Several processes").

    Training is always torch, at :attr:`train_precision`: fp32 where the precision is int8, which
    only a backend's frozen encodes run."""

    device: str = "cpu"
    precision: str = "fp32"
    world: World = field(default=ONE, compare=False)
    backend: str = "torch"

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    @property
    def is_reference(self) -> bool:
        return self.device_type == "cpu" and self.precision == "fp32" and self.backend == "torch"

    @property
    def train_precision(self) -> str:
        """The precision torch trains (and encodes a model in training) at: int8 trains in fp32."""
        return "fp32" if self.precision == "int8" else self.precision

    def key_parts(self) -> dict[str, str]:
        """What cache and run keys add: nothing for the fp32 CPU reference; a backend other than
        torch adds itself and its libraries' releases.

        >>> Compute().key_parts(), Compute("cuda:1", "bf16").key_parts()
        ({}, {'device': 'cuda', 'precision': 'bf16'})
        """
        if self.is_reference:
            return {}
        parts = {"device": self.device_type, "precision": self.precision}
        if self.backend != "torch":
            parts.update(backend=self.backend, runtime=runtime_versions(self.backend))
        return parts

    def record(self) -> dict[str, Any]:
        """What a stored run says it ran on (`backend` only when not torch, `processes` only when
        there were several)."""
        record: dict[str, Any] = {"device": self.device, "precision": self.precision}
        if self.backend != "torch":
            record["backend"] = self.backend
        if self.world.size > 1:
            record["processes"] = self.world.size
        return record

    @property
    def faiss_gpu(self) -> int | None:
        """The GPU faiss indexes go on (used where the installed faiss has GPUs), or None."""
        return int(self.device.partition(":")[2] or 0) if self.device_type == "cuda" else None

    @property
    def scales_gradients(self) -> bool:
        """fp16 on CUDA needs a gradient scaler (bf16 has fp32's exponent range; CPU has no fp16)."""
        return self.precision == "fp16" and self.device_type == "cuda"

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Mixed precision for torch's forward passes inside; fp32 (and int8, which torch trains in
        fp32) changes nothing."""
        if self.train_precision == "fp32":
            yield
            return
        import torch

        with torch.autocast(device_type=self.device_type, dtype=getattr(torch, _DTYPES[self.precision])):
            yield


def compute_problem(device: str, precision: str, backend: str = "torch") -> tuple[str, str] | None:
    """What is wrong with a device, precision and backend that no probe of this machine is needed
    to see, as (the key at fault: "device", "precision" or "backend"; what is wrong and how to fix
    it), or None. The recipe loader names the key by its recipe line, :func:`check_names` by its
    label; whether this machine has the device or the backend's library is :func:`resolve_compute`'s
    question.

    >>> compute_problem("cpu", "fp16")
    ('precision', 'fp16 runs on CUDA only, not on "cpu"; use bf16 or fp32')
    >>> compute_problem("cpu", "bf16", "openvino") is None
    True
    """
    if problem := device_problem(device):
        return "device", problem
    backend_says = backend_problem(backend, precision)
    if backend_says and backend not in BACKENDS:
        return "backend", backend_says
    if precision not in PRECISIONS:
        return "precision", f"unknown precision; use one of {', '.join(PRECISIONS)}"
    if backend_says:
        return "precision", f'with backend "{backend}": {backend_says}'
    if backend != "torch" and not device.startswith(("cpu", "auto")):
        return "backend", f'{backend} runs on the CPU, not on "{device}"; use device "cpu", or backend "torch" on a GPU'
    if precision == "fp16" and not device.startswith(("cuda", "auto")):
        return "precision", f'fp16 runs on CUDA only, not on "{device}"; use bf16 or fp32'
    return None


def check_names(device: str, precision: str, device_label: str, precision_label: str, backend: str = "torch",
                backend_label: str | None = None) -> None:
    """A one-line RecipeError for what :func:`compute_problem` finds, naming the key by its label
    (`--precision fp8`, `[compute] backend = "onnx"`)."""
    if found := compute_problem(device, precision, backend):
        key, problem = found
        labels = {"device": device_label, "precision": precision_label,
                  "backend": backend_label or f'[compute] backend = "{backend}"'}
        raise RecipeError(f"{labels[key]}: {problem}")


def resolve_compute(device: str, precision: str, *, device_label: str | None = None,
                    precision_label: str | None = None, warn: Any = None, world: World = ONE,
                    backend: str = "torch", backend_label: str | None = None) -> Compute:
    """Turn a device, a precision and a backend (from a recipe or the command line) into a
    :class:`Compute`.

    Raises a one-line RecipeError for a device that is not there, a precision the device or the
    backend cannot run, or a backend whose library is not installed, naming it by its label
    (`recipes/x.toml [compute] device = "cuda"`, `--device cuda`); calls `warn(line)` for a
    combination that works but slowly. In a `world` of several processes, CUDA means one GPU per
    local rank (`cuda:<LOCAL_RANK>`). A backend other than torch runs on the CPU: `auto` is the
    CPU there.
    """
    device_label = device_label or f'[compute] device = "{device}"'
    precision_label = precision_label or f'[compute] precision = "{precision}"'
    backend_label = backend_label or f'[compute] backend = "{backend}"'
    check_names(device, precision, device_label, precision_label, backend, backend_label)
    if problem := missing_library(backend):
        raise RecipeError(f"{backend_label}: {problem}")
    resolved = "cpu" if backend != "torch" else _resolve_device(device, device_label, world)
    kind = resolved.split(":")[0]
    if precision == "auto":
        precision = _auto_precision(resolved)
    if precision == "fp16" and kind != "cuda":
        raise RecipeError(f"{precision_label}: fp16 runs on CUDA only (it needs a gradient scaler drbench runs "
                          "there); use bf16 (native on AVX512-BF16/AMX processors) or fp32")
    if precision == "bf16" and kind == "cpu" and not cpu_has_native_bf16() and warn is not None:
        warn(f"warning: {precision_label}: this CPU has no native bf16 (AVX512-BF16 or AMX), so bf16 runs "
             "emulated, slower than fp32")
    return Compute(resolved, precision, world, backend)


def _resolve_device(device: str, label: str, world: World = ONE) -> str:
    if device == "cpu":
        return "cpu"
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto":
        device = "cuda" if count else "cpu"
        if device == "cpu":
            return device
    if device == "mps":
        if world.size > 1:
            raise RecipeError(f"{label}: an Apple GPU runs one process; drop --nproc or use cpu")
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise RecipeError(f'{label}: torch sees no Apple GPU here; use "cpu" or "auto"')
        return "mps"
    _, colon, named = device.partition(":")
    if world.size > 1 and colon:
        raise RecipeError(f'{label}: names one GPU, but this run has {world.size} processes; use "cuda" (one GPU '
                          "per local rank)")
    index = world.local_rank if world.size > 1 else int(named or 0)
    if world.size > 1 and world.local_size > count:
        seen = f"{count} GPU(s)" if count else "no GPU (or a CPU-only torch build)"
        raise RecipeError(f"{label}: {world.local_size} processes on this machine need one GPU each, but torch sees "
                          f"{seen}; use at most {count} processes, or device cpu")
    if index >= count:
        seen = f"{count} GPU(s)" if count else "no GPU (or a CPU-only torch build)"
        wanted = f"process {world.local_rank} of this machine needs GPU {index}, but " if world.size > 1 else ""
        raise RecipeError(f'{label}: {wanted}torch sees {seen}; use "cpu" or "auto"')
    return f"cuda:{index}"


def _auto_precision(device: str) -> str:
    kind, _, index = device.partition(":")
    if kind == "cuda":
        import torch

        # Native bf16 from Ampere (compute capability 8) on; is_bf16_supported() also says yes
        # where bf16 is only emulated (T4, V100), slower than fp16.
        return "bf16" if torch.cuda.get_device_capability(int(index or 0))[0] >= 8 else "fp16"
    if kind == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"  # mps: autocast support varies by torch release
