"""Index grids of whole videos, for fitting and measuring entropy models: frames -> ``encode_clips`` -> one
``[n_clips, t, h, w]`` grid per level, cached as ``.npy`` under ``~/.cache/msvq/entropy/<model id>/``.

The frames come from the training frame cache (``train.data.prepare_video``: every frame of a video at 16 fps,
at the clip size), cut into clips exactly as ``msvq encode`` cuts them (the last one padded by repeating its
last frame), so the grids are the ones a ``.msvq`` file of that video holds.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

DEFAULT_ROOT = Path.home() / ".cache" / "msvq" / "entropy"


class VideoGrids(NamedTuple):
    name: str  # the source's stem
    levels: tuple[np.ndarray, ...]  # per level (coarse first) [n_clips, t, h, w] uint16, every clip
    full_clips: int  # the leading clips that hold no padding


def clips_of(frames: np.ndarray, clip_frames: int) -> np.ndarray:
    """``[N, S, S, 3]`` frames -> ``[ceil(N / clip_frames), clip_frames, S, S, 3]``, the last clip padded by
    repeating its last frame (as ``video.ClipStream`` pads)."""
    n = frames.shape[0]
    n_clips = -(-n // clip_frames)
    pad = n_clips * clip_frames - n
    if pad:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
    return frames.reshape(n_clips, clip_frames, *frames.shape[1:])


def grids_for(loaded, frames_path: Path, root: Path = DEFAULT_ROOT, batch_size: int = 4) -> VideoGrids:
    """The index grids of the cached frames ``frames_path`` (``[N, S, S, 3]`` uint8), encoded once per
    model and cached (the key is the frame cache's own name, which hashes the source's path, size and time)."""
    from msvq_codec.codec import encode_clips

    cfg = loaded.model.config
    frames_path = Path(frames_path)
    folder = Path(root) / loaded.model_id.hex()
    key = hashlib.sha1(f"{frames_path.name}|{cfg.clip_frames}".encode()).hexdigest()[:8]
    out = [folder / f"{frames_path.stem}-{key}-{name}.npy" for name in cfg.level_names]
    frames = np.load(frames_path, mmap_mode="r")
    full = frames.shape[0] // cfg.clip_frames
    name = frames_path.stem.rsplit("-", 1)[0]
    if all(p.exists() for p in out):
        return VideoGrids(name, tuple(np.load(p) for p in out), full)
    clips = clips_of(np.asarray(frames), cfg.clip_frames)
    levels = encode_clips(loaded, list(clips), batch_size)
    folder.mkdir(parents=True, exist_ok=True)
    for path, grid in zip(out, levels):
        partial = path.with_name(f".{path.stem}-partial-{os.getpid()}.npy")
        np.save(partial, grid)
        partial.replace(path)
    return VideoGrids(name, tuple(levels), full)


def training_grids(
    loaded,
    data_dir: Path,
    *,
    split: str = "files",
    cache_dir: Path,
    val_list: Path | None = None,
    splits_dir: Path | None = None,
    seed: int = 0,
    grid_root: Path = DEFAULT_ROOT,
    log=None,
) -> tuple[list[tuple[np.ndarray, ...]], dict]:
    """The index grids of the training clips of ``data_dir`` under ``split`` (as ``msvq train`` splits it:
    the validation videos or clips are left out), as runs of consecutive clips: one tuple of per-level
    grids per run. Also a summary (videos, clips, what was held out) for the model's provenance."""
    from msvq_codec.train.data import build_split

    cfg = loaded.model.config
    say = log or (lambda message: None)
    split_ = build_split(Path(data_dir), split, Path(cache_dir), clip_size=cfg.clip_size, cache_size=cfg.clip_size,
                         fps=cfg.fps, clip_frames=cfg.clip_frames, seed=seed, val_list=val_list,
                         splits_dir=splits_dir, log=lambda message: None)  # fmt: skip
    starts: dict[int, list[int]] = {}
    for ref in split_.train:
        starts.setdefault(ref.video, []).append(ref.start // cfg.clip_frames)
    runs: list[tuple[np.ndarray, ...]] = []
    for n, (video, clips) in enumerate(sorted(starts.items())):
        say(f"grids [{n + 1}/{len(starts)}] {split_.sources[video].name}")
        grids = grids_for(loaded, split_.clip_caches[video], grid_root)
        clips = sorted(clips)
        first = 0
        for i in range(1, len(clips) + 1):  # split where clips are not consecutive
            if i == len(clips) or clips[i] != clips[i - 1] + 1:
                a, b = clips[first], clips[i - 1] + 1
                runs.append(tuple(level[a:b] for level in grids.levels))
                first = i
    held_out = sorted({split_.sources[r.video].name for r in split_.val})
    summary = {
        "data": str(data_dir),
        "split": split,
        "training_videos": len(starts),
        "training_clips": len(split_.train),
        "held_out_videos": held_out if len(held_out) <= 50 else f"{len(held_out)} videos",
    }
    return runs, summary
