"""EMA vector quantiser (VQ-VAE, van den Oord et al. 2017; EMA updates as in VQ-VAE-2).

All state lives in buffers, so ``state_dict`` carries the codebook, its EMA statistics and whether it has
been initialised. During training the codebook follows exponential moving averages of the encoder outputs
assigned to each entry; entries that fall out of use are restarted from random encoder outputs. Under
``torch.distributed`` the statistics are summed across processes and restarts come from rank 0, so every
process keeps an identical codebook.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


class Quantized(NamedTuple):
    quantized: Tensor  # [b, d, t, h, w], straight-through: gradients flow to the encoder output
    indices: Tensor  # [b, t, h, w] int64
    commitment: Tensor  # scalar: mean ||z - sg(e)||^2, the VQ loss of an EMA codebook


def nearest_rows(flat: Tensor, embed: Tensor) -> Tensor:
    """Index of the nearest row of ``embed`` [K, d] for each row of ``flat`` [n, d] -> [n] int64."""
    embed = embed.float()
    dist_sq = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed.t() + embed.pow(2).sum(1)[None, :]  # [n, K]
    return dist_sq.argmin(1)


def code_counts(indices: Tensor, codebook_size: int) -> Tensor:
    """Hits per codebook entry [K] float of ``indices`` (any shape). Unlike ``bincount`` or ``one_hot``, which
    read the indices' maximum first, this never waits for a GPU to finish."""
    flat = indices.reshape(-1)
    return torch.zeros(codebook_size, device=indices.device).index_add_(0, flat, torch.ones_like(flat, dtype=torch.float))


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class EMAQuantizer(nn.Module):
    def __init__(self, codebook_size: int, dim: int, decay: float, eps: float, dead_threshold: float):
        super().__init__()
        self.codebook_size = codebook_size
        self.dim = dim
        self.decay = decay
        self.eps = eps
        self.dead_threshold = dead_threshold
        # Training-time restart policy, set by the trainer (not part of the model or its ID). 0: an entry is
        # dead below the absolute ``dead_threshold`` and restarts with a count of 1.0 (the paper's setting).
        # f > 0: dead below f x the mean hits per entry of the batch, restarted at that mean, so a fresh entry
        # survives about ln(1/f) / (1 - decay) steps without a hit instead of being restarted again at once.
        self.dead_fraction = 0.0
        self.last_restarts = torch.zeros((), dtype=torch.long)  # entries restarted by the latest training step
        # (for logs; a tensor, so training never waits on the device to count them)
        self._seeded = False  # ``initialized`` was seen True: no need to read the buffer (a device sync) again
        self.register_buffer("embed", torch.randn(codebook_size, dim) * 0.1)  # [K, d]
        self.register_buffer("cluster_size", torch.ones(codebook_size))  # [K] EMA usage counts
        self.register_buffer("embed_avg", self.embed.clone())  # [K, d] EMA of summed assignments
        self.register_buffer("initialized", torch.tensor(False))  # set once the codebook is seeded from data

    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the nearest codebook entry for each row of ``flat`` [n, d] -> [n]."""
        return nearest_rows(flat, self.embed)

    def lookup(self, indices: Tensor) -> Tensor:
        """Codebook vectors for ``indices`` [b, t, h, w] -> [b, d, t, h, w]."""
        return F.embedding(indices, self.embed).permute(0, 4, 1, 2, 3).contiguous()  # [b, d, t, h, w]

    def forward(self, z: Tensor) -> Quantized:
        z = z.float()
        b, d, t, h, w = z.shape
        flat = z.permute(0, 2, 3, 4, 1).reshape(-1, d)  # [b*t*h*w, d]
        if self.training and not self._seeded:
            if not bool(self.initialized):
                self._seed_from(flat)
            self._seeded = True
        indices = self.nearest(flat)  # [n]
        if self.training:
            self._ema_update(flat, indices)
        quantized = self.lookup(indices.view(b, t, h, w))  # [b, d, t, h, w]
        commitment = F.mse_loss(z, quantized.detach())
        quantized = z + (quantized - z).detach()  # straight-through estimator
        return Quantized(quantized, indices.view(b, t, h, w), commitment)

    @torch.no_grad()
    def _random_rows(self, flat: Tensor, n: int) -> Tensor:
        """``n`` rows drawn from ``flat`` (with replacement when it has fewer), identical on every process."""
        pick = torch.randint(0, flat.shape[0], (n,), device=flat.device)
        rows = flat[pick].clone()  # [n, d]
        if _distributed():
            dist.broadcast(rows, src=0)
        return rows

    @torch.no_grad()
    def _seed_from(self, flat: Tensor) -> None:
        rows = self._random_rows(flat, self.codebook_size)  # [K, d]
        self.embed.copy_(rows)
        self.embed_avg.copy_(rows)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, indices: Tensor) -> None:
        counts = code_counts(indices, self.codebook_size)  # [K]
        sums = torch.zeros_like(self.embed_avg).index_add_(0, indices, flat)  # [K, d]: summed assignments
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total  # [K]
        self.embed.copy_(self.embed_avg / smoothed[:, None])

        if self.dead_fraction > 0:
            mean_hits = counts.sum() / self.codebook_size  # hits per entry if all were used equally
            threshold, restart_count = self.dead_fraction * mean_hits, mean_hits
        else:
            threshold, restart_count = self.dead_threshold, 1.0
        dead = self.cluster_size < threshold  # [K]
        if _distributed():
            dist.broadcast(dead, src=0)
        self.last_restarts = dead.sum()
        # a fresh encoder output drawn for every entry, taken only by the dead ones: selecting on the device
        # instead of counting the dead first keeps the step free of a wait for the device
        fresh = self._random_rows(flat, self.codebook_size)  # [K, d]
        self.embed.copy_(torch.where(dead[:, None], fresh, self.embed))
        self.embed_avg.copy_(torch.where(dead[:, None], fresh * restart_count, self.embed_avg))
        self.cluster_size.copy_(torch.where(dead, restart_count, self.cluster_size))

    @torch.no_grad()
    def resync_ema(self) -> None:
        """Make the EMA sums agree with the codebook (``embed_avg = embed x smoothed count``), so that a warm
        start from rounded (fp16) statistics continues from exactly the codebook it loaded."""
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total  # [K]
        self.embed_avg.copy_(self.embed * smoothed[:, None])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self._seeded = False  # the loaded ``initialized`` decides again
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def usage(self, indices: Tensor) -> Tensor:
        """Perplexity of the code distribution in ``indices``: how many entries are effectively in use (a
        0-dim tensor on the indices' device)."""
        counts = code_counts(indices, self.codebook_size)
        probs = counts / counts.sum()
        return torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
