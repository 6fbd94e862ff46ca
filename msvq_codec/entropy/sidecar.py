"""The files that hold a set of weights' entropy models beside them (``x.safetensors`` ->
``x.entropy.safetensors``, ``x.prior.safetensors``): safetensors read and written with its numpy API (no torch),
written atomically. What each holds is its model's module's business (``tables``, ``prior_file``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from msvq_codec.errors import WeightsError


def beside(weights: str | Path, suffix: str) -> Path:
    """The sidecar of ``weights`` with ``suffix``: ``x.safetensors`` -> ``x<suffix>``."""
    weights = Path(weights)
    stem = weights.name[: -len(".safetensors")] if weights.name.endswith(".safetensors") else weights.name
    return weights.with_name(stem + suffix)


def write(path: str | Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write ``tensors`` and ``metadata`` to ``path`` atomically: a temporary file beside it, renamed over it."""
    from safetensors.numpy import save_file

    path = Path(path)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(partial), metadata=metadata)
        umask = os.umask(0)
        os.umask(umask)
        partial.chmod(0o666 & ~umask)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def read(path: str | Path, what: str, format_key: str, fmt: str) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata, tensors) of a sidecar whose metadata ``format_key`` is ``fmt``; WeightsError naming ``what`` if
    it is missing, not safetensors or another format."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no {what} at {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta, tensors = dict(f.metadata() or {}), {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        raise WeightsError(f"{path} is not a safetensors {what} ({err})") from None
    if meta.get(format_key) != fmt:
        raise WeightsError(f"{path} is not an msvq {what} (format {fmt})")
    return meta, tensors


class Origin(NamedTuple):
    model_id: bytes  # the weights the sidecar was fitted for
    provenance: dict  # how it was fitted (free-form)


def origin(meta: dict[str, str]) -> Origin:
    """The model ID and provenance a sidecar's metadata records (KeyError or ValueError if malformed)."""
    provenance = json.loads(meta.get("provenance") or "{}")
    return Origin(bytes.fromhex(meta["msvq_model_id"]), provenance if isinstance(provenance, dict) else {})


def model_id_of(path: str | Path) -> bytes | None:
    """The model ID a sidecar says it was fitted for (None if it is not a readable sidecar)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return bytes.fromhex((f.metadata() or {}).get("msvq_model_id", ""))
    except (SafetensorError, OSError, ValueError, TypeError):
        return None
