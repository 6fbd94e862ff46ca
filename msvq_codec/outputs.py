"""Safe output: write to a temporary name beside the target, then move it into place in one step.

A crash, an error or a signal mid-write leaves no partial output under the target's name; an existing output
is replaced only with ``force``. Without ``force``, the final step is a hard link (files) or a rename onto a
name that must not exist (folders), both of which fail rather than replace, so two processes racing for one
name never overwrite each other silently.

``atomic_output`` is the one way msvq writes a file or folder: .msvq files, decoded videos, weights, bench
reports, cached VGG weights (and checkpoints and the training frame cache). ``skip_existing`` is the one rule
for resuming a run over outputs that exist.

The path ``-`` (``STDIO``) means standard input or output, as for every encoder: ``stdout`` is the one way
msvq writes data there (a closed pipe is a ``PipeClosed`` error, one line, never a traceback), and ``stdin``
the one way it reads from there (``read_stdin``: all of it).
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from msvq_codec.errors import InputError, OutputExists, PipeClosed, UsageError

STDIO = "-"  # the path that means standard input (as an input) or standard output (as an output)

PARTIAL_TAG = "-partial-"  # temporary names: .<stem>-partial-<pid>-<random><suffix>; no dot of its own, so
# a suffix-less target (a PNG folder) gets a suffix-less temporary name and writers see the same kind


def temp_name(target: Path) -> Path:
    """A hidden sibling of ``target`` that keeps its suffix (writers choose the format by suffix)."""
    return target.with_name(f".{target.stem}{PARTIAL_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}{target.suffix}")


def check_target(target: Path, force: bool) -> None:
    """``target`` may be written: its folder exists, and it does not or ``force`` is given."""
    if target.exists() and not force:
        raise OutputExists(f"{target} exists", option="force")
    if not target.parent.is_dir():
        raise UsageError(f"output folder does not exist: {target.parent}")


def skip_existing(target: str | Path, skip: bool, force: bool) -> bool:
    """Whether to leave ``target`` alone because it exists and ``skip`` (resume a run) was asked for.
    ``skip`` with ``force`` is a contradiction (UsageError)."""
    if skip and force:
        raise UsageError("skip_existing and force contradict each other: choose one", option="skip_existing")
    return skip and os.path.lexists(target)


@contextmanager
def atomic_output(target: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write (a file or a folder, of ``target``'s suffix); on success it becomes
    ``target``, with an ordinary file's permissions, and on any exception it is removed.

        with atomic_output(path, force=True) as tmp:
            save_file(tensors, str(tmp))
    """
    target = Path(target)
    check_target(target, force)
    tmp = temp_name(target)
    try:
        yield tmp
        _commit(tmp, target, force)
    finally:
        _remove(tmp)


def is_stdio(path: str | Path | None) -> bool:
    """Whether ``path`` is ``-``: standard input or output."""
    return path is not None and str(path) == STDIO


@contextmanager
def stdout() -> Iterator[BinaryIO]:
    """Standard output as a binary stream, for data. A reader that went away (a closed pipe) is a
    ``PipeClosed`` error; standard output then points at /dev/null, so that Python's final flush stays quiet."""
    stream = sys.stdout.buffer
    try:
        yield stream
        stream.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise PipeClosed("standard output was closed by the program reading it") from None


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (an embedding program's stdout): nothing to flush into
        pass


def stdin(what: str = "a file") -> BinaryIO:
    """Standard input as a binary stream, for data; InputError when it is a terminal (nothing was piped)."""
    stream = sys.stdin.buffer
    if stream.isatty():
        raise InputError(f"standard input is a terminal: pipe {what} into it")
    return stream


def read_stdin(limit: int) -> bytes:
    """All of standard input, at most ``limit`` bytes (InputError beyond that, or when it is a terminal)."""
    data = stdin().read(limit + 1)
    if len(data) > limit:
        raise InputError(f"standard input holds more than {limit} bytes, more than this reader accepts")
    return data


def _commit(tmp: Path, target: Path, force: bool) -> None:
    if tmp.is_file():  # some writers (safetensors) create 0600 files: give it what open() would have
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
    if tmp.is_dir():
        if force and target.exists():
            old = temp_name(target)
            target.rename(old)  # moved aside, then removed: the new folder appears in one rename
            try:
                tmp.rename(target)
            except OSError:
                old.rename(target)
                raise
            _remove(old)
            return
        try:
            tmp.rename(target)  # fails if target became a non-empty folder meanwhile
        except OSError:
            raise OutputExists(f"{target} appeared while writing", option="force") from None
        return
    if force:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # atomic create-if-absent
    except FileExistsError:
        raise OutputExists(f"{target} appeared while writing", option="force") from None
    except OSError:  # file systems without hard links
        if target.exists():
            raise OutputExists(f"{target} exists", option="force") from None
        os.replace(tmp, target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
