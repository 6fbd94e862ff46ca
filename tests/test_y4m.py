"""Tests for msvq_codec.video.y4m: header parsing, every malformed or truncated stream, pipes and short reads,
colour conversion against FFmpeg's own (both ways, every chroma layout FFmpeg writes), and the writer.

The FFmpeg comparisons generate their videos with ffmpeg's testsrc2 and skip when ffmpeg is not on PATH.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import threading
from fractions import Fraction

import numpy as np
import pytest

from msvq_codec.errors import InputError, UsageError
from msvq_codec.video.y4m import (
    CHROMA_FORMATS,
    MAX_HEADER_BYTES,
    MAX_SIDE,
    WRITE_CHROMA,
    Y4mHeader,
    Y4mReader,
    Y4mWriter,
    read_header,
    rgb_to_yuv,
    write_y4m,
    y4m_rate,
    yuv_to_rgb,
)

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not on PATH")


# --------------------------------------------------------------------------------------------- helpers


def _ffmpeg(args: list[str], data: bytes | None = None) -> bytes:
    return subprocess.run(["ffmpeg", "-v", "error", "-nostdin", *args], input=data, capture_output=True,
                          check=True).stdout


def _testsrc(size: str) -> list[str]:
    w, h = size.split("x")
    return ["-f", "lavfi", "-i", f"testsrc2=size=66x50:rate=25,scale={w}:{h}"]  # testsrc2 itself rounds to even


@functools.lru_cache(maxsize=None)
def _source_y4m(size: str, pix_fmt: str, frames: int = 5, extra: tuple[str, ...] = ()) -> bytes:
    """``frames`` of testsrc2 at ``size``, written by ffmpeg as y4m in ``pix_fmt``."""
    return _ffmpeg([*_testsrc(size), "-frames:v", str(frames), "-pix_fmt", pix_fmt, *extra, "-strict", "-1",
                    "-f", "yuv4mpegpipe", "-"])


@functools.lru_cache(maxsize=None)
def _source_rgb(size: str, frames: int = 5) -> np.ndarray:
    w, h = map(int, size.split("x"))
    raw = _ffmpeg([*_testsrc(size), "-frames:v", str(frames), "-pix_fmt", "rgb24", "-f", "rawvideo", "-"])
    return np.frombuffer(raw, np.uint8).reshape(frames, h, w, 3)  # [t, h, w, 3]


def _ffmpeg_rgb(y4m: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """ffmpeg's own conversion of a y4m stream to rgb24."""
    raw = _ffmpeg(["-f", "yuv4mpegpipe", "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], y4m)
    return np.frombuffer(raw, np.uint8).reshape(shape)


def _read(data: bytes, name: str = "test.y4m") -> tuple[Y4mReader, np.ndarray | None]:
    reader = Y4mReader(io.BytesIO(data), name)
    frames = list(reader)
    return reader, (np.stack(frames) if frames else None)  # [t, h, w, 3]


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


def _input_error(data: bytes, name: str = "test.y4m") -> str:
    """The message of the InputError that reading ``data`` in full raises; it is one line naming the stream."""
    with pytest.raises(InputError) as info:
        _read(data, name)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{name}: "), message
    return message


TINY_HEADER = b"YUV4MPEG2 W4 H2 F25:1 Ip C420jpeg\n"
TINY_PLANES = 4 * 2 + 2 * (2 * 1)  # Y 4x2, Cb and Cr 2x1 each


def _tiny(frames: int = 2, frame_line: bytes = b"FRAME\n") -> bytes:
    """A hand-made 4x2 4:2:0 stream of ``frames`` frames, plane bytes 0, 1, 2 ..."""
    return TINY_HEADER + b"".join(frame_line + bytes(range(i, i + TINY_PLANES)) for i in range(frames))


# ------------------------------------------------------------------------------------------------ header


def test_header_fields():
    data = b"YUV4MPEG2 W66 H50 F30000:1001 Ip A128:117 C422 XYSCSS=422 XCOLORRANGE=FULL Zfuture  Qq\n"
    hdr = read_header(io.BytesIO(data), "x")
    assert hdr == Y4mHeader(66, 50, Fraction(30000, 1001), "422", True, (128, 117))


def test_header_defaults():
    hdr = read_header(io.BytesIO(b"YUV4MPEG2 W3 H5 F25:2\n"))
    assert (hdr.chroma, hdr.full_range, hdr.aspect, hdr.fps) == ("420jpeg", False, (0, 0), Fraction(25, 2))


@pytest.mark.parametrize("tags, expected", [
    (b"I? A0:0 XCOLORRANGE=LIMITED", ("420jpeg", False, (0, 0))),
    (b"Aoops XCOLORRANGE=WHATEVER C444", ("444", False, (0, 0))),  # a malformed A or range is "unknown"
    (b"XCOLORRANGE=FULL XCOLORRANGE=LIMITED Cmono", ("mono", False, (0, 0))),  # the last tag counts
])
def test_header_lenient_tags(tags, expected):
    hdr = read_header(io.BytesIO(b"YUV4MPEG2 W2 H2 F1:1 " + tags + b"\n"))
    assert (hdr.chroma, hdr.full_range, hdr.aspect) == expected


@pytest.mark.parametrize("chroma", CHROMA_FORMATS)
def test_every_chroma_tag_is_read(chroma):
    hdr = read_header(io.BytesIO(f"YUV4MPEG2 W5 H3 F25:1 C{chroma}\n".encode()))
    assert hdr.chroma == chroma


@pytest.mark.parametrize("chroma, size, expected", [
    ("420jpeg", (4, 2), 4 * 2 + 2 * 2 * 1),
    ("420mpeg2", (33, 25), 33 * 25 + 2 * 17 * 13),  # odd sizes: chroma rounded up, as FFmpeg
    ("420paldv", (1, 1), 1 + 2),
    ("420", (2, 3), 6 + 2 * 1 * 2),
    ("422", (33, 25), 33 * 25 + 2 * 17 * 25),
    ("444", (33, 25), 3 * 33 * 25),
    ("mono", (33, 25), 33 * 25),
])
def test_frame_bytes(chroma, size, expected):
    assert Y4mHeader(size[0], size[1], Fraction(25), chroma, False, (0, 0)).frame_bytes() == expected


def test_to_line_reads_back():
    hdr = Y4mHeader(33, 25, Fraction(24000, 1001), "444", True, (1, 1))
    assert hdr.to_line() == b"YUV4MPEG2 W33 H25 F24000:1001 Ip A1:1 C444 XCOLORRANGE=FULL\n"
    assert read_header(io.BytesIO(hdr.to_line())) == hdr


MALFORMED_HEADERS = {  # id: (stream, a piece of the message)
    "empty": (b"", "empty, not a YUV4MPEG2"),
    "no magic": (b"RIFF\x00\x00WAVEfmt \n", "not a YUV4MPEG2 (y4m) stream: it starts with 'RIFF\\x00"),
    "magic glued to a tag": (b"YUV4MPEG2W4 H2 F25:1\n", "not a YUV4MPEG2"),
    "lower-case magic": (b"yuv4mpeg2 W4 H2 F25:1\n", "not a YUV4MPEG2"),
    "no width": (b"YUV4MPEG2 H2 F25:1\n", "has no width (W tag)"),
    "no height": (b"YUV4MPEG2 W4 F25:1\n", "has no height (H tag)"),
    "no frame rate": (b"YUV4MPEG2 W4 H2\n", "has no frame rate (F tag)"),
    "zero width": (b"YUV4MPEG2 W0 H2 F25:1\n", "width 'W0' is not a whole number in 1..16384"),
    "zero height": (b"YUV4MPEG2 W4 H0 F25:1\n", "height 'H0'"),
    "negative width": (b"YUV4MPEG2 W-4 H2 F25:1\n", "width 'W-4'"),
    "signed height": (b"YUV4MPEG2 W4 H+2 F25:1\n", "height 'H+2'"),
    "empty width": (b"YUV4MPEG2 W H2 F25:1\n", "width 'W'"),
    "width with underscore": (b"YUV4MPEG2 W1_0 H2 F25:1\n", "width 'W1_0'"),
    "width too big": (b"YUV4MPEG2 W16385 H2 F25:1\n", "width 'W16385'"),
    "huge height": (b"YUV4MPEG2 W4 H" + b"9" * 300 + b" F25:1\n", "height 'H999"),
    "zero rate": (b"YUV4MPEG2 W4 H2 F0:1\n", "frame rate 'F0:1' is not a positive number"),
    "zero denominator": (b"YUV4MPEG2 W4 H2 F25:0\n", "frame rate 'F25:0' is not a positive number"),
    "rate without denominator": (b"YUV4MPEG2 W4 H2 F25\n", "frame rate 'F25' is not F<num>:<den>"),
    "negative rate": (b"YUV4MPEG2 W4 H2 F-25:1\n", "frame rate 'F-25:1' is not F<num>:<den>"),
    "decimal rate": (b"YUV4MPEG2 W4 H2 F29.97:1\n", "is not F<num>:<den>"),
    "top field first": (b"YUV4MPEG2 W4 H2 F25:1 It\n", "interlaced y4m ('It') is not supported"),
    "bottom field first": (b"YUV4MPEG2 W4 H2 F25:1 Ib\n", "interlaced y4m ('Ib') is not supported"),
    "mixed interlacing": (b"YUV4MPEG2 W4 H2 F25:1 Im\n", "interlaced y4m ('Im') is not supported"),
    "unknown interlacing": (b"YUV4MPEG2 W4 H2 F25:1 Ix\n", "interlacing 'Ix' is not one of"),
    "10-bit": (b"YUV4MPEG2 W4 H2 F25:1 C420p10\n", "colour space 'C420p10' is not supported: only 8-bit"),
    "16-bit mono": (b"YUV4MPEG2 W4 H2 F25:1 Cmono16\n", "'Cmono16' is not supported"),
    "alpha": (b"YUV4MPEG2 W4 H2 F25:1 C444alpha\n", "'C444alpha' is not supported"),
    "4:1:1": (b"YUV4MPEG2 W4 H2 F25:1 C411\n", "'C411' is not supported"),
    "unknown chroma": (b"YUV4MPEG2 W4 H2 F25:1 Cbanana\xff\n", "'Cbanana\\xff' is not supported"),
    "too long": (b"YUV4MPEG2 W4 H2 F25:1 X" + b"a" * MAX_HEADER_BYTES, "header is longer than 4096 bytes"),
    "ends in the magic": (b"YUV4M", "ends inside its header"),
    "ends before its newline": (b"YUV4MPEG2 W4 H2 F25:1", "ends inside its header"),
}


@pytest.mark.parametrize("data, fragment", MALFORMED_HEADERS.values(), ids=MALFORMED_HEADERS.keys())
def test_malformed_header(data, fragment):
    with pytest.raises(InputError) as info:
        read_header(io.BytesIO(data), "in.y4m")
    assert str(info.value).startswith("in.y4m: ") and "\n" not in str(info.value)
    assert fragment in str(info.value)
    assert fragment in _input_error(data, "in.y4m")  # the reader says the same


def test_header_of_exactly_the_limit_is_read():
    line = b"YUV4MPEG2 W4 H2 F25:1 X"
    line += b"a" * (MAX_HEADER_BYTES - len(line) - 1) + b"\n"
    assert len(line) == MAX_HEADER_BYTES
    assert read_header(io.BytesIO(line)).width == 4


def test_mutated_headers_raise_only_input_errors():
    """Any byte of a header replaced by any of a few values: a header or an InputError, nothing else."""
    header = b"YUV4MPEG2 W4 H2 F25:1 Ip A1:1 C420jpeg XCOLORRANGE=FULL\n"
    for i in range(len(header)):
        for byte in b"\x00\n 9:-FpCWX\xff":
            data = header[:i] + bytes([byte]) + header[i + 1:]
            try:
                read_header(io.BytesIO(data), "m")
            except InputError as err:
                assert str(err).startswith("m: ") and "\n" not in str(err)


# ------------------------------------------------------------------------------------------------ frames


def test_tiny_stream_planes_and_counts():
    data = _tiny(2, b"FRAME Ixyz Xsomething\n")  # FRAME parameters are allowed and ignored
    reader, frames = _read(data)
    assert frames.shape == (2, 2, 4, 3) and frames.dtype == np.uint8
    assert (reader.frames_read, reader.bytes_read) == (2, len(data))
    y = np.arange(8, dtype=np.uint8).reshape(2, 4)
    cb, cr = np.array([[8, 9]], np.uint8), np.array([[10, 11]], np.uint8)
    assert np.array_equal(frames[0], yuv_to_rgb(y, cb, cr, reader.header))


def test_header_without_frames_yields_nothing():
    reader, frames = _read(TINY_HEADER)
    assert frames is None and reader.frames_read == 0 and reader.bytes_read == len(TINY_HEADER)


def test_read_only_once():
    reader = Y4mReader(io.BytesIO(_tiny()), "once.y4m")
    assert len(list(reader)) == 2
    with pytest.raises(InputError, match=r"^once\.y4m: a y4m stream can be read only once$"):
        iter(reader)


def test_counts_grow_frame_by_frame():
    reader = Y4mReader(io.BytesIO(_tiny(3)))
    assert (reader.frames_read, reader.bytes_read) == (0, len(TINY_HEADER))
    it = iter(reader)
    next(it)
    assert (reader.frames_read, reader.bytes_read) == (1, len(TINY_HEADER) + 6 + TINY_PLANES)


FRAME_SIZE = 6 + TINY_PLANES  # b"FRAME\n" and the planes
H = len(TINY_HEADER)
TRUNCATIONS = {  # id: (bytes kept of the 2-frame tiny stream, message fragment or the frames read cleanly)
    "nothing": (0, "empty, not a YUV4MPEG2"),
    "in the magic": (4, "ends inside its header"),
    "in the header": (H - 5, "ends inside its header"),
    "before the header's newline": (H - 1, "ends inside its header"),
    "after the header": (H, 0),
    "in the first FRAME line": (H + 3, f"y4m stream ends in the middle of frame 0 (got 3 of {FRAME_SIZE} bytes)"),
    "before the FRAME newline": (H + 5, f"ends in the middle of frame 0 (got 5 of {FRAME_SIZE} bytes)"),
    "after the first FRAME line": (H + 6, f"ends in the middle of frame 0 (got 6 of {FRAME_SIZE} bytes)"),
    "in the first Y plane": (H + 9, f"ends in the middle of frame 0 (got 9 of {FRAME_SIZE} bytes)"),
    "in the first Cr plane": (H + FRAME_SIZE - 1,
                              f"ends in the middle of frame 0 (got {FRAME_SIZE - 1} of {FRAME_SIZE} bytes)"),
    "after the first frame": (H + FRAME_SIZE, 1),
    "in the second FRAME line": (H + FRAME_SIZE + 1, f"ends in the middle of frame 1 (got 1 of {FRAME_SIZE} bytes)"),
    "in the second frame's planes": (H + 2 * FRAME_SIZE - 4,
                                     f"ends in the middle of frame 1 (got {FRAME_SIZE - 4} of {FRAME_SIZE} bytes)"),
    "whole": (H + 2 * FRAME_SIZE, 2),
}


@pytest.mark.parametrize("keep, expected", TRUNCATIONS.values(), ids=TRUNCATIONS.keys())
def test_truncated_stream(keep, expected):
    data = _tiny(2)[:keep]
    if isinstance(expected, int):
        reader, frames = _read(data)
        assert reader.frames_read == expected and reader.bytes_read == keep
    else:
        assert expected in _input_error(data, "cut.y4m")


def test_truncated_at_every_offset():
    """Cut anywhere, with FRAME parameters too: either the whole frames before the cut or a one-line InputError."""
    data = TINY_HEADER + b"FRAME\n" + bytes(TINY_PLANES) + b"FRAME Ip Xx=y\n" + bytes(TINY_PLANES)
    whole = {len(TINY_HEADER): 0, len(TINY_HEADER) + FRAME_SIZE: 1, len(data): 2}
    for keep in range(len(data) + 1):
        if keep in whole:
            assert _read(data[:keep])[0].frames_read == whole[keep]
        else:
            _input_error(data[:keep], "cut.y4m")


def test_truncated_frame_line_with_parameters_counts_them():
    data = TINY_HEADER + b"FRAME Ixyz"
    assert f"(got 10 of {11 + TINY_PLANES} bytes)" in _input_error(data)


BAD_FRAME_LINES = {  # id: (what stands where a FRAME line should, message fragment)
    "garbage": (b"GARBAGE\n", "expected a y4m FRAME line for frame 1 at byte 52, found 'GARBAGE\\n'"),
    "lower case": (b"frame\n", "expected a y4m FRAME line for frame 1"),
    "glued parameter": (b"FRAMEX\n", "found 'FRAMEX\\n'"),
    "almost FRAME": (b"FRAM\n", "found 'FRAM\\n'"),
    "carriage return": (b"FRAME\r\n", "found 'FRAME\\r\\n'"),
    "second header": (b"YUV4MPEG2 W4 H2 F25:1\n", "found 'YUV4MPEG2 W4 H2 F25:1\\n'"),
    "binary": (bytes(range(200)), "found '\\x00\\x01\\x02"),
    "too long": (b"FRAME " + b"x" * MAX_HEADER_BYTES, "the FRAME line of y4m frame 1 is longer than 4096 bytes"),
}


@pytest.mark.parametrize("line, fragment", BAD_FRAME_LINES.values(), ids=BAD_FRAME_LINES.keys())
def test_garbage_instead_of_frame(line, fragment):
    data = _tiny(1) + line + bytes(TINY_PLANES)
    assert fragment in _input_error(data, "bad.y4m")


def test_frames_too_long_for_the_header():
    """Extra bytes after a frame's planes stand where the next FRAME line should."""
    data = TINY_HEADER + b"FRAME\n" + bytes(TINY_PLANES + 1) + b"FRAME\n" + bytes(TINY_PLANES)
    assert "expected a y4m FRAME line for frame 1" in _input_error(data)


# ------------------------------------------------------------------------------------ streams and pipes


class Trickle(io.RawIOBase):
    """A real unbuffered stream that hands out at most ``step`` bytes per read, like a slow pipe."""

    def __init__(self, data: bytes, step: int = 7):
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.step, len(self.data) - self.pos)
        buffer[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def test_short_reads():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 9, 11, 3), dtype=np.uint8)
    buf = io.BytesIO()
    write_y4m(buf, frames, 25, "444")
    reader = Y4mReader(Trickle(buf.getvalue()), "trickle")
    got = np.stack(list(reader))
    assert np.array_equal(got, _read(buf.getvalue())[1]) and reader.bytes_read == len(buf.getvalue())


