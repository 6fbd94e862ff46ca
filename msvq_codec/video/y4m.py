"""YUV4MPEG2 ("y4m") streams, 8-bit only: read them as RGB frames and write RGB frames as them, one frame at a time.

The format, byte by byte (all text is ASCII; the spec is mjpegtools' yuv4mpeg(5)):

* The stream header: the 9 bytes ``YUV4MPEG2``, then any number of tags, each a space (0x20), one tag letter and
  its value (no spaces inside), then a newline (0x0A). At most ``MAX_HEADER_BYTES`` bytes, the newline included.
  Tags read here (a repeated tag: the last one counts):

  - ``W<width>`` and ``H<height>``: decimal, 1 to ``MAX_SIDE``. Required.
  - ``F<num>:<den>``: the frame rate, both positive decimals (``F30000:1001``). Required here (as in FFmpeg).
  - ``I<c>``: interlacing. ``p`` (progressive) and ``?`` (unknown) are read as progressive; ``t``, ``b`` and
    ``m`` (top/bottom field first, mixed) are refused. Absent: progressive.
  - ``A<num>:<den>``: the pixel aspect ratio, kept in :attr:`Y4mHeader.aspect`; ``A0:0``, absent or malformed
    is "unknown", ``(0, 0)``. It does not change the pixels.
  - ``C<space>``: the chroma layout, one of ``CHROMA_FORMATS``: ``420jpeg`` (chroma centred between the luma
    samples), ``420mpeg2`` (co-sited with the left luma column), ``420paldv`` (co-sited with the top-left
    luma), ``420`` (as ``420jpeg``), ``422``, ``444`` and ``mono`` (luma only). Absent: ``420jpeg``, as FFmpeg.
    Anything else, 4:1:1 and the high bit depth and alpha layouts (``420p10``, ``444alpha``, ``mono16`` ...)
    included, is refused. The siting of ``420mpeg2``/``420paldv`` is not honoured: all 4:2:0 layouts are
    upsampled the same way, as FFmpeg's own conversion to RGB does (see Colour).
  - ``X<name>=<value>``: extensions. ``XCOLORRANGE=FULL`` marks full-range (0-255) samples, ``XCOLORRANGE=LIMITED``
    or none limited range (luma 16-235, chroma 16-240). Other ``X`` tags, and tag letters not listed here,
    are ignored (the spec allows new ones).

* Then each frame: the 5 bytes ``FRAME``, optionally a space and parameters (ignored), a newline (the line at
  most ``MAX_HEADER_BYTES`` bytes), then exactly :meth:`Y4mHeader.frame_bytes` bytes: the Y plane (``height``
  rows of ``width`` bytes), then the Cb plane and the Cr plane (each ``chroma_height`` rows of ``chroma_width``
  bytes; none for ``mono``). 4:2:0 chroma is ``ceil(width / 2) x ceil(height / 2)``, 4:2:2 ``ceil(width / 2) x
  height`` (odd sizes rounded up, as FFmpeg). The stream ends cleanly at end of input where a ``FRAME`` line
  would start; a stream may hold a header and no frames.

Reading (:class:`Y4mReader`) takes any binary stream, a pipe included: it reads exact lengths in a loop (a pipe
returns short reads), holds one frame's bytes at a time, and turns anything malformed or truncated into a
one-line :class:`~msvq_codec.errors.InputError` that starts with the stream's name. Frames are counted from 0
in messages, as elsewhere in msvq.

Colour: BT.601, limited range unless ``XCOLORRANGE=FULL``, converted the way FFmpeg 5.1 itself converts a
y4m to ``rgb24`` (``ffmpeg -f yuv4mpegpipe -i x.y4m -pix_fmt rgb24``), measured against it (tests/test_y4m.py):

* 4:2:0 and 4:2:2 of an even height: each chroma sample is repeated over the 2x2 (2x1) luma samples it
  covers, whatever the siting (swscale's unscaled fast path). That path works in truncating fixed point, so
  FFmpeg's values are often 1, at most 3, below the exactly rounded ones computed here.
* 4:2:0 and 4:2:2 of an odd height: swscale takes its general scaler instead, which interpolates the chroma
  with its default bicubic filter (Keys, a = -0.6; sample centres aligned, edges replicated): vertically
  to the full height, and horizontally to the full width when the width is odd (an even width repeats
  each chroma sample twice). Values over 255 are clipped after the horizontal pass, and the result to
  0-255 after the vertical pass. Done the same way here.
* 4:4:4: no resampling.
* ``mono``: the Y plane is copied to R, G and B unchanged, whatever ``XCOLORRANGE`` says (FFmpeg treats gray
  as full range; it also writes gray y4m as ``XCOLORRANGE=FULL``).

Writing (:class:`Y4mWriter`, :func:`write_y4m`): BT.601 limited range (full range for ``mono``), 4:2:0 chroma
as the mean of each 2x2 block (the last row/column repeated for odd sizes), 4:2:2 of each horizontal pair.
The header line is ``YUV4MPEG2 W<w> H<h> F<num>:<den> Ip A1:1 C<chroma> XCOLORRANGE=LIMITED`` (``FULL`` for
``mono``).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import numpy as np

from msvq_codec.errors import InputError, UsageError

MAGIC = b"YUV4MPEG2"
FRAME_MAGIC = b"FRAME"
MAX_SIDE = 16384  # width/height cap
MAX_HEADER_BYTES = 4096  # a header (or FRAME line) longer than this, its newline included, is malformed

# chroma layout -> (horizontal, vertical) subsampling factor; None: no chroma planes
_SUBSAMPLING: dict[str, tuple[int, int] | None] = {
    "420jpeg": (2, 2),
    "420mpeg2": (2, 2),
    "420paldv": (2, 2),
    "420": (2, 2),
    "422": (2, 1),
    "444": (1, 1),
    "mono": None,
}
CHROMA_FORMATS = tuple(_SUBSAMPLING)  # the C tag values read (canonical names)
WRITE_CHROMA = ("420jpeg", "422", "444", "mono")  # the layouts Y4mWriter writes

# BT.601 luma weights, and the chroma scale factors they imply (Cb = (B - Y) / 1.772, Cr = (R - Y) / 1.402)
_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB
_CB_SCALE = 2.0 * (1.0 - _KB)  # 1.772
_CR_SCALE = 2.0 * (1.0 - _KR)  # 1.402
_BICUBIC_A = -0.6  # swscale's default bicubic (B = 0, C = 0.6) as a Keys kernel

_SIDE = re.compile(rb"[0-9]+")
_RATIO = re.compile(rb"([0-9]+):([0-9]+)")


@dataclass(frozen=True)
class Y4mHeader:
    """What a y4m stream header says (see the module docstring for the tags)."""

    width: int  # W, in 1..MAX_SIDE
    height: int  # H, in 1..MAX_SIDE
    fps: Fraction  # F<num>:<den>, > 0
    chroma: str  # one of CHROMA_FORMATS ("420jpeg" when the C tag is absent)
    full_range: bool  # XCOLORRANGE=FULL; False for LIMITED or no tag
    aspect: tuple[int, int]  # A<num>:<den>, the pixel aspect ratio; (0, 0) when absent or unknown

    def chroma_shape(self) -> tuple[int, int] | None:
        """``(rows, columns)`` of each chroma plane, or None for ``mono``."""
        sub = _SUBSAMPLING[self.chroma]
        if sub is None:
            return None
        return -(-self.height // sub[1]), -(-self.width // sub[0])

    def frame_bytes(self) -> int:
        """Bytes of one frame's planes (after its FRAME line)."""
        shape = self.chroma_shape()
        return self.width * self.height + (2 * shape[0] * shape[1] if shape else 0)

    def to_line(self) -> bytes:
        """The header line :class:`Y4mWriter` writes for this header, newline included."""
        rng = "FULL" if self.full_range else "LIMITED"
        return (f"YUV4MPEG2 W{self.width} H{self.height} F{self.fps.numerator}:{self.fps.denominator} Ip "
                f"A{self.aspect[0]}:{self.aspect[1]} C{self.chroma} XCOLORRANGE={rng}\n").encode("ascii")


