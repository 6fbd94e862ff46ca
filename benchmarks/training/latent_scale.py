"""How large a checkpoint's latents are: the scale at which a residual top level's training can run away.

With ``top_join = "residual"`` the bottom codes quantise ``e_b - up(z_t)``, and the losses that tie the bottom
latent ``e_b`` and the upsampled top ``up(z_t)`` to each other depend only on their difference, so nothing in
them holds the two to a scale. This prints, for each checkpoint (the raw weights, not the average), the
root-mean-square of the bottom latent, the upsampled top, what the bottom codes quantise, and both codebooks,
over the clips of one video, so that runs can be compared at the same step:

    python benchmarks/training/latent_scale.py VIDEO RUN/last.pt [RUN2/last.pt ...]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from msvq_codec.model.vqvae import MSVQVAE
from msvq_codec.train.checkpoint import configs_of, load_checkpoint
from msvq_codec.video.read import iter_clips


def rms(t: torch.Tensor) -> float:
    return float(t.double().pow(2).mean().sqrt())


@torch.no_grad()
def scales(model: MSVQVAE, x: torch.Tensor) -> dict[str, float]:
    """RMS of the latents of clips ``x`` [b, 3, T, H, W] in [0, 1], as the model's own encode computes them."""
    seen = {}

    def keep(_x, top, quantised):  # the encoder's refine hook: what the bottom codes quantise, unchanged
        seen.update(top=top, quantised=quantised)
        return quantised

    model.encode(x, refine=keep)
    quantised = seen["quantised"]  # [b, d, t_b, h_b, w_b]
    out = {"bottom codebook": rms(model.quantizer_bottom.embed)}
    if model.config.levels == 1:
        return {"bottom latent": rms(quantised), **out}
    up = model.upsample_top(model.quantizer_top.lookup(seen["top"]))  # [b, d, t_b, h_b, w_b]
    e_b = quantised + up if model.config.top_join == "residual" else quantised
    return {"bottom latent": rms(e_b), "upsampled top": rms(up), "bottom codes quantise": rms(quantised),
            "top codebook": rms(model.quantizer_top.embed), **out}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", help="a video; its whole 2-second clips are measured")
    parser.add_argument("checkpoints", nargs="+", help="msvq train checkpoints (RUN/last.pt)")
    args = parser.parse_args()
    clips = [c for c in iter_clips(args.video) if len(c) == 32]  # each [32, 64, 64, 3] uint8
    x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float() / 255  # [b, 3, 32, 64, 64]
    for path in args.checkpoints:
        ckpt = load_checkpoint(path)
        config, _ = configs_of(ckpt)
        model = MSVQVAE(config)
        model.load_state_dict(ckpt["model"])
        model.eval()
        figures = ", ".join(f"{k} {v:.4g}" for k, v in scales(model, x).items())
        print(f"{path}: step {ckpt.get('step')}: {figures}")


if __name__ == "__main__":
    main()
