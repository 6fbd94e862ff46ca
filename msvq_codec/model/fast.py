"""Inference for speed: the same MS-VQ-VAE, computed for throughput. ``MSVQVAE.encode``/``decode`` stay the
reference (fp32, training's code); this module computes the same functions from the same weights with:

* precision per direction. ``fp32``: everything in float32 (indices equal the reference's but for rounding
  ties). ``bf16``: the convolutions in bfloat16 (AVX512-BF16 / AMX doubles a CPU's FLOP rate), but the
  pre-quantisation convs and the nearest-code search stay float32, so codes are chosen at full precision.
  ``auto``: fp32 to encode; bf16 to decode on a CPU where bf16 is faster (``bf16_pays``: AMX, or AVX512-BF16
  on AMD), else fp32 for both. An Intel CPU with AVX512-BF16 but no AMX runs the decoder slower in bf16.
  Encoding stays fp32 under ``auto`` because bf16 activations move enough encoder outputs across a Voronoi
  boundary to change several percent of the indices (mostly among near-duplicate codebook entries), while a
  bf16 decode stays far above 45 dB of the fp32 one (``benchmarks/speed/model_speed.py`` measures both).
* channels-last 3D activations (oneDNN's native layout: no reorders between layers), weights cast and laid out
  once, ReLUs and residual additions in place. (oneDNN's fused conv+ReLU and conv+add, ``torch.ops.mkldnn``,
  measured no faster here, so this stays on public ops.)
* the decoder's last layer, a transposed conv to 3 channels that oneDNN runs at a fraction of its speed, as
  the equivalent plain conv to 12 channels and an interleave (``_SubPixel``).
* the nearest-code search as one ``addmm`` (``|e|^2 - 2 z.e``; ``|z|^2`` does not change the argmin) in
  float32 over row blocks that fit in cache.

Everything here is inference only (no autograd, no EMA updates) and reads the model's modules, so it follows
the architecture ``vqvae.py`` defines; ``tests/test_fast.py`` checks it against the reference.
"""

from __future__ import annotations

import functools
import itertools
import os
import weakref
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msvq_codec.errors import UsageError
from msvq_codec.model.layers import ResBlock3d
from msvq_codec.model.vqvae import PIXEL_OFFSET, MSVQVAE, Chooser, Codes, Refiner, held, join_top

PRECISIONS = ("auto", "fp32", "bf16")
SEARCH_ROWS = 4096  # rows of the [n, K] distance matrix computed at once (4096 x 1024 floats: 16 MiB)


class Precision(NamedTuple):
    encode: torch.dtype
    decode: torch.dtype


