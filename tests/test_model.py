"""The MS-VQ-VAE network: sizes, shapes, the coding path, and the EMA quantiser."""

import dataclasses
import threading
from pathlib import Path

import pytest
import torch

import msvq_codec
from msvq_codec.config import ModelConfig, model_preset
from msvq_codec.model import MSVQVAE, count_parameters
from msvq_codec.model.layers import stride_steps, to_be_loaded
from msvq_codec.model.quantizer import EMAQuantizer
from msvq_codec.model.vqvae import nearest_codes


def seeded(config: ModelConfig, seed: int = 0) -> MSVQVAE:
    """A model whose codebooks were seeded from encoder outputs by one training-mode pass."""
    torch.manual_seed(seed)
    model = MSVQVAE(config)
    model.train()
    model(torch.rand(2, 3, config.clip_frames, config.clip_size, config.clip_size))
    return model.eval()


def test_default_config_has_the_papers_size():
    # Paper Table 2: 18.5M parameters for the two-level model.
    n = count_parameters(MSVQVAE(ModelConfig()))
    assert 17e6 <= n <= 20e6, n


def test_default_grids_give_035_bpp_before_entropy_coding():
    cfg = ModelConfig()
    assert cfg.grid("bottom") == (16, 16, 16)
    assert cfg.grid("top") == (8, 8, 8)
    bits = (16**3 + 8**3) * 10  # log2(1024) bits per index
    assert bits / (32 * 64 * 64) == pytest.approx(0.3515625)


@pytest.mark.parametrize("stride,steps", [((2, 4, 4), [(2, 2, 2), (1, 2, 2)]), ((1, 2, 2), [(1, 2, 2)]), ((1, 1, 1), [])])
def test_stride_steps(stride, steps):
    assert stride_steps(stride) == steps


@pytest.mark.parametrize("preset", ["tiny"])
@pytest.mark.parametrize("levels, join", [(1, "concat"), (2, "concat"), (2, "residual")])
def test_shapes_through_encode_and_decode(preset, levels, join):
    cfg = dataclasses.replace(model_preset(preset), levels=levels, top_join=join)
    model = seeded(cfg)
    x = torch.rand(3, 3, 32, 64, 64)
    out = model(x)
    assert out.recon.shape == x.shape
    codes = model.encode(x)
    assert codes.bottom.shape == (3, *cfg.grid("bottom"))
    if levels == 2:
        assert codes.top.shape == (3, *cfg.grid("top"))
    else:
        assert codes.top is None
    assert len(codes.by_level()) == levels
    assert all(int(c.max()) < cfg.codebook_size and int(c.min()) >= 0 for c in codes.by_level())
    y = model.decode(codes)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1


@pytest.mark.parametrize("join", ["concat", "residual"])
def test_decode_of_encode_matches_the_training_forward_and_is_deterministic(join):
    model = seeded(dataclasses.replace(model_preset("tiny"), top_join=join))
    x = torch.rand(2, 3, 32, 64, 64)
    codes = model.encode(x)
    with torch.no_grad():
        forward = model(x).recon.clamp(0, 1)
    assert torch.allclose(model.decode(codes), forward, atol=1e-5)
    assert torch.equal(model.decode(codes), model.decode(codes))
    assert all(torch.equal(a, b) for a, b in zip(model.encode(x).by_level(), codes.by_level()))


def test_hidden_positions_zero_only_their_own_bottom_latents():
    model = seeded(model_preset("tiny"))
    x = torch.rand(2, 3, 32, 64, 64)
    t, h, w = model.config.grid("bottom")
    none, mask = torch.zeros(2, t, h, w, dtype=torch.bool), torch.zeros(2, t, h, w, dtype=torch.bool)
    mask[1, 0, 0, 0] = True  # one position of the second clip
    with torch.no_grad():
        full, hidden = model(x, none).recon, model(x, mask).recon
    assert torch.equal(full[0], hidden[0])  # the first clip is untouched
    changed = (full[1] - hidden[1]).abs().amax(dim=0) > 0  # [T, H, W]
    assert changed.any() and not changed.all()  # a local change, around the hidden position


