"""``torchrun --nproc_per_node N -m msvq_codec.train --data ...``: the train command under DDP."""

import sys

from msvq_codec.cli import app

app(["train", *sys.argv[1:]])
