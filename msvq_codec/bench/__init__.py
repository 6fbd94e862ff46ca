"""``msvq bench``: msvq against itself (``--weights`` ablations) and against classic codecs, on the same clips.

    clips.py    inputs -> the model's clips, as ``msvq encode`` cuts them
    score.py    PSNR / SSIM (paper Section 3.2) and LPIPS of a reconstruction
    classic.py  x264, x265, SVT-AV1, VP9 through ffmpeg: elementary streams, CRF sweeps
    bdrate.py   Bjontegaard delta rate
    records.py  what it measures, as typed records: per clip, per stream, summary points, BD-rates
    run.py      the orchestration: every clip through msvq (``codec``) and the classic codecs, then scored
    report.py   rich tables, JSON, rate-distortion plot, frames picture
"""

from msvq_codec.bench.records import BenchResult
from msvq_codec.bench.run import BenchOptions, run_bench

__all__ = ["BenchOptions", "BenchResult", "run_bench"]
