"""The paper's training recipe (Sections 4.1-4.2) on a CPU, one GPU, or many under torchrun (DDP).

    L = L_recon + beta * L_VQ + gamma * L_perc
    L_recon: MSE of the reconstruction; L_VQ: commitment of both levels (codebooks follow EMAs);
    L_perc:  L1 between VGG16 relu1_2/relu2_2/relu3_3 features of every frame (see msvq_codec.vgg)
    Adam(0.9, 0.999), lr 2e-4, cosine annealing per step, batch 8, 50 epochs, checkpoints every 10.

Each epoch visits the training clips in an order fixed by (seed, epoch), so a run resumed from any
checkpoint continues exactly where it stopped. Under DDP each process takes every world_size-th clip of that
order and the codebook statistics are summed across processes (msvq_codec.model.quantizer).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from msvq_codec.config import ModelConfig, TrainConfig
from msvq_codec.metrics import clip_psnr, clip_ssim
from msvq_codec.model.vqvae import MSVQVAE
from msvq_codec.train.checkpoint import configs_of, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from msvq_codec.train.data import ClipDataset, build_split
from msvq_codec.vgg import PerceptualLoss, load_vgg_weights

TRAIN_CACHE_SIZE = 96  # cached frame side when augmenting: crops of 60-100% keep >= 64 px of detail


@dataclass(frozen=True)
class RunOptions:
    data: Path  # folder of videos (or an extracted UCF-101 tree)
    run_dir: Path  # checkpoints, log.jsonl, split.json
    split: str = "files"  # files | paper | official:K (see msvq_codec.train.data)
    val_list: Path | None = None  # for split 'files': the validation files
    cache_dir: Path | None = None  # prepared frames (default: <run_dir>/../cache)
    device: str = "auto"  # auto | cpu | cuda
    vgg_weights: Path | None = None  # explicit VGG16 weights (see msvq_codec.vgg)
    resume: Path | None = None  # checkpoint to continue from
    max_val_clips: int = 0  # validate on at most this many clips (0: all)
    splits_dir: Path | None = None  # for split 'official:K': the folder holding UCF101's testlist0K.txt
    stop_after: int = 0  # end this invocation after N steps with a checkpoint; the schedule is unchanged,
    # so a later --resume continues as if never stopped (for pre-emptible jobs)



def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from msvq_codec.errors import UsageError

        raise UsageError("--device cuda: no CUDA device is available")
    return torch.device(name)


def _setup_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    rank = dist.get_rank()
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return rank, world, device


def cpu_has_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX): there bf16 autocast halves step time."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _autocast(device: torch.device, enabled: bool):
    """bf16 autocast where the hardware supports it, fp16 (with gradient scaling) on older GPUs."""
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled and cpu_has_bf16())


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


@torch.no_grad()
def validate(model: MSVQVAE, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """The codec's real path: encode to codes, decode, round to 8 bits; PSNR and SSIM per clip, averaged."""
    model.eval()
    psnrs, ssims = [], []
    for clips in loader:
        recon = model.decode(model.encode(clips.to(device))).float().cpu()  # [b, 3, T, H, W]
        for ref, out in zip(clips, recon):
            ref_np = ref.permute(1, 2, 3, 0).numpy()  # [T, H, W, 3]
            out_np = out.permute(1, 2, 3, 0).numpy()
            psnrs.append(clip_psnr(ref_np, out_np))
            ssims.append(clip_ssim(ref_np, out_np))
    model.train()
    return {"val_psnr": float(np.mean(psnrs)), "val_ssim": float(np.mean(ssims)), "val_clips": len(psnrs)}


