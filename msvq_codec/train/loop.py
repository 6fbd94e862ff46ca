"""The training loop: the paper's recipe (Sections 4.1-4.2) and this project's CPU recipe, on a CPU, one GPU,
or many under torchrun (DDP).

    L = L_recon + beta * L_VQ + gamma * L_perc
    L_recon: MSE of the reconstruction; L_VQ: commitment of both levels (codebooks follow EMAs);
    L_perc:  L1 between VGG16 relu1_2/relu2_2/relu3_3 features of every frame (see msvq_codec.vgg)
    paper: Adam(0.9, 0.999), lr 2e-4, cosine annealing per step, batch 8, 50 epochs, checkpoints every 10.

A run starts from scratch, continues exactly (``resume``: the checkpoint's configs, optimiser, schedule, data
position and RNG), or starts a new phase from earlier training (``init_from``): from a weights file (model and
codebooks, a fresh optimiser) or from a checkpoint (model, codebooks, optimiser moments and weight average
carried over; the new TrainConfig and a new schedule apply). Each epoch visits the training clips in an order
fixed by (seed, epoch). Under DDP each process takes every world_size-th clip of that order and the codebook
statistics are summed across processes (msvq_codec.model.quantizer).
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from msvq_codec.config import ModelConfig, TrainConfig
from msvq_codec.device import pick_device
from msvq_codec.errors import UsageError
from msvq_codec.metrics import clip_psnr, clip_ssim
from msvq_codec.model.levels import level_use, most_common_grid, with_top
from msvq_codec.model.quantizer import code_counts
from msvq_codec.model.vqvae import MSVQVAE, Codes
from msvq_codec.model.weights import load_weights
from msvq_codec.train.checkpoint import configs_of, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from msvq_codec.train.data import ClipDataset, Draw, build_split, to_unit
from msvq_codec.vgg import PerceptualLoss, load_vgg_weights

TRAIN_CACHE_SIZE = 96  # cached frame side when augmenting: crops of 60-100% keep >= 64 px of detail
RECENT_STEPS = 50  # log records carry the mean training PSNR over this many latest steps


@dataclass(frozen=True)
class RunOptions:
    data: Path  # folder of videos (or an extracted UCF-101 tree)
    run_dir: Path  # checkpoints, log.jsonl, split.json
    split: str = "files"  # files | paper | official:K (see msvq_codec.train.data)
    val_list: Path | None = None  # for split 'files': the validation files
    cache_dir: Path | None = None  # prepared frames (default: <run_dir>/../cache)
    device: str = "auto"  # auto | cpu | cuda
    vgg_weights: Path | None = None  # explicit VGG16 weights (see msvq_codec.vgg)
    resume: Path | None = None  # checkpoint to continue from exactly
    init_from: Path | None = None  # weights (.safetensors) or checkpoint to start a new phase from
    max_val_clips: int = 0  # validate on at most this many clips (0: all)
    splits_dir: Path | None = None  # for split 'official:K': the folder holding UCF101's testlist0K.txt
    stop_after: int = 0  # end this invocation after N steps with a checkpoint; the schedule is unchanged,
    # so a later resume continues as if never stopped (for pre-emptible jobs)
    reseed_top: bool = False  # with init_from: seed the top codebook anew from the first batch's top encoder
    # outputs (for weights whose top level collapsed to a constant grid)
    model_given: bool = False  # the model config was asked for (a preset or its options): a file to start from
    # (resume, init_from) must hold that model, not silently replace it


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


class EpochBatches(Sampler):
    """The batches of one epoch, from batch ``start`` on: this process's share (every ``world``-th clip from
    ``rank``) of the order fixed by (seed, epoch), as ``Draw`` keys. The loop sets ``epoch`` and ``start``
    before each pass; the sampler runs in the loop's process, so one DataLoader, and its worker processes,
    serve the whole run instead of starting anew every epoch."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world: int):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.start = 0, 0

    def _batches(self) -> list[list[int]]:
        order = epoch_order(self.n, self.seed, self.epoch)[self.rank :: self.world]
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def __iter__(self):
        for batch in self._batches()[self.start :]:
            yield [Draw(self.epoch, i) for i in batch]

    def __len__(self) -> int:
        return max(0, math.ceil(len(range(self.rank, self.n, self.world)) / self.batch_size) - self.start)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int, warmup: int):
    """The per-step learning-rate schedule of ``config``: the paper's cosine, or warmup then constant."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)


class WeightAverage:
    """An exponential moving average of a model's parameters; buffers (the codebooks) are the live model's."""

    def __init__(self, model: MSVQVAE, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: MSVQVAE) -> None:
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()), 1.0 - self.decay)

    @torch.no_grad()
    def synced(self, model: MSVQVAE) -> MSVQVAE:
        """The averaged model with ``model``'s current buffers (codebooks and their statistics)."""
        for mine, live in zip(self.model.buffers(), model.buffers()):
            mine.copy_(live)
        return self.model


