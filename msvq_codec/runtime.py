"""Process settings for CPU inference that must be made before torch is imported.

``OMP_WAIT_POLICY=PASSIVE`` (unless the user set it): OpenMP threads that finish a parallel region sleep
instead of spinning. With torch's default (spinning) every convolution ends in a barrier that waits for the
slowest thread, and on a CPU shared with other work (a training run, parallel ``msvq`` jobs) one descheduled
thread stalls the rest: on a 2-core machine shared with a training run this made encode and decode about
1.6x slower than with passive waiting (``benchmarks/startup/README.md``, "Threads").
"""

from __future__ import annotations

import os
import sys


def configure_before_torch() -> bool:
    """Apply the settings; return False (and change nothing) when torch is already imported."""
    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return True
