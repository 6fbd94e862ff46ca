"""Reading any video-like input as a stream of RGB frames, and cutting it into the paper's clips.

Inputs (see :func:`probe`):

* a video file anything OpenCV's FFmpeg backend decodes (``VIDEO_EXTENSIONS`` lists the usual ones; a
  file with another suffix is still tried). Its frame rate is the container's; where that is 0, NaN,
  negative or absurd (1000 fps or more, or under 0.001 fps), and for raw ``.264``/``.h264`` streams (which store none), 25 fps is
  taken. The frame count the container declares is never trusted: frames are read until the decoder stops.
* a *frame folder*: a folder of numbered images (``0001.jpg``, ``frame_12.png`` ...), ordered by the
  last number in each name; images without a number are ignored. Grayscale, alpha and 16-bit images
  become 8-bit RGB. Taken at 25 fps.
* a ``.npy`` array, uint8 ``T x H x W x 3`` RGB or ``T x H x W`` grayscale, memory-mapped. Taken at 16 fps.
* a YUV4MPEG2 stream: a ``.y4m`` file, or standard input (the path ``-``), read by :mod:`.y4m` frame by
  frame at the rate its ``F`` tag gives. Standard input can be read once: its header is read at the first
  :func:`probe` and kept for the process, and its frames can be iterated once.

``input_fps`` overrides the rate in every case.

Clips (paper Section 4.1): the frames are resampled to ``fps`` by timestamps (source frame ``i`` covers
``[i/src, (i+1)/src)``; output frame ``k`` at time ``k/fps`` is the source frame covering it, so a source
of ``n`` frames gives exactly ``ceil(n * fps / src)``), squashed to ``size x size`` with
:func:`resize_frame`, and cut into non-overlapping clips of ``clip_frames``; the last, partial clip is
padded by repeating its last frame. Everything streams: at most one source frame and one clip are held.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from msvq_codec.errors import InputError, UsageError
from msvq_codec.outputs import is_stdio, stdin
from msvq_codec.video import y4m

# FFmpeg's own log lines ("moov atom not found", "partial file") would otherwise reach stderr beside msvq's
# one-line errors. OpenCV reads this once, when its FFmpeg backend starts; set it (e.g. to 24) to see them.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_EXTENSIONS = {
    ".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".264", ".h264", ".flv", ".wmv", ".y4m",
}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
RAW_STREAM_EXTENSIONS = {".264", ".h264"}  # elementary streams: no frame rate stored

DEFAULT_FPS = 25.0  # taken where a source stores no usable frame rate
NPY_FPS = 16.0  # a .npy array is taken to be at the clip rate already
MAX_FPS = 1000.0  # a declared rate this high is treated as missing
MIN_FPS = 0.001  # and one this low (16000 clip frames per source frame; below 1/2002, _rate() would be 0)

_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class SourceInfo:
    """What :func:`probe` learns about an input without decoding it all."""

    path: str
    kind: str  # "video" | "frames" | "npy" | "y4m" (a .y4m file, or standard input: path "-")
    width: int
    height: int
    fps: float  # the source's own rate (or input_fps); see the module docstring for the defaults
    declared_frames: int | None  # what the container claims (may be wrong or absent)


# ----------------------------------------------------------------------------------------------- probing


def probe(path, input_fps: float | None = None) -> SourceInfo:
    """Identify the input at ``path`` and read its size and rate; InputError if it holds no frames."""
    check_rate(input_fps, "input_fps", allow_none=True)
    if is_stdio(path):
        return _probe_y4m(_stdin_reader(), "-", input_fps)
    p = Path(path)
    if p.is_dir():
        return _probe_folder(p, input_fps)
    if not p.exists():
        raise InputError(f"no such file or folder: {p}")
    if not p.is_file():
        raise InputError(f"not a file or folder: {p}")
    try:
        if p.stat().st_size == 0:
            raise InputError(f"empty file: {p}")
    except OSError as err:
        raise InputError(f"cannot read {p}: {err.strerror}") from err
    if p.suffix.lower() == ".npy":
        return _probe_npy(p, input_fps)
    if p.suffix.lower() == ".y4m":
        with _open_file(p) as fp:
            return _probe_y4m(y4m.Y4mReader(fp, str(p)), str(p), input_fps)
    return _probe_video(p, input_fps)


_STDIN: dict[str, "y4m.Y4mReader"] = {}  # the reader of standard input, once its header is read


def _stdin_reader() -> "y4m.Y4mReader":
    """The YUV4MPEG2 reader of standard input, made (and its header read) on first use, then kept: a pipe is
    read once."""
    if "-" not in _STDIN:
        _STDIN["-"] = y4m.Y4mReader(stdin("YUV4MPEG2 (ffmpeg ... -f yuv4mpegpipe -)"), "standard input")
    return _STDIN["-"]


def _probe_y4m(reader: "y4m.Y4mReader", path: str, input_fps: float | None) -> SourceInfo:
    h = reader.header
    if input_fps is None and not MIN_FPS <= h.fps <= MAX_FPS:
        raise InputError(f"{path}: its frame rate F{h.fps.numerator}:{h.fps.denominator} is outside "
                         f"{MIN_FPS:g}..{MAX_FPS:g} fps; give the rate with input_fps")  # fmt: skip
    return SourceInfo(path, "y4m", h.width, h.height, float(input_fps or h.fps), None)


def _open_file(p: Path):
    try:
        return p.open("rb")
    except OSError as err:
        raise InputError(f"cannot read {p}: {err.strerror}") from err


def source_bytes(info: SourceInfo) -> int | None:
    """The input's size in bytes: a file's, a frame folder's images together, or what standard input gave
    so far (None where it cannot be known)."""
    try:
        if info.kind == "frames":
            return sum(p.stat().st_size for p in _numbered_images(Path(info.path)))
        if is_stdio(info.path):
            return _STDIN["-"].bytes_read if "-" in _STDIN else None
        return Path(info.path).stat().st_size
    except (OSError, InputError):
        return None


def _probe_video(p: Path, input_fps: float | None) -> SourceInfo:
    if not os.access(p, os.R_OK):
        raise InputError(f"cannot read {p}: permission denied")
    cap = _open_capture(p)
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise InputError(f"video holds no frames: {p}")
        declared = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        fps = cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    fps = _declared_fps(fps, p.suffix)
    declared_frames = int(declared) if 0 < declared < 2**31 else None
    h, w = frame.shape[:2]
    return SourceInfo(str(p), "video", w, h, float(input_fps or fps), declared_frames)


def _declared_fps(fps: float, suffix: str) -> float:
    """The container's rate, or 25 fps for a raw stream or a rate that is 0, NaN, negative, < 0.001 or >= 1000.

    (Matroska/WebM files with a 1 ms time base and no usable rate are reported as exactly 1000 fps.)
    """
    if suffix.lower() in RAW_STREAM_EXTENSIONS or not (MIN_FPS <= fps < MAX_FPS):  # NaN fails this too
        return DEFAULT_FPS
    return float(fps)


def _probe_folder(p: Path, input_fps: float | None) -> SourceInfo:
    images = _numbered_images(p)
    if not images:
        raise InputError(f"folder holds no numbered images: {p}")
    first = _read_image(images[0])
    h, w = first.shape[:2]
    return SourceInfo(str(p), "frames", w, h, float(input_fps or DEFAULT_FPS), len(images))


def _probe_npy(p: Path, input_fps: float | None) -> SourceInfo:
    arr = _load_npy(p)
    return SourceInfo(str(p), "npy", arr.shape[2], arr.shape[1], float(input_fps or NPY_FPS), arr.shape[0])


# ---------------------------------------------------------------------------------------------- decoding


def iter_frames(path, input_fps: float | None = None) -> Iterator[np.ndarray]:
    """Every source frame, in order, as RGB uint8 ``[H, W, 3]`` (native size), one at a time.

    ``input_fps`` does not change which frames come out; it is accepted (and checked) for symmetry.
    """
    info = probe(path, input_fps)  # here, so a bad input fails at the call, not at the first next()
    return (frame for _, frame in _decode(info, lambda i: True))


def _decode(info: SourceInfo, wanted: Callable[[int], bool]) -> Iterator[tuple[int, np.ndarray | None]]:
    """Yield ``(i, frame)`` for every source frame; ``frame`` is None (not decoded in full) unless wanted(i)."""
    if info.kind == "npy":
        arr = _load_npy(Path(info.path))
        for i in range(arr.shape[0]):
            yield i, _to_rgb8(np.array(arr[i]), info.path) if wanted(i) else None
    elif info.kind == "frames":
        for i, image in enumerate(_numbered_images(Path(info.path))):
            yield i, _read_image(image) if wanted(i) else None
    elif info.kind == "y4m":  # every frame is read; only the wanted ones are converted to RGB
        if is_stdio(info.path):
            yield from enumerate(_stdin_reader().frames(wanted))
        else:
            with _open_file(Path(info.path)) as fp:
                yield from enumerate(y4m.Y4mReader(fp, info.path).frames(wanted))
    else:
        cap = _open_capture(Path(info.path))
        try:
            i = 0
            while cap.grab():  # until the decoder stops, whatever the container declared
                frame = None
                if wanted(i):
                    ok, bgr = cap.retrieve()
                    if not ok or bgr is None:
                        break
                    frame = _to_rgb8(bgr, info.path, bgr_order=True)
                yield i, frame
                i += 1
        finally:
            cap.release()


@contextmanager
def _opencv_warnings_muted() -> Iterator[None]:
    logging = getattr(cv2, "utils", None) and getattr(cv2.utils, "logging", None)
    level = logging.getLogLevel() if logging else None
    if logging:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        if logging:
            logging.setLogLevel(level)


def _open_capture(p: Path) -> cv2.VideoCapture:
    """Open ``p`` with OpenCV's FFmpeg backend (its warnings muted); InputError if it cannot."""
    with _opencv_warnings_muted():
        cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise InputError(f"not a video I can decode: {p}")
    return cap


