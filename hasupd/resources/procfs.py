"""What /proc says about mounts and the processes that use a device: one
mountinfo reader and one holder finder, for the filesystem and the DRBD
drivers.  Blocking (file reads, a /proc scan): callers run them in a thread."""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/PID/mountinfo."""

    mount_id: int
    dev: tuple[int, int]  # st_dev of files on it (major, minor)
    root: str
    mountpoint: str
    options: str  # per-mount options (rw, ro, relatime ...)
    fstype: str
    source: str
    super_options: str

    @property
    def read_only(self) -> bool:
        return "ro" in self.options.split(",")


def _unescape(field: str) -> str:
    # The kernel escapes space, tab, newline and backslash as \ooo.
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse mountinfo (see proc(5)); malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
            major, minor = fields[2].split(":")
            entries.append(MountEntry(
                mount_id=int(fields[0]),
                dev=(int(major), int(minor)),
                root=_unescape(fields[3]),
                mountpoint=_unescape(fields[4]),
                options=fields[5],
                fstype=fields[sep + 1],
                source=_unescape(fields[sep + 2]),
                super_options=fields[sep + 3] if len(fields) > sep + 3 else "",
            ))
        except (ValueError, IndexError):
            continue
    return entries


def read_mountinfo(pid: int | str = "self") -> list[MountEntry]:
    """The mount table of ``pid``'s mount namespace (OSError when unreadable)."""
    with open(f"/proc/{pid}/mountinfo") as f:
        return parse_mountinfo(f.read())


# ---------------------------------------------------------------- holders


def comm(pid: int | str) -> str:
    """A process's command name, "?" when it is gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


@dataclass(frozen=True)
class Holder:
    pid: int
    name: str
    how: str  # "cwd", "root", "open file /x/y", "open device /dev/x", "mapped file /x/y"

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.name}, {self.how})"


def find_holders(dev: tuple[int, int], *, device: bool = False) -> list[Holder]:
    """Processes that use the filesystem whose files have st_dev ``dev``
    (cwd, root, an open or a mapped file: what ``fuser -m`` finds), in this
    mount namespace only: another namespace holds its own copy of the mount,
    which does not keep ours busy.  ``device``: who keeps the block device
    ``dev`` busy instead: processes of every mount namespace, and a process
    with the device node itself open counts too.  Pid 1 and this process are
    never listed.  Blocking: /proc scan."""
    want = os.makedev(*dev)
    me = os.getpid()
    try:
        my_ns = os.readlink("/proc/self/ns/mnt")
    except OSError:
        my_ns = None
    holders = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (me, 1):
            continue
        pid = int(entry)
        base = f"/proc/{pid}"
        try:
            if not device and my_ns is not None and os.readlink(f"{base}/ns/mnt") != my_ns:
                continue
            how = _holds(base, want, device)
            if how:
                holders.append(Holder(pid, comm(pid), how))
        except OSError:
            continue  # gone meanwhile, or a kernel thread
    return holders


def _holds(base: str, want: int, device: bool) -> str | None:
    for link in ("cwd", "root"):
        with contextlib.suppress(OSError):
            if os.stat(f"{base}/{link}").st_dev == want:
                return link
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"{base}/fd"):
            with contextlib.suppress(OSError):
                st = os.stat(f"{base}/fd/{fd}")
                if st.st_dev == want:
                    return f"open file {os.readlink(f'{base}/fd/{fd}')}"
                if device and stat.S_ISBLK(st.st_mode) and st.st_rdev == want:
                    return f"open device {os.readlink(f'{base}/fd/{fd}')}"
    with contextlib.suppress(OSError), open(f"{base}/maps") as maps:
        hexdev = f"{os.major(want):02x}:{os.minor(want):02x}"
        for line in maps:
            parts = line.split(None, 5)
            if len(parts) > 3 and parts[3] == hexdev and parts[4] != "0":
                return f"mapped file {parts[5].strip() if len(parts) > 5 else ''}".strip()
    return None
