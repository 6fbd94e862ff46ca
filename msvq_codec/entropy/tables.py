"""The context model's integer tables, their identity, and the sidecar file that stores them beside the weights.

Per level, for a codebook of K codes and ``M = min(MAX_CANDIDATES, K)`` candidates:

    row_slot  int32  [75 (K + 1)]   context row (``context.rows_of``) -> slot; rows the fit saw too rarely
                                     share the slot of their coarser context (prev, static)
    cand      uint16 [S, M]         per slot, the M most probable codes, most probable first, all distinct
    freq      uint16 [S, M + 1]     their frequencies and, last, the escape's; every entry >= 1, each row
                                     sums to exactly 2**CAND_BITS
    escape    uint32 [K]            frequencies of a code that escaped its row's candidates; every entry
                                     >= 1, summing to exactly 2**ESCAPE_BITS

So an index costs ``-log2(freq[slot, i] / 2**16)`` bits if it is candidate ``i`` of its row, else
``-log2(freq[slot, M] / 2**16) - log2(escape[code] / 2**20)``. Every probability handed to the range coder
is one of these integers over a power of two, so encoder and decoder see identical numbers on any machine.

The tables are fitted for one set of weights (``model_id``) and named by their own ``entropy_id``: the first
16 bytes of SHA-256 over the format tag, the model ID and every table's shape and little-endian bytes. A
``.msvq`` file coded with them records both IDs.

Sidecar: ``<weights>.entropy.safetensors`` beside ``<weights>.safetensors`` (safetensors, read with its numpy
API: nothing here imports torch). Tensors ``level{i}.row_slot|cand|freq|escape``; metadata
``msvq_entropy_format`` ("1"), ``msvq_model_id`` and ``msvq_entropy_id`` (32 hex digits each), ``provenance``
(JSON: what it was fitted on and how). Loading checks every table and recomputes the ID.
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
from msvq_codec.entropy.context import n_rows
from msvq_codec.errors import WeightsError

ENTROPY_FORMAT = "1"
ENTROPY_ID_BYTES = 16
MAX_CANDIDATES = 64
CAND_BITS = 16
ESCAPE_BITS = 20
SIDECAR_SUFFIX = ".entropy.safetensors"
_FIELDS = ("row_slot", "cand", "freq", "escape")


@dataclass(frozen=True, eq=False)
class LevelTables:
    """One level's tables (see the module docstring)."""

    codebook_size: int
    row_slot: np.ndarray  # int32 [75 (K + 1)]
    cand: np.ndarray  # uint16 [S, M]
    freq: np.ndarray  # uint16 [S, M + 1]
    escape: np.ndarray  # uint32 [K]

    @property
    def n_candidates(self) -> int:
        return int(self.cand.shape[1])

    def problem(self) -> str | None:
        """What is wrong with these tables (the first thing found), or None."""
        k = self.codebook_size
        if not isinstance(k, int) or not 2 <= k <= 65536:
            return f"codebook size {k!r} out of range 2..65536"
        rs, cand, freq, esc = self.row_slot, self.cand, self.freq, self.escape
        if rs.dtype != np.int32 or rs.shape != (n_rows(k),):
            return f"row_slot must be int32 [{n_rows(k)}], not {rs.dtype} {list(rs.shape)}"
        if cand.dtype != np.uint16 or cand.ndim != 2 or not 1 <= cand.shape[1] <= min(MAX_CANDIDATES, k):
            return f"cand must be uint16 [S, 1..{min(MAX_CANDIDATES, k)}], not {cand.dtype} {list(cand.shape)}"
        s, m = cand.shape
        if s < 1 or freq.dtype != np.uint16 or freq.shape != (s, m + 1):
            return f"freq must be uint16 [{s}, {m + 1}], not {freq.dtype} {list(freq.shape)}"
        if esc.dtype != np.uint32 or esc.shape != (k,):
            return f"escape must be uint32 [{k}], not {esc.dtype} {list(esc.shape)}"
        if rs.min() < 0 or rs.max() >= s:
            return "row_slot points outside the slots"
        if cand.max() >= k:
            return "a candidate is not a code of the codebook"
        ordered = np.sort(cand, axis=1)
        if m > 1 and (ordered[:, 1:] == ordered[:, :-1]).any():
            return "a row lists a candidate twice"
        if freq.min() < 1 or (freq.astype(np.int64).sum(1) != 1 << CAND_BITS).any():
            return f"every freq row must be >= 1 and sum to 2**{CAND_BITS}"
        if esc.min() < 1 or int(esc.astype(np.int64).sum()) != 1 << ESCAPE_BITS:
            return f"escape frequencies must be >= 1 and sum to 2**{ESCAPE_BITS}"
        return None


