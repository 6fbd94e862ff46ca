"""Seconds per CPU training step of the code on PYTHONPATH: to compare two checkouts of msvq, interleaved.

    git worktree add /tmp/before 164ea9a
    for r in 1 2 3; do PYTHONPATH=/tmp/before python benchmarks/train_step_code.py; PYTHONPATH=$PWD python benchmarks/train_step_code.py; done

The default model, batch 4 of random 32x64x64 clips, MSE + VQ loss under msvq train's autocast, Adam; the
median of 4 steps after a first (kernel selection). Prints which msvq_codec ran and the median.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

import msvq_codec
from msvq_codec.config import ModelConfig
from msvq_codec.model.vqvae import MSVQVAE
from msvq_codec.train.loop import _autocast

BATCH, STEPS = 4, 5  # the cpu recipe's batch; steps timed, the first dropped


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = MSVQVAE(ModelConfig()).train()
    optimizer = torch.optim.Adam(model.parameters(), 2e-4)
    config = ModelConfig()
    clips = torch.rand(BATCH, 3, config.clip_frames, config.clip_size, config.clip_size)  # [b, 3, T, H, W]
    times = []
    for _ in range(STEPS):
        start = time.perf_counter()
        with _autocast(torch.device("cpu"), True):
            out = model(clips)
            loss = F.mse_loss(out.recon.float(), clips) + out.vq_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()
        times.append(time.perf_counter() - start)
    print(msvq_codec.__file__, f"{statistics.median(times[1:]):.3f} s a step")


if __name__ == "__main__":
    main()
