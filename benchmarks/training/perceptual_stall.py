"""Why L_perc uses unit-length VGG features: train the default model on one fixed batch for a few steps with
the perceptual term as the paper reads literally (raw features), with unit-length features (our default), and
with no perceptual term, and print the reconstruction MSE after each step.

    python benchmarks/training/perceptual_stall.py [VIDEO] [--steps 14]

VIDEO defaults to a UCF101 training video in ../shared/data (never a test video). Needs `msvq fetch-vgg`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from msvq_codec.config import ModelConfig
from msvq_codec.model import MSVQVAE
from msvq_codec.train.loop import cpu_has_bf16
from msvq_codec.video import iter_clips
from msvq_codec.vgg import PerceptualLoss, load_vgg_weights

DEFAULT_VIDEO = Path(__file__).resolve().parents[3] / "shared/data/ucf101/videos/v_PlayingGuitar_g16_c02.avi"
GAMMA = 0.4  # the paper's perceptual weight
LR = 2e-4  # the paper's learning rate
CLIPS = 2  # the fixed batch


def run(batch: torch.Tensor, norm: str | None, steps: int, vgg: dict) -> list[float]:
    torch.manual_seed(0)
    model = MSVQVAE(ModelConfig()).train()
    perceptual = PerceptualLoss(vgg, norm) if norm else None
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    mses = []
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_bf16()):
            out = model(batch)
            mse = F.mse_loss(out.recon.float(), batch)
            loss = mse + out.vq_loss + (GAMMA * perceptual(out.recon, batch) if perceptual else 0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        mses.append(mse.item())
    return mses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--steps", type=int, default=14)
    args = parser.parse_args()
    clips = [c for _, c in zip(range(CLIPS), iter_clips(args.video))]
    batch = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float() / 255  # [b, 3, T, H, W]
    vgg = load_vgg_weights()
    for label, norm in (("raw VGG features (paper, literal)", "none"), ("unit-length features", "channel"),
                        ("no perceptual term", None)):  # fmt: skip
        mses = run(batch, norm, args.steps, vgg)
        print(f"{label:36s} MSE step 1 {mses[0]:.4f} -> step {args.steps} {mses[-1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
