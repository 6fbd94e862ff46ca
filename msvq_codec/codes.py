"""The codes of a .msvq file as arrays, for ML pipelines: each level's index grid, without decoding pixels.

    read_codes(clip.msvq)              -> CodeGrids: top [n_clips, 8, 8, 8], bottom [n_clips, 16, 16, 16]
    write_codes(grids, out.msvq)       index grids a model produced -> a .msvq file that msvq decode plays
    save_npz(grids, out.npz)           the arrays and the header facts, for numpy (msvq codes IN OUT.npz)

A level's grid holds, for every clip (32 frames at 16 fps) and latent position (t, h, w), the index of a
codebook entry of the weights that ``model_id`` names: the same codes, code for code, that the file's decoder
looks up. Indices are ``uint16`` (codebooks have at most 65,536 entries); ``grids.bottom.astype(np.int64)``
makes them torch's embedding indices.

A ``.npz`` written here holds ``top`` (absent for a single-level model) and ``bottom``, and the 0-d arrays
``frame_count``, ``fps``, ``model_id`` (hex text), ``source_fps``, ``source_width`` and ``source_height``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from msvq_codec.codec import (
    DEFAULT_CODEC, check_compatible, codes_to_bytes, container_indices, load_model, read_file,
)  # fmt: skip
from msvq_codec.container import Header, StreamCodec
from msvq_codec.errors import InputError, UsageError, WeightsMismatch
from msvq_codec.model.weights import LoadedModel
from msvq_codec.outputs import atomic_output, check_target, is_stdio
from msvq_codec.video import SourceInfo

LEVEL_NAMES = ("top", "bottom")  # a two-level model's levels, coarse first (a single-level model: bottom)


@dataclass(frozen=True, eq=False)
class CodeGrids:
    """The index grids of one video, and what a user needs to know of them."""

    levels: dict[str, np.ndarray]  # level name -> uint16 [n_clips, t, h, w], coarse first ("top", "bottom")
    frame_count: int  # frames the video has (at ``fps``): the last clip's padding is not a frame
    fps: float  # the clips' frame rate (16)
    model_id: str  # hex ID of the weights whose codebooks the indices point into
    source_fps: float  # the input's frame rate, width and height, as the file records them
    source_width: int
    source_height: int

    @property
    def top(self) -> np.ndarray | None:
        return self.levels.get("top")

    @property
    def bottom(self) -> np.ndarray:
        return self.levels["bottom"]

    @property
    def n_clips(self) -> int:
        return int(self.bottom.shape[0])


def level_names(n_levels: int) -> tuple[str, ...]:
    return LEVEL_NAMES[-n_levels:]


def read_codes(path: str | Path, *, weights: str | Path | None = None, model: LoadedModel | None = None,
               device: str = "cpu") -> CodeGrids:  # fmt: skip
    """Each level's index grid of the .msvq file at ``path`` (``-``: standard input). Context-coded files need
    the entropy model of the weights that made them (``weights``, else the default ones); zstd and DEFLATE
    files are read without any."""
    container = read_file(path)
    header = container.header
    if container.indices is None:
        loaded = model or load_model(weights, device)
        check_compatible(header, loaded)
        indices = container_indices(container, loaded)
    else:
        indices = container.indices
    return CodeGrids(
        dict(zip(level_names(len(indices)), (np.asarray(a, np.uint16) for a in indices))), header.frame_count,
        header.fps, header.model_id.hex(), header.source_fps, header.source_width, header.source_height,
    )  # fmt: skip


def write_codes(
    grids: CodeGrids | Mapping[str, np.ndarray] | Sequence[np.ndarray],
    path: str | Path,
    *,
    weights: str | Path | None = None,
    model: LoadedModel | None = None,
    device: str = "cpu",
    frame_count: int | None = None,
    codec: str | StreamCodec = DEFAULT_CODEC,
    force: bool = False,
) -> Header:
    """Write index grids (a ``CodeGrids``, a mapping of level names to arrays, or the arrays coarse first) as
    a .msvq file that ``msvq decode`` turns into video, atomically. ``frame_count``: the frames to return
    (default: the grids' and else every clip's 32). A grid of the wrong shape, an index out of its codebook,
    or grids whose ``model_id`` is not the weights' is refused (UsageError / WeightsMismatch)."""
    path = Path(path)
    check_target(path, force)
    loaded = model or load_model(weights, device)
    cfg = loaded.model.config
    names = level_names(cfg.levels)
    arrays = _arrays(grids, names)
    if isinstance(grids, CodeGrids):
        if grids.model_id != loaded.model_id.hex():
            raise WeightsMismatch(
                f"these codes are of model {grids.model_id}, but the loaded weights are model "
                f"{loaded.model_id.hex()}: load the weights they were made with", option="weights",
            )  # fmt: skip
        frame_count = grids.frame_count if frame_count is None else frame_count
    n_clips = _check_grids(arrays, names, cfg)
    if frame_count is None:
        frame_count = n_clips * cfg.clip_frames
    if isinstance(frame_count, bool) or not isinstance(frame_count, (int, np.integer)) \
            or not (n_clips - 1) * cfg.clip_frames < frame_count <= n_clips * cfg.clip_frames:
        raise UsageError(f"frame_count must be an integer in {(n_clips - 1) * cfg.clip_frames + 1}.."
                         f"{n_clips * cfg.clip_frames} for {n_clips} clips, not {frame_count!r}",
                         option="frame_count")  # fmt: skip
    source = None
    if isinstance(grids, CodeGrids):
        source = SourceInfo("", "codes", grids.source_width, grids.source_height, grids.source_fps, None)
    header, data = codes_to_bytes(loaded, tuple(arrays), int(frame_count), source, codec=codec)
    with atomic_output(path, force) as tmp:
        tmp.write_bytes(data)
    return header


