"""Shared test helper: a tiny random-initialised MS-VQ-VAE saved as a real weights file, with its entropy models.

No placeholder weights are committed; tests make their own. One training-mode pass seeds the codebooks from
encoder outputs, as training would, so codes are spread over the codebook. The entropy models (the sidecars
``msvq encode``'s codecs need: the learned prior and the context model) are fitted on the codes of a few smooth
random clips.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from msvq_codec.config import ModelConfig, model_preset
from msvq_codec.entropy import save_entropy, sidecar_path
from msvq_codec.entropy.fit import fit_model
from msvq_codec.entropy.prior_file import prior_path, save_prior
from msvq_codec.entropy.prior_fit import PriorRecipe
from msvq_codec.entropy.prior_fit import fit_model as fit_prior
from msvq_codec.model.vqvae import MSVQVAE
from msvq_codec.model.weights import save_weights


def make_tiny_weights(path: Path, seed: int = 0, entropy: bool = True, config: ModelConfig | None = None) -> Path:
    """Tiny weights at ``path`` (``config``, else the ``tiny`` preset) and, with ``entropy``, their context model
    and learned prior beside them."""
    torch.manual_seed(seed)
    model = MSVQVAE(config or model_preset("tiny"))
    model.train()
    with torch.no_grad():
        model(torch.rand(2, 3, 32, 64, 64))  # seeds the codebooks
    model.eval()
    mid = save_weights(path, model)
    if entropy:
        videos = noise_codes(model, seed)  # encoded once, fitted on by both models
        save_entropy(sidecar_path(path), tiny_entropy(model, mid, seed, videos))
        save_prior(prior_path(path), tiny_prior(model, mid, seed, videos))
    return path


def noise_codes(model: MSVQVAE, seed: int = 0) -> list[list[np.ndarray]]:
    """The codes of three videos of slowly drifting noise (two clips each): per video, per level [2, t, h, w]."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(3, 3, 1, 64, 64, generator=gen)
    drift = torch.rand(3, 3, 1, 64, 64, generator=gen)
    t = torch.linspace(0, 1, 64).view(1, 1, 64, 1, 1)
    clips = (base * (1 - t) + drift * t).clamp(0, 1)  # [3, 3, 64, 64, 64]: two clips each
    with torch.no_grad():
        codes = [model.encode(clips[:, :, i * 32 : (i + 1) * 32]).by_level() for i in range(2)]
    return [[np.stack([codes[c][lv][v].numpy() for c in range(2)]) for lv in range(len(codes[0]))] for v in range(3)]


def tiny_entropy(model: MSVQVAE, model_id: bytes, seed: int = 0, videos=None):
    """An entropy model for ``model``, fitted on the codes of three clips of slowly drifting noise (``videos``:
    those codes, if already made)."""
    return fit_model(model_id, model.config.codebook_sizes, videos or noise_codes(model, seed), min_count=1,
                     provenance={"fitted_on": "tests/tinymodel.py noise"})  # fmt: skip


TINY_RECIPE = PriorRecipe(hidden0=16, hidden1=16, epochs=2.0, batch=256, lr=5e-3)


def tiny_prior(model: MSVQVAE, model_id: bytes, seed: int = 0, videos=None):
    """A learned prior for ``model`` (a small recipe), fitted on the same codes as ``tiny_entropy``."""
    cfg = model.config
    grids = [cfg.grid(n) for n in cfg.level_names]
    return fit_prior(model_id, cfg.codebook_sizes, grids, videos or noise_codes(model, seed),
                     replace(TINY_RECIPE, seed=seed), provenance={"fitted_on": "tests/tinymodel.py noise"})  # fmt: skip