@needs_ffmpeg
@pytest.mark.parametrize("bufsize", [0, -1], ids=["raw pipe", "buffered pipe"])
def test_read_from_ffmpeg_pipe(bufsize):
    args = ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
            "-frames:v", "6", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-"]
    expected = _read(_ffmpeg(args[4:]))[1]
    with subprocess.Popen(args, stdout=subprocess.PIPE, bufsize=bufsize) as proc:
        reader = Y4mReader(proc.stdout, "pipe")
        frames = np.stack(list(reader))
    assert proc.returncode == 0
    assert reader.frames_read == 6 and np.array_equal(frames, expected)


def test_first_frame_comes_before_the_rest_is_written():
    """Frames are yielded as they arrive: the writer sends the second only after the first has been yielded."""
    header = b"YUV4MPEG2 W640 H480 F25:1 C444\n"
    frame = b"FRAME\n" + bytes(640 * 480 * 3)  # far bigger than a pipe's buffer
    read_fd, write_fd = os.pipe()
    first_yielded = threading.Event()
    waited: list[bool] = []

    def feed():
        with open(write_fd, "wb") as pipe:
            pipe.write(header + frame)
            pipe.flush()
            waited.append(first_yielded.wait(timeout=60))  # False only if the reader wanted more first
            pipe.write(frame)

    feeder = threading.Thread(target=feed)
    feeder.start()
    with open(read_fd, "rb") as pipe:
        it = iter(Y4mReader(pipe, "pipe"))
        first = next(it)
        first_yielded.set()
        rest = list(it)
    feeder.join()
    assert waited == [True]
    assert first.shape == (480, 640, 3) and len(rest) == 1


