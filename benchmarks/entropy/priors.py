"""Ideal code lengths of candidate learned priors on the dev set, against the context model's.

    python benchmarks/entropy/priors.py --data ../shared/data --split official:1 [--weights W] \
        [--level 1] [--passes 2] [--hidden 128] [--epochs 2] [--json-lines OUT.jsonl]
    python benchmarks/entropy/priors.py --table OUT.jsonl      # the table of every run in OUT.jsonl

Training videos and the dev set come from ``--split`` exactly as ``msvq fit-entropy`` splits them
(``official:1``: the seven UCF101 split-1 test videos are the dev set, 16 full clips; nothing is fitted on
them). One candidate a run: a level's prior (``msvq_codec.entropy.prior_fit``) with the given shape and
recipe, trained on the training clips' grids (a random half of the clip boundaries taken as file starts, as
``fit-entropy`` does), then scored on the dev clips as -log2 p of every index, *per clip* (each clip its own
file) and *per video*, in float and, quantised, in the integers the coder uses. The context model's row is
its integer tables' -log2 p on the same indices. Index grids are cached under ~/.cache/msvq/entropy/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from msvq_codec.codec import load_model
from msvq_codec.entropy import LevelCoder, load_entropy, sidecar_path
from msvq_codec.entropy.grids import grids_for, training_grids
from msvq_codec.entropy.prior import PriorConfig
from msvq_codec.entropy.prior_fit import float_bits, integer_bits, level_samples, quantise, train_prior
from msvq_codec.model.weights import find_weights
from msvq_codec.train.data import build_split


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = ["| level | passes | hidden | epochs | per clip: context | float | integer | vs context | "
             "per video: context | float | integer | vs context | run (s) |", "|---" * 13 + "|"]
    for r in rows:
        a, c, v = r["args"], r["per-clip"], r["per-video"]
        cells = [a["level"], a["passes"], a["hidden"], a["epochs"]]
        for m in (c, v):
            cells += [f"{m['context']:.3f}", f"{m['float']:.3f}", f"{m['integer']:.3f}",
                      f"{100 * (m['integer'] / m['context'] - 1):+.1f} %"]
        cells.append(f"{r['seconds']:.0f}")
        lines.append("| " + " | ".join(str(x) for x in cells) + " |")
    return "\n".join(lines) + "\n\n(bits per index of the level on the dev set; vs context: the integer prior's)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--split", default="official:1")
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "msvq" / "cache")
    ap.add_argument("--level", type=int, default=1, help="0: the top, 1: the bottom")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json-lines", type=Path, default=None)
    ap.add_argument("--table", type=Path, default=None)
    args = ap.parse_args()
    if args.table:
        print(table(args.table))
        return 0
    started = time.time()
    weights = find_weights(args.weights)[0]
    loaded = load_model(weights, "cpu")
    entropy = load_entropy(sidecar_path(weights))
    cfg = loaded.model.config
    runs, _ = training_grids(loaded, args.data, split=args.split, cache_dir=args.cache_dir)  # as fit-entropy reads them
    split = build_split(args.data, args.split, args.cache_dir, clip_size=cfg.clip_size, cache_size=cfg.clip_size,
                        fps=cfg.fps, clip_frames=cfg.clip_frames, seed=0, log=lambda m: None)
    dev_grids = [grids_for(loaded, split.clip_caches[v]) for v in sorted({ref.video for ref in split.val})]
    dev = [tuple(g[: d.full_clips] for g in d.levels) for d in dev_grids if d.full_clips]

    li = args.level
    t, h, w = cfg.grid(cfg.level_names[li])
    pcfg = PriorConfig(codebook_size=cfg.codebook_size, parent_size=cfg.codebook_size if li else 0, clip_t=t, height=h,
                       width=w, passes=args.passes, hidden0=args.hidden, hidden1=args.hidden)  # fmt: skip
    rng = np.random.default_rng(args.seed)
    starts = []
    for r in runs:
        s = rng.random(r[li].shape[0]) < 0.5
        s[0] = True
        starts.append(s)
    tok, codes = level_samples(pcfg, [r[li] for r in runs], [r[li - 1] for r in runs] if li else None, starts)
    model = train_prior(pcfg, tok, codes, epochs=args.epochs, seed=args.seed,
                        log=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
    prior = quantise(model)
    coder = LevelCoder(entropy.levels[li])
    result = {"args": vars(args) | {"data": str(args.data), "weights": str(weights), "json_lines": None, "table": None,
                                    "cache_dir": None},
              "training_indices": int(len(codes)), "dev_clips": sum(d[li].shape[0] for d in dev)}  # fmt: skip
    for mode in ("per-clip", "per-video"):
        d_runs = [d[li] for d in dev]
        d_parents = [d[li - 1] for d in dev] if li else None
        d_starts = [np.ones(r.shape[0], bool) if mode == "per-clip" else np.arange(r.shape[0]) == 0 for r in d_runs]
        d_tok, d_codes = level_samples(pcfg, d_runs, d_parents, d_starts)
        context = (sum(coder.ideal_bits(r[i : i + 1]) for r in d_runs for i in range(r.shape[0])) if mode == "per-clip"
                   else sum(coder.ideal_bits(r) for r in d_runs))  # fmt: skip
        n = len(d_codes)
        result[mode] = {"indices": n, "context": context / n, "float": float_bits(model, d_tok, d_codes) / n,
                        "integer": integer_bits(prior, d_tok, d_codes) / n}
    result["seconds"] = time.time() - started
    print(json.dumps(result))
    if args.json_lines:
        with open(args.json_lines, "a") as f:
            f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
