"""Which torch device to run on: the one rule for every command (coding, bench, training)."""

from __future__ import annotations

import torch

from msvq_codec.errors import UsageError

DEVICES = ("auto", "cpu", "cuda")  # and cuda:N


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when there is a CUDA device, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    UsageError for any other name, or for CUDA where there is none."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise UsageError(f"device must be auto, cpu, cuda or cuda:N, not {name!r}", option="device")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {name}: no CUDA device is available", option="device")
        if ":" in name and int(name[5:]) >= torch.cuda.device_count():
            raise UsageError(f"device {name}: there are {torch.cuda.device_count()} CUDA devices", option="device")
    return torch.device(name)


__all__ = ["DEVICES", "pick_device"]
