"""Efficiency rather than frames/s alone: the model's FLOPs per frame, and this machine's GEMM rate measured in
the same run, so that "achieved fraction of the matmul rate" survives a busy or a different machine.

* ``flops_per_frame``: torch's FlopCounterMode over one clip through the reference ``MSVQVAE.encode`` and
  ``decode`` (convolutions, transposed convolutions and the nearest-code matmuls; element-wise ops count 0),
  on meta tensors, so nothing is computed.
* ``gemm_rate``: FLOP/s of a large square GEMM in ``dtype``, the better of ``torch.mm`` and the same GEMM as a
  1x1x1 convolution (oneDNN). On AMD CPUs ``torch.mm`` in fp32 goes to MKL, which does not use AVX-512 there and
  reaches about half of what oneDNN does, so the better of the two is the honest ceiling for the model's
  (oneDNN) convolutions.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

import torch
import torch.nn.functional as F

GEMM_SIZE = 2048  # a 2048^3 GEMM: 17 GFLOP, large enough for the kernels' peak, small enough to repeat


class ModelFlops(NamedTuple):
    encode: float  # FLOP per frame
    decode: float


def flops_per_frame(model) -> ModelFlops:
    """FLOPs per frame of ``model.encode`` and ``model.decode`` on one clip (counted on meta tensors)."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.config
    with torch.device("meta"):
        meta = type(model)(cfg).eval()  # the same architecture, no storage
    x = torch.empty(1, cfg.in_channels, cfg.clip_frames, cfg.clip_size, cfg.clip_size, device="meta")
    with FlopCounterMode(display=False) as counter:
        codes = meta.encode(x)
    encode = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        meta.decode(codes)
    return ModelFlops(encode / cfg.clip_frames, counter.get_total_flops() / cfg.clip_frames)


def _timed(fn, seconds: float) -> float:
    """Best single-call time of ``fn`` over about ``seconds`` (after one warm-up call)."""
    fn()
    best, spent = float("inf"), 0.0
    while spent < seconds:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return best


def gemm_rate(dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", seconds: float = 0.5,
              size: int = GEMM_SIZE) -> float:  # fmt: skip
    """FLOP/s of a ``size``^3 GEMM in ``dtype``: the better of torch.mm and the 1x1x1 convolution form."""
    device = torch.device(device)
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def mm():
        torch.mm(a, b)
        sync()

    best = _timed(mm, seconds / 2)
    if device.type == "cpu" and size % 256 == 0:  # [size positions, size channels] x [size, size]
        x = torch.randn(1, size, 16, 16, size // 256, dtype=dtype).contiguous(memory_format=torch.channels_last_3d)
        w = torch.randn(size, size, 1, 1, 1, dtype=dtype)
        best = min(best, _timed(lambda: F.conv3d(x, w), seconds / 2))
    return 2 * size**3 / best


def top_ops(fn, n: int = 5) -> str:
    """What one call of ``fn`` spends its time on: torch.profiler's top ``n`` ops by self CPU time, as
    ``op 41 %, op 12 %, ...`` (shares of the profiled total)."""
    from torch.profiler import ProfilerActivity, profile

    saved = os.dup(2)  # the profiler's C++ side logs its start and stop on stderr
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                fn()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return ", ".join(f"{e.key} {100 * e.self_cpu_time_total / total:.0f} %" for e in events[:n])


class Efficiency(NamedTuple):
    """A model's compute against the machine: FLOPs per frame, model-only frames/s (every computed frame,
    padding included) and the share of the same-run GEMM rate in the dtype each direction computes in."""

    precision: tuple[str, str]  # dtype names, encode and decode
    gflop_per_frame: tuple[float, float]
    fps: tuple[float, float]
    gemm_tflops: tuple[float, float]
    share: tuple[float, float]
    held_back: tuple[str | None, str | None]  # top ops of one batch, where the share is under TARGET_SHARE


TARGET_SHARE = 0.7
