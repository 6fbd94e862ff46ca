"""Distortion of one clip against its source, as the paper measures it (Section 3.2) plus LPIPS.

PSNR (8-bit, L = 255) and SSIM (scikit-image) come from ``msvq_codec.metrics``: per frame, averaged over the
clip's real frames (padding is never scored). A frame identical to its source has infinite PSNR; a clip whose
frames are all identical then has an infinite mean, which bench reports as ``inf`` rather than hiding.

LPIPS is ``msvq_codec.vgg.LPIPS`` (VGG16 with the published linear heads) on frames in [0, 1], averaged over
the frames. Every system is compared with the same source clip, so the source's features
(``LPIPS.features``) are computed once per clip (``prepare``) and reused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from msvq_codec.errors import WeightsError
from msvq_codec.metrics import psnr_frames, ssim_frames
from msvq_codec.vgg import LPIPS, load_vgg_weights


@dataclass(frozen=True)
class Prepared:
    frames: np.ndarray  # uint8 [n, H, W, 3]: the source frames scored against
    features: list[torch.Tensor] | None  # their unit-normalised LPIPS features, one tensor per tap


class Scorer:
    """PSNR, SSIM and (when it has a network) LPIPS of test frames against prepared source frames."""

    def __init__(self, lpips: LPIPS | None = None, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        # channels_last: the same numbers, and VGG16's convolutions run faster in it on a CPU
        self.lpips = lpips.to(self.device, memory_format=torch.channels_last).eval() if lpips is not None else None

    @classmethod
    def create(cls, mode: str, device: str | torch.device, vgg_weights=None) -> tuple["Scorer", str | None]:
        """``mode`` auto (LPIPS if VGG16 weights are found), on (required), off. Returns (scorer, note)."""
        if mode == "off":
            return cls(None, device), "LPIPS skipped (--no-lpips)"
        try:
            return cls(LPIPS(load_vgg_weights(vgg_weights, lpips_heads=True)), device), None
        except WeightsError as err:
            if mode == "on":
                raise
            return cls(None, device), f"LPIPS skipped: {err}"

    @property
    def has_lpips(self) -> bool:
        return self.lpips is not None

    # ---- LPIPS, in its two halves so the source half runs once -------------------------------------
    def _features(self, frames: np.ndarray) -> list[torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)  # [n, H, W, 3] uint8
        x = x.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)  # [n, 3, H, W]
        with torch.inference_mode():
            return self.lpips.features(x)

    def _distance(self, a: list[torch.Tensor], b: list[torch.Tensor]) -> np.ndarray:
        with torch.inference_mode():
            return self.lpips.distance(a, b).double().cpu().numpy()  # [n]

    def lpips_frames(self, reference: np.ndarray, test: np.ndarray) -> np.ndarray:
        return self._distance(self._features(reference), self._features(test))

    # ---- the public interface ----------------------------------------------------------------------
    def prepare(self, reference: np.ndarray) -> Prepared:
        return Prepared(reference, self._features(reference) if self.lpips is not None else None)

    def score(self, prepared: Prepared | np.ndarray, test: np.ndarray) -> dict[str, float | None]:
        """Clip means of PSNR (dB), SSIM and LPIPS (None without a network) over the frames."""
        if not isinstance(prepared, Prepared):
            prepared = self.prepare(prepared)
        reference = prepared.frames
        if test.shape != reference.shape:
            raise ValueError(f"shape mismatch {test.shape} vs {reference.shape}")
        lpips = None
        if prepared.features is not None:
            lpips = float(np.mean(self._distance(prepared.features, self._features(test))))
        return {
            "psnr": float(np.mean(psnr_frames(reference, test))),
            "ssim": float(np.mean(ssim_frames(reference, test))),
            "lpips": lpips,
        }


def mean(values) -> float | None:
    """Mean over clips; None if any value is missing; inf when some clip is infinite (all frames identical)."""
    values = list(values)
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))
