"""Devices: which one a run uses (`pick_device`) and what it computes natively (bfloat16 on the
CPU: `cpu_has_bf16`, hence `amp_is_native`). Asked by engine/run.py and engine/trainer.py."""
from __future__ import annotations

import functools

import torch

from cnnkit.errors import CnnkitError

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """A `--device` name -> torch.device: "auto" is CUDA (GPU `local_rank` under torchrun), else MPS,
    else the CPU. Raises CnnkitError for an unknown name or a CUDA device that is not there."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise CnnkitError(f'Unknown device "{name}": use one of {", ".join(DEVICES)}.')
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CnnkitError(f'--device {name} was asked for but no CUDA GPU is visible; use --device cpu or auto.')
    if name == "mps" and not _mps_available():
        raise CnnkitError("--device mps (an Apple GPU) was asked for but this machine has none; use --device cpu "
                          "or auto.")
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


@functools.cache
def cpu_has_bf16() -> bool:
    """True where this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles), so oneDNN's bf16
    convolutions run at about twice the float32 rate (3x3 conv, 64 channels, 2 threads of an AMD
    EPYC with AVX512-BF16: 931 vs 494 GFLOP/s); elsewhere bf16 is emulated and slower than float32."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def amp_is_native(device: torch.device) -> bool:
    """True where `train.amp` runs in reduced precision on `device`: CUDA (float16), or a CPU with native
    bf16 (`cpu_has_bf16`). Elsewhere mixed precision would be emulated, so training stays in float32."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
