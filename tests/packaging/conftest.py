"""The packages, built once per session from the tracked tree (`make packages`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = "0.1.0"


@pytest.fixture(scope="session")
def packages() -> tuple[Path, Path]:
    if os.geteuid() != 0:
        pytest.fail("the packaging tests install packages: run them as root")
    proc = subprocess.run(["make", "packages"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    deb = ROOT / "dist" / f"hasupd_{VERSION}_all.deb"
    rpms = sorted((ROOT / "dist").glob(f"hasupd-{VERSION}-*.noarch.rpm"))
    assert deb.exists() and rpms, list((ROOT / "dist").iterdir())
    return deb, rpms[0]
