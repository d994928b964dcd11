"""``import xdplug`` is the installed package from any directory, also beside a folder named xdplug.

From the clone's parent directory (``git clone ... xdplug; python -c "import xdplug"``) Python's
path search finds the clone, a folder without ``__init__.py``, before setuptools' editable-install
finder is asked, and imported it as an empty namespace package. ``scripts/setup.sh`` writes a
``.pth`` that asks xdplug's editable finders first.
"""

import subprocess
import sys
from pathlib import Path

import xdplug

PACKAGE = Path(xdplug.__file__).resolve()


def _import_from(cwd: Path) -> str:
    out = subprocess.run([sys.executable, "-c", "import xdplug; print(xdplug.__file__); print(callable(getattr(xdplug, 'run', None)))"],
                         cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_import_beside_a_folder_named_xdplug(tmp_path):
    clone = tmp_path / "xdplug"  # the clone seen from its parent: no __init__.py at its top
    (clone / "xdplug").mkdir(parents=True)
    (clone / "README.md").write_text("a clone\n")
    lines = _import_from(tmp_path).splitlines()
    assert lines[0] != "None", ("`import xdplug` found the folder xdplug/ as an empty namespace package; "
                                "run `bash scripts/setup.sh` (it installs xdplug_editable_first.pth)")
    assert Path(lines[0]).resolve() == PACKAGE and lines[1] == "True"


def test_setup_script_installs_the_finder_order():
    setup = (Path(__file__).resolve().parent.parent / "scripts" / "setup.sh").read_text()
    assert "xdplug_editable_first.pth" in setup and "__editable___xdplug" in setup
