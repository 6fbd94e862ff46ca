"""The learned prior of a set of weights (one ``IntegerPrior`` per level), its identity, and the sidecar file
that stores it beside the weights.

The prior is fitted for one set of weights (``model_id``) and named by its own ``prior_id``: the first 16 bytes
of SHA-256 over the format tag, the model ID, every level's config and every array's dtype, shape and
little-endian bytes. A ``.msvq`` file coded with it records both IDs (the prior's in ``entropy_id``).

Sidecar: ``<weights>.prior.safetensors`` beside ``<weights>.safetensors`` (safetensors, read with its numpy
API: nothing here imports torch). Tensors ``level{i}.<field>`` for the fields of ``IntegerPrior``; metadata
``msvq_prior_format`` ("1"), ``msvq_model_id`` and ``msvq_prior_id`` (32 hex digits each), ``configs`` (JSON:
each level's ``PriorConfig``) and ``provenance`` (JSON: what it was fitted on and how). Loading checks every
array and recomputes the ID.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from msvq_codec.entropy import sidecar
from msvq_codec.entropy.prior import IntegerPrior, PriorConfig
from msvq_codec.errors import WeightsError

PRIOR_FORMAT = "1"
PRIOR_SUFFIX = ".prior.safetensors"


@dataclass(frozen=True, eq=False)
class PriorModel:
    """The learned prior of one set of weights: per level (coarse first) its integer network."""

    model_id: bytes  # the weights' model ID (16 bytes)
    levels: tuple[IntegerPrior, ...]
    provenance: dict[str, Any]

    @cached_property
    def prior_id(self) -> bytes:  # computed once: it hashes every array
        digest = hashlib.sha256(f"msvq-prior-{PRIOR_FORMAT}".encode())
        digest.update(self.model_id)
        for i, lv in enumerate(self.levels):
            digest.update(f"|level{i}|{json.dumps(lv.config.to_dict(), sort_keys=True)}".encode())
            for name in IntegerPrior.FIELDS:
                arr = getattr(lv, name)
                digest.update(f"|{name}|{arr.dtype.str}|{arr.shape}|".encode())
                digest.update(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
        return digest.digest()[:16]

    def check(self) -> None:
        """Raise WeightsError if any level is malformed."""
        if not isinstance(self.model_id, bytes) or len(self.model_id) != 16:
            raise WeightsError("prior: model_id must be 16 bytes")
        if not 1 <= len(self.levels) <= 4:
            raise WeightsError(f"prior: {len(self.levels)} levels")
        for i, lv in enumerate(self.levels):
            problem = lv.problem()
            if problem:
                raise WeightsError(f"prior level {i}: {problem}")


def prior_path(weights: str | Path) -> Path:
    """Where the prior of ``weights`` lives: ``x.safetensors`` -> ``x.prior.safetensors``."""
    return sidecar.beside(weights, PRIOR_SUFFIX)


def save_prior(path: str | Path, model: PriorModel) -> bytes:
    """Write ``model`` to ``path`` atomically (a temporary file beside it, renamed); returns its prior ID."""
    model.check()
    pid = model.prior_id
    tensors = {f"level{i}.{name}": getattr(lv, name) for i, lv in enumerate(model.levels)
               for name in IntegerPrior.FIELDS}  # fmt: skip
    metadata = {
        "msvq_prior_format": PRIOR_FORMAT,
        "msvq_model_id": model.model_id.hex(),
        "msvq_prior_id": pid.hex(),
        "configs": json.dumps([lv.config.to_dict() for lv in model.levels]),
        "provenance": json.dumps(model.provenance, sort_keys=True),
    }
    sidecar.write(path, tensors, metadata)
    return pid


def load_prior(path: str | Path) -> PriorModel:
    """Read and check a prior sidecar (WeightsError if it is missing, malformed or altered)."""
    path = Path(path)
    meta, tensors = sidecar.read(path, "prior", "msvq_prior_format", PRIOR_FORMAT)
    try:
        configs = json.loads(meta["configs"])
        model_id, provenance = sidecar.origin(meta)
        if not isinstance(configs, list) or not 1 <= len(configs) <= 4:
            raise ValueError("configs")
        levels = tuple(IntegerPrior(PriorConfig(**cfg), *(tensors[f"level{i}.{name}"] for name in IntegerPrior.FIELDS))
                       for i, cfg in enumerate(configs))  # fmt: skip
    except (KeyError, ValueError, TypeError) as err:
        raise WeightsError(f"{path}: malformed prior ({type(err).__name__}: {err})") from None
    model = PriorModel(model_id, levels, provenance)
    try:
        model.check()
    except WeightsError as err:
        raise WeightsError(f"{path}: {err}") from None
    if model.prior_id.hex() != meta.get("msvq_prior_id"):
        raise WeightsError(f"{path}: arrays do not match the recorded prior ID (file altered or corrupt)")
    return model
