#!/usr/bin/env bash
# Issue 14's GPU check, sized for a 15-minute device lease (about 3-5 minutes of work): the speed run on one
# GPU with mixed precision, timed to 93 / 94 / 95 % test accuracy against the pytorch/examples script, plus
# `cnnkit bench` of the recipe's model there. Same machine preparation as gpu_check.sh (gpu_env.sh):
#   - wheels for missing pure/abi3 packages in .whl/; Fashion-MNIST IDX files in .gpudata/fashion-mnist
# Results go to $OUT (default ./gpu-speedrun): vs_pytorch_example_gpu.json, bench_gpu.json, the log.
#   OUT=/tmp/o DEVICE=cpu LIMIT=512 EPOCHS=1 THREADS=1 BACKENDS=eager bash scripts/gpu_speedrun.sh   (a CPU check)
set -uo pipefail
OUT=${OUT:-$PWD/gpu-speedrun}
ROOT=${ROOT:-.gpudata/fashion-mnist}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
source "$(dirname "$0")/gpu_env.sh"
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
smoke=()
[ -n "${LIMIT:-}" ] && smoke+=(--limit "$LIMIT")
[ -n "${EPOCHS:-}" ] && smoke+=(--epochs "$EPOCHS")
# sequential: the baseline first, then cnnkit, each with the whole GPU (train.device auto) and 8 CPU threads
timeout 420 python3 bench/vs_pytorch_example.py --mode sequential --threads "${THREADS:-8}" --root "$ROOT" \
  --config configs/fashion-mnist-gpu.yaml --out "$OUT/vs_pytorch_example_gpu.json" "${smoke[@]}" || status=1
timeout 300 python3 -m cnnkit bench smallcnn --data fashion-mnist --root "$ROOT" --device "$DEVICE" --json \
  --backends "${BACKENDS:-eager,channels_last,compile}" --compile-timeout-s 90 --batch-size 512 --budget-s 20 --set 'model.kwargs={"widths": [64, 128, 256], "convs": 2, "hidden": 512}' \
  > "$OUT/bench_gpu.json" || status=1
python3 - "$OUT/vs_pytorch_example_gpu.json" <<'PY' || status=1
import json, sys
r = json.load(open(sys.argv[1]))
print({k: r[k] for k in r if k.startswith(("cnnkit_time_to", "baseline_time_to", "ratio"))})
print("cnnkit epochs:", [(e["epoch"], e["elapsed_s"], e["test_accuracy"]) for e in r["cnnkit_epochs"]])
PY
echo "gpu_speedrun: $([ $status -eq 0 ] && echo done || echo SOME STEPS FAILED)"
exit $status
