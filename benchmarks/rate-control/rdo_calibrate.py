"""Does the latent distance predict the pixel error? The distortion proxy of rate control (``msvq_codec.rdo``).

    python benchmarks/rate-control/rdo_calibrate.py VIDEO... [--weights W] [--json OUT.json]

For every evaluated clip of the inputs (as ``msvq bench`` selects them), codes of one level are perturbed:
a fraction (FRACTIONS) of its positions, picked at random, get their r-th nearest codebook entry instead of
the nearest (RANKS). For the bottom level the top stays at its nearest codes; for the top level the bottom is
recomputed from the perturbed top and takes its nearest codes, as the encoder does. Each perturbed clip is
decoded (the reference decoder, fp32, clamped) and its pixel squared error against the source clip (8-bit
units, summed over the clip's RGB values) compared with the nearest codes' decode. Per level: the Pearson
correlation between the increase in squared latent distance and the increase in pixel squared error over
all (clip, fraction, rank) samples, and the least-squares slope through the origin (pixel SSE per unit of
latent distance): ``rdo.BOTTOM_WEIGHT`` is the bottom's slope.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from msvq_codec.runtime import configure_before_torch

configure_before_torch()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from msvq_codec.bench.clips import iter_videos  # noqa: E402
from msvq_codec.codec import load_model  # noqa: E402

FRACTIONS = (0.05, 0.15, 0.4)
RANKS = (2, 4, 16)
PIXEL_MAX = 255.0


def perturbed(level: str, target: str, z: torch.Tensor, embed: torch.Tensor, fraction: float, rank: int,
              gen: torch.Generator, record: dict) -> torch.Tensor:  # fmt: skip
    """A chooser: the nearest codes, except at ``fraction`` of the positions of level ``target`` the
    ``rank``-th nearest; records each level's latent and the squared distance of the codes chosen."""
    b, d, t, h, w = z.shape
    flat = z.float().permute(0, 2, 3, 4, 1).reshape(-1, d)  # [n, d]
    dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed.t() + embed.pow(2).sum(1)).clamp_min(0)  # [n, K]
    order = dist.argsort(1)
    codes = order[:, 0].clone()
    if level == target:
        pick = torch.rand(codes.shape[0], generator=gen) < fraction
        codes[pick] = order[pick, rank - 1]
    record[level] = float(dist.gather(1, codes[:, None]).sum())
    return codes.view(b, t, h, w)


def sse(model, codes, x: torch.Tensor) -> float:
    return float(((model.decode(codes) - x) * PIXEL_MAX).pow(2).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", type=Path)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    loaded = load_model(args.weights, "cpu")
    model = loaded.model
    cfg = model.config
    gen = torch.Generator().manual_seed(args.seed)
    samples = {level: [] for level in cfg.level_names}  # level -> [(d_latent, d_pixel)]
    n_clips = 0
    for video in iter_videos(args.inputs, fps=cfg.fps, size=cfg.clip_size, clip_frames=cfg.clip_frames):
        for clip in video.selected:
            x = torch.from_numpy(clip.frames[None]).permute(0, 4, 1, 2, 3).float().div(255.0)  # [1, 3, T, H, W]
            base: dict = {}
            codes = model.encode(x, lambda lv, z, e: perturbed(lv, "", z, e, 0.0, 1, gen, base))
            base_sse = sse(model, codes, x)
            for target in cfg.level_names:
                for fraction in FRACTIONS:
                    for rank in RANKS:
                        rec: dict = {}
                        chosen = model.encode(x, lambda lv, z, e: perturbed(lv, target, z, e, fraction, rank, gen,
                                                                           rec))  # fmt: skip
                        samples[target].append((rec[target] - base[target], sse(model, chosen, x) - base_sse))
            n_clips += 1
            db = 10 * np.log10(PIXEL_MAX**2 * x.numel() / base_sse)
            print(f"{video.path} clip {clip.index}: nearest codes {db:.2f} dB", flush=True)
    report = {"weights": str(loaded.path), "model_id": loaded.model_id.hex(), "clips": n_clips,
              "fractions": FRACTIONS, "ranks": RANKS, "levels": {}}  # fmt: skip
    for level, pairs in samples.items():
        lat, pix = np.array(pairs).T
        slope = float((lat * pix).sum() / (lat * lat).sum())
        report["levels"][level] = {
            "samples": len(pairs), "pearson": float(np.corrcoef(lat, pix)[0, 1]), "slope_through_origin": slope,
            "pixel_sse_increase_median": float(np.median(pix)), "latent_increase_median": float(np.median(lat)),
            "residual_rms_over_mean": float(np.sqrt(np.mean((pix - slope * lat) ** 2)) / np.mean(np.abs(pix))),
        }  # fmt: skip
        print(f"{level}: r = {report['levels'][level]['pearson']:.3f}, slope {slope:.4g} pixel SSE per latent unit "
              f"({len(pairs)} samples)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
