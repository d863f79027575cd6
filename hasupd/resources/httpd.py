"""Apache httpd: a systemd unit (``unit`` set) or a command with a pidfile.

Command mode (nodes without systemd, and the lab):

* start: ``BINARY -t -f CONF`` first (apache's own message on failure), then
  ``BINARY -f CONF -k start`` with the configured environment; done when the
  main PID (from the pidfile) lives and the status URL answers.  A start
  that fails leaves nothing running.
* watch: a pidfd on the main PID, so its death is seen in milliseconds
  (pidfds work for any process, not only our children).
* monitor: main PID alive + GET of the status URL matching ``status_regex``.
* stop: SIGWINCH (what ``-k graceful-stop`` sends), then SIGTERM (``-k
  stop``), then SIGKILL to the whole process group: apache detaches with
  setsid(), so its workers share the parent's process group, and a killed
  parent leaves them listening.  Signals are sent directly so that a stop
  works even when the configuration no longer parses.
* ownership: a pidfile only names a number, and numbers are reused.  A
  process is signalled only when it is provably ours: the main process we
  started or adopted (same start time), any member of its group while it
  lives, or an apache process running our configuration (``-f CONF`` in its
  command line, which workers inherit).  Each signal goes through a pidfd
  opened and checked against that start time first, so a PID reused in
  between is never hit.  A group whose leader is gone is never killpg'ed.
* probe (adoption after a daemon restart): the pidfile's PID is alive and
  is apache running our configuration.

Unit mode: the same, with start/stop/state from systemd
(hasupd.resources.systemd) and the same status URL check on top.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import signal
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urlsplit

from hasupd.config import HttpdResource
from hasupd.model import ResourceStatus, ResState
from hasupd.resources.base import Observation, Result, observation, run
from hasupd.resources.systemd import SystemdUnit, alive, group_members, process_state, reap, wait_exit

APACHE_NAMES = ("apache2", "httpd")
FORBIDDEN_HINT = ("/server-status is not allowed from localhost (Require/Allow rules: the classic "
                  "`Deny from all` trap); allow it with `Require local` in <Location /server-status>")


# ------------------------------------------------------------ configuration file (pure)


@dataclass(frozen=True)
class ApacheConf:
    server_root: str | None = None
    pidfile: str | None = None
    error_log: str | None = None
    listen: tuple[str, ...] = ()


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_conf(text: str, env: dict[str, str] | None = None) -> ApacheConf:
    """ServerRoot, PidFile, ErrorLog and Listen of a configuration text
    (top level only: Include'd files are not followed), ${VAR} expanded."""
    env = env or {}
    found: dict[str, str] = {}
    listen: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        key = parts[0].lower()
        value = parts[1].strip().strip('"') if len(parts) > 1 else ""
        value = _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), value)
        if key == "listen":
            listen.append(value.split()[0])
        elif key in ("serverroot", "pidfile", "errorlog") and key not in found:
            found[key] = value
    return ApacheConf(found.get("serverroot"), found.get("pidfile"), found.get("errorlog"),
                      tuple(listen))


def parse_compiled_defaults(text: str) -> dict[str, str]:
    """`apache2 -V` -> {"HTTPD_ROOT": "/etc/apache2", "DEFAULT_PIDLOG": "/run/apache2.pid", ...}"""
    return dict(re.findall(r'-D\s+([A-Z_]+)="([^"]*)"', text))


def last_errors(log_text: str, lines: int = 3) -> str:
    """The last few error lines of an apache error log, without timestamps."""
    picked = [ln for ln in log_text.splitlines() if re.search(r"\[(\w+:)?(emerg|alert|crit|error)\]", ln)]
    cleaned = [re.sub(r"^(\[[^\]]*\]\s*)+", "", ln).strip() for ln in picked[-lines:]]
    return "; ".join(c for c in cleaned if c)


# ------------------------------------------------------------ status URL (blocking; run in a thread)


