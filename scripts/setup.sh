#!/usr/bin/env bash
# Set up xdplug in ./.venv: a CPU build of torch (unless torch is already there), then xdplug,
# its test extra, the example plugin and the optional MLflow plugin (idle until a tracking URI is set), all
# editable. Safe to run again.
#   TORCH_INDEX=https://download.pytorch.org/whl/cpu bash scripts/setup.sh   # CPU torch on any machine
# GPU users: create .venv, install their CUDA build of torch into it first, then run this script.
# Optional: .venv/bin/pip install -e '.[onnx]' for the bert encoder's `runtime: onnx` (bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # a pinned version: an open 'torch' requirement can pull a multi-GB CUDA build
  $PIP install --quiet ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "torch==2.13.0"
fi
$PIP install --quiet -e ".[test]" -e plugins/xdplug-example -e plugins/xdplug-mlflow
# An editable install answers `import xdplug` through setuptools' finder, which Python asks only
# after its path search; from the clone's parent directory (a folder named xdplug) that search
# found the clone itself and imported it as an empty namespace package. This .pth, read after
# setuptools' own, moves the finders of xdplug's editable installs first: the installed package
# wins from any directory (tests/test_import.py).
SITE=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cat > "$SITE/xdplug_editable_first.pth" <<'PTH'
import sys; exec("ours = [f for f in sys.meta_path if str(getattr(f, '__module__', '')).startswith('__editable___xdplug')]\nfor f in ours:\n    sys.meta_path.remove(f)\nsys.meta_path[0:0] = ours")
PTH
.venv/bin/xdplug --version
