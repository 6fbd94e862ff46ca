#!/usr/bin/env bash
# A training run's rate-distortion curve on the dev set: export the run's weight average, fit its two entropy
# models (the learned prior and the context model) on the training clips of UCF101 split 1, then bench the
# seven dev videos over the five quality presets. Compare two curves with bd_rate.py.
#   bash benchmarks/training/run_rd.sh NAME RUN_DIR        # writes $MSVQ_RD/NAME.safetensors (+ sidecars), NAME-rd.json
# e.g. bash benchmarks/training/run_rd.sh single ~/.cache/msvq/runs/anneal-single
#      python benchmarks/training/bd_rate.py rd/single-rd.json rd/resid-hide-rd.json
set -euo pipefail
name=$1 run=$2
data=${MSVQ_DATA:-../shared/data}
out=${MSVQ_RD:-rd}
mkdir -p "$out"
dev=$(echo "$data"/ucf101/videos/v_{ApplyEyeMakeup_g01_c01,Archery_g01_c01,BaseballPitch_g01_c01,Basketball_g01_c01,Basketball_g02_c03,HeadMassage_g02_c05,PushUps_g02_c03}.avi)
msvq --quiet export "$run/last.pt" "$out/$name.safetensors"
msvq --quiet fit-entropy "$out/$name.safetensors" --data "$data" --split official:1 --splits "$data/ucf101/splits" \
    --cache-dir "$HOME/.cache/msvq/cache"
# shellcheck disable=SC2086  # dev is a list of paths without spaces
msvq --quiet bench $dev --weights "$out/$name.safetensors" --quality max,high,medium,low,lowest --no-classic --no-lpips \
    --json "$out/$name-rd.json"
