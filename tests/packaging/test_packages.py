"""Build the .deb and the .rpm from the tracked tree (`make packages`),
check what each holds, install the .deb with apt on this machine, run it
with Debian's python3 and Debian's libraries, remove and purge it.

apt pulls Debian's python3-pyudev, -psutil, -yaml, -structlog and
-systemd (no recommends: drbd-utils or a mail server must not land on the
test machine); they stay installed after the purge, hasupd does not.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from hasupd.control.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
VERSION = "0.1.0"
DEB = ROOT / "dist" / f"hasupd_{VERSION}_all.deb"
SCENARIO = ROOT / "tests" / "scenarios" / "adoption-after-daemon-restart-disturbs-nothing"
NETNS = f"hpkg{os.getpid()}"

pytestmark = pytest.mark.slow

COMMANDS = ["hasupd", "hasupctl", "hasupd-simulate", "hasupd-drbd-handler"]
EXPECTED = [
    "/usr/sbin/hasupd",
    "/usr/bin/hasupctl",
    "/usr/bin/hasupd-simulate",
    "/usr/bin/hasupd-drbd-handler",
    "/lib/systemd/system/hasupd.service",
    "/etc/hasupd/hasupd.yaml",
    "/usr/share/hasupd/hasupd.yaml",
    "/usr/share/hasupd/prometheus/hasupd-rules.yml",
    "/usr/share/bash-completion/completions/hasupctl",
    "/usr/lib/python3/dist-packages/hasupd/daemon.py",
    "/usr/share/doc/hasupd/copyright",
] + [f"/usr/share/man/man8/{c}.8.gz" for c in COMMANDS]
RUNTIME_DEPS = ["python3-pyudev", "python3-psutil", "python3-yaml",
                "python3-structlog", "python3-systemd", "python3-prometheus-client"]
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def run(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def purge() -> None:
    run("dpkg", "--purge", "hasupd", check=False, env=APT_ENV)


def lab_files(paths) -> list[str]:
    """Anything of the lab or the DRBD simulator among a package's paths."""
    return sorted(p for p in paths if any(m in p for m in ("hasupd_lab", "hasupd-lab", "drbdsim", "/lab/")))


