"""Folder runs: encode every input under a folder, or decode every ``.msvq`` under one, into a mirrored tree.

    run_batch("encode", videos/, out/)   videos/a/b/clip.avi -> out/a/b/clip.msvq   (inputs: video.find_inputs)
    run_batch("decode", files/, out/)    files/a/b/clip.msvq -> out/a/b/clip.mp4    (every *.msvq, recursive)
    run_batch("codes", files/, out/)     files/a/b/clip.msvq -> out/a/b/clip.npz    (the index grids: ``codes``)

Every file is done on its own: one that fails is reported (status ``failed`` and its message) and the rest
are still done; the run's summary lists every file as ``ok``, ``skipped`` or ``failed``. Outputs are written
atomically by the codec, so an interrupted run leaves no partial file, and ``skip_existing`` resumes it.

``jobs > 1`` runs files in that many worker processes (spawned; each loads the model once and uses
``cpu_count // jobs`` torch threads); ``jobs == 1`` runs in this process.

Sharding (``shard=(K, N)``, written ``K/N`` on the command line, 0-based: ``0 <= K < N``): a file belongs to
shard ``K`` when the first 8 bytes of SHA-256 of its path relative to the input folder (POSIX form, UTF-8),
read as a big-endian integer, are ``K`` mod ``N``. So N machines given ``0/N`` .. ``N-1/N`` split one corpus
without talking to each other, together they do every file exactly once, and a file's shard never changes
when other files are added or removed.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import shutil
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from msvq_codec.errors import InputError, MsvqError, UsageError
from msvq_codec.outputs import PARTIAL_TAG, skip_existing as skips

MODES = ("encode", "decode", "codes")
DECODE_EXTS = ("mp4", "avi", "mkv", "npy", "y4m", "png")  # png: a folder of numbered PNG frames per file
STATUSES = ("ok", "skipped", "failed")
Shard = tuple[int, int]


@dataclass
class FileResult:
    """What happened to one file of a folder run."""

    input: str  # path relative to the input folder (POSIX form)
    output: str  # path of the output written (or that would have been)
    status: str  # "ok" | "skipped" | "failed"
    frames: int | None = None
    bytes: int | None = None  # encode: the .msvq size; decode, codes: the output's (a PNG folder: all its files)
    seconds: float = 0.0
    error: str | None = None  # the one-line message of a failure
    detail: str | None = field(default=None, repr=False)  # traceback of an unexpected error (a bug)
    # encode only: the sizes the .msvq file's rate and compression ratios are read from (properties below)
    source_bytes: int | None = None  # the input's size
    raw_bytes: int | None = None  # the frames as raw 24-bit RGB at the clips' size (64 x 64)
    note: str | None = None  # for the user (stderr): e.g. a target rate above what quality max spends

    @property
    def bpp(self) -> float | None:
        """File bits over the pixels of the frames it returns."""
        return self.bytes * 8 / (self.raw_bytes / 3) if self.bytes and self.raw_bytes else None

    @property
    def ratio_source(self) -> float | None:
        return self.source_bytes / self.bytes if self.bytes and self.source_bytes is not None else None

    @property
    def ratio_raw(self) -> float | None:
        return self.raw_bytes / self.bytes if self.bytes and self.raw_bytes else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("detail")
        return {**d, "bpp": self.bpp, "ratio_source": self.ratio_source, "ratio_raw": self.ratio_raw}


@dataclass
class BatchSummary:
    """Every file of a folder run, in sorted input order."""

    mode: str  # "encode" | "decode" | "codes"
    input: str
    output: str
    shard: Shard | None
    results: list[FileResult]
    seconds: float

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> int:
        return self.count("failed")

    def to_dict(self) -> dict[str, Any]:
        ok = [r for r in self.results if r.status == "ok"]
        total = sum(r.bytes or 0 for r in ok)
        rates = {}
        if self.mode == "encode":
            raw = sum(r.raw_bytes or 0 for r in ok)
            known = [r for r in ok if r.source_bytes is not None]
            source = sum(r.source_bytes for r in known)  # type: ignore[misc]
            known_bytes = sum(r.bytes or 0 for r in known)
            rates = {
                "bpp": total * 8 / (raw / 3) if raw else None,  # bits over all the files' pixels (64 x 64 each)
                "source_bytes": source if known else None,
                "ratio_source": source / known_bytes if known and known_bytes else None,
                "ratio_raw": raw / total if total else None,
            }
        return {
            "mode": self.mode,
            "input": self.input,
            "output": self.output,
            "shard": None if self.shard is None else f"{self.shard[0]}/{self.shard[1]}",
            "total": len(self.results),
            **{status: self.count(status) for status in STATUSES},
            "frames": sum(r.frames or 0 for r in ok),
            "bytes": total,
            **rates,
            "seconds": self.seconds,
            "files": [r.to_dict() for r in self.results],
        }


# Called as (done, total, result): once with (0, total, None) before the first file, then after each file.
BatchProgress = Callable[[int, int, "FileResult | None"], None]


# ---- sharding ----------------------------------------------------------------------------------------------


def parse_shard(text: str | Shard | None) -> Shard | None:
    """``"K/N"`` (0-based, ``0 <= K < N``) -> ``(K, N)``; UsageError otherwise. None stays None."""
    if text is None:
        return None
    if isinstance(text, tuple):
        k, n = text
    else:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not m:
            raise UsageError(f"shard must be K/N with 0 <= K < N (0-based, e.g. 0/4), not {text!r}", option="shard")
        k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= k < n:
        raise UsageError(f"shard {k}/{n}: need N >= 1 and 0 <= K < N (shards are 0-based)", option="shard")
    return k, n


def shard_of(relative: str | Path, n: int) -> int:
    """The shard (0..n-1) of a file, from its path relative to the input folder."""
    key = Path(relative).as_posix().encode("utf-8", "surrogateescape")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % n


# ---- planning ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    mode: str  # "encode" | "decode" | "codes"
    source: str  # absolute or as given
    target: str
    relative: str  # source relative to the input folder, POSIX form


def find_msvq(root: Path) -> list[Path]:
    """Every ``.msvq`` file under ``root`` (recursive, sorted; hidden files and folders skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames if not f.startswith(".") and f.lower().endswith(".msvq")]
    return sorted(found)


