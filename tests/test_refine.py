"""Tests for msvq_codec.model.refine (``msvq encode --effort``): the refined bottom latent decodes closer to the
clip, the weights do not move, and it runs inside the inference-mode encoder. A tiny random model, on CPU."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from msvq_codec import files
from msvq_codec.config import model_preset
from msvq_codec.model.fast import fast_model
from msvq_codec.model.refine import refine_bottom, refiner
from msvq_codec.model.vqvae import MSVQVAE, Codes
from tinymodel import make_tiny_weights


def tiny_model(join: str = "concat") -> MSVQVAE:
    torch.manual_seed(0)
    model = MSVQVAE(dataclasses.replace(model_preset("tiny"), top_join=join))
    model.train()
    with torch.no_grad():
        model(torch.rand(2, 3, 32, 64, 64))  # seeds the codebooks
    return model.eval()


def clip(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 32, 64, 64, generator=gen).mul(0.3).add(0.35)  # [1, 3, T, H, W]


def error(model: MSVQVAE, codes: Codes, x: torch.Tensor) -> float:
    return float((model.decode(codes) - x).pow(2).mean())


@pytest.mark.parametrize("join", ["concat", "residual"])
def test_refined_codes_decode_closer_and_the_weights_stay(join):
    model = tiny_model(join)
    x = clip()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = model.encode(x)
    refined = model.encode(x, refine=refiner(model, 30))
    assert error(model, refined, x) < error(model, plain, x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert refiner(model, 0) is None


def test_zero_steps_is_the_latent_itself_and_shapes_hold():
    model = tiny_model()
    z = torch.randn(1, model.config.embed_dim, 16, 16, 16)
    assert refine_bottom(model, clip(), None, z, 0) is z
    top = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    moved = refine_bottom(model, clip(), top, z, 2)
    assert moved.shape == z.shape and not moved.requires_grad and not torch.equal(moved, z)


def test_refine_runs_inside_the_fast_inference_encoder():
    model = tiny_model()
    x = clip(1)
    runner = fast_model(model, "fp32")
    codes = runner.encode(x, refine=refiner(model, 3))  # the fast encoder runs under torch.inference_mode
    reference = model.encode(x, refine=refiner(model, 3))
    for a, b in zip(codes, reference):
        assert (a != b).float().mean() < 0.02  # the same steps; fp32 rounding may move a tie


def test_encode_with_effort_writes_a_decodable_file(tmp_path):
    weights = make_tiny_weights(tmp_path / "tiny.safetensors")
    np.save(tmp_path / "in.npy", np.random.default_rng(0).integers(0, 256, (20, 64, 64, 3), dtype=np.uint8))
    result = files.encode_video(tmp_path / "in.npy", tmp_path / "out.msvq", weights=weights, device="cpu",
                                quality="medium", effort=2)  # fmt: skip
    assert files.describe(result.output)["quality_preset"] == "medium"
    decoded = files.decode_file(result.output, tmp_path / "out.npy", weights=weights, device="cpu")
    assert decoded.frames == 20
