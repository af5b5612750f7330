#!/usr/bin/env bash
# Regenerates docs/ACCURACY.md (`make accuracy-table`): the full-test-set sweep in chunks, one
# (recipe, method) pair per chunk, each saved as JSON under $BUILD/accuracy/ so an interrupted run
# resumes where it stopped; the chunks are then rendered together. About 2 h on 2 shared cores.
# Chunks: every calibration method alone (plain), MSE with the tuned recipe, and MSE with GPTQ
# rounding (the best recipe at low bit widths).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
out=$BUILD/accuracy
mkdir -p "$out"
saved=()
for chunk in "gptq mse" "plain minmax" "plain percentile" "plain entropy" "plain mse" "tuned mse"; do
  set -- $chunk
  file=$out/$1_$2.json
  if [ ! -f "$file" ]; then
    echo "$(date +%T) sweep: recipe $1, method $2"
    "./$BUILD/qplay" accuracy-table models/resnet8_fp32.onnx --recipes "$1" --methods "$2" --save "$file.tmp" >/dev/null
    mv "$file.tmp" "$file"
  fi
  saved+=("$file")
done
"./$BUILD/qplay" accuracy-table --render "$(IFS=,; echo "${saved[*]}")" -o docs/ACCURACY.md
echo "wrote docs/ACCURACY.md"