# ----------------------------------------------------------------------------------------------- reading


def read_header(stream: BinaryIO, name: str = "stdin") -> Y4mHeader:
    """Read and check the header line of the y4m stream ``stream``; InputError if it is malformed."""
    return _read_header(stream, name)[0]


def _read_header(stream: BinaryIO, name: str) -> tuple[Y4mHeader, int]:
    """The header and the bytes its line took."""
    line = _read_line(stream, name)
    if not line:
        raise InputError(f"{name}: empty, not a YUV4MPEG2 (y4m) stream")
    if not line.startswith(MAGIC) or line[len(MAGIC):len(MAGIC) + 1] not in (b" ", b"\n", b""):
        if MAGIC.startswith(line):
            raise InputError(f"{name}: y4m stream ends inside its header")
        raise InputError(f"{name}: not a YUV4MPEG2 (y4m) stream: it starts with {_show(line)}")
    if not line.endswith(b"\n"):
        if len(line) >= MAX_HEADER_BYTES:
            raise InputError(f"{name}: y4m header is longer than {MAX_HEADER_BYTES} bytes (no end of line)")
        raise InputError(f"{name}: y4m stream ends inside its header")

    width = height = fps = None
    chroma, full_range, aspect = "420jpeg", False, (0, 0)
    for tag in line[len(MAGIC):-1].split(b" "):
        letter, value = tag[:1], tag[1:]
        if letter in (b"W", b"H"):
            what = "width" if letter == b"W" else "height"
            side = int(value) if _SIDE.fullmatch(value) else 0
            if not 1 <= side <= MAX_SIDE:
                raise InputError(f"{name}: y4m {what} {_show(tag)} is not a whole number in 1..{MAX_SIDE}")
            width, height = (side, height) if letter == b"W" else (width, side)
        elif letter == b"F":
            m = _RATIO.fullmatch(value)
            if not m:
                raise InputError(f"{name}: y4m frame rate {_show(tag)} is not F<num>:<den>")
            num, den = int(m[1]), int(m[2])
            if num == 0 or den == 0:
                raise InputError(f"{name}: y4m frame rate {_show(tag)} is not a positive number")
            fps = Fraction(num, den)
        elif letter == b"I":
            if value in (b"t", b"b", b"m"):
                raise InputError(f"{name}: interlaced y4m ({_show(tag)}) is not supported, only progressive (Ip)")
            if value not in (b"p", b"?"):
                raise InputError(f"{name}: y4m interlacing {_show(tag)} is not one of Ip, It, Ib, Im, I?")
        elif letter == b"A":
            m = _RATIO.fullmatch(value)
            aspect = (int(m[1]), int(m[2])) if m else (0, 0)
        elif letter == b"C":
            chroma = value.decode("ascii", "replace")
            if chroma not in _SUBSAMPLING:
                raise InputError(f"{name}: y4m colour space {_show(tag)} is not supported: only 8-bit 4:2:0, "
                                 f"4:2:2, 4:4:4 and mono are read")
        elif tag.startswith(b"XCOLORRANGE="):
            full_range = {b"FULL": True, b"LIMITED": False}.get(tag[len(b"XCOLORRANGE="):], full_range)
        # anything else (other X tags, unknown letters, empty tags from repeated spaces) is ignored
    for value, what in ((width, "width (W tag)"), (height, "height (H tag)"), (fps, "frame rate (F tag)")):
        if value is None:
            raise InputError(f"{name}: y4m header has no {what}")
    return Y4mHeader(width, height, fps, chroma, full_range, aspect), len(line)


