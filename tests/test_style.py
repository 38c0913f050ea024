"""The code stays ruff-clean (ruff is a test extra)."""

import shutil
import subprocess
import sys

import pytest

from .conftest import ROOT


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(ROOT / ".venv/bin"))
    if ruff is None:
        try:
            import ruff as _  # noqa: F401
        except ImportError:
            pytest.skip("ruff is not installed (pip install -e '.[test]')")
        ruff = [sys.executable, "-m", "ruff"]
    folders = ["src", "tests", "benchmarks", "examples", "docs"]
    command = ([ruff] if isinstance(ruff, str) else ruff) + ["check", *folders]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
