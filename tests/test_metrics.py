"""PSNR and SSIM as the paper measures them (msvq_codec.metrics), against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msvq_codec.metrics import PEAK, clip_psnr, clip_ssim, psnr_frames, ssim_frames, to_uint8


def constant(value: int, frames: int = 3, size: int = 16) -> np.ndarray:
    return np.full((frames, size, size, 3), value, np.uint8)


def test_identical_clips_give_infinite_psnr_and_ssim_one():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    assert np.all(np.isinf(psnr_frames(clip, clip.copy())))
    assert clip_psnr(clip, clip.copy()) == math.inf
    assert np.allclose(ssim_frames(clip, clip.copy()), 1.0)
    assert clip_ssim(clip, clip.copy()) == pytest.approx(1.0)


def test_known_noise_level_gives_the_expected_psnr():
    rng = np.random.default_rng(1)
    ref = rng.integers(10, 246, (3, 16, 16, 3), dtype=np.uint8)
    signs = rng.choice(np.array([-3, 3]), ref.shape)
    noisy = (ref.astype(int) + signs).astype(np.uint8)  # every pixel off by exactly 3: MSE = 9
    expected = 10 * math.log10(255**2 / 9)  # 38.5884 dB
    assert expected == pytest.approx(38.5884, abs=1e-4)
    assert np.allclose(psnr_frames(ref, noisy), expected)
    assert clip_psnr(ref, noisy) == pytest.approx(expected)
    # a constant offset of 5: MSE = 25, 34.1514 dB
    assert clip_psnr(constant(100), constant(105)) == pytest.approx(10 * math.log10(65025 / 25))
    # the largest possible error: 0 dB
    assert clip_psnr(constant(0), constant(255)) == pytest.approx(0.0)


def test_clip_psnr_is_the_mean_of_per_frame_psnr_not_of_the_pooled_mse():
    ref = np.zeros((2, 8, 8, 3), np.uint8)
    test = ref.copy()
    test[0] += 1  # MSE 1   -> 48.1308 dB
    test[1] += 10  # MSE 100 -> 28.1308 dB
    per_frame = [10 * math.log10(65025 / 1), 10 * math.log10(65025 / 100)]
    assert np.allclose(psnr_frames(ref, test), per_frame)
    assert clip_psnr(ref, test) == pytest.approx(np.mean(per_frame))  # 38.13, not 10 log10(255^2 / 50.5) = 31.1


def test_one_identical_frame_is_infinite_only_in_that_frame():
    ref = constant(50, frames=2)
    test = ref.copy()
    test[1] = 52
    values = psnr_frames(ref, test)
    assert values[0] == math.inf and values[1] == pytest.approx(10 * math.log10(65025 / 4))


def test_ssim_of_constant_frames_is_the_luminance_term():
    # sigma_x = sigma_y = sigma_xy = 0, so SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1), C1 = (0.01 L)^2
    c1 = (0.01 * PEAK) ** 2
    expected = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)  # 0.995476
    assert np.allclose(ssim_frames(constant(100), constant(110)), expected)
    assert clip_ssim(constant(100), constant(110)) == pytest.approx(expected)


def test_float_clips_are_rounded_to_8_bits_first():
    ref = constant(128)
    assert clip_psnr(ref, ref.astype(np.float32) / 255.0) == math.inf
    assert to_uint8(np.array([0.0, 0.5, 1.0, 1.5, -1.0])).tolist() == [0, 128, 255, 255, 0]


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError):
        psnr_frames(constant(0, frames=2), constant(0, frames=3))
    with pytest.raises(ValueError):
        ssim_frames(constant(0, frames=2), constant(0, frames=3))
