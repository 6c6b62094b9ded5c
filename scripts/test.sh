#!/usr/bin/env bash
# Run the test suite (CPU only). Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh dev
export CNNKIT_OFFLINE=1 MPLBACKEND=Agg
exec python -m pytest -q -p no:cacheprovider --timeout=900 "$@"