def check_status_url(url: str, regex: str, timeout: float) -> tuple[bool, str]:
    """GET ``url`` (no proxy), True when it answers 200 with a body matching ``regex``."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    if parts.scheme == "https":
        ctx = ssl._create_unverified_context()  # our own server on localhost
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "hasupd-monitor", "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(256 * 1024).decode(errors="replace")
    except ConnectionRefusedError:
        return False, f"{url}: connection refused (nothing listens on {host}:{port})"
    except TimeoutError:
        return False, f"{url}: no answer within {timeout:g}s"
    except OSError as e:
        return False, f"{url}: {e.strerror or e}"
    except http.client.HTTPException as e:
        return False, f"{url}: bad HTTP answer ({e.__class__.__name__}: {e})"
    finally:
        conn.close()
    ms = (time.monotonic() - started) * 1000
    if resp.status == 403:
        return False, f"{url} answered 403 Forbidden: {FORBIDDEN_HINT}"
    if resp.status == 404:
        return False, (f"{url} answered 404 Not Found: is mod_status loaded, with "
                       "<Location /server-status> SetHandler server-status?")
    if resp.status != 200:
        return False, f"{url} answered {resp.status} {resp.reason}"
    if not re.search(regex, body):
        return False, f"{url} answered 200 but the page does not match {regex!r}"
    return True, f"status ok ({ms:.0f} ms)"


# ------------------------------------------------------------ processes


@dataclass(frozen=True)
class ProcId:
    """A process as seen once: its PID and start time together name it for good."""

    pid: int
    start: int  # clock ticks after boot (/proc/PID/stat field 22)
    pgid: int
    exe: str
    cmdline: tuple[str, ...]


def proc_id(pid: int) -> ProcId | None:
    """The live (non-zombie) process PID, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = tuple(a.decode(errors="replace") for a in f.read().split(b"\0")[:-1])
    except OSError:
        return None
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = ""
    fields = stat[stat.rfind(")") + 2:].split(" ")
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return ProcId(pid, int(fields[19]), int(fields[2]), exe.removesuffix(" (deleted)"), cmdline)


def send_signal(p: ProcId, sig: int) -> bool:
    """Signal P through a pidfd, only if the PID still is that process."""
    try:
        fd = os.pidfd_open(p.pid)
    except OSError:
        return False
    try:
        now = proc_id(p.pid)
        if now is None or now.start != p.start:
            return False  # gone, or the number was reused before we held it
        signal.pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def describe_process(p: ProcId) -> str:
    """One process as the kernel sees it: state, what it waits in, how long it has run."""
    state = process_state(p.pid) or "gone"
    try:
        with open(f"/proc/{p.pid}/wchan") as f:
            wchan = f.read().strip()
    except OSError:
        wchan = ""
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - p.start / os.sysconf("SC_CLK_TCK")
    waits = f", waiting in {wchan}" if wchan and wchan != "0" else ""
    return f"pid {p.pid} state {state}{waits}, running {age:.1f}s"


# ------------------------------------------------------------ the driver


