"""The rate-control tables of benchmarks/rate-control/README.md and the README, printed from the measurements' JSON.

    python benchmarks/rate-control/rdo_table.py [--bench benchmarks/rate-control/ucf101-rdo.json]
        [--sweep benchmarks/rate-control/history/rdo-sweep.json]
        [--effort benchmarks/rate-control/history/rdo-effort.json benchmarks/rate-control/history/rdo-effort-max.json]

bench: ``msvq bench ... --quality max,high,medium,low,lowest`` (per preset: rates, distortions, speed, the
whole files' bits per video, and the BD-rates of the model's curve). sweep/effort: ``benchmarks/rate-control/rdo_sweep.py``
(per lambda: bpp, PSNR, encode frames/s; with --effort, the PSNR gained at equal bits, read off the curve
without effort by linear interpolation in log bpp).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def bench_tables(path: Path) -> None:
    data = json.loads(path.read_text())
    models = [m for m in data["models"]]
    points = {(p["system"], p["mode"]): p for p in data["summary"]}
    top = points[(models[0]["system"], "per-video")]
    print(f"### {path}: rates and distortions per preset\n")
    print("| --quality | lambda | bpp per video (x max) | bpp per clip | PSNR (dB) | SSIM | LPIPS | encode frames/s |")
    print("|---|---|---|---|---|---|---|---|")
    for m in models:
        v, c = points[(m["system"], "per-video")], points[(m["system"], "per-clip")]
        print(f"| {m['quality']} | {m['rd_lambda']:g} | {v['bpp']:.4f} ({v['bpp'] / top['bpp']:.2f}x) | {c['bpp']:.4f} "
              f"| {v['psnr']:.2f} | {v['ssim']:.4f} | {v['lpips']:.4f} | {m['encode_fps']:.1f} |")
    print("\n### whole .msvq files (msvq encode's output) per video, bits\n")
    labels = [m["label"] for m in models]
    print("| video | " + " | ".join(m["quality"] for m in models) + " |")
    print("|---" * (len(models) + 1) + "|")
    totals = dict.fromkeys(labels, 0)
    for v in data["videos"]:
        print(f"| {Path(v['path']).stem} | " + " | ".join(str(8 * v["msvq_file_bytes"][lb]) for lb in labels) + " |")
        for lb in labels:
            totals[lb] += 8 * v["msvq_file_bytes"][lb]
    print("| all | " + " | ".join(str(totals[lb]) for lb in labels) + " |")
    print("\n### BD-rate of the curve against each codec's CRF curve\n")
    print("| anchor | mode | metric | BD-rate | compared over |")
    print("|---|---|---|---|---|")
    for r in data["bd_rate"]:
        if r["system"].endswith(" curve"):
            value = "n/a" if r["bd_rate"] is None else f"{100 * r['bd_rate']:+.1f} %"
            print(f"| {r['anchor']} | {r['mode']} | {r['metric']} | {value} | {r['note'] or 'both whole ranges'} |")
    print("\n### classic codecs' ranges (per-video / per-clip PSNR, dB)\n")
    for codec in data["settings"]["codecs"]:
        for mode in ("per-video", "per-clip"):
            pts = sorted((p for p in data["summary"] if p["system"] == codec and p["mode"] == mode),
                         key=lambda p: p["crf"])  # fmt: skip
            listed = ", ".join(f"CRF {p['crf']} {p['bpp']:.4f} bpp {p['psnr']:.2f} dB" for p in pts)
            print(f"- {codec} {mode}: {listed}")


def sweep_table(path: Path, base: Path | None = None) -> None:
    data = json.loads(path.read_text())
    rows = data["rows"]
    print(f"\n### {path}\n")
    if base is None:
        print("| lambda | passes | bpp per video | whole files bpp | PSNR (dB) | encode frames/s |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['rd_lambda']:g} | {r['passes']} | {r['bpp']:.4f} | {r['file_bpp']:.4f} | {r['psnr']:.2f} "
                  f"| {r['encode_frames_per_s']:.1f} |")
        return
    ref = json.loads(base.read_text())["rows"]
    print("| lambda | effort | bpp | PSNR (dB) | PSNR without effort at these bits (dB) | gain (dB) "
          "| encode frames/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        curve = sorted((q for q in ref if q["passes"] == r["passes"] or q["rd_lambda"] == 0), key=lambda q: q["bpp"])
        xs = np.log([q["bpp"] for q in curve])
        at = float(np.interp(math.log(r["bpp"]), xs, [q["psnr"] for q in curve], left=np.nan, right=np.nan))
        print(f"| {r['rd_lambda']:g} | {r['effort']} | {r['bpp']:.4f} | {r['psnr']:.2f} | {at:.2f} | "
              f"{r['psnr'] - at:+.2f} | {r['encode_frames_per_s']:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, default=Path("benchmarks/rate-control/ucf101-rdo.json"))
    ap.add_argument("--sweep", type=Path, default=Path("benchmarks/rate-control/history/rdo-sweep.json"))
    ap.add_argument("--effort", type=Path, nargs="*",
                    default=[Path("benchmarks/rate-control/history/rdo-effort.json"),
                             Path("benchmarks/rate-control/history/rdo-effort-max.json")])
    args = ap.parse_args()
    if args.bench.exists():
        bench_tables(args.bench)
    sweep_table(args.sweep)
    for path in args.effort:
        if path.exists():
            sweep_table(path, args.sweep)


if __name__ == "__main__":
    main()
