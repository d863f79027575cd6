"""The filesystem driver: mount a device on a directory, like Pacemaker's
``ocf:heartbeat:Filesystem``.

* start: refuse a device mounted elsewhere (named) or a directory that
  something else is mounted on; optional ``fsck -p``; ``mount -t FSTYPE
  -o OPTIONS DEVICE DIRECTORY`` (the directory is created when missing).
* stop: ``umount DIRECTORY``; when busy, find the processes of this mount
  namespace that hold the filesystem (open files, cwd, root, mapped files:
  matched by device number like ``fuser -m``), TERM them, wait
  ``kill_grace``, KILL the rest, unmount again.  Only with
  ``force_unmount``; without it the failure names the holders.
* probe: the device mounted on the directory, read from
  ``/proc/self/mountinfo`` (symlinks resolved, matched by device number).
* monitor: mounted, not gone read-only, and (``probe_file``) a small file
  written, fsynced, read back and removed, bounded by the monitor timeout.
* watch: ``/proc/self/mountinfo`` signals POLLPRI on every mount-table
  change; an epoll fd with EPOLLPRI is registered with the loop, so an
  unexpected unmount is reported at once.

The daemon runs in the node's mount namespace: everything here acts on
"the current" one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import errno
import logging
import os
import select
import signal
import socket
import stat
import threading
import time
from typing import AsyncIterator

from hasupd import config
from hasupd.model import ResourceStatus, ResState
from hasupd.resources.base import Observation, Result, observation, run
from hasupd.resources.procfs import MOUNTINFO, Holder, MountEntry, find_holders, read_mountinfo
from hasupd.timeouts import Timeout, within

log = logging.getLogger(__name__)

C_LOCALE = {"LC_ALL": "C"}  # mount/umount/fsck messages are parsed ("busy") and quoted
UMOUNT_BUSY = 32  # umount(8)'s exit code for "target is busy" (and other mount failures)
# Types that are not block devices: no device-number checks, no fsck.
NODEV_TYPES = {"nfs", "nfs4", "cifs", "smb3", "tmpfs", "ramfs", "fuse", "glusterfs", "ceph", "9p"}
FSCK_MEANING = {
    1: "errors corrected",
    2: "errors corrected, reboot advised",
    4: "errors left uncorrected",
    8: "operational error",
    16: "usage or syntax error",
    32: "cancelled by request",
    128: "shared-library error",
}


# ---------------------------------------------------------------- mount table (pure)


def top_mount(entries: list[MountEntry], directory: str) -> MountEntry | None:
    """What is visible at ``directory``: the last mount listed on it."""
    found = None
    for e in entries:
        if e.mountpoint == directory:
            found = e
    return found


def fsck_meaning(code: int) -> str:
    parts = [text for bit, text in FSCK_MEANING.items() if code & bit]
    return ", ".join(parts) or "no errors"


# ---------------------------------------------------------------- holders


def _signal_all(holders: list[Holder], sig: int) -> None:
    for h in holders:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(h.pid, sig)


# ---------------------------------------------------------------- driver


def _in_daemon_thread(fn, name: str) -> concurrent.futures.Future:
    """Run ``fn`` in a daemon thread: I/O on a hung disk may never return,
    and must not keep the daemon from exiting (executor threads would)."""
    fut: concurrent.futures.Future = concurrent.futures.Future()

    def work() -> None:
        try:
            result = fn()
        except BaseException as e:  # handed to the waiter
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                fut.set_exception(e)
        else:
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                fut.set_result(result)

    threading.Thread(target=work, name=name, daemon=True).start()
    return fut


class _Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self, floor: float = 0.1) -> float:
        return max(floor, self.end - time.monotonic())

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.end


class FilesystemDriver:
    def __init__(self, res: config.FilesystemResource, node: str | None = None):
        self.res = res
        self.name = res.name
        self.directory = os.path.abspath(res.directory)
        self.probe_path = os.path.join(self.directory, f".hasupd-probe-{node or socket.gethostname()}")
        self._stopping = False  # set by our own stop(): a vanishing mount is then no failure
        self._probe_inflight: asyncio.Future | None = None

    # ------------------------------------------------------------ state

    def _nodev(self) -> bool:
        return self.res.fstype in NODEV_TYPES or not self.res.device.startswith("/")

    def _device_number(self) -> tuple[int, int] | None:
        """(major, minor) of the block device (symlinks resolved), or None."""
        try:
            st = os.stat(self.res.device)
        except OSError:
            return None
        if not stat.S_ISBLK(st.st_mode):
            return None
        return os.major(st.st_rdev), os.minor(st.st_rdev)

    def _is_ours(self, e: MountEntry, dev: tuple[int, int] | None) -> bool:
        if self._nodev():
            return e.source == self.res.device
        return dev is not None and e.dev == dev

    def _mounted_here(self, entries: list[MountEntry]) -> MountEntry | None:
        top = top_mount(entries, os.path.realpath(self.directory))
        if top is not None and self._is_ours(top, None if self._nodev() else self._device_number()):
            return top
        return None

    def _status(self, entries: list[MountEntry]) -> ResourceStatus:
        m = self._mounted_here(entries)
        if m is None:
            return ResourceStatus(ResState.STOPPED, f"{self.res.device} is not mounted on {self.directory}",
                                  time.monotonic())
        if m.read_only and not self._wants_ro():
            return ResourceStatus(ResState.FAILED, f"{self.directory} has gone read-only "
                                                   f"({m.source}, {m.fstype} {m.options})", time.monotonic())
        return ResourceStatus(ResState.STARTED, f"{m.source} mounted on {self.directory} "
                                                f"({m.fstype} {m.options})", time.monotonic())

    def _wants_ro(self) -> bool:
        return "ro" in self.res.options.split(",")

    async def probe(self) -> ResourceStatus:
        try:
            return self._status(read_mountinfo())
        except OSError as e:
            return ResourceStatus(ResState.UNKNOWN, f"cannot read {MOUNTINFO}: {e.strerror}", time.monotonic())

    # ------------------------------------------------------------ start

    async def start(self) -> Result:
        self._stopping = False
        started = time.monotonic()
        deadline = _Deadline(self.res.timeouts.start)
        r = await self._start(deadline)
        return dataclasses.replace(r, duration=time.monotonic() - started)

    async def _start(self, deadline: _Deadline) -> Result:
        res, directory = self.res, self.directory
        dev = None
        if not self._nodev():
            if not os.path.exists(res.device):
                return Result(False, f"device {res.device} does not exist", errno=errno.ENOENT)
            dev = self._device_number()
            if dev is None:
                return Result(False, f"{res.device} is not a block device", errno=errno.ENOTBLK)
        try:
            entries = read_mountinfo()
        except OSError as e:
            return Result(False, f"cannot read {MOUNTINFO}: {e.strerror}", errno=e.errno)
        real_dir = os.path.realpath(directory)
        top = top_mount(entries, real_dir)
        if top is not None and self._is_ours(top, dev):
            return Result(True, f"{res.device} already mounted on {directory}")
        elsewhere = [e.mountpoint for e in entries if self._is_ours(e, dev)]
        if elsewhere:
            return Result(False, f"{res.device} ({os.path.realpath(res.device)}) is already mounted on "
                                 f"{', '.join(elsewhere)}: refusing to mount it on {directory} too",
                          errno=errno.EBUSY)
        if top is not None:
            return Result(False, f"{directory} already has {top.source} ({top.fstype}) mounted on it",
                          errno=errno.EBUSY)
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
        except OSError as e:
            return Result(False, f"cannot create mount point {directory}: {e.strerror}", errno=e.errno)
        if res.fsck and not self._nodev():
            r = await self._fsck(deadline)
            if not r.ok:
                return r
        argv = ["mount", "-t", res.fstype]
        if res.options:
            argv += ["-o", res.options]
        argv += [res.device, directory]
        r = await run(argv, deadline.left(), env=C_LOCALE)
        if not r.ok:
            why = r.output.strip() or r.message
            return dataclasses.replace(r, message=f"mount {res.device} on {directory} failed: {why}")
        if self._mounted_here(read_mountinfo()) is None:
            return dataclasses.replace(r, ok=False, message=f"mount exited 0 but {res.device} is not "
                                                            f"mounted on {directory}")
        return dataclasses.replace(r, message=f"mounted {res.device} on {directory}")

    async def _fsck(self, deadline: _Deadline) -> Result:
        argv = ("fsck", "-p", "-t", self.res.fstype, self.res.device)
        r = await run(argv, deadline.left(), env=C_LOCALE)
        if r.timed_out or r.returncode is None:
            return r
        meaning = fsck_meaning(r.returncode)
        if r.returncode < 4:
            return dataclasses.replace(r, ok=True, message=f"fsck {self.res.device}: {meaning}")
        return dataclasses.replace(r, ok=False, message=f"fsck -p {self.res.device} exited {r.returncode} "
                                                        f"({meaning}): refusing to mount; repair it by hand")

    # ------------------------------------------------------------ stop

    async def stop(self) -> Result:
        self._stopping = True
        started = time.monotonic()
        deadline = _Deadline(self.res.timeouts.stop)
        r = await self._stop(deadline)
        return dataclasses.replace(r, duration=time.monotonic() - started)

    async def _stop(self, deadline: _Deadline) -> Result:
        directory = self.directory
        killed: list[Holder] = []
        unmounted = False
        idle_busy = 0  # busy turns with no holder found
        while True:
            try:
                mounted = self._mounted_here(read_mountinfo())
            except OSError as e:
                return Result(False, f"cannot read {MOUNTINFO}: {e.strerror}", errno=e.errno)
            if mounted is None:
                done = f"unmounted {directory}" if unmounted else f"{directory} is not mounted"
                if killed:
                    done += " after stopping " + ", ".join(str(h) for h in killed)
                return Result(True, done)
            r = await run(("umount", directory), deadline.left(), env=C_LOCALE)
            if r.ok:
                unmounted = True
                continue  # confirmed by the next turn
            if not (r.returncode == UMOUNT_BUSY and "busy" in r.output):
                return dataclasses.replace(r, message=f"umount {directory} failed: {r.output.strip() or r.message}")
            holders = await asyncio.to_thread(find_holders, mounted.dev)
            if not holders:
                idle_busy += 1
                if idle_busy > 5 or deadline.passed:
                    return dataclasses.replace(r, errno=errno.EBUSY, message=(
                        f"{directory} is busy but no process of this mount namespace holds it "
                        f"(a submount, swap file, loop device or NFS export?)"))
                await asyncio.sleep(0.2)  # processes just killed may still be exiting
                continue
            names = ", ".join(str(h) for h in holders)
            if not self.res.force_unmount:
                return dataclasses.replace(r, errno=errno.EBUSY, message=(
                    f"{directory} is busy, held by {names}; force_unmount is off"))
            if deadline.passed:
                return dataclasses.replace(r, errno=errno.EBUSY, timed_out=True, message=(
                    f"{directory} still busy at the stop timeout, held by {names}"))
            log.warning("%s busy, sending SIGTERM to %s", directory, names)
            killed += [h for h in holders if h.pid not in {k.pid for k in killed}]
            await self._terminate(holders, mounted.dev, deadline)

    async def _terminate(self, holders: list[Holder], dev: tuple[int, int], deadline: _Deadline) -> None:
        """TERM, wait up to kill_grace for the holders to let go, then KILL."""
        _signal_all(holders, signal.SIGTERM)
        grace = _Deadline(min(self.res.kill_grace, deadline.left(0)))
        while holders and not grace.passed:
            await asyncio.sleep(0.05)
            holders = await asyncio.to_thread(find_holders, dev)
        if holders:
            log.warning("%s: SIGKILL to %s", self.directory, ", ".join(str(h) for h in holders))
            _signal_all(holders, signal.SIGKILL)
            while holders and not deadline.passed:
                await asyncio.sleep(0.05)
                holders = await asyncio.to_thread(find_holders, dev)

    # ------------------------------------------------------------ monitor

    async def monitor(self) -> Result:
        started = time.monotonic()
        st = await self.probe()
        if st.state is not ResState.STARTED:
            return Result(False, st.detail, duration=time.monotonic() - started)
        if not self.res.probe_file:
            return Result(True, st.detail, duration=time.monotonic() - started)
        prev = self._probe_inflight
        if prev is not None and not prev.done():
            return Result(False, f"the previous I/O probe in {self.directory} is still hung", timed_out=True,
                          duration=time.monotonic() - started)
        check = self._read_check if self._wants_ro() else self._write_check
        if prev is not None and not prev.cancelled():
            prev.exception()  # a late outcome of a timed-out probe: seen, not logged as lost
        self._probe_inflight = asyncio.wrap_future(_in_daemon_thread(check, f"fsprobe-{self.name}"))
        try:
            # not cancelled on a timeout: the next monitor still sees the probe hanging
            await within(self._probe_inflight, self.res.timeouts.monitor, cancel=False)
        except Timeout:
            return Result(False, f"I/O probe in {self.directory} did not finish within "
                                 f"{self.res.timeouts.monitor:g}s (storage hung?)", timed_out=True,
                          duration=time.monotonic() - started)
        except OSError as e:
            return Result(False, f"I/O probe {e.filename or self.probe_path} failed: {e.strerror}",
                          errno=e.errno, duration=time.monotonic() - started)
        except ValueError as e:
            return Result(False, str(e), duration=time.monotonic() - started)
        return Result(True, f"{st.detail}; probe file ok", duration=time.monotonic() - started)

    def _write_check(self) -> None:
        """Write, fsync and read back an anonymous file (O_TMPFILE): it has
        no name, so nothing a user who can write the mount root plants
        (a symlink to /etc/shadow, a FIFO, a hard link) is ever opened."""
        token = f"hasupd {os.getpid()} {time.time()!r}\n".encode()
        fd, named = self._open_probe_file()
        try:
            os.write(fd, token)
            os.fsync(fd)
            back = os.pread(fd, len(token) + 1, 0)
        finally:
            os.close(fd)
            if named:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.probe_path)
        if back != token:
            raise ValueError(f"probe file {self.probe_path} read back different bytes than written")

    def _open_probe_file(self) -> tuple[int, bool]:
        """(fd, whether it has a name to remove afterwards)."""
        try:
            return os.open(self.directory, os.O_TMPFILE | os.O_RDWR, 0o600), False
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
        # a filesystem without O_TMPFILE (NFS, CIFS): a fresh name of our own,
        # never following or reusing what is there (O_EXCL|O_NOFOLLOW)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.probe_path)
        return os.open(self.probe_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), True

    def _read_check(self) -> None:
        os.statvfs(self.directory)
        os.listdir(self.directory)

    # ------------------------------------------------------------ watch

    async def watch(self) -> AsyncIterator[Observation]:
        """An Observation whenever our mount appears, vanishes or goes
        read-only; FAILED for a vanishing mount unless we unmounted it."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        table = open(MOUNTINFO, "rb", buffering=0)
        ep = select.epoll()
        try:
            ep.register(table.fileno(), select.EPOLLPRI | select.EPOLLERR)

            def on_change() -> None:
                ep.poll(0)  # drain; the kernel re-arms at the next mount-table change
                changed.set()

            loop.add_reader(ep.fileno(), on_change)
            try:
                last = self._status(read_mountinfo())
                while True:
                    await changed.wait()
                    changed.clear()
                    now = self._status(read_mountinfo())
                    if now.state is last.state:
                        continue
                    last = now
                    if now.state is ResState.STOPPED and not self._stopping:
                        yield observation(self.name, ResState.FAILED,
                                          f"{self.directory} was unmounted behind our back")
                    else:
                        yield observation(self.name, now.state, now.detail)
            finally:
                loop.remove_reader(ep.fileno())
        finally:
            ep.close()
            table.close()
