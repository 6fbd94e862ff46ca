"""The range coders of a set of weights: the context model (``--codec context``) and the learned prior
(``--codec prior``, the default), each read from its sidecar beside the weights file, cached, and checked
against the weights it was fitted for and against the ``entropy_id`` a file records.

    range_coder(loaded, codec)   -> RangeCoder: its model's ID, streams of index grids and back
    entropy_model(loaded)        -> the context model and a LevelCoder per level (rate control counts its bits)
    prior_model(loaded)          -> the learned prior and a PriorCoder per level
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np

from msvq_codec.container import Header, StreamCodec
from msvq_codec.entropy import EntropyModel, LevelCoder, load_entropy, sidecar_path
from msvq_codec.entropy.prior_coder import PriorCoder
from msvq_codec.entropy.prior_file import PriorModel, load_prior, prior_path
from msvq_codec.errors import WeightsError, WeightsMismatch
from msvq_codec.model.weights import LoadedModel

_CACHE: dict[tuple[str, str, int, int], tuple] = {}
_ONLY = {StreamCodec.CONTEXT: "", StreamCodec.PRIOR: " --only prior"}  # how msvq fit-entropy fits just one


class RangeCoder(NamedTuple):
    """One codec's coder for every level of a set of weights."""

    codec: StreamCodec
    model_id: bytes  # the ID a file records in entropy_id
    encode: Callable[[Sequence[np.ndarray]], list[bytes]]  # per-level grids [n, t, h, w] -> per-level streams
    decode: Callable[[Header, Sequence[bytes]], tuple[np.ndarray, ...]]  # FormatError for a bad stream


def _sidecar(loaded: LoadedModel, codec: StreamCodec, path_of: Callable[[Path], Path], load, build):
    """The sidecar ``path_of(weights)`` of ``loaded``'s weights, loaded by ``load`` once per (path, mtime, size),
    checked against the weights, with ``build(model)``'s coders."""
    what = "entropy model" if codec == StreamCodec.CONTEXT else "prior"
    name = codec.name.lower()
    if loaded.path is None:
        raise WeightsError(f"these weights were not loaded from a file, so they have no {what}: use codec zstd")
    path = path_of(loaded.path)
    try:
        stat = path.stat()
    except OSError:
        raise WeightsError(
            f"no {what} beside {loaded.path} (expected {path.name}): fit one with 'msvq fit-entropy "
            f"{loaded.path} --data DIR{_ONLY[codec]}', or use codec zstd"
        ) from None
    key = (name, str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _CACHE:
        model = load(path)
        if model.model_id != loaded.model_id:
            raise WeightsError(
                f"{path} was fitted for model {model.model_id.hex()}, not for the weights beside it (model "
                f"{loaded.model_id.hex()}): refit it with 'msvq fit-entropy {loaded.path} --data DIR{_ONLY[codec]}'"
            )
        coders = build(model)
        cfg = loaded.model.config
        if len(coders) != len(cfg.level_names):
            raise WeightsError(f"{path} does not match its weights' levels")
        while len(_CACHE) >= 8:  # a few at a time (bench compares models); a refit is a new key
            del _CACHE[next(iter(_CACHE))]
        _CACHE[key] = (model, coders)
    return _CACHE[key]


def entropy_model(loaded: LoadedModel) -> tuple[EntropyModel, tuple[LevelCoder, ...]]:
    """The context model that belongs to ``loaded`` (the sidecar beside its weights file) and a coder per
    level; WeightsError if there is none, or it was fitted for other weights."""
    sizes = loaded.model.config.codebook_sizes

    def build(model: EntropyModel):
        if tuple(t.codebook_size for t in model.levels) != sizes:
            raise WeightsError(f"{sidecar_path(loaded.path)} does not match its weights' codebooks")
        return tuple(LevelCoder(t) for t in model.levels)

    return _sidecar(loaded, StreamCodec.CONTEXT, sidecar_path, load_entropy, build)


def prior_model(loaded: LoadedModel) -> tuple[PriorModel, tuple[PriorCoder, ...]]:
    """The learned prior that belongs to ``loaded`` and a coder per level; WeightsError if there is none, or it
    was fitted for other weights."""
    cfg = loaded.model.config

    def build(model: PriorModel):
        for i, (lv, name) in enumerate(zip(model.levels, cfg.level_names)):
            c = lv.config
            parent = cfg.codebook_of(cfg.level_names[i - 1]) if i else 0
            want = (cfg.codebook_of(name), parent, cfg.grid(name))
            if (c.codebook_size, c.parent_size, (c.clip_t, c.height, c.width)) != want:
                raise WeightsError(f"{prior_path(loaded.path)} does not match its weights' levels")
        return tuple(PriorCoder(lv) for lv in model.levels)

    return _sidecar(loaded, StreamCodec.PRIOR, prior_path, load_prior, build)


def range_coder(loaded: LoadedModel, codec: StreamCodec) -> RangeCoder:
    """The coder of ``codec`` (context or prior) for ``loaded``."""
    if codec == StreamCodec.CONTEXT:
        model, coders = entropy_model(loaded)

        def encode(indices):
            return [coder.encode(a) for coder, a in zip(coders, indices)]

        def decode(header, streams):
            return tuple(coder.decode(s, (header.n_clips, *lv.grid), f"level {i} stream")
                         for i, (coder, s, lv) in enumerate(zip(coders, streams, header.levels)))  # fmt: skip

        return RangeCoder(codec, model.entropy_id, encode, decode)
    model, coders = prior_model(loaded)

    def encode_prior(indices):
        return [coder.encode(a, indices[i - 1] if i else None) for i, (coder, a) in enumerate(zip(coders, indices))]

    def decode_prior(header, streams):
        out: list[np.ndarray] = []
        for i, (coder, s, lv) in enumerate(zip(coders, streams, header.levels)):
            out.append(coder.decode(s, (header.n_clips, *lv.grid), out[i - 1] if i else None, f"level {i} stream"))
        return tuple(out)

    return RangeCoder(codec, model.prior_id, encode_prior, decode_prior)


def check_range_model(header: Header, loaded: LoadedModel) -> RangeCoder:
    """The coder a context- or prior-coded file needs; WeightsMismatch naming both IDs if its model is not the
    one the file was coded with."""
    coder = range_coder(loaded, header.codec)
    if header.entropy_id != coder.model_id:
        what = "entropy model" if header.codec == StreamCodec.CONTEXT else "prior"
        raise WeightsMismatch(
            f"this file was coded with {what} {header.entropy_id.hex()}, but the loaded weights' {what} is "
            f"{coder.model_id.hex()} (model {loaded.model_id.hex()}): load the weights and {what} it was made with",
            option="weights",
        )
    return coder
