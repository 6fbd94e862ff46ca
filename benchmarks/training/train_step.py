"""What a process setting or a code change does to ``msvq train``'s step time: runs of a few steps, interleaved.

    python benchmarks/training/train_step.py [--steps 6] [--rounds 2] [--data ../shared/data] [-- EXTRA TRAIN OPTIONS]
    python benchmarks/training/train_step.py --checkout /tmp/before    # this checkout's code against another's

Each round runs ``msvq train`` once per variant (the cpu recipe from the shipped weights, on the UCF101
split-1 training list, seed 0) and takes the median of its step times (``sec`` in log.jsonl) without the first
step (kernel selection, caches). Variants: the environment ``msvq`` sets now (``OMP_WAIT_POLICY=PASSIVE``,
msvq_codec/runtime.py) and torch's default (``OMP_WAIT_POLICY=ACTIVE``). The model code training runs is
unchanged by issue 11 (``msvq_codec.model.fast`` is inference only), so this is the one change that reaches it.
With ``--checkout DIR`` the variants are instead this checkout's code and DIR's (e.g. ``git worktree add DIR
REV``), each run as ``python -m msvq_codec`` with its own ``PYTHONPATH`` and msvq's default environment.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VARIANTS = {"OMP_WAIT_POLICY=PASSIVE (msvq's default now)": "PASSIVE",
            "OMP_WAIT_POLICY=ACTIVE (torch's default)": "ACTIVE"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "msvq" / "cache")
    ap.add_argument("--checkout", type=Path, help="another checkout of msvq to compare this one's code with")
    ap.add_argument("extra", nargs="*", help="more msvq train options (after --)")
    args = ap.parse_args()
    variants = {name: ({"OMP_WAIT_POLICY": policy}, REPO) for name, policy in VARIANTS.items()}
    if args.checkout:
        variants = {f"this checkout ({REPO})": ({}, REPO), f"{args.checkout}": ({}, args.checkout.resolve())}
    from msvq_codec.model.weights import find_weights

    common = ["--data", str(args.data), "--split", "official:1", "--splits", str(args.data / "ucf101" / "splits"),
              "--cache-dir", str(args.cache_dir), "--recipe", "cpu", "--init-from", str(find_weights()[0]),
              "--max-steps", str(args.steps), "--device", "cpu", "--seed", "0", "--max-val-clips", "1",
              *args.extra]  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for i, (name, (extra_env, code)) in enumerate(variants.items()):
                run = Path(tmp) / f"r{r}-{i}"
                env = {**os.environ, **extra_env, "PYTHONPATH": str(code)}
                cmd = [sys.executable, "-m", "msvq_codec", "--quiet", "train", *common, "--run-dir", str(run)]
                subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
                steps = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
                secs = [s["sec"] for s in steps if "sec" in s][1:]
                times[name].append(statistics.median(secs))
                print(f"round {r}: {name}: median step {times[name][-1]:.2f} s over {len(secs)} steps", flush=True)
    print(f"\n{args.rounds} interleaved rounds of {args.steps} steps ({os.cpu_count()} CPUs)")
    print("| variant | step time (s, median of rounds) |\n|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} |")


if __name__ == "__main__":
    sys.exit(main())
