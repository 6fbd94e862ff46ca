"""Build glue that pyproject.toml cannot say: the shipped weights travel inside the package.

``weights/`` stays at the top of the repository, where people look for it; a wheel, an sdist and a plain
``pip install .`` map it into the package as ``msvq_codec/weights/``, every file in it (weights, their model
card and training log, and any artifact added beside them later). ``msvq_codec.model.weights.shipped_dir``
finds it there, or in the repository for a source checkout and ``pip install -e .``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["msvq_codec", "msvq_codec.*"]), "msvq_codec.weights"],
    package_dir={"msvq_codec.weights": "weights"},
    package_data={"msvq_codec.weights": ["*"]},
)
