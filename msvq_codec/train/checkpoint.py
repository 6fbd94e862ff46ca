"""Training checkpoints: everything needed to resume exactly, and export to a shipped weights file.

A checkpoint is ``torch.save`` of plain tensors, numbers, strings, lists and dicts only, loaded with
``weights_only=True`` so that reading one never runs code:
    format        CHECKPOINT_FORMAT
    model_config  ModelConfig JSON;  train_config: TrainConfig JSON
    model         state_dict (codebooks and their EMA statistics are buffers in it)
    weight_average  state_dict of the exponential moving average of the weights (with the live
                  codebooks), or None when TrainConfig.weight_ema is 0
    optimizer, scheduler, scaler   their state_dicts (scaler None when unused)
    epoch, batch  where the next step starts: batch index within the epoch's fixed order
    step          optimiser steps taken
    rng           torch CPU (and CUDA) generator states, python's random state
    phase_start   the step at which the current phase (TrainConfig) began
    history       validation records so far
"""

from __future__ import annotations

import dataclasses
import json
import random
import warnings
from pathlib import Path
from typing import Any

import torch

from msvq_codec.config import ModelConfig, TrainConfig
from msvq_codec.errors import MsvqError, WeightsError
from msvq_codec.model.weights import build_model, save_weights
from msvq_codec.outputs import atomic_output

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
    with atomic_output(path, force=True) as tmp:
        torch.save(dict(fields, format=CHECKPOINT_FORMAT), tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise beside the one-line error
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - every way a checkpoint can be unreadable is one user error
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        if lines[0].startswith("Weights only load failed"):  # torch's advice (weights_only=False) is unsafe
            found = next((line for line in lines[1:] if "GLOBAL" in line or "nsupported" in line), "")
            raise WeightsError(f"{path} is not a readable msvq checkpoint: it holds objects other than tensors "
                               f"and plain data, and was not loaded ({found.rstrip('.')})") from None
        raise WeightsError(f"{path} is not a readable msvq checkpoint ({lines[0]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path} is not an msvq checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def configs_of(ckpt: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    train = json.loads(ckpt["train_config"])
    return ModelConfig.from_json(ckpt["model_config"]), TrainConfig(**train)


def export(checkpoint: str | Path, out: str | Path, note: dict[str, Any] | None = None, raw: bool = False) -> bytes:
    """Checkpoint -> fp16 safetensors weights with config and provenance; returns the model ID. The weight
    average is exported where the checkpoint has one, unless ``raw``."""
    ckpt = load_checkpoint(checkpoint)
    try:  # a checkpoint that loads but lacks a field, or whose config and tensors disagree, is malformed
        model_config, train_config = configs_of(ckpt)
        averaged = bool(ckpt.get("weight_average")) and not raw
        state = ckpt["weight_average"] if averaged else ckpt["model"]
        if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
            raise TypeError("'model' is not a state_dict of tensors")
        model = build_model(Path(checkpoint), model_config, state)
        model.load_state_dict(state)
        history = ckpt.get("history") or []
        provenance = {
            "checkpoint": Path(checkpoint).name,
            "steps": int(ckpt["step"]),
            "epochs_completed": int(ckpt["epoch"]),
            "weights": "weight average" if averaged else "raw",
            "train_config": dataclasses.asdict(train_config),
            "validation": history[-1] if history else None,
            **(note or {}),
        }
    except WeightsError:
        raise
    except (MsvqError, KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
        first = (str(err).splitlines() or [""])[0]
        raise WeightsError(f"{checkpoint} is not a complete msvq checkpoint ({type(err).__name__}: {first})") from None
    return save_weights(out, model, provenance)
