"""Fitting the entropy models of a weights file on a data folder and writing them beside the weights
(``msvq fit-entropy``, and ``msvq export --data``): the context model's tables and the learned prior. Runs the
model, so it imports torch; so does ``prior_fit``; nothing else in ``msvq_codec.entropy`` does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

from msvq_codec.entropy.fit import DEFAULT_MIN_COUNT, fit_model
from msvq_codec.entropy.grids import DEFAULT_ROOT, training_grids
from msvq_codec.entropy.tables import save_entropy, sidecar_path


class Refit(NamedTuple):
    name: str  # "context" or "prior"
    model: Any  # EntropyModel or PriorModel
    path: Path  # the sidecar written
    entropy_id: bytes  # its ID (what a file records in entropy_id)
    seconds: float  # the grids' time counts to the first model fitted


MODELS = ("context", "prior")  # what fit_models fits: the context model's tables, the learned prior


def fit_models(
    weights: str | Path,
    data: str | Path,
    *,
    which: tuple[str, ...] = MODELS,
    split: str = "files",
    cache_dir: str | Path,
    val_list: Path | None = None,
    splits_dir: Path | None = None,
    seed: int = 0,
    min_count: int = DEFAULT_MIN_COUNT,
    recipe=None,
    device: str = "cpu",
    grid_root: Path = DEFAULT_ROOT,
    log=None,
) -> list[Refit]:
    """Encode the training clips of ``data`` (under ``split``) with ``weights``, fit each model of ``which`` on
    their index grids (the context model: ``fit``; the prior: ``prior_fit``, with ``recipe``), and write each
    beside the weights (``tables.sidecar_path``, ``prior_file.prior_path``), atomically, in that order. The
    weights and their model ID are not touched."""
    from msvq_codec.codec import load_model
    from msvq_codec.entropy.prior_file import prior_path, save_prior
    from msvq_codec.entropy.prior_fit import PriorRecipe, fit_model as fit_prior_model

    started = time.perf_counter()
    loaded = load_model(weights, device)
    runs, summary = training_grids(loaded, Path(data), split=split, cache_dir=Path(cache_dir), val_list=val_list,
                                   splits_dir=splits_dir, seed=seed, grid_root=grid_root, log=log)  # fmt: skip
    cfg = loaded.model.config
    out = []
    for name in which:
        if name == "context":
            model = fit_model(loaded.model_id, cfg.codebook_sizes, runs, min_count=min_count,
                              provenance={"fitted_on": summary}, log=log)  # fmt: skip
            path = sidecar_path(loaded.path or weights)
            mid = save_entropy(path, model)
        else:
            model = fit_prior_model(loaded.model_id, cfg.codebook_sizes, [cfg.grid(n) for n in cfg.level_names], runs,
                                    recipe or PriorRecipe(), provenance={"fitted_on": summary}, log=log)  # fmt: skip
            path = prior_path(loaded.path or weights)
            mid = save_prior(path, model)
        out.append(Refit(name, model, path, mid, time.perf_counter() - started))
        started = time.perf_counter()
    return out