# ------------------------------------------------------------------------------ colour, against FFmpeg

# (pix_fmt, size) -> the largest and the mean absolute difference allowed between Y4mReader's frames and ffmpeg's
# own rgb24 conversion of the same y4m. Measured with FFmpeg 5.1 (Debian 12, x86-64 with AVX2), 5 frames of
# testsrc2; the bounds leave a little room over the measurement given in each comment (max / mean).
READ_BOUNDS = {
    # even height: swscale's fast path, chroma repeated, in truncating fixed point (FFmpeg is often 1 low)
    ("yuv420p", "66x50"): (3, 1.0),  # 3 / 0.72
    ("yuvj420p", "66x50"): (3, 0.6),  # 2 / 0.34
    ("yuv422p", "66x50"): (3, 1.0),  # 3 / 0.73
    ("yuvj422p", "66x50"): (3, 0.6),  # 2 / 0.37
    ("yuv420p", "33x24"): (3, 1.0),  # 3 / 0.83
    # odd height and width: swscale's general scaler, bicubic chroma both ways, exactly rounded
    ("yuv420p", "33x25"): (5, 0.2),  # 4 / 0.056
    ("yuvj420p", "33x25"): (6, 0.2),  # 5 / 0.085
    ("yuv422p", "33x25"): (3, 0.2),  # 2 / 0.019
    ("yuvj422p", "33x25"): (3, 0.2),  # 2 / 0.028
    ("yuv420p", "63x47"): (6, 0.2),  # 5 / 0.033
    # odd height, even width: bicubic vertically, repeated horizontally, truncating fixed point again
    ("yuv420p", "32x25"): (5, 1.2),  # 4 / 1.03
    ("yuvj420p", "32x25"): (4, 0.6),  # 3 / 0.32
    ("yuv422p", "32x25"): (4, 1.2),  # 3 / 1.05
    # 4:4:4: no resampling, rounding only
    ("yuv444p", "66x50"): (1, 0.01),  # 1 / 0.0003
    ("yuv444p", "33x25"): (1, 0.01),  # 1 / 0.001
    ("yuvj444p", "33x25"): (1, 0.01),  # 0 / 0
    # mono: Y copied to R, G and B, exactly as FFmpeg does
    ("gray", "66x50"): (0, 0.0),
    ("gray", "33x25"): (0, 0.0),
}


