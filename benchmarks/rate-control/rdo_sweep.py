"""Rate control's lambda against file bits and PSNR: how the ``--quality`` presets were tuned (``msvq_codec.rdo``).

    python benchmarks/rate-control/rdo_sweep.py VIDEO... --lambdas 0,1,2,4,8 [--codec prior|context]
        [--passes 1,2] [--effort 0] [--json OUT]
    python benchmarks/rate-control/rdo_sweep.py --from SWEEP.json... --fractions 0.75,0.6,0.4,0.3

Each input is encoded as ``msvq encode`` encodes it (every clip, one file per video, with the prior, or the
context coder) with rate control at each lambda (and, for the context
coder, number of passes; the prior's chooser has one) (lambda 0: the nearest codes, ``--quality max``), decoded by
the unchanged decoder, and scored as ``msvq bench`` scores it: PSNR over the evaluated clips' real frames
(per frame, mean per clip, mean over clips); ``bpp`` = bits of the evaluated clips' own file per video over
their pixels (``msvq bench``'s per-video rate), ``file_bpp`` = the whole files' bits (``msvq encode``'s output,
the padded last clips included) over the pixels of the frames they return, ``file_bits`` per video. Also
the encode time (clips -> bytes, this machine) per setting.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from msvq_codec.runtime import configure_before_torch

configure_before_torch()

import numpy as np  # noqa: E402

from msvq_codec.bench.clips import iter_videos  # noqa: E402
from msvq_codec.codec import codes_to_bytes, container_indices, decode_clips, encode_clips  # noqa: E402
from msvq_codec.codec import load_model, rate_control, read_bytes  # noqa: E402
from msvq_codec.container import StreamCodec  # noqa: E402
from msvq_codec.metrics import clip_psnr  # noqa: E402
from msvq_codec.rdo import PRESETS, Preset  # noqa: E402


def run(loaded, videos, rd_lambda: float, passes: int, effort: int, codec: str = "prior") -> dict:
    setting = Preset("sweep", PRESETS["high"].id, rd_lambda, passes) if rd_lambda else PRESETS["max"]
    bits, pixels, psnrs, seconds, per_video = 0, 0, [], 0.0, {}
    eval_bits, eval_pixels = 0, 0
    for video in videos:
        started = time.perf_counter()
        choose, refine = rate_control(loaded, setting, effort, StreamCodec[codec.upper()])  # one per file
        indices = encode_clips(loaded, [c.frames for c in video.clips], choose=choose, refine=refine)
        _, data = codes_to_bytes(loaded, indices, video.frame_count, video.info, codec=codec, quality=setting)
        seconds += time.perf_counter() - started
        decoded = container_indices(read_bytes(data), loaded)  # the file, as the decoder reads it
        assert all(np.array_equal(a, b) for a, b in zip(decoded, indices))
        frames = np.concatenate(list(decode_clips(loaded, decoded)))
        size = loaded.model.config.clip_size
        bits += 8 * len(data)
        pixels += video.frame_count * size * size
        per_video[Path(video.path).name] = 8 * len(data)
        n, real = len(video.selected), sum(c.real_frames for c in video.selected)
        prefix = codes_to_bytes(loaded, tuple(a[:n] for a in indices), real, video.info, codec=codec,
                                quality=setting)[1]  # fmt: skip
        eval_bits += 8 * len(prefix)  # as msvq bench's per-video stream: the evaluated clips' own file
        eval_pixels += real * size * size
        for clip in video.selected:
            start = clip.index * loaded.model.config.clip_frames
            psnrs.append(clip_psnr(clip.real, frames[start : start + clip.real_frames]))
    frames_total = pixels // (loaded.model.config.clip_size ** 2)
    return {"codec": codec, "rd_lambda": rd_lambda, "passes": passes, "effort": effort, "bpp": eval_bits / eval_pixels,
            "file_bpp": bits / pixels,
            "psnr": float(np.mean(psnrs)), "clips": len(psnrs), "file_bits": per_video,
            "encode_frames_per_s": frames_total / seconds}  # fmt: skip


def lambdas_for(rows: list[dict], fractions: list[float]) -> dict[float, float]:
    """For each fraction of lambda 0's bpp, the lambda that lands on it: log bpp against log lambda, linear
    between the two swept lambdas around it (rows of one codec, passes and effort, lambda 0 among them)."""
    base = next(r["bpp"] for r in rows if r["rd_lambda"] == 0)
    swept = sorted((r["rd_lambda"], r["bpp"] / base) for r in rows if r["rd_lambda"] > 0)
    found = {}
    for f in fractions:
        for (l0, f0), (l1, f1) in zip(swept, swept[1:]):
            if f1 <= f <= f0:
                w = np.log(f0 / f) / np.log(f0 / f1)
                found[f] = float(np.exp(np.log(l0) + w * np.log(l1 / l0)))
                break
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="*", type=Path)
    ap.add_argument("--fractions", help="with --from: print the lambdas landing on these fractions of max's bpp")
    ap.add_argument("--from", dest="sweeps", nargs="+", type=Path, default=[], help="sweep JSON files to read")
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--lambdas", default="0,1,2,4,8")
    ap.add_argument("--passes", default="1")
    ap.add_argument("--effort", default="0", help="comma-separated refinement steps")
    ap.add_argument("--codec", default="prior", choices=("prior", "context"), help="whose bits rate control counts")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.sweeps:
        rows = [r for path in args.sweeps for r in json.loads(path.read_text())["rows"]]
        rows = sorted({r["rd_lambda"]: r for r in rows}.values(), key=lambda r: r["rd_lambda"])
        base = next(r["bpp"] for r in rows if r["rd_lambda"] == 0)
        for r in rows:
            print(f"lambda {r['rd_lambda']:g}: {r['bpp']:.4f} bpp ({r['bpp'] / base:.3f}x max), {r['psnr']:.2f} dB")
        for f, lam in lambdas_for(rows, [float(v) for v in (args.fractions or "").split(",") if v]).items():
            print(f"{f:g}x max: lambda {lam:.0f}")
        return
    loaded = load_model(args.weights, "cpu")
    cfg = loaded.model.config
    videos = list(iter_videos(args.inputs, fps=cfg.fps, size=cfg.clip_size, clip_frames=cfg.clip_frames))
    rows = []
    for effort in (int(e) for e in args.effort.split(",")):
        for passes in (int(p) for p in args.passes.split(",")):
            for lam in (float(v) for v in args.lambdas.split(",")):
                if (lam == 0 or args.codec == "prior") and passes > 1:
                    continue
                row = run(loaded, videos, lam, passes, effort, args.codec)
                rows.append(row)
                print(f"{args.codec} lambda {lam:g} passes {passes} effort {effort}: {row['bpp']:.4f} bpp "
                      f"({row['file_bpp']:.4f} whole files), {row['psnr']:.2f} dB, "
                      f"{row['encode_frames_per_s']:.1f} frames/s", flush=True)  # fmt: skip
    if args.json:
        report = {"weights": str(loaded.path), "model_id": loaded.model_id.hex(),
                  "inputs": [str(p) for p in args.inputs], "rows": rows}  # fmt: skip
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
