"""3D convolutional building blocks: residual blocks and strided down/up-sampling stages.

Every tensor here is laid out ``[b, c, t, h, w]``. A stride is a (t, h, w) triple of 1, 2 or 4; a stride
of 4 is built from two stride-2 steps so every step uses the same kernel shape (4 where it strides, 3
where it does not), which keeps sizes exact: out = in / stride.

The convolutions are ``Conv3d``/``ConvTranspose3d`` below: torch's, except that inside ``to_be_loaded()``
they skip their random initialisation. A model built only to receive a ``state_dict`` (loading a weights
file, ``msvq_codec.model.weights``) would otherwise draw kaiming-uniform values for every weight, about
0.05 s of a single-file command's start-up, and then overwrite them all.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from torch import Tensor, nn

# True only while weights.py builds a model whose every tensor the file's state_dict replaces: a context
# variable, so that it never leaks into another thread's (a training run's) model, and is reset on error.
_TO_BE_LOADED: ContextVar[bool] = ContextVar("msvq_to_be_loaded", default=False)


@contextmanager
def to_be_loaded() -> Iterator[None]:
    """Build modules whose parameters the caller will replace at once (``load_state_dict``, strict): convs
    built here keep ``torch.empty``'s uninitialised memory. Training never builds its model here."""
    token = _TO_BE_LOADED.set(True)
    try:
        yield
    finally:
        _TO_BE_LOADED.reset(token)


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameters, same state_dict) whose random initialisation ``to_be_loaded`` skips."""

    def reset_parameters(self) -> None:
        if not _TO_BE_LOADED.get():
            super().reset_parameters()


class ConvTranspose3d(nn.ConvTranspose3d):
    """``nn.ConvTranspose3d`` whose random initialisation ``to_be_loaded`` skips."""

    def reset_parameters(self) -> None:
        if not _TO_BE_LOADED.get():
            super().reset_parameters()


def stride_steps(stride: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """Split a (t, h, w) stride into steps of 1 or 2 per axis, e.g. (2, 4, 4) -> [(2, 2, 2), (1, 2, 2)]."""
    remaining = list(stride)
    steps = []
    while any(s > 1 for s in remaining):
        step = tuple(2 if s > 1 else 1 for s in remaining)
        steps.append(step)
        remaining = [s // st for s, st in zip(remaining, step)]
    return steps  # type: ignore[return-value]


def _kernel(step: tuple[int, int, int]) -> tuple[int, int, int]:
    """Kernel 4 along strided axes (exact halving with padding 1), 3 along the others."""
    return tuple(4 if s == 2 else 3 for s in step)  # type: ignore[return-value]


def down_conv(c_in: int, c_out: int, step: tuple[int, int, int]) -> Conv3d:
    """A conv that divides each axis by ``step``: [b, c_in, t, h, w] -> [b, c_out, t/st, h/sh, w/sw]."""
    return Conv3d(c_in, c_out, _kernel(step), stride=step, padding=1)


def up_conv(c_in: int, c_out: int, step: tuple[int, int, int]) -> ConvTranspose3d:
    """A transposed conv that multiplies each axis by ``step`` (the inverse shape of ``down_conv``)."""
    return ConvTranspose3d(c_in, c_out, _kernel(step), stride=step, padding=1)


def conv3(c_in: int, c_out: int) -> Conv3d:
    """Same-size 3x3x3 conv."""
    return Conv3d(c_in, c_out, 3, padding=1)


class ResBlock3d(nn.Module):
    """Pre-activation residual block: x + conv1x1(relu(conv3x3x3(relu(x)))), channels unchanged."""

    def __init__(self, channels: int, res_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            conv3(channels, res_channels),
            nn.ReLU(),
            Conv3d(res_channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def res_stack(channels: int, res_channels: int, n_blocks: int) -> nn.Sequential:
    """``n_blocks`` residual blocks followed by a ReLU."""
    return nn.Sequential(*[ResBlock3d(channels, res_channels) for _ in range(n_blocks)], nn.ReLU())


class Downsample(nn.Sequential):
    """[b, c_in, T, H, W] -> [b, c_out, T/st, H/sh, W/sw]: strided convs (halving width until the last), a
    same-size conv, then residual blocks."""

    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int, int], res_channels: int, n_res: int):
        steps = stride_steps(stride)
        layers: list[nn.Module] = []
        c = c_in
        for i, step in enumerate(steps):
            c_next = c_out if i == len(steps) - 1 else c_out // 2
            layers += [down_conv(c, c_next, step), nn.ReLU()]
            c = c_next
        layers += [conv3(c, c_out), res_stack(c_out, res_channels, n_res)]
        super().__init__(*layers)


class Upsample(nn.Sequential):
    """[b, c_in, t, h, w] -> [b, c_out, t*st, h*sh, w*sw]: a same-size conv, residual blocks, then
    transposed convs (the mirror of ``Downsample``)."""

    def __init__(
        self, c_in: int, hidden: int, c_out: int, stride: tuple[int, int, int], res_channels: int, n_res: int
    ):
        steps = stride_steps(stride)
        layers: list[nn.Module] = [conv3(c_in, hidden), res_stack(hidden, res_channels, n_res)]
        c = hidden
        for i, step in enumerate(steps):
            last = i == len(steps) - 1
            c_next = c_out if last else hidden // 2
            layers.append(up_conv(c, c_next, step))
            if not last:
                layers.append(nn.ReLU())
            c = c_next
        super().__init__(*layers)
