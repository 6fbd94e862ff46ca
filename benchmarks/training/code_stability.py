"""How often a bottom code repeats the code at its place in the latent frame before, over a set of .msvq files.

    python benchmarks/training/code_stability.py --weights W.safetensors FILE.msvq [FILE.msvq ...]

Reads each file's index grids (``msvq_codec.read_codes``) and, over consecutive latent frames in file order (as
the coders see them), prints the share of bottom codes equal to the code at the same place one frame before.
For a two-level model it splits that share by whether the top code above the place changed between the two
frames; for a residual top level (``top_join = "residual"``) it adds how often the bottom code is the one
nearest to the frame before's whole latent (upsampled top plus bottom) less this frame's upsampled top, the
code a codebook-aware prior could offer, and how often one of the two is right.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import msvq_codec
from msvq_codec.codec import load_model
from msvq_codec.entropy.context import frames_of
from msvq_codec.entropy.prior import upsample_parent
from msvq_codec.model.vqvae import join_top


@torch.no_grad()
def predicted(model, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """For a residual top level: per frame after the first, the bottom code nearest to the frame before's whole
    latent less this frame's upsampled top, ``[F - 1, h, w]``."""
    up = model.upsample_top(model.quantizer_top.lookup(torch.from_numpy(top.astype(np.int64))))  # [n, d, t, h, w]
    z_b = model.quantizer_bottom.lookup(torch.from_numpy(bottom.astype(np.int64)))  # [n, d, t, h, w]
    whole = join_top(model.config, up, z_b)  # [n, d, t, h, w]: the decoder's input
    d = up.shape[1]
    up_f = up.permute(0, 2, 1, 3, 4).reshape(-1, d, *up.shape[3:])  # [F, d, h, w]
    whole_f = whole.permute(0, 2, 1, 3, 4).reshape(-1, d, *up.shape[3:])  # [F, d, h, w]
    want = whole_f[:-1] - up_f[1:]  # [F - 1, d, h, w]
    flat = want.permute(0, 2, 3, 1).reshape(-1, d)  # [(F - 1) h w, d]
    codes = torch.cdist(flat, model.quantizer_bottom.embed).argmin(1)
    return codes.view(want.shape[0], *want.shape[2:]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    loaded = load_model(args.weights, "cpu")
    cfg = loaded.model.config
    two = cfg.levels == 2
    residual = two and cfg.top_join == "residual"
    counts = dict.fromkeys(("n", "repeat", "same_n", "same_repeat", "pred", "either"), 0)
    for path in args.files:
        grids = msvq_codec.read_codes(path, model=loaded)
        bottom = frames_of(grids.bottom).astype(np.int64)  # [F, h, w]
        repeat = bottom[1:] == bottom[:-1]  # [F - 1, h, w]
        counts["n"] += repeat.size
        counts["repeat"] += int(repeat.sum())
        if two:
            up = upsample_parent(grids.top, grids.bottom.shape)  # [F, h, w]: the top code above each place
            same = up[1:] == up[:-1]
            counts["same_n"] += int(same.sum())
            counts["same_repeat"] += int(repeat[same].sum())
        if residual:
            pred = predicted(loaded.model, grids.top, grids.bottom) == bottom[1:]
            counts["pred"] += int(pred.sum())
            counts["either"] += int((pred | repeat).sum())
    n = counts["n"]
    print(f"{len(args.files)} files, {n} bottom codes after a frame: {counts['repeat'] / n:.3f} repeat the frame before")
    if two:
        changed = n - counts["same_n"]
        print(f"  where the top code above is unchanged: {counts['same_repeat'] / max(counts['same_n'], 1):.3f} "
              f"of {counts['same_n']}; where it changed: "
              f"{(counts['repeat'] - counts['same_repeat']) / max(changed, 1):.3f} of {changed}")  # fmt: skip
    if residual:
        print(f"  the code nearest to the frame before's latent less this frame's top: {counts['pred'] / n:.3f}; "
              f"either: {counts['either'] / n:.3f}")


if __name__ == "__main__":
    main()