def codebook_stats(model: MSVQVAE, codes) -> dict[str, torch.Tensor]:
    """Per level: distinct entries used by ``codes``, their perplexity, and the latest step's restarts, as
    0-dim tensors on the model's device (read with the step's other figures, in one wait for the device)."""
    stats: dict[str, torch.Tensor] = {}
    for name, indices in zip(model.config.level_names, codes.by_level()):
        quantizer = getattr(model, f"quantizer_{name}")
        stats[f"{name}_used"] = (code_counts(indices, quantizer.codebook_size) > 0).sum()
        stats[f"{name}_ppl"] = quantizer.usage(indices)
        stats[f"{name}_restarts"] = torch.as_tensor(quantizer.last_restarts, device=indices.device)
    return stats


def read_figures(figures: dict[str, torch.Tensor]) -> dict[str, float]:
    """Scalar tensors to Python numbers in one transfer: each ``.item()`` would wait for the device, and a
    GPU step that waits often leaves the device idle while Python queues the next kernels. Counts (``*_used``,
    ``*_restarts``) come back as ints, perplexities rounded to 0.1."""
    values = torch.stack([v.detach().float().reshape(()) for v in figures.values()]).tolist()
    out: dict[str, float] = {}
    for key, value in zip(figures, values):
        if key.endswith(("_used", "_restarts")):
            value = int(value)
        elif key.endswith("_ppl"):
            value = round(value, 1)
        out[key] = value
    return out


@torch.no_grad()
def validate(model: MSVQVAE, loader: DataLoader, device: torch.device, prefix: str = "val") -> dict[str, float]:
    """The codec's real path: encode to codes, decode, round to 8 bits; PSNR and SSIM per clip, averaged. Per
    level (``model.levels``): codebook entries used, distinct grids across the clips, the codes' perplexity;
    and for a two-level model ``top_gain``, the PSNR lost when every clip's top grid is replaced by the most
    common one (0 dB: the top level carries nothing)."""
    was_training = model.training
    model.eval()
    psnrs, ssims = [], []
    batches: list[Codes] = []
    for clips in loader:
        clips = to_unit(clips, torch.device("cpu"))  # [b, 3, T, H, W], the reference stays here
        codes = model.encode(clips.to(device))
        batches.append(Codes(*(None if c is None else c.cpu() for c in codes)))
        recon = model.decode(codes).float().cpu()  # [b, 3, T, H, W]
        for ref, out in zip(clips, recon):
            psnrs.append(clip_psnr(*(x.permute(1, 2, 3, 0).numpy() for x in (ref, out))))  # [T, H, W, 3]
            ssims.append(clip_ssim(*(x.permute(1, 2, 3, 0).numpy() for x in (ref, out))))
    result = {f"{prefix}_psnr": float(np.mean(psnrs)), f"{prefix}_ssim": float(np.mean(ssims)), "val_clips": len(psnrs)}
    for i, name in enumerate(model.config.level_names):
        use = level_use(torch.cat([c.by_level()[i] for c in batches]))  # [n_clips, t, h, w]
        result.update({f"{prefix}_{name}_used": use.codes, f"{prefix}_{name}_grids": use.grids,
                       f"{prefix}_{name}_ppl": round(use.perplexity, 1)})  # fmt: skip
    if model.config.levels == 2 and batches:
        grid = most_common_grid(torch.cat([c.top for c in batches]))
        fixed = []
        for clips, codes in zip(loader, batches):
            fixed_codes = with_top(codes, grid)
            recon = model.decode(Codes(fixed_codes.top.to(device), fixed_codes.bottom.to(device))).float().cpu()
            refs = to_unit(clips, torch.device("cpu"))
            fixed += [clip_psnr(*(x.permute(1, 2, 3, 0).numpy() for x in (ref, out))) for ref, out in zip(refs, recon)]
        result[f"{prefix}_top_gain"] = result[f"{prefix}_psnr"] - float(np.mean(fixed))
    model.train(was_training)
    return result


