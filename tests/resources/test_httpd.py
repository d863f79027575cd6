"""httpd driver against a real apache2 in a network namespace of our own.

The daemon runs inside the node's namespace, so each scenario runs the
driver in a forked child that joined the namespace (os.setns); the child
is a subreaper, so the apache it starts is its child and can be reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from hasupd.config import HttpdResource, Timeouts
from hasupd.model import ResState
from hasupd.resources.httpd import (
    FORBIDDEN_HINT,
    HttpdDriver,
    check_status_url,
    last_errors,
    parse_compiled_defaults,
    parse_conf,
)
from hasupd.resources.systemd import alive, group_members
from hasupd_lab.apache import write_lab_config

try:
    from . import netns_ho as ns_ho
except ImportError:
    import netns_ho as ns_ho

in_netns = ns_ho.in_netns
APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
PORT = 8080


@pytest.fixture(scope="module")
def netns():
    with ns_ho.namespace("httpd") as name:
        yield name


@pytest.fixture
def site():
    """A lab config in a directory www-data can read; apache killed by its group afterwards."""
    base = Path(tempfile.mkdtemp(prefix="ho-httpd-"))
    base.chmod(0o755)
    conf = write_lab_config(base, f"127.0.0.1:{PORT}", base / "www", "ho-node1")
    try:
        yield base, conf
    finally:
        pidfile = base / "httpd.pid"
        if pidfile.exists() and pidfile.read_text().strip().isdigit():
            pgid = int(pidfile.read_text().strip())
            if group_members(pgid):
                os.killpg(pgid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


def resource(conf: str, base: Path, **kw) -> HttpdResource:
    values = dict(name="res_httpd", timeouts=Timeouts(30.0, 30.0, 5.0), monitor_interval=5.0,
                  configfile=conf, unit=None, binary=APACHE, pidfile=str(base / "httpd.pid"), port=PORT,
                  statusurl=f"http://127.0.0.1:{PORT}/server-status?auto",
                  status_regex=r"(?m)^(Total Accesses|ServerVersion|BusyWorkers):",
                  check_config=True, environment=())
    values.update(kw)
    return HttpdResource(**values)


def port_free(port: int = PORT) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def http_get(path: str) -> str:
    with socket.create_connection(("127.0.0.1", PORT), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode(errors="replace")


# ------------------------------------------------------------ pure parts


def test_parse_conf_reads_paths_and_expands_variables():
    text = """# comment
