"""Decoder-in-the-loop refinement of the bottom latent (``msvq encode --effort N``).

The encoder's bottom latent is what the network learnt to predict, not the latent whose decoding is closest
to the clip. ``refine_bottom`` takes ``steps`` Adam steps on it against the pixel error of the decoder's
output (the reference decoder, float32, with the top fixed at its chosen codes), before its codes are
chosen. The decoder is given each step's nearest codebook entries and the gradient passes straight through
to the latent (as in VQ-VAE training), so the steps aim at what will be decoded rather than at a continuous
latent that quantisation then moves away from. Only the latent moves; the weights do not. Inference only: gradients are taken with respect to the latent alone.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from msvq_codec.model.vqvae import MSVQVAE, PIXEL_OFFSET, Refiner, join_top, nearest_codes

REFINE_LR = 0.003  # Adam step size in latent units (bottom codebook entries: norm about 1.4; tuned on 4 dev clips)
MAX_STEPS = 1000  # beyond this an encode takes hours; refused as a usage error by the codec


def refine_bottom(model: MSVQVAE, x: Tensor, top: Tensor | None, z_bottom: Tensor, steps: int,
                  lr: float = REFINE_LR) -> Tensor:  # fmt: skip
    """``steps`` Adam steps on ``z_bottom [b, d, t, h, w]`` minimising the MSE between the decoded clip and
    ``x [b, 3, T, H, W]`` in [0, 1], the top latent fixed at ``top``'s codebook entries. Returns the moved
    latent, float32 [b, d, t, h, w]."""
    if steps <= 0:
        return z_bottom
    with torch.inference_mode(False), torch.enable_grad():
        target = x.detach().clone().float()  # a normal tensor, even when x was made under inference mode
        fixed = None
        if top is not None:
            with torch.no_grad():
                fixed = model.upsample_top(model.quantizer_top.lookup(top.clone()))  # [b, d, t_b, h_b, w_b]
        z = z_bottom.detach().clone().float().contiguous().requires_grad_(True)
        embed = model.quantizer_bottom.embed.detach().float()
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            with torch.no_grad():
                snapped = model.quantizer_bottom.lookup(nearest_codes("bottom", z, embed))  # [b, d, t_b, h_b, w_b]
            quantized = z + (snapped - z).detach()  # straight through: decodes the entries, z gets the gradient
            latent = quantized if fixed is None else join_top(model.config, fixed, quantized)  # [b, (2)d, t, h, w]
            recon = (model.decoder(latent) + PIXEL_OFFSET).clamp(0.0, 1.0)  # [b, 3, T, H, W]
            loss = F.mse_loss(recon, target)
            (grad,) = torch.autograd.grad(loss, [z])
            z.grad = grad
            opt.step()
        return z.detach()


def refiner(model: MSVQVAE, steps: int) -> Refiner | None:
    """The ``Refiner`` that ``encode`` takes for ``steps`` steps (None for 0: no refinement)."""
    return functools.partial(refine_bottom, model, steps=steps) if steps > 0 else None