class Start(NamedTuple):
    model_config: ModelConfig
    config: TrainConfig
    checkpoint: dict[str, Any] | None  # a checkpoint whose state continues (resume or init_from a .pt)
    exact: bool  # True: resume exactly (schedule, data position, RNG); False: a new phase
    weights: dict[str, torch.Tensor] | None  # init_from a weights file: its state_dict (float32)


def _starting_point(model_config: ModelConfig, config: TrainConfig, options: RunOptions) -> Start:
    if options.resume and options.init_from:
        raise UsageError("resume and init_from exclude each other")
    if options.resume:  # a resumed run keeps the configs it started with
        ckpt = load_checkpoint(options.resume)
        start = Start(*configs_of(ckpt), ckpt, True, None)
    elif options.init_from and Path(options.init_from).suffix == ".safetensors":
        loaded = load_weights(options.init_from)  # the weights' own model config
        state = {k: v.float() if v.is_floating_point() else v for k, v in loaded.model.state_dict().items()}
        start = Start(loaded.model.config, config, None, False, state)
    elif options.init_from:
        ckpt = load_checkpoint(options.init_from)  # a new phase of the same model
        start = Start(configs_of(ckpt)[0], config, ckpt, False, None)
    else:
        return Start(model_config, config, None, False, None)
    if options.model_given and start.model_config != model_config:
        differ = [f.name for f in dataclasses.fields(ModelConfig)
                  if getattr(start.model_config, f.name) != getattr(model_config, f.name)]  # fmt: skip
        raise UsageError(f"{options.resume or options.init_from} holds another model than the one asked for "
                         f"({', '.join(differ)}); leave out the model options to continue its own")  # fmt: skip
    return start


