"""Training: the loss falls on generated clips, resume is exact, DDP keeps codebooks in sync, export works."""

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from msvq_codec.config import TrainConfig, model_preset
from msvq_codec.errors import UsageError
from msvq_codec.model.levels import level_use
from msvq_codec.model.vqvae import MSVQVAE
from msvq_codec.model.weights import load_weights
from msvq_codec.train.checkpoint import export, load_checkpoint
from msvq_codec.train.data import build_split
from msvq_codec.train.loop import RunOptions, train


def moving_pattern(n_frames: int, seed: int, size: int = 80) -> np.ndarray:
    """uint8 [n, size, size, 3]: a smooth colour pattern drifting across the frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 3)
    freq = rng.uniform(0.05, 0.2, 3)
    frames = []
    for t in range(n_frames):
        chans = [np.sin(freq[c] * (xx + 1.5 * t) + phase[c]) * np.cos(freq[c] * (yy - t) + phase[c]) for c in range(3)]
        frames.append(((np.stack(chans, -1) + 1) * 127.5).astype(np.uint8))
    return np.stack(frames)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for i in range(4):
        np.save(root / f"video{i}.npy", moving_pattern(70, seed=i))  # 2 full clips each at 16 fps
    (root / "val.txt").write_text("video3.npy\n")
    return root


def run(data_dir, run_dir, steps, *, epochs=3, stop_after=0, resume=None, init_from=None, gamma=0.0, augment=False,
        lr=2e-3, reseed_top=False, model=None, **recipe):
    config = TrainConfig(
        gamma=gamma, lr=lr, batch_size=2, epochs=epochs, max_steps=steps, augment=augment, seed=1, **recipe
    )
    options = RunOptions(
        data_dir, run_dir, "files", data_dir / "val.txt", cache_dir=run_dir.parent / "cache",
        device="cpu", resume=resume, init_from=init_from, stop_after=stop_after, reseed_top=reseed_top,
    )  # fmt: skip
    return train(model or model_preset("tiny"), config, options, log=lambda _: None)


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_split_by_val_list(data_dir, tmp_path):
    split = build_split(
        data_dir, "files", tmp_path / "cache", clip_size=64, cache_size=64, fps=16.0, clip_frames=32, seed=0,
        val_list=data_dir / "val.txt",
    )  # fmt: skip
    assert len(split.train) == 6 and len(split.val) == 2
    assert {split.sources[r.video].name for r in split.val} == {"video3.npy"}


@pytest.fixture(scope="module")
def ucf_tree(tmp_path_factory):
    """An extracted-UCF-101-like tree of .npy clips, with the split lists in a folder of their own."""
    root = tmp_path_factory.mktemp("ucf")
    for c, cls in enumerate(["Archery", "Rowing"]):
        (root / "UCF-101" / cls).mkdir(parents=True)
        for g in range(1, 4):
            np.save(root / "UCF-101" / cls / f"v_{cls}_g{g:02d}_c01.npy", moving_pattern(70, seed=10 * c + g))
    (root / "lists").mkdir()
    (root / "lists" / "testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\nRowing/v_Rowing_g01_c01.avi\n")
    return root


def test_official_split_reads_the_lists_folder(ucf_tree, tmp_path):
    split = build_split(
        ucf_tree / "UCF-101", "official:1", tmp_path / "cache", clip_size=64, cache_size=64, fps=16.0,
        clip_frames=32, seed=0, splits_dir=ucf_tree / "lists",
    )  # fmt: skip
    val_names = {split.sources[r.video].stem for r in split.val}
    assert val_names == {"v_Archery_g01_c01", "v_Rowing_g01_c01"}
    assert len(split.train) == 8 and len(split.val) == 4


def test_paper_split_is_class_preserving_seeded_and_written(ucf_tree, tmp_path):
    kwargs = dict(clip_size=64, cache_size=64, fps=16.0, clip_frames=32, seed=3)
    a = build_split(ucf_tree / "UCF-101", "paper", tmp_path / "cache", run_dir=tmp_path, **kwargs)
    b = build_split(ucf_tree / "UCF-101", "paper", tmp_path / "cache", **kwargs)
    assert a.train == b.train and a.val == b.val
    record = json.loads((tmp_path / "split.json").read_text())
    for cls in ("Archery", "Rowing"):  # 6 clips a class: 4 train, 1 val, 1 test
        assert sum(cls in path for path, _ in record["train"]) == 4
        assert sum(cls in path for path, _ in record["val"]) == 1
        assert sum(cls in path for path, _ in record["test"]) == 1


def test_loss_falls_and_validation_psnr_rises(data_dir, tmp_path):
    final = run(data_dir, tmp_path / "run", steps=30, epochs=10)
    steps = [r for r in records(tmp_path / "run") if "loss" in r]
    first, last = np.mean([r["loss"] for r in steps[:3]]), np.mean([r["loss"] for r in steps[-3:]])
    assert last < 0.9 * first
    history = load_checkpoint(final)["history"]
    assert history[-1]["val_psnr"] > history[0]["val_psnr"]


def test_resume_is_exact(data_dir, tmp_path):
    # fp32 (the resumed run takes the checkpoint's config): on a CPU with bf16 arithmetic, autocast's oneDNN bf16
    # kernels may round an element differently in a new process (seen: one top codebook row, one bf16 step)
    straight = load_checkpoint(run(data_dir, tmp_path / "a", steps=6, augment=True, amp=False))
    part = run(data_dir, tmp_path / "b", steps=6, stop_after=4, augment=True, amp=False)
    assert load_checkpoint(part)["step"] == 4
    resumed = load_checkpoint(run(data_dir, tmp_path / "b", steps=6, resume=part))
    assert resumed["step"] == 6
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert straight["optimizer"]["state"][0]["exp_avg"].equal(resumed["optimizer"]["state"][0]["exp_avg"])


def test_perceptual_loss_trains_with_real_vgg(data_dir, tmp_path):
    from msvq_codec.errors import WeightsError
    from msvq_codec.vgg import load_vgg_weights

    try:
        load_vgg_weights()
    except WeightsError:
        pytest.skip("VGG16 weights not cached: run 'msvq fetch-vgg'")
    run(data_dir, tmp_path / "perc", steps=2, gamma=0.4)
    assert all(r["perc"] > 0 for r in records(tmp_path / "perc") if "perc" in r)


def test_export_writes_weights_that_load(data_dir, tmp_path):
    final = run(data_dir, tmp_path / "run", steps=2)
    mid = export(final, tmp_path / "w.safetensors", {"note": "test"})
    loaded = load_weights(tmp_path / "w.safetensors")
    assert loaded.model_id == mid
    assert loaded.metadata["steps"] == 2 and loaded.metadata["note"] == "test"
    assert loaded.metadata["train_config"]["batch_size"] == 2


def _quantiser_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from msvq_codec.model.quantizer import EMAQuantizer

    torch.manual_seed(rank)  # each process sees different data and draws different random numbers
    q = EMAQuantizer(codebook_size=16, dim=4, decay=0.9, eps=1e-5, dead_threshold=0.5)
    q.train()
    for _ in range(5):
        q(torch.randn(2, 4, 3, 4, 4) + rank)
    torch.save(q.state_dict(), f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_codebook_statistics_are_reduced_across_processes(tmp_path):
    port = 29500 + os.getpid() % 1000
    mp.start_processes(_quantiser_worker, args=(2, port, str(tmp_path)), nprocs=2, start_method="spawn")
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_torchrun_two_gloo_processes(data_dir, tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(30500 + os.getpid() % 1000), "-m", "msvq_codec"]  # fmt: skip
    args = ["train", "--data", str(data_dir), "--val-list", str(data_dir / "val.txt"), "--run-dir", str(tmp_path / "ddp"),
            "--cache-dir", str(tmp_path / "cache"), "--config", "tiny", "--no-perceptual", "--batch-size", "1",
            "--max-steps", "3", "--device", "cpu"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(torchrun + args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert load_checkpoint(tmp_path / "ddp" / "last.pt")["step"] == 3


def test_resume_is_exact_with_the_cpu_recipe_levers(data_dir, tmp_path):
    levers = dict(schedule="constant", warmup_steps=3, weight_ema=0.9, dead_code_fraction=0.1, grad_clip=1.0)
    straight = load_checkpoint(run(data_dir, tmp_path / "a", steps=6, **levers))
    part = run(data_dir, tmp_path / "b", steps=6, stop_after=4, **levers)
    resumed = load_checkpoint(run(data_dir, tmp_path / "b", steps=6, resume=part, **levers))
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    for key, value in straight["weight_average"].items():
        assert torch.equal(value, resumed["weight_average"][key]), key


def test_constant_schedule_warms_up_then_holds(data_dir, tmp_path):
    run(data_dir, tmp_path / "run", steps=6, lr=1e-3, schedule="constant", warmup_steps=4)
    lrs = [r["lr"] for r in records(tmp_path / "run") if "lr" in r]  # the rate for the step after each
    assert lrs == pytest.approx([2.5e-4 * 2, 2.5e-4 * 3, 1e-3, 1e-3, 1e-3, 1e-3])


def test_log_records_codebook_use_per_level(data_dir, tmp_path):
    run(data_dir, tmp_path / "run", steps=2, dead_code_fraction=0.1)
    step = next(r for r in records(tmp_path / "run") if "loss" in r)
    for level in ("top", "bottom"):
        assert 1 <= step[f"{level}_used"] <= 32 and 1.0 <= step[f"{level}_ppl"] <= step[f"{level}_used"]
        assert step[f"{level}_restarts"] >= 0
    val = next(r for r in records(tmp_path / "run") if "val_psnr" in r)
    assert 1 <= val["val_top_used"] <= 32
    for level in ("top", "bottom"):  # the validation clips: two of one video here
        assert 1 <= val[f"val_{level}_grids"] <= val["val_clips"] == 2
        assert 1.0 <= val[f"val_{level}_ppl"] <= val[f"val_{level}_used"]
    assert math.isfinite(val["val_top_gain"])  # the PSNR the top level adds (0 where it is the same for both)


def test_reseed_top_seeds_the_top_codebook_anew_from_encoder_outputs(data_dir, tmp_path):
    export(run(data_dir, tmp_path / "a", steps=2), tmp_path / "w.safetensors")
    start = load_weights(tmp_path / "w.safetensors").model
    kept = load_checkpoint(run(data_dir, tmp_path / "b", steps=1, init_from=tmp_path / "w.safetensors"))
    seeded = load_checkpoint(run(data_dir, tmp_path / "c", steps=1, init_from=tmp_path / "w.safetensors",
                                 reseed_top=True))  # fmt: skip

    def moved(ckpt, level):
        return (ckpt["model"][f"quantizer_{level}.embed"] - getattr(start, f"quantizer_{level}").embed).norm(dim=1)

    assert moved(seeded, "top").median() > 10 * moved(kept, "top").median()  # new entries, not a step's drift
    assert moved(seeded, "bottom").median() < 3 * moved(kept, "bottom").median()  # the bottom: a step's drift
    with pytest.raises(UsageError, match="reseed_top needs init_from"):
        run(data_dir, tmp_path / "d", steps=1, reseed_top=True)


@pytest.mark.parametrize("join, recipe", [("concat", dict(hide_bottom=0.25)), ("residual", {})])
def test_a_trained_models_top_grid_varies_with_the_clip(data_dir, tmp_path, join, recipe):
    # the failure the shipped weights show: one top grid for every clip (a top level that carries nothing);
    # the paper's model keeps its top level working with hide_bottom, the residual join by itself
    config = dataclasses.replace(model_preset("tiny"), top_join=join)
    final = run(data_dir, tmp_path / "run", steps=9, model=config, **recipe)
    model = MSVQVAE(config)
    model.load_state_dict(load_checkpoint(final)["model"])
    model.eval()
    clips = torch.stack([torch.from_numpy(moving_pattern(32, seed=s, size=64)).permute(3, 0, 1, 2) for s in range(4)])
    codes = model.encode(clips.float() / 255)  # four different videos: [4, 3, 32, 64, 64]
    assert level_use(codes.top).grids > 1
    val = next(r for r in records(tmp_path / "run") if "val_top_grids" in r)
    assert val["val_top_grids"] > 1


def test_hiding_positions_or_a_falling_share_trains(data_dir, tmp_path):
    # the loop builds a per-position mask of the bottom grid's shape, and a share that falls to 0 stops hiding
    for name, recipe in (("pos", dict(hide_bottom_unit="position")), ("fall", dict(hide_bottom_steps=2))):
        final = load_checkpoint(run(data_dir, tmp_path / name, steps=3, hide_bottom=0.5, **recipe))
        assert final["step"] == 3 and all(math.isfinite(r["loss"]) for r in records(tmp_path / name) if "loss" in r)


def test_weight_average_is_validated_and_exported(data_dir, tmp_path):
    final = run(data_dir, tmp_path / "run", steps=4, weight_ema=0.5)
    ckpt = load_checkpoint(final)
    assert "ema_val_psnr" in ckpt["history"][-1]
    export(final, tmp_path / "avg.safetensors")
    export(final, tmp_path / "raw.safetensors", raw=True)
    avg, raw = load_weights(tmp_path / "avg.safetensors"), load_weights(tmp_path / "raw.safetensors")
    assert avg.metadata["weights"] == "weight average" and raw.metadata["weights"] == "raw"
    key = "decoder.4.weight"  # the decoder's last conv
    assert torch.equal(avg.model.state_dict()[key], ckpt["weight_average"][key].half().float())
    assert not torch.equal(avg.model.state_dict()[key], raw.model.state_dict()[key])


def test_init_from_weights_starts_from_them_with_a_fresh_optimiser(data_dir, tmp_path):
    export(run(data_dir, tmp_path / "first", steps=3), tmp_path / "w.safetensors")
    start = load_weights(tmp_path / "w.safetensors").model.state_dict()
    final = run(data_dir, tmp_path / "second", steps=1, lr=0.0, init_from=tmp_path / "w.safetensors")
    ckpt = load_checkpoint(final)
    assert ckpt["step"] == 1  # a new run: fresh optimiser and step count
    assert ckpt["optimizer"]["state"][0]["step"] == 1
    for name, _ in MSVQVAE(model_preset("tiny")).named_parameters():  # lr 0: the parameters did not move
        assert torch.equal(ckpt["model"][name], start[name]), name


def test_init_from_checkpoint_is_a_new_phase_that_carries_the_optimiser(data_dir, tmp_path):
    first = run(data_dir, tmp_path / "first", steps=3, lr=1e-3)
    final = run(data_dir, tmp_path / "second", steps=2, lr=5e-4, schedule="constant", init_from=first)
    ckpt = load_checkpoint(final)
    assert ckpt["step"] == 5 and ckpt["phase_start"] == 3  # steps count on across phases
    assert ckpt["epoch"] > load_checkpoint(first)["epoch"]  # and the data moves on to a new epoch
    assert ckpt["optimizer"]["state"][0]["step"] == 5  # Adam's moments carried over
    assert json.loads(ckpt["train_config"])["schedule"] == "constant"  # the new phase's recipe
    lrs = [r["lr"] for r in records(tmp_path / "second") if "lr" in r]
    assert lrs == pytest.approx([5e-4, 5e-4])  # no warmup: the moments are warm


def test_resume_and_init_from_exclude_each_other(data_dir, tmp_path):
    from msvq_codec.errors import UsageError

    first = run(data_dir, tmp_path / "first", steps=1)
    with pytest.raises(UsageError):
        run(data_dir, tmp_path / "second", steps=1, resume=first, init_from=first)


def test_channels_last_trains_the_same_function_and_exports_plain_weights(data_dir, tmp_path):
    run(data_dir, tmp_path / "plain", steps=3, amp=False)
    last = run(data_dir, tmp_path / "cl", steps=3, amp=False, channels_last=True)
    losses = [[r["loss"] for r in records(tmp_path / name) if "loss" in r] for name in ("plain", "cl")]
    assert np.allclose(losses[0], losses[1], rtol=1e-4), losses  # the same maths in another memory layout
    state = load_checkpoint(last)["model"]
    conv = state["enc_bottom.0.weight"]  # [out, in, t, h, w]
    assert conv.is_contiguous(memory_format=torch.channels_last_3d) and not conv.is_contiguous()
    export(last, tmp_path / "w.safetensors")
    for name, tensor in load_weights(tmp_path / "w.safetensors").model.state_dict().items():
        expected = state[name].half().float() if state[name].is_floating_point() else state[name]
        assert tensor.is_contiguous() and torch.equal(tensor.to(expected.dtype), expected), name


def test_epoch_batches_give_each_clip_once_per_epoch_split_across_ranks():
    from msvq_codec.train.data import Draw
    from msvq_codec.train.loop import EpochBatches

    shares = [EpochBatches(11, 2, seed=5, rank=r, world=2) for r in range(2)]
    for epoch in range(3):
        seen = []
        for sampler in shares:
            sampler.epoch, sampler.start = epoch, 0
            batches = list(sampler)
            assert len(batches) == len(sampler) and all(len(b) <= 2 for b in batches)
            assert all(isinstance(d, Draw) and d.epoch == epoch for b in batches for d in b)
            seen += [d.index for b in batches for d in b]
        assert sorted(seen) == list(range(11))
    sampler = shares[0]
    whole = list(sampler)
    sampler.start = 2  # a resumed epoch skips the batches it already took
    assert list(sampler) == whole[2:] and len(sampler) == len(whole) - 2
    sampler.epoch = 1
    assert list(sampler) != whole[2:]  # each epoch has its own order


def test_workers_that_live_across_epochs_draw_what_the_loop_draws(data_dir, tmp_path):
    # 6 training clips, batch 2: 3 batches an epoch, over three epochs; the augmentation draws come from the
    # Draw keys, so forked workers (kept alive, as the loop keeps them) give exactly the clips the loop's own
    # process draws. (Compared as data: weights trained on them agree only to float rounding, since batches
    # from the workers' shared memory sit at other addresses, where oneDNN's kernels may sum in another order.)
    from torch.utils.data import DataLoader

    from msvq_codec.train.data import ClipDataset
    from msvq_codec.train.loop import TRAIN_CACHE_SIZE, EpochBatches

    split = build_split(data_dir, "files", tmp_path / "cache", clip_size=64, cache_size=TRAIN_CACHE_SIZE, fps=16.0,
                        clip_frames=32, seed=1, val_list=data_dir / "val.txt")  # fmt: skip
    dataset = ClipDataset(split.train_caches, split.train, 32, 64, True, 1)

    def draws(workers: int) -> list[torch.Tensor]:
        batches = EpochBatches(len(dataset), 2, 1, 0, 1)
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, persistent_workers=workers > 0)
        out = []
        for epoch in range(3):
            batches.epoch = epoch
            out += list(loader)
        return out

    alone, forked = draws(0), draws(2)
    assert len(alone) == len(forked) == 9 and all(a.dtype == torch.uint8 for a in alone)
    assert all(torch.equal(a, b) for a, b in zip(alone, forked))
    assert not torch.equal(alone[0], alone[3]) or not torch.equal(alone[1], alone[4])  # epochs draw anew
    steps = load_checkpoint(run(data_dir, tmp_path / "b", steps=8, augment=True, workers=2))
    assert steps["epoch"] == 2 and steps["step"] == 8  # and the loop trains across epochs with them


def test_augmented_clip_is_drawn_from_the_epoch_its_key_names(data_dir):
    from msvq_codec.train.data import ClipDataset, ClipRef, Draw

    dataset = ClipDataset([data_dir / "video0.npy"], [ClipRef(0, 0), ClipRef(0, 32)], 32, 64, augment=True, seed=3)
    assert torch.equal(dataset[Draw(1, 1)], dataset[Draw(1, 1)])
    assert not torch.equal(dataset[Draw(0, 1)], dataset[Draw(1, 1)])
    assert torch.equal(dataset[1], dataset[Draw(0, 1)])  # a bare index (validation's) draws as epoch 0


def test_clips_travel_as_bytes_and_become_the_cached_frames_over_255(data_dir):
    from msvq_codec.train.data import ClipDataset, ClipRef, to_unit

    frames = np.load(data_dir / "video0.npy")[32:64]  # [T, H, W, 3]: a cache at the clip's own side
    side = frames.shape[1]
    clip = ClipDataset([data_dir / "video0.npy"], [ClipRef(0, 32)], 32, side, augment=False, seed=0)[0]
    assert clip.dtype == torch.uint8 and clip.shape == (3, 32, side, side)
    assert np.array_equal(clip.permute(1, 2, 3, 0).numpy(), frames)
    unit = to_unit(clip[None], torch.device("cpu"), torch.channels_last_3d)
    assert unit.dtype == torch.float32 and unit.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(unit[0], torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255)
