"""Fixtures shared by the test modules: the tiny model of tests/tinymodel.py, built once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from msvq_codec.model.weights import load_weights
from tinymodel import make_tiny_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """The tiny model's weights file, with the entropy model msvq encode's default coder needs beside it."""
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture(scope="module")
def loaded(weights):
    return load_weights(weights)
