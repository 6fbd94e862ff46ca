"""The learned prior's range coding alone: CPU milliseconds a clip to encode and to decode one file's index grids.

    python benchmarks/entropy/coder_speed.py FILE.msvq [--weights W] [--rounds 5]

Reads the file's index grids (``msvq_codec.codes.read_codes``), then codes them again with the prior beside the
weights, both levels as ``msvq encode`` does, and decodes them back (checked against the grids). Times are
process CPU time, the best of ``--rounds``: the coder runs on one thread, so CPU time is steadier than wall time
on a shared machine, though not immune to it. To compare two versions of the coder, run this script from each
checkout in turn, interleaved, on the same file (``PYTHONPATH=CHECKOUT``; see benchmarks/entropy/README.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from msvq_codec.codec import load_model
from msvq_codec.codes import read_codes
from msvq_codec.entropy.prior_coder import PriorCoder
from msvq_codec.entropy.prior_file import load_prior, prior_path


def best_seconds(fn, rounds: int, clock=time.process_time) -> float:
    """The least time of ``rounds`` calls of ``fn`` on ``clock`` (this process's CPU time unless told)."""
    best = float("inf")
    for _ in range(rounds):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a .msvq file made with the weights")
    parser.add_argument("--weights", type=Path, help="weights (default: msvq's default weights)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    loaded = load_model(args.weights, "cpu")
    grids = read_codes(args.file, model=loaded)
    prior = load_prior(prior_path(loaded.path))
    if len(prior.levels) != 2:
        raise SystemExit("this script times two-level models")
    top, bottom = grids.levels["top"], grids.levels["bottom"]
    top_coder, bottom_coder = (PriorCoder(level) for level in prior.levels)
    streams = top_coder.encode(top), bottom_coder.encode(bottom, top)

    def encode() -> None:
        top_coder.encode(top)
        bottom_coder.encode(bottom, top)

    def decode() -> None:
        got_top = top_coder.decode(streams[0], top.shape)
        got_bottom = bottom_coder.decode(streams[1], bottom.shape, got_top)
        assert np.array_equal(got_top, top) and np.array_equal(got_bottom, bottom)

    clips = top.shape[0]
    enc, dec = (best_seconds(fn, args.rounds) * 1e3 / clips for fn in (encode, decode))
    print(f"{args.file.name}: {clips} clips, prior coding {enc:.1f} ms a clip to encode, {dec:.1f} to decode "
          f"(CPU time, best of {args.rounds})")


if __name__ == "__main__":
    main()
