#!/usr/bin/env bash
# Check xdplug on Pythons CI does not run (CI: Python 3.11, pinned and latest stacks, .ci/run).
# For each version (default: 3.12 and 3.13 from pyenv): a new venv in $WORK/py<version> with the
# latest stack (STACK=latest scripts/setup.sh), `pip check`, the quick start with its ID-only
# methods (no text encoder) and a small test subset. Prints one PASS/FAIL/BLOCKED line per version.
#   bash scripts/check_python.sh                      # 3.12 and 3.13
#   VERSIONS="3.12.1" WORK=/tmp/xdplug-py bash scripts/check_python.sh
#   TORCH_INDEX=https://download.pytorch.org/whl/cpu bash scripts/check_python.sh   # CPU torch for them
# torch: a venv that already has torch keeps it. Otherwise torch==2.13.0 comes from TORCH_INDEX, or
# from pip's own configuration (a local CPU wheel); the script refuses to take PyPI's Linux build,
# which is a multi-GB CUDA download (ALLOW_CUDA_TORCH=1 takes it anyway).
set -uo pipefail
cd "$(dirname "$0")/.."
VERSIONS=${VERSIONS:-"3.12 3.13"}
WORK=${WORK:-${TMPDIR:-/tmp}/xdplug-check-python}
# ID-only methods of configs/quickstart.yaml: the closed forms, the ID strategies and the controls they are
# judged against (tuned EASE and iALS, each pooled), no text encoder
ONLY=(--only Pop --only BPR --only EASE --only "EASE (pooled)" --only iALS --only "iALS (pooled)"
      --only id-target-only --only id-joint --only ease-joint-lowpass --only ease-joint-dan-ials)
TESTS=(tests/test_shims.py tests/test_import.py tests/test_config.py tests/test_item_item.py)
mkdir -p "$WORK"
status=0
for version in $VERSIONS; do
  python=$(PYENV_VERSION=$(pyenv versions --bare | grep -E "^${version//./\\.}(\.|$)" | tail -1) pyenv which python 2>/dev/null)
  if [ -z "$python" ]; then echo "BLOCKED python $version: not installed under pyenv"; status=1; continue; fi
  venv="$WORK/py$version"; log="$WORK/py$version.log"
  echo "== python $version ($python) -> $venv, log $log"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  if ! "$venv/bin/python" -c "import torch" 2>/dev/null && [ -z "${TORCH_INDEX:-}" ] && [ -z "${ALLOW_CUDA_TORCH:-}" ]; then
    url=$("$venv/bin/python" -m pip install --dry-run --no-deps --quiet --report - "torch==2.13.0" 2>>"$log" |
          "$venv/bin/python" -c "import json, sys; print(json.load(sys.stdin)['install'][0]['download_info']['url'])" 2>>"$log")
    if [[ "$url" != file:* ]]; then
      echo "BLOCKED python $version: no CPU build of torch 2.13.0 for it here (pip offers: ${url:-nothing});"\
           "set TORCH_INDEX=https://download.pytorch.org/whl/cpu (or ALLOW_CUDA_TORCH=1)"
      # what can be checked without torch: the rest of the latest stack resolves for this Python
      if "$venv/bin/python" -m pip install --dry-run --quiet --report "$WORK/py$version-resolve.json" \
           "torch==2.13.0" -e ".[test,ray]" >>"$log" 2>&1; then
        "$venv/bin/python" - "$WORK/py$version-resolve.json" <<'PY'
import json, sys
wanted = ("numpy", "pandas", "scipy", "ray", "transformers", "wordllama", "scikit-learn", "implicit", "optuna")
got = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.load(open(sys.argv[1]))["install"]}
print("   resolves (dry run, nothing installed):", ", ".join(f"{n} {got[n]}" for n in wanted if n in got))
PY
      else
        echo "   the latest stack does not resolve for python $version: see $log"
      fi
      status=1; continue
    fi
  fi
  start=$(date +%s)
  if ! STACK=latest PYTHON="$python" VENV="$venv" bash scripts/setup.sh >>"$log" 2>&1; then
    echo "FAIL python $version: install (see $log)"; status=1; continue
  fi
  echo "   installed in $(( $(date +%s) - start )) s, venv $(du -sh "$venv" | cut -f1)"
  "$venv/bin/python" -c "import numpy, pandas, scipy, ray, torch; print('   numpy', numpy.__version__, 'pandas', pandas.__version__, 'scipy', scipy.__version__, 'ray', ray.__version__, 'torch', torch.__version__)"
  "$venv/bin/python" -m pip check 2>&1 | sed 's/^/   pip check: /'
  out="$WORK/py$version-quickstart"
  if ! XDPLUG_HOME="$WORK/py$version-home" "$venv/bin/xdplug" run configs/quickstart.yaml --set output.dir="$out" "${ONLY[@]}" >>"$log" 2>&1; then
    echo "FAIL python $version: quick start (see $log)"; status=1; continue
  fi
  tail -n 20 "$log" | grep -m1 -i "verdict\|beats\|best" | sed 's/^/   /'
  if ! "$venv/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}" >>"$log" 2>&1; then
    echo "FAIL python $version: tests (see $log)"; status=1; continue
  fi
  echo "PASS python $version: $(tail -n 1 "$log")"
done
exit $status