def check_ext(ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if ext == "frames":
        ext = "png"
    if ext not in DECODE_EXTS:
        raise UsageError(
            f"ext must be one of {', '.join(DECODE_EXTS)} (png: a folder of PNG frames), not {ext!r}", option="ext"
        )
    return ext


def _target(out_root: Path, rel: Path, source: Path, mode: str, ext: str) -> Path:
    if mode == "encode":
        from msvq_codec.files import encoded_name

        name = encoded_name(source)
    else:
        stem = rel.name[: -len(".msvq")]
        name = f"{stem}.npz" if mode == "codes" else stem if ext == "png" else f"{stem}.{ext}"
    return out_root / rel.parent / name


def plan(mode: str, input_dir: str | Path, output_dir: str | Path, ext: str = "mp4") -> list[Task]:
    """Every (input, output) pair of a folder run, in sorted input order (before sharding)."""
    root, out_root = Path(input_dir), Path(output_dir)
    if not root.is_dir():
        raise InputError(f"no such folder: {root}")
    if out_root.exists() and not out_root.is_dir():
        raise UsageError(f"the input is a folder, so the output must be a folder too, but {out_root} is a file")
    if mode == "encode":
        from msvq_codec.video import find_inputs

        sources = find_inputs(root)
    else:
        sources = find_msvq(root)
    out_abs, root_abs = out_root.resolve(), root.resolve()
    if out_abs != root_abs and out_abs.is_relative_to(root_abs):  # outputs inside the input: not inputs
        sources = [s for s in sources if not s.resolve().is_relative_to(out_abs)]
    return [
        Task(mode, str(s), str(_target(out_root, s.relative_to(root), s, mode, ext)), s.relative_to(root).as_posix())
        for s in sources
    ]


# ---- running one file ----------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}  # in a worker process: the loaded model, or the error loading it raised


def _init_worker(weights: str | None, device: str, threads: int) -> None:
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    torch.set_num_threads(threads)
    try:
        from msvq_codec.codec import load_model

        _WORKER["model"] = load_model(weights, device)
    except MsvqError as e:
        _WORKER["error"] = str(e)
    except Exception as e:  # noqa: BLE001 - reported per file rather than breaking the pool
        _WORKER["error"] = f"{type(e).__name__}: {e}"


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def run_task(task: Task, options: dict[str, Any], model=None) -> FileResult:
    """Encode or decode one file; every failure becomes a ``failed`` result (never raises but on Ctrl-C)."""
    from msvq_codec.files import decode_file, encode_video
    from msvq_codec.codes import codes_file

    started = time.perf_counter()
    target = Path(task.target)
    try:
        if model is None:
            if "error" in _WORKER:
                raise MsvqError(_WORKER["error"])
            model = _WORKER["model"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if task.mode == "encode":
            r = encode_video(task.source, target, model=model, **options)
            return FileResult(
                task.relative, task.target, "ok", r.frames, r.bytes, time.perf_counter() - started,
                source_bytes=r.source_bytes, raw_bytes=r.raw_bytes, note=r.note,
            )  # fmt: skip
        if task.mode == "decode":
            frames = decode_file(task.source, target, model=model, **options).frames
        else:
            frames = codes_file(task.source, target, model=model, force=options.get("force", False)).frame_count
        return FileResult(task.relative, task.target, "ok", frames, _size(target), time.perf_counter() - started)
    except MsvqError as e:
        return FileResult(task.relative, task.target, "failed", seconds=time.perf_counter() - started, error=str(e))
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the run
        msg = str(e).strip().splitlines()
        return FileResult(
            task.relative, task.target, "failed", seconds=time.perf_counter() - started,
            error=f"{type(e).__name__}: {msg[0] if msg else ''}".rstrip(": "), detail=traceback.format_exc(),
        )  # fmt: skip


# ---- running a folder ----------------------------------------------------------------------------------------


def run_batch(
    mode: str,
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    weights: str | Path | None = None,
    device: str = "auto",
    jobs: int = 1,
    skip_existing: bool = False,
    force: bool = False,
    shard: str | Shard | None = None,
    ext: str = "mp4",
    progress: BatchProgress | None = None,
    **options: Any,
) -> BatchSummary:
    """Encode (``mode="encode"``), decode (``"decode"``) or take the codes of (``"codes"``) every file under
    ``input_dir`` into the mirrored tree ``output_dir``. ``options`` go to ``files.encode_video`` /
    ``files.decode_file`` (codec, level, batch_size, input_fps, quality, effort, target_bpp, target_kbps /
    fps, size); ``codes`` takes none. Raises only for a bad call (UsageError) or an input folder with
    nothing to do (InputError); a failing file is a ``failed`` result."""
    from msvq_codec.codec import load_model
    from msvq_codec.device import pick_device

    started = time.perf_counter()
    if mode not in MODES:
        raise UsageError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"jobs must be a positive integer, not {jobs!r}", option="jobs")
    skips(output_dir, skip_existing, force)  # a contradiction fails now
    shard = parse_shard(shard)
    ext = check_ext(ext)
    pick_device(device)
    check_options(mode, options)

    tasks = plan(mode, input_dir, output_dir, ext)
    if not tasks:
        what = "videos (or .npy arrays or frame folders)" if mode == "encode" else ".msvq files"
        raise InputError(f"no {what} found under {input_dir}")
    results: dict[int, FileResult] = {}
    seen: dict[str, str] = {}
    todo: list[tuple[int, Task]] = []
    for i, task in enumerate(tasks):  # over the whole corpus, so every shard sees the same collisions
        first = seen.setdefault(task.target, task.relative)
        if shard is not None and shard_of(task.relative, shard[1]) != shard[0]:
            continue
        if first != task.relative:
            results[i] = FileResult(task.relative, task.target, "failed",
                                    error=f"its output {task.target} is also the output of {first}")
        elif skips(task.target, skip_existing, force):
            results[i] = FileResult(task.relative, task.target, "skipped")
        else:
            todo.append((i, task))
    order = sorted(results.keys() | {i for i, _ in todo})
    total, done = len(order), 0

    def report(i: int, result: FileResult) -> None:
        nonlocal done
        results[i] = result
        done += 1
        if progress:
            progress(done, total, result)

    if progress:
        progress(0, total, None)
    for i in [i for i in order if i in results]:  # skipped and collided files first: no work
        done += 1
        if progress:
            progress(done, total, results[i])
    options = {**options, "force": force}
    if todo:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        if jobs == 1 or len(todo) == 1:
            model = load_model(weights, device)
            for i, task in todo:
                report(i, run_task(task, options, model))
        else:
            load_model(weights, "cpu")  # fail fast (missing or bad weights) before spawning workers
            _run_pool(todo, options, weights, device, min(jobs, len(todo)), report)
    results_list = [results[i] for i in order]
    return BatchSummary(mode, str(input_dir), str(output_dir), shard, results_list, time.perf_counter() - started)


def _run_pool(todo, options, weights, device, jobs, report) -> None:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    ctx = multiprocessing.get_context("spawn")
    weights = None if weights is None else str(weights)
    pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(weights, device, threads))
    pending = {pool.submit(run_task, task, options): (i, task) for i, task in todo}
    try:
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                i, task = pending.pop(future)
                try:
                    result = future.result()
                except Exception as e:  # noqa: BLE001 - a worker died (out of memory, killed)
                    error = f"worker failed: {type(e).__name__}: {e}"
                    result = FileResult(task.relative, task.target, "failed", error=error)
                report(i, result)
    except BaseException:  # Ctrl-C (or a failing progress callback): stop now, not after the queue
        _stop_pool(pool, [task for _, task in pending.values()])
        raise
    pool.shutdown(wait=True)


