"""Where the learned prior's decoding spends its time: per clip, and per step of one pass.

    python benchmarks/entropy/prior_steps.py FILE.msvq [--weights W] [--rounds 5]

Reads the file's index grids and decodes them with the prior beside the weights, as ``msvq decode`` does: the top
level's time a clip, and the bottom level's, split into the prior's frequencies (``IntegerPrior.frequencies``), constriction's
range decoding, and the rest (tokens, bookkeeping). Then it times the steps of ``frequencies`` on one pass's
worth of the file's real tokens (the bottom level's pass size): the first layer's table sums
(``embedding_bag``), the two integer matrix layers (``_int_layers``), the copy gains, and what turns logits
into frequencies. Wall time on one thread, the best of ``--rounds``; the machine's drift moves all of it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from msvq_codec.codec import load_model
from msvq_codec.codes import read_codes
from msvq_codec.entropy import prior as prior_module
from msvq_codec.entropy import prior_coder
from msvq_codec.entropy.prior_file import load_prior, prior_path

from coder_speed import best_seconds  # this folder's script, beside this one


def best_ms(fn, rounds: int) -> float:
    """The least wall time of ``rounds`` calls of ``fn``, in milliseconds."""
    return best_seconds(fn, rounds, time.perf_counter) * 1e3


class _Timed:
    """Wraps an object, adding the wall time of calls to one of its methods to ``spent[key]``."""

    def __init__(self, inner, method: str, spent: dict, key: str):
        self._inner, self._method, self._spent, self._key = inner, method, spent, key

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def timed(*args):
            start = time.perf_counter()
            out = attr(*args)
            self._spent[self._key] += time.perf_counter() - start
            return out

        return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model(args.weights, "cpu")
    grids = read_codes(args.file, model=loaded)
    prior = load_prior(prior_path(loaded.path))
    top, bottom = grids.levels["top"], grids.levels["bottom"]
    level = prior.levels[-1]
    coder = prior_coder.PriorCoder(level)
    stream = coder.encode(bottom, top)
    clips = bottom.shape[0]

    spent = {"frequencies": 0.0, "range decoding": 0.0}
    coder.prior = _Timed(level, "frequencies", spent, "frequencies")
    opened = prior_coder.open_stream
    prior_coder.open_stream = lambda data, what: _Timed(opened(data, what), "decode", spent, "range decoding")
    splits = []
    for _ in range(args.rounds):
        spent.update({key: 0.0 for key in spent})
        start = time.perf_counter()
        coder.decode(stream, bottom.shape, top)
        total = time.perf_counter() - start
        splits.append((total, dict(spent)))
    prior_coder.open_stream = opened
    total, parts = min(splits, key=lambda s: s[0])
    rest = total - sum(parts.values())
    print(f"bottom level, {clips} clips: {1e3 * total / clips:.1f} ms a clip to decode: "
          + ", ".join(f"{k} {1e3 * v / clips:.1f}" for k, v in parts.items()) + f", the rest {1e3 * rest / clips:.1f}")
    top_coder = prior_coder.PriorCoder(prior.levels[0])
    top_stream = top_coder.encode(top)
    top_ms = best_ms(lambda: top_coder.decode(top_stream, top.shape), args.rounds)
    print(f"top level: {top_ms / clips:.1f} ms a clip to decode")

    cfg = level.config
    n = cfg.height * cfg.width // cfg.passes  # positions per pass
    tok, _ = prior_coder.PriorCoder(level)._ordered(bottom, top)
    tok = np.ascontiguousarray(tok[:n])
    ar = level._arrays
    t = torch.from_numpy(tok)
    a0 = torch.nn.functional.embedding_bag(t + ar["offsets"], ar["tables"], mode="sum")
    shift = prior_module.TABLE_SHIFT
    h0 = a0.int().add_(1 << (shift - 1)).bitwise_right_shift_(shift).clamp_(0, prior_module.ACT_MAX)
    out = prior_module._int_layers(ar, h0.clone())
    k = cfg.codebook_size
    logit = level._logits(tok)
    steps = {
        "table sums (embedding_bag)": lambda: torch.nn.functional.embedding_bag(t + ar["offsets"], ar["tables"],
                                                                               mode="sum"),  # fmt: skip
        "matrix layers (_int_layers)": lambda: prior_module._int_layers(ar, h0.clone()),
        "copy gains": lambda: out[:, :k].clone().scatter_add_(
            1, torch.index_select(t, 1, ar["copy_slots"]).clamp(max=k - 1),
            out[:, k:] * (torch.index_select(t, 1, ar["copy_slots"]) < k)),
        "logits -> frequencies": lambda: torch.index_select(
            ar["exp"], 0, logit.amax(1, keepdim=True).sub(logit).clamp_(max=len(level.exp_table) - 1).view(-1)),
        "frequencies, whole": lambda: level.frequencies(tok),
    }
    print(f"one pass ({n} positions, K = {k}), ms:")
    for name, fn in steps.items():
        print(f"  {name}: {best_ms(fn, 20 * args.rounds):.3f}")


if __name__ == "__main__":
    main()