@dataclass(frozen=True, eq=False)
class EntropyModel:
    """The context model of one set of weights: per level (coarse first) its tables."""

    model_id: bytes  # the weights' model ID (16 bytes)
    levels: tuple[LevelTables, ...]
    provenance: dict[str, Any]

    @cached_property
    def entropy_id(self) -> bytes:  # computed once: it hashes every table
        return entropy_id(self.model_id, self.levels)

    def check(self) -> None:
        """Raise WeightsError if any table is malformed."""
        if not isinstance(self.model_id, bytes) or len(self.model_id) != 16:
            raise WeightsError("entropy model: model_id must be 16 bytes")
        if not 1 <= len(self.levels) <= 4:
            raise WeightsError(f"entropy model: {len(self.levels)} levels")
        for i, lv in enumerate(self.levels):
            problem = lv.problem()
            if problem:
                raise WeightsError(f"entropy model level {i}: {problem}")


def entropy_id(model_id: bytes, levels: tuple[LevelTables, ...]) -> bytes:
    digest = hashlib.sha256(f"msvq-entropy-{ENTROPY_FORMAT}".encode())
    digest.update(model_id)
    for i, lv in enumerate(levels):
        digest.update(f"|level{i}|K={lv.codebook_size}".encode())
        for name in _FIELDS:
            arr = getattr(lv, name)
            digest.update(f"|{name}|{arr.dtype.str}|{arr.shape}|".encode())
            digest.update(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    return digest.digest()[:ENTROPY_ID_BYTES]


# ---- the sidecar file --------------------------------------------------------------------------------------


def sidecar_path(weights: str | Path) -> Path:
    """Where the entropy model of ``weights`` lives: ``x.safetensors`` -> ``x.entropy.safetensors``."""
    return sidecar.beside(weights, SIDECAR_SUFFIX)


def save_entropy(path: str | Path, model: EntropyModel) -> bytes:
    """Write ``model`` to ``path`` atomically (a temporary file beside it, renamed); returns its entropy ID."""
    model.check()
    eid = model.entropy_id
    tensors = {f"level{i}.{name}": getattr(lv, name) for i, lv in enumerate(model.levels) for name in _FIELDS}
    metadata = {
        "msvq_entropy_format": ENTROPY_FORMAT,
        "msvq_model_id": model.model_id.hex(),
        "msvq_entropy_id": eid.hex(),
        "codebook_sizes": json.dumps([lv.codebook_size for lv in model.levels]),
        "provenance": json.dumps(model.provenance, sort_keys=True),
    }
    sidecar.write(path, tensors, metadata)
    return eid


def load_entropy(path: str | Path) -> EntropyModel:
    """Read and check an entropy sidecar (WeightsError if it is missing, malformed or altered)."""
    path = Path(path)
    meta, tensors = sidecar.read(path, "entropy model", "msvq_entropy_format", ENTROPY_FORMAT)
    try:
        sizes = json.loads(meta["codebook_sizes"])
        model_id, provenance = sidecar.origin(meta)
        if not isinstance(sizes, list) or not 1 <= len(sizes) <= 4:
            raise ValueError("codebook_sizes")
        levels = tuple(
            LevelTables(sizes[i], *(tensors[f"level{i}.{name}"] for name in _FIELDS)) for i in range(len(sizes))
        )
    except (KeyError, ValueError, TypeError) as err:
        raise WeightsError(f"{path}: malformed entropy model ({type(err).__name__}: {err})") from None
    model = EntropyModel(model_id, levels, provenance)
    try:
        model.check()
    except WeightsError as err:
        raise WeightsError(f"{path}: {err}") from None
    if model.entropy_id.hex() != meta.get("msvq_entropy_id"):
        raise WeightsError(f"{path}: tables do not match the recorded entropy ID (file altered or corrupt)")
    return model
