"""What the machine's matrix units can do, and the precision a policy loads in because of it.

``dtype="auto"`` loads bfloat16 where matrix products run it natively (a CPU with AMX tiles or AVX-512
bfloat16 instructions, a CUDA GPU with bfloat16; ``native_bfloat16``), float32 elsewhere, where
bfloat16 is emulated and slower. The app serves float32 unless ``ARBITER_POLICY_DTYPE`` says otherwise:
bfloat16 moves a trained policy's small margins (measured: bench/NOTES.md). A policy samples from the
probabilities it computed and logs them, so off-policy evaluation stays exact in either precision.

This module only asks torch what the hardware supports; it loads nothing and changes no setting.
"""

from __future__ import annotations

import torch


def native_bfloat16(device: str | torch.device = "cpu") -> bool:
    """Whether matrix products in bfloat16 run natively (and fast) on ``device``: a CUDA GPU that supports it, or a
    CPU with AMX tiles or AVX-512 bfloat16 dot products. Elsewhere bfloat16 is emulated and slower than float32
    (figures: bench/NOTES.md)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return has_amx() or _cpu_has("_is_avx512_bf16_supported")
    return False


def has_amx() -> bool:
    return _cpu_has("_is_amx_tile_supported")


def _cpu_has(probe: str) -> bool:
    check = getattr(torch.cpu, probe, None)
    return bool(check and check())


def resolve_dtype(dtype: torch.dtype | str, device: str | torch.device = "cpu") -> torch.dtype:
    """``"auto"``: bfloat16 where it is native (see :func:`native_bfloat16`), else float32; names or dtypes pass."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if native_bfloat16(device) else torch.float32
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"unknown dtype {dtype!r}; use auto, float32 or bfloat16")
    return getattr(torch, dtype)
