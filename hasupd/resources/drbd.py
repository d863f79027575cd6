"""The DRBD driver: module, roles, status, first-sync helpers, watches.

Every command comes from ``cfg.drbdadm``/``cfg.drbdsetup`` (a PATH lookup,
so the lab can put the simulator's shims first), runs in its own process
group with a timeout, and fails as ``Result(ok=False, message=<the real
cause in one sentence>)``: the refusal texts are turned into causes by
``drbd_parse.classify``/``explain`` (e.g. ``(127) Device minor not
allocated`` = the resource is not up, not a small minor_count).

Status: ``drbdsetup events2 --now --statistics R`` (DRBD 9, and drbd-utils 9
with the 8.4 module), ``/proc/drbd`` (``cfg.status_path``) as fallback and
for 8.4's sync progress.  ``watch()`` streams ``drbdsetup events2`` (restarted
when it dies), watches the backing disk through udev, and re-reads the
status on a tick (drbd-reactor's lesson: events alone are not enough).

The driver never forces anything by itself: ``promote(force=True)`` only
when the planner's action says an operator forced it, and
``force_primary_overwrite_peer()`` only for ``hasupctl drbd init
--this-node-wins``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import stat
import time
from typing import AsyncIterator, Callable, Iterable

from hasupd import config
from hasupd.model import DrbdStatus
from hasupd.resources import procfs
from hasupd.resources.base import Result, child_env, run
from hasupd.resources.drbd_parse import (
    SYNCING,
    DrbdVersions,
    Events2Stream,
    FailureKind,
    auto_promote,
    classify,
    explain,
    kernel_holders,
    merge_progress,
    parse_drbdadm_version,
    parse_events2,
    parse_proc_drbd,
    proc_drbd_version,
)

DEFAULT_TIMEOUT = 60.0  # s, per drbdadm/drbdsetup call unless the caller says otherwise
STATUS_TIMEOUT = 10.0
DEMOTE_FAILED_MAX = 160  # characters of a refused demotion's reason carried in DrbdStatus.demote_failed


def _kernel() -> str:
    return os.uname().release


async def ensure_module(cfg: config.Drbd, timeout: float = 30.0, env: dict[str, str] | None = None) -> Result:
    """Load the drbd module (``modprobe drbd minor_count=N``) unless
    ``cfg.status_path`` shows it is loaded already.  ``env``: extra
    environment (the lab's PATH with the simulator's modprobe first)."""
    if os.path.exists(cfg.status_path):
        return Result(True, f"drbd module loaded ({cfg.status_path} exists)")
    if not cfg.load_module:
        return Result(False, f"the drbd module is not loaded ({cfg.status_path} is absent) and "
                             f"drbd.load_module is false: load it (modprobe drbd "
                             f"minor_count={cfg.minor_count})")
    argv = ("modprobe", "drbd", f"minor_count={cfg.minor_count}")
    r = await run(argv, timeout, env=env)
    if r.ok and os.path.exists(cfg.status_path):
        return dataclasses.replace(r, message=f"loaded the drbd module (minor_count={cfg.minor_count})")
    if r.ok:
        return dataclasses.replace(r, ok=False, message=f"modprobe drbd succeeded but {cfg.status_path} "
                                                        f"is still absent")
    if r.errno == 2:
        return dataclasses.replace(r, message="modprobe is not installed: install the kmod package")
    f = classify(r.output, r.returncode, errno=r.errno, timed_out=r.timed_out, command=argv)
    if f.kind is FailureKind.OTHER:
        return dataclasses.replace(r, message=f"modprobe drbd failed: {f.text}")
    return dataclasses.replace(r, message=explain(f, "drbd", kernel=_kernel()))


async def detect_versions(cfg: config.Drbd, timeout: float = 10.0,
                          env: dict[str, str] | None = None) -> DrbdVersions:
    """Which DRBD runs here: ``drbdadm --version`` (its DRBD_KERNEL_VERSION_CODE
    is 0 while the module is not loaded), else /proc/drbd's first line."""
    r = await run((cfg.drbdadm, "--version"), timeout, env=env)
    found = parse_drbdadm_version(r.output) if r.ok else DrbdVersions()
    if not found.kernel:
        try:
            with open(cfg.status_path) as f:
                kernel = proc_drbd_version(f.read(4096)) or ""
        except OSError:
            kernel = ""
        found = DrbdVersions(kernel, found.utils)
    return found


