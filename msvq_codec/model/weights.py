"""Weights files: safetensors holding the model's ``state_dict`` (fp16 by default), its config and provenance.

Metadata keys (all strings, as safetensors requires):
    msvq_format    "1"
    msvq_config    ModelConfig as JSON
    msvq_model_id  32 hex digits: the model ID that .msvq files record
    provenance     free JSON (data, steps, epochs, validation metrics), optional

The model ID is the first 16 bytes of SHA-256 over the config JSON and the tensors that decoding depends on
(codebooks and decoder, ``MSVQVAE.decoder_state_keys``) exactly as stored. Loading recomputes it, so a file
whose tensors were altered after export is refused. Nothing here unpickles.

Which weights a command uses is ``find_weights``: the weights it is given, else ``$MSVQ_WEIGHTS``, else the
copy shipped with the package (``shipped_dir()``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.overrides import TorchFunctionMode

from msvq_codec.config import ModelConfig
from msvq_codec.errors import MsvqError, WeightsError
from msvq_codec.model.layers import to_be_loaded
from msvq_codec.model.vqvae import MSVQVAE
from msvq_codec.outputs import atomic_output

WEIGHTS_FORMAT = "1"
MODEL_ID_BYTES = 16
SHIPPED_NAME = "msvq-default.safetensors"  # the weights msvq ships, in shipped_dir()
WEIGHTS_ENV = "MSVQ_WEIGHTS"


class LoadedModel(NamedTuple):
    model: MSVQVAE  # in eval mode, float32, on the requested device
    model_id: bytes  # MODEL_ID_BYTES
    metadata: dict[str, Any]  # provenance and anything else the file recorded
    path: Path | None = None  # the weights file (its entropy model lives beside it: msvq_codec.entropy)


def shipped_dir() -> Path:
    """The folder of the files shipped with msvq (weights, their model card): ``msvq_codec/weights/`` in an
    installed package, where the build maps the repository's ``weights/`` (setup.py), else the repository's
    ``weights/`` itself (a source checkout, ``pip install -e .``)."""
    package = Path(__file__).resolve().parent.parent
    inside = package / "weights"
    return inside if inside.is_dir() else package.parent / "weights"


def find_weights(weights: str | Path | None = None) -> tuple[Path, str]:
    """The weights file to use and why, by the one rule: ``weights`` if given (``"given"``), else
    ``$MSVQ_WEIGHTS`` if set (``"$MSVQ_WEIGHTS"``), else the package's own copy (``"shipped"``)."""
    if weights:
        return Path(weights), "given"
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV]), f"${WEIGHTS_ENV}"
    return shipped_dir() / SHIPPED_NAME, "shipped"


def model_id(config: ModelConfig, state: dict[str, torch.Tensor], keys: list[str]) -> bytes:
    """Hash of the config and the decoding tensors ``keys`` of ``state``, as 16 bytes."""
    digest = hashlib.sha256(config.to_json().encode())
    for key in keys:
        tensor = state[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.view(torch.uint8).numpy() if tensor.numel() else b"")  # the buffer itself, no copy
    return digest.digest()[:MODEL_ID_BYTES]


def save_weights(
    path: str | Path, model: MSVQVAE, provenance: dict[str, Any] | None = None, dtype: torch.dtype = torch.float16
) -> bytes:
    """Write ``model`` to ``path`` (atomically) and return its model ID. Floating tensors are stored as
    ``dtype``; the quantiser's bookkeeping buffers stay exact."""
    state = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.to(dtype)
        state[key] = tensor.contiguous()
    mid = model_id(model.config, state, model.decoder_state_keys())
    metadata = {
        "msvq_format": WEIGHTS_FORMAT,
        "msvq_config": model.config.to_json(),
        "msvq_model_id": mid.hex(),
        "provenance": json.dumps(provenance or {}, sort_keys=True),
    }
    with atomic_output(path, force=True) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return mid


def read_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{path} is not a safetensors weights file ({err})") from None


class _AllocationBudget(TorchFunctionMode):
    """While a model is built from a file's config: refuse, before allocating, tensors beyond ``limit``
    elements in all, so that a crafted config cannot take more memory than its own file could fill."""

    FACTORIES = (torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn)

    def __init__(self, limit: int):
        super().__init__()
        self.left = limit

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.FACTORIES:
            if "size" in kwargs:
                size = kwargs["size"]
            elif func is torch.full or (args and not isinstance(args[0], int)):
                size = args[0]
            else:
                size = args
            self.left -= math.prod(max(int(n), 0) for n in size)
            if self.left < 0:
                raise WeightsError("the config asks for more tensor elements than the file holds")
        return func(*args, **kwargs)


def build_model(path: Path, config: ModelConfig, state: dict[str, torch.Tensor]) -> MSVQVAE:
    """The model ``config`` describes, built within what the file's tensors could fill: a crafted config
    (negative or huge widths, a million residual blocks) is a WeightsError, not a crash, a hang or a swap.
    Its convolutions are left uninitialised (``layers.to_be_loaded``): the caller replaces every tensor."""
    blocks = config.n_res_blocks
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 0 <= blocks <= len(state):
        raise WeightsError(f"{path}: malformed weights (n_res_blocks {blocks!r} for {len(state)} tensors)")
    budget = 2 * sum(t.numel() for t in state.values()) + (1 << 20)  # the model, and its init's temporaries
    try:
        with _AllocationBudget(budget), to_be_loaded():
            return MSVQVAE(config)
    except WeightsError as err:
        raise WeightsError(f"{path}: malformed weights ({err})") from None
    except (MsvqError, RuntimeError, ValueError, TypeError, OverflowError, MemoryError) as err:
        raise WeightsError(f"{path}: malformed weights (config: {str(err).splitlines()[0]})") from None


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model a weights file describes, verify its ID, and move it to ``device`` in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights at {path}", option="weights")
    meta = read_metadata(path)
    if meta.get("msvq_format") != WEIGHTS_FORMAT or "msvq_config" not in meta:
        raise WeightsError(f"{path} is not an msvq weights file (no msvq_format/msvq_config metadata)")
    try:
        config = ModelConfig.from_json(meta["msvq_config"])
        state = load_file(str(path))
    except (MsvqError, SafetensorError, ValueError, TypeError, OSError) as err:
        raise WeightsError(f"{path}: malformed weights ({err})") from None
    model = build_model(path, config, state)
    mid = model_id(config, state, model.decoder_state_keys())
    if mid.hex() != meta.get("msvq_model_id"):
        raise WeightsError(f"{path}: tensors do not match the recorded model ID (file altered or corrupt)")
    own = model.state_dict()
    try:
        # strict: every parameter and buffer is the file's (none keeps build_model's uninitialised memory);
        # assign: the model takes the file's tensors, cast to its own dtypes (fp16 -> fp32) as copying into
        # it would have, instead of a second copy of each
        model.load_state_dict({k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}, assign=True)
    except RuntimeError as err:
        raise WeightsError(f"{path}: tensors do not fit the recorded config ({str(err).splitlines()[0]})") from None
    provenance = json.loads(meta.get("provenance") or "{}")
    return LoadedModel(model.to(device).eval(), mid, provenance, path)
