"""Bench inputs: videos, frame folders and ``.npy`` arrays, cut into the model's clips exactly as ``msvq encode``
cuts them (``video.iter_clips``: resampled to 16 fps, squashed to 64x64, 32-frame clips, the last one padded by
repeating its last frame).

Which clips are *evaluated*: by default only full clips, as the paper evaluates 2-second clips (the seven
UCF101 test videos give 16). ``include_partial`` adds each video's padded last clip, scored on its real frames
only. ``max_clips`` stops after that many evaluated clips; the evaluated clips of a video are always a prefix of
its clips, so "the video" in per-video encoding is a prefix of its frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from msvq_codec.errors import InputError
from msvq_codec.video import SourceInfo, find_inputs, iter_clips


class Clip(NamedTuple):
    video: str  # the input's path
    index: int  # the clip's position in its video, from 0
    frames: np.ndarray  # uint8 [clip_frames, size, size, 3]; a partial clip is padded as encode pads it
    real_frames: int  # frames of the input in this clip (fewer than clip_frames only in a padded last clip)

    @property
    def real(self) -> np.ndarray:
        """The clip without its padding: uint8 [real_frames, size, size, 3]."""
        return self.frames[: self.real_frames]


@dataclass(frozen=True)
class Video:
    path: str
    info: SourceInfo  # as ``probe`` sees the input (its rate and size go into the .msvq header)
    source_bytes: int  # the input's size on disk (a frame folder: the sum of its files)
    frame_count: int  # frames at the clip rate before padding: what decoding returns
    clips: tuple[Clip, ...]  # every clip, the padded last one included
    selected: tuple[Clip, ...]  # the evaluated clips: a prefix of ``clips``


def input_paths(inputs: Iterable[str | Path]) -> list[Path]:
    """Every input under the given files and folders (``find_inputs``), in order, without repeats."""
    seen: dict[Path, None] = {}
    for root in inputs:
        for path in find_inputs(root):
            seen.setdefault(path, None)
    if not seen:
        raise InputError("no videos, frame folders or .npy files in the inputs")
    return list(seen)


def source_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def read_video(
    path: Path, *, fps: float, size: int, clip_frames: int, input_fps: float | None = None
) -> tuple[SourceInfo, int, list[Clip]]:
    """All clips of one input: (its SourceInfo, frame count at ``fps``, clips)."""
    stream = iter_clips(path, fps=fps, size=size, clip_frames=clip_frames, input_fps=input_fps)
    arrays = list(stream)  # each yielded clip is a fresh array
    clips, left = [], stream.frame_count
    for i, frames in enumerate(arrays):
        real = min(clip_frames, left)
        clips.append(Clip(str(path), i, frames, real))
        left -= real
    return stream.info, stream.frame_count, clips


def iter_videos(
    inputs: Iterable[str | Path],
    *,
    fps: float = 16.0,
    size: int = 64,
    clip_frames: int = 32,
    include_partial: bool = False,
    max_clips: int = 0,
    input_fps: float | None = None,
    skipped: list[str] | None = None,
) -> Iterator[Video]:
    """The inputs as Videos, one at a time (a video is read only when reached). Videos with no clip to evaluate
    (shorter than one clip, without ``include_partial``) are named in ``skipped`` and not yielded."""
    taken = 0
    for path in input_paths(inputs):
        if max_clips and taken >= max_clips:
            return
        info, frame_count, clips = read_video(path, fps=fps, size=size, clip_frames=clip_frames, input_fps=input_fps)
        selected = [c for c in clips if include_partial or c.real_frames == clip_frames]
        if max_clips:
            selected = selected[: max_clips - taken]
        if not selected:
            if skipped is not None:
                skipped.append(f"{path}: {frame_count} frames, shorter than one full clip (see --include-partial)")
            continue
        taken += len(selected)
        yield Video(str(path), info, source_bytes(path), frame_count, tuple(clips), tuple(selected))


def gather(inputs: Iterable[str | Path], **options) -> list[tuple[str, int, np.ndarray, int]]:
    """Every evaluated clip of the inputs as (video, clip index, uint8 clip [T, H, W, 3], real frame count)."""
    return [tuple(clip) for video in iter_videos(inputs, **options) for clip in video.selected]  # type: ignore[misc]
