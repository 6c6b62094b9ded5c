#!/usr/bin/env bash
# The main job on the embedded data: LeNet-5 on scikit-learn's handwritten digits,
# trained, evaluated on the held-out test split, with plots and a report.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh dev
OUT="${CNNKIT_DEMO_OUT:-runs/demo}"
rm -rf "$OUT"
start=$(date +%s)
cnnkit train --data digits --model lenet5 --out "$OUT"
echo
echo "== test-split evaluation of the best checkpoint =="
cnnkit eval "$OUT"
echo
echo "Finished in $(( $(date +%s) - start ))s. Look at:"
echo "  $OUT/report.html          all plots and numbers on one page"
echo "  $OUT/plots/               loss.png, metrics.png, confusion_matrix.png, worst_test.png"
echo "  $OUT/metrics.csv          one row per epoch;  $OUT/summary.json  final metrics, timing"
echo "Next: cnnkit predict $OUT some_image.png   |   cnnkit explain $OUT --worst 8"