class Y4mReader:
    """A y4m stream's frames: iterate for RGB uint8 ``[H, W, 3]`` arrays, one at a time, in a single pass.

    The header is read and checked when the reader is made. ``bytes_read`` (header and frames so far) and
    ``frames_read`` grow as the frames are read. A stream with no frames yields none.
    """

    def __init__(self, stream: BinaryIO, name: str = "stdin"):
        self.stream = stream
        self.name = name
        self.header, self.bytes_read = _read_header(stream, name)
        self.frames_read = 0
        self._started = False

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()  # type: ignore[return-value]

    def frames(self, wanted: Callable[[int], bool] | None = None) -> Iterator[np.ndarray | None]:
        """The frames, in one pass; a frame ``i`` with ``wanted(i)`` false is read past, not converted (None)."""
        if self._started:
            raise InputError(f"{self.name}: a y4m stream can be read only once")
        self._started = True
        return self._frames(wanted or (lambda i: True))

    def _frames(self, wanted: Callable[[int], bool]) -> Iterator[np.ndarray | None]:
        hdr, name = self.header, self.name
        size = hdr.frame_bytes()
        n_y = hdr.width * hdr.height
        shape = hdr.chroma_shape()
        n_c = shape[0] * shape[1] if shape else 0
        buf = None  # the one frame buffer, made at the first FRAME line (a header-only stream allocates none)
        while True:
            i = self.frames_read
            line = _read_line(self.stream, name)
            if not line:
                return  # clean end of stream
            self.bytes_read += len(line)
            _check_frame_line(line, i, size, self.bytes_read - len(line), name)
            if buf is None:
                buf = np.empty(size, np.uint8)
            got = _read_exact(self.stream, buf, name)
            self.bytes_read += got
            if got < size:
                raise InputError(f"{name}: y4m stream ends in the middle of frame {i} "
                                 f"(got {len(line) + got} of {len(line) + size} bytes)")
            self.frames_read += 1
            y = buf[:n_y].reshape(hdr.height, hdr.width)  # [h, w]
            cb = cr = None
            if shape:
                cb = buf[n_y:n_y + n_c].reshape(shape)  # [h_c, w_c]
                cr = buf[n_y + n_c:].reshape(shape)  # [h_c, w_c]
            yield yuv_to_rgb(y, cb, cr, hdr) if wanted(i) else None  # a new array: buf is refilled next frame


