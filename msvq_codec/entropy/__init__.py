"""Entropy coding of the index grids: the learned prior (the ``prior`` stream codec of .msvq version 3, the
default) and the context model (the ``context`` codec of version 2).

    prior        the learned prior of a level: what each pass of a frame sees, the integer network
    prior_coder  range coding of a level with its prior (constriction's rANS)
    prior_file   the prior of a set of weights, its ID, and its sidecar file beside the weights
    prior_fit    training the float network and quantising it to the integer prior (torch)
    context      the context model: which already-decoded codes predict an index (integer, per latent frame)
    tables       its integer tables, their entropy-model ID, and the sidecar file beside the weights
    coder        range coding of a level with the tables
    fit          smoothed counts with backoff -> tables
    refit        both models of a weights file, fitted on a data folder (``msvq fit-entropy``, ``msvq export``)
    sidecar      the files beside the weights that hold them (safetensors, written atomically)
    grids        index grids of whole videos, cached, for fitting and measuring

The prior's inference runs its exact integer arithmetic through torch's float64 matrix products; fitting
(``prior_fit``, ``refit``, ``grids``) trains or runs models. The context model's modules use numpy only.
"""

from msvq_codec.entropy.coder import LevelCoder
from msvq_codec.entropy.tables import (
    ENTROPY_ID_BYTES,
    EntropyModel,
    LevelTables,
    load_entropy,
    save_entropy,
    sidecar_path,
)

__all__ = ["ENTROPY_ID_BYTES", "EntropyModel", "LevelCoder", "LevelTables", "load_entropy", "save_entropy",
           "sidecar_path"]