def bf16_is_fast(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` does bfloat16 arithmetic natively: a CPU with AVX512-BF16 or AMX, a GPU with bf16."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and check() for check in checks)


def cpu_vendor() -> str:
    """The CPU's vendor id as Linux reports it ("AuthenticAMD", "GenuineIntel"), or "" where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


@functools.cache
def bf16_pays() -> bool:
    """Whether this CPU decodes faster in bf16 than in fp32: one with AMX (Intel's matrix units), or an AMD CPU
    with AVX512-BF16. Intel CPUs with AVX512-BF16 and no AMX gain nothing from it (measured on a 2-core Intel
    Xeon VM: the decoder at 141 frames/s in bf16 against 217 in fp32, ``benchmarks/speed/model_speed.py``),
    while an AMD EPYC decodes twice as fast. A rule, not a timing: a choice timed at start-up could differ
    between two runs on a busy machine and change the decoded pixels."""
    if not bf16_is_fast("cpu"):
        return False
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(amx is not None and amx()) or cpu_vendor() == "AuthenticAMD"


def resolve_precision(name: str, device: torch.device | str = "cpu") -> Precision:
    """``auto`` | ``fp32`` | ``bf16`` -> the dtypes encode and decode compute in on ``device``."""
    if name not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    if name == "fp32" or (name == "auto" and (torch.device(device).type != "cpu" or not bf16_pays())):
        return Precision(torch.float32, torch.float32)
    if name == "bf16":
        return Precision(torch.bfloat16, torch.bfloat16)
    return Precision(torch.float32, torch.bfloat16)


# ---- one convolution, prepared once ---------------------------------------------------------------------


class _Conv:
    """A Conv3d or ConvTranspose3d with its weights cast to ``dtype`` and laid out channels-last once, then an
    optional in-place ReLU (and residual addition)."""

    def __init__(self, conv: nn.Conv3d | nn.ConvTranspose3d, dtype: torch.dtype, device: torch.device, relu: bool):
        self.transposed = isinstance(conv, nn.ConvTranspose3d)
        fmt = torch.channels_last_3d if device.type == "cpu" else torch.contiguous_format
        self.weight = conv.weight.detach().to(device, dtype).contiguous(memory_format=fmt)
        self.bias = None if conv.bias is None else conv.bias.detach().to(device, dtype)
        self.stride, self.padding = conv.stride, conv.padding
        self.output_padding = conv.output_padding if self.transposed else None
        if any(d != 1 for d in conv.dilation) or conv.groups != 1:
            raise ValueError("only dense, undilated convolutions are supported")  # not in this architecture
        self.dtype, self.relu = dtype, relu

    def __call__(self, x: Tensor, residual: Tensor | None = None, relu_after_residual: bool = False) -> Tensor:
        """conv(x), then ReLU (``relu``); with ``residual``: conv(x) + residual, then ReLU if asked."""
        if self.transposed:
            y = F.conv_transpose3d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)
        else:
            y = F.conv3d(x, self.weight, self.bias, self.stride, self.padding)
        if residual is not None:
            y = y.add_(residual)
            return y.relu_() if relu_after_residual else y
        return y.relu_() if self.relu else y


class _Residual:
    """x + conv1x1(relu(conv3x3x3(relu(x)))), optionally followed by a ReLU (the last block of a stack)."""

    def __init__(self, block: ResBlock3d, dtype: torch.dtype, device: torch.device):
        relu1, conv_a, relu2, conv_b = block.body
        assert isinstance(relu1, nn.ReLU) and isinstance(relu2, nn.ReLU)
        self.conv_a = _Conv(conv_a, dtype, device, relu=True)
        self.conv_b = _Conv(conv_b, dtype, device, relu=False)
        self.relu_after = False

    def __call__(self, x: Tensor) -> Tensor:
        return self.conv_b(self.conv_a(F.relu(x)), residual=x, relu_after_residual=self.relu_after)


class _SubPixel:
    """A transposed conv with few output channels (the decoder's last, RGB, layer) computed as a plain conv to
    ``C_out x phases`` channels whose outputs are then interleaved: the same sums, but oneDNN's transposed
    kernels run narrow outputs at a fraction of their speed. Along an axis of stride 2 (kernel 4, padding 1)
    output ``2m + p`` reads input window ``m - 1 + p .. m + p``; along an axis of stride 1 it is an ordinary
    correlation with the kernel flipped. The result is channels-last, ``offset`` is added to the bias."""

    def __init__(self, conv: nn.ConvTranspose3d, dtype: torch.dtype, device: torch.device, offset: float = 0.0):
        w = conv.weight.detach().to(device, torch.float32)  # [C_in, C_out, kt, kh, kw]
        c_in, c_out = w.shape[:2]
        self.axes = []  # per axis: (phases, window, conv padding, crop start of each phase)
        taps = []  # per axis, per phase: {window offset: kernel index}
        for k, stride, pad in zip(conv.kernel_size, conv.stride, conv.padding):
            if stride == 1:
                self.axes.append((1, k, k - 1 - pad, (0,)))
                taps.append([{j: k - 1 - j for j in range(k)}])
            elif stride == 2 and k == 4 and pad == 1:
                self.axes.append((2, 2, 1, (0, 1)))
                taps.append([{0: 3, 1: 1}, {0: 2, 1: 0}])
            else:
                raise ValueError(f"no sub-pixel form for kernel {k}, stride {stride}, padding {pad}")
        (pt, wt, _, _), (ph, wh, _, _), (pw, ww, _, _) = self.axes
        kernel = w.new_zeros(c_out, pt, ph, pw, c_in, wt, wh, ww)
        for a, b, c in itertools.product(range(pt), range(ph), range(pw)):
            for (jt, it), (jh, ih), (jw, iw) in itertools.product(taps[0][a].items(), taps[1][b].items(),
                                                                  taps[2][c].items()):  # fmt: skip
                kernel[:, a, b, c, :, jt, jh, jw] = w[:, :, it, ih, iw].t()
        fmt = torch.channels_last_3d if device.type == "cpu" else torch.contiguous_format
        self.weight = kernel.reshape(c_out * pt * ph * pw, c_in, wt, wh, ww).to(dtype).contiguous(memory_format=fmt)
        bias = conv.bias.detach().to(device, torch.float32) if conv.bias is not None else w.new_zeros(c_out)
        self.bias = (bias + offset).repeat_interleave(pt * ph * pw).to(dtype)
        self.c_out, self.dtype = c_out, dtype

    def __call__(self, x: Tensor) -> Tensor:
        y = F.conv3d(x.to(self.dtype), self.weight, self.bias, padding=[a[2] for a in self.axes])
        (pt, _, _, ct), (ph, _, _, ch), (pw, _, _, cw) = self.axes
        n, _, lt, lh, lw = y.shape
        mt, mh, mw = lt - ct[-1], lh - ch[-1], lw - cw[-1]  # output positions per phase
        y = y.view(n, self.c_out, pt, ph, pw, lt, lh, lw)
        out = y.new_empty(n, mt, pt, mh, ph, mw, pw, self.c_out)  # channels-last frames
        for a, b, c in itertools.product(range(pt), range(ph), range(pw)):
            out[:, :, a, :, b, :, c] = y[:, :, a, b, c, ct[a] : ct[a] + mt, ch[b] : ch[b] + mh,
                                         cw[c] : cw[c] + mw].permute(0, 2, 3, 4, 1)  # fmt: skip
        return out.view(n, mt * pt, mh * ph, mw * pw, self.c_out).permute(0, 4, 1, 2, 3)


Step = Callable[[Tensor], Tensor]


def _relu(x: Tensor) -> Tensor:
    return x.relu_()  # only ever applied to a tensor a previous step just made


def compile_stack(module: nn.Module, dtype: torch.dtype, device: torch.device,
                  last: Callable[[nn.Module], Step] | None = None) -> list[Step]:  # fmt: skip
    """Flatten nested Sequentials of convs, ReLUs and residual blocks into steps, each ReLU applied in place
    by the step before it. ``last`` makes the step of the final layer, if given."""
    layers: list[nn.Module] = []

    def flatten(m: nn.Module) -> None:
        if isinstance(m, nn.Sequential):
            for child in m:
                flatten(child)
        else:
            layers.append(m)

    flatten(module)
    steps: list[object] = []
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.ReLU):
            prev = steps[-1] if steps else None
            if isinstance(prev, _Conv) and not prev.relu:
                prev.relu = True
            elif isinstance(prev, _Residual) and not prev.relu_after:
                prev.relu_after = True
            else:
                steps.append(_relu if steps else F.relu)
        elif i == len(layers) - 1 and last is not None:
            steps.append(last(layer))
        elif isinstance(layer, (nn.Conv3d, nn.ConvTranspose3d)):
            steps.append(_Conv(layer, dtype, device, relu=False))
        elif isinstance(layer, ResBlock3d):
            steps.append(_Residual(layer, dtype, device))
        else:
            raise TypeError(f"no fast path for {type(layer).__name__}")
    return steps  # type: ignore[return-value]


def _run(steps: list[Step], x: Tensor) -> Tensor:
    for step in steps:
        x = step(x)
    return x


# ---- the model --------------------------------------------------------------------------------------------


class FastModel:
    """``encode``/``decode`` with ``MSVQVAE``'s signatures and semantics, computed as the module docstring says.
    Holds its own copies of the weights (cast, re-laid out); the model it was made from is not changed."""

    def __init__(self, model: MSVQVAE, precision: Precision, device: torch.device | str | None = None):
        self.config = config = model.config
        self.device = device = torch.device(device) if device is not None else next(model.parameters()).device
        self.precision = precision
        enc, dec = precision
        self.cl = device.type == "cpu"
        self.enc_bottom = compile_stack(model.enc_bottom, enc, device)
        self.two_levels = config.levels == 2
        self.residual = self.two_levels and config.top_join == "residual"  # decoder input: top + bottom
        f32 = torch.float32
        if self.two_levels:
            self.enc_top = compile_stack(model.enc_top, enc, device)
            self.pre_quant_top = _Conv(model.pre_quant_top, f32, device, relu=False)
            self.dec_top = compile_stack(model.dec_top, enc, device)
            self.upsample_top = compile_stack(model.upsample_top, dec, device)
            if self.residual:  # the encoder subtracts the upsampled top, in the encode precision
                self.upsample_top_enc = compile_stack(model.upsample_top, enc, device)
        self.pre_quant_bottom = _Conv(model.pre_quant_bottom, f32, device, relu=False)
        self.decoder = compile_stack(model.decoder, dec, device, last=self._final_layer)
        self.codebooks = {}
        for level in ("top", "bottom") if self.two_levels else ("bottom",):
            embed = getattr(model, f"quantizer_{level}").embed.detach().to(device, f32).contiguous()
            self.codebooks[level] = (embed, embed.t().contiguous(), embed.pow(2).sum(1))  # [K, d], [d, K], [K]

    def _final_layer(self, layer: nn.Module) -> Step:
        """The decoder's last conv (to RGB): a sub-pixel conv for a transposed conv, else a plain one, in the
        decode dtype, returning float32 with PIXEL_OFFSET added (in the bias where that is float32: in bf16
        the offset would round to 1/256)."""
        dtype = self.precision.decode
        if isinstance(layer, nn.ConvTranspose3d):
            try:
                if dtype == torch.float32:
                    return _SubPixel(layer, dtype, self.device, offset=PIXEL_OFFSET)
                sub = _SubPixel(layer, dtype, self.device)
                return lambda x: sub(x).float().add_(PIXEL_OFFSET)
            except ValueError:
                pass
        conv = _Conv(layer, dtype, self.device, relu=False)
        return lambda x: conv(x).float().add_(PIXEL_OFFSET)

    def _layout(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        x = x.to(dtype)
        return x.contiguous(memory_format=torch.channels_last_3d) if self.cl else x.contiguous()

    def _nearest(self, level: str, z: Tensor) -> Tensor:
        """z [b, d, t, h, w] float32 -> indices [b, t, h, w] int64 of the nearest codebook entries."""
        _, embed_t, norms = self.codebooks[level]
        b, d, t, h, w = z.shape
        flat = z.permute(0, 2, 3, 4, 1).reshape(-1, d)  # channels-last: a view, no copy
        out = torch.empty(flat.shape[0], dtype=torch.int64, device=z.device)
        for start in range(0, flat.shape[0], SEARCH_ROWS):
            rows = flat[start : start + SEARCH_ROWS]
            torch.argmin(torch.addmm(norms, rows, embed_t, alpha=-2), 1, out=out[start : start + SEARCH_ROWS])
        return out.view(b, t, h, w)

    def _lookup(self, level: str, indices: Tensor, dtype: torch.dtype) -> Tensor:
        embed = self.codebooks[level][0]
        z = F.embedding(indices, embed).to(dtype)  # [b, t, h, w, d]: channels-last already
        z = z.permute(0, 4, 1, 2, 3)  # [b, d, t, h, w]
        return self._layout(z, dtype)

    def _pick(self, level: str, z: Tensor, choose: Chooser | None) -> Tensor:
        """z [b, d, t, h, w] float32 -> indices [b, t, h, w]: the nearest codes, or ``choose``'s."""
        return self._nearest(level, z) if choose is None else choose(level, z, self.codebooks[level][0])

    @torch.inference_mode()
    def encode(self, x: Tensor, choose: Chooser | None = None, refine: Refiner | None = None) -> Codes:
        """Clips x [b, 3, T, H, W] in [0, 1] -> integer codes on each level's grid (``choose`` and ``refine``
        as for ``MSVQVAE.encode``)."""
        enc = self.precision.encode
        h_b = _run(self.enc_bottom, self._layout(x - PIXEL_OFFSET, enc))
        top = None
        if not self.two_levels:
            z_b = held(self.config, self.pre_quant_bottom(h_b.float()))
        else:
            h_t = _run(self.enc_top, h_b)
            top = self._pick("top", held(self.config, self.pre_quant_top(h_t.float())), choose)
            z_top = self._lookup("top", top, enc)  # [b, d, t_t, h_t, w_t]
            fused = torch.cat([_run(self.dec_top, z_top), h_b], dim=1)
            z_b = held(self.config, self.pre_quant_bottom(fused.float()))
            if self.residual:
                z_b = z_b - _run(self.upsample_top_enc, z_top).float()  # [b, d, t_b, h_b, w_b]
        if refine is not None:
            z_b = refine(x, top, z_b)
        return Codes(top, self._pick("bottom", z_b, choose))

    @torch.inference_mode()
    def decode(self, codes: Codes) -> Tensor:
        """Codes -> clips [b, 3, T, H, W] float32, clamped to [0, 1]."""
        dec = self.precision.decode
        z = self._lookup("bottom", codes.bottom, dec)
        if codes.top is not None:
            coarse = _run(self.upsample_top, self._lookup("top", codes.top, dec))  # [b, d, t_b, h_b, w_b]
            z = join_top(self.config, coarse, z)
        return _run(self.decoder, z).clamp_(0.0, 1.0)  # the offset is in the last layer


_CACHE: "weakref.WeakKeyDictionary[MSVQVAE, dict]" = weakref.WeakKeyDictionary()


def use_precision(name: str) -> None:
    """Make ``name`` the default precision of this process and of the processes it starts."""
    resolve_precision(name)  # a UsageError for a bad name
    os.environ["MSVQ_PRECISION"] = name


def default_precision() -> str:
    """``$MSVQ_PRECISION`` (the msvq command's ``--precision`` sets it, so worker processes inherit it), else
    ``auto``."""
    return os.environ.get("MSVQ_PRECISION") or "auto"


def fast_model(model: MSVQVAE, precision: str | None = None) -> FastModel | MSVQVAE:
    """What encodes and decodes for ``model`` at ``precision`` (``auto``/``fp32``/``bf16``; None: the default):
    a FastModel, made once per model, precision and device and kept while the model lives. Off the CPU (not
    measured there), fp32 is the reference model itself."""
    device = next(model.parameters()).device
    resolved = resolve_precision(precision or default_precision(), device)
    if device.type != "cpu" and resolved == Precision(torch.float32, torch.float32):
        return model
    key = (resolved, device)
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = FastModel(model, resolved, device)
    return per_model[key]
