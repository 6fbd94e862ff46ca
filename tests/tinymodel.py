"""Shared test helper: a tiny random-initialised MS-VQ-VAE saved as a real weights file.

No placeholder weights are committed; tests make their own. One training-mode pass seeds the codebooks from
encoder outputs, as training would, so codes are spread over the codebook.
"""

from pathlib import Path

import torch

from msvq_codec.config import model_preset
from msvq_codec.model.vqvae import MSVQVAE
from msvq_codec.model.weights import save_weights


def make_tiny_weights(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = MSVQVAE(model_preset("tiny"))
    model.train()
    with torch.no_grad():
        model(torch.rand(2, 3, 32, 64, 64))  # seeds the codebooks
    model.eval()
    save_weights(path, model)
    return path
