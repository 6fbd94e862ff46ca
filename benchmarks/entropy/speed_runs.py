"""Each coder's end-to-end speed over repeated quick benches: one line per run, to see the machine's drift.

    python benchmarks/entropy/speed_runs.py --runs 5 --out benchmarks/entropy/speed-runs.jsonl
    python benchmarks/entropy/speed_runs.py --from RUN1.json RUN2.json ... --out benchmarks/entropy/speed-runs.jsonl

With ``--runs N`` it runs the quick bench of docs/entropy.md N times in a row (the 7 dev videos, no LPIPS, one
x264 point; ``msvq bench ... --json``); with ``--from`` it reads the JSON of such runs. Either way it writes one
JSON line per run (appending to ``--out``): per coder, frames/s to encode and to decode end to end and the
coder's own ms a clip, the model's frames/s alone, and whether the prior met the floors (100 / 150 frames/s).
The last line printed is the summary: how many runs met each floor, and the decode speed of the model alone
(the zstd row: its coder costs next to nothing) above which the prior met 150 frames/s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

DEV = [f"../shared/data/ucf101/videos/v_{name}.avi" for name in (
    "ApplyEyeMakeup_g01_c01", "Archery_g01_c01", "BaseballPitch_g01_c01", "Basketball_g01_c01", "Basketball_g02_c03",
    "HeadMassage_g02_c05", "PushUps_g02_c03")]  # fmt: skip
FLOORS = (100.0, 150.0)  # the prior's end-to-end frames/s to encode and to decode


def summarise(bench_json: Path) -> dict:
    """One quick bench's JSON -> its line."""
    model = json.loads(bench_json.read_text())["models"][0]
    line = {"file": bench_json.name, "model_decode_fps": model["efficiency"]["decode"]["model_fps"]}
    for name, c in model["coders"].items():
        line[name] = {"encode_fps": c["encode_fps"], "decode_fps": c["decode_fps"],
                      "encode_ms_per_clip": c["entropy_encode_ms_per_clip"],
                      "decode_ms_per_clip": c["entropy_decode_ms_per_clip"]}  # fmt: skip
    line["floors_met"] = [line["prior"]["encode_fps"] >= FLOORS[0], line["prior"]["decode_fps"] >= FLOORS[1]]
    return line


def run_once(where: Path) -> Path:
    out = where / f"run-{time.strftime('%H%M%S')}.json"
    subprocess.run(["msvq", "--quiet", "bench", *DEV, "--codecs", "x264", "--crf", "x264=51", "--no-lpips",
                    "--json", str(out)], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=0, help="quick benches to run now")
    parser.add_argument("--from", dest="given", type=Path, nargs="*", default=[], help="quick benches' JSON")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, appended to")
    args = parser.parse_args()
    lines = [summarise(p) for p in args.given]
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            lines.append(summarise(run_once(Path(tmp))))
    with args.out.open("a") as fp:
        for line in lines:
            fp.write(json.dumps(line) + "\n")
            p, c, z = line["prior"], line["context"], line["zstd"]
            print(f"{line['file']}: prior {p['encode_fps']:.1f} / {p['decode_fps']:.1f} frames/s, context "
                  f"{c['encode_fps']:.1f} / {c['decode_fps']:.1f}, model alone (zstd) {z['decode_fps']:.1f} to decode; "
                  f"the prior's coding {p['encode_ms_per_clip']:.1f} / {p['decode_ms_per_clip']:.1f} ms a clip")  # fmt: skip
    if lines:
        met = [sum(line["floors_met"][i] for line in lines) for i in (0, 1)]
        passing = [line["zstd"]["decode_fps"] for line in lines if line["floors_met"][1]]
        failing = [line["zstd"]["decode_fps"] for line in lines if not line["floors_met"][1]]

        def span(values: list[float]) -> str:
            return f"{min(values):.1f}-{max(values):.1f}" if values else "(no run)"

        print(f"{len(lines)} runs: encode floor met in {met[0]}, decode floor in {met[1]}; the model alone decoded at "
              f"{span(passing)} frames/s where the prior met it, {span(failing)} where it did not")

if __name__ == "__main__":
    main()
