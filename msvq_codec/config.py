"""Frozen configuration dataclasses: the model's shape and the training recipe.

A ``ModelConfig`` is saved inside every weights file and checkpoint (as JSON in the safetensors metadata),
so a file always carries what is needed to rebuild the network that produced it. Named presets give the
paper's baselines (Tables 2 and 3) as configs rather than forks.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from msvq_codec.errors import UsageError


TOP_JOINS = ("concat", "residual")  # ModelConfig.top_join
# ModelConfig fields written to JSON only away from these defaults
_LATER_FIELDS = {"top_join": "concat", "top_codebook_size": 0, "latent_norm": False}


@dataclass(frozen=True)
class ModelConfig:
    # --- what a clip is (paper Section 4.1) ---
    in_channels: int = 3  # RGB
    clip_frames: int = 32  # frames per clip: 2 s at 16 fps
    clip_size: int = 64  # clips are clip_size x clip_size pixels
    fps: float = 16.0  # frame rate clips are resampled to
    # --- network width (paper Section 3.1; the default gives about 18.5M parameters) ---
    hidden_channels: int = 224  # channels of the encoder/decoder trunks
    res_channels: int = 96  # bottleneck channels inside each residual block
    n_res_blocks: int = 2  # residual blocks per trunk (each encoder and decoder stage)
    # --- latent hierarchy ---
    levels: int = 2  # 2: MS-VQ-VAE (top + bottom); 1: the single-level VQ-VAE 3D baseline
    bottom_stride: tuple[int, int, int] = (2, 4, 4)  # (t, h, w) downsampling of input -> bottom grid
    top_stride: tuple[int, int, int] = (2, 2, 2)  # (t, h, w) downsampling of bottom grid -> top grid
    # --- vector quantisation ---
    codebook_size: int = 1024  # entries per codebook (K); each level has its own codebook
    embed_dim: int = 128  # dimension of each codebook entry
    ema_decay: float = 0.99  # EMA decay of codebook statistics
    ema_eps: float = 1e-5  # Laplace smoothing of EMA cluster sizes
    dead_code_threshold: float = 1.0  # an entry whose EMA usage falls below this is restarted
    # from a random encoder output (during training only)
    top_join: str = "concat"  # how the decoder reads the top level (two levels only). "concat": the
    # upsampled top latent beside the bottom one (the paper); "residual": their sum, the bottom codes
    # quantising what the upsampled top leaves of the bottom latent, the top trained to predict that latent
    top_codebook_size: int = 0  # entries of the top codebook (two levels only); 0: codebook_size, as the paper
    latent_norm: bool = False  # each level's encoder output scaled to unit length per latent vector before its
    # codes are chosen (a normalised code lookup), so that no latent can grow without bound; off in the paper

    def __post_init__(self) -> None:
        # JSON turns tuples into lists: normalise so configs compare equal after a round trip.
        object.__setattr__(self, "bottom_stride", tuple(int(s) for s in self.bottom_stride))
        object.__setattr__(self, "top_stride", tuple(int(s) for s in self.top_stride))
        if self.levels not in (1, 2):
            raise UsageError(f"levels must be 1 or 2, not {self.levels}")
        if self.top_join not in TOP_JOINS:
            raise UsageError(f"top_join must be one of {', '.join(TOP_JOINS)}, not {self.top_join!r}")
        if self.codebook_size < 2 or self.codebook_size > 65536:
            raise UsageError(f"codebook_size must be in 2..65536, not {self.codebook_size}")
        if self.top_codebook_size and not 2 <= self.top_codebook_size <= 65536:
            raise UsageError(f"top_codebook_size must be 0 or in 2..65536, not {self.top_codebook_size}")
        for name, stride in (("bottom_stride", self.bottom_stride), ("top_stride", self.top_stride)):
            if len(stride) != 3 or any(s not in (1, 2, 4) for s in stride):
                raise UsageError(f"{name} must be three of 1, 2 or 4, not {stride}")
        full = [b * t for b, t in zip(self.bottom_stride, self.top_stride)]
        dims = (self.clip_frames, self.clip_size, self.clip_size)
        if any(d % s for d, s in zip(dims, full)):
            raise UsageError(f"clip {dims} is not divisible by the total stride {tuple(full)}")

    def grid(self, level: str) -> tuple[int, int, int]:
        """The (t, h, w) latent grid of one clip at ``level`` ('top' or 'bottom')."""
        bottom = (
            self.clip_frames // self.bottom_stride[0],
            self.clip_size // self.bottom_stride[1],
            self.clip_size // self.bottom_stride[2],
        )
        if level == "bottom":
            return bottom
        if level == "top":
            return tuple(b // s for b, s in zip(bottom, self.top_stride))  # type: ignore[return-value]
        raise ValueError(level)

    def codebook_of(self, level: str) -> int:
        """Entries of the codebook of ``level`` ('top' or 'bottom')."""
        if level == "top" and self.top_codebook_size:
            return self.top_codebook_size
        if level in ("top", "bottom"):
            return self.codebook_size
        raise ValueError(level)

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """Entries of each level's codebook, in ``level_names`` order (coarse first)."""
        return tuple(self.codebook_of(name) for name in self.level_names)

    @property
    def level_names(self) -> tuple[str, ...]:
        """Names of the quantised levels, coarse first: ('top', 'bottom') or ('bottom',)."""
        return ("top", "bottom") if self.levels == 2 else ("bottom",)

    def to_json(self) -> str:
        """The config as JSON; a field added after the first weights shipped is left out at its default, so
        that the JSON, and the model ID hashed from it, of every earlier model stays the same."""
        data = dataclasses.asdict(self)
        for name, default in _LATER_FIELDS.items():
            if data[name] == default:
                del data[name]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UsageError(f"unknown model config fields: {sorted(unknown)}")
        return cls(**data)


