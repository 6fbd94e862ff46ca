"""BD-rate of one msvq model's quality-preset curve against another's, from two ``msvq bench --json`` files.

    python benchmarks/training/bd_rate.py ANCHOR.json TEST.json

Each file is a bench of one weights file over several ``--quality`` presets (with ``--no-classic`` if wished);
the script takes each file's msvq rows, per mode (a file per video, a file per clip), as a rate-distortion
curve (file bpp, PSNR) and prints the test's BD-rate against the anchor (``msvq_codec.bench.bdrate``: positive,
the test needs that many more bits for the same PSNR), with the PSNR range both curves cover.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from msvq_codec.bench.bdrate import bd_rate


def curve(path: Path, mode: str) -> tuple[list[float], list[float]]:
    rows = [r for r in json.loads(path.read_text())["summary"] if r["kind"] == "msvq" and r["mode"] == mode]
    return [r["bpp"] for r in rows], [r["psnr"] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("anchor", type=Path)
    parser.add_argument("test", type=Path)
    args = parser.parse_args()
    for mode in ("per-video", "per-clip"):
        (ra, qa), (rt, qt) = curve(args.anchor, mode), curve(args.test, mode)
        for name, rates, quality in ((args.anchor.name, ra, qa), (args.test.name, rt, qt)):
            points = ", ".join(f"{r:.4f} bpp {q:.2f} dB" for r, q in sorted(zip(rates, quality)))
            print(f"{mode} {name}: {points}")
        result = bd_rate(ra, qa, rt, qt)
        print(f"{mode}: BD-rate {100 * result.value:+.1f} % ({result.method}; {result.note})")


if __name__ == "__main__":
    main()
