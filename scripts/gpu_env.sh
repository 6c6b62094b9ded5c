# Sourced by the GPU scripts (gpu_check.sh, gpu_speedrun.sh): a bare CUDA machine whose python3 already has
# torch/torchvision gets the missing pure/abi3 packages from wheels in .whl/ (pip download, see README) and
# this checkout's src/ on PYTHONPATH.
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