@needs_ffmpeg
@pytest.mark.parametrize("pix_fmt, size", READ_BOUNDS.keys(), ids=[f"{p}-{s}" for p, s in READ_BOUNDS])
def test_read_matches_ffmpeg(pix_fmt, size):
    data = _source_y4m(size, pix_fmt)
    reader, frames = _read(data)
    w, h = map(int, size.split("x"))
    assert (reader.header.width, reader.header.height, reader.frames_read) == (w, h, 5)
    assert reader.bytes_read == len(data)
    d = _diff(frames, _ffmpeg_rgb(data, frames.shape))
    top, mean = READ_BOUNDS[pix_fmt, size]
    assert d.max() <= top and d.mean() <= mean, (d.max(), d.mean())


@needs_ffmpeg
@pytest.mark.parametrize("size", ["66x50", "33x25"])
@pytest.mark.parametrize("tag", [b"C420mpeg2", b"C420paldv", b"C420", b""])
def test_other_420_sitings_are_read_as_ffmpeg_reads_them(tag, size):
    """FFmpeg 5.1 ignores the siting when it converts to RGB; so does the reader."""
    jpeg = _source_y4m(size, "yuv420p")
    assert b" C420jpeg " in jpeg[:100]
    data = jpeg.replace(b" C420jpeg", b" " + tag if tag else b"", 1)
    reader, frames = _read(data)
    assert reader.header.chroma == (tag[1:].decode() or "420jpeg")
    assert np.array_equal(frames, _read(jpeg)[1])
    d = _diff(frames, _ffmpeg_rgb(data, frames.shape))
    top, mean = READ_BOUNDS["yuv420p", size]
    assert d.max() <= top and d.mean() <= mean


