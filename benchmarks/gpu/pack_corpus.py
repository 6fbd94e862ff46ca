"""Pack a training corpus for a remote accelerator: every training video as msvq's own training cache would
hold it (16 fps, squashed to SIZE x SIZE), stored as near-lossless H.264 (RGB, no chroma subsampling) so that
a corpus of 200 MB of source video travels in a few tens of MB. The remote machine's ``msvq train`` reads the
packed files like any videos: their frames are already at 16 fps and the cache size, so msvq's reader passes
them through unchanged (up to the H.264 rounding, which this script reports as PSNR against the exact frames).

    python benchmarks/gpu/pack_corpus.py ../shared/data .gpu/corpus --exclude-official 1 --size 96 --crf 12

Videos named in UCF101's testlist0K.txt (the dev set) are left out of the training set with
``--exclude-official K`` and copied unchanged into ``OUT/dev/`` for validation.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

FPS = 16.0  # the clip rate (ModelConfig.fps)
KEYFRAME_INTERVAL = "64"  # frames between keyframes: two clips
CODECS = {  # ffmpeg options of each packing codec; both keep full chroma resolution
    "x264rgb": ["-c:v", "libx264rgb", "-g", KEYFRAME_INTERVAL],  # RGB H.264: no colour conversion
    "x265-444": ["-c:v", "libx265", "-pix_fmt", "yuv444p", "-x265-params", f"log-level=error:keyint={KEYFRAME_INTERVAL}"],
    # HEVC 4:4:4: at the same size about 2.5 dB closer to the exact frames than x264rgb (8 cached videos:
    # CRF 22 gave 340 kB at 37.6 dB, x264rgb CRF 27 386 kB at 35.6 dB)
}


def _pack_one(job: tuple[Path, Path, int, int, str]) -> tuple[str, int, int, float]:
    from msvq_codec.video import iter_clips

    src, dst, size, crf, codec = job
    stream = iter_clips(src, fps=FPS, size=size)
    frames = np.concatenate(list(stream), axis=0)[: stream.frame_count]  # [N, S, S, 3] RGB uint8
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".partial.mkv")
    cmd = [
        "ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}", "-r", str(FPS),
        "-i", "-", *CODECS[codec], "-crf", str(crf), "-preset", "slow", str(tmp),
    ]  # fmt: skip
    subprocess.run(cmd, input=frames.tobytes(), check=True)
    import cv2

    cap = cv2.VideoCapture(str(tmp))
    back = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        back.append(bgr[:, :, ::-1])
    decoded = np.stack(back)
    if decoded.shape != frames.shape:
        raise RuntimeError(f"{src}: decoded {decoded.shape}, packed {frames.shape}")
    mse = float(np.mean((decoded.astype(np.float64) - frames) ** 2))
    tmp.rename(dst)
    return str(src), len(frames), dst.stat().st_size, 10 * np.log10(255**2 / max(mse, 1e-10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=96, help="frame side (msvq train's augmenting cache: 96)")
    parser.add_argument("--crf", type=int, default=12)
    parser.add_argument("--codec", choices=sorted(CODECS), default="x264rgb")
    parser.add_argument("--exclude-official", type=int, default=1, help="UCF101 testlist to hold out (0: none)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    from msvq_codec.train.data import _official_test_names
    from msvq_codec.video import find_inputs

    held_out = _official_test_names(args.data, args.exclude_official) if args.exclude_official else set()
    jobs = []
    for src in find_inputs(args.data):
        rel = src.relative_to(args.data)
        if src.stem in held_out:
            dev = args.out / "dev" / src.name
            dev.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dev)
            continue
        jobs.append((src, args.out / "train" / rel.with_suffix(".mkv"), args.size, args.crf, args.codec))
    total_frames = total_bytes = 0
    psnrs = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for name, n, nbytes, psnr in pool.map(_pack_one, jobs):
            total_frames, total_bytes = total_frames + n, total_bytes + nbytes
            psnrs.append((psnr, n))
            print(f"{nbytes / 1e6:7.2f} MB {n:6d} frames {psnr:6.2f} dB  {name}", flush=True)
    mean_psnr = sum(p * n for p, n in psnrs) / max(1, total_frames)
    bpp = 8 * total_bytes / max(1, total_frames * args.size**2)
    print(f"{len(jobs)} videos, {total_frames} frames, {total_bytes / 2**20:.1f} MiB, {bpp:.3f} bpp, "
          f"{mean_psnr:.2f} dB (frame-weighted mean PSNR against the exact frames); held out {len(held_out & {s.stem for s in find_inputs(args.data)})}")


if __name__ == "__main__":
    sys.exit(main())