async def check_resource(cfg: config.Drbd, res: str, versions: DrbdVersions, timeout: float = 10.0,
                         env: dict[str, str] | None = None) -> list[str]:
    """Warnings about a DRBD resource's configuration for hasupd (``hasupctl check``)."""
    if versions.major is None or versions.major < 9:
        return []
    r = await run((cfg.drbdadm, "dump", res), timeout, env=env)
    on = auto_promote(r.output) if r.ok else None
    if on is None:
        return [f"DRBD {res}: cannot read its configuration (`drbdadm dump {res}`: "
                f"{(r.output.strip().splitlines() or [r.message])[-1]}); make sure it has "
                "`options { auto-promote no; }`"]
    if on:
        return [f"DRBD {res} has auto-promote on (DRBD 9's default): an application that opens "
                f"{res}'s device promotes it behind hasupd's back; set `options {{ auto-promote no; }}`"]
    return []


# ---------------------------------------------------------------- holders


def _rdev(path: str) -> int | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_rdev if stat.S_ISBLK(st.st_mode) else None


def _dev_of(device: str) -> tuple[int, int] | None:
    rdev = _rdev(os.path.realpath(device))
    return (os.major(rdev), os.minor(rdev)) if rdev is not None else None


def _mounts_elsewhere(dev: tuple[int, int]) -> list[str]:
    """Mounts of ``dev`` in the other mount namespaces, one process named for each."""
    found: list[str] = []
    seen = set()
    with contextlib.suppress(OSError):
        seen.add(os.readlink("/proc/self/ns/mnt"))
    for pid_s in os.listdir("/proc"):
        if not pid_s.isdigit() or int(pid_s) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            ns = os.readlink(f"/proc/{pid_s}/ns/mnt")
            if ns in seen:
                continue
            seen.add(ns)
            found += [f"mounted on {e.mountpoint} in the mount namespace of pid {pid_s} ({procfs.comm(pid_s)})"
                      for e in procfs.read_mountinfo(pid_s) if e.dev == dev]
    return found


def _process_holders(dev: tuple[int, int] | None) -> dict[int, str]:
    if dev is None:
        return {}
    return {h.pid: f"pid {h.pid} ({h.name})" for h in procfs.find_holders(dev, device=True)}


def find_holders(device: str) -> list[str]:
    """Who holds ``device`` open: its mounts, here and in other mount
    namespaces (a service started with PrivateTmp= while the filesystem was
    mounted keeps a copy of the mount), processes of any namespace using it
    or its filesystem (procfs.find_holders), and kernel holders (dm/LVM).
    The device is matched by its device number, whatever node names it."""
    real = os.path.realpath(device)
    dev = _dev_of(device)
    found: list[str] = []
    with contextlib.suppress(OSError):
        found += [f"mounted on {e.mountpoint}" for e in procfs.read_mountinfo()
                  if (dev is not None and e.dev == dev) or (e.source and os.path.realpath(e.source) == real)]
    if dev is not None:
        found += _mounts_elsewhere(dev)
    found += _process_holders(dev).values()
    with contextlib.suppress(OSError):
        for h in sorted(os.listdir(f"/sys/class/block/{os.path.basename(real)}/holders")):
            found.append(f"kernel holder {h}")
    return found


def stop_holder_processes(device: str, grace: float = 5.0) -> list[str]:
    """SIGTERM the processes that hold ``device`` (see ``find_holders``), SIGKILL
    those still there after ``grace`` seconds; mounts and kernel holders are
    left alone (unmounting is the filesystem resource's job).  What was stopped."""
    pids = _process_holders(_dev_of(device))
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, 15)
    deadline = time.monotonic() + grace
    left = set(pids)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {p for p in left if os.path.exists(f"/proc/{p}")}
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, 9)
    return list(pids.values())


def backing_disk_present(disk: str) -> bool:
    """The backing block device exists and has a size (a detached loop
    device keeps its node but has size 0)."""
    real = os.path.realpath(disk)
    if not os.path.exists(real):
        return False
    size_path = f"/sys/class/block/{os.path.basename(real)}/size"
    try:
        with open(size_path) as f:
            return int(f.read().strip() or 0) > 0
    except (OSError, ValueError):
        return True  # not a block device we can inspect (a file in tests): it exists


