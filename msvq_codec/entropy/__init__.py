"""Context-model entropy coding of the index grids (the ``context`` stream codec of .msvq version 2).

    context   which already-decoded codes predict an index (integer, vectorised per latent frame)
    tables    the integer tables, their entropy-model ID, and the sidecar file beside the weights
    coder     range coding of a level with the tables (constriction's rANS)
    fit       smoothed counts with backoff -> tables (``msvq fit-entropy``, ``msvq export``)
    grids     index grids of whole videos, cached, for fitting and measuring

Nothing here imports torch except ``grids`` (which runs the model).
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