@needs_ffmpeg
@pytest.mark.parametrize("size", ["66x50", "33x25"])
def test_full_range_read_matches_ffmpeg(size):
    """yuv420p converted to full range and tagged so (-color_range pc): XCOLORRANGE=FULL, read as FFmpeg reads it."""
    data = _source_y4m(size, "yuv420p", extra=("-vf", "scale=out_range=pc", "-color_range", "pc"))
    reader, frames = _read(data)
    assert reader.header.full_range and b"XCOLORRANGE=FULL" in data[:100]
    d = _diff(frames, _ffmpeg_rgb(data, frames.shape))
    top, mean = READ_BOUNDS["yuvj420p", size]
    assert d.max() <= top and d.mean() <= mean, (d.max(), d.mean())
    limited = _read(data.replace(b" XCOLORRANGE=FULL", b"", 1))[1]
    assert _diff(frames, limited).mean() > 2  # the tag matters (3.5 measured)


@needs_ffmpeg
@pytest.mark.parametrize("range_tag", [b" XCOLORRANGE=FULL", b" XCOLORRANGE=LIMITED", b""])
def test_mono_is_copied_whatever_the_range_tag(range_tag):
    """FFmpeg writes gray y4m as XCOLORRANGE=FULL and turns gray into RGB unchanged whatever the tag says."""
    data = _source_y4m("33x25", "gray")
    assert b" Cmono XCOLORRANGE=FULL\n" in data[:100]
    data = data.replace(b" XCOLORRANGE=FULL", range_tag, 1)
    reader, frames = _read(data)
    assert reader.header.chroma == "mono"
    assert np.array_equal(frames, _ffmpeg_rgb(data, frames.shape))
    assert np.array_equal(frames[..., 0], frames[..., 1]) and np.array_equal(frames[..., 0], frames[..., 2])


