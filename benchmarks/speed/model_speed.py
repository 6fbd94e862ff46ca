"""Model speed against the machine's GEMM rate, and what each fast path changes, on real clips.

    python benchmarks/speed/model_speed.py VIDEO... [--rounds 3] [--batch 4] [--threads N] [--profile] [--compile]

Every clip of the inputs (as ``msvq encode`` cuts them) is encoded and decoded by:

    reference       MSVQVAE.encode / decode (fp32, the training code)
    fp32            msvq_codec.model.fast at fp32: channels-last, weights cast once, in-place ReLUs and
                    residuals, sub-pixel RGB layer, one-addmm code search (--precision fp32)
    bf16            the same with bf16 trunks (--precision bf16; --precision auto, on a CPU with bf16,
                    encodes as fp32 and decodes as bf16)

Accuracy, against the reference: the share of indices that differ after encode, and the PSNR between the
frames (uint8, as written) decoded from the reference's codes. Speed: rounds interleave every variant with a
GEMM in fp32 and in bf16 (``msvq_codec.perf.gemm_rate``), so each variant's FLOP rate (``perf.flops_per_frame``
x frames/s) is shown as a share of the same-run GEMM rate in its own precision; medians over rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from msvq_codec.runtime import configure_before_torch

configure_before_torch()  # as the msvq command does (OMP_WAIT_POLICY=PASSIVE unless set)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from msvq_codec.codec import load_model  # noqa: E402
from msvq_codec.model import fast  # noqa: E402
from msvq_codec.model.fast import FastModel, Precision  # noqa: E402
from msvq_codec.perf import flops_per_frame, gemm_rate  # noqa: E402
from msvq_codec.video import iter_clips  # noqa: E402

F32, BF16 = torch.float32, torch.bfloat16


def batches(x: torch.Tensor, size: int):
    return [x[i : i + size] for i in range(0, len(x), size)]


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round_().to(torch.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--profile", action="store_true", help="also print torch.profiler's top ops per variant")
    ap.add_argument("--compile", action="store_true",
                    help="also torch.compile (inductor, freezing) the fp32 encode and the bf16 decode: the first "
                         "call's time (compiling) and the compiled speed against eager, interleaved")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(device="cpu")
    ref = loaded.model
    clips = np.stack([c for v in args.videos for c in iter_clips(v)])
    x = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float().div_(255.0)
    frames = x.shape[0] * x.shape[2]
    flops = flops_per_frame(ref)
    print(f"{len(args.videos)} videos, {x.shape[0]} clips ({frames} frames), batch {args.batch}, "
          f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"bf16 native: {fast.bf16_is_fast()}, auto decodes in bf16: {fast.bf16_pays()} ({fast.cpu_vendor()})")  # fmt: skip
    print(f"weights: {loaded.path} (model {loaded.model_id.hex()})")
    print(f"model: {flops.encode / 1e9:.3f} GFLOP/frame to encode, {flops.decode / 1e9:.3f} to decode "
          "(FlopCounterMode, one clip)\n")  # fmt: skip

    variants = {  # name: (model, the dtype its speed is compared in)
        "reference": (ref, F32),
        "fp32": (FastModel(ref, Precision(F32, F32)), F32),
        "bf16": (FastModel(ref, Precision(BF16, BF16)), BF16),
    }

    with torch.inference_mode():
        ref_codes = [ref.encode(b) for b in batches(x, args.batch)]
        ref_frames = torch.cat([to_uint8(ref.decode(c)) for c in ref_codes]).float()
        print("| path | indices that differ from the reference | PSNR of its decode vs the reference's (dB) |")
        print("|---|---|---|")
        for name, (model, _) in variants.items():
            if name == "reference":
                continue
            codes = [model.encode(b) for b in batches(x, args.batch)]
            differ = sum(int((a != b).sum()) for c, r in zip(codes, ref_codes) for a, b in zip(c, r))
            total = sum(a.numel() for r in ref_codes for a in r)
            got = torch.cat([to_uint8(model.decode(c)) for c in ref_codes]).float()
            mse = float(((got - ref_frames) ** 2).mean())
            psnr = "identical" if mse == 0 else f"{10 * np.log10(255**2 / mse):.2f}"
            print(f"| {name} | {100 * differ / total:.3f} % ({differ} of {total}) | {psnr} |", flush=True)

        times: dict[str, dict[str, list[float]]] = {n: {"encode": [], "decode": []} for n in variants}
        rates: dict[torch.dtype, list[float]] = {F32: [], BF16: []}
        for model, _ in variants.values():  # warm-up: oneDNN makes its kernels on first use of a shape
            model.decode(model.encode(x[: args.batch]))
        for _ in range(args.rounds):
            for dtype in rates:
                rates[dtype].append(gemm_rate(dtype))
            for name, (model, _) in variants.items():
                t0 = time.perf_counter()
                for b in batches(x, args.batch):
                    model.encode(b)
                times[name]["encode"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                for c in ref_codes:
                    model.decode(c)
                times[name]["decode"].append(time.perf_counter() - t0)
        peak = {dtype: statistics.median(r) for dtype, r in rates.items()}
        print(f"\nsame-run GEMM rate ({args.rounds} rounds, median): fp32 {peak[F32] / 1e12:.3f} TFLOP/s, "
              f"bf16 {peak[BF16] / 1e12:.3f} TFLOP/s")  # fmt: skip
        print("| path | encode frames/s | encode, share of GEMM rate | decode frames/s | decode, share of GEMM rate |")
        print("|---|---|---|---|---|")
        for name, (_, dtype) in variants.items():
            row = []
            for direction, per_frame in (("encode", flops.encode), ("decode", flops.decode)):
                fps = frames / statistics.median(times[name][direction])
                row += [f"{fps:.1f}", f"{100 * fps * per_frame / peak[dtype]:.0f} % of {str(dtype)[6:]}"]
            print(f"| {name} | {' | '.join(row)} |")

        if args.compile:
            compiled_speed(variants, x, ref_codes, args.batch, args.rounds)

        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            for name, (model, _) in variants.items():
                for direction, run in (("encode", lambda: model.encode(x[: args.batch])),
                                       ("decode", lambda: model.decode(ref_codes[0]))):  # fmt: skip
                    with profile(activities=[ProfilerActivity.CPU]) as prof:
                        run()
                    print(f"\n{name} {direction}, one batch of {args.batch} clips:")
                    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def compiled_speed(variants, x, ref_codes, batch: int, rounds: int) -> None:
    import torch._inductor.config as inductor

    inductor.freezing = True
    print("\n| torch.compile | first call (s) | eager frames/s | compiled frames/s |\n|---|---|---|---|")
    for direction, name in (("encode", "fp32"), ("decode", "bf16")):
        model = variants[name][0]
        eager = getattr(model, direction)
        args = [(x[i : i + batch],) for i in range(0, len(x), batch)] if direction == "encode" else \
            [(c,) for c in ref_codes]  # fmt: skip
        t0 = time.perf_counter()
        compiled = torch.compile(eager)
        compiled(*args[0])
        first = time.perf_counter() - t0
        times: dict[str, list[float]] = {"eager": [], "compiled": []}
        for _ in range(rounds):
            for kind, fn in (("eager", eager), ("compiled", compiled)):
                t0 = time.perf_counter()
                for a in args:
                    fn(*a)
                times[kind].append(time.perf_counter() - t0)
        frames = x.shape[0] * x.shape[2]
        print(f"| {name} {direction} | {first:.1f} | {frames / statistics.median(times['eager']):.1f} | "
              f"{frames / statistics.median(times['compiled']):.1f} |", flush=True)


if __name__ == "__main__":
    main()
