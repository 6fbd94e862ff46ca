"""3D convolutional building blocks: residual blocks and strided down/up-sampling stages.

Every tensor here is laid out ``[b, c, t, h, w]``. A stride is a (t, h, w) triple of 1, 2 or 4; a stride
of 4 is built from two stride-2 steps so every step uses the same kernel shape (4 where it strides, 3
where it does not), which keeps sizes exact: out = in / stride.
"""

from __future__ import annotations

from torch import Tensor, nn


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


def down_conv(c_in: int, c_out: int, step: tuple[int, int, int]) -> nn.Conv3d:
    """A conv that divides each axis by ``step``: [b, c_in, t, h, w] -> [b, c_out, t/st, h/sh, w/sw]."""
    return nn.Conv3d(c_in, c_out, _kernel(step), stride=step, padding=1)


def up_conv(c_in: int, c_out: int, step: tuple[int, int, int]) -> nn.ConvTranspose3d:
    """A transposed conv that multiplies each axis by ``step`` (the inverse shape of ``down_conv``)."""
    return nn.ConvTranspose3d(c_in, c_out, _kernel(step), stride=step, padding=1)


def conv3(c_in: int, c_out: int) -> nn.Conv3d:
    """Same-size 3x3x3 conv."""
    return nn.Conv3d(c_in, c_out, 3, padding=1)


class ResBlock3d(nn.Module):
    """Pre-activation residual block: x + conv1x1(relu(conv3x3x3(relu(x)))), channels unchanged."""

    def __init__(self, channels: int, res_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            conv3(channels, res_channels),
            nn.ReLU(),
            nn.Conv3d(res_channels, channels, 1),
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