@needs_ffmpeg
@pytest.mark.parametrize("size", ["66x50", "33x25"])
@pytest.mark.parametrize("chroma", WRITE_CHROMA)
def test_ffmpeg_reads_what_the_writer_writes(chroma, size):
    """Y4mWriter's frames as FFmpeg decodes them, against the RGB frames written (and against Y4mReader).

    Measured with FFmpeg 5.1, 5 frames of testsrc2 (max / mean against the frames written):
    4:4:4 1 / 0.36 (66x50), 1 / 0.30 (33x25): 8-bit limited-range YCbCr alone costs that.
    mono: exactly the BT.601 luma, rounded.
    4:2:0 0.90 (66x50), 7.6 (33x25, sharp colour edges everywhere); 4:2:2 0.84, 6.3: chroma subsampling loss,
    no more than FFmpeg's own rgb24 -> yuv420p/yuv422p -> rgb24 round trip loses (2.2 and 10.2; 0.81 and 9.7).
    """
    rgb = _source_rgb(size)
    buf = io.BytesIO()
    assert write_y4m(buf, rgb, 25, chroma) == 5
    data = buf.getvalue()
    theirs = _ffmpeg_rgb(data, rgb.shape)
    if chroma == "444":
        d = _diff(theirs, rgb)
        assert d.max() <= 1 and d.mean() < 0.5, (d.max(), d.mean())
    elif chroma == "mono":
        luma = np.rint(rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)  # [t, h, w]
        assert np.array_equal(theirs, np.repeat(luma[..., None], 3, axis=3))
    else:
        pix_fmt = "yuv420p" if chroma == "420jpeg" else "yuv422p"
        w, h = size.split("x")
        ffmpeg_round_trip = _ffmpeg(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25", "-i", "-",
                                     "-pix_fmt", pix_fmt, "-f", "yuv4mpegpipe", "-"], rgb.tobytes())
        ffmpeg_loss = _diff(_ffmpeg_rgb(ffmpeg_round_trip, rgb.shape), rgb).mean()
        loss = _diff(theirs, rgb).mean()
        assert loss <= ffmpeg_loss + 0.1, (loss, ffmpeg_loss)
    # and Y4mReader reads the writer's stream as FFmpeg does
    pix_fmt = {"420jpeg": "yuv420p", "422": "yuv422p", "444": "yuv444p", "mono": "gray"}[chroma]
    top, mean = READ_BOUNDS[pix_fmt, size]
    d = _diff(_read(data)[1], theirs)
    assert d.max() <= top and d.mean() <= mean, (d.max(), d.mean())


