"""The MS-VQ-VAE network and its weights files. Knows nothing of video files or containers."""

from msvq_codec.model.vqvae import Codes, ForwardOutput, MSVQVAE, count_parameters

__all__ = ["Codes", "ForwardOutput", "MSVQVAE", "count_parameters"]
