"""``msvq bench``: msvq against itself (``--weights`` ablations) and against classic codecs, on the same clips.

    clips.py    inputs -> the model's clips, as ``msvq encode`` cuts them
    score.py    PSNR / SSIM (paper Section 3.2) and LPIPS of a reconstruction
    classic.py  x264, x265, SVT-AV1, VP9 through ffmpeg: elementary streams, CRF sweeps
    bdrate.py   Bjontegaard delta rate
    run.py      the orchestration: plain records (per clip, per stream), summary points, BD-rates
    report.py   rich tables, JSON, rate-distortion plot, frames picture
"""

from msvq_codec.bench.run import BenchOptions, BenchResult, formula_bpp, run_bench

__all__ = ["BenchOptions", "BenchResult", "formula_bpp", "run_bench"]
