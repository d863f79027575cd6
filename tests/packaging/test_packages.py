"""Build the .deb and the .rpm from the tracked tree, install the .deb,
run it, remove and purge it, and check what lands where.

The .deb is installed with apt (which pulls Debian's python3-pyroute2,
-pyudev, -psutil, -yaml, -structlog, -systemd) and removed again at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = "0.1.0"
DEB = ROOT / "dist" / f"hasupd_{VERSION}_all.deb"

pytestmark = pytest.mark.slow

EXPECTED = [
    "/usr/sbin/hasupd",
    "/usr/bin/hasupctl",
    "/usr/bin/hasupd-simulate",
    "/usr/bin/hasupd-drbd-handler",
    "/lib/systemd/system/hasupd.service",
    "/etc/hasupd/hasupd.yaml",
    "/usr/share/bash-completion/completions/hasupctl",
    "/usr/share/man/man8/hasupd.8.gz",
    "/usr/share/man/man8/hasupctl.8.gz",
]


def run(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def packages():
    if os.geteuid() != 0:
        pytest.fail("the packaging test installs a .deb: run it as root")
    run("make", "packages", cwd=ROOT)
    rpms = sorted((ROOT / "dist").glob(f"hasupd-{VERSION}-*.noarch.rpm"))
    assert DEB.exists() and rpms, list((ROOT / "dist").iterdir())
    return DEB, rpms[0]


def test_deb_contents_and_lintian(packages):
    deb, _ = packages
    listing = run("dpkg-deb", "-c", str(deb)).stdout
    for path in EXPECTED:
        assert "." + path in listing, f"{path} missing from the .deb"
    assert "hasupd/lab" not in listing, "the lab is not for production nodes"
    conffiles = run("dpkg-deb", "-I", str(deb), "conffiles").stdout
    assert "/etc/hasupd/hasupd.yaml" in conffiles
    lint = run("lintian", "--no-tag-display-limit", str(deb), check=False)
    errors = [ln for ln in lint.stdout.splitlines() if ln.startswith("E:")]
    print("lintian:\n" + lint.stdout)
    assert not errors, "lintian errors:\n" + "\n".join(errors)


def test_rpm_contents(packages):
    _, rpm = packages
    files = run("rpm", "-qlp", str(rpm)).stdout.split()
    for path in ("/usr/sbin/hasupd", "/usr/bin/hasupctl", "/usr/lib/systemd/system/hasupd.service",
                 "/etc/hasupd/hasupd.yaml"):
        assert path in files, f"{path} missing from the .rpm"
    config = run("rpm", "-qcp", str(rpm)).stdout.split()
    assert config == ["/etc/hasupd/hasupd.yaml"]
    scripts = run("rpm", "-qp", "--scripts", str(rpm)).stdout
    assert "groupadd -r hasupd" in scripts and "%systemd" not in scripts
    if shutil.which("rpmlint"):
        print(run("rpmlint", str(rpm), check=False).stdout)


def test_unit_file_verifies():
    proc = run("systemd-analyze", "verify", str(ROOT / "systemd" / "hasupd.service"), check=False)
    # verify complains about the binaries when the package is not installed; nothing else may appear
    problems = [ln for ln in (proc.stdout + proc.stderr).splitlines()
                if ln.strip() and "is not executable" not in ln and "No such file" not in ln
                and "Command /usr/" not in ln]
    assert not problems, "\n".join(problems)


def test_install_run_remove_purge(packages):
    deb, _ = packages
    run("apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", str(deb),
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    try:
        for path in EXPECTED:
            assert os.path.exists(path), f"{path} not installed"
        assert run("/usr/bin/hasupctl", "--version").stdout.strip().endswith(VERSION)
        check = run("/usr/bin/hasupctl", "check", "--config", "/etc/hasupd/hasupd.yaml")
        assert "group rg_web" in check.stdout
        assert run("getent", "group", "hasupd").returncode == 0
        assert os.path.isdir("/var/lib/hasupd")
        # without a key the daemon refuses to start, with a clear line and EX_CONFIG
        daemon = run("/usr/sbin/hasupd", "--config", "/etc/hasupd/hasupd.yaml", "--node", "primarycentos",
                     check=False, timeout=60)
        assert daemon.returncode == 78 and "authkey" in daemon.stderr, daemon.stderr
        run("dpkg", "-r", "hasupd")
        assert os.path.exists("/etc/hasupd/hasupd.yaml"), "remove keeps the conffile"
        assert not os.path.exists("/usr/sbin/hasupd")
    finally:
        run("dpkg", "-P", "hasupd", check=False)
    for path in ("/etc/hasupd", "/var/lib/hasupd", "/usr/sbin/hasupd", "/usr/bin/hasupctl",
                 "/lib/systemd/system/hasupd.service"):
        assert not os.path.exists(path), f"{path} left behind after purge"
