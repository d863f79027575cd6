#!/usr/bin/env python3
"""`make test-matrix`: the tests under each distribution's Python and libraries.

One venv per row ($HASUPD_MATRIX_CACHE/ROW, default /var/cache/hasupd-matrix, reused while
its pins are unchanged; hasupd itself is installed anew from this clone each run),
with that Python from pyenv and EXACTLY the library versions the
distribution ships (hasupd itself installed with --no-deps, so nothing
newer sneaks in; pip check proves the set is complete), then:

* the unit, scenario and property tests (pytest -m 'not lab and not slow');
* one lab failover (the owner crashes, the survivor serves) run by that Python.

Usage: scripts/test-matrix.py [ROW ...]      (default: every row)
A missing interpreter is an error, never a skip.  Prints one line per row
with its time, and exits non-zero if any row failed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYENV = Path(os.environ.get("HASUPD_PYENV_VERSIONS", "/root/.pyenv/versions"))
# outside the clone, like the VM image: a fresh clone (CI) reuses the venvs while their pins hold
WORK = Path(os.environ.get("HASUPD_MATRIX_CACHE", "/var/cache/hasupd-matrix"))

# Each distribution's own packages (checked with apt-cache in Debian chroots
# for Debian 12/13; Ubuntu and EL 9 as published by them). EL 9 has no
# structlog: hasupd falls back to its own small logger (hasupd/alerts.py).
# EL 9's python3-prometheus_client is not in the base OS; 0.9.0 (Debian 11's,
# Ubuntu 22.04's) is the oldest hasupd supports, so the row pins that.
ROWS: dict[str, dict] = {
    "el9": {"python": "3.9", "pins": {
        "pyudev": "0.22.0", "psutil": "5.8.0", "PyYAML": "5.4.1",
        "systemd-python": "234", "prometheus_client": "0.9.0"}},
    "ubuntu2204": {"python": "3.10", "pins": {
        "pyudev": "0.22.0", "psutil": "5.9.0", "PyYAML": "5.4.1",
        "structlog": "20.1.0", "systemd-python": "234", "prometheus_client": "0.9.0"}},
    "debian12": {"python": "3.11", "pins": {
        "pyudev": "0.24.0", "psutil": "5.9.4", "PyYAML": "6.0",
        "structlog": "22.3.0", "systemd-python": "235", "prometheus_client": "0.16.0"}},
    "ubuntu2404": {"python": "3.12", "pins": {
        "pyudev": "0.24.0", "psutil": "5.9.8", "PyYAML": "6.0.1",
        "structlog": "24.1.0", "systemd-python": "235", "prometheus_client": "0.19.0"}},
    "debian13": {"python": "3.13", "pins": {
        "pyudev": "0.24.3", "psutil": "7.0.0", "PyYAML": "6.0.2",
        "structlog": "25.3.0", "systemd-python": "235", "prometheus_client": "0.21.1"}},
}
TEST_TOOLS = ["pytest", "hypothesis"]  # not the distribution's: whatever supports that Python
FAST = ["-m", "not lab and not slow", "--ignore=tests/lab", "--ignore=tests/packaging"]
LAB_FAILOVER = "tests/lab/test_failover.py::test_crash_of_owner_survivor_serves"
# PyYAML 5.4.1 / 6.0 have no wheel for newer Pythons: their sdist builds
# only with Cython < 3 (PyYAML issue 601)
BUILD_CONSTRAINTS = "Cython<3\n"


class RowError(Exception):
    pass


def interpreter(version: str) -> Path:
    found = sorted(glob.glob(str(PYENV / f"{version}.*" / "bin" / f"python{version}")))
    if not found:
        raise RowError(f"no Python {version} under {PYENV} (install it: pyenv install {version}); "
                       "the matrix does not skip a row")
    return Path(found[-1])


def run(argv: list, log, **kw) -> None:
    log.write(f"$ {' '.join(map(str, argv))}\n")
    log.flush()
    proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, **kw)
    if proc.returncode != 0:
        raise RowError(f"{' '.join(map(str, argv[:3]))}... exited {proc.returncode}")


def venv(row: str, spec: dict, log) -> Path:
    python = interpreter(spec["python"])
    key = hashlib.sha256(json.dumps([str(python), spec["pins"], TEST_TOOLS, BUILD_CONSTRAINTS],
                                    sort_keys=True).encode()).hexdigest()[:16]
    env_dir = WORK / row
    stamp = env_dir / ".pins"
    py = env_dir / "bin" / "python"
    if not (stamp.exists() and stamp.read_text() == key and py.exists()):
        subprocess.run(["rm", "-rf", str(env_dir)], check=True)
        run([python, "-m", "venv", env_dir], log)
        constraints = WORK / f"{row}-build-constraints.txt"
        constraints.write_text(BUILD_CONSTRAINTS)
        pins = [f"{name}=={version}" for name, version in spec["pins"].items()]
        env = {**os.environ, "PIP_CONSTRAINT": str(constraints), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        run([py, "-m", "pip", "install", "-q", *pins, *TEST_TOOLS], log, env=env)
        stamp.write_text(key)
    # the lab (its own distribution): the simulator and the lab run as subprocesses of the tests
    run([py, "-m", "pip", "install", "-q", "--no-deps", "-e", ROOT, "-e", ROOT / "lab"], log,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    # exactly the pins: nothing else of hasupd's dependencies, and each at its version
    frozen = subprocess.run([py, "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
    have = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
            for line in frozen.splitlines() if "==" in line}
    for name, version in spec["pins"].items():
        got = have.get(name.lower().replace("_", "-"))
        if got != version:
            raise RowError(f"{name} is {got}, the row pins {version}")
    if "structlog" not in spec["pins"] and "structlog" in have:
        raise RowError("structlog is installed in a row whose distribution lacks it")
    return py


def test_row(row: str, spec: dict) -> tuple[bool, float, str]:
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log_path = WORK / f"{row}.log"
    with open(log_path, "w") as log:
        try:
            py = venv(row, spec, log)
            env = {**os.environ, "PATH": f"{py.parent}:{os.environ.get('PATH', '')}",
                   "PYTHONDONTWRITEBYTECODE": "1"}
            env.pop("PYTHONPATH", None)
            base = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            run([*base, *FAST], log, cwd=ROOT, env=env)
            run([*base, LAB_FAILOVER], log, cwd=ROOT, env=env)
        except RowError as e:
            return False, time.monotonic() - started, f"{e} (log: {log_path})"
    return True, time.monotonic() - started, f"log: {log_path}"


def main(argv: list[str]) -> int:
    rows = argv or list(ROWS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        print(f"test-matrix: unknown row(s) {', '.join(unknown)} (rows: {', '.join(ROWS)})", file=sys.stderr)
        return 2
    missing = []
    for r in rows:
        try:
            interpreter(ROWS[r]["python"])
        except RowError as e:
            missing.append(f"{r}: {e}")
    if missing:
        print("test-matrix: " + "\n  ".join(missing), file=sys.stderr)
        return 1
    failed = 0
    for r in rows:
        ok, took, note = test_row(r, ROWS[r])
        failed += not ok
        pins = " ".join(f"{k}={v}" for k, v in ROWS[r]["pins"].items())
        print(f"test-matrix: {r:11} python {ROWS[r]['python']:5} {'ok    ' if ok else 'FAILED'} "
              f"{took:6.0f}s  {pins}  {note}", flush=True)
    print(f"test-matrix: {len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
