"""Loading a weights file, as a single-file command's first load, with and without the random initialisation.

    python benchmarks/startup/weights_load.py [--rounds 5] [--weights FILE]

Each measurement is a fresh process (a command loads its weights once, into memory it has not touched yet)
timing one load of the weights (the shipped ones unless --weights), interleaved round by round:

    init + copy     what load_weights did before: build the model with torch's random initialisation of every
                    conv (kaiming uniform), then copy the file's tensors into it (load_state_dict)
    no init + copy  the model built in ``layers.to_be_loaded()`` (convs left uninitialised), then the copy
    load_weights    what msvq does now: no init, and the model takes the file's float32 tensors (assign=True)

Prints each one's median and minimum seconds. Reading the file, checking its model ID and the fp16 -> fp32
cast are in all three.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from msvq_codec.runtime import configure_before_torch

configure_before_torch()  # as the msvq command does (OMP_WAIT_POLICY=PASSIVE unless set)

VARIANTS = ("init + copy", "no init + copy", "load_weights")


def load_once(variant: str, path: Path) -> float:
    """Seconds for one load of ``path`` by ``variant``, after importing what it needs."""
    from safetensors.torch import load_file

    from msvq_codec.config import ModelConfig
    from msvq_codec.model.layers import to_be_loaded
    from msvq_codec.model.vqvae import MSVQVAE
    from msvq_codec.model.weights import load_weights, model_id, read_metadata

    t0 = time.perf_counter()
    if variant == "load_weights":
        load_weights(path)
    else:  # load_weights' steps, with the model built and filled the older way
        meta = read_metadata(path)
        config = ModelConfig.from_json(meta["msvq_config"])
        state = load_file(str(path))
        with to_be_loaded() if variant == "no init + copy" else nullcontext():
            model = MSVQVAE(config)
        assert model_id(config, state, model.decoder_state_keys()).hex() == meta["msvq_model_id"]
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        model.eval()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--weights", type=Path)
    ap.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)  # the child process: one load, print it
    args = ap.parse_args()
    if args.weights is None:
        from msvq_codec.model.weights import find_weights

        args.weights = find_weights()[0]
    if args.one:
        print(load_once(args.one, args.weights))
        return
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            cmd = [sys.executable, __file__, "--one", variant, "--weights", str(args.weights)]
            times[variant].append(float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    print(f"{args.rounds} interleaved rounds, a fresh process per load of {args.weights.name}; seconds")
    print("| load | median (s) | min (s) |")
    print("|---|---|---|")
    for variant, ts in times.items():
        print(f"| {variant} | {statistics.median(ts):.3f} | {min(ts):.3f} |")


if __name__ == "__main__":
    main()