# ---------------------------------------------------------------------------------------------- clipping


def resampled_count(n_src: int, src_fps: float, fps: float = 16.0) -> int:
    """Frames a source of ``n_src`` frames at ``src_fps`` gives at ``fps``: ``ceil(n_src * fps / src_fps)``."""
    return _ceil(n_src * _rate(fps) / _rate(src_fps))


class ClipStream:
    """An input cut into clips: iterate for uint8 ``[clip_frames, size, size, 3]`` RGB arrays.

    ``frame_count`` (frames produced at the target rate, before padding) is valid once iteration is
    exhausted. Iterating again decodes the input again.
    """

    def __init__(self, info: SourceInfo, fps: float, size: int, clip_frames: int):
        self.info = info
        self.fps = float(fps)
        self.size = size
        self.clip_frames = clip_frames
        self.frame_count = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        ratio = _rate(self.fps) / _rate(self.info.fps)  # output frames per source frame

        def repeats(i: int) -> int:  # output frames whose timestamp falls in source frame i's interval
            return _ceil((i + 1) * ratio) - _ceil(i * ratio)

        self.frame_count = 0
        clip = np.empty((self.clip_frames, self.size, self.size, 3), np.uint8)
        filled = 0
        for i, frame in _decode(self.info, lambda i: repeats(i) > 0):
            if frame is None:
                continue
            small = resize_frame(frame, self.size, self.size)
            for _ in range(repeats(i)):
                clip[filled] = small
                filled += 1
                self.frame_count += 1
                if filled == self.clip_frames:
                    yield clip
                    clip = np.empty_like(clip)  # the consumer owns the clip it was given
                    filled = 0
        if filled:
            clip[filled:] = clip[filled - 1]
            yield clip