# ---------------------------------------------------------------- the driver


class DrbdDriver:
    def __init__(self, cfg: config.Drbd, res: config.DrbdResource, *,
                 timeout: float = DEFAULT_TIMEOUT, probe_interval: float = 10.0,
                 env: dict[str, str] | None = None):
        self.cfg, self.res, self.name = cfg, res, res.name
        self.timeout = timeout
        self.probe_interval = probe_interval
        self.env = env  # extra environment for every command (lab: simulator settings)
        self.last_status = DrbdStatus(res.name, minor=res.minor)
        self.last_error = ""  # why the last status read failed, "" if it did not
        self._split_brain = False  # seen by the stream; --now output cannot show it
        self._statistics = True  # events2 --statistics accepted (drop it if refused)
        self._rereads: set[asyncio.Task] = set()
        self.udev_source = ""  # "udev" | "kernel" once watch() runs ("" = no udev monitor)
        self.disk_events = 0  # uevents seen for the backing disk (for status and tests)
        self.events_pid: int | None = None  # the running `drbdsetup events2` (process group leader)
        self.events_starts = 0
        self.versions: DrbdVersions | None = None  # found once at start (versions_once)
        self.demote_failure = ""  # the last demotion's refusal (DrbdStatus.demote_failed)

    # ------------------------------------------------------------ commands

    async def _run(self, argv: tuple[str, ...], action: str, timeout: float | None = None) -> Result:
        r = await run(argv, timeout or self.timeout, env=self.env)
        if r.ok:
            return r
        f = classify(r.output or r.message, r.returncode, errno=r.errno, timed_out=r.timed_out,
                     command=argv, module_loaded=os.path.exists(self.cfg.status_path))
        status = holders = None
        if f.kind is FailureKind.NEED_UPTODATE:
            status = await self.status()
        elif f.kind is FailureKind.HELD_OPEN:
            holders = await asyncio.get_running_loop().run_in_executor(None, find_holders, self.res.device)
            holders += [h for h in kernel_holders(r.output) if h not in holders]
        msg = explain(f, self.name, action=action, status=status, holders=holders or (),
                      minor=self.res.minor, program=os.path.basename(argv[0]), kernel=_kernel())
        if f.kind is FailureKind.TIMEOUT:
            msg = f"{action} of {self.name} timed out after {timeout or self.timeout:g}s ({' '.join(argv)})"
        return dataclasses.replace(r, message=msg)

    def _adm(self, *args: str) -> tuple[str, ...]:
        return (self.cfg.drbdadm, *args)

    async def up(self, timeout: float | None = None) -> Result:
        """``drbdadm up`` (``adjust`` when already up: idempotent).  The first
        call also finds which DRBD runs here."""
        await self.versions_once()
        st = await self.status()
        if st.up:
            return await self._run(self._adm("adjust", self.name), "adjust", timeout)
        r = await self._run(self._adm("up", self.name), "up", timeout)
        if not r.ok and not r.timed_out and (await self.status()).up:
            # came up meanwhile (or half-way): adjust finishes the job
            return await self._run(self._adm("adjust", self.name), "adjust", timeout)
        return r

    async def down(self, timeout: float | None = None) -> Result:
        return await self._run(self._adm("down", self.name), "down", timeout)

    async def promote(self, force: bool = False, timeout: float | None = None) -> Result:
        """``drbdadm primary [--force]``; force only when an operator forced it."""
        args = ("primary", "--force", self.name) if force else ("primary", self.name)
        return await self._run(self._adm(*args), "forced promotion" if force else "promotion", timeout)

    async def demote(self, timeout: float | None = None) -> Result:
        """``drbdadm secondary``; where a holder keeps the device open: stop the
        holding processes and retry, then (DRBD 9.1.7+, drbd-utils 9.21+)
        ``secondary --force``, whose holders get I/O errors.  Still refused:
        the failure goes to the group's on_stop_failure policy."""
        r = await self._demote(timeout)
        # it travels in the heartbeat (one UDP packet): the fact and the start of the reason
        self.demote_failure = "" if r.ok else r.message[:DEMOTE_FAILED_MAX]
        return r

    async def _demote(self, timeout: float | None) -> Result:
        argv = self._adm("secondary", self.name)
        r = await self._run(argv, "demotion", timeout)
        if r.ok or not self._held_open(r):
            return r
        loop = asyncio.get_running_loop()
        stopped = await loop.run_in_executor(None, stop_holder_processes, self.res.device)
        if stopped:
            r = await self._run(argv, "demotion", timeout)
            if r.ok:
                return dataclasses.replace(r, message=f"demoted {self.name} after stopping {', '.join(stopped)}")
            r = dataclasses.replace(r, message=f"{r.message} (after stopping {', '.join(stopped)})")
            if not self._held_open(r):
                return r
        versions = await self.versions_once()
        if not versions.secondary_force:
            return r
        forced = await self._run(self._adm("secondary", "--force", self.name), "forced demotion", timeout)
        if forced.ok:
            return dataclasses.replace(forced, message=(
                f"demoted {self.name} with `secondary --force` (DRBD {versions.kernel}): it was held open "
                f"({r.message}); its remaining openers get I/O errors"))
        return forced

    @staticmethod
    def _held_open(r: Result) -> bool:
        return classify(r.output or r.message, r.returncode).kind is FailureKind.HELD_OPEN

    async def versions_once(self) -> DrbdVersions:
        """Which DRBD this is, found once (when the module's version is known)."""
        if self.versions is None or not self.versions.kernel:
            self.versions = await detect_versions(self.cfg, env=self.env)
        return self.versions

    async def connect(self, discard_my_data: bool = False, timeout: float | None = None) -> Result:
        """Split-brain recovery: the victim connects with ``--discard-my-data``
        (after ``demote``), the survivor plainly."""
        args = ("connect", "--discard-my-data", self.name) if discard_my_data else ("connect", self.name)
        return await self._run(self._adm(*args), "connect", timeout)

    async def disconnect(self, force: bool = False, timeout: float | None = None) -> Result:
        """``drbdadm disconnect [--force]``; force (no handshake with the peer, so a Secondary is not
        outdated on the way) only for a peer that is fenced: confirmed off."""
        args = ("disconnect", "--force", self.name) if force else ("disconnect", self.name)
        return await self._run(self._adm(*args), "disconnect", timeout)

    async def outdate(self, timeout: float | None = None) -> Result:
        """``drbdadm outdate``: this (disconnected Secondary) node's data is
        marked Outdated, so the peer may promote; what a fence-peer verdict
        with ``ask_peer_to_outdate`` asks of the peer."""
        return await self._run(self._adm("outdate", self.name), "outdate", timeout)

    async def attach(self, timeout: float | None = None) -> Result:
        """Re-attach the backing disk (after it came back)."""
        return await self._run(self._adm("attach", self.name), "attach", timeout)

    async def detach(self, timeout: float | None = None) -> Result:
        return await self._run(self._adm("detach", self.name), "detach", timeout)

    async def has_metadata(self, timeout: float | None = None) -> tuple[bool | None, Result]:
        """(True/False, result), or (None, the error) when it cannot be told.
        An attached disk has metadata (and dump-md refuses to run on it)."""
        st = await self.status()
        if st.up and st.disk not in ("Diskless", "DUnknown", "Failed"):
            return True, Result(True, f"{self.name} is attached ({st.disk}): it has metadata")
        argv = self._adm("dump-md", self.name)
        r = await run(argv, timeout or self.timeout, env=self.env)
        low = r.output.lower()
        if r.ok or "unclean" in low or "apply-al" in low:
            return True, Result(True, f"{self.name} has DRBD metadata", argv, r.returncode)
        f = classify(r.output or r.message, r.returncode, errno=r.errno, timed_out=r.timed_out,
                     command=argv)
        if f.kind is FailureKind.NO_METADATA:
            return False, Result(True, f"{self.name} has no DRBD metadata on {self.res.disk}", argv,
                                 r.returncode, r.output)
        return None, dataclasses.replace(r, message=explain(
            f, self.name, action="metadata check", minor=self.res.minor,
            program=os.path.basename(argv[0]), kernel=_kernel()))

    async def create_md(self, force: bool = False, timeout: float | None = None) -> Result:
        """``drbdadm create-md [--force]``.  Without force a disk that holds
        data or metadata is refused (stdin is closed: no hidden 'yes')."""
        args = ("create-md", "--force", self.name) if force else ("create-md", self.name)
        return await self._run(self._adm(*args), "create-md", timeout)

    async def force_primary_overwrite_peer(self, timeout: float | None = None) -> Result:
        """First full sync: this node's data wins (``drbdadm primary --force``,
        8.4's ``--overwrite-data-of-peer``).  Only `hasupctl drbd init
        --this-node-wins` calls this."""
        return await self._run(self._adm("primary", "--force", self.name),
                               "forced promotion (overwrite of the peer)", timeout)

    # ------------------------------------------------------------ status

    def _proc(self) -> DrbdStatus | None:
        try:
            with open(self.cfg.status_path) as f:
                text = f.read()
        except OSError:
            return None
        return parse_proc_drbd(text, {self.res.minor: self.name}).get(self.name) or DrbdStatus(
            self.name, up=False, minor=self.res.minor)

    def _finish(self, st: DrbdStatus, proc: DrbdStatus | None = None) -> DrbdStatus:
        """Add what one source lacks: 8.4 progress from /proc/drbd, the
        sticky split-brain mark, the backing disk's presence."""
        if st.up and st.replication in SYNCING and None in (st.sync_percent, st.sync_eta_s, st.sync_speed_kib):
            st = merge_progress(st, proc if proc is not None else self._proc())
        if st.split_brain:
            self._split_brain = True
        elif st.up and st.replication != "Off":
            self._split_brain = False  # a handshake succeeded since
        changes: dict = {}
        if self._split_brain and not st.split_brain and st.replication == "Off":
            changes["split_brain"] = True
        if st.minor is None:
            changes["minor"] = self.res.minor
        if self.versions is not None and st.kernel_version != self.versions.kernel:
            changes["kernel_version"] = self.versions.kernel
        if st.role != "Primary":
            self.demote_failure = ""
        if st.demote_failed != self.demote_failure:
            changes["demote_failed"] = self.demote_failure
        present = backing_disk_present(self.res.disk)
        if present != st.backing_disk_present:
            changes["backing_disk_present"] = present
        st = dataclasses.replace(st, **changes) if changes else st
        self.last_status = st
        return st

    def remember_split_brain(self) -> DrbdStatus:
        """Mark the resource split-brain again (known from before a daemon restart); it stays so
        until a handshake with the peer succeeds, as when the stream saw it."""
        self._split_brain = True
        return self._finish(self.last_status)

    async def status(self, timeout: float = STATUS_TIMEOUT) -> DrbdStatus:
        """Deep probe: ``events2 --now``, else /proc/drbd, else not up."""
        stats = ("--statistics",) if self._statistics else ()
        argv = (self.cfg.drbdsetup, "events2", "--now", *stats, self.name)
        r = await run(argv, timeout, env=self.env)
        if not r.ok and self._statistics and "unrecognized option" in r.output:
            self._statistics = False
            return await self.status(timeout)
        proc = self._proc()
        if r.ok:
            self.last_error = ""
            st = parse_events2(r.output).get(self.name)
            return self._finish(st or DrbdStatus(self.name, up=False, minor=self.res.minor), proc)
        f = classify(r.output or r.message, r.returncode, errno=r.errno, timed_out=r.timed_out,
                     command=argv)
        self.last_error = "" if f.kind in (FailureKind.NOT_UP,) else explain(
            f, self.name, action="status", minor=self.res.minor,
            program=os.path.basename(argv[0]), kernel=_kernel())
        return self._finish(proc or DrbdStatus(self.name, up=False, minor=self.res.minor), proc)

    async def wait_until(self, predicate: Callable[[DrbdStatus], bool], timeout: float,
                         interval: float = 0.5,
                         on_status: Callable[[DrbdStatus], None] | None = None) -> DrbdStatus | None:
        """Poll the status until ``predicate`` holds (that status) or
        ``timeout`` passes (None).  ``on_status`` sees every status read,
        e.g. to print the first sync's progress."""
        deadline = time.monotonic() + timeout
        while True:
            st = await self.status()
            if on_status is not None:
                on_status(st)
            if predicate(st):
                return st
            if time.monotonic() + interval > deadline:
                return None
            await asyncio.sleep(interval)

    # ------------------------------------------------------------ watch

    async def watch(self) -> AsyncIterator[DrbdStatus]:
        """Statuses as they change: the events2 stream (restarted if it
        dies), backing-disk udev events (an immediate re-read), and a deep
        probe every ``probe_interval`` (every second while syncing).  Ends
        only when cancelled."""
        queue: asyncio.Queue[DrbdStatus] = asyncio.Queue()
        await queue.put(await self.status())
        tasks = [asyncio.create_task(self._events_loop(queue), name=f"drbd-events2-{self.name}"),
                 asyncio.create_task(self._tick_loop(queue), name=f"drbd-tick-{self.name}")]
        udev = self._udev_monitor()
        loop = asyncio.get_running_loop()
        if udev is not None:
            loop.add_reader(udev.fileno(), self._on_udev, udev, queue)
        last: DrbdStatus | None = None
        try:
            while True:
                st = await queue.get()
                if st != last:
                    last = st
                    yield st
        finally:
            if udev is not None:
                loop.remove_reader(udev.fileno())
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _tick_loop(self, queue: asyncio.Queue) -> None:
        while True:
            syncing = self.last_status.replication in SYNCING
            await asyncio.sleep(min(1.0, self.probe_interval) if syncing else self.probe_interval)
            await queue.put(await self.status())

    async def _events_loop(self, queue: asyncio.Queue) -> None:
        stream = Events2Stream()
        backoff = 0.5
        while True:
            stats = ("--statistics",) if self._statistics else ()
            argv = (self.cfg.drbdsetup, "events2", *stats, self.name)
            env = child_env(self.env)
            started = time.monotonic()
            tail: list[str] = []
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)
            except OSError as e:
                self.last_error = explain(classify("", None, errno=e.errno, command=argv), self.name,
                                          program=os.path.basename(argv[0]))
                proc = None
            if proc is not None:
                self.events_pid, self.events_starts = proc.pid, self.events_starts + 1
                stream.reset()
                try:
                    assert proc.stdout is not None
                    async for raw in proc.stdout:
                        line = raw.decode(errors="replace").rstrip("\n")
                        tail = (tail + [line])[-5:]
                        for st in stream.feed(line):
                            if st.resource == self.name:
                                await queue.put(self._finish(dataclasses.replace(
                                    st, minor=st.minor if st.minor is not None else self.res.minor)))
                finally:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, 9)
                    await proc.wait()
                if self._statistics and any("unrecognized option" in t for t in tail):
                    self._statistics = False
                    continue
            # the stream died (module unloaded, drbdsetup killed...): re-read, restart
            backoff = 0.5 if time.monotonic() - started > 10 else min(backoff * 2, 5.0)
            await asyncio.sleep(backoff)
            await queue.put(await self.status())

    # udev: the backing disk appearing/disappearing is news at once

    def _udev_monitor(self):
        try:
            import pyudev
        except ImportError:  # pragma: no cover - pyudev is a dependency
            return None
        source = "udev" if os.path.exists("/run/udev/control") else "kernel"
        try:
            mon = pyudev.Monitor.from_netlink(pyudev.Context(), source=source)
            mon.filter_by("block")
            mon.start()
        except Exception as e:  # no netlink (unprivileged container): the tick remains
            self.last_error = f"udev monitor unavailable ({e}): backing disk watched by polling only"
            return None
        self.udev_source = source
        return mon

    def _disk_names(self) -> Iterable[str]:
        real = os.path.realpath(self.res.disk)
        return {real, os.path.basename(real)}

    def _on_udev(self, mon, queue: asyncio.Queue) -> None:
        names = self._disk_names()
        hit = False
        while True:
            try:
                dev = mon.poll(timeout=0)
            except Exception:
                break
            if dev is None:
                break
            if dev.device_node in names or dev.sys_name in names:
                hit = True
        if hit:
            self.disk_events += 1
            task = asyncio.get_running_loop().create_task(self._reread(queue))
            self._rereads.add(task)
            task.add_done_callback(self._rereads.discard)

    async def _reread(self, queue: asyncio.Queue) -> None:
        await queue.put(await self.status())
