"""Training data: which videos train and which validate, a prepared frame cache, and clip sampling.

Videos are decoded once (``prepare``) into a uint8 cache, one ``.npy`` a video holding every frame at 16 fps,
squashed to ``cache_size`` x ``cache_size`` (larger than the clip when augmenting, so random crops keep
detail). Training memory-maps those arrays, so a large corpus costs disk, not RAM. The clip index is
metadata: (video, first frame) pairs of non-overlapping 32-frame clips, as the paper cuts them.

Splits:
  files        split by file: ``val_list`` names the validation files (paths relative to the data folder,
               or bare names); without it a seeded 10% of files validates.
  official:K   UCF101's official lists: files named in ``testlist0K.txt`` validate; everything else trains
               (other videos in the folder too). The lists are found under ``splits_dir`` (UCF101's
               ``ucfTrainTestlist/``), else under the data folder.
  paper        the paper's class-preserving 70/15/15 split of 2-second clips (class from ``v_<Class>_g..``
               or the parent folder), seeded and written to ``split.json`` in the run folder.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from msvq_codec.errors import InputError, UsageError
from msvq_codec.outputs import atomic_output
from msvq_codec.video import find_inputs, iter_clips

UCF_NAME = re.compile(r"^v_(?P<cls>[A-Za-z]+)_g\d+_c\d+$")
DEFAULT_VAL_FRACTION = 0.1  # share of files that validate under 'files' without a val list
PAPER_FRACTIONS = (0.70, 0.15, 0.15)  # train / val / test shares under 'paper'
CROP_SCALES = (0.6, 1.0)  # augmentation: side of the random crop, as a share of the cached frame


@dataclass(frozen=True)
class ClipRef:
    video: int  # index into the list of cached videos
    start: int  # first frame (at 16 fps)


class Draw(NamedTuple):
    """A training clip as the loop asks for it: which pass over the clips, and which clip."""

    epoch: int  # the pass: seeds the augmentation draws with the index
    index: int  # into the dataset's ClipRefs


@dataclass(frozen=True)
class Split:
    train: list[ClipRef]
    val: list[ClipRef]
    sources: list[Path]  # the videos, indexed by ClipRef.video
    clip_caches: list[Path]  # each video cached at exactly the clip size (validation reads these)
    train_caches: list[Path]  # each training video cached at the training cache size (may equal the above)


# ---- preparing the cache ------------------------------------------------------------------------------


def cache_path(cache_root: Path, source: Path, cache_size: int, fps: float) -> Path:
    st = source.stat() if source.is_file() else None
    key = f"{source.resolve()}|{st.st_size if st else ''}|{st.st_mtime_ns if st else ''}|{cache_size}|{fps}"
    return cache_root / f"{source.stem}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npy"


def prepare_video(source: Path, cache_root: Path, cache_size: int, fps: float, clip_frames: int) -> Path:
    """Decode ``source`` once into ``[N, cache_size, cache_size, 3]`` uint8 at ``fps``; reuse if present."""
    out = cache_path(cache_root, source, cache_size, fps)
    if out.exists():
        return out
    stream = iter_clips(source, fps=fps, size=cache_size, clip_frames=clip_frames)
    frames = np.concatenate(list(stream), axis=0)[: stream.frame_count]  # [N, S, S, 3], padding dropped
    cache_root.mkdir(parents=True, exist_ok=True)
    with atomic_output(out, force=True) as tmp:  # DDP processes may prepare the same video: either wins
        np.save(tmp, frames)
    return out


def prepare_all(data_dir: Path, cache_root: Path, cache_size: int, log=print) -> list[Path]:
    """``msvq prepare``: cache every video under ``data_dir`` at the default clip rate and length."""
    from msvq_codec.config import ModelConfig

    cfg = ModelConfig()
    sources = find_inputs(data_dir)
    out = []
    for i, src in enumerate(sources):
        log(f"prepare [{i + 1}/{len(sources)}] {src}")
        out.append(prepare_video(src, cache_root, cache_size, cfg.fps, cfg.clip_frames))
    return out


# ---- splitting ------------------------------------------------------------------------------------------


def _clips(n_frames: int, clip_frames: int) -> list[int]:
    """Starts of the non-overlapping full clips of a video."""
    return list(range(0, n_frames - clip_frames + 1, clip_frames))


def _official_test_names(search_dir: Path, k: int) -> set[str]:
    lists = sorted(search_dir.rglob(f"testlist0{k}.txt"))
    if not lists:
        raise UsageError(f"split official:{k} needs testlist0{k}.txt under {search_dir}", option="splits")
    names = set()
    for line in lists[0].read_text().split():
        if line.endswith(".avi"):
            names.add(Path(line).stem)
    return names


def _class_of(path: Path) -> str:
    match = UCF_NAME.match(path.stem)
    return match.group("cls") if match else path.parent.name


def build_split(
    data_dir: Path,
    split: str,
    cache_root: Path,
    *,
    clip_size: int,
    cache_size: int,
    fps: float,
    clip_frames: int,
    seed: int,
    val_list: Path | None = None,
    splits_dir: Path | None = None,
    run_dir: Path | None = None,
    log=print,
) -> Split:
    sources = [p for p in find_inputs(data_dir)]
    if not sources:
        raise InputError(f"no videos under {data_dir}")
    clip_caches, train_caches, lengths = [], [], []
    for i, src in enumerate(sources):
        log(f"prepare [{i + 1}/{len(sources)}] {src.relative_to(data_dir)}")
        clip_caches.append(prepare_video(src, cache_root, clip_size, fps, clip_frames))
        train_caches.append(
            clip_caches[-1] if cache_size == clip_size else prepare_video(src, cache_root, cache_size, fps, clip_frames)
        )
        lengths.append(int(np.load(clip_caches[-1], mmap_mode="r").shape[0]))
    rng = random.Random(seed)

    if split == "paper":
        by_class: dict[str, list[ClipRef]] = defaultdict(list)
        for v, src in enumerate(sources):
            by_class[_class_of(src)] += [ClipRef(v, s) for s in _clips(lengths[v], clip_frames)]
        train, val, test = [], [], []
        for cls in sorted(by_class):
            refs = by_class[cls]
            rng.shuffle(refs)
            n_train = round(len(refs) * PAPER_FRACTIONS[0])
            n_val = round(len(refs) * PAPER_FRACTIONS[1])
            train += refs[:n_train]
            val += refs[n_train : n_train + n_val]
            test += refs[n_train + n_val :]
        if run_dir is not None:
            as_json = lambda refs: [[str(sources[r.video].relative_to(data_dir)), r.start] for r in refs]
            record = {"seed": seed, "train": as_json(train), "val": as_json(val), "test": as_json(test)}
            (run_dir / "split.json").write_text(json.dumps(record))
        return Split(train, val, sources, clip_caches, train_caches)

    if split.startswith("official:"):
        k = split.split(":", 1)[1]
        if k not in ("1", "2", "3"):
            raise UsageError(f"split official:K takes K in 1, 2, 3, not {k!r}", option="split")
        test_names = _official_test_names(splits_dir or data_dir, int(k))
        is_val = [src.stem in test_names for src in sources]
    elif split == "files":
        if val_list is not None:
            wanted = {line.strip() for line in Path(val_list).read_text().splitlines() if line.strip()}
            is_val = [str(src.relative_to(data_dir)) in wanted or src.name in wanted for src in sources]
            if not any(is_val):
                raise UsageError(f"none of the files in {val_list} is under {data_dir}")
        else:
            order = list(range(len(sources)))
            rng.shuffle(order)
            n_val = max(1, round(len(sources) * DEFAULT_VAL_FRACTION))
            chosen = set(order[:n_val])
            is_val = [i in chosen for i in range(len(sources))]
    else:
        raise UsageError(f"unknown split {split!r}: use files, paper or official:K", option="split")

    train, val = [], []
    for v in range(len(sources)):
        (val if is_val[v] else train).extend(ClipRef(v, s) for s in _clips(lengths[v], clip_frames))
    return Split(train, val, sources, clip_caches, train_caches)


# ---- the dataset ----------------------------------------------------------------------------------------


class ClipDataset(Dataset):
    """Clips [3, T, size, size] uint8 from the cache (``to_unit`` makes a batch of them floats on the device).
    With ``augment``: a random temporal offset (within the video), a random square crop of CROP_SCALES of the
    frame side, and a horizontal flip, drawn from (seed, epoch, index). A key is a ``Draw`` (the loop's, which
    names the epoch, so worker processes can live across epochs) or a bare index (validation's; drawn as
    epoch 0 if augmenting)."""

    def __init__(self, caches: list[Path], refs: list[ClipRef], clip_frames: int, size: int, augment: bool, seed: int):
        if not refs:
            raise InputError(f"no full {clip_frames}-frame clips to train or validate on")
        self.paths, self.refs = caches, refs
        self.clip_frames, self.size = clip_frames, size  # what a clip is
        self.augment, self.seed = augment, seed  # augmentation draws from (seed, epoch, index)
        self._arrays: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.refs)

    def _video(self, v: int) -> np.ndarray:
        if v not in self._arrays:  # opened lazily, per worker process
            self._arrays[v] = np.load(self.paths[v], mmap_mode="r")
        return self._arrays[v]

    def __getitem__(self, key: int | Draw) -> torch.Tensor:
        epoch, i = key if isinstance(key, Draw) else (0, key)
        ref = self.refs[i]
        video = self._video(ref.video)  # [N, S, S, 3]
        start = ref.start
        if not self.augment:
            frames = np.array(video[start : start + self.clip_frames])  # a copy: the memmap is read-only
            frames = np.stack([_resize(f, self.size) for f in frames]) if frames.shape[1] != self.size else frames
        else:
            rng = np.random.default_rng([self.seed, epoch, i])
            start = int(rng.integers(start, min(start + self.clip_frames, len(video) - self.clip_frames) + 1))
            frames = np.asarray(video[start : start + self.clip_frames])  # [T, S, S, 3]
            side = frames.shape[1]
            crop = int(round(side * rng.uniform(*CROP_SCALES)))
            y, x = (int(v) for v in rng.integers(0, side - crop + 1, size=2))
            frames = np.stack([_resize(f[y : y + crop, x : x + crop], self.size) for f in frames])
            if rng.random() < 0.5:
                frames = frames[:, :, ::-1]
        return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)  # [3, T, H, W]


def to_unit(clips: torch.Tensor, device: torch.device, memory_format=torch.contiguous_format) -> torch.Tensor:
    """A batch of ``ClipDataset`` clips (uint8 [b, 3, T, H, W]) as floats in [0, 1] on the device: converted
    there, so a quarter of the bytes pass between the loader's processes and to the device."""
    clips = clips.to(device, non_blocking=True).to(memory_format=memory_format)  # [b, 3, T, H, W]
    return clips.float().div_(255.0)


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_CUBIC)
