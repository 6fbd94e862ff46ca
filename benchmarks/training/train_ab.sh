#!/usr/bin/env bash
# A/B of one training lever at equal wall time: two `msvq train` runs side by side, one CPU thread each, so
# that whatever else loads the machine loads both alike. Same seed, data, split and starting weights.
#   bash benchmarks/training/train_ab.sh NAME MINUTES "A OPTIONS" "B OPTIONS"
# e.g. bash benchmarks/training/train_ab.sh restarts 40 "--dead-code-fraction 0.1" "--dead-code-fraction 0"
# then: python benchmarks/training/training_table.py ~/.cache/msvq/runs/NAME-a ~/.cache/msvq/runs/NAME-b
set -euo pipefail
name=$1 minutes=$2 a=$3 b=$4
data=${MSVQ_DATA:-../shared/data}
runs=${MSVQ_RUNS:-$HOME/.cache/msvq/runs}
start=${MSVQ_START:-weights/msvq-default.safetensors}
common=(--data "$data" --split official:1 --splits "$data/ucf101/splits" --cache-dir "$HOME/.cache/msvq/cache"
        --recipe cpu --init-from "$start" --max-minutes "$minutes" --device cpu --seed 0)
# shellcheck disable=SC2086
OMP_NUM_THREADS=1 msvq --quiet train "${common[@]}" --run-dir "$runs/$name-a" $a &
# shellcheck disable=SC2086
OMP_NUM_THREADS=1 msvq --quiet train "${common[@]}" --run-dir "$runs/$name-b" $b &
wait
