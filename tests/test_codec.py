"""Tests for msvq_codec.codec: a tiny random model's codes through the container's bytes and back, bit for bit,
and the frames decoded from them. The file-level functions on top (encode_video, decode_file) are
tests/test_files.py's.

The model is ``MSVQVAE(model_preset("tiny"))``, randomly initialised, its codebooks seeded by one training
forward; its weights are written to a temporary folder (no weights are committed).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from msvq_codec import codec
from msvq_codec.config import model_preset
from msvq_codec.container import from_bytes, to_bytes
from msvq_codec.device import pick_device
from msvq_codec.errors import UsageError
from msvq_codec.model.fast import fast_model
from msvq_codec.model.weights import load_weights
from msvq_codec.video import iter_clips, probe
from test_files import make_npy
from tinymodel import make_tiny_weights


# ---- the round trip ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["prior", "context", "zstd", "deflate"])
def test_indices_bit_exact_through_bytes(tmp_path, loaded, name):
    src = make_npy(tmp_path / "v.npy", 70)
    clips = list(iter_clips(src))
    direct = codec.encode_clips(loaded, clips)
    header, data = codec.encode_to_bytes(src, loaded, codec=name)
    container = from_bytes(data)
    assert container.header == header and header.codec.name.lower() == name
    indices = codec.container_indices(container, loaded)
    assert len(indices) == len(direct) == 2
    for got, want in zip(indices, direct):
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    if name in ("prior", "context"):  # the streams come back as stored, and code the indices to the same bytes
        assert codec.codes_to_bytes(loaded, indices, 70, probe(src), codec=name)[1] == data
        assert container.indices is None and header.entropy_id == codec.range_coder(loaded, header.codec).model_id
        assert container.version == (3 if name == "prior" else 2)
    else:
        assert to_bytes(container.header, container.indices) == data  # and back to the very same bytes
    assert header.model_id == loaded.model_id
    assert header.n_clips == 3 and header.frame_count == 70


@pytest.mark.parametrize("name", ["prior", "context"])
def test_a_top_codebook_of_its_own_size_codes_bit_exact(tmp_path, name):
    """A model whose top codebook is smaller than the bottom's (ModelConfig.top_codebook_size): the file's level
    records and the entropy models carry each level's own K, and the indices come back bit for bit."""
    cfg = dataclasses.replace(model_preset("tiny"), top_codebook_size=8)
    loaded = load_weights(make_tiny_weights(tmp_path / "w.safetensors", config=cfg))
    src = make_npy(tmp_path / "v.npy", 40)
    direct = codec.encode_clips(loaded, list(iter_clips(src)))
    assert int(direct[0].max()) < 8 <= int(direct[1].max()) < 32  # top coarse first, under its own K
    header, data = codec.encode_to_bytes(src, loaded, codec=name)
    assert [lv.codebook_size for lv in header.levels] == [8, 32]
    for got, want in zip(codec.container_indices(from_bytes(data), loaded), direct):
        np.testing.assert_array_equal(got, want)


def test_decoded_frames_match_model_decode(loaded):
    """Decoding bytes equals decoding the model's own codes of the same clips (nothing lost in the file)."""
    clips = [np.random.default_rng(1).integers(0, 256, (32, 64, 64, 3), dtype=np.uint8)]
    indices = codec.encode_clips(loaded, clips)
    frames = np.concatenate(list(codec.decode_clips(loaded, indices)))  # clips [T, H, W, 3], one at a time
    x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float() / 255
    model = fast_model(loaded.model)  # what the codec computes with (msvq_codec.model.fast; tests/test_fast.py)
    want = (model.decode(model.encode(x)) * 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1)
    np.testing.assert_array_equal(frames, want.numpy()[0])


def test_bad_device_is_a_usage_error():
    with pytest.raises(UsageError):
        pick_device("tpu")