class HttpdDriver:
    def __init__(self, res: HttpdResource, node: str | None = None, systemctl: str = "systemctl"):
        self.res = res
        self.name = res.name
        self.env = dict(res.environment)
        self.unit = SystemdUnit(res.name, res.unit, systemctl) if res.unit else None
        self.pid: int | None = None  # main PID of the apache we run (command mode)
        self.main: ProcId | None = None  # ... and that process, as we saw it
        self.expect_running = False  # the watch reports a death only while this holds
        self.wake = asyncio.Event()
        self._defaults: dict[str, str] | None = None
        self.start_output = ""  # what the last `-k start` printed (for a start that never shows up)
        self.waits_on = ""  # what a start under way waits on now (hasupctl status shows it)

    # ---------------------------------------------------------- paths

    def _conf(self) -> ApacheConf:
        try:
            text = Path(self.res.configfile).read_text(errors="replace")
        except OSError:
            return ApacheConf()
        return parse_conf(text, {**os.environ, **self.env})

    async def _compiled(self) -> dict[str, str]:
        if self._defaults is None:
            r = await run([self.res.binary, "-V"], 10.0, self.env)
            self._defaults = parse_compiled_defaults(r.output) if r.ok else {}
        return self._defaults

    async def _server_root(self, conf: ApacheConf) -> str:
        return conf.server_root or (await self._compiled()).get("HTTPD_ROOT", "/etc/httpd")

    async def pidfile(self) -> str:
        """res.pidfile, else PidFile from the configuration, else apache's compiled default;
        relative paths are relative to ServerRoot."""
        if self.res.pidfile:
            return self.res.pidfile
        conf = self._conf()
        path = conf.pidfile or (await self._compiled()).get("DEFAULT_PIDLOG", "logs/httpd.pid")
        return path if path.startswith("/") else os.path.join(await self._server_root(conf), path)

    async def _error_log_tail(self) -> str:
        conf = self._conf()
        path = conf.error_log
        if not path or path.startswith(("|", "syslog")):
            return ""
        if not path.startswith("/"):
            path = os.path.join(await self._server_root(conf), path)
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                return last_errors(f.read().decode(errors="replace"))
        except OSError:
            return ""

    async def _pidfile_pid(self) -> int | None:
        try:
            text = Path(await self.pidfile()).read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def _runs_our_config(self, p: ProcId) -> bool:
        """An apache process (main or worker) started with ``-f`` our configuration."""
        if os.path.basename(p.exe) not in {*APACHE_NAMES, os.path.basename(self.res.binary)}:
            return False
        args = p.cmdline
        return any(a == "-f" and args[i + 1:i + 2] == (self.res.configfile,) for i, a in enumerate(args))

    def _own_main(self, pid: int | None) -> ProcId | None:
        """PID as a process of ours: the main process we started or adopted, or
        an apache running our configuration; None for anything else."""
        p = proc_id(pid) if pid else None
        if p is None:
            return None
        if self.main is not None and (self.main.pid, self.main.start) == (p.pid, p.start):
            return p
        return p if self._runs_our_config(p) else None

    def _our_members(self, pgid: int) -> list[ProcId]:
        """The processes of group PGID that are provably ours."""
        leader = proc_id(pgid)
        leader_ours = leader is not None and self._own_main(pgid) is not None
        if leader is not None and not leader_ours:
            return []  # a live stranger leads this group
        out = []
        for pid in group_members(pgid):
            p = proc_id(pid)
            if p is not None and p.pgid == pgid and (leader_ours or self._runs_our_config(p)):
                out.append(p)
        return out

    async def running_pid(self) -> int | None:
        """The main PID of a running apache of ours according to the pidfile, or None."""
        pid = await self._pidfile_pid()
        return pid if self._own_main(pid) else None

    def _set_running(self, pid: int | None) -> None:
        self.pid = pid
        if pid:  # the last main is kept after a stop: stop() still needs to know it
            self.main = proc_id(pid)
        self.expect_running = pid is not None
        self.wake.set()

    # ---------------------------------------------------------- actions

    async def check_config(self, timeout: float = 30.0) -> Result:
        r = await run([self.res.binary, "-t", "-f", self.res.configfile], timeout, self.env)
        if r.ok:
            return Result(True, "configuration ok", r.command, 0, r.output, duration=r.duration)
        if r.returncode is None:
            return r
        errors = [ln for ln in r.output.splitlines() if ln.strip() and "Syntax OK" not in ln]
        return Result(False, f"apache configuration check failed ({self.res.configfile}): "
                      + " ".join(ln.strip() for ln in errors[-3:]),
                      r.command, r.returncode, r.output, duration=r.duration)

    async def probe(self) -> ResourceStatus:
        if self.unit:
            return await self.unit.probe(self.res.timeouts.monitor)
        now = time.monotonic()
        pid = await self._pidfile_pid()
        if self._own_main(pid):
            self._set_running(pid)
            return ResourceStatus(ResState.STARTED, f"pid {pid}", now)
        left = self._our_members(pid) if pid and not alive(pid) else []
        if left:
            # the parent was killed, its workers still listen: the group must be stopped
            return ResourceStatus(ResState.FAILED, f"main process {pid} is gone but "
                                  f"{len(left)} process(es) of its group still run", now)
        if pid and alive(pid):
            return ResourceStatus(ResState.STOPPED, f"pidfile names pid {pid}, which is not our apache", now)
        return ResourceStatus(ResState.STOPPED, f"stale pidfile (pid {pid} not running)" if pid
                              else "not running", now)

    async def start(self) -> Result:
        started = time.monotonic()
        deadline = started + self.res.timeouts.start
        # unit mode: the unit's own start checks the configuration with the
        # environment it needs (Debian's apache2 needs /etc/apache2/envvars)
        if self.res.check_config and not self.unit:
            checked = await self.check_config(min(30.0, self.res.timeouts.start))
            if not checked.ok:
                return checked
        if self.unit:
            r = await self.unit.start(max(1.0, deadline - time.monotonic()))
            if not r.ok:
                return r
            return await self._await_status(deadline, started, r.message)

        pid = await self.running_pid()
        if pid:
            self._set_running(pid)
            return Result(True, f"already running, pid {pid}", duration=time.monotonic() - started)
        killed = await self._clear_leftovers()
        r = await run([self.res.binary, "-f", self.res.configfile, "-k", "start"],
                      max(1.0, deadline - time.monotonic()), self.env)
        refused = next((ln.strip() for ln in r.output.splitlines() if "already running" in ln), "")
        if r.ok and refused:
            # `-k start` exits 0 without starting when the pidfile names any live process
            # (even a zombie): waiting for a main process would only run out the timeout
            return Result(False, f"apache refused to start: {refused} ({await self._pidfile_owner()})",
                          r.command, r.returncode, r.output, duration=time.monotonic() - started)
        self.start_output = r.output
        if not r.ok:
            tail = await self._error_log_tail()
            apache_says = " ".join(ln.strip() for ln in r.output.splitlines()[-3:]) or tail
            await self._kill_all()
            return Result(False, f"apache did not start: {apache_says or r.message}", r.command,
                          r.returncode, r.output, r.errno, r.timed_out, time.monotonic() - started)
        result = await self._await_status(deadline, started, "started")
        if result.ok and killed:
            result = Result(True, f"{result.message} (killed {killed} leftover process(es) first)",
                            result.command, duration=result.duration)
        return result

    async def _await_status(self, deadline: float, started: float, what: str) -> Result:
        """Wait for the main process and the status URL; a failed start leaves nothing running.
        Meanwhile ``waits_on`` says, once a second, what the start is waiting for."""
        try:
            return await self._await_status_described(deadline, started, what)
        finally:
            self.waits_on = ""

    async def _describe_wait(self, pid: int | None, last: str) -> str:
        if pid or self.unit:
            return f"{self.res.statusurl} to answer ({last})"
        procs = self._config_processes()
        if not procs:
            return f"apache's pidfile {await self.pidfile()}: no process runs {self.res.configfile}"
        return (f"apache's pidfile {await self.pidfile()}: "
                + "; ".join(describe_process(p) for p in procs[:3]))

    async def _await_status_described(self, deadline: float, started: float, what: str) -> Result:
        last = "no main process yet"
        seen_pid: int | None = None
        described = started
        while True:
            if self.unit:
                pid = None
            else:
                pid = await self.running_pid()
                if pid is None and seen_pid:
                    tail = await self._error_log_tail()
                    await self._kill_all()
                    return Result(False, f"apache main process {seen_pid} exited during start"
                                  + (f": {tail}" if tail else ""), duration=time.monotonic() - started)
                seen_pid = pid or seen_pid
            if pid or self.unit:
                ok, last = await self._status(max(0.5, min(self.res.timeouts.monitor,
                                                         deadline - time.monotonic())))
                if ok:
                    if pid:
                        self._set_running(pid)
                    return Result(True, f"{what}, {'pid %d, ' % pid if pid else ''}{last}",
                                  duration=time.monotonic() - started)
                if " answered " in last:  # HTTP said no (403, 404...): waiting will not help
                    break
            if time.monotonic() >= deadline:
                break
            if time.monotonic() >= described + 1.0:
                self.waits_on = await self._describe_wait(pid, last)
                described = time.monotonic()
            await asyncio.sleep(0.1)
        tail = "" if self.unit else await self._error_log_tail()
        if not self.unit and seen_pid is None:
            last = await self._what_start_waits_on()
        await (self.unit.stop(self.res.timeouts.stop) if self.unit else self._kill_all())
        return Result(False, f"apache started but is not healthy: {last}" + (f"; error log: {tail}" if tail else ""),
                      timed_out=time.monotonic() >= deadline, duration=time.monotonic() - started)

    def _config_processes(self) -> list[ProcId]:
        """Every live process running our configuration (main and workers), oldest first."""
        found = []
        for entry in os.listdir("/proc"):
            p = proc_id(int(entry)) if entry.isdigit() else None
            if p is not None and self._runs_our_config(p):
                found.append(p)
        return sorted(found, key=lambda p: p.start)

    async def _what_start_waits_on(self) -> str:
        """Why no main process appeared: which processes of ours run and where the kernel has
        them waiting, or that none runs (then apache's own output).  The stragglers are ours
        (our -f configuration): they are killed, so a failed start leaves nothing behind."""
        pidfile = await self.pidfile()
        procs = self._config_processes()
        if not procs:
            said = " ".join(ln.strip() for ln in self.start_output.splitlines()[-3:])
            return (f"no main process: no process runs {self.res.configfile} (apache exited before writing "
                    f"its pidfile {pidfile})" + (f"; `-k start` said: {said}" if said else ""))
        described = "; ".join(describe_process(p) for p in procs[:3])
        for p in procs:
            send_signal(p, signal.SIGKILL)
        return (f"no main process: {len(procs)} process(es) run {self.res.configfile} but none wrote the "
                f"pidfile {pidfile}: {described} (killed)")

    async def _pidfile_owner(self) -> str:
        """What the pidfile's PID is, in words (for `already running`)."""
        pidfile, pid = await self.pidfile(), await self._pidfile_pid()
        state = process_state(pid) if pid else None
        if state is None:
            return f"pidfile {pidfile} names no live process"
        p = proc_id(pid)
        what = " ".join(p.cmdline)[:120] if p is not None else "a zombie (exited, not reaped by its parent)"
        return f"pidfile {pidfile} names pid {pid}, state {state}: {what}"

    async def _status(self, timeout: float) -> tuple[bool, str]:
        return await asyncio.to_thread(check_status_url, self.res.statusurl, self.res.status_regex, timeout)

    async def monitor(self) -> Result:
        started = time.monotonic()
        if self.unit:
            r = await self.unit.monitor(self.res.timeouts.monitor)
            if not r.ok:
                return r
        else:
            pid = await self._pidfile_pid() or self.pid
            if not self._own_main(pid):
                return Result(False, f"apache main process {pid} is not running" if pid
                              else "apache is not running (no pidfile)", duration=time.monotonic() - started)
        ok, msg = await self._status(self.res.timeouts.monitor)
        return Result(ok, msg, duration=time.monotonic() - started)

    async def stop(self) -> Result:
        started = time.monotonic()
        self._set_running(None)  # a death we cause is not a failure
        if self.unit:
            return await self.unit.stop(self.res.timeouts.stop)
        budget = self.res.timeouts.stop
        pid = await self._pidfile_pid() or self.pid
        if not pid:
            return Result(True, "not running", duration=time.monotonic() - started)
        main = self._own_main(pid)
        if alive(pid) and main is None:  # a reused PID: never signal a stranger
            self._unlink(await self.pidfile())
            return Result(True, f"not running (pidfile named pid {pid}, which is not our apache)",
                          duration=time.monotonic() - started)
        how = "not running"
        if main is not None:
            # SIGTERM is apache's immediate stop (in-flight requests are cut, ~10 ms);
            # graceful_stop waits for them first (WINCH), which costs a move ~1 s
            stages = ((signal.SIGWINCH, 1 / 3, "gracefully stopped"),) if self.res.graceful_stop else ()
            stages += ((signal.SIGTERM, 1 / 3, "stopped (SIGTERM)"),)
            for sig, share, done in stages:
                how = done
                if not send_signal(main, sig):
                    break
                if await self._wait_group_gone(pid, budget * share):
                    break
            else:
                how = "killed"
        killed = await self._kill_group(pid, max(1.0, started + budget - time.monotonic()))
        reap(pid)
        left = [p.pid for p in self._our_members(pid)]
        if left:
            return Result(False, f"apache process group {pid} survived SIGKILL: pids {left[:10]}",
                          duration=time.monotonic() - started)
        self._remove_pidfile_of(pid, await self.pidfile())
        if killed and how != "killed":
            how += f", killed {killed} leftover process(es)"
        return Result(True, f"{how} (pid {pid})", duration=time.monotonic() - started)

    async def _wait_group_gone(self, pgid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if alive(pgid):
            await wait_exit(pgid, timeout)
        while self._our_members(pgid):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _kill_group(self, pgid: int, timeout: float) -> int:
        """SIGKILL every process of ours in the group; how many there were."""
        members = self._our_members(pgid)
        if not members:
            return 0
        for p in members:
            send_signal(p, signal.SIGKILL)
        await self._wait_group_gone(pgid, timeout)
        return len(members)

    async def _clear_leftovers(self) -> int:
        """Before a start: kill the workers of a parent that was killed, and
        remove a pidfile that names a dead process (apache would refuse it
        while the dead parent is an unreaped zombie)."""
        pidfile = await self.pidfile()
        pid = await self._pidfile_pid()
        if not pid:
            return 0
        if alive(pid):  # not our apache (running_pid said so): a reused PID, leave it alone
            self._unlink(pidfile)
            return 0
        killed = await self._kill_group(pid, 5.0)
        self._remove_pidfile_of(pid, pidfile)
        return killed

    async def _kill_all(self) -> None:
        """Undo a failed start: kill what is ours in the group the pidfile names."""
        pid = await self._pidfile_pid()
        if pid and (not alive(pid) or self._own_main(pid)):
            await self._kill_group(pid, 5.0)
            reap(pid)
            self._remove_pidfile_of(pid, await self.pidfile())
        self._set_running(None)

    @staticmethod
    def _unlink(path: str) -> None:
        try:
            os.unlink(path)
        except OSError:
            pass

    @staticmethod
    def _remove_pidfile_of(pid: int, pidfile: str) -> None:
        try:
            if Path(pidfile).read_text().strip() == str(pid) and not alive(pid):
                os.unlink(pidfile)
        except OSError:
            pass

    # ---------------------------------------------------------- watch

    async def watch(self) -> AsyncIterator[Observation]:
        if self.unit:
            async for obs in self.unit.watch():
                yield obs
            return
        while True:
            pid = self.pid if self.expect_running else None
            self.wake.clear()
            if pid is None:
                await self.wake.wait()
                continue
            if not await wait_exit(pid, None, self.wake):
                continue  # woken: start/stop changed the PID
            if self.expect_running and self.pid == pid:
                self.expect_running = False
                reap(pid)
                left = self._our_members(pid)
                yield observation(self.name, ResState.FAILED,
                                  f"apache main process {pid} died"
                                  + (f" ({len(left)} worker(s) of its group still run)" if left else ""))