def train(
    model_config: ModelConfig,
    config: TrainConfig,
    options: RunOptions,
    log: Callable[[str], None] = print,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Run, resume or continue training; returns the path of the final checkpoint."""
    device = pick_device(options.device)
    rank, world, device = _setup_distributed(device)
    is_main = rank == 0
    run_dir = options.run_dir
    model_config, config, ckpt, exact, start_weights = _starting_point(model_config, config, options)
    run_dir.mkdir(parents=True, exist_ok=True)

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
    if start_weights is not None:
        model.load_state_dict(start_weights)
        for quantizer in (m for m in model.modules() if hasattr(m, "resync_ema")):
            quantizer.resync_ema()
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    if options.reseed_top:
        if not options.init_from or model_config.levels != 2:
            raise UsageError("reseed_top needs init_from and a two-level model")
        model.quantizer_top.initialized.fill_(False)  # the first training step seeds it from encoder outputs
        model.quantizer_top._seeded = False
    memory_format = torch.channels_last_3d if config.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    for quantizer in (m for m in model.modules() if hasattr(m, "dead_fraction")):
        quantizer.dead_fraction = config.dead_code_fraction
    perceptual = (
        PerceptualLoss(load_vgg_weights(options.vgg_weights), config.perceptual_norm).to(device) if config.gamma > 0 else None
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.adam_betas)
    steps_per_epoch = math.ceil(len(train_set) / world / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    average = WeightAverage(model, config.weight_ema) if config.weight_ema else None
    use_scaler = device.type == "cuda" and config.amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    epoch, batch_start, step, phase_start, history = 0, 0, 0, 0, []
    scheduler = make_scheduler(optimizer, config, total_steps, 0 if ckpt is not None else config.warmup_steps)
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])  # after the scheduler is built, which sets the rate
        step, history = ckpt["step"], list(ckpt["history"])
        if average is not None and ckpt.get("weight_average"):
            average.model.load_state_dict(ckpt["weight_average"])
    if ckpt is not None and exact:
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        epoch, batch_start, phase_start = ckpt["epoch"], ckpt["batch"], ckpt.get("phase_start", 0)
    elif ckpt is not None:  # a new phase: the moments carry over, the rate and schedule are this phase's
        for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr()):
            group["lr"], group["initial_lr"] = lr, config.lr
        phase_start = step
        epoch = ckpt["epoch"] + 1  # fresh data: the next epoch's order and augmentation draws
    if is_main and ckpt is not None:
        log(f"{'resumed' if exact else 'new phase'} from {options.resume or options.init_from} at step {step}")
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
                weight_average=average.synced(model).state_dict() if average is not None else None,
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict() if use_scaler else None,
                epoch=epoch,
                batch=batch_start,
                step=step,
                phase_start=phase_start,
                rng=rng_state(),
                history=history,
            )
        return path

    def validate_and_log(log_file, reason: str) -> None:
        if val_loader is None or not is_main:
            return
        metrics = {"epoch": epoch, "step": step, **validate(model, val_loader, device)}
        if average is not None:
            metrics.update(validate(average.synced(model), val_loader, device, prefix="ema_val"))
        history.append(metrics)
        ema = f", weight average {metrics['ema_val_psnr']:.2f} dB" if average is not None else ""
        top = (f"; top level: {metrics['val_top_grids']} distinct grids in {metrics['val_clips']} clips, "
               f"{metrics['val_top_gain']:.2f} dB of PSNR") if "val_top_gain" in metrics else ""
        log(f"{reason}: val PSNR {metrics['val_psnr']:.2f} dB, SSIM {metrics['val_ssim']:.4f}{ema}{top}")
        log_file.write(json.dumps(metrics) + "\n")
        log_file.flush()

    recent_psnr: collections.deque[float] = collections.deque(maxlen=RECENT_STEPS)
    started = last_save = time.monotonic()
    first_step = step
    final = run_dir / "last.pt"
    stop = False
    with open(run_dir / "log.jsonl", "a") if is_main else open(os.devnull, "w") as log_file:
        batches = EpochBatches(len(train_set), config.batch_size, config.seed, rank, world)
        loader = DataLoader(
            train_set,
            batch_sampler=batches,
            num_workers=config.workers,
            persistent_workers=config.workers > 0,
            pin_memory=device.type == "cuda",
        )
        while epoch < config.epochs and not stop:
            batches.epoch, batches.start = epoch, batch_start
            for clips in loader:
                t0 = time.monotonic()
                clips = to_unit(clips, device, memory_format)  # [b, 3, T, H, W]
                with _autocast(device, config.amp):
                    hide = None  # bool [b]: clips decoded from their top codes alone; [b, t, h, w]: positions hidden
                    share = config.hide_share(step - phase_start)
                    if share:
                        unit = () if config.hide_bottom_unit == "clip" else model_config.grid("bottom")
                        hide = torch.rand((clips.shape[0], *unit), device=device) < share
                    out = net(clips, hide)
                    recon_loss = F.mse_loss(out.recon.float(), clips)
                    perc_loss = perceptual(out.recon, clips) if perceptual is not None else torch.zeros((), device=device)
                    loss = recon_loss + config.beta * out.vq_loss + config.gamma * perc_loss
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or math.inf)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                if average is not None:
                    average.update(model)
                step += 1
                batch_start += 1
                with torch.no_grad():
                    mse = F.mse_loss(out.recon.detach().float().clamp(0, 1), clips)
                figures = read_figures(
                    {"loss": loss, "recon": recon_loss, "vq": out.vq_loss, "perc": perc_loss, "mse": mse,
                     "grad_norm": grad_norm, **codebook_stats(model, out.codes)}
                )  # fmt: skip
                recent_psnr.append(10 * math.log10(1 / max(figures.pop("mse"), 1e-10)))
                grad_norm = figures.pop("grad_norm")
                record = {
                    "step": step,
                    "epoch": epoch,
                    **{key: figures.pop(key) for key in ("loss", "recon", "vq", "perc")},
                    "psnr": recent_psnr[-1],
                    "psnr_recent": sum(recent_psnr) / len(recent_psnr),
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": grad_norm,
                    **figures,  # codebook use per level
                    "total_steps": phase_start + total_steps,  # where this phase ends
                    "sec": time.monotonic() - t0,
                }
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                if on_step and is_main:
                    on_step(record)
                if config.checkpoint_minutes and (time.monotonic() - last_save) / 60 >= config.checkpoint_minutes:
                    validate_and_log(log_file, f"step {step}")
                    checkpoint(final.name)
                    last_save = time.monotonic()
                out_of_time = config.max_minutes and (time.monotonic() - started) / 60 >= config.max_minutes
                stopped_here = options.stop_after and step - first_step >= options.stop_after
                if (config.max_steps and step - phase_start >= config.max_steps) or out_of_time or stopped_here:
                    stop = True
                    break
            if not stop:
                epoch, batch_start = epoch + 1, 0
                if epoch % config.val_every == 0 or epoch == config.epochs:
                    validate_and_log(log_file, f"epoch {epoch}")
                if epoch % config.checkpoint_every == 0:
                    checkpoint(f"epoch{epoch:03d}.pt")
        if stop:
            validate_and_log(log_file, f"stopped at step {step}")
        checkpoint(final.name)
    if world > 1:
        dist.barrier()
    return final
