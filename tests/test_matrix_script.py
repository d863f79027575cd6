"""scripts/test-matrix.py: a missing interpreter is an error (exit 1, says
which and where), never a skip; an unknown row is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "test-matrix.py"


def matrix(*rows: str, versions: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *rows], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HASUPD_PYENV_VERSIONS": versions})


def test_missing_interpreter_is_an_error(tmp_path):
    (tmp_path / "3.11.7" / "bin").mkdir(parents=True)  # only 3.11's directory, and no python in it
    proc = matrix("el9", "debian12", versions=str(tmp_path))
    assert proc.returncode == 1
    assert f"el9: no Python 3.9 under {tmp_path}" in proc.stderr
    assert f"debian12: no Python 3.11 under {tmp_path}" in proc.stderr
    assert "does not skip" in proc.stderr


def test_unknown_row_is_refused(tmp_path):
    proc = matrix("centos7", versions=str(tmp_path))
    assert proc.returncode == 2 and "unknown row(s) centos7" in proc.stderr