def model_preset(name: str) -> ModelConfig:
    """Named configs: the paper's model and its baselines, plus a tiny one for tests."""
    presets: dict[str, ModelConfig] = {
        "default": ModelConfig(),  # MS-VQ-VAE, paper Section 3.1
        "single-level": ModelConfig(levels=1),  # VQ-VAE (3D, single level), Table 2
        "codebook-512": ModelConfig(codebook_size=512),  # the 512-embedding ablation, Table 3
        "tiny": ModelConfig(hidden_channels=16, res_channels=8, n_res_blocks=1, codebook_size=32, embed_dim=8),
        # small enough to train from scratch on a CPU in well under an hour, for A/B runs of training levers
        "small": ModelConfig(hidden_channels=64, res_channels=32, n_res_blocks=1, codebook_size=256, embed_dim=32),
        "small-single-level": ModelConfig(hidden_channels=64, res_channels=32, n_res_blocks=1, codebook_size=256,
                                          embed_dim=32, levels=1),  # fmt: skip
        "small-residual": ModelConfig(hidden_channels=64, res_channels=32, n_res_blocks=1, codebook_size=256,
                                      embed_dim=32, top_join="residual"),  # fmt: skip
    }
    if name not in presets:
        raise UsageError(f"unknown config {name!r}; choose one of {', '.join(presets)}")
    return presets[name]


