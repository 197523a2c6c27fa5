"""The floors of stipkit (pyproject.toml, [tool.importlinter]) hold, and the contract can fail."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(LINT is None, reason="import-linter is not installed (make setup installs it)")
def test_the_floors_hold_and_an_upward_import_breaks_them(tmp_path):
    ok = subprocess.run([LINT], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout[-2000:]
    # a copy of the package whose runtime floor imports the plots floor must fail the contract
    shutil.copytree(ROOT / "stipkit", tmp_path / "stipkit",
                    ignore=shutil.ignore_patterns("__pycache__", "weights", "assets"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    files = tmp_path / "stipkit" / "runtime" / "files.py"
    files.write_text(files.read_text() + "\nfrom ..plots import viz  # noqa: E402,F401\n")
    bad = subprocess.run([LINT], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)})
    assert bad.returncode != 0 and "stipkit.runtime is not allowed to import stipkit.plots" in bad.stdout
