"""Weights files: safetensors with config and model ID; refusal of anything altered or malformed."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from msvq_codec.config import ModelConfig, model_preset
from msvq_codec.errors import UsageError, WeightsError
from msvq_codec.model import MSVQVAE
from msvq_codec.model.weights import load_weights, read_metadata, save_weights


@pytest.fixture
def tiny(tmp_path):
    torch.manual_seed(0)
    model = MSVQVAE(model_preset("tiny"))
    model.train()
    model(torch.rand(1, 3, 32, 64, 64))
    model.eval()
    path = tmp_path / "tiny.safetensors"
    mid = save_weights(path, model, {"steps": 3})
    return model, path, mid


def test_round_trip_keeps_config_id_and_codes(tiny):
    model, path, mid = tiny
    loaded = load_weights(path)
    assert loaded.model.config == model.config
    assert loaded.model_id == mid and len(mid) == 16
    assert loaded.metadata == {"steps": 3}
    assert not loaded.model.training
    x = torch.rand(1, 3, 32, 64, 64)
    # fp16 storage rounds the weights, so compare the reloaded model with itself reloaded
    again = load_weights(path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.encode(x).by_level(), again.model.encode(x).by_level()))


def test_model_id_is_stable_and_depends_on_decoder_weights(tiny, tmp_path):
    model, path, mid = tiny
    assert save_weights(tmp_path / "again.safetensors", model) == mid
    with torch.no_grad():
        model.decoder[0].weight.add_(1.0)
    assert save_weights(tmp_path / "changed.safetensors", model) != mid


def test_config_is_stored_as_json(tiny):
    _, path, _ = tiny
    meta = read_metadata(path)
    assert ModelConfig.from_json(meta["msvq_config"]) == model_preset("tiny")
    assert json.loads(meta["provenance"]) == {"steps": 3}


def test_floating_tensors_are_stored_fp16_but_counters_exact(tiny):
    _, path, _ = tiny
    state = load_file(str(path))
    assert state["decoder.0.weight"].dtype == torch.float16
    assert state["quantizer_bottom.initialized"].dtype == torch.bool


def test_altered_tensor_is_refused(tiny, tmp_path):
    _, path, _ = tiny
    state = load_file(str(path))
    state["decoder.0.weight"] = state["decoder.0.weight"] + 1
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad), metadata=read_metadata(path))
    with pytest.raises(WeightsError, match="model ID"):
        load_weights(bad)


def test_missing_file_names_the_path_and_the_argument(tmp_path):
    with pytest.raises(WeightsError, match="no weights at .*nope.safetensors") as info:
        load_weights(tmp_path / "nope.safetensors")
    assert info.value.option == "weights"


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", b"\xff" * 64])
def test_garbage_is_a_weights_error(tmp_path, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    with pytest.raises(WeightsError):
        load_weights(bad)


def test_plain_safetensors_without_msvq_metadata_is_refused(tmp_path):
    bad = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(bad))
    with pytest.raises(WeightsError, match="not an msvq weights file"):
        load_weights(bad)


def test_config_json_round_trip_and_validation():
    cfg = ModelConfig(levels=1, codebook_size=512)
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(UsageError):
        ModelConfig(levels=3)
    with pytest.raises(UsageError):
        ModelConfig.from_json('{"no_such_field": 1}')
    with pytest.raises(UsageError):
        model_preset("huge")