def iter_clips(
    path, *, fps: float = 16.0, size: int = 64, clip_frames: int = 32, input_fps: float | None = None
) -> ClipStream:
    """Probe ``path`` now (so a bad input fails here) and return its lazily decoded :class:`ClipStream`."""
    check_rate(fps, "fps")
    for name, value in (("size", size), ("clip_frames", clip_frames)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise UsageError(f"{name} must be a positive integer, not {value!r}")
    return ClipStream(probe(path, input_fps), fps, int(size), int(clip_frames))


def resize_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an image to ``width x height`` (aspect ratio not kept), bicubic as in the paper.

    OpenCV's bicubic alone aliases badly on big reductions (1080p to 64 px), so an axis shrunk by more
    than 2x is first area-averaged (INTER_AREA) down to twice the target, then INTER_CUBIC finishes.
    A frame already of the target size is returned unchanged.
    """
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    frame = np.ascontiguousarray(frame)
    mid_w, mid_h = min(w, 2 * width), min(h, 2 * height)
    if (mid_w, mid_h) != (w, h):
        frame = cv2.resize(frame, (mid_w, mid_h), interpolation=cv2.INTER_AREA)
    if (mid_w, mid_h) != (width, height):
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC)
    return frame


# ------------------------------------------------------------------------------------- finding inputs


def is_frame_folder(path) -> bool:
    """True when ``path`` is a folder holding at least one numbered image."""
    p = Path(path)
    return p.is_dir() and any(True for _ in _iter_numbered(p))


def find_inputs(root) -> list[Path]:
    """Every input under ``root`` (recursive, sorted): video files and ``.npy`` by suffix, and each frame
    folder as one input (not searched further). Hidden files and folders (``.name``) are skipped.
    ``root`` may itself be a frame folder or a single input file."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"no such file or folder: {root}")
    if root.is_file() or is_frame_folder(root):
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            if is_frame_folder(here / name):
                found.append(here / name)
            else:
                keep.append(name)
        dirnames[:] = keep  # os.walk descends only into these
        for name in filenames:
            suffix = os.path.splitext(name)[1].lower()
            if not name.startswith(".") and (suffix in VIDEO_EXTENSIONS or suffix == ".npy"):
                found.append(here / name)
    return sorted(found)


# ------------------------------------------------------------------------------------------------ helpers


def _iter_numbered(folder: Path) -> Iterator[tuple[int, str, Path]]:
    for entry in os.scandir(folder):
        stem, suffix = os.path.splitext(entry.name)
        numbers = _NUMBER.findall(stem)
        if suffix.lower() in IMAGE_EXTENSIONS and numbers and not entry.name.startswith(".") and entry.is_file():
            yield int(numbers[-1]), entry.name, Path(entry.path)


def _numbered_images(folder: Path) -> list[Path]:
    """The numbered images in ``folder``, by the last number in their names (then by name)."""
    try:
        return [p for _, _, p in sorted(_iter_numbered(folder))]
    except OSError as err:
        raise InputError(f"cannot read folder {folder}: {err.strerror}") from err


def _read_image(p: Path) -> np.ndarray:
    try:
        data = np.fromfile(p, np.uint8)  # not cv2.imread: works with any path encoding
    except OSError as err:
        raise InputError(f"cannot read {p}: {err.strerror}") from err
    with _opencv_warnings_muted():  # a damaged image is our one-line InputError, not also an OpenCV WARN line
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise InputError(f"not an image I can decode: {p}")
    return _to_rgb8(image, p, bgr_order=True)


def _to_rgb8(image: np.ndarray, where, bgr_order: bool = False) -> np.ndarray:
    """Any 2D/3D image (gray, gray+alpha, RGB/BGR, RGBA/BGRA; 8/16-bit or float) as RGB uint8."""
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = np.clip(np.nan_to_num(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"unsupported image type {image.dtype}: {where}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2] if image.ndim == 3 else 0
    if channels == 2:  # gray + alpha
        return cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if channels not in (3, 4):
        raise InputError(f"unsupported image shape {image.shape}: {where}")
    image = np.ascontiguousarray(image[:, :, :3])
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if bgr_order else image


def _load_npy(p: Path) -> np.ndarray:
    """Memory-map a ``.npy`` of uint8 ``T x H x W x 3`` (or ``T x H x W``, or ``... x 1``) frames."""
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"not a .npy array I can read: {p} ({err})") from err
    if not isinstance(arr, np.ndarray):
        raise InputError(f"not a single .npy array: {p}")
    if arr.dtype != np.uint8:
        raise InputError(f".npy frames must be uint8, not {arr.dtype}: {p}")
    if not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[3] in (1, 3))):
        raise InputError(f".npy frames must be T x H x W x 3 (RGB) or T x H x W (gray), not {arr.shape}: {p}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise InputError(f".npy array holds no frames: {p}")
    return arr


def _rate(fps: float) -> Fraction:
    """A frame rate as an exact fraction (29.97002997... becomes 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


def _ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


def check_rate(value, name: str, allow_none: bool = False) -> None:
    """A frame rate argument ``name`` is a finite number in [MIN_FPS, MAX_FPS] (or None, if allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or not (MIN_FPS <= value <= MAX_FPS):
        raise UsageError(f"{name} must be a frame rate in [{MIN_FPS:g}, {MAX_FPS:g}], not {value!r}", option=name)