@dataclass(frozen=True)
class TrainConfig:
    # --- objective (paper Section 4.2): L = L_recon + beta * L_VQ + gamma * L_perc ---
    beta: float = 1.0  # weight of the VQ commitment loss
    gamma: float = 0.4  # weight of the VGG16 perceptual loss (0 disables VGG entirely)
    perceptual_norm: str = "channel"  # "channel": unit-length VGG features per position (as LPIPS);
    # "none": raw features, the paper read literally (stalls training here; see msvq_codec.vgg)
    # --- optimiser and schedule ---
    lr: float = 2e-4  # Adam learning rate (the peak: cosine starts there, constant holds it)
    adam_betas: tuple[float, float] = (0.9, 0.999)  # Adam (beta1, beta2)
    schedule: str = "cosine"  # "cosine": anneal lr to 0 over the run (the paper); "constant": warmup, then lr
    # for an open-ended budget, with ``weight_ema`` giving the exported weights instead of a final decay
    warmup_steps: int = 0  # linear warmup from 0 to lr over this many steps (skipped when the optimiser
    # state is carried over from a checkpoint)
    grad_clip: float = 0.0  # clip the global gradient norm to this (0: no clipping)
    weight_ema: float = 0.0  # per-step decay of an exponential moving average of the weights, validated
    # beside the raw weights and exported when present (0: none)
    hide_bottom: float = 0.0  # share of training clips reconstructed from their top codes alone (the bottom
    # latent zeroed), so that the top level must carry the picture's coarse content; 0: never (the paper)
    hide_bottom_unit: str = "clip"  # what is hidden: "clip", a clip's whole bottom latent; "position", single
    # positions of the bottom grid, each with probability hide_bottom (the rest of the clip kept)
    hide_bottom_steps: int = 0  # the share falls linearly from hide_bottom to 0 over this many steps of the
    # phase, then stays 0 (the top learns to carry content first, the decoder then learns from both levels);
    # 0: held at hide_bottom for the whole run
    dead_code_fraction: float = 0.0  # codebook restarts: 0 the paper's absolute threshold (ModelConfig);
    # f > 0: dead below f x the batch's mean hits per entry, restarted at that mean (see EMAQuantizer)
    batch_size: int = 8  # clips per optimiser step (per process under DDP)
    epochs: int = 50  # passes over the training clips
    max_steps: int = 0  # stop after this many optimiser steps (0: no limit); the schedule spans
    # min(epochs * steps_per_epoch, max_steps) so the cosine reaches its floor either way
    max_minutes: float = 0.0  # stop (and checkpoint) after this much wall time (0: no limit)
    checkpoint_every: int = 10  # save a checkpoint every this many epochs (and always at the end)
    checkpoint_minutes: float = 0.0  # also validate and save last.pt every this many minutes (0: off)
    # --- data ---
    augment: bool = False  # random temporal offset, random scale crop, horizontal flip
    seed: int = 0  # seeds the split, sampling, augmentation and model initialisation
    workers: int = 0  # DataLoader worker processes
    val_every: int = 1  # validate every this many epochs
    # --- numerics ---
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16 with gradient scaling)
    channels_last: bool = False  # model and clips in channels-last 3D memory (NDHWC), the layout GPU tensor
    # cores convolve natively; off on CPUs, where training does not use it (see benchmarks/gpu/burst.py)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form provenance notes (data path, split)

    def __post_init__(self) -> None:
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        if self.schedule not in SCHEDULES:
            raise UsageError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if not 0.0 <= self.weight_ema < 1.0:
            raise UsageError(f"weight_ema must be in [0, 1), not {self.weight_ema}")
        if not 0.0 <= self.hide_bottom < 1.0:
            raise UsageError(f"hide_bottom must be in [0, 1), not {self.hide_bottom}")
        if self.hide_bottom_unit not in HIDE_UNITS:
            raise UsageError(f"hide_bottom_unit must be one of {', '.join(HIDE_UNITS)}, not {self.hide_bottom_unit!r}")
        if self.hide_bottom_steps < 0:
            raise UsageError(f"hide_bottom_steps must be 0 or more, not {self.hide_bottom_steps}")

    def hide_share(self, phase_step: int) -> float:
        """The share of clips decoded from their top codes alone at step ``phase_step`` of the phase."""
        if not self.hide_bottom_steps:
            return self.hide_bottom
        return self.hide_bottom * max(0.0, 1.0 - phase_step / self.hide_bottom_steps)


SCHEDULES = ("cosine", "constant")
HIDE_UNITS = ("clip", "position")

# Training recipes: named sets of TrainConfig values. "paper" is TrainConfig's defaults (Sections 4.1-4.2).
# "cpu" is this project's recipe for an open-ended CPU budget accumulated over many sittings: batch 4,
# augmentation, warmup then a constant rate with an EMA of the weights for export, reconstruction and VQ
# losses only (the perceptual term, more than half a CPU step's cost, belongs to a final phase: pass
# --gamma 0.4 then), checkpoints every 10 minutes, and a rate of 5e-5 (from the GPU-trained weights, 2e-4 at
# batch 4 undid them: A/B 3). Which of these choices were measured, and how, is in benchmarks/training/training.md.
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {},
    "cpu": dict(
        batch_size=4, epochs=100_000, augment=True, gamma=0.0, schedule="constant", warmup_steps=50, lr=5e-5,
        weight_ema=0.995, checkpoint_minutes=10.0, checkpoint_every=1000,
    ),  # fmt: skip
}


def train_recipe(name: str, **overrides: Any) -> TrainConfig:
    """The TrainConfig of recipe ``name``, with ``overrides`` (fields given explicitly) on top."""
    if name not in RECIPES:
        raise UsageError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return TrainConfig(**{**RECIPES[name], **overrides})