def _arrays(grids, names: tuple[str, ...]) -> list[np.ndarray]:
    if isinstance(grids, CodeGrids):
        grids = grids.levels
    if isinstance(grids, Mapping):
        missing = [n for n in names if n not in grids]
        extra = [n for n in grids if n not in names]
        if missing or extra:
            raise UsageError(f"the weights' levels are {', '.join(names)}; the codes give "
                             f"{', '.join(map(str, grids)) or 'none'}")  # fmt: skip
        grids = [grids[n] for n in names]
    grids = list(grids)
    if len(grids) != len(names):
        raise UsageError(f"the weights have {len(names)} levels ({', '.join(names)}), the codes {len(grids)}")
    return [np.asarray(a) for a in grids]


def _check_grids(arrays: list[np.ndarray], names: tuple[str, ...], cfg) -> int:
    """The clip count of well-formed grids: each of its level's shape and integer indices < K."""
    n_clips = arrays[-1].shape[0] if arrays[-1].ndim == 4 else 0
    for name, a in zip(names, arrays):
        shape = (n_clips, *cfg.grid(name))
        if a.shape != shape or n_clips < 1:
            raise UsageError(f"the {name} grid must be [n_clips, {', '.join(map(str, shape[1:]))}] with n_clips >= 1 "
                             f"(and the same n_clips on every level), not {list(a.shape)}")  # fmt: skip
        if a.dtype.kind not in "iu":
            raise UsageError(f"the {name} grid must hold integers, not {a.dtype}")
        lo, hi = int(a.min()), int(a.max())
        k = cfg.codebook_of(name)
        if lo < 0 or hi >= k:
            bad = lo if lo < 0 else hi
            raise UsageError(f"the {name} grid holds index {bad}, outside the codebook's 0..{k - 1}")
    return int(n_clips)


def save_npz(grids: CodeGrids, path: str | Path, force: bool = False) -> None:
    """Write ``grids`` as a .npz (see the module docstring), atomically."""
    facts = {"frame_count": np.int64(grids.frame_count), "fps": np.float64(grids.fps),
             "model_id": np.str_(grids.model_id), "source_fps": np.float64(grids.source_fps),
             "source_width": np.int64(grids.source_width), "source_height": np.int64(grids.source_height)}  # fmt: skip
    with atomic_output(path, force) as tmp:
        with open(tmp, "wb") as fp:  # a file object: np.savez would add .npz to a name without it
            np.savez(fp, **grids.levels, **facts)


def load_npz(path: str | Path) -> CodeGrids:
    """The grids of a .npz that ``save_npz`` wrote (InputError for anything else)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [n for n in LEVEL_NAMES if n in z.files]
            return CodeGrids(
                {n: z[n] for n in names}, int(z["frame_count"]), float(z["fps"]), str(z["model_id"]),
                float(z["source_fps"]), int(z["source_width"]), int(z["source_height"]),
            )  # fmt: skip
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"not a codes .npz msvq wrote: {path} ({err})") from None


def codes_target(source: str | Path, output: str | Path) -> Path:
    """Where ``msvq codes SOURCE OUTPUT`` writes: ``output``, or when it is an existing folder, the source's
    name with ``.npz`` in it (as ``encode`` does)."""
    output = Path(output)
    if not output.is_dir():
        return output
    if is_stdio(source):
        raise UsageError("standard input has no name to give its .npz in a folder: give the file to write")
    return output / f"{Path(source).stem}.npz"


def codes_file(input: str | Path, output: str | Path, *, weights: str | Path | None = None,
               model: LoadedModel | None = None, device: str = "cpu", force: bool = False) -> CodeGrids:  # fmt: skip
    """``msvq codes IN.msvq OUT.npz``: the grids of a .msvq file, saved as a .npz."""
    output = Path(output)
    if not is_stdio(input) and not Path(input).is_file():
        raise InputError(f"no such file: {input}")
    if output.suffix.lower() != ".npz":
        raise UsageError(f"the codes are written as .npz, not {output.suffix or repr(output.name)}")
    check_target(output, force)
    grids = read_codes(input, weights=weights, model=model, device=device)
    save_npz(grids, output, force)
    return grids


__all__ = ["CodeGrids", "codes_file", "codes_target", "load_npz", "read_codes", "save_npz", "write_codes"]
