"""Fitting the entropy model of a weights file on a data folder and writing it beside the weights
(``msvq fit-entropy``, and ``msvq export --data``). Runs the model, so it imports torch; nothing else in
``msvq_codec.entropy`` does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

from msvq_codec.entropy.fit import DEFAULT_MIN_COUNT, fit_model
from msvq_codec.entropy.grids import DEFAULT_ROOT, training_grids
from msvq_codec.entropy.tables import EntropyModel, save_entropy, sidecar_path


class Refit(NamedTuple):
    model: EntropyModel
    path: Path  # the sidecar written
    entropy_id: bytes
    seconds: float


def fit_entropy(
    weights: str | Path,
    data: str | Path,
    *,
    split: str = "files",
    cache_dir: str | Path,
    val_list: Path | None = None,
    splits_dir: Path | None = None,
    seed: int = 0,
    min_count: int = DEFAULT_MIN_COUNT,
    device: str = "cpu",
    grid_root: Path = DEFAULT_ROOT,
    log=None,
) -> Refit:
    """Encode the training clips of ``data`` (under ``split``) with ``weights``, fit the context model on their
    index grids, and write it beside the weights (``tables.sidecar_path``), atomically. The weights and
    their model ID are not touched."""
    from msvq_codec.codec import load_model

    started = time.perf_counter()
    loaded = load_model(weights, device)
    runs, summary = training_grids(loaded, Path(data), split=split, cache_dir=Path(cache_dir), val_list=val_list,
                                   splits_dir=splits_dir, seed=seed, grid_root=grid_root, log=log)  # fmt: skip
    cfg = loaded.model.config
    model = fit_model(loaded.model_id, [cfg.codebook_size] * len(cfg.level_names), runs, min_count=min_count,
                      provenance={"fitted_on": summary}, log=log)  # fmt: skip
    path = sidecar_path(loaded.path or weights)
    eid = save_entropy(path, model)
    return Refit(model, path, eid, time.perf_counter() - started)
