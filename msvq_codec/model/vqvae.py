"""MS-VQ-VAE: the two-level 3D VQ-VAE of the paper (Section 3.1), with the single-level baseline as a config.

    x [b, 3, T, H, W] in [0, 1]
      -> enc_bottom (stride bottom_stride)          h_b [b, C, t_b, h_b, w_b]
      -> enc_top    (stride top_stride)             h_t [b, C, t_t, h_t, w_t]
      -> quantise top                               z_t -> indices_top
      -> dec_top(z_t) fused with h_b -> quantise    z_b -> indices_bottom   (bottom refines the top)
    decode: upsample(z_t) ++ z_b -> decoder (stride bottom_stride) -> x_hat

With ``top_join="residual"`` (not the paper's) the decoder reads the sum ``upsample(z_t) + z_b`` instead, and the
bottom codes quantise ``e_b - upsample(z_t)``, what the top leaves of the bottom latent ``e_b``; a prediction loss
``||upsample(z_t) - sg(e_b)||^2`` makes the top carry the bottom latent's coarse content (residual VQ across
scales), so that it cannot collapse to a constant the way the concatenated top can.

The model never touches files: ``encode`` maps clips to integer codes and ``decode`` maps codes to clips.
Which code each latent gets is the nearest one unless the caller passes a ``Chooser`` (rate control, in
``msvq_codec.rdo``): the top level is chosen first and the bottom latent is computed from the *chosen* top,
so the bottom can make up for a top code traded for a cheaper one. A ``Refiner`` may move the bottom latent
before its codes are chosen (``model.refine``). The model knows nothing of entropy coding.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msvq_codec.config import ModelConfig
from msvq_codec.model.layers import Downsample, Upsample, up_conv, stride_steps
from msvq_codec.model.quantizer import EMAQuantizer, nearest_rows

PIXEL_OFFSET = 0.5  # clips in [0, 1] are centred to [-0.5, 0.5] inside the network

# (level name, latent z [b, d, t, h, w], codebook [K, d]) -> indices [b, t, h, w] int64. Called once per level
# per batch, top first; the nearest code (``nearest_codes``) when no chooser is given.
Chooser = Callable[[str, Tensor, Tensor], Tensor]
# (clips x [b, 3, T, H, W] in [0, 1], chosen top codes [b, t, h, w] or None, bottom latent [b, d, t, h, w])
# -> the bottom latent to choose codes for.
Refiner = Callable[[Tensor, "Tensor | None", Tensor], Tensor]


def join_top(config: ModelConfig, coarse: Tensor, z_b: Tensor) -> Tensor:
    """The decoder's input from the upsampled top latent and the bottom latent, both [b, d, t_b, h_b, w_b]:
    [b, 2d, ...] concatenated, or [b, d, ...] summed (``ModelConfig.top_join``)."""
    if config.top_join == "residual":
        return coarse + z_b
    return torch.cat([coarse, z_b], dim=1)


def held(config: ModelConfig, z: Tensor) -> Tensor:
    """A level's encoder output z [b, d, t, h, w] as its codes see it: each latent vector scaled to unit length
    with ``ModelConfig.latent_norm``, else unchanged."""
    return F.normalize(z, dim=1) if config.latent_norm else z


def nearest_codes(level: str, z: Tensor, embed: Tensor) -> Tensor:
    """The nearest codebook entry of each latent: z [b, d, t, h, w], embed [K, d] -> [b, t, h, w] int64."""
    b, d, t, h, w = z.shape
    flat = z.float().permute(0, 2, 3, 4, 1).reshape(-1, d)  # [b*t*h*w, d]
    return nearest_rows(flat, embed).view(b, t, h, w)


class Codes(NamedTuple):
    top: Tensor | None  # [b, t_t, h_t, w_t] int64, None for a single-level model
    bottom: Tensor  # [b, t_b, h_b, w_b] int64

    def by_level(self) -> tuple[Tensor, ...]:
        """The codes in ``ModelConfig.level_names`` order (coarse first)."""
        return (self.bottom,) if self.top is None else (self.top, self.bottom)

    @classmethod
    def from_levels(cls, levels: Sequence[Tensor]) -> "Codes":
        """The inverse of ``by_level``: one tensor per level, coarse first (two levels, or the bottom alone)."""
        if len(levels) not in (1, 2):
            raise ValueError(f"a model has 1 or 2 levels of codes, not {len(levels)}")
        return cls(None, levels[0]) if len(levels) == 1 else cls(levels[0], levels[1])


class Latents(NamedTuple):
    z_bottom: Tensor  # [b, d, t_b, h_b, w_b] quantised bottom latent (straight-through)
    z_top: Tensor | None  # [b, d, t_t, h_t, w_t] quantised top latent, None for a single-level model
    vq_loss: Tensor  # scalar: sum of the levels' commitment losses
    codes: Codes


class BottomLatent(NamedTuple):
    coded: Tensor  # [b, d, t_b, h_b, w_b] what the bottom codes quantise: ``whole``, less ``coarse`` if given
    whole: Tensor  # [b, d, t_b, h_b, w_b] the bottom latent
    coarse: Tensor | None  # [b, d, t_b, h_b, w_b] the upsampled top it is taken from (residual join), else None


class ForwardOutput(NamedTuple):
    recon: Tensor  # [b, 3, T, H, W], unclamped
    vq_loss: Tensor  # scalar: sum of the levels' commitment losses
    codes: Codes


class MSVQVAE(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c, r, n, d = config.hidden_channels, config.res_channels, config.n_res_blocks, config.embed_dim

        def quantizer(level: str) -> EMAQuantizer:
            return EMAQuantizer(
                config.codebook_of(level), d, config.ema_decay, config.ema_eps, config.dead_code_threshold
            )

        self.enc_bottom = Downsample(config.in_channels, c, config.bottom_stride, r, n)
        self.quantizer_bottom = quantizer("bottom")
        if config.levels == 2:
            self.enc_top = Downsample(c, c, config.top_stride, r, n)
            self.pre_quant_top = nn.Conv3d(c, d, 1)
            self.quantizer_top = quantizer("top")
            self.dec_top = Upsample(d, c, d, config.top_stride, r, n)  # top codes -> bottom-grid features
            self.pre_quant_bottom = nn.Conv3d(c + d, d, 1)
            self.upsample_top = _upsampler(d, config.top_stride)  # top codes -> bottom grid, for the decoder
            dec_in = d if config.top_join == "residual" else 2 * d
        else:
            self.pre_quant_bottom = nn.Conv3d(c, d, 1)
            dec_in = d
        self.decoder = Upsample(dec_in, c, config.in_channels, config.bottom_stride, r, n)

    # ---- the coding path -------------------------------------------------------------------------
    def _quantize(self, x: Tensor) -> Latents:
        h_b = self.enc_bottom(x - PIXEL_OFFSET)  # [b, C, t_b, h_b, w_b]
        if self.config.levels == 2:
            top = self.quantizer_top(self._top_latent(h_b))  # z_t: [b, d, t_t, h_t, w_t]
            latent = self._bottom_latent(top.quantized, h_b)
            loss = top.commitment
            if latent.coarse is not None:
                loss = loss + F.mse_loss(latent.coarse, latent.whole.detach())  # the top predicts the bottom latent
            bottom = self.quantizer_bottom(latent.coded)
            loss = loss + bottom.commitment
            return Latents(bottom.quantized, top.quantized, loss, Codes(top.indices, bottom.indices))
        bottom = self.quantizer_bottom(self._bottom_latent(None, h_b).coded)
        return Latents(bottom.quantized, None, bottom.commitment, Codes(None, bottom.indices))

    def _top_latent(self, h_b: Tensor) -> Tensor:
        """The top latent [b, d, t_t, h_t, w_t] that the top codes quantise, from the bottom encoder's features
        h_b [b, C, t_b, h_b, w_b]."""
        return held(self.config, self.pre_quant_top(self.enc_top(h_b)))

    def _bottom_latent(self, z_t: Tensor | None, h_b: Tensor) -> BottomLatent:
        """The bottom latent from the quantised top latent z_t [b, d, t_t, h_t, w_t] (None for a single-level
        model) and the bottom encoder's features h_b [b, C, t_b, h_b, w_b]: the top's decoding fused with the
        features, and for the residual join what the upsampled top leaves of it."""
        if z_t is None:
            whole = held(self.config, self.pre_quant_bottom(h_b))  # [b, d, t_b, h_b, w_b]
            return BottomLatent(whole, whole, None)
        fused = torch.cat([self.dec_top(z_t), h_b], dim=1)  # [b, d + C, t_b, h_b, w_b]
        whole = held(self.config, self.pre_quant_bottom(fused))  # [b, d, t_b, h_b, w_b]
        if self.config.top_join != "residual":
            return BottomLatent(whole, whole, None)
        coarse = self.upsample_top(z_t)  # [b, d, t_b, h_b, w_b]
        return BottomLatent(whole - coarse, whole, coarse)

    def _decode_latents(self, z_b: Tensor, z_t: Tensor | None) -> Tensor:
        if z_t is not None:
            z_b = join_top(self.config, self.upsample_top(z_t), z_b)  # [b, 2d or d, t_b, h_b, w_b]
        return self.decoder(z_b) + PIXEL_OFFSET  # [b, 3, T, H, W]

    def forward(self, x: Tensor, hide_bottom: Tensor | None = None) -> ForwardOutput:
        """Training pass: x [b, 3, T, H, W] in [0, 1] -> unclamped reconstruction, VQ loss and codes.
        ``hide_bottom`` bool, [b]: clips whose reconstruction sees only the top codes (the bottom latent zeroed),
        or [b, t_b, h_b, w_b]: positions of the bottom grid zeroed, so that the top level learns to carry the
        picture (``TrainConfig.hide_bottom``)."""
        z_b, z_t, vq_loss, codes = self._quantize(x)
        if hide_bottom is not None and z_t is not None:
            keep = (~hide_bottom).to(z_b.dtype)
            keep = keep.view(-1, 1, 1, 1, 1) if keep.dim() == 1 else keep.unsqueeze(1)  # [b, 1, t|1, h|1, w|1]
            z_b = z_b * keep  # [b, d, t, h, w]
        return ForwardOutput(self._decode_latents(z_b, z_t), vq_loss, codes)

    @torch.no_grad()
    def encode(self, x: Tensor, choose: Chooser | None = None, refine: Refiner | None = None) -> Codes:
        """Clips x [b, 3, T, H, W] in [0, 1] -> integer codes on each level's grid: the nearest codes, or what
        ``choose`` picks (top first; the bottom latent computed from the chosen top), the bottom latent first
        moved by ``refine`` if given."""
        if choose is None and refine is None:
            return self._quantize(x).codes
        pick = choose or nearest_codes
        h_b = self.enc_bottom(x - PIXEL_OFFSET)  # [b, C, t_b, h_b, w_b]
        top, z_top = None, None
        if self.config.levels == 2:
            top = pick("top", self._top_latent(h_b), self.quantizer_top.embed)
            z_top = self.quantizer_top.lookup(top)  # [b, d, t_t, h_t, w_t]
        z_b = self._bottom_latent(z_top, h_b).coded  # [b, d, t_b, h_b, w_b]
        if refine is not None:
            z_b = refine(x, top, z_b)
        return Codes(top, pick("bottom", z_b, self.quantizer_bottom.embed))

    @torch.no_grad()
    def decode(self, codes: Codes) -> Tensor:
        """Codes -> clips [b, 3, T, H, W] clamped to [0, 1]."""
        z_b = self.quantizer_bottom.lookup(codes.bottom)  # [b, d, t_b, h_b, w_b]
        z_t = None if codes.top is None else self.quantizer_top.lookup(codes.top)  # [b, d, t_t, h_t, w_t]
        return self._decode_latents(z_b, z_t).clamp(0.0, 1.0)

    def decoder_state_keys(self) -> list[str]:
        """The ``state_dict`` keys that decoding depends on (codebooks and decoder), which define the
        meaning of a .msvq file: the model ID hashes exactly these."""
        prefixes = ("quantizer_bottom.embed", "quantizer_top.embed", "upsample_top.", "decoder.")
        return sorted(k for k in self.state_dict() if k.startswith(prefixes))


def _upsampler(channels: int, stride: tuple[int, int, int]) -> nn.Sequential:
    """Transposed convs that multiply a latent grid by ``stride``, channels unchanged."""
    steps = stride_steps(stride)
    layers: list[nn.Module] = []
    for i, step in enumerate(steps):
        layers.append(up_conv(channels, channels, step))
        if i < len(steps) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