# ------------------------------------------------------------------------------------ colour, by itself


@pytest.mark.parametrize("rgb, yuv", [
    ((0, 0, 0), (16, 128, 128)),
    ((255, 255, 255), (235, 128, 128)),
    ((255, 0, 0), (81, 90, 240)),  # BT.601 limited-range red, green and blue
    ((0, 255, 0), (145, 54, 34)),
    ((0, 0, 255), (41, 240, 110)),
])
def test_rgb_to_yuv_primaries(rgb, yuv):
    frame = np.full((3, 5, 3), rgb, np.uint8)
    y, cb, cr = rgb_to_yuv(frame, "444")
    assert (y[0, 0], cb[0, 0], cr[0, 0]) == yuv
    header = Y4mHeader(5, 3, Fraction(25), "444", False, (0, 0))
    assert _diff(yuv_to_rgb(y, cb, cr, header), frame).max() <= 1  # 8-bit YCbCr is not exact (red comes back 254)
    y, cb, cr = rgb_to_yuv(frame, "444", full_range=True)
    assert y[0, 0] == round(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def test_rgb_to_yuv_subsamples_by_block_means():
    frame = np.zeros((3, 5, 3), np.uint8)
    frame[:, :, 2] = [[0, 200, 0, 100, 40], [0, 0, 0, 100, 40], [60, 60, 0, 0, 80]]  # blue: Cb = 128 + 0.439 B
    y, cb, cr = rgb_to_yuv(frame, "420jpeg")
    assert y.shape == (3, 5) and cb.shape == cr.shape == (2, 3)  # [ceil(h/2), ceil(w/2)]
    blue = np.array([[50, 50, 40], [60, 0, 80]])  # 2x2 means, the last row and column repeated
    assert np.array_equal(cb, np.rint(128 + blue * 112 / 255).astype(np.uint8))
    y, cb, cr = rgb_to_yuv(frame, "422")
    assert cb.shape == (3, 3) and cb[2, 0] == round(128 + 60 * 112 / 255)
    y, cb, cr = rgb_to_yuv(frame, "mono")
    assert cb is None and cr is None and y.shape == (3, 5)


def test_writer_then_reader_without_ffmpeg():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (2, 7, 9, 3), dtype=np.uint8)
    buf = io.BytesIO()
    write_y4m(buf, rgb, 16, "444")
    assert _diff(_read(buf.getvalue())[1], rgb).max() <= 2  # 8-bit limited-range YCbCr (worst case 2)
    smooth = np.broadcast_to(np.linspace(0, 255, 9)[None, None, :, None] * [1, 0.5, 0.2], (2, 7, 9, 3))
    smooth = np.rint(smooth).astype(np.uint8)
    buf = io.BytesIO()
    write_y4m(buf, smooth, 16, "420jpeg")
    assert _diff(_read(buf.getvalue())[1], smooth).max() <= 12  # a ramp loses little to 4:2:0


# ----------------------------------------------------------------------------------------------- writer


@pytest.mark.parametrize("fps, tag", [
    (16, b"F16:1"), (16.0, b"F16:1"), (25, b"F25:1"), (12.5, b"F25:2"), (29.97, b"F30000:1001"),
    (30000 / 1001, b"F30000:1001"), (23.976, b"F24000:1001"), (59.94, b"F60000:1001"),
    (Fraction(24000, 1001), b"F24000:1001"), (np.float32(25.0), b"F25:1"), (np.int64(8), b"F8:1"),
])
def test_writer_rate(fps, tag):
    buf = io.BytesIO()
    Y4mWriter(buf, 4, 2, fps)
    assert buf.getvalue() == b"YUV4MPEG2 W4 H2 " + tag + b" Ip A1:1 C420jpeg XCOLORRANGE=LIMITED\n"
    assert y4m_rate(fps) == Fraction(*map(int, tag[1:].split(b":")))


