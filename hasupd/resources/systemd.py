"""systemd units through `systemctl`, and the process helpers (pidfd,
process groups) that httpd and systemd units share.

State comes from `systemctl show -p ... UNIT` (key=value lines; the order
and the set of keys do not matter).  Watching polls `systemctl show` every
``poll_interval`` (1 s) and also waits on a pidfd of the unit's MainPID, so
the death of the main process is seen at once; D-Bus signals would need
D-Bus bindings, and polling systemd once a second costs little.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import AsyncIterator, Mapping

from hasupd.model import ResourceStatus, ResState
from hasupd.resources.base import Observation, Result, observation, run
from hasupd.timeouts import Timeout, within

SHOW_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "MainPID", "Result",
                   "NRestarts", "ExecMainStatus")
NO_SYSTEMD = "has not been booted with systemd"


# ------------------------------------------------------------ pure parsing


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show` output (KEY=VALUE lines) -> dict."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and " " not in key:
            props[key] = value
    return props


@dataclass(frozen=True)
class UnitState:
    unit: str
    load_state: str = ""  # loaded | not-found | masked | error
    active_state: str = ""  # active | reloading | inactive | failed | activating | deactivating
    sub_state: str = ""  # running | exited | dead | failed | start | auto-restart ...
    main_pid: int = 0
    result: str = ""  # success | exit-code | signal | core-dump | timeout | ...
    n_restarts: int = 0
    exec_main_status: int = 0

    @classmethod
    def from_props(cls, unit: str, props: Mapping[str, str]) -> UnitState:
        def num(key: str) -> int:
            try:
                return int(props.get(key, "0") or 0)
            except ValueError:
                return 0

        return cls(unit, props.get("LoadState", ""), props.get("ActiveState", ""),
                   props.get("SubState", ""), num("MainPID"), props.get("Result", ""),
                   num("NRestarts"), num("ExecMainStatus"))

    @property
    def exists(self) -> bool:
        return self.load_state not in ("not-found", "masked", "error", "")

    @property
    def running(self) -> bool:
        """Something of the unit runs (or may run): it must be stopped before
        the group runs elsewhere."""
        return self.active_state in ("active", "reloading", "activating", "deactivating")

    @property
    def failed(self) -> bool:
        return self.active_state == "failed"

    def describe(self) -> str:
        if not self.exists:
            return f"unit {self.unit} {self.load_state or 'unknown'} (LoadState={self.load_state or '?'})"
        text = f"{self.unit} {self.active_state} ({self.sub_state})"
        if self.main_pid:
            text += f", pid {self.main_pid}"
        if self.result and self.result != "success":
            text += f", Result={self.result}"
            if self.result == "exit-code":
                text += f" (status {self.exec_main_status})"
        if self.n_restarts:
            text += f", restarted {self.n_restarts}x"
        return text


# ------------------------------------------------------------ process helpers


def process_state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (R S D Z T ...), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split(" ", 1)[0]


def alive(pid: int | None) -> bool:
    """Running, not a zombie (a dead parent stays a zombie until reaped)."""
    return bool(pid) and process_state(pid) not in (None, "Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split(" ")
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def reap(pid: int) -> None:
    """Collect ``pid``'s exit status if we are its parent (or subreaper)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


