"""Start-up of single-file commands, next to a bare ``import torch``, timed as whole processes in one run.

    python benchmarks/startup/startup.py [--rounds 5] [--video FILE]

Makes a 10-second 320x240 25 fps H.264 video (ffmpeg's testsrc2, unless --video is given), then runs, interleaved
round by round so that a busy machine slows each alike:

    python -c "import torch"                  the floor every msvq command pays
    python -c "import msvq_codec.cli"         the command line's own imports
    msvq -q encode VIDEO OUT.msvq --force     a whole single-file encode (also with OMP_WAIT_POLICY=ACTIVE,
                                              torch's default, and with --precision bf16)
    msvq -q decode OUT.msvq OUT.npy --force   a whole single-file decode

and prints each one's median and minimum wall time and the medians' excess over ``import torch``, and the
machine's load average and fp32 GEMM rate before and after the rounds (the rounds themselves add about 1 to
the load). With ``--importtime`` it also prints the 15 slowest modules (cumulative) of ``msvq encode``'s own
imports. With ``--phases`` it also runs the encode ``--rounds`` more times, each in a fresh process under
cProfile, and prints the median wall time of each phase: where the excess over ``import torch`` goes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def importtime(env: dict[str, str], code: str) -> list[tuple[int, str]]:
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True,
                         text=True, check=True).stderr  # fmt: skip
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line[len("import time:"):].split("|")
            rows.append((int(cumulative), name.rstrip()))
    return sorted(rows, reverse=True)


PHASES = {  # (file suffix, function) whose cumulative time is a phase of a single-file encode
    "building the command line (typer introspects every command)": ("typer/main.py", "get_command"),
    "importing the codec (OpenCV, container, entropy coder), on first use": ("msvq_codec/codec.py", "<module>"),
    "loading the weights and the entropy model": ("msvq_codec/codec.py", "load_model"),
    "reading the video (decode, 16 fps, 64x64)": ("msvq_codec/video/read.py", "__iter__"),
    "the model: encode to indices (fast path)": ("msvq_codec/model/fast.py", "encode"),
}
PHASE_PROBE = """
import cProfile, json, pstats, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import msvq_codec.cli
t2 = time.perf_counter()
sys.argv = ["msvq", "-q", "encode", *sys.argv[1:]]
profile = cProfile.Profile()
profile.enable()
try:
    msvq_codec.cli.main()
except SystemExit:
    pass
profile.disable()
t3 = time.perf_counter()
stats = pstats.Stats(profile).stats  # {(file, line, name): (calls, primitive, tottime, cumtime, callers)}
cumulative = {f"{file}:{name}": row[3] for (file, _, name), row in stats.items()}
print(json.dumps({"import torch": t1 - t0, "import msvq_codec.cli": t2 - t1, "command": t3 - t2,
                  "functions": cumulative}))
"""


def phases(encode_args: list[str], env: dict[str, str], rounds: int) -> dict[str, float]:
    """Median seconds of each phase of a single-file encode, each round a fresh process."""
    import json

    runs = []
    for _ in range(rounds):
        out = subprocess.run([sys.executable, "-c", PHASE_PROBE, *encode_args], env=env, capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
        record = json.loads(out.strip().splitlines()[-1])
        row = {"import torch": record["import torch"], "import msvq_codec.cli": record["import msvq_codec.cli"]}
        for phase, (suffix, name) in PHASES.items():
            row[phase] = sum(t for key, t in record["functions"].items() if key.endswith(f"{suffix}:{name}"))
        row["everything else in the command"] = record["command"] - sum(row[p] for p in PHASES)
        row["total"] = record["import torch"] + record["import msvq_codec.cli"] + record["command"]
        runs.append(row)
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def fp32_gemm_tflops(env: dict[str, str]) -> float:
    """The machine's fp32 GEMM rate now (TFLOP/s, ``msvq_codec.perf.gemm_rate``, as msvq bench measures it),
    in a process of its own: the encode is bound by the fp32 model, so its excess over ``import torch`` scales
    with this rate, which a host shared with other machines changes from hour to hour."""
    code = "import torch; from msvq_codec.perf import gemm_rate; print(gemm_rate(torch.float32))"
    return float(subprocess.run([sys.executable, "-c", code], env={"OMP_WAIT_POLICY": "PASSIVE", **env},
                                capture_output=True, text=True, check=True).stdout) / 1e12  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--video", type=Path)
    ap.add_argument("--importtime", action="store_true")
    ap.add_argument("--phases", action="store_true")
    args = ap.parse_args()
    msvq = shutil.which("msvq") or sys.exit("msvq is not on PATH (pip install -e .)")
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video
        if video is None:
            video = Path(tmp) / "10s-320x240.mp4"
            subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "10",
                            "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)], check=True)  # fmt: skip
        out = Path(tmp) / "out.msvq"
        encode = [msvq, "-q", "encode", str(video), str(out), "--force"]
        commands = {  # name: (command, extra environment)
            "python -c 'import torch'": ([sys.executable, "-c", "import torch"], {}),
            "python -c 'import msvq_codec.cli'": ([sys.executable, "-c", "import msvq_codec.cli"], {}),
            "msvq encode (10 s, 320x240)": (encode, {}),
            "msvq encode, OMP_WAIT_POLICY=ACTIVE (torch's default)": (encode, {"OMP_WAIT_POLICY": "ACTIVE"}),
            "msvq encode --precision bf16": (encode + ["--precision", "bf16"], {}),
            "msvq decode (to .npy)": ([msvq, "-q", "decode", str(out), str(Path(tmp) / "out.npy"), "--force"], {}),
        }
        subprocess.run(encode, check=True, stdout=subprocess.DEVNULL)  # warm the file system caches
        load_before = os.getloadavg()  # how busy the machine was: the figures mean little without it
        gemm_before = fp32_gemm_tflops(env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, (cmd, extra) in commands.items():
                times[name].append(timed(cmd, {**env, **extra}))
        base = statistics.median(times["python -c 'import torch'"])
        load = "/".join(f"{a:.2f}" for a in load_before), "/".join(f"{a:.2f}" for a in os.getloadavg())
        print(f"{args.rounds} interleaved rounds, {os.cpu_count()} CPUs; wall seconds")
        print(f"load average (1/5/15 min) {load[0]} before the rounds, {load[1]} after (these rounds included)")
        print(f"fp32 GEMM {gemm_before:.3f} TFLOP/s before the rounds, {fp32_gemm_tflops(env):.3f} after")
        print("| command | median (s) | min (s) | median - import torch (s) |")
        print("|---|---|---|---|")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"| {name} | {med:.2f} | {min(ts):.2f} | {med - base:+.2f} |")
        if args.importtime:
            code = "import msvq_codec.cli, msvq_codec.codec"
            print(f"\nslowest imports of `{code}` (cumulative microseconds, -X importtime):")
            for us, name in importtime(env, code)[:15]:
                print(f"{us:>10d}  {name}")
        if args.phases:
            print(f"\nphases of `msvq encode` (10 s, 320x240), median of {args.rounds} fresh processes under cProfile:")
            print("| phase | seconds |")
            print("|---|---|")
            for name, seconds in phases([str(video), str(out), "--force"], env, args.rounds).items():
                print(f"| {name} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
