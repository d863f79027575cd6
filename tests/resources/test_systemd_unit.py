"""systemd mode (systemd_unit, and httpd with `unit:`) against a fake
`systemctl` first on PATH: it records every call and replays `systemctl
show` outputs from tests/fixtures/systemd/ (this machine has no systemd as
PID 1).  The httpd case checks its status URL against a real apache."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hasupd.config import HttpdResource, SystemdUnitResource, Timeouts
from hasupd.model import ResState
from hasupd.resources.httpd import HttpdDriver
from hasupd.resources.systemd import SHOW_PROPERTIES, UnitState, group_members, parse_show
from hasupd.resources.systemd_unit import SystemdUnitDriver
from hasupd_lab.apache import write_lab_config

try:
    from . import netns_ho as ns_ho
except ImportError:
    import netns_ho as ns_ho

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "systemd"
SHOW = f"show -p {','.join(SHOW_PROPERTIES)} -- apache2.service"

FAKE = r'''#!PYTHON
"""fake systemctl: records calls, replays captured `systemctl show` files."""
import os, sys
d = os.environ["HO_FAKE_SYSTEMCTL"]
fixtures = os.environ["HO_FAKE_FIXTURES"]
args = sys.argv[1:]
with open(os.path.join(d, "calls"), "a") as f:
    f.write(" ".join(args) + "\n")
def read(name, default=""):
    try:
        with open(os.path.join(d, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return default
def write(name, text):
    with open(os.path.join(d, name), "w") as f:
        f.write(text)
if os.path.exists(os.path.join(d, "no-systemd")):
    sys.stderr.write("System has not been booted with systemd as init system (PID 1). Can't operate.\n"
                     "Failed to connect to bus: Host is down\n")
    sys.exit(1)
verb, unit = args[0], args[-1]
if verb == "show":
    wanted = args[args.index("-p") + 1].split(",") if "-p" in args else None
    overrides = dict(l.split("=", 1) for l in read("override").splitlines() if "=" in l)
    with open(os.path.join(fixtures, read("state") + ".txt")) as f:
        for line in f.read().splitlines():
            key, _, value = line.partition("=")
            if wanted is None or key in wanted:
                print(f"{key}={overrides.get(key, value)}")
elif verb in ("start", "restart"):
    outcome = read("on-start", "apache2-active")
    if outcome.startswith("fail:"):
        write("state", outcome[5:])
        sys.stderr.write(f"Job for {unit} failed because the control process exited with error code.\n"
                         f'See "systemctl status {unit}" and "journalctl -xeu {unit}" for details.\n')
        sys.exit(1)
    write("state", outcome)
elif verb == "stop":
    write("state", read("on-stop", "apache2-inactive"))
else:
    sys.stderr.write(f"fake systemctl: unknown verb {verb}\n")
    sys.exit(1)
'''


class FakeSystemctl:
    def __init__(self, base: Path):
        self.dir = base / "state"
        self.dir.mkdir()
        self.bin = base / "bin"
        self.bin.mkdir()
        script = self.bin / "systemctl"
        script.write_text(FAKE.replace("PYTHON", sys.executable, 1))
        script.chmod(0o755)
        self.set(state="apache2-inactive")

    def set(self, **files: str) -> None:
        for name, text in files.items():
            (self.dir / name.replace("_", "-")).write_text(text)

    def calls(self) -> list[str]:
        path = self.dir / "calls"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def fake(tmp_path, monkeypatch):
    f = FakeSystemctl(tmp_path)
    monkeypatch.setenv("PATH", f"{f.bin}:{os.environ['PATH']}")
    monkeypatch.setenv("HO_FAKE_SYSTEMCTL", str(f.dir))
    monkeypatch.setenv("HO_FAKE_FIXTURES", str(FIXTURES))
    return f


def unit_res(unit: str = "apache2.service", start: float = 30.0) -> SystemdUnitResource:
    return SystemdUnitResource(name="res_unit", timeouts=Timeouts(start, 30.0, 10.0), monitor_interval=5.0,
                               unit=unit)


# ------------------------------------------------------------ parsing the fixtures


def state_of(name: str) -> UnitState:
    return UnitState.from_props(name, parse_show((FIXTURES / f"{name}.txt").read_text()))


def test_fixture_states_parse():
    active = state_of("apache2-active")
    assert (active.active_state, active.sub_state, active.main_pid) == ("active", "running", 4242)
    assert active.running and active.exists
    assert active.describe() == "apache2-active active (running), pid 4242"
    failed = state_of("apache2-failed")
    assert failed.failed and not failed.running and failed.result == "exit-code"
    assert "Result=exit-code (status 1)" in failed.describe()
    assert state_of("apache2-inactive").active_state == "inactive"
    activating = state_of("apache2-activating")
    assert activating.running and activating.main_pid == 0 and activating.sub_state == "start"
    missing = state_of("nosuch-notfound")
    assert not missing.exists and "not-found" in missing.describe()


def test_parse_show_ignores_order_and_values_with_equals_signs():
    props = parse_show("ExecStart={ path=/x ; argv[]=/x start }\nMainPID=7\nActiveState=active\n")
    assert props["MainPID"] == "7" and props["ExecStart"].startswith("{ path=/x")


# ------------------------------------------------------------ actions


def test_start_runs_systemctl_start_then_reads_the_state(fake):
    drv = SystemdUnitDriver(unit_res())
    r = asyncio.run(drv.start())
    assert r.ok, r.message
    assert r.message == "apache2.service active (running), pid 4242"
    assert fake.calls() == ["start -- apache2.service", SHOW]


def test_failed_start_reports_the_job_error_and_the_unit_result(fake):
    fake.set(on_start="fail:apache2-failed")
    r = asyncio.run(SystemdUnitDriver(unit_res()).start())
    assert not r.ok
    assert "systemctl start apache2.service exited 1: Job for apache2.service failed" in r.message
    assert "failed (failed)" in r.message and "Result=exit-code (status 1)" in r.message


def test_start_that_returns_but_does_not_activate_is_a_failure(fake):
    fake.set(on_start="apache2-inactive")
    r = asyncio.run(SystemdUnitDriver(unit_res()).start())
    assert not r.ok and "returned but the unit is apache2.service inactive (dead)" in r.message


def test_stop_and_restart(fake):
    fake.set(state="apache2-active")
    drv = SystemdUnitDriver(unit_res())
    stop = asyncio.run(drv.stop())
    assert stop.ok and "inactive (dead)" in stop.message
    restart = asyncio.run(drv.restart())
    assert restart.ok
    assert fake.calls() == ["stop -- apache2.service", SHOW, "restart -- apache2.service", SHOW]


@pytest.mark.parametrize("fixture,state", [
    ("apache2-active", ResState.STARTED),
    ("apache2-activating", ResState.STARTED),  # something runs: it must be stopped before a move
    ("apache2-inactive", ResState.STOPPED),
    ("apache2-failed", ResState.STOPPED),
    ("nosuch-notfound", ResState.STOPPED),
])
def test_probe(fake, fixture, state):
    fake.set(state=fixture)
    status = asyncio.run(SystemdUnitDriver(unit_res()).probe())
    assert status.state == state, status.detail


def test_monitor(fake):
    fake.set(state="apache2-active")
    assert asyncio.run(SystemdUnitDriver(unit_res()).monitor()).ok
    fake.set(state="apache2-failed")
    r = asyncio.run(SystemdUnitDriver(unit_res()).monitor())
    assert not r.ok and "Result=exit-code" in r.message


def test_unknown_unit_is_reported(fake):
    fake.set(on_start="nosuch-notfound")
    r = asyncio.run(SystemdUnitDriver(unit_res("nosuch.service")).start())
    assert not r.ok and "not-found" in r.message


def test_no_systemd_as_pid1_says_so(fake):
    fake.set(no_systemd="")
    r = asyncio.run(SystemdUnitDriver(unit_res()).start())
    assert not r.ok and "systemd is not running on this node" in r.message
    assert asyncio.run(SystemdUnitDriver(unit_res()).probe()).state == ResState.UNKNOWN


# ------------------------------------------------------------ watch


async def _watch_until(drv, change, limit: float = 15.0):
    """Probe (adopt), let the watch settle, apply ``change``; the first observation and its delay."""
    probe = await drv.probe()
    seen = asyncio.get_running_loop().create_future()

    async def watcher():
        async for obs in drv.watch():
            if not seen.done():
                seen.set_result((time.monotonic(), obs))

    task = asyncio.create_task(watcher())
    await asyncio.sleep(1.5)
    early = seen.done()
    changed = time.monotonic()
    change()
    try:
        at, obs = await asyncio.wait_for(asyncio.shield(seen), limit)
    finally:
        task.cancel()
    return probe, early, obs, at - changed


@pytest.mark.slow
def test_watch_polls_and_reports_a_failed_unit(fake):
    fake.set(state="apache2-active")
    drv = SystemdUnitDriver(unit_res())
    probe, early, obs, delay = asyncio.run(_watch_until(drv, lambda: fake.set(state="apache2-failed")))
    assert probe.state == ResState.STARTED and not early
    assert obs.state == ResState.FAILED and "Result=exit-code" in obs.detail
    print(f"\nsystemctl show polling (1 s) saw the failed unit after {delay * 1000:.0f} ms")
    assert delay < 5


@pytest.mark.slow
def test_watch_sees_main_pid_death_through_pidfd(fake):
    main = subprocess.Popen(["sleep", "60"])
    try:
        fake.set(state="apache2-active", override=f"MainPID={main.pid}")
        drv = SystemdUnitDriver(unit_res())
        drv.unit.poll_interval = 60.0  # only the pidfd can explain a quick report

        def die():
            fake.set(state="apache2-failed", override="")
            main.kill()

        probe, early, obs, delay = asyncio.run(_watch_until(drv, die))
    finally:
        main.kill()
        main.wait()
    assert probe.state == ResState.STARTED and not early
    assert obs.state == ResState.FAILED
    print(f"\nMainPID death seen through its pidfd after {delay * 1000:.0f} ms")
    assert delay < 5


@pytest.mark.slow
def test_watch_reports_a_systemd_restart_without_failing(fake):
    fake.set(state="apache2-active")
    drv = SystemdUnitDriver(unit_res())
    probe, early, obs, _ = asyncio.run(_watch_until(drv, lambda: fake.set(override="NRestarts=1")))
    assert obs.state == ResState.STARTED and "systemd restarted it" in obs.detail


async def _stop_while_watching(drv):
    await drv.probe()
    seen = []

    async def watcher():
        async for obs in drv.watch():
            seen.append(obs)

    task = asyncio.create_task(watcher())
    await asyncio.sleep(1.2)
    stop = await drv.stop()
    await asyncio.sleep(2.5)
    task.cancel()
    return stop, seen


@pytest.mark.slow
def test_a_stop_we_asked_for_is_not_a_failure(fake):
    fake.set(state="apache2-active")
    stop, seen = asyncio.run(_stop_while_watching(SystemdUnitDriver(unit_res())))
    assert stop.ok and seen == []


# ------------------------------------------------------------ httpd in unit mode


def httpd_unit_res(conf: str, start: float = 20.0) -> HttpdResource:
    return HttpdResource(name="res_httpd", timeouts=Timeouts(start, 20.0, 5.0), monitor_interval=5.0,
                         configfile=conf, unit="apache2.service", binary=shutil.which("apache2") or "apache2",
                         pidfile=None, port=8080, statusurl="http://127.0.0.1:8080/server-status?auto",
                         status_regex=r"(?m)^(Total Accesses|ServerVersion|BusyWorkers):", check_config=True,
                         environment=())


async def _unit_mode(conf: str, base: Path, start_timeout: float):
    """systemd (faked) says active; the status URL is real: apache in command mode
    stands in for what the unit would have started."""
    real = HttpdDriver(replace(httpd_unit_res(conf), unit=None, pidfile=str(base / "httpd.pid")))
    real_start = await real.start()
    drv = HttpdDriver(httpd_unit_res(conf, start_timeout))
    out = {"real_start": real_start, "start": await drv.start(), "probe": await drv.probe(),
           "monitor": await drv.monitor()}
    await real.stop()
    out["monitor_down"] = await drv.monitor()
    out["start_down"] = await drv.start()
    return out


@pytest.mark.slow
def test_httpd_unit_mode_uses_systemd_and_the_status_url(fake):
    base = Path(tempfile.mkdtemp(prefix="ho-httpd-unit-"))
    base.chmod(0o755)
    conf = write_lab_config(base, "127.0.0.1:8080", base / "www", "ho-node1")
    try:
        with ns_ho.namespace("unit") as ns:
            out = ns_ho.in_netns(ns, _unit_mode, conf, base, 3.0)
    finally:
        pidfile = base / "httpd.pid"
        if pidfile.exists() and group_members(int(pidfile.read_text())):
            os.killpg(int(pidfile.read_text()), signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)
    assert out["real_start"].ok, out["real_start"].message
    assert out["start"].ok and "status ok" in out["start"].message, out["start"].message
    assert out["probe"].state == ResState.STARTED and "pid 4242" in out["probe"].detail
    assert out["monitor"].ok
    assert not out["monitor_down"].ok and "connection refused" in out["monitor_down"].message
    assert not out["start_down"].ok and "connection refused" in out["start_down"].message
    calls = fake.calls()
    assert calls.count("start -- apache2.service") == 2
    assert calls[-2:] == ["stop -- apache2.service", SHOW], "a start that never got healthy is undone"


def test_a_unit_name_is_never_taken_for_an_option(fake):
    """Issue 16 low: a unit named like an option (`--host=...` would make
    systemctl act on another machine) reaches systemctl after `--`."""
    evil = "--host=root@10.99.0.1"
    drv = SystemdUnitDriver(unit_res(evil))
    asyncio.run(drv.start())
    asyncio.run(drv.stop())
    for call in fake.calls():
        words = call.split(" ")
        assert words[-1] == evil and words[-2] == "--", call
