#!/usr/bin/env bash
# Quality on real held-out cells: train on the shared DMSO crops of sites 1-2 (well B02), evaluate on
# site 3, for each latent dimension; prints one JSON line of metrics per model (last: the last model).
# Usage: benchmarks/quality.sh OUT_ROOT EPOCHS [SIZE] [extra train options...]
set -euo pipefail
out=${1:?OUT_ROOT}; epochs=${2:?EPOCHS}; size=${3:-128}; shift $(( $# < 3 ? $# : 3 ))
images=${BBBC021_DMSO:-../shared/bbbc021/images/single_cells/DMSO}
for z in ${LATENT_DIMS:-75 150 300}; do
  python -m cellvae train --images "$images" --validation-pattern '*_s3_*' --latent-dim "$z" \
    --epochs "$epochs" --size "$size" --out "$out/z$z" "$@" > "$out/z$z.log" 2>&1
  python -m cellvae evaluate --model "$out/z$z/model.keras" --images "$images" --pattern '*_s3_*' \
    2> "$out/z$z.evaluate.log" | tee "$out/z$z/heldout.json"
done