def test_hidden_clips_are_decoded_from_their_top_codes_alone():
    model = seeded(model_preset("tiny"))
    x = torch.rand(3, 3, 32, 64, 64)
    hide = torch.tensor([True, False, True])
    with torch.no_grad():
        out = model(x, hide).recon.clamp(0, 1)
        codes = model.encode(x)
        alone = model.decode(codes._replace(bottom=torch.zeros_like(codes.bottom)))  # entry 0 is not zeros
        z_t = model.quantizer_top.lookup(codes.top)
        top_only = model._decode_latents(torch.zeros_like(model.quantizer_bottom.lookup(codes.bottom)), z_t)
    assert torch.allclose(out[hide], top_only.clamp(0, 1)[hide], atol=1e-5)
    assert torch.allclose(out[~hide], model.decode(codes)[~hide], atol=1e-5)
    assert not torch.allclose(out[hide], alone[hide], atol=1e-3)  # zeroed latents, not the code 0's vector
    model.train()
    grads = model(x, torch.ones(3, dtype=torch.bool))
    grads.recon.mean().backward()
    assert model.enc_top[0].weight.grad.abs().sum() > 0  # the top path learns from the hidden clips
    assert model.decoder[0].weight.grad is not None


def test_a_residual_top_is_what_the_bottom_codes_refine():
    """top_join="residual": the decoder reads the upsampled top plus the bottom latent, the bottom codes are the
    nearest entries to what the top leaves of the bottom latent, and the top's prediction loss alone trains the
    top path."""
    model = seeded(dataclasses.replace(model_preset("tiny"), top_join="residual"))
    x = torch.rand(2, 3, 32, 64, 64)
    codes = model.encode(x)
    with torch.no_grad():
        z_t = model.quantizer_top.lookup(codes.top)  # [b, d, t_t, h_t, w_t]
        h_b = model.enc_bottom(x - 0.5)
        e_b = model.pre_quant_bottom(torch.cat([model.dec_top(z_t), h_b], dim=1))  # [b, d, t_b, h_b, w_b]
        coarse = model.upsample_top(z_t)
        assert torch.equal(codes.bottom, nearest_codes("bottom", e_b - coarse, model.quantizer_bottom.embed))
        z_b = model.quantizer_bottom.lookup(codes.bottom)
        assert torch.allclose(model.decode(codes), (model.decoder(coarse + z_b) + 0.5).clamp(0, 1), atol=1e-6)
    assert model.decoder[0].in_channels == model.config.embed_dim  # the sum, not the concatenation
    model.train()
    model(x).vq_loss.backward()  # commitments and the top's prediction of the bottom latent
    assert model.upsample_top[0].weight.grad.abs().sum() > 0 and model.enc_top[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("levels", [1, 2])
def test_latent_norm_holds_each_latent_to_unit_length(levels):
    """latent_norm: the codes are chosen for unit-length latents (the bottom's, with the residual join, less the
    upsampled top), whatever the scale of the encoder's weights, and training moves only the direction."""
    config = dataclasses.replace(model_preset("tiny"), levels=levels, top_join="residual", latent_norm=True)
    model = seeded(config)
    x = torch.rand(2, 3, 32, 64, 64)
    with torch.no_grad():
        model.pre_quant_bottom.weight.mul_(50.0)  # a latent that has run away
        h_b = model.enc_bottom(x - 0.5)
        if levels == 2:
            e_t = model.pre_quant_top(model.enc_top(h_b))
            codes = model.encode(x)
            unit_t = e_t / e_t.norm(dim=1, keepdim=True)
            assert torch.equal(codes.top, nearest_codes("top", unit_t, model.quantizer_top.embed))
            z_t = model.quantizer_top.lookup(codes.top)
            e_b = model.pre_quant_bottom(torch.cat([model.dec_top(z_t), h_b], dim=1))
            e_b = e_b / e_b.norm(dim=1, keepdim=True) - model.upsample_top(z_t)
        else:
            codes = model.encode(x)
            e_b = model.pre_quant_bottom(h_b)
            e_b = e_b / e_b.norm(dim=1, keepdim=True)
        assert torch.equal(codes.bottom, nearest_codes("bottom", e_b, model.quantizer_bottom.embed))
    assert ModelConfig.from_json(config.to_json()) == config and "latent_norm" in config.to_json()
    assert "latent_norm" not in model_preset("tiny").to_json()  # earlier models keep their IDs


def test_gradients_reach_the_encoder_through_the_quantiser():
    model = MSVQVAE(model_preset("tiny"))
    model.train()
    out = model(torch.rand(1, 3, 32, 64, 64))
    (out.recon.mean() + out.vq_loss).backward()
    first_conv = model.enc_bottom[0]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0


def test_eval_mode_leaves_codebooks_alone():
    model = seeded(model_preset("tiny"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.encode(torch.rand(1, 3, 32, 64, 64))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_quantiser_seeds_from_data_and_follows_ema():
    torch.manual_seed(0)
    q = EMAQuantizer(codebook_size=4, dim=2, decay=0.5, eps=1e-5, dead_threshold=0.5)
    q.train()
    centres = torch.tensor([[5.0, 5.0], [-5.0, 5.0], [5.0, -5.0], [-5.0, -5.0]])
    z = centres.repeat(8, 1)  # [32, 2]
    z = z.t().reshape(1, 2, 32, 1, 1)  # [b, d, t, h, w]
    assert not bool(q.initialized)
    for _ in range(60):  # two entries may seed on one centre; a restart then moves one of them
        out = q(z)
    assert bool(q.initialized)
    # every entry ends up on one of the data points, the commitment loss on exact centres is zero
    dist = torch.cdist(q.embed, centres).min(dim=1).values
    assert float(dist.max()) < 1e-3
    assert float(out.commitment) < 1e-5


def test_dead_codes_are_restarted_from_encoder_outputs():
    torch.manual_seed(0)
    q = EMAQuantizer(codebook_size=8, dim=2, decay=0.9, eps=1e-5, dead_threshold=0.5)
    q.train()
    data = torch.randn(64, 2)
    z = data.t().reshape(1, 2, 64, 1, 1)
    q(z)  # seeds
    q.embed[3] = torch.tensor([100.0, 100.0])  # far from every input: never chosen
    q.embed_avg[3] = q.embed[3]
    q.cluster_size[3] = 0.0  # and its usage has decayed away
    q(z)
    assert bool((data == q.embed[3]).all(1).any())  # replaced by one of the inputs, exactly


def test_perplexity_counts_codes_in_use():
    q = EMAQuantizer(codebook_size=16, dim=2, decay=0.9, eps=1e-5, dead_threshold=1.0)
    assert float(q.usage(torch.arange(4).repeat(10))) == pytest.approx(4.0, rel=1e-4)


def _one_cluster_quantiser(dead_fraction: float) -> tuple[EMAQuantizer, torch.Tensor]:
    """A codebook of 8 where all 64 inputs sit on one point: entry 0 takes every hit, the rest starve."""
    q = EMAQuantizer(codebook_size=8, dim=2, decay=0.99, eps=1e-5, dead_threshold=1.0)
    q.dead_fraction = dead_fraction
    q.train()
    q.embed.copy_(torch.arange(16.0).view(8, 2) * 10)  # [K, d], far apart
    q.embed[0] = 0.0  # entry 0 at the origin
    q.embed_avg.copy_(q.embed)
    q.initialized.fill_(True)
    return q, torch.zeros(1, 2, 64, 1, 1)  # [b, d, t, h, w]: 64 vectors at the origin


@pytest.mark.parametrize("fraction, expected_restarts", [(0.0, [7, 7, 7, 7]), (0.1, [7, 0, 0, 0])])
def test_restarted_entries_get_a_grace_period_relative_to_the_batch(fraction, expected_restarts):
    """The paper's policy gives a restarted entry a count of 1.0, its own threshold, so one batch without a
    hit restarts it again; relative restarts give it the batch's mean hits, far above f x that mean."""
    q, z = _one_cluster_quantiser(fraction)
    q.cluster_size.copy_(torch.tensor([64.0] + [0.0] * 7))  # entries 1..7 dead from the start
    restarts = []
    for _ in range(4):
        q(z)  # restarted entries land on the origin too, where entry 0 wins the tie: they never get a hit
        restarts.append(int(q.last_restarts))
    assert restarts == expected_restarts
    if fraction:
        mean_hits = 64 / 8
        assert torch.allclose(q.cluster_size[1:], torch.full((7,), mean_hits * 0.99**3), rtol=1e-5)


def test_resync_makes_ema_sums_agree_with_the_codebook():
    torch.manual_seed(0)
    q = EMAQuantizer(codebook_size=16, dim=4, decay=0.99, eps=1e-5, dead_threshold=1.0)
    q.cluster_size.copy_(torch.rand(16) * 50)
    q.embed_avg.copy_(q.embed_avg.half().float() * 3)  # rounded and inconsistent, as after an fp16 round trip
    q.resync_ema()
    total = q.cluster_size.sum()
    smoothed = (q.cluster_size + q.eps) / (total + 16 * q.eps) * total
    assert torch.allclose(q.embed_avg / smoothed[:, None], q.embed, atol=1e-6)


# ---- random initialisation: for training always; skipped only while weights are being loaded -------------


def _conv_weights(model: MSVQVAE) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]


def test_a_model_built_for_training_gets_torchs_random_initialisation():
    cfg = model_preset("tiny")
    torch.manual_seed(0)
    a = MSVQVAE(cfg)
    torch.manual_seed(0)
    again = MSVQVAE(cfg)
    torch.manual_seed(1)
    b = MSVQVAE(cfg)
    for wa, wagain, wb in zip(_conv_weights(a), _conv_weights(again), _conv_weights(b)):
        assert wa.abs().min() > 0  # every weight drawn (kaiming uniform), none left as allocated
        assert torch.equal(wa, wagain) and not torch.equal(wa, wb)  # and from the seed


def test_to_be_loaded_skips_only_the_init_and_only_inside_the_block(monkeypatch):
    calls = []
    real = torch.nn.init.kaiming_uniform_
    monkeypatch.setattr(torch.nn.init, "kaiming_uniform_", lambda t, *a, **k: calls.append(t) or real(t, *a, **k))
    cfg = model_preset("tiny")
    with to_be_loaded():
        model = MSVQVAE(cfg)
    # msvq's own conv layers skipped theirs; vqvae's two 1x1 projections (plain nn.Conv3d, 0.4 % of the
    # default model's parameters) still draw
    plain = [m for m in model.modules() if type(m) in (torch.nn.Conv3d, torch.nn.ConvTranspose3d)]
    assert len(calls) == len(plain) == 2
    calls.clear()
    with pytest.raises(RuntimeError):
        with to_be_loaded():
            raise RuntimeError("a failed build")
    fresh = MSVQVAE(cfg)  # after the block, even one left by an error: the normal init again
    assert len(calls) == len(_conv_weights(fresh))


def test_to_be_loaded_does_not_reach_another_thread():
    """A training run in another thread (or a DataLoader's) never builds an uninitialised model."""
    built = []
    with to_be_loaded():
        thread = threading.Thread(target=lambda: built.append(MSVQVAE(model_preset("tiny"))))
        thread.start()
        thread.join()
    assert all(w.abs().min() > 0 for w in _conv_weights(built[0]))


def test_only_weight_loading_builds_uninitialised_models():
    """The uninitialised build is for a model whose every tensor a file replaces at once (load_weights, strict
    load_state_dict); training builds its model with MSVQVAE(config) and never uses it."""
    package = Path(msvq_codec.__file__).parent
    users = {p.relative_to(package).as_posix() for p in package.rglob("*.py") if "to_be_loaded" in p.read_text()}
    assert users == {"model/layers.py", "model/weights.py"}
