"""A training burst on a lent GPU, inside a fixed wall-clock budget, through msvq's own training loop.

This project trains on a 2-core CPU; now and then a session is lent a GPU for a few minutes. This script
spends such minutes on the paper's model with the project's trainer (``msvq_codec.train.loop.train``) and
brings back weights small enough to travel:

 1. prepares the frame caches of a packed corpus (``pack_corpus.py``) with all CPU cores;
 2. times a few real training steps (bf16 autocast) in the default and the channels-last 3D memory layouts,
    and keeps the faster; with ``--batches``, also times each candidate batch size in that layout and keeps the
    one that trains the most clips per second (a larger one only where it is at least ``MIN_BATCH_GAIN`` faster),
    scaling the learning rate by the square root of the batch ratio. Costly: on the H200 timing 32, 64 and 128
    took 199 s of a 580 s budget in sitting 5, where their timed steps sum to 3 s (cuDNN's algorithm search for
    each new shape is the likely cost; not profiled); batch 32 trained 1.22x the clips per second of 16, 64 1.30x,
    128 1.34x (``benchmarks/training/training.md``);
 3. trains (from scratch, or a new phase from ``--init-from``) with a cosine schedule sized to the steps the
    budget holds at the measured rate (``max_minutes`` stops it regardless), validating on the held-out dev
    videos every few minutes;
 4. exports the better of the raw weights and their moving average (by dev PSNR) as msvq's fp16 weights file,
    cut into parts the transfer allows (``cat part.* > weights.safetensors`` joins them), with the
    training log and a JSON summary of what was timed and chosen.

    python benchmarks/gpu/burst.py --corpus .gpu/corpus --out "$OUT" --budget-s 500

Every choice it does not measure (learning rate, losses; the batch unless ``--batches``) is a flag, and the
summary records them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CLIP = (32, 64)  # frames, side: ModelConfig's clip
TRAIN_CACHE = 96  # msvq_codec.train.loop.TRAIN_CACHE_SIZE: the augmenting cache side
PART_BYTES = 15 * 2**20  # the transfer back takes files of at most 16 MiB
EXPORT_RESERVE_S = 45  # kept at the end of the budget for the last validation, checkpoint and export
LOOP_WALL_PER_TIMED_STEP = 1.45  # planned wall time per step inside msvq's loop over a step timed alone, on an
# H200: sitting 3 measured 1.92 (new DataLoader workers every epoch, a dozen device waits a step); sitting 4,
# with both gone, 1.49 over a 490 s phase and 1.78 over a 179 s one (benchmarks/training/training.md). Planned a little
# low: where the loop is slower, ``max_minutes`` ends the cosine just before its floor (``burst.json`` records
# the ratio of each run)
MIN_BATCH_GAIN = 1.15  # a larger batch is kept only where it trains at least this many times the clips per second
# of the smaller: a larger batch takes fewer, less noisy steps, which is no gain at equal throughput


def _prepare(job: tuple[str, str, int]) -> str:
    from msvq_codec.train.data import prepare_video

    src, cache, size = job
    return str(prepare_video(Path(src), Path(cache), size, 16.0, CLIP[0]))


def prepare_caches(corpus: Path, cache: Path, jobs: int) -> int:
    from msvq_codec.video import find_inputs

    sources = find_inputs(corpus)
    work = [(str(s), str(cache), size) for s in sources for size in (CLIP[1], TRAIN_CACHE)]
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(_prepare, work, chunksize=4))
    return len(sources)


def time_steps(batch: int, channels_last: bool, steps: int, warmup: int, device: str = "cuda") -> float:
    """Seconds per training step of the default model (MSE + VQ loss, bf16 autocast, Adam) on random clips."""
    import torch
    import torch.nn.functional as F

    from msvq_codec.config import ModelConfig
    from msvq_codec.model.vqvae import MSVQVAE

    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    model = MSVQVAE(ModelConfig()).to(device).to(memory_format=fmt).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    clips = torch.rand(batch, 3, CLIP[0], CLIP[1], CLIP[1], device=device).to(memory_format=fmt)  # [b, 3, T, H, W]
    for i in range(warmup + steps):
        if i == warmup:
            sync()
            start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16):
            out = model(clips)
            loss = F.mse_loss(out.recon.float(), clips) + out.vq_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    return (time.perf_counter() - start) / steps


def split_file(path: Path, out: Path) -> list[str]:
    data = path.read_bytes()
    names = []
    for i in range(0, len(data), PART_BYTES):
        name = f"{path.name}.part{i // PART_BYTES}"
        (out / name).write_bytes(data[i : i + PART_BYTES])
        names.append(name)
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="pack_corpus.py output: train/ and dev/")
    parser.add_argument("--out", type=Path, required=True, help="where the weights parts, log and summary go")
    parser.add_argument("--work", type=Path, default=Path("/tmp/msvq-burst"), help="caches and checkpoints")
    parser.add_argument("--budget-s", type=float, required=True, help="wall time for everything, from start")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", help="candidate batch sizes to time, e.g. 16,32 (overrides --batch; about a "
                        "minute of a short budget per new size)")
    parser.add_argument("--lr", type=float, default=3e-4, help="peak rate at batch --lr-batch")
    parser.add_argument("--lr-batch", type=int, default=16, help="the batch --lr is for: the rate scales with the "
                        "square root of batch / lr-batch (the square-root rule for Adam; not measured here)")
    parser.add_argument("--gamma", type=float, default=0.0, help="perceptual weight (needs VGG weights)")
    parser.add_argument("--weight-ema", type=float, default=0.998)
    parser.add_argument("--workers", type=int, default=10, help="DataLoader processes (alive for the whole run)")
    parser.add_argument("--validate-minutes", type=float, default=2.5)
    parser.add_argument("--calibrate-steps", type=int, default=12)
    parser.add_argument("--init-from", type=Path, help="weights to continue from (fresh optimiser)")
    parser.add_argument("--hide-bottom", type=float, default=0.0, help="share of training clips decoded from their "
                        "top codes alone (TrainConfig.hide_bottom), so that the top level carries content")
    parser.add_argument("--hide-bottom-until", type=float, default=0.0, help="lower that share linearly to 0 over "
                        "this fraction of the planned steps (TrainConfig.hide_bottom_steps); 0: hold it")
    parser.add_argument("--reseed-top", action="store_true", help="with --init-from: seed the top codebook anew "
                        "from the top encoder's outputs")
    parser.add_argument("--top-join", choices=("concat", "residual"), default="concat", help="how the decoder "
                        "reads the top level (ModelConfig.top_join); residual trains from scratch only: its "
                        "decoder's first layer takes half the channels it takes in the shipped weights")
    parser.add_argument("--latent-norm", action="store_true", help="scale each latent vector to unit length "
                        "before its codes are chosen (ModelConfig.latent_norm); from scratch only")
    parser.add_argument("--step-s", type=float, help="skip the layout timing: seconds per timed step, channels-last")
    parser.add_argument("--device", default="cuda", help="cuda (the point); cpu to test this script")
    args = parser.parse_args()
    started = time.monotonic()
    elapsed = lambda: time.monotonic() - started  # noqa: E731
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"args": {k: str(v) for k, v in vars(args).items()}}

    def save_summary() -> None:
        (args.out / "burst.json").write_text(json.dumps(summary, indent=1))

    import torch

    from msvq_codec.config import ModelConfig, train_recipe
    from msvq_codec.train.checkpoint import export, load_checkpoint
    from msvq_codec.train.loop import RunOptions, train

    on_gpu = args.device == "cuda"
    if on_gpu:
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick each conv's fastest algorithm once
        summary["gpu"] = torch.cuda.get_device_name()
    summary["torch"] = torch.__version__

    cache, run_dir = args.work / "cache", args.work / "run"
    summary["videos"] = prepare_caches(args.corpus, cache, max(1, (os.cpu_count() or 2) - 1))
    summary["prepared_s"] = round(elapsed(), 1)
    print(f"[{elapsed():6.1f} s] prepared {summary['videos']} videos", flush=True)

    channels_last, step_s = False, None
    if args.step_s:
        channels_last, step_s = on_gpu, args.step_s
    elif on_gpu:
        timings = {}
        for layout in (False, True):
            timings["channels_last" if layout else "default"] = time_steps(args.batch, layout, args.calibrate_steps, 3)
        summary["step_s_by_layout"] = timings
        channels_last = timings["channels_last"] < timings["default"]
        step_s = min(timings.values())
        torch.cuda.empty_cache()
        print(f"[{elapsed():6.1f} s] step time by layout {timings}", flush=True)
        if args.batches:
            by_batch = {args.batch: step_s}
            for batch in sorted(int(b) for b in args.batches.split(",")):
                if batch not in by_batch:
                    by_batch[batch] = time_steps(batch, channels_last, args.calibrate_steps, 3)
                    torch.cuda.empty_cache()
            summary["step_s_by_batch"] = by_batch
            chosen = min(by_batch)
            for batch in sorted(by_batch):
                if batch / by_batch[batch] >= MIN_BATCH_GAIN * chosen / by_batch[chosen]:
                    chosen = batch
            args.batch, step_s = chosen, by_batch[chosen]
            print(f"[{elapsed():6.1f} s] step time by batch {by_batch}: batch {chosen}", flush=True)
    lr = args.lr * math.sqrt(args.batch / args.lr_batch)
    summary.update(batch=args.batch, lr=lr)
    train_s = args.budget_s - elapsed() - EXPORT_RESERVE_S
    # the loop adds data loading, logging and validations to the timed steps, so the cosine is planned on the
    # measured wall time per step; max_minutes still stops it where the machine is slower than that
    max_steps = max(10, int(train_s / (LOOP_WALL_PER_TIMED_STEP * step_s))) if step_s else 20
    summary.update(channels_last=channels_last, planned_steps=max_steps, train_budget_s=round(train_s, 1))
    save_summary()

    dev = sorted(p.name for p in (args.corpus / "dev").iterdir())
    val_list = args.work / "val.txt"
    val_list.write_text("\n".join(dev) + "\n")
    config = train_recipe(
        "paper", batch_size=args.batch, lr=lr, gamma=args.gamma, augment=True, epochs=1_000_000,
        max_steps=max_steps, max_minutes=train_s / 60, weight_ema=args.weight_ema, workers=args.workers,
        checkpoint_minutes=args.validate_minutes, checkpoint_every=1_000_000, val_every=1_000_000,
        channels_last=channels_last, hide_bottom=args.hide_bottom,
        hide_bottom_steps=int(args.hide_bottom_until * max_steps),
        extra={"data": str(args.corpus), "split": "files", "recipe": "gpu-burst"},
    )  # fmt: skip
    options = RunOptions(args.corpus, run_dir, split="files", val_list=val_list, cache_dir=cache, device=args.device,
                         init_from=args.init_from, reseed_top=args.reseed_top,
                         model_given=args.top_join != "concat" or args.latent_norm)  # fmt: skip
    shape = dict(top_join=args.top_join, latent_norm=args.latent_norm)
    tiny = {} if on_gpu else dict(hidden_channels=16, res_channels=8, n_res_blocks=1)  # a CPU test of this script
    model_config = ModelConfig(**tiny, **shape)

    def progress(record: dict) -> None:
        if record["step"] % 250 == 0 or record["step"] == 1:
            print(f"[{elapsed():6.1f} s] step {record['step']}/{record['total_steps']} psnr {record['psnr_recent']:.2f} "
                  f"lr {record['lr']:.2e} {record['sec'] * 1000:.0f} ms/step top used {record['top_used']}", flush=True)

    error = None
    train_started = elapsed()
    try:
        train(model_config, config, options, log=lambda m: print(f"[{elapsed():6.1f} s] {m}", flush=True),
              on_step=progress)  # fmt: skip
    except BaseException as err:  # noqa: BLE001 - export whatever checkpoint there is, then report
        error = "".join(traceback.format_exception(err))
        print(error, flush=True)
    summary["trained_s"] = round(elapsed(), 1)
    last = run_dir / "last.pt"
    if last.exists():
        ckpt = load_checkpoint(last)
        if step_s:
            steps = max(1, ckpt["step"] - ckpt.get("phase_start", 0))
            summary["loop_wall_per_timed_step"] = round((summary["trained_s"] - train_started) / steps / step_s, 2)
        history = ckpt.get("history") or []
        final = history[-1] if history else {}
        raw_better = final.get("val_psnr", 0) > final.get("ema_val_psnr", -1)
        weights = args.work / "msvq-burst.safetensors"
        model_id = export(last, weights, note={"trained_on": summary.get("gpu", "cpu")}, raw=raw_better)
        summary.update(
            steps=ckpt["step"], epochs=ckpt["epoch"], history=history, exported="raw" if raw_better else "weight average",
            model_id=model_id.hex(), parts=split_file(weights, args.out), weights_bytes=weights.stat().st_size,
        )  # fmt: skip
        log = run_dir / "log.jsonl"
        if log.exists():
            (args.out / "log.jsonl").write_bytes(log.read_bytes())
    summary["error"] = error
    summary["total_s"] = round(elapsed(), 1)
    save_summary()
    print(f"[{elapsed():6.1f} s] done: {json.dumps({k: summary.get(k) for k in ('steps', 'exported', 'model_id')})}")
    if summary.get("history"):
        print(json.dumps(summary["history"][-1]))
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
