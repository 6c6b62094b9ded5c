#!/usr/bin/env bash
# GPU smoke check: every task trains, evaluates, predicts and explains on CUDA, plus AMP, resume and
# a Fashion-MNIST timing. Written for a bare CUDA machine whose python3 already has torch/torchvision:
#   - wheels for missing pure/abi3 packages (pycocotools, captum) in .whl/ (pip download, see README)
#   - Fashion-MNIST IDX files in .gpudata/fashion-mnist (copied from /usr/share/datasets/fashion-mnist)
# Results go to $OUT (default ./gpu-check): one log plus summary.json files.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-check}
mkdir -p "$OUT"
source "$(dirname "$0")/gpu_env.sh"
R=/tmp/gpu-runs
rm -rf "$R"
status=0
step() {  # step NAME SECONDS CMD...: run with a time limit, log, remember failures
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "=== $name: $*"
  timeout "$limit" "$@"
  local rc=$?
  echo "=== $name: exit $rc in $((SECONDS - t0)) s"
  [ $rc -eq 0 ] || status=1
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())"
ck="python3 -m cnnkit"
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu checks the script itself on a laptop
step classify 120 $ck train --data digits --epochs 6 --device $DEVICE --out $R/cls
step classify-amp 120 $ck train --data digits --epochs 6 --device $DEVICE --set train.amp=true --out $R/cls-amp
timeout -s KILL 20 $ck train --data digits --epochs 40 --device $DEVICE --out $R/res; echo "=== killed the run: exit $?"
step resume 240 $ck train --resume $R/res
step eval 60 $ck eval $R/cls/best.pt --data digits --device $DEVICE
step explain 90 $ck explain $R/cls --worst 4 --method gradcam --save-dir $R/explain
step detect 240 $ck train --data digits-detect --epochs 4 --device $DEVICE --set train.amp=true --out $R/det
step data-make 60 $ck data make digits-detect --format yolo $R/dd
step detect-predict 60 $ck predict $R/det $R/dd/images/test --device $DEVICE --json --save-dir $R/det-pred
step segment 180 $ck train --data digits-seg --epochs 4 --device $DEVICE --set train.amp=true --out $R/seg
step instance 180 $ck train --data digits-detect --task instance --model maskrcnn --epochs 2 --device $DEVICE --out $R/inst
if [ -d .gpudata/fashion-mnist ]; then
  step fashion-resnet20 200 $ck train --data fashion-mnist --root .gpudata/fashion-mnist --model resnet20 \
    --epochs 10 --batch-size 128 --lr 0.1 --augment light --device $DEVICE --set train.amp=true --workers 4 --out $R/fashion
fi
for run in cls cls-amp res det seg inst fashion; do
  [ -f $R/$run/summary.json ] && cp $R/$run/summary.json "$OUT/summary_$run.json"
done
echo "gpu_check: $([ $status -eq 0 ] && echo all steps passed || echo SOME STEPS FAILED)"
exit $status