def _check_frame_line(line: bytes, i: int, size: int, offset: int, name: str) -> None:
    """InputError unless ``line`` (read where frame ``i`` starts, at byte ``offset``) is a whole FRAME line."""
    n = len(FRAME_MAGIC)
    if not (line.startswith(FRAME_MAGIC) or FRAME_MAGIC.startswith(line)) or line[n:n + 1] not in (b" ", b"\n", b""):
        raise InputError(f"{name}: expected a y4m FRAME line for frame {i} at byte {offset}, found {_show(line)}")
    if not line.endswith(b"\n"):
        if len(line) >= MAX_HEADER_BYTES:
            raise InputError(f"{name}: the FRAME line of y4m frame {i} is longer than {MAX_HEADER_BYTES} bytes")
        expected = max(len(line) + 1, n + 1) + size
        raise InputError(f"{name}: y4m stream ends in the middle of frame {i} (got {len(line)} of {expected} bytes)")


def _read_line(stream: BinaryIO, name: str) -> bytes:
    """One line, newline included, of at most MAX_HEADER_BYTES bytes (fewer, without newline, at end of input)."""
    try:
        return stream.readline(MAX_HEADER_BYTES)
    except OSError as err:
        raise InputError(f"{name}: cannot read: {err.strerror or err}") from err


def _read_exact(stream: BinaryIO, buf: np.ndarray, name: str) -> int:
    """Fill ``buf`` from ``stream`` (looping over short reads); the bytes read, fewer only at end of input."""
    view = memoryview(buf).cast("B")
    got = 0
    readinto = getattr(stream, "readinto", None)
    try:
        while got < len(view):
            if readinto is not None:
                n = readinto(view[got:])
            else:
                chunk = stream.read(len(view) - got)
                n = len(chunk)
                view[got:got + n] = chunk
            if not n:
                break
            got += n
    except OSError as err:
        raise InputError(f"{name}: cannot read: {err.strerror or err}") from err
    return got


def _show(data: bytes, limit: int = 40) -> str:
    """``data`` for a one-line message: escaped like a bytes literal, cut after ``limit`` bytes."""
    text = repr(bytes(data[:limit]))[2:-1]
    return f"'{text}...'" if len(data) > limit else f"'{text}'"


# ------------------------------------------------------------------------------------------------ colour


def yuv_to_rgb(y: np.ndarray, cb: np.ndarray | None, cr: np.ndarray | None, header: Y4mHeader) -> np.ndarray:
    """One frame's planes (uint8; ``cb``/``cr`` None for mono) as RGB uint8 ``[H, W, 3]``, as FFmpeg converts them.

    See Colour in the module docstring: BT.601, limited range unless ``header.full_range``, chroma upsampled
    like swscale, mono copied unchanged.
    """
    h, w = header.height, header.width
    if y.shape != (h, w) or (cb is None) != (header.chroma == "mono"):
        raise ValueError(f"planes do not fit a {w}x{h} {header.chroma} frame")
    if cb is None:
        return np.repeat(y[:, :, None], 3, axis=2)  # [h, w, 3]
    if header.full_range:
        y_off, y_scale, c_scale = 0.0, 1.0, 1.0
    else:
        y_off, y_scale, c_scale = 16.0, 255.0 / 219.0, 255.0 / 224.0
    cb = (_upsample(cb, w, h) - 128.0) * c_scale  # [h, w]
    cr = (_upsample(cr, w, h) - 128.0) * c_scale  # [h, w]
    luma = (y.astype(np.float32) - y_off) * y_scale  # [h, w]
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:, :, 0] = luma + _CR_SCALE * cr
    rgb[:, :, 1] = luma - (_CB_SCALE * _KB / _KG) * cb - (_CR_SCALE * _KR / _KG) * cr
    rgb[:, :, 2] = luma + _CB_SCALE * cb
    return _to_uint8(rgb)