def test_the_wheel_holds_the_product_only(tmp_path):
    """The lab and the DRBD simulator are a distribution of their own (lab/):
    the product's wheel has neither, with no deletion step anywhere."""
    run(str(ROOT / ".venv" / "bin" / "python"), "-m", "pip", "wheel", "--no-deps",
        "-q", "-w", str(tmp_path), str(ROOT), timeout=300)
    wheel = next(tmp_path.glob("hasupd-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "hasupd/daemon.py" in names
    assert not lab_files(names), f"the lab is in the wheel: {lab_files(names)}"
    assert "hasupd-lab" not in entry_points and "hasupd_lab" not in entry_points
    for packaging_file in ("debian/rules", "rpm/hasupd.spec"):
        text = (ROOT / packaging_file).read_text()
        assert "lab" not in text.replace("lintian", "").replace("label", ""), \
            f"{packaging_file} still cuts the lab out"


def test_deb_contents_and_lintian(packages):
    deb, _ = packages
    listing = run("dpkg-deb", "-c", str(deb)).stdout
    paths = {line.split()[5].lstrip(".") for line in listing.splitlines()}
    for path in EXPECTED:
        assert path in paths, f"{path} missing from the .deb"
    assert not lab_files(paths), f"the lab is for development: {lab_files(paths)}"
    assert not [p for p in paths if "__pycache__" in p or p.endswith(".pyc")], "byte code is built on the node"
    assert run("dpkg-deb", "-I", str(deb), "conffiles").stdout.split() == ["/etc/hasupd/hasupd.yaml"]
    # the conffile may name fence credentials: never world-readable, not even between unpack and postinst
    modes = {line.split()[5].lstrip("."): line.split()[0] for line in listing.splitlines()}
    assert modes["/etc/hasupd/hasupd.yaml"] == "-rw-r-----", modes["/etc/hasupd/hasupd.yaml"]
    depends = run("dpkg-deb", "-f", str(deb), "Depends").stdout
    for dep in RUNTIME_DEPS:
        assert dep in depends, f"{dep} not in Depends: {depends}"
    lint = run("lintian", "--tag-display-limit", "0", "-I", str(deb), check=False)
    print("lintian:\n" + lint.stdout)
    errors = [ln for ln in lint.stdout.splitlines() if ln.startswith("E:")]
    assert not errors, "lintian errors:\n" + "\n".join(errors)


def test_man_pages_match_the_parsers(tmp_path):
    """The committed pages are what gen-man.py writes from today's parsers."""
    run(str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "gen-man.py"), "--outdir", str(tmp_path))
    for name in COMMANDS:
        fresh = (tmp_path / f"{name}.8").read_text()
        assert f".TH {name.upper()} 8" in fresh and ".SH OPTIONS" in fresh
        assert (ROOT / "debian" / "man" / f"{name}.8").read_text() == fresh, \
            f"debian/man/{name}.8 is stale: run `make man` and commit it"
    assert "hasupctl drbd init" in (tmp_path / "hasupctl.8").read_text()


def test_bash_completion_knows_every_command():
    text = (ROOT / "debian" / "hasupctl.bash-completion").read_text()
    listed = set(re.search(r'local cmds="([^"]*)"', text).group(1).split())
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert listed == set(sub.choices), f"completion {sorted(listed)} vs parser {sorted(sub.choices)}"
    run("bash", "-n", str(ROOT / "debian" / "hasupctl.bash-completion"))


def test_rpm_contents_and_scriptlets(packages):
    _, rpm = packages
    files = run("rpm", "-qlp", str(rpm)).stdout.split()
    for path in ("/usr/sbin/hasupd", "/usr/bin/hasupctl", "/usr/bin/hasupd-simulate", "/usr/bin/hasupd-drbd-handler",
                 "/usr/lib/systemd/system/hasupd.service", "/etc/hasupd/hasupd.yaml", "/usr/share/hasupd/hasupd.yaml",
                 "/var/lib/hasupd", "/usr/share/bash-completion/completions/hasupctl",
                 "/usr/share/hasupd/prometheus/hasupd-rules.yml"):
        assert path in files, f"{path} missing from the .rpm"
    assert [f for f in files if f.startswith("/usr/share/man/man8/")] == sorted(
        f"/usr/share/man/man8/{c}.8.gz" for c in COMMANDS)
    assert not lab_files(files), f"the lab is for development: {lab_files(files)}"
    assert any(re.search(r"/site-packages/hasupd/daemon\.py$", f) for f in files)
    assert run("rpm", "-qcp", str(rpm)).stdout.split() == ["/etc/hasupd/hasupd.yaml"]
    requires = set(run("rpm", "-qpR", str(rpm)).stdout.splitlines())
    # EL 9's own package names and versions (python3 3.9; prometheus_client from EPEL 9)
    for dep in ("python3 >= 3.9", "python(abi) = 3.9", "python3-pyudev >= 0.22.0",
                "python3-psutil >= 5.8.0", "python3-pyyaml >= 5.3.1", "python3-systemd >= 234",
                "python3-prometheus_client >= 0.9.0", "shadow-utils"):
        assert dep in requires, f"{dep!r} not required: {sorted(requires)}"
    # EL 9 has no structlog: recommended only (hasupd falls back to its own logger)
    assert not [r for r in requires if "structlog" in r], sorted(requires)
    assert "python3-structlog" in run("rpm", "-qp", "--recommends", str(rpm)).stdout
    assert any(re.search(r"^/usr/lib/python3\.9/site-packages/hasupd/daemon\.py$", f) for f in files), \
        "the modules go where EL 9's python3.9 finds them"
    scripts = run("rpm", "-qp", "--scripts", str(rpm)).stdout
    assert "groupadd -r hasupd" in scripts
    assert "%" not in scripts, "an unexpanded macro in a scriptlet:\n" + scripts
    # the fallback systemd macros must name the unit (an empty %{?*} once left `preset  >/dev/null`)
    assert re.search(r"preset\s+hasupd\.service", scripts) and re.search(r"disable --now\s+hasupd\.service", scripts), scripts
    # the wrappers run Debian's/EL's python3 on the module's main()
    stat = run("rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEMODES:perms}\n]", str(rpm)).stdout
    assert "/usr/sbin/hasupd -rwxr-xr-x" in stat and "/etc/hasupd/hasupd.yaml -rw-r-----" in stat, stat
    lint = run("rpmlint", str(rpm), check=False)
    print("rpmlint:\n" + lint.stdout)


def test_unit_file_verifies():
    proc = run("systemd-analyze", "verify", str(ROOT / "systemd" / "hasupd.service"), check=False)
    # before the package is installed verify complains about the missing binaries and man pages
    # (Documentation=); nothing else may appear.  Installed, it verifies strictly (below).
    problems = [ln for ln in (proc.stdout + proc.stderr).splitlines()
                if ln.strip() and "/usr/sbin/hasupd" not in ln and "/usr/bin/hasupctl" not in ln
                and not re.search(r"Command 'man (hasupd|hasupctl)\(8\)' failed", ln)]
    assert not problems, "\n".join(problems)


DAEMON_CONFIG = """\
cluster: pkgtest
nodes:
  - {name: hpkgn1, addresses: [10.99.77.1]}
  - {name: hpkgn2, addresses: [10.99.77.2]}
heartbeat:
  transport: unicast
  rings: [{bind_network: 10.99.77.0/24, port: 5405}]
  deadtime: 2s
  initdead: 1s
  authkey: TMP/authkey
split_brain_guard: {mode: none}
state_dir: TMP/state
control: {socket: TMP/state/hasupd.sock}
groups:
  - name: rg_test
    resources:
      - {name: res_vip, type: vip, ip: 10.99.77.50, cidr_netmask: 24, nic: hpkga}
"""


def run_daemon_alone(netns: tuple[str, ...], tmp: Path) -> None:
    """/usr/sbin/hasupd in the namespace: it starts the group (a VIP) and answers hasupctl status."""
    conf = tmp / "daemon.yaml"
    conf.write_text(DAEMON_CONFIG.replace("TMP", str(tmp)))
    run("/usr/bin/hasupctl", "keygen", str(tmp / "authkey"))
    log = open(tmp / "daemon.log", "w")
    daemon = subprocess.Popen([*netns, "/usr/sbin/hasupd", "--config", str(conf), "--node", "hpkgn1"],
                              stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and daemon.poll() is None:
            status = run(*netns, "/usr/bin/hasupctl", "--config", str(conf), "status", check=False)
            if "Group rg_test: started on hpkgn1" in status.stdout:
                break
            time.sleep(1)
        assert status is not None and "Group rg_test: started on hpkgn1" in status.stdout, \
            f"{status.stdout if status else ''}\n{(tmp / 'daemon.log').read_text()}"
        assert "10.99.77.50/24" in run(*netns, "ip", "-br", "addr", "show", "hpkga").stdout
        daemon.terminate()
        assert daemon.wait(timeout=60) == 0, (tmp / "daemon.log").read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        log.close()


def check_rpm_payload(rpm: Path, root: Path) -> None:
    """Unpack the .rpm and run its wrapper scripts against its own site-packages."""
    root.mkdir()
    payload = subprocess.run(["rpm2cpio", str(rpm)], capture_output=True, check=True).stdout
    subprocess.run(["cpio", "-idm", "--quiet"], input=payload, cwd=root, check=True)
    site = next(root.glob("usr/lib/python3*/site-packages"))
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = run("/usr/bin/python3", "-c", "import hasupd.daemon; print(hasupd.daemon.__file__)", env=env,
                cwd=root).stdout  # (-c puts the working directory first on sys.path)
    assert where.startswith(str(site)), where
    assert run("/usr/bin/python3", str(root / "usr/bin/hasupctl"), "--version", env=env).stdout.strip() == \
        f"hasupctl {VERSION}"
    assert run("/usr/bin/python3", str(root / "usr/sbin/hasupd"), "--version", env=env).stdout.strip() == \
        f"hasupd {VERSION}"
    check = run("/usr/bin/python3", str(root / "usr/bin/hasupctl"), "check", "--config",
                str(root / "etc/hasupd/hasupd.yaml"), env=env)
    assert "group rg_web" in check.stdout
    handler = run("/usr/bin/python3", str(root / "usr/bin/hasupd-drbd-handler"), env=env, check=False)
    assert handler.returncode == 2 and "fence-peer" in handler.stderr


@pytest.fixture
def netns():
    """A namespace with a veth pair (both ends up) and 10.99.77.1/24: room for a VIP."""
    run("ip", "netns", "add", NETNS)
    try:
        ns = ("ip", "netns", "exec", NETNS)
        run(*ns, "ip", "link", "add", "hpkga", "type", "veth", "peer", "name", "hpkgb")
        for dev in ("lo", "hpkga", "hpkgb"):
            run(*ns, "ip", "link", "set", dev, "up")
        run(*ns, "ip", "addr", "add", "10.99.77.1/24", "dev", "hpkga")
        yield ns
    finally:
        run("ip", "netns", "del", NETNS, check=False)


def test_install_run_remove_purge(packages, netns, tmp_path):
    deb, _ = packages
    purge()  # a leftover from an interrupted run
    assert not os.path.exists("/etc/hasupd"), "/etc/hasupd exists before the install"
    run("apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "--no-install-recommends", str(deb),
        env=APT_ENV, timeout=900)
    try:
        for path in EXPECTED:
            assert os.path.exists(path), f"{path} not installed"
        for dep in RUNTIME_DEPS:
            assert "ok installed" in run("dpkg-query", "-W", "-f=${Status}", dep).stdout, dep
        assert run("/usr/bin/hasupctl", "--version").stdout.strip() == f"hasupctl {VERSION}"
        assert run("/usr/sbin/hasupd", "--version").stdout.strip() == f"hasupd {VERSION}"
        check = run("/usr/bin/hasupctl", "check")
        assert "group rg_web" in check.stdout and "/etc/hasupd/hasupd.yaml: valid" in check.stdout
        assert run("/usr/bin/hasupctl", "check", "--quiet").stdout == ""  # the unit's ExecStartPre
        bad = tmp_path / "bad.yaml"
        bad.write_text("cluster: web\nnodes: 3\n")
        refused = run("/usr/bin/hasupctl", "check", "--quiet", "--config", str(bad), check=False)
        assert refused.returncode == 78 and str(bad) in refused.stderr and "Traceback" not in refused.stderr
        # the unit verifies strictly now that its binaries exist
        verify = run("systemd-analyze", "verify", "/lib/systemd/system/hasupd.service", check=False)
        assert verify.returncode == 0 and not (verify.stdout + verify.stderr).strip(), verify.stderr
        # group, state directory, conffile mode
        assert run("getent", "group", "hasupd").returncode == 0
        st = os.stat("/etc/hasupd/hasupd.yaml")
        assert oct(st.st_mode & 0o777) == "0o640" and st.st_gid == int(run("getent", "group", "hasupd").stdout.split(":")[2])
        assert os.path.isdir("/var/lib/hasupd")
        # the planner on Debian's python3: the scenario's reviewed summary, verbatim
        sim = run("/usr/bin/hasupd-simulate", str(SCENARIO) + ".yaml")
        assert sim.stdout == Path(str(SCENARIO) + ".summary").read_text()
        # every module imports; the VIP's netlink client / structlog 22 / psutil / pyudev code paths really run
        smoke = run(*netns, "/usr/bin/python3", str(ROOT / "tests" / "packaging" / "installed_smoke.py"),
                    "hpkga", "10.99.77.50", timeout=120)
        print(smoke.stdout)
        assert smoke.stdout.count("ok:") == 4, smoke.stdout
        # the installed daemon runs a group on Debian's libraries (alone: the peer never answers)
        run_daemon_alone(netns, tmp_path)
        # without a key the daemon refuses to start, with a clear line and EX_CONFIG
        daemon = run("/usr/sbin/hasupd", "--config", "/etc/hasupd/hasupd.yaml", "--node", "primarycentos",
                     check=False, timeout=60)
        assert daemon.returncode == 78 and "authkey" in daemon.stderr and "Traceback" not in daemon.stderr, daemon.stderr
        handler = run("/usr/bin/hasupd-drbd-handler", check=False)
        assert handler.returncode == 2 and "fence-peer" in handler.stderr
        # the .rpm's own wrappers and tree, on the same python3 and libraries
        check_rpm_payload(packages[1], tmp_path / "rpmroot")
        # the key made by hasupctl keygen; purge removes it
        run("/usr/bin/hasupctl", "keygen")
        assert oct(os.stat("/etc/hasupd/authkey").st_mode & 0o777) == "0o400"
        with open("/etc/hasupd/hasupd.yaml", "a") as f:
            f.write("# edited by the administrator\n")
        run("dpkg", "--remove", "hasupd", env=APT_ENV)
        assert os.path.exists("/etc/hasupd/hasupd.yaml"), "remove keeps the conffile"
        assert "edited by the administrator" in Path("/etc/hasupd/hasupd.yaml").read_text()
        for path in ("/usr/sbin/hasupd", "/usr/bin/hasupctl", "/usr/lib/python3/dist-packages/hasupd"):
            assert not os.path.exists(path), f"{path} left behind after remove"
    finally:
        purge()
    for path in ("/etc/hasupd", "/var/lib/hasupd", "/usr/sbin/hasupd", "/usr/bin/hasupctl",
                 "/lib/systemd/system/hasupd.service", "/usr/lib/python3/dist-packages/hasupd", "/usr/share/hasupd",
                 "/usr/share/man/man8/hasupctl.8.gz"):
        assert not os.path.exists(path), f"{path} left behind after purge"
    assert run("getent", "group", "hasupd", check=False).returncode == 2, "purge removes the hasupd group"
    status = run("dpkg-query", "-W", "-f=${Status}", "hasupd", check=False)
    assert status.returncode != 0 or "not-installed" in status.stdout, status.stdout
