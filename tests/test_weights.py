"""Weights files: safetensors with config and model ID; refusal of anything altered or malformed."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from msvq_codec.config import ModelConfig, model_preset
from msvq_codec.errors import UsageError, WeightsError
from msvq_codec.model import MSVQVAE
from msvq_codec.model.weights import find_weights, load_weights, model_id, read_metadata, save_weights


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


def _loaded_the_old_way(path):
    """What load_weights did before it skipped the random init and the copy: a model built for training,
    the file's tensors copied into it."""
    state = load_file(str(path))
    model = MSVQVAE(ModelConfig.from_json(read_metadata(path)["msvq_config"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


@pytest.mark.parametrize("which", ["tiny", "shipped"])
def test_loading_gives_the_files_tensors_bit_for_bit_and_the_same_model_id(tiny, which):
    path = tiny[1] if which == "tiny" else find_weights()[0]
    if not path.is_file():
        pytest.skip(f"no weights at {path}")
    loaded = load_weights(path)
    old = _loaded_the_old_way(path)
    state, stored = loaded.model.state_dict(), load_file(str(path))
    assert state.keys() == old.state_dict().keys() == stored.keys()
    for key, tensor in old.state_dict().items():  # every tensor the file's: none left uninitialised
        assert state[key].dtype == tensor.dtype and torch.equal(state[key], tensor), key
        assert torch.equal(state[key], stored[key].float() if stored[key].is_floating_point() else stored[key])
    assert loaded.model_id.hex() == read_metadata(path)["msvq_model_id"]
    assert loaded.model_id == model_id(old.config, stored, old.decoder_state_keys())
    assert all(p.requires_grad for p in loaded.model.parameters())  # parameters still, though assigned
    if which == "tiny":
        x = torch.rand(1, 3, 32, 64, 64)
        assert all(torch.equal(a, b) for a, b in zip(loaded.model.encode(x).by_level(), old.encode(x).by_level()))


def test_tensors_stored_in_other_dtypes_load_as_the_models_own(tiny, tmp_path):
    """Cast to the model's dtypes as copying into it did: a float64 weight, integer counts, a float flag."""
    _, path, _ = tiny
    meta, state = read_metadata(path), load_file(str(path))
    state["enc_bottom.0.weight"] = state["enc_bottom.0.weight"].double()
    state["quantizer_bottom.cluster_size"] = state["quantizer_bottom.cluster_size"].round().int()
    state["quantizer_bottom.initialized"] = state["quantizer_bottom.initialized"].float()
    odd = tmp_path / "odd.safetensors"
    save_file(state, str(odd), metadata=meta)  # none of these is a decoder tensor: the model ID holds
    loaded, old = load_weights(odd).model.state_dict(), _loaded_the_old_way(odd).state_dict()
    assert all(loaded[k].dtype == v.dtype and torch.equal(loaded[k], v) for k, v in old.items())