def train(
    model_config: ModelConfig,
    config: TrainConfig,
    options: RunOptions,
    log: Callable[[str], None] = print,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Run (or resume) training; returns the path of the final checkpoint."""
    device = pick_device(options.device)
    rank, world, device = _setup_distributed(device)
    is_main = rank == 0
    run_dir = options.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)

    ckpt = load_checkpoint(options.resume) if options.resume else None
    if ckpt is not None:  # a resumed run keeps the configs it started with
        model_config, config = configs_of(ckpt)

    torch.manual_seed(config.seed)
    split = build_split(
        options.data,
        options.split,
        options.cache_dir or run_dir.parent / "cache",
        clip_size=model_config.clip_size,
        cache_size=TRAIN_CACHE_SIZE if config.augment else model_config.clip_size,
        fps=model_config.fps,
        clip_frames=model_config.clip_frames,
        seed=config.seed,
        val_list=options.val_list,
        splits_dir=options.splits_dir,
        run_dir=run_dir if is_main else None,
        log=log if is_main else (lambda _: None),
    )
    train_set = ClipDataset(
        split.train_caches, split.train, model_config.clip_frames, model_config.clip_size, config.augment, config.seed
    )
    val_refs = split.val[: options.max_val_clips] if options.max_val_clips else split.val
    val_loader = (
        DataLoader(
            ClipDataset(split.clip_caches, val_refs, model_config.clip_frames, model_config.clip_size, False, 0),
            batch_size=config.batch_size,
        )
        if val_refs
        else None
    )
    if is_main:
        log(f"{len(split.train)} training clips, {len(val_refs)} validation clips from {len(split.sources)} videos")

    model = MSVQVAE(model_config).to(device)
    perceptual = (
        PerceptualLoss(load_vgg_weights(options.vgg_weights), config.perceptual_norm).to(device) if config.gamma > 0 else None
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.adam_betas)
    steps_per_epoch = math.ceil(len(train_set) / world / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    use_scaler = device.type == "cuda" and config.amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    epoch, batch_start, step, history = 0, 0, 0, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        epoch, batch_start, step, history = ckpt["epoch"], ckpt["batch"], ckpt["step"], list(ckpt["history"])
        set_rng_state(ckpt["rng"])
        if is_main:
            log(f"resumed from {options.resume} at epoch {epoch}, step {step}")
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )
    model.train()

    def checkpoint(name: str) -> Path:
        path = run_dir / name
        if is_main:
            save_checkpoint(
                path,
                model_config=model_config.to_json(),
                train_config=json.dumps(dataclasses.asdict(config)),
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict() if use_scaler else None,
                epoch=epoch,
                batch=batch_start,
                step=step,
                rng=rng_state(),
                history=history,
            )
        return path

    log_file = (run_dir / "log.jsonl").open("a") if is_main else None
    started = time.monotonic()
    first_step = step
    final = run_dir / "last.pt"
    stop = False
    while epoch < config.epochs and not stop:
        train_set.epoch = epoch
        order = epoch_order(len(train_set), config.seed, epoch)[rank::world]
        batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
        loader = DataLoader(
            Subset(train_set, [i for b in batches[batch_start:] for i in b]),
            batch_size=config.batch_size,
            num_workers=config.workers,
        )
        for clips in loader:
            t0 = time.monotonic()
            clips = clips.to(device, non_blocking=True)
            with _autocast(device, config.amp):
                out = net(clips)
                recon_loss = F.mse_loss(out.recon.float(), clips)
                perc_loss = perceptual(out.recon, clips) if perceptual is not None else torch.zeros((), device=device)
                loss = recon_loss + config.beta * out.vq_loss + config.gamma * perc_loss
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            batch_start += 1
            with torch.no_grad():
                mse = F.mse_loss(out.recon.detach().float().clamp(0, 1), clips).item()
            record = {
                "step": step,
                "epoch": epoch,
                "loss": loss.item(),
                "recon": recon_loss.item(),
                "vq": out.vq_loss.item(),
                "perc": perc_loss.item(),
                "psnr": 10 * math.log10(1 / max(mse, 1e-10)),
                "lr": scheduler.get_last_lr()[0],
                "total_steps": total_steps,
                "sec": time.monotonic() - t0,
            }
            if log_file:
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
            if on_step and is_main:
                on_step(record)
            out_of_time = config.max_minutes and (time.monotonic() - started) / 60 >= config.max_minutes
            stopped_here = options.stop_after and step - first_step >= options.stop_after
            if (config.max_steps and step >= config.max_steps) or out_of_time or stopped_here:
                stop = True
                break
        if not stop:
            epoch, batch_start = epoch + 1, 0
            if val_loader is not None and (epoch % config.val_every == 0 or epoch == config.epochs) and is_main:
                metrics = {"epoch": epoch, "step": step, **validate(model, val_loader, device)}
                history.append(metrics)
                log(f"epoch {epoch}: val PSNR {metrics['val_psnr']:.2f} dB, SSIM {metrics['val_ssim']:.4f}")
                if log_file:
                    log_file.write(json.dumps(metrics) + "\n")
                    log_file.flush()
            if epoch % config.checkpoint_every == 0:
                checkpoint(f"epoch{epoch:03d}.pt")
    if stop and val_loader is not None and is_main:
        metrics = {"epoch": epoch, "step": step, **validate(model, val_loader, device)}
        history.append(metrics)
        log(f"stopped at step {step}: val PSNR {metrics['val_psnr']:.2f} dB, SSIM {metrics['val_ssim']:.4f}")
        if log_file:
            log_file.write(json.dumps(metrics) + "\n")
    checkpoint(final.name)
    if log_file:
        log_file.close()
    if world > 1:
        dist.barrier()
    return final
