#!/usr/bin/env bash
# Create or refresh .venv when it is missing or older than pyproject.toml; fast no-op otherwise.
# Usage: source scripts/bootstrap.sh [extras]   (extras default: dev)
set -euo pipefail
EXTRAS="${1:-dev}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.cnnkit-stamp-$EXTRAS"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "[bootstrap] setting up $VENV (extras: $EXTRAS); the first time takes a few minutes (torch is ~5 GB)" >&2
  PY="${PYTHON:-python3}"
  LOG="$ROOT/.venv-bootstrap.log"
  : > "$LOG"
  step() { "$@" >>"$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; echo "[bootstrap] failed: $* (full log: $LOG)" >&2; exit 1; }; }
  [ -x "$VENV/bin/python" ] || step "$PY" -m venv "$VENV"
  step "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch/torchvision first, as their own step: on the project's machines these come from local disk.
  step "$VENV/bin/python" -m pip install -q "torch>=2.1,<3" "torchvision>=0.16,<1"
  step "$VENV/bin/python" -m pip install -q -e "$ROOT[$EXTRAS]"
  rm -f "$VENV"/.cnnkit-stamp-*
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