async def wait_exit(pid: int, timeout: float | None, wake: asyncio.Event | None = None) -> bool:
    """Wait until ``pid`` exits (pidfd: works for any process, not only our
    children).  True when it is gone; False on timeout or when ``wake`` is set."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(fd, lambda: exited.done() or exited.set_result(True))
    woken = asyncio.ensure_future(wake.wait()) if wake is not None else None
    try:
        waits = {exited} | ({woken} if woken else set())
        try:
            await within(asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED), timeout)
        except Timeout:
            pass
        return exited.done() or not alive(pid)
    finally:
        loop.remove_reader(fd)
        os.close(fd)
        if woken is not None:
            woken.cancel()
        if not exited.done():
            exited.cancel()


# ------------------------------------------------------------ one unit


class SystemdUnit:
    """start/stop/restart/state/watch of one unit through `systemctl`."""

    def __init__(self, resource: str, unit: str, systemctl: str = "systemctl",
                 poll_interval: float = 1.0):
        self.resource, self.unit, self.systemctl = resource, unit, systemctl
        self.poll_interval = poll_interval
        self.expect_running = False  # set by start/probe: the watch reports failures
        self.wake = asyncio.Event()  # start/stop/probe changed what the watch waits for

    def _changed(self, running: bool) -> None:
        self.expect_running = running
        self.wake.set()

    async def show(self, timeout: float = 10.0) -> UnitState | Result:
        r = await run([self.systemctl, "show", "-p", ",".join(SHOW_PROPERTIES), "--", self.unit], timeout)
        if not r.ok:
            return self._failure("show", r)
        return UnitState.from_props(self.unit, parse_show(r.output))

    def _failure(self, verb: str, r: Result) -> Result:
        if NO_SYSTEMD in r.output:
            msg = (f"systemctl {verb} {self.unit}: systemd is not running on this node (PID 1 is not "
                   "systemd); use command mode for this resource")
        elif r.timed_out or r.returncode is None:
            msg = r.message
        else:
            first = r.output.splitlines()[0] if r.output else ""
            msg = f"systemctl {verb} {self.unit} exited {r.returncode}: {first}"
        return Result(False, msg, r.command, r.returncode, r.output, r.errno, r.timed_out, r.duration)

    async def _act(self, verb: str, timeout: float) -> Result:
        started = time.monotonic()
        r = await run([self.systemctl, verb, "--", self.unit], timeout)  # a unit name is never an option
        state = await self.show(max(1.0, timeout - (time.monotonic() - started)))
        if isinstance(state, Result):  # show failed: report the first error
            return self._failure(verb, r) if not r.ok else state
        want_running = verb != "stop"
        if not r.ok:
            failed = self._failure(verb, r)
            return Result(False, f"{failed.message}; now {state.describe()}", r.command, r.returncode,
                          r.output, r.errno, r.timed_out, time.monotonic() - started)
        if not state.exists:
            return Result(False, f"systemctl {verb}: {state.describe()}", r.command, r.returncode,
                          r.output, duration=time.monotonic() - started)
        if want_running and state.active_state not in ("active", "reloading"):
            return Result(False, f"systemctl {verb} {self.unit} returned but the unit is {state.describe()}",
                          r.command, r.returncode, r.output, duration=time.monotonic() - started)
        if not want_running and state.running:
            return Result(False, f"systemctl stop {self.unit} returned but the unit is {state.describe()}",
                          r.command, r.returncode, r.output, duration=time.monotonic() - started)
        self._changed(want_running)
        return Result(True, state.describe(), r.command, r.returncode, r.output,
                      duration=time.monotonic() - started)

    async def start(self, timeout: float) -> Result:
        return await self._act("start", timeout)

    async def restart(self, timeout: float) -> Result:
        return await self._act("restart", timeout)

    async def stop(self, timeout: float) -> Result:
        self._changed(False)  # a stop we asked for is not a failure
        return await self._act("stop", timeout)

    async def probe(self, timeout: float = 10.0) -> ResourceStatus:
        state = await self.show(timeout)
        if isinstance(state, Result):
            return ResourceStatus(ResState.UNKNOWN, state.message, time.monotonic())
        if state.running:
            self._changed(True)
            return ResourceStatus(ResState.STARTED, state.describe(), time.monotonic())
        return ResourceStatus(ResState.STOPPED, state.describe(), time.monotonic())

    async def monitor(self, timeout: float) -> Result:
        started = time.monotonic()
        state = await self.show(timeout)
        if isinstance(state, Result):
            return state
        ok = state.active_state in ("active", "reloading")
        msg = state.describe() if ok else f"unit {state.describe()}"
        return Result(ok, msg, duration=time.monotonic() - started)

    async def watch(self) -> AsyncIterator[Observation]:
        restarts: int | None = None
        dead_pid = 0  # a MainPID seen dead while systemd still names it: poll instead
        while True:
            if not self.expect_running:
                self.wake.clear()
                await self.wake.wait()
                restarts = None
                continue
            self.wake.clear()
            state = await self.show()
            if isinstance(state, Result):  # systemctl itself failed: try again later
                await asyncio.sleep(self.poll_interval)
                continue
            if not self.expect_running:  # a stop began while we asked
                continue
            if not state.running:
                self.expect_running = False
                yield observation(self.resource, ResState.FAILED, f"unit {state.describe()}")
                continue
            if restarts is not None and state.n_restarts > restarts:
                yield observation(self.resource, ResState.STARTED,
                                  f"{state.describe()} (systemd restarted it)")
            restarts = state.n_restarts
            if state.main_pid and state.main_pid != dead_pid:
                if await wait_exit(state.main_pid, self.poll_interval, self.wake):
                    # the main process died: systemd updates the unit within milliseconds
                    dead_pid = state.main_pid
                    await asyncio.sleep(0.05)
            else:
                try:
                    await within(self.wake.wait(), self.poll_interval)
                except Timeout:
                    pass
