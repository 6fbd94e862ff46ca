"""The exceptions msvq raises on purpose. The CLI maps each to a one-line message and an exit code.

Anything else that escapes is a bug, shown with a traceback only under ``--debug``.
"""


class MsvqError(Exception):
    """Base class: a failure the user can act on. ``str(err)`` is the one-line message.

    The library speaks of values and of its own argument names, never of command-line flags. ``option``
    names the argument whose value is at fault (``"batch_size"``, ``"force"``); a message about it starts
    with that name where it reads naturally, so the CLI can put its flag (``--batch-size``) in its place or
    add the flag as a hint (see ``cli.describe``)."""

    exit_code = 1

    def __init__(self, message: str, *, option: str | None = None):
        super().__init__(message)
        self.option = option


class UsageError(MsvqError):
    """The command line itself is wrong (bad option value, conflicting options)."""

    exit_code = 2


class InputError(MsvqError):
    """An input file or folder is missing, unreadable, not a video, or holds no frames."""


class FormatError(MsvqError):
    """A .msvq container is truncated, corrupted, or of an unknown version."""


class WeightsError(MsvqError):
    """A weights or checkpoint file is missing or malformed."""


class WeightsMismatch(MsvqError):
    """A .msvq file was made by other weights than the ones loaded."""


class OutputExists(MsvqError):
    """The output exists and ``force`` was not given."""


class PipeClosed(MsvqError):
    """Standard output was closed by the program reading it (``msvq decode x.msvq - | head``)."""