def _upsample(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """A chroma plane ``[h_c, w_c]`` as float32 ``[height, width]``, the way swscale does it (module docstring)."""
    plane = plane.astype(np.float32)
    h_c, w_c = plane.shape
    interpolate = height % 2 == 1  # swscale's general scaler; an even height takes its fast path (repeats)
    if w_c != width:
        if interpolate and width % 2 == 1:
            plane = np.minimum(_cubic(plane, width, axis=1), 255.0)  # [h_c, width]
        else:
            plane = np.repeat(plane, 2, axis=1)[:, :width]  # [h_c, width]
    if h_c != height:
        if interpolate:
            plane = np.clip(_cubic(plane, height, axis=0), 0.0, 255.0)  # [height, width]
        else:
            plane = np.repeat(plane, 2, axis=0)[:height]  # [height, width]
    return plane


def _cubic(plane: np.ndarray, n: int, axis: int) -> np.ndarray:
    """``plane`` resampled to ``n`` samples along ``axis``: Keys bicubic, centres aligned, edges replicated."""
    index, weight = _cubic_taps(plane.shape[axis], n)  # [n, 4] each
    out = np.zeros(plane.shape[:axis] + (n,) + plane.shape[axis + 1:], np.float32)
    for t in range(4):
        w = weight[:, t] if axis == 1 else weight[:, t, None]  # broadcast along the resampled axis
        out += np.take(plane, index[:, t], axis=axis) * w
    return out


@functools.lru_cache(maxsize=16)
def _cubic_taps(m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights (``[n, 4]`` each) of bicubic resampling from ``m`` to ``n`` samples."""
    pos = (np.arange(n) + 0.5) * (m / n) - 0.5  # output sample centres in input coordinates
    base = np.floor(pos).astype(np.int64)[:, None] + np.arange(-1, 3)  # [n, 4]
    x = np.abs(pos[:, None] - base)
    a = _BICUBIC_A
    weight = np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                      np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))
    weight /= weight.sum(axis=1, keepdims=True)
    return np.clip(base, 0, m - 1), weight.astype(np.float32)


def rgb_to_yuv(
    rgb: np.ndarray, chroma: str, full_range: bool = False
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """An RGB uint8 ``[H, W, 3]`` frame as BT.601 planes ``(y, cb, cr)``, uint8, for layout ``chroma``.

    Limited range unless ``full_range``. 4:2:0 chroma is the mean of each 2x2 block, 4:2:2 of each horizontal
    pair (the last row/column repeated for odd sizes); ``cb``/``cr`` are None for ``mono``.
    """
    if chroma not in _SUBSAMPLING:
        raise ValueError(f"unknown y4m chroma layout {chroma!r}; one of {', '.join(CHROMA_FORMATS)}")
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 [h, w, 3] RGB frame, got {rgb.dtype} {rgb.shape}")
    f = rgb.astype(np.float32)
    r, g, b = f[:, :, 0], f[:, :, 1], f[:, :, 2]  # [h, w] each
    luma = _KR * r + _KG * g + _KB * b  # [h, w], 0..255
    y = luma if full_range else 16.0 + luma * (219.0 / 255.0)
    sub = _SUBSAMPLING[chroma]
    if sub is None:
        return _to_uint8(y), None, None
    c_scale = 1.0 if full_range else 224.0 / 255.0
    cb = _subsample(128.0 + (b - luma) * (c_scale / _CB_SCALE), sub)
    cr = _subsample(128.0 + (r - luma) * (c_scale / _CR_SCALE), sub)
    return _to_uint8(y), _to_uint8(cb), _to_uint8(cr)


def _subsample(plane: np.ndarray, sub: tuple[int, int]) -> np.ndarray:
    """The mean of each ``sub[1] x sub[0]`` block of ``plane`` ``[h, w]`` (edges repeated to whole blocks)."""
    sx, sy = sub
    if (sx, sy) == (1, 1):
        return plane
    h, w = plane.shape
    plane = np.pad(plane, ((0, -h % sy), (0, -w % sx)), mode="edge")
    return plane.reshape(plane.shape[0] // sy, sy, plane.shape[1] // sx, sx).mean(axis=(1, 3))  # [h_c, w_c]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- writing


class Y4mWriter:
    """Write RGB frames to ``stream`` as y4m; the header line is written now, each frame by :meth:`write`.

    ``chroma`` is one of ``WRITE_CHROMA``. ``fps`` becomes a fraction (see :func:`y4m_rate`).
    ``frames_written`` and ``bytes_written`` count what has been written.
    """

    def __init__(self, stream: BinaryIO, width: int, height: int, fps: float | Fraction, chroma: str = "420jpeg"):
        for what, side in (("width", width), ("height", height)):
            if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or not 1 <= side <= MAX_SIDE:
                raise UsageError(f"{what} must be a whole number in 1..{MAX_SIDE}, not {side!r}", option=what)
        if chroma not in WRITE_CHROMA:
            raise UsageError(f"chroma must be one of {', '.join(WRITE_CHROMA)}, not {chroma!r}", option="chroma")
        self.stream = stream
        self.header = Y4mHeader(int(width), int(height), y4m_rate(fps), chroma, chroma == "mono", (1, 1))
        self.frames_written = 0
        self.bytes_written = 0
        self._write(self.header.to_line())

    def write(self, rgb: np.ndarray) -> None:
        """Write one RGB uint8 ``[H, W, 3]`` frame of the header's size; ValueError for any other."""
        hdr = self.header
        rgb = np.asarray(rgb)
        i = self.frames_written
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"frame {i}: expected uint8 [h, w, 3] RGB, got {rgb.dtype} {rgb.shape}")
        if rgb.shape[:2] != (hdr.height, hdr.width):
            raise ValueError(f"frame {i} is {rgb.shape[1]}x{rgb.shape[0]}, "
                             f"the y4m header says {hdr.width}x{hdr.height}")
        y, cb, cr = rgb_to_yuv(rgb, hdr.chroma, hdr.full_range)
        self._write(FRAME_MAGIC + b"\n")
        for plane in (y, cb, cr):
            if plane is not None:
                self._write(np.ascontiguousarray(plane))
        self.frames_written += 1

    def _write(self, data) -> None:
        view = memoryview(data).cast("B")
        self.bytes_written += len(view)
        while view:  # a raw (unbuffered) stream may take part of it
            n = self.stream.write(view)
            if n is None or n >= len(view):
                break
            view = view[n:]


def write_y4m(stream: BinaryIO, frames: Iterable[np.ndarray], fps: float | Fraction, chroma: str = "420jpeg") -> int:
    """Write RGB uint8 ``[H, W, 3]`` ``frames`` to ``stream`` as y4m, sized by the first; the frames written.

    ValueError if there are no frames (nothing is written then) or a frame is not RGB of the first's size.
    """
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("no frames to write")
    first = np.asarray(first)
    if first.dtype != np.uint8 or first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(f"frame 0: expected uint8 [h, w, 3] RGB, got {first.dtype} {first.shape}")
    writer = Y4mWriter(stream, first.shape[1], first.shape[0], fps, chroma)
    writer.write(first)
    for frame in it:
        writer.write(frame)
    return writer.frames_written


def y4m_rate(fps: float | Fraction) -> Fraction:
    """``fps`` as the fraction an F tag holds; UsageError unless it is a positive finite number.

    A Fraction (or int) is kept exactly. A float within 0.005 % of an NTSC rate ``n * 1000 / 1001`` (29.97,
    23.976, 59.94 ...) becomes exactly that; any other the nearest fraction with a denominator of at most 1001
    (16.0 -> 16/1, 12.5 -> 25/2).
    """
    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction, np.integer, np.floating)):
        raise UsageError(f"fps must be a positive number, not {fps!r}", option="fps")
    if isinstance(fps, (int, np.integer, Fraction)):
        rate = Fraction(int(fps)) if isinstance(fps, np.integer) else Fraction(fps)
    else:
        value = float(fps)
        if not math.isfinite(value) or value <= 0:
            raise UsageError(f"fps must be a positive number, not {fps!r}", option="fps")
        ntsc = round(value * 1.001)
        if ntsc >= 1 and value != round(value) and abs(value * 1.001 - ntsc) <= 5e-5 * ntsc:
            rate = Fraction(ntsc * 1000, 1001)
        else:
            rate = Fraction(value).limit_denominator(1001)
    if rate <= 0:
        raise UsageError(f"fps must be a positive number, not {fps!r}", option="fps")
    return rate