def _stop_pool(pool: ProcessPoolExecutor, unfinished: list[Task]) -> None:
    """Kill the workers and remove the temporary outputs they were writing (no partial output is left)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public way to stop workers
    for process in processes:
        process.terminate()
    pids = {str(process.pid) for process in processes}
    pool.shutdown(wait=True, cancel_futures=True)
    for task in unfinished:
        target = Path(task.target)
        for tmp in target.parent.glob(f".{glob_escape(target.stem)}{PARTIAL_TAG}*"):
            if tmp.name[len(target.stem) + 1 + len(PARTIAL_TAG):].split("-")[0] in pids:
                shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?[])", r"[\1]", text)


def check_options(mode: str, options: dict[str, Any]) -> None:
    """Refuse bad per-file options once, up front, rather than failing every file with the same error.
    A ``size`` of ``WxH`` is parsed in place to ``(W, H)``."""
    from msvq_codec.codec import DEFAULT_CODEC, check_batch_size, check_rate_control, parse_codec, target_of
    from msvq_codec.files import parse_size
    from msvq_codec.config import ModelConfig
    from msvq_codec.rdo import DEFAULT_QUALITY
    from msvq_codec.video import check_rate  # the readers' own bounds for input_fps

    encoding = {"codec", "level", "input_fps", "quality", "effort", "target_bpp", "target_kbps"}
    allowed = {"encode": {"batch_size"} | encoding, "decode": {"batch_size", "fps", "size"}, "codes": set()}[mode]
    unknown = set(options) - allowed
    if unknown:
        raise UsageError(f"unknown {mode} options: {', '.join(sorted(unknown))}")
    if "batch_size" in options:
        check_batch_size(options["batch_size"])
    if mode == "encode":
        codec, _ = parse_codec(options.get("codec", DEFAULT_CODEC), options.get("level"))
        check_rate_control(options.get("quality", DEFAULT_QUALITY), options.get("effort", 0), codec)
        check_rate(options.get("input_fps"), "input_fps", allow_none=True)
        target_of(ModelConfig(), options.get("target_bpp"), options.get("target_kbps"),
                  options.get("quality", DEFAULT_QUALITY), codec)  # fmt: skip
        return
    if mode == "codes":
        return
    fps = options.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 1000):
        raise UsageError(f"fps must be a frame rate in (0, 1000], not {fps!r}", option="fps")  # NaN fails too
    size = options.get("size")
    if size is not None and size != "source":
        options["size"] = parse_size(size, None)  # type: ignore[arg-type]


__all__ = [
    "BatchSummary", "FileResult", "Task", "check_ext", "check_options", "find_msvq", "parse_shard", "plan",
    "run_batch", "run_task", "shard_of",
]  # fmt: skip
