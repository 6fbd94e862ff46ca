"""How faithful is each video output to the frames msvq decodes? PSNR of .mp4/.avi/.mkv against the exact
(.npy) reconstruction of the same file, for H.264 CRF and preset choices, at 64x64 and at the source size.

    python benchmarks/output-quality/mp4_quality.py VIDEO... [--crf 1 8 10 12 14 18 23] [--preset medium veryfast]

Each input is encoded with the shipped weights and decoded exactly (in memory) at 64x64 and at the source size
(what ``--size source`` writes). Each candidate is written the way ``msvq decode`` would write it and read back
two ways: ffmpeg (rgb24, as a player converts) and OpenCV (as ``msvq encode``/``bench`` read videos). PSNR is
per frame, averaged over frames, then over videos; size is bits per pixel of the output file; time is the
writer's wall time over all videos (noisy on a shared machine: compare within one run only).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from msvq_codec import codec
from msvq_codec.metrics import clip_psnr
from msvq_codec.video import iter_frames, resize_frame
from msvq_codec.video import write as vw


def ffmpeg_rgb(path: Path, w: int, h: int) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def h264(path: Path, frames: np.ndarray, crf: int, preset: str, pix_fmt: str = "yuv420p") -> None:
    saved = vw.H264_CRF, vw.H264_PRESET, vw.H264_PIX_FMT
    vw.H264_CRF, vw.H264_PRESET, vw.H264_PIX_FMT = crf, preset, pix_fmt
    try:
        vw.write_video(path, frames, fps=16)
    finally:
        vw.H264_CRF, vw.H264_PRESET, vw.H264_PIX_FMT = saved


def opencv(path: Path, frames: np.ndarray, fourcc: str) -> None:
    vw._write_cv2(path, path.suffix, iter(frames), 16.0, fourcc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--crf", type=int, nargs="+", default=[1, 8, 10, 12, 14, 18, 23])
    ap.add_argument("--preset", nargs="+", default=["medium", "veryfast"])
    args = ap.parse_args()
    loaded = codec.load_model(device="cpu")
    refs: dict[str, list[np.ndarray]] = {"64x64": [], "source": []}
    for video in args.videos:
        header, data = codec.encode_to_bytes(video, loaded)
        frames = codec.roundtrip_bytes(data, loaded)
        refs["64x64"].append(frames)
        w, h = header.source_width + header.source_width % 2, header.source_height + header.source_height % 2
        refs["source"].append(np.stack([resize_frame(f, w, h) for f in frames]))
    n = sum(len(f) for f in refs["64x64"])
    print(f"{len(args.videos)} videos, {n} frames at 16 fps; PSNR against the exact decode (per frame, mean)")

    candidates: list[tuple[str, str, object]] = [
        ("mp4v (OpenCV MPEG-4 Part 2)", ".mp4", lambda p, f: opencv(p, f, "mp4v")),
        ("MJPG (OpenCV, .avi)", ".avi", lambda p, f: opencv(p, f, "MJPG")),
        ("FFV1 (.mkv)", ".mkv", lambda p, f: vw.write_video(p, f, fps=16)),
        ("H.264 yuv444p CRF 0 (lossless, not for browsers)", ".mp4", lambda p, f: h264(p, f, 0, "medium", "yuv444p")),
        ("uncompressed yuv420p (the ceiling of 4:2:0 chroma)", ".mkv", lambda p, f: vw._write_ffmpeg(
            p, iter(f), 16.0, ["-c:v", "rawvideo", "-pix_fmt", "yuv420p", *vw.H264_COLOUR], even=True)),
    ]
    for preset in args.preset:
        for crf in args.crf:
            candidates.append((f"H.264 yuv420p CRF {crf} {preset}", ".mp4",
                               lambda p, f, c=crf, s=preset: h264(p, f, c, s)))  # fmt: skip
    print("| output | size | PSNR, read by ffmpeg (dB) | PSNR, read by OpenCV (dB) | bpp | write time (s) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, suffix, write in candidates:
            for size, clips in refs.items():
                psnr_ff, psnr_cv, bits, pixels, seconds = [], [], 0, 0, 0.0
                for i, frames in enumerate(clips):
                    path = Path(tmp) / f"{i}{suffix}"
                    path.unlink(missing_ok=True)
                    t0 = time.perf_counter()
                    write(path, frames)
                    seconds += time.perf_counter() - t0
                    h, w = frames.shape[1:3]
                    psnr_ff.append(clip_psnr(frames, ffmpeg_rgb(path, w, h)))
                    psnr_cv.append(clip_psnr(frames, np.stack(list(iter_frames(path, input_fps=16)))))
                    bits += path.stat().st_size * 8
                    pixels += frames.shape[0] * h * w
                print(f"| {name} | {size} | {np.mean(psnr_ff):.2f} | {np.mean(psnr_cv):.2f} | "
                      f"{bits / pixels:.3f} | {seconds:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
