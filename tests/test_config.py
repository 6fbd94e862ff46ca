"""Configs: recipes are named TrainConfig values; explicit values win; bad values are usage errors."""

import dataclasses

import pytest

from msvq_codec.config import RECIPES, ModelConfig, TrainConfig, train_recipe
from msvq_codec.errors import UsageError


def test_paper_recipe_is_the_defaults():
    assert train_recipe("paper") == TrainConfig()


def test_cpu_recipe_differs_only_where_it_says_and_overrides_win():
    cpu = train_recipe("cpu")
    changed = {f.name for f in dataclasses.fields(TrainConfig) if getattr(cpu, f.name) != getattr(TrainConfig(), f.name)}
    assert changed == set(RECIPES["cpu"])
    assert train_recipe("cpu", gamma=0.4, lr=1e-4).gamma == 0.4
    assert train_recipe("cpu", gamma=0.4).schedule == "constant"


@pytest.mark.parametrize("bad", [dict(schedule="linear"), dict(weight_ema=1.0), dict(weight_ema=-0.1),
                                 dict(hide_bottom=1.0), dict(hide_bottom_steps=-1), dict(hide_bottom_unit="frame")])
def test_bad_train_values_are_usage_errors(bad):
    with pytest.raises(UsageError):
        TrainConfig(**bad)


def test_hide_share_is_held_or_falls_linearly_to_zero():
    held = TrainConfig(hide_bottom=0.25)
    assert [held.hide_share(s) for s in (0, 10**6)] == [0.25, 0.25]
    falling = TrainConfig(hide_bottom=0.25, hide_bottom_steps=100)
    shares = [falling.hide_share(s) for s in range(0, 130, 10)]
    assert shares[0] == 0.25 and shares[5] == 0.125 and shares[10:] == [0.0, 0.0, 0.0]
    assert all(a > b for a, b in zip(shares[:10], shares[1:11]))  # strictly falling until it reaches 0
    assert TrainConfig().hide_share(0) == 0.0  # the paper: never


def test_unknown_recipe_is_a_usage_error():
    with pytest.raises(UsageError, match="cpu"):
        train_recipe("gpu")


def test_model_config_json_is_unchanged_by_train_fields():
    """The model ID hashes ModelConfig's JSON: recipe work must not add fields to it."""
    assert ModelConfig().to_json() == (
        '{"bottom_stride": [2, 4, 4], "clip_frames": 32, "clip_size": 64, "codebook_size": 1024, '
        '"dead_code_threshold": 1.0, "ema_decay": 0.99, "ema_eps": 1e-05, "embed_dim": 128, "fps": 16.0, '
        '"hidden_channels": 224, "in_channels": 3, "levels": 2, "n_res_blocks": 2, "res_channels": 96, '
        '"top_stride": [2, 2, 2]}'
    )


def test_top_join_is_written_only_away_from_the_papers():
    """A field added later stays out of the JSON at its default, so earlier models keep their IDs."""
    assert "top_join" not in ModelConfig().to_json()
    residual = ModelConfig(top_join="residual")
    assert '"top_join": "residual"' in residual.to_json()
    assert ModelConfig.from_json(residual.to_json()) == residual
    assert ModelConfig.from_json(ModelConfig().to_json()) == ModelConfig()
    with pytest.raises(UsageError, match="top_join"):
        ModelConfig(top_join="sum")


def test_a_top_codebook_of_its_own_size_is_written_only_when_set():
    assert "top_codebook_size" not in ModelConfig().to_json()
    own = ModelConfig(top_codebook_size=256)
    assert '"top_codebook_size": 256' in own.to_json() and ModelConfig.from_json(own.to_json()) == own
    assert (own.codebook_of("top"), own.codebook_of("bottom")) == own.codebook_sizes == (256, 1024)
    assert ModelConfig(levels=1, top_codebook_size=256).codebook_sizes == (1024,)  # the bottom's alone
    assert (ModelConfig().codebook_of("top"), ModelConfig().codebook_of("bottom")) == (1024, 1024)
    with pytest.raises(UsageError, match="top_codebook_size"):
        ModelConfig(top_codebook_size=1)
