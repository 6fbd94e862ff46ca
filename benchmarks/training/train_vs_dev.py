"""Is the model better on its training footage than on unseen footage? PSNR of one middle clip of every video.

    python benchmarks/training/train_vs_dev.py ../shared/data [--weights W] [--cache-dir ~/.cache/msvq/cache]

For each video under the folder (as ``msvq train`` finds them), the full clip nearest its middle, squashed to
64x64 at 16 fps exactly as the codec and validation see it (no augmentation), encoded and decoded by the
weights; PSNR per frame as the paper, averaged. Rows group videos by their first two path parts (a source);
the UCF101 split-1 test videos (the dev set, never trained on) are their own row. Uses ``msvq_codec.train``'s
frame cache, preparing what is missing.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from msvq_codec.metrics import clip_psnr
from msvq_codec.model.weights import find_weights, load_weights
from msvq_codec.train.data import _official_test_names, prepare_video
from msvq_codec.video import find_inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--weights", type=Path)
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "msvq" / "cache")
    args = ap.parse_args()
    model = load_weights(find_weights(args.weights)[0]).model.float().eval()
    cfg = model.config
    dev = _official_test_names(args.data, 1)
    groups: dict[str, list[float]] = defaultdict(list)
    for src in find_inputs(args.data):
        frames = np.load(prepare_video(src, args.cache_dir, cfg.clip_size, cfg.fps, cfg.clip_frames), mmap_mode="r")
        if len(frames) < cfg.clip_frames:
            continue
        start = max(0, (len(frames) // 2 - cfg.clip_frames // 2)) // cfg.clip_frames * cfg.clip_frames
        clip = np.array(frames[start : start + cfg.clip_frames])  # [T, H, W, 3] uint8
        x = torch.from_numpy(clip).permute(3, 0, 1, 2)[None].float() / 255  # [1, 3, T, H, W]
        with torch.no_grad():
            y = model.decode(model.encode(x)).float().clamp(0, 1)[0].permute(1, 2, 3, 0)  # [T, H, W, 3]
        out = (y.numpy() * 255).round().astype(np.uint8)
        rel = src.relative_to(args.data).parts
        group = "dev (UCF101 split-1 test)" if src.stem in dev else "/".join(rel[:2])
        groups[group].append(clip_psnr(clip, out))
    train = [p for g, v in groups.items() if not g.startswith("dev") for p in v]
    for group, values in sorted(groups.items()):
        print(f"{group:48s} {len(values):4d} videos {np.mean(values):6.2f} dB")
    print(f"{'all training videos':48s} {len(train):4d} videos {np.mean(train):6.2f} dB")


if __name__ == "__main__":
    main()
