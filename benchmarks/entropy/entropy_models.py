"""Ideal code lengths of candidate entropy models of the index grids, against what the .msvq coders really write.

    python benchmarks/entropy/entropy_models.py --data ../shared/data --split official:1 \
        [--weights W] [--cache-dir ~/.cache/msvq/cache] [--json OUT.json] [--candidates 16,32,64]

Training videos and the dev set come from ``--split`` exactly as ``msvq train`` and ``msvq fit-entropy`` split
them (``official:1``: the seven UCF101 split-1 test videos are the dev set, 16 full 2-second clips). Every
model's counts come from the training clips only; its smoothing is chosen on a held-out fifth of the training
videos (``entropy.fit.tune_smoothing``), then its counts are refitted on all of them. Each model is scored on
the dev set's full clips as -log2 p of every index (the ideal code length), two ways: *per clip* (each clip
its own file, so the first latent frame of every clip has no previous frame) and *per video* (the clips of a
video in one file). Rows for the real coders: the weights' own entropy model (its integer tables'
-log2 p, and the bytes of its range-coded streams) and zstd/DEFLATE, each as whole .msvq files (header
included) and as the streams of each level. Index grids are cached under ~/.cache/msvq/entropy/.

Contexts (K = codebook size; NONE where there is nothing): prev = the code one latent frame earlier at the same
place, prev2 two frames earlier; static / stat4 / same4 / row as in ``msvq_codec.entropy.context``; top = the
co-located top code (bottom level only); left / up = the neighbours already decoded within the same frame
(which a coder could only use by scanning a frame sequentially).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from msvq_codec.codec import codes_to_bytes, load_model
from msvq_codec.container import from_bytes
from msvq_codec.entropy import LevelCoder, load_entropy, sidecar_path
from msvq_codec.entropy.context import all_rows, frames_of, parent_row
from msvq_codec.entropy.fit import Counts, fit_level, stage_contexts, tune_smoothing
from msvq_codec.entropy.grids import grids_for
from msvq_codec.model.weights import find_weights
from msvq_codec.train.data import build_split


def features(run: tuple[np.ndarray, ...], level: int, k: int) -> dict[str, np.ndarray]:
    """Every context of every index of one run of consecutive clips (one file), flattened in coding order."""
    frames = frames_of(run[level]).astype(np.int64)  # [F, h, w]
    f, h, w = frames.shape
    prev = np.full_like(frames, k)
    prev[1:] = frames[:-1]
    prev2 = np.full_like(frames, k)
    prev2[2:] = frames[:-2]
    padded = np.pad(frames, ((0, 0), (1, 0), (1, 0)), constant_values=k)
    rows = all_rows(frames, k)
    out = {"x": frames, "prev": prev, "prev2": prev2, "rows": rows, "left": padded[:, 1:, :-1], "up": padded[:, :-1, 1:]}
    if level > 0:
        top = run[level - 1].astype(np.int64)  # [n, tt, ht, wt] -> the bottom grid, by repeating
        n, t, bh, bw = run[level].shape
        up = top
        for axis, size in ((1, t), (2, bh), (3, bw)):
            up = np.repeat(up, size // top.shape[axis], axis=axis)
        out["top"] = up.reshape(f, h, w)
    return {name: a.reshape(-1) for name, a in out.items()}


def concat(feats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([d[name] for d in feats]) for name in feats[0]}


def candidates(level: int, k: int) -> dict[str, callable]:
    """Name -> (features -> list of stage contexts, coarse to fine)."""
    j = k + 1
    out = {
        "unigram": lambda d: [],
        "prev": lambda d: [d["prev"]],
        "left (within frame)": lambda d: [d["left"]],
        "up (within frame)": lambda d: [d["up"]],
        "prev > prev,prev2": lambda d: [d["prev"], d["prev"] * j + d["prev2"]],
        "prev > prev,static": lambda d: [d["prev"], parent_row(d["rows"])],
        "prev > prev,static > row  [the context coder's]": lambda d: stage_contexts(d["rows"]),
        "prev > prev,static > row > row,up (sequential scan)": lambda d: stage_contexts(d["rows"]) + [d["rows"] * j + d["up"]],
    }
    if level > 0:
        out["top"] = lambda d: [d["top"]]
        out["prev > prev,top"] = lambda d: [d["prev"], d["prev"] * j + d["top"]]
        out["prev > prev,static > row > row,top"] = lambda d: stage_contexts(d["rows"]) + [d["rows"] * j + d["top"]]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="official:1")
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "msvq" / "cache")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--candidates", default="", help="Also refit the coder's tables with these numbers of "
                    "candidates a row (e.g. 16,32,64) and report their ideal code length and size.")
    args = ap.parse_args()
    started = time.time()
    weights = find_weights(args.weights)[0]
    loaded = load_model(weights, "cpu")
    entropy = load_entropy(sidecar_path(weights))
    cfg = loaded.model.config
    split = build_split(args.data, args.split, args.cache_dir, clip_size=cfg.clip_size, cache_size=cfg.clip_size,
                        fps=cfg.fps, clip_frames=cfg.clip_frames, seed=0, log=lambda m: None)
    per_video: dict[int, set[int]] = {}
    for ref in split.train:
        per_video.setdefault(ref.video, set()).add(ref.start // cfg.clip_frames)
    dev_videos = sorted({ref.video for ref in split.val})
    grids = {v: grids_for(loaded, split.clip_caches[v]) for v in sorted(set(per_video) | set(dev_videos))}
    train_runs = []  # runs of consecutive training clips, as fitting sees them
    for v, clips in sorted(per_video.items()):
        clips = sorted(clips)
        cuts = [0] + [i for i in range(1, len(clips)) if clips[i] != clips[i - 1] + 1] + [len(clips)]
        train_runs += [tuple(g[clips[a] : clips[b - 1] + 1] for g in grids[v].levels) for a, b in zip(cuts, cuts[1:])]
    dev = {v: grids[v] for v in dev_videos if grids[v].full_clips}
    dev_runs = {
        "per-clip": [tuple(g[i : i + 1] for g in d.levels) for d in dev.values() for i in range(d.full_clips)],
        "per-video": [tuple(g[: d.full_clips] for g in d.levels) for d in dev.values()],
    }
    n_clips = sum(d.full_clips for d in dev.values())
    pixels = n_clips * cfg.clip_frames * cfg.clip_size * cfg.clip_size
    names = cfg.level_names
    sizes = [int(g.size // g.shape[0]) for g in next(iter(dev.values())).levels]  # indices per clip and level
    print(f"{len(train_runs)} training runs ({len(split.train)} clips of {len(per_video)} videos); dev: "
          f"{len(dev)} videos, {n_clips} clips", file=sys.stderr)

    results = []  # {model, level, mode, bits}
    for li, name in enumerate(names):
        k = cfg.codebook_size
        held = [i % 5 == 4 for i in range(len(train_runs))]
        fa = concat([features(r, li, k) for r, h in zip(train_runs, held) if not h])
        fb = concat([features(r, li, k) for r, h in zip(train_runs, held) if h])
        fall = concat([features(r, li, k) for r in train_runs])
        fdev = {mode: concat([features(r, li, k) for r in runs]) for mode, runs in dev_runs.items()}
        for model, contexts in candidates(li, k).items():
            t0 = time.time()
            smoothing = tune_smoothing(Counts(contexts(fa), fa["x"], k), contexts(fb), fb["x"])
            counts = Counts(contexts(fall), fall["x"], k)
            for mode, d in fdev.items():
                bits = float(-np.log2(counts.prob(contexts(d), d["x"], smoothing)).sum())
                results.append({"model": model, "level": name, "mode": mode, "bits": bits, "smoothing": smoothing})
            print(f"  {name:6s} {model}: {time.time() - t0:.0f} s", file=sys.stderr)
        coder = LevelCoder(entropy.levels[li])
        for mode, runs in dev_runs.items():
            ideal = sum(coder.ideal_bits(r[li]) for r in runs)
            coded = sum(8 * len(coder.encode(r[li])) for r in runs)
            results.append({"model": "context coder: integer tables, -log2 p", "level": name, "mode": mode, "bits": ideal})
            results.append({"model": "context coder: range-coded stream bytes", "level": name, "mode": mode, "bits": coded})

    # The coder's tables with other numbers of candidates a row (the shipped fit's settings otherwise).
    sweep = []
    for m_cand in [int(v) for v in args.candidates.split(",") if v.strip()]:
        for li, name in enumerate(names):
            tables, stats = fit_level([r[li] for r in train_runs], cfg.codebook_size, n_candidates=m_cand)
            coder = LevelCoder(tables)
            for mode, runs in dev_runs.items():
                sweep.append({"candidates": m_cand, "level": name, "mode": mode, "slots": stats["slots"],
                              "table_bytes": sum(getattr(tables, f).nbytes for f in ("row_slot", "cand", "freq", "escape")),
                              "bits": sum(coder.ideal_bits(r[li]) for r in runs)})  # fmt: skip
        print(f"  tables with {m_cand} candidates: {time.time() - started:.0f} s", file=sys.stderr)

    # Whole .msvq files and their streams, with each coder.
    files = {}
    for codec in ("context", "zstd", "deflate"):
        for mode, runs in dev_runs.items():
            total, streams = 0, [0] * len(names)
            for r in runs:
                n = r[0].shape[0]
                header, data = codes_to_bytes(loaded, r, n * cfg.clip_frames, codec=codec)
                total += len(data)
                for li, s in enumerate(from_bytes(data).streams):
                    streams[li] += len(s)
            files[(codec, mode)] = total
            for li, name in enumerate(names):
                results.append({"model": f".msvq {codec}: stream bytes", "level": name, "mode": mode, "bits": 8 * streams[li]})

    def per_index(bits: float, li: int) -> float:
        return bits / (n_clips * sizes[li])

    lines = ["| model | " + " | ".join(f"{n} bits/index, {m}" for m in dev_runs for n in names) + " | bpp per clip | bpp per video |",
             "|---|" + "---|" * (2 * len(names) + 2)]
    order = list(dict.fromkeys(r["model"] for r in results))
    for model in order:
        got = {(r["level"], r["mode"]): r["bits"] for r in results if r["model"] == model}
        cells = []
        for mode in dev_runs:
            for li, name in enumerate(names):
                cells.append(f"{per_index(got[(name, mode)], li):.3f}" if (name, mode) in got else "")
        bpp = [f"{sum(got[(n, m)] for n in names) / pixels:.4f}" if all((n, m) in got for n in names) else "(bottom only)"
               for m in dev_runs]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {bpp[0]} | {bpp[1]} |")
    lines += ["", "| whole .msvq files (header included) | bpp per clip | bpp per video |", "|---|---|---|"]
    for codec in ("context", "zstd", "deflate"):
        lines.append(f"| {codec} | {8 * files[(codec, 'per-clip')] / pixels:.4f} | {8 * files[(codec, 'per-video')] / pixels:.4f} |")
    for mode in dev_runs:
        saving = 1 - files[("context", mode)] / files[("zstd", mode)]
        lines.append(f"\ncontext vs zstd, {mode}: {saving:.1%} smaller ({files[('context', mode)]} vs {files[('zstd', mode)]} bytes)")
    if sweep:
        lines += ["", "| candidates a row | " + " | ".join(f"{n} bits/index, {m}" for m in dev_runs for n in names)
                  + " | table bytes |", "|---|" + "---|" * (2 * len(names) + 1)]
        for m_cand in dict.fromkeys(r["candidates"] for r in sweep):
            got = {(r["level"], r["mode"]): r for r in sweep if r["candidates"] == m_cand}
            cells = [f"{per_index(got[(n, m)]['bits'], li):.3f}" for m in dev_runs for li, n in enumerate(names)]
            size = sum(got[(n, "per-clip")]["table_bytes"] for n in names)
            lines.append(f"| {m_cand} | " + " | ".join(cells) + f" | {size:,} |")
    print("\n".join(lines))
    print(f"({time.time() - started:.0f} s)", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({
            "weights": str(weights), "model_id": loaded.model_id.hex(), "entropy_id": entropy.entropy_id.hex(),
            "split": args.split, "dev_clips": n_clips, "dev_pixels": pixels, "indices_per_clip": dict(zip(names, sizes)),
            "training_clips": len(split.train), "results": results,
            "files_bytes": {f"{c}/{m}": b for (c, m), b in files.items()}, "candidates_sweep": sweep,
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
