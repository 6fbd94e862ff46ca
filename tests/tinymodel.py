"""Shared test helper: a tiny random-initialised MS-VQ-VAE saved as a real weights file, with its entropy model.

No placeholder weights are committed; tests make their own. One training-mode pass seeds the codebooks from
encoder outputs, as training would, so codes are spread over the codebook. The entropy model (the sidecar
``msvq encode``'s default codec needs) is fitted on the codes of a few smooth random clips.
"""

from pathlib import Path

import numpy as np
import torch

from msvq_codec.config import model_preset
from msvq_codec.entropy import save_entropy, sidecar_path
from msvq_codec.entropy.fit import fit_model
from msvq_codec.model.vqvae import MSVQVAE
from msvq_codec.model.weights import save_weights


def make_tiny_weights(path: Path, seed: int = 0, entropy: bool = True) -> Path:
    torch.manual_seed(seed)
    model = MSVQVAE(model_preset("tiny"))
    model.train()
    with torch.no_grad():
        model(torch.rand(2, 3, 32, 64, 64))  # seeds the codebooks
    model.eval()
    mid = save_weights(path, model)
    if entropy:
        save_entropy(sidecar_path(path), tiny_entropy(model, mid, seed))
    return path


def tiny_entropy(model: MSVQVAE, model_id: bytes, seed: int = 0):
    """An entropy model for ``model``, fitted on the codes of three clips of slowly drifting noise."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(3, 3, 1, 64, 64, generator=gen)
    drift = torch.rand(3, 3, 1, 64, 64, generator=gen)
    t = torch.linspace(0, 1, 64).view(1, 1, 64, 1, 1)
    clips = (base * (1 - t) + drift * t).clamp(0, 1)  # [3, 3, 64, 64, 64]: two clips each
    with torch.no_grad():
        codes = [model.encode(clips[:, :, i * 32 : (i + 1) * 32]).by_level() for i in range(2)]
    videos = [[np.stack([codes[c][lv][v].numpy() for c in range(2)]) for lv in range(len(codes[0]))] for v in range(3)]
    sizes = [model.config.codebook_size] * len(model.config.level_names)
    return fit_model(model_id, sizes, videos, min_count=1, provenance={"fitted_on": "tests/tinymodel.py noise"})
