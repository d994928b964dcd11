#!/usr/bin/env bash
# Set up xdplug in ./.venv: a CPU build of torch (unless torch is already there), then xdplug,
# its test extra and the example plugin, all editable. Safe to run again.
#   TORCH_INDEX=https://download.pytorch.org/whl/cpu bash scripts/setup.sh   # CPU torch on any machine
# GPU users: create .venv, install their CUDA build of torch into it first, then run this script.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # a pinned version: an open 'torch' requirement can pull a multi-GB CUDA build
  $PIP install --quiet ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "torch==2.13.0"
fi
$PIP install --quiet -e ".[test]" -e plugins/xdplug-example
.venv/bin/xdplug --version
