"""Training checkpoints: everything needed to resume exactly, and export to a shipped weights file.

A checkpoint is ``torch.save`` of plain tensors, numbers, strings, lists and dicts only, loaded with
``weights_only=True`` so that reading one never runs code:
    format        CHECKPOINT_FORMAT
    model_config  ModelConfig JSON;  train_config: TrainConfig JSON
    model         state_dict (codebooks and their EMA statistics are buffers in it)
    optimizer, scheduler, scaler   their state_dicts (scaler None when unused)
    epoch, batch  where the next step starts: batch index within the epoch's fixed order
    step          optimiser steps taken
    rng           torch CPU (and CUDA) generator states, python's random state
    history       validation records so far
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path
from typing import Any

import torch

from msvq_codec.config import ModelConfig, TrainConfig
from msvq_codec.errors import WeightsError
from msvq_codec.model.vqvae import MSVQVAE
from msvq_codec.model.weights import save_weights

CHECKPOINT_FORMAT = 1


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, **fields: Any) -> None:
    """Write atomically: a crash mid-save leaves the previous checkpoint intact."""
    fields = dict(fields, format=CHECKPOINT_FORMAT)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    torch.save(fields, partial)
    partial.replace(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - every way a checkpoint can be unreadable is one user error
        raise WeightsError(f"{path} is not a readable msvq checkpoint ({str(err).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path} is not an msvq checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def configs_of(ckpt: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    train = json.loads(ckpt["train_config"])
    return ModelConfig.from_json(ckpt["model_config"]), TrainConfig(**train)


def export(checkpoint: str | Path, out: str | Path, note: dict[str, Any] | None = None) -> bytes:
    """Checkpoint -> fp16 safetensors weights with config and provenance; returns the model ID."""
    ckpt = load_checkpoint(checkpoint)
    model_config, train_config = configs_of(ckpt)
    model = MSVQVAE(model_config)
    model.load_state_dict(ckpt["model"])
    history = ckpt.get("history") or []
    provenance = {
        "checkpoint": Path(checkpoint).name,
        "steps": ckpt["step"],
        "epochs_completed": ckpt["epoch"],
        "train_config": dataclasses.asdict(train_config),
        "validation": history[-1] if history else None,
        **(note or {}),
    }
    return save_weights(out, model, provenance)
