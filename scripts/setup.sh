#!/usr/bin/env bash
# Set up xdplug in a virtual environment: a CPU build of torch (unless torch is already there),
# RecBole 1.2.1 without its stale pins, then xdplug, its test and ray extras, the example plugin and
# the optional MLflow plugin (idle until a tracking URI is set), all editable. Safe to run again.
#   bash scripts/setup.sh                  # the pinned stack in .venv (constraints/pinned.txt: numpy 1.26,
#                                          # pandas 2.2, scipy 1.12, ray 2.6.3, ...): what CI's first lane runs
#   STACK=latest bash scripts/setup.sh     # the newest releases the ranges admit, in .venv-latest
#   VENV=/path/to/venv bash scripts/setup.sh   # another venv directory
#   TORCH_INDEX=https://download.pytorch.org/whl/cpu bash scripts/setup.sh   # CPU torch on any machine
# GPU users: create the venv, install their CUDA build of torch into it first, then run this script.
# Optional: .venv/bin/pip install -e '.[onnx]' for the bert encoder's `runtime: onnx` (bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
STACK=${STACK:-pinned}
case "$STACK" in
  pinned) VENV=${VENV:-.venv}; CONSTRAINTS=(-c constraints/pinned.txt) ;;
  latest) VENV=${VENV:-.venv-latest}; CONSTRAINTS=() ;;
  *) echo "scripts/setup.sh: STACK=$STACK: expected 'pinned' or 'latest'" >&2; exit 2 ;;
esac
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  # a pinned version: an open 'torch' requirement can pull a multi-GB CUDA build
  $PIP install --quiet ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "torch==2.13.0"
fi
# RecBole 1.2.1 declares ray<=2.6.3 (no wheels for Python 3.12+) and colorlog/colorama pins; xdplug
# never imports the module that needs ray and declares what RecBole really imports itself
# (pyproject.toml), so RecBole comes without its dependency list: `pip check` names it (README).
$PIP install --quiet --no-deps "recbole==1.2.1"
# latest: a new venv gets the newest releases the ranges admit (an existing one keeps what it has)
$PIP install --quiet ${CONSTRAINTS[@]+"${CONSTRAINTS[@]}"} -e ".[test,ray]" -e plugins/xdplug-example -e plugins/xdplug-mlflow
[ "$STACK" = pinned ] || echo "setup.sh: a 'recbole 1.2.1 requires ray<=2.6.3' conflict is expected here:" \
  "RecBole needs ray only in recbole.quick_start, which xdplug never imports (README: Tested stacks)" >&2
# An editable install answers `import xdplug` through setuptools' finder, which Python asks only
# after its path search; from the clone's parent directory (a folder named xdplug) that search
# found the clone itself and imported it as an empty namespace package. This .pth, read after
# setuptools' own, moves the finders of xdplug's editable installs first: the installed package
# wins from any directory (tests/test_import.py).
SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cat > "$SITE/xdplug_editable_first.pth" <<'PTH'
import sys; exec("ours = [f for f in sys.meta_path if str(getattr(f, '__module__', '')).startswith('__editable___xdplug')]\nfor f in ours:\n    sys.meta_path.remove(f)\nsys.meta_path[0:0] = ours")
PTH
"$VENV/bin/xdplug" --version
