"""Distortion metrics as the paper measures them (Section 3.2): PSNR with L = 255 and SSIM from scikit-image,
per frame, averaged over the clip. Inputs are uint8 RGB frames [T, H, W, 3]; a float clip is first rounded to
8 bits, as a decoded video would be.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

PEAK = 255.0  # 8-bit range L
PSNR_IDENTICAL = math.inf  # PSNR of a frame identical to its reference


def to_uint8(clip: np.ndarray) -> np.ndarray:
    """A float clip in [0, 1] -> uint8 (round half to even); uint8 passes through."""
    if clip.dtype == np.uint8:
        return clip
    return np.clip(np.rint(clip.astype(np.float64) * PEAK), 0, PEAK).astype(np.uint8)


def psnr_frames(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    """PSNR of each frame [T]; inf where a frame is identical."""
    ref, tst = to_uint8(reference).astype(np.float64), to_uint8(test).astype(np.float64)
    if ref.shape != tst.shape:
        raise ValueError(f"shape mismatch {ref.shape} vs {tst.shape}")
    mse = ((ref - tst) ** 2).reshape(ref.shape[0], -1).mean(axis=1)  # [T]
    with np.errstate(divide="ignore"):
        return np.where(mse == 0, PSNR_IDENTICAL, 10 * np.log10(PEAK**2 / np.maximum(mse, 1e-300)))


def ssim_frames(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    """SSIM of each frame [T] (scikit-image defaults: 7x7 window, colour channels averaged)."""
    ref, tst = to_uint8(reference), to_uint8(test)
    if ref.shape != tst.shape:
        raise ValueError(f"shape mismatch {ref.shape} vs {tst.shape}")
    return np.array(
        [structural_similarity(r, t, channel_axis=-1, data_range=PEAK) for r, t in zip(ref, tst)]
    )


def clip_psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean over frames of per-frame PSNR (inf only if every frame is identical)."""
    return float(np.mean(psnr_frames(reference, test)))


def clip_ssim(reference: np.ndarray, test: np.ndarray) -> float:
    return float(np.mean(ssim_frames(reference, test)))