ServerRoot "/etc/httpd"
PidFile ${APACHE_PID_FILE}
ErrorLog logs/error_log
Listen 80
Listen 10.0.0.1:8080 http
Include conf.d/*.conf
"""
    conf = parse_conf(text, {"APACHE_PID_FILE": "/run/apache2/apache2.pid"})
    assert conf.server_root == "/etc/httpd"
    assert conf.pidfile == "/run/apache2/apache2.pid"
    assert conf.error_log == "logs/error_log"
    assert conf.listen == ("80", "10.0.0.1:8080")


def test_compiled_defaults_from_the_real_binary():
    out = subprocess.run([APACHE, "-V"], capture_output=True, text=True).stdout
    d = parse_compiled_defaults(out)
    assert d["HTTPD_ROOT"] == "/etc/apache2"
    assert d["DEFAULT_PIDLOG"].endswith("apache2.pid")


def test_last_errors_strips_timestamps_and_keeps_errors_only():
    log = ("[Tue Nov 24 18:43:05.683561 2026] [mpm_event:notice] [pid 1:tid 1] AH00489: resuming\n"
           "[Tue Nov 24 18:43:06.000000 2026] [core:emerg] [pid 2:tid 2] (98)Address already in use: "
           "AH00072: make_sock: could not bind to address 10.99.0.20:80\n")
    assert last_errors(log) == "(98)Address already in use: AH00072: make_sock: could not bind to address 10.99.0.20:80"


def test_status_url_connection_refused_says_so():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        ok, msg = check_status_url(f"http://127.0.0.1:{port}/server-status?auto", "x", 2.0)
    assert not ok
    assert "connection refused" in msg and f"127.0.0.1:{port}" in msg


def test_lab_config_is_accepted_by_apache(tmp_path):
    conf = write_lab_config(tmp_path / "a", "127.0.0.1:8081", tmp_path / "www", "ho-n9")
    r = subprocess.run([APACHE, "-t", "-f", conf], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ho-n9" in (tmp_path / "www" / "index.html").read_text()
    assert "ExtendedStatus On" in Path(conf).read_text()


# ------------------------------------------------------------ real apache


async def _start_status_stop(res: HttpdResource):
    drv = HttpdDriver(res)
    out = {}
    r = await drv.start()
    out["start"] = r
    out["pid"] = drv.pid
    out["pgid"] = os.getpgid(drv.pid) if drv.pid else None
    out["members_running"] = group_members(drv.pid) if drv.pid else []
    out["monitor"] = await drv.monitor()
    out["index"] = await asyncio.to_thread(http_get, "/")
    out["probe"] = await drv.probe()
    out["stop"] = await drv.stop()
    out["members_after"] = group_members(out["pid"]) if out["pid"] else []
    out["port_free"] = port_free()
    out["probe_after"] = await drv.probe()
    out["monitor_after"] = await drv.monitor()
    return out


@pytest.mark.slow
def test_start_status_stop(netns, site):
    base, conf = site
    out = in_netns(netns, _start_status_stop, resource(conf, base))
    assert out["start"].ok, out["start"].message
    assert out["pid"] and out["pgid"] == out["pid"], "apache detaches with setsid: pgid = main pid"
    assert len(out["members_running"]) >= 2, "parent and workers share the group"
    assert out["monitor"].ok and "status ok" in out["monitor"].message
    assert "ho-node1" in out["index"]
    assert out["probe"].state == ResState.STARTED and str(out["pid"]) in out["probe"].detail
    assert out["stop"].ok, out["stop"].message
    assert out["members_after"] == [], "no process of the group may survive a stop"
    assert out["port_free"]
    assert not (base / "httpd.pid").exists()
    assert out["probe_after"].state == ResState.STOPPED
    assert not out["monitor_after"].ok and "not running" in out["monitor_after"].message


async def _kill9_parent(res: HttpdResource):
    drv = HttpdDriver(res)
    out = {"start": await drv.start()}
    pid = out["old_pid"] = drv.pid
    seen = asyncio.get_running_loop().create_future()

    async def watcher():
        async for obs in drv.watch():
            if not seen.done():
                seen.set_result((time.monotonic(), obs))

    task = asyncio.create_task(watcher())
    await asyncio.sleep(0.2)  # the watch is waiting on the pidfd
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    at, obs = await asyncio.wait_for(seen, 10)
    out["latency_ms"] = (at - killed_at) * 1000
    out["obs"] = obs
    out["workers_left"] = group_members(pid)
    out["port_busy_after_kill"] = not port_free()
    out["probe"] = await HttpdDriver(res).probe()  # a fresh driver, as after a daemon restart
    out["restart"] = await drv.start()  # must clear the leftover workers first
    out["new_pid"] = drv.pid
    out["stop"] = await drv.stop()
    out["members_after"] = group_members(pid) + (group_members(drv.pid or pid))
    out["port_free"] = port_free()
    task.cancel()
    return out


@pytest.mark.slow
def test_kill9_of_parent_is_seen_by_watch_and_stop_kills_the_group(netns, site):
    base, conf = site
    out = in_netns(netns, _kill9_parent, resource(conf, base))
    assert out["start"].ok, out["start"].message
    print(f"\nkill -9 of the apache parent seen by watch() after {out['latency_ms']:.1f} ms")
    assert out["obs"].state == ResState.FAILED and "died" in out["obs"].detail
    assert out["latency_ms"] < 1000  # measured ~1 ms; generous for a loaded machine
    assert out["workers_left"], "the trap: workers survive a kill -9 of the parent"
    assert out["port_busy_after_kill"]
    assert out["probe"].state == ResState.FAILED and "still run" in out["probe"].detail
    assert out["restart"].ok and "leftover" in out["restart"].message, out["restart"].message
    assert out["new_pid"] and out["new_pid"] != out["old_pid"]
    assert out["stop"].ok, out["stop"].message
    assert out["members_after"] == []
    assert out["port_free"]


async def _adopt_start(res):
    drv = HttpdDriver(res)
    r = await drv.start()
    return r, drv.pid


async def _adopt_probe_then_stop(res):
    drv = HttpdDriver(res)  # a new daemon: knows nothing but the configuration
    probe = await drv.probe()
    monitor = await drv.monitor()
    seen = asyncio.get_running_loop().create_future()

    async def watcher():
        async for obs in drv.watch():
            seen.set_result(obs)

    task = asyncio.create_task(watcher())
    stop = await drv.stop()
    await asyncio.sleep(0.3)
    task.cancel()
    return probe, monitor, stop, seen.done(), port_free()


@pytest.mark.slow
def test_adoption_after_daemon_restart(netns, site):
    base, conf = site
    res = resource(conf, base)
    started, pid = in_netns(netns, _adopt_start, res)
    assert started.ok, started.message
    assert alive(pid), "apache outlives the daemon that started it"
    probe, monitor, stop, watch_reported, free = in_netns(netns, _adopt_probe_then_stop, res)
    assert probe.state == ResState.STARTED and probe.detail == f"pid {pid}"
    assert monitor.ok, monitor.message
    assert stop.ok, stop.message
    assert not watch_reported, "a stop we asked for is not a failure"
    assert group_members(pid) == [] and free


async def _start_and_monitor(res, status_res=None):
    drv = HttpdDriver(res)
    start = await drv.start()
    monitor = await HttpdDriver(status_res).monitor() if status_res and start.ok else None
    stop = await drv.stop()
    # the kernel may take a moment to release a killed group's listening socket
    # on a loaded machine: bounded, and the port must be free in the end
    for _ in range(50):
        if port_free():
            break
        await asyncio.sleep(0.1)
    return start, monitor, stop, port_free()


DENIED = """
<Location /denied-status>
    SetHandler server-status
    Require all denied
</Location>
"""


@pytest.mark.slow
def test_forbidden_server_status_is_reported_as_the_deny_trap(netns, site):
    base, conf = site
    Path(conf).write_text(Path(conf).read_text() + DENIED)
    denied_url = f"http://127.0.0.1:{PORT}/denied-status?auto"
    # monitor of a running apache whose status URL is forbidden
    start, monitor, stop, _ = in_netns(netns, _start_and_monitor, resource(conf, base),
                                       resource(conf, base, statusurl=denied_url))
    assert start.ok, start.message
    assert not monitor.ok
    assert "403" in monitor.message and FORBIDDEN_HINT in monitor.message
    assert stop.ok
    # a start whose status URL is forbidden fails at once with the same words, leaving nothing
    started = time.monotonic()
    start, _, stop, free = in_netns(netns, _start_and_monitor, resource(conf, base, statusurl=denied_url))
    assert not start.ok and "not allowed from localhost" in start.message
    assert time.monotonic() - started < 20, "a 403 is definitive: no waiting for the start timeout"
    assert free and not (base / "httpd.pid").exists()


@pytest.mark.slow
def test_broken_config_reported_with_apaches_own_message(netns, site):
    base, conf = site
    Path(conf).write_text(Path(conf).read_text() + "ServerTokenz Full\n")
    start, _, _, free = in_netns(netns, _start_and_monitor, resource(conf, base))
    assert not start.ok
    assert "configuration check failed" in start.message
    assert "Invalid command 'ServerTokenz'" in start.message and "Syntax error on line" in start.message
    assert start.command[:2] == (APACHE, "-t")
    assert not (base / "httpd.pid").exists() and free


async def _hold_port_then_start(res):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", PORT))
        s.listen()
        return await HttpdDriver(res).start()


@pytest.mark.slow
def test_port_in_use_reported_with_apaches_message(netns, site):
    base, conf = site
    start = in_netns(netns, _hold_port_then_start, resource(conf, base))
    assert not start.ok
    assert "AH00072" in start.message and "Address already in use" in start.message


async def _stop_a_frozen_apache(res):
    drv = HttpdDriver(res)
    start = await drv.start()
    pid = drv.pid
    members = group_members(pid)
    for member in members:  # a stopped process handles no signal but SIGKILL
        os.kill(member, signal.SIGSTOP)
    stop = await drv.stop()
    return start, members, stop, group_members(pid), port_free()


@pytest.mark.slow
def test_stop_escalates_to_sigkill_of_the_whole_group(netns, site):
    base, conf = site
    res = resource(conf, base, timeouts=Timeouts(30.0, 3.0, 5.0))
    start, members, stop, left, free = in_netns(netns, _stop_a_frozen_apache, res)
    assert start.ok, start.message
    assert len(members) >= 2
    assert stop.ok and stop.message.startswith("killed"), stop.message
    assert stop.duration < 10
    assert left == [] and free


# ------------------------------------------------------------ never signal a stranger


def stranger_group() -> tuple[int, int]:
    """A process group of uid 65534 whose leader has exited: its number (the
    leader's PID) lives on in a ``sleep``.  Returns (pgid, the sleep's pid)."""
    r, w = os.pipe()
    leader = os.fork()
    if leader == 0:
        try:
            os.close(r)
            os.setsid()
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            sleeper = os.fork()
            if sleeper == 0:
                os.execv("/bin/sleep", ["sleep", "300"])
            os.write(w, str(sleeper).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        sleeper = int(f.read())
    os.waitpid(leader, 0)  # the leader is gone for good, its group is not
    assert group_members(leader) == [sleeper]
    return leader, sleeper


def test_a_stale_pidfile_never_gets_an_unrelated_group_killed(tmp_path):
    """Issue 16 Medium 8: the pidfile names a dead PID whose number is now
    an unrelated process group (here uid 65534's sleep).  Neither stop nor a
    start that clears leftovers and then fails may signal it."""
    pgid, sleeper = stranger_group()
    pidfile = tmp_path / "httpd.pid"
    try:
        res = resource(str(tmp_path / "httpd.conf"), tmp_path, binary="/bin/false", check_config=False,
                       timeouts=Timeouts(5.0, 5.0, 5.0))
        pidfile.write_text(f"{sleeper}\n")  # a live stranger: not ours either
        probe = asyncio.run(HttpdDriver(res).probe())
        assert probe.state == ResState.STOPPED and "not our apache" in probe.detail, probe.detail
        assert asyncio.run(HttpdDriver(res).stop()).ok and alive(sleeper)
        pidfile.write_text(f"{pgid}\n")
        stop = asyncio.run(HttpdDriver(res).stop())
        assert alive(sleeper), "stop killed a process group that was never apache's"
        assert stop.ok, stop.message
        pidfile.write_text(f"{pgid}\n")
        start = asyncio.run(HttpdDriver(res).start())
        assert alive(sleeper), "start killed a process group that was never apache's"
        assert not start.ok
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(sleeper, signal.SIGKILL)


def start_that_never_shows(tmp_path, start_script: str) -> HttpdResource:
    """An `apache2` whose `-k start` runs START_SCRIPT (sh) instead of apache: a copy of /bin/sh
    named apache2, so what it starts is, to the kernel, an apache2 running ``-f CONF``."""
    shell = tmp_path / "apache2"
    shutil.copy("/bin/sh", shell)
    conf = tmp_path / "httpd.conf"
    conf.write_text(f'PidFile "{tmp_path}/httpd.pid"\n')
    wrapper = tmp_path / "fake-apache2"
    wrapper.write_text(f"#!/bin/sh\n# argv: -f CONF -k start\n{start_script}\n")
    wrapper.chmod(0o755)
    return resource(str(conf), tmp_path, binary=str(wrapper), check_config=False,
                    timeouts=Timeouts(3.0, 5.0, 1.0))


def test_a_start_that_hangs_says_what_the_process_waits_in_and_kills_it(tmp_path):
    """Issue 14: a start whose main process never writes its pidfile is reported with the
    processes running our configuration and where the kernel has them waiting, not as a bare
    'no main process yet'; and the failed start leaves none of them behind."""
    res = start_that_never_shows(tmp_path, f'"{tmp_path}/apache2" -c "while :; do sleep 1; done" -f "$2" </dev/null >/dev/null 2>&1 &\nexit 0')
    driver = HttpdDriver(res)
    result = asyncio.run(driver.start())
    assert not result.ok
    assert "1 process(es) run" in result.message and "none wrote the pidfile" in result.message, result.message
    assert "state S" in result.message and "waiting in" in result.message, result.message
    deadline = time.monotonic() + 5
    while driver._config_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert driver._config_processes() == [], "the hung start was left running"


def test_while_a_start_hangs_the_driver_says_what_it_waits_for(tmp_path):
    """Issue 14: during the start, not only after its timeout, `waits_on` (shown by hasupctl
    status under "Now: start ...") names the pidfile awaited and the process that should write
    it, with its kernel state; it is empty again once the start is over."""
    res = start_that_never_shows(tmp_path, f'"{tmp_path}/apache2" -c "while :; do sleep 1; done" -f "$2" </dev/null >/dev/null 2>&1 &\nexit 0')
    driver = HttpdDriver(res)
    seen: list[str] = []

    async def main():
        start = asyncio.ensure_future(driver.start())
        while not start.done():
            if driver.waits_on:
                seen.append(driver.waits_on)
            await asyncio.sleep(0.05)
        return start.result()

    result = asyncio.run(main())
    assert not result.ok and seen, result.message
    assert f"apache's pidfile {tmp_path}/httpd.pid: pid " in seen[-1] and " state S" in seen[-1], seen[-1]
    assert driver.waits_on == ""


def test_a_start_that_exits_silently_says_so_with_apaches_output(tmp_path):
    res = start_that_never_shows(tmp_path, 'echo "AH00558: apache2: Could not reliably determine the name"\nexit 0')
    result = asyncio.run(HttpdDriver(res).start())
    assert not result.ok
    assert "no process runs" in result.message and "exited before writing its pidfile" in result.message
    assert "AH00558" in result.message, result.message


def test_already_running_fails_at_once_and_names_the_pidfiles_process(tmp_path):
    """`apache2 -k start` exits 0 without starting when the pidfile names a live process: the
    start fails at once with apache's words and what that PID is, instead of waiting."""
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        res = start_that_never_shows(
            tmp_path, f'echo {sleeper.pid} > "{tmp_path}/httpd.pid"\n'
                      f'echo "httpd (pid {sleeper.pid}) already running"\nexit 0')
        began = time.monotonic()
        result = asyncio.run(HttpdDriver(res).start())
        assert not result.ok and time.monotonic() - began < 2.5, result.message
        assert f"apache refused to start: httpd (pid {sleeper.pid}) already running" in result.message
        assert f"names pid {sleeper.pid}, state S: sleep 60" in result.message, result.message
    finally:
        sleeper.kill()
        sleeper.wait()
