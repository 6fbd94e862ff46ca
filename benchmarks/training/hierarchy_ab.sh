#!/usr/bin/env bash
# Does the top level carry information? Three `msvq train` runs from scratch, side by side, one CPU thread each,
# the same seed, data, split and number of steps: the small two-level model as the paper trains it ("base"),
# the same with a share of its training clips decoded from their top codes alone ("hide"; with HIDE_STEPS the
# share falls linearly to 0 over that many steps, then the run trains as the paper), and its single-level
# twin ("single"). Each validation logs, per level, the distinct grids over the dev clips and,
# for two levels, the PSNR the top level adds (val_top_gain).
# MSVQ_TWO_LEVEL names the two-level preset (default small; small-residual: the residual top level).
#   bash benchmarks/training/hierarchy_ab.sh NAME STEPS [HIDE_SHARE] [HIDE_STEPS]
# e.g. bash benchmarks/training/hierarchy_ab.sh hier 3000 0.25
#      bash benchmarks/training/hierarchy_ab.sh anneal 3000 0.25 1500
#      MSVQ_TWO_LEVEL=small-residual bash benchmarks/training/hierarchy_ab.sh resid 3000 0.25 1500
# then: python benchmarks/training/training_table.py ~/.cache/msvq/runs/NAME-{base,hide,single}
set -euo pipefail
name=$1 steps=$2 hide=${3:-0.25} hide_steps=${4:-0}
data=${MSVQ_DATA:-../shared/data}
runs=${MSVQ_RUNS:-$HOME/.cache/msvq/runs}
two_level=${MSVQ_TWO_LEVEL:-small}
common=(--data "$data" --split official:1 --splits "$data/ucf101/splits" --cache-dir "$HOME/.cache/msvq/cache"
        --recipe cpu --lr 2e-4 --max-steps "$steps" --checkpoint-minutes 5 --device cpu --seed 0)
msvq --quiet prepare --data "$data" --cache-dir "$HOME/.cache/msvq/cache" --size 96 >/dev/null
OMP_NUM_THREADS=1 msvq --quiet train "${common[@]}" --config "$two_level" --run-dir "$runs/$name-base" &
OMP_NUM_THREADS=1 msvq --quiet train "${common[@]}" --config "$two_level" --hide-bottom "$hide" --hide-bottom-steps "$hide_steps" --run-dir "$runs/$name-hide" &
OMP_NUM_THREADS=1 msvq --quiet train "${common[@]}" --config small-single-level --run-dir "$runs/$name-single" &
wait
