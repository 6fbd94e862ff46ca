"""Print the validation records of training runs side by side: step, CPU minutes of training steps, dev-set
PSNR/SSIM of the raw weights and of the weight average, codebook entries the dev clips use, and (where the
run logged them) the distinct top grids over the dev clips and the PSNR the top level adds, of the average.

    python benchmarks/training/training_table.py RUN_DIR [RUN_DIR ...]
"""

import json
import sys
from pathlib import Path


def rows(run_dir: Path):
    minutes = 0.0
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "sec" in record:
            minutes += record["sec"] / 60
        elif "val_psnr" in record:
            yield record, minutes


def main() -> None:
    print("| run | step | step-minutes | PSNR raw | SSIM raw | PSNR avg | SSIM avg | top used (raw/avg) | bottom used "
          "| top grids (avg) | top adds (avg, dB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for run in sys.argv[1:]:
        for r, minutes in rows(Path(run)):
            avg = (f"{r['ema_val_psnr']:.2f} | {r['ema_val_ssim']:.4f}") if "ema_val_psnr" in r else "- | -"
            top = f"{r.get('val_top_used', '-')}/{r.get('ema_val_top_used', '-')}"
            grids = f"{r['ema_val_top_grids']}/{r['val_clips']}" if "ema_val_top_grids" in r else "-"
            gain = f"{r['ema_val_top_gain']:.2f}" if "ema_val_top_gain" in r else "-"
            print(f"| {Path(run).name} | {r['step']} | {minutes:.1f} | {r['val_psnr']:.2f} | {r['val_ssim']:.4f} | "
                  f"{avg} | {top} | {r.get('val_bottom_used', '-')} | {grids} | {gain} |")


if __name__ == "__main__":
    main()
