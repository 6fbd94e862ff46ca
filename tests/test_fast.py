"""msvq_codec.model.fast against the reference MSVQVAE.encode/decode: same codes at fp32, close pictures at bf16,
every layer rewrite (in-place ReLUs and residuals, sub-pixel transposed conv) equal to what it replaces. Speed is measured in
benchmarks/speed/model_speed.py, not here."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from msvq_codec.config import ModelConfig, model_preset
from msvq_codec.errors import UsageError
from msvq_codec.model import fast
from msvq_codec.model.fast import FastModel, Precision, _SubPixel, fast_model, resolve_precision
from msvq_codec.model.vqvae import MSVQVAE

F32, BF16 = torch.float32, torch.bfloat16


def seeded(config: ModelConfig, seed: int = 0) -> MSVQVAE:
    torch.manual_seed(seed)
    model = MSVQVAE(config).train()
    with torch.no_grad():
        model(torch.rand(2, 3, 32, 64, 64))  # seeds the codebooks from encoder outputs
    return model.eval()


@pytest.fixture(scope="module")
def tiny():
    return seeded(model_preset("tiny"))


@pytest.fixture(scope="module")
def clips():
    gen = torch.Generator().manual_seed(1)
    base, drift = torch.rand(3, 3, 1, 64, 64, generator=gen), torch.rand(3, 3, 1, 64, 64, generator=gen)
    t = torch.linspace(0, 1, 32).view(1, 1, 32, 1, 1)
    return (base * (1 - t) + drift * t).clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = (a * 255).round(), (b * 255).round()
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def test_fp32_gives_the_reference_codes(tiny, clips):
    """The same codes but for rounding ties: where a top index differs, both entries are nearest to within
    float32 rounding of the reference's own distances."""
    model = FastModel(tiny, Precision(F32, F32))
    ref = tiny.encode(clips)
    got = model.encode(clips)
    assert got.top.dtype == torch.int64 and got.top.shape == ref.top.shape
    differ = got.top != ref.top
    z = tiny.pre_quant_top(tiny.enc_top(tiny.enc_bottom(clips - 0.5))).permute(0, 2, 3, 4, 1)[differ]  # [n, d]
    dist = torch.cdist(z, tiny.quantizer_top.embed)  # [n, K]
    picked, best = dist.gather(1, got.top[differ][:, None])[:, 0], dist.min(1).values
    assert ((picked - best) <= 1e-4 * best).all()
    assert int(differ.sum()) + int((got.bottom != ref.bottom).sum()) <= 0.001 * (ref.top.numel() + ref.bottom.numel())
    out = model.decode(ref)
    assert out.dtype == F32 and out.shape == clips.shape
    assert (out - tiny.decode(ref)).abs().max() < 1e-5
    assert out.min() >= 0 and out.max() <= 1


def test_bf16_decodes_close_to_the_reference(tiny, clips):
    codes = tiny.encode(clips)
    got = FastModel(tiny, Precision(BF16, BF16))
    assert psnr(got.decode(codes), tiny.decode(codes)) > 45
    enc = got.encode(clips)
    assert enc.top.shape == codes.top.shape and enc.bottom.shape == codes.bottom.shape


def test_single_level_model(clips):
    model = seeded(dataclasses.replace(model_preset("tiny"), levels=1))
    fm = FastModel(model, Precision(F32, F32))
    ref = model.encode(clips)
    got = fm.encode(clips)
    assert got.top is None and int((got.bottom != ref.bottom).sum()) <= 0.001 * ref.bottom.numel()  # rounding ties
    assert (fm.decode(ref) - model.decode(ref)).abs().max() < 1e-5


@pytest.mark.parametrize("latent_norm", [False, True])
def test_residual_top(clips, latent_norm):
    model = seeded(dataclasses.replace(model_preset("tiny"), top_join="residual", latent_norm=latent_norm))
    fm = FastModel(model, Precision(F32, F32))
    ref = model.encode(clips)
    got = fm.encode(clips)
    differ = int((got.top != ref.top).sum()) + int((got.bottom != ref.bottom).sum())  # rounding ties
    assert differ <= 0.001 * (ref.top.numel() + ref.bottom.numel())
    assert (fm.decode(ref) - model.decode(ref)).abs().max() < 1e-5


@pytest.mark.parametrize("stride", [(1, 2, 2), (2, 2, 2), (2, 1, 2), (1, 1, 1)])
def test_sub_pixel_is_the_transposed_conv(stride):
    torch.manual_seed(0)
    kernel = tuple(4 if s == 2 else 3 for s in stride)
    conv = nn.ConvTranspose3d(7, 3, kernel, stride=stride, padding=1)
    x = torch.randn(2, 7, 5, 6, 7)
    want = conv(x)
    got = _SubPixel(conv, F32, torch.device("cpu"), offset=0.5)(x.contiguous(memory_format=torch.channels_last_3d))
    assert got.shape == want.shape
    assert (got - (want + 0.5)).abs().max() < 1e-5


def test_sub_pixel_refuses_other_shapes():
    with pytest.raises(ValueError):
        _SubPixel(nn.ConvTranspose3d(4, 3, 3, stride=2, padding=1), F32, torch.device("cpu"))


def test_residual_block_and_in_place_relus_match_the_module():
    torch.manual_seed(0)
    block = MSVQVAE(model_preset("tiny")).enc_bottom[-1]  # residual blocks, then a ReLU
    x = torch.randn(2, 16, 4, 6, 6)
    steps = fast.compile_stack(block, F32, torch.device("cpu"))
    xc = x.contiguous(memory_format=torch.channels_last_3d)
    got = fast._run(steps, xc)
    assert (got - block(x)).abs().max() < 1e-5
    assert torch.equal(xc, x)  # the input is left alone (the first ReLU of a block is not in place)


def test_precisions():
    assert resolve_precision("fp32") == Precision(F32, F32)
    assert resolve_precision("bf16") == Precision(BF16, BF16)
    auto = resolve_precision("auto", "cpu")
    assert auto == (Precision(F32, BF16) if fast.bf16_pays() else Precision(F32, F32))
    assert not fast.bf16_pays() or fast.bf16_is_fast("cpu")  # only ever what the CPU has
    if sys.platform.startswith("linux") and Path("/proc/cpuinfo").exists():
        assert fast.cpu_vendor()  # read from /proc/cpuinfo
    assert auto.encode == F32  # bf16 encoding changes too many indices; auto never does it
    with pytest.raises(UsageError, match="precision"):
        resolve_precision("fp16")


def test_one_fast_model_per_model_and_precision(tiny):
    a = fast_model(tiny, "fp32")
    assert fast_model(tiny, "fp32") is a
    assert fast_model(tiny, "bf16") is not a
    assert tiny.enc_bottom[0].weight.dtype == F32  # the reference model is left as it was
    assert tiny.enc_bottom[0].weight.is_contiguous()


def test_openmp_waits_passively_unless_the_user_chose(tmp_path):
    """The msvq command sets OMP_WAIT_POLICY=PASSIVE before torch loads (msvq_codec/runtime.py)."""
    import os
    import subprocess
    import sys

    code = ("import os, sys; from msvq_codec.runtime import configure_before_torch as c; ok = c(); "
            "import torch; print(ok, os.environ['OMP_WAIT_POLICY'], c())")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "PASSIVE", "False"]  # and nothing once torch is loaded
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "ACTIVE", "False"]
