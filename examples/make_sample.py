"""Make the README's sample video: a slow camera pan and zoom over scikit-image's bundled photographs.

    python examples/make_sample.py sample.avi [--seconds 4]

320x240 at 25 fps, written as Motion JPEG (.avi) or MPEG-4 (.mp4). Deterministic: the same command
writes the same file. Needs only numpy, OpenCV and scikit-image (whose photographs ship with it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data

WIDTH, HEIGHT, FPS = 320, 240, 25
FOURCC = {".avi": "MJPG", ".mp4": "mp4v"}
FADE = 8  # frames of cross-fade between photographs

# (photo, start centre, end centre, start zoom, end zoom): centres as fractions of the photo,
# zoom as the fraction of the largest 4:3 window that fits in the photo.
SHOTS = [
    (data.astronaut, (0.45, 0.55), (0.55, 0.30), 1.00, 0.55),
    (data.coffee, (0.30, 0.50), (0.65, 0.45), 0.80, 0.95),
    (data.chelsea, (0.60, 0.50), (0.40, 0.40), 0.95, 0.60),
]


def render(photo: np.ndarray, centre, zoom: float) -> np.ndarray:
    """The 4:3 window of ``photo`` at ``centre`` (fractions) and ``zoom``, resampled to WIDTH x HEIGHT."""
    h, w = photo.shape[:2]
    win_w = min(w, h * WIDTH / HEIGHT) * zoom
    win_h = win_w * HEIGHT / WIDTH
    cx = np.clip(centre[0] * w, win_w / 2, w - win_w / 2)  # keep the window inside the photo
    cy = np.clip(centre[1] * h, win_h / 2, h - win_h / 2)
    scale = win_w / WIDTH  # source pixels per output pixel
    if scale > 1.2:  # soften first so the downscale does not alias
        photo = cv2.GaussianBlur(photo, (0, 0), 0.5 * scale)
    to_src = np.float32([[scale, 0, cx - win_w / 2], [0, scale, cy - win_h / 2]])
    return cv2.warpAffine(photo, to_src, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def shot_frame(shot, u: float) -> np.ndarray:
    """Frame of ``shot`` at progress ``u`` in [0, 1], with smooth (ease in/out) camera motion."""
    load, c0, c1, z0, z1 = shot
    s = u * u * (3 - 2 * u)
    centre = (c0[0] + (c1[0] - c0[0]) * s, c0[1] + (c1[1] - c0[1]) * s)
    return render(load(), centre, z0 + (z1 - z0) * s)


def frames(seconds: float):
    """Yield the sample's RGB uint8 frames."""
    n = max(1, round(seconds * FPS))
    per_shot = n / len(SHOTS)
    for t in range(n):
        i = min(int(t / per_shot), len(SHOTS) - 1)
        u = (t - i * per_shot) / per_shot
        frame = shot_frame(SHOTS[i], u).astype(np.float32)
        left = (i + 1) * per_shot - t  # frames until the next shot begins
        if i + 1 < len(SHOTS) and left <= FADE:
            alpha = 1 - left / (FADE + 1)
            frame = (1 - alpha) * frame + alpha * shot_frame(SHOTS[i + 1], 0.0)
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output video (.avi or .mp4)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length in seconds (default 4)")
    args = parser.parse_args(argv)
    fourcc = FOURCC.get(args.out.suffix.lower())
    if fourcc is None:
        parser.error("the output must end in .avi or .mp4")
    if not 0 < args.seconds <= 600:
        parser.error("--seconds must be in (0, 600]")
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter_fourcc(*fourcc), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        print(f"cannot write {args.out}", file=sys.stderr)
        return 1
    count = 0
    for frame in frames(args.seconds):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        count += 1
    writer.release()
    print(f"wrote {args.out}: {count} frames, {WIDTH}x{HEIGHT} at {FPS} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