@pytest.mark.parametrize("chroma, line", [
    ("420jpeg", b"YUV4MPEG2 W33 H25 F16:1 Ip A1:1 C420jpeg XCOLORRANGE=LIMITED\n"),
    ("422", b"YUV4MPEG2 W33 H25 F16:1 Ip A1:1 C422 XCOLORRANGE=LIMITED\n"),
    ("444", b"YUV4MPEG2 W33 H25 F16:1 Ip A1:1 C444 XCOLORRANGE=LIMITED\n"),
    ("mono", b"YUV4MPEG2 W33 H25 F16:1 Ip A1:1 Cmono XCOLORRANGE=FULL\n"),
])
def test_writer_golden_bytes(chroma, line):
    buf = io.BytesIO()
    writer = Y4mWriter(buf, 33, 25, 16, chroma)
    assert buf.getvalue() == line and writer.header.to_line() == line and writer.frames_written == 0
    frame = np.full((25, 33, 3), 255, np.uint8)
    writer.write(frame)
    writer.write(frame)
    size = writer.header.frame_bytes()
    assert writer.frames_written == 2 and writer.bytes_written == len(buf.getvalue()) == len(line) + 2 * (6 + size)
    first = buf.getvalue()[len(line):len(line) + 6 + size]
    assert first[:6] == b"FRAME\n"
    expected_y = 255 if chroma == "mono" else 235
    assert set(first[6:6 + 33 * 25]) == {expected_y} and set(first[6 + 33 * 25:]) <= {128}


def test_writer_to_a_raw_pipe():
    """An unbuffered pipe may take part of a write; everything still arrives."""
    rgb = np.random.default_rng(2).integers(0, 256, (2, 200, 300, 3), dtype=np.uint8)
    read_fd, write_fd = os.pipe()
    received = []

    def drain():
        with open(read_fd, "rb") as pipe:
            received.append(pipe.read())

    reader = threading.Thread(target=drain)
    reader.start()
    with open(write_fd, "wb", buffering=0) as pipe:
        assert write_y4m(pipe, rgb, 25, "444") == 2
    reader.join()
    expected = io.BytesIO()
    write_y4m(expected, rgb, 25, "444")
    assert received == [expected.getvalue()]


@pytest.mark.parametrize("frame", [
    np.zeros((25, 33), np.uint8),
    np.zeros((25, 33, 4), np.uint8),
    np.zeros((25, 33, 3), np.float32),
    np.zeros((24, 33, 3), np.uint8),  # another size than the header's
    np.zeros((25, 34, 3), np.uint8),
], ids=["gray", "rgba", "float", "shorter", "wider"])
def test_writer_refuses_wrong_frames(frame):
    buf = io.BytesIO()
    writer = Y4mWriter(buf, 33, 25, 16)
    with pytest.raises(ValueError, match="^frame 0"):
        writer.write(frame)
    assert writer.frames_written == 0 and buf.getvalue() == writer.header.to_line()


def test_write_y4m_refuses_frames_of_another_size():
    frames = [np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6, 3), np.uint8), np.zeros((6, 4, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"^frame 2 is 4x6, the y4m header says 6x4$"):
        write_y4m(io.BytesIO(), frames, 25)


def test_write_y4m_without_frames():
    buf = io.BytesIO()
    with pytest.raises(ValueError, match="no frames"):
        write_y4m(buf, iter([]), 25)
    assert buf.getvalue() == b""
    with pytest.raises(ValueError, match="^frame 0"):
        write_y4m(buf, [np.zeros((4, 6), np.uint8)], 25)


@pytest.mark.parametrize("kwargs, option", [
    ({"width": 0}, "width"), ({"width": MAX_SIDE + 1}, "width"), ({"height": 2.5}, "height"),
    ({"height": True}, "height"), ({"fps": 0}, "fps"), ({"fps": -25.0}, "fps"), ({"fps": float("nan")}, "fps"),
    ({"fps": float("inf")}, "fps"), ({"fps": "25"}, "fps"), ({"fps": 1e-9}, "fps"), ({"chroma": "420p10"}, "chroma"),
    ({"chroma": "411"}, "chroma"),
])
def test_writer_refuses_bad_arguments(kwargs, option):
    args = {"width": 4, "height": 2, "fps": 25, "chroma": "420jpeg", **kwargs}
    buf = io.BytesIO()
    with pytest.raises(UsageError) as info:
        Y4mWriter(buf, **args)
    assert info.value.option == option and str(info.value).startswith(option)
    assert buf.getvalue() == b""


def test_frames_not_wanted_are_read_past_unconverted():
    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(5)]
    buf = io.BytesIO()
    write_y4m(buf, frames, 25)
    every = list(Y4mReader(io.BytesIO(buf.getvalue())))
    reader = Y4mReader(io.BytesIO(buf.getvalue()))
    some = list(reader.frames(lambda i: i % 2 == 0))
    assert [f is None for f in some] == [False, True, False, True, False]
    assert all(np.array_equal(a, b) for a, b in zip(every[::2], some[::2]))
    assert reader.frames_read == 5 and reader.bytes_read == len(buf.getvalue())
    with pytest.raises(InputError, match="only once"):
        reader.frames()
