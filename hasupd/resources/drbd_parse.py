"""DRBD's outputs -> ``DrbdStatus`` and typed failures.  Pure: text in, data out.

Formats (real captures in tests/fixtures/drbd/):

* ``drbdsetup events2 [--now] [--statistics] [--timestamps] [RES]`` (DRBD 9,
  and drbd-utils 9 on the 8.4 module): lines ``VERB OBJECT key:value ...``,
  VERB in exists|create|change|destroy|call|response, OBJECT in
  resource|connection|device|peer-device|path|helper; ``exists -`` ends the
  initial dump.  ``Events2Stream`` keeps the state and yields the updated
  status of a resource per line.
* ``/proc/drbd`` (8.4 in-tree module): one block per minor,
  `` 1: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----``
  then the counters (``oos:`` in KiB) and, while syncing, the progress lines
  ``sync'ed: 88.8% (5752/51196)M`` / ``finish: 0:01:00 speed: 97,024 (93,252) ...``.
* ``drbdsetup events`` (8.4 legacy): ``SEQ ST MINOR,RES[VOL] { cs:.. ro:.. ds:.. flags }``.

Names follow events2 (DRBD 9): /proc/drbd's ``cs:WFConnection`` becomes
connection ``Connecting``; ``cs:SyncSource`` becomes connection ``Connected``
with replication ``SyncSource``.

Failures: ``classify(output, returncode)`` turns a refusal into a
``DrbdFailure`` and ``explain()`` into one sentence naming the real cause.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Mapping, Sequence

from hasupd.model import DrbdStatus

# ---------------------------------------------------------------- state names

# 8.4 connection states (/proc/drbd cs:) -> (events2 connection, replication)
_CS_MAP: dict[str, tuple[str, str]] = {
    "StandAlone": ("StandAlone", "Off"),
    "Disconnecting": ("Disconnecting", "Off"),
    "Unconnected": ("Unconnected", "Off"),
    "Timeout": ("Timeout", "Off"),
    "BrokenPipe": ("BrokenPipe", "Off"),
    "NetworkFailure": ("NetworkFailure", "Off"),
    "ProtocolError": ("ProtocolError", "Off"),
    "TearDown": ("TearDown", "Off"),
    "WFConnection": ("Connecting", "Off"),
    "WFReportParams": ("Connecting", "Off"),
    "Connected": ("Connected", "Established"),
}
# replication states that mean "connected" in 8.4's single cs: field
_REPLICATION_STATES = (
    "StartingSyncS", "StartingSyncT", "WFBitMapS", "WFBitMapT", "WFSyncUUID",
    "SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT", "VerifyS", "VerifyT",
    "Ahead", "Behind",
)
SYNCING = frozenset(("SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT",
                     "StartingSyncS", "StartingSyncT", "WFBitMapS", "WFBitMapT", "WFSyncUUID"))


def map_cs(cs: str) -> tuple[str, str]:
    """8.4 ``cs:`` value -> (connection, replication) in events2 names."""
    if cs in _CS_MAP:
        return _CS_MAP[cs]
    if cs in _REPLICATION_STATES:
        return "Connected", cs
    return cs, "Off"


# ---------------------------------------------------------------- /proc/drbd

_PROC_HEAD = re.compile(r"^\s*(\d+):\s+cs:(\S+)(.*)$")
_SYNCED = re.compile(r"(?:sync'ed|verified):\s*([\d.]+)%\s*\((\d+)/(\d+)\)([KMG])")
_FINISH = re.compile(r"finish:\s*(\d+):(\d+):(\d+)")
_SPEED = re.compile(r"speed:\s*([\d,]+)")
_KV = re.compile(r"(\w+):(\S+)")


def _num(v: str | None) -> float | None:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


def parse_proc_drbd(text: str, names: Mapping[int, str] | None = None) -> dict[str, DrbdStatus]:
    """Parse /proc/drbd (8.4).  ``names`` maps minor -> resource name (the
    file only has minors; unmapped minors are named ``minor-N``).  An
    unconfigured minor comes back with ``up=False``."""
    names = names or {}
    blocks: list[tuple[int, str, list[str]]] = []
    for line in text.splitlines():
        m = _PROC_HEAD.match(line)
        if m:
            blocks.append((int(m.group(1)), m.group(2), [m.group(3)]))
        elif blocks and line.strip():
            blocks[-1][2].append(line)
    out: dict[str, DrbdStatus] = {}
    for minor, cs, rest in blocks:
        name = names.get(minor, f"minor-{minor}")
        if cs == "Unconfigured":
            out[name] = DrbdStatus(name, up=False, minor=minor)
            continue
        head = rest[0]
        kv = dict(_KV.findall(" ".join(rest)))
        role, _, peer_role = kv.get("ro", "Unknown/Unknown").partition("/")
        disk, _, peer_disk = kv.get("ds", "DUnknown/DUnknown").partition("/")
        connection, replication = map_cs(cs)
        # the flags field is the last word of the head line: r----- (8.4: 6 chars)
        words = head.split()
        flags = words[-1] if words and re.fullmatch(r"[a-z-]{4,6}", words[-1]) else ""
        suspended = flags[:1] == "s"
        resync_suspended = "no"
        if len(flags) > 3:
            if flags[3] == "u":
                resync_suspended = "user"
            elif flags[2] == "p":
                resync_suspended = "peer"
            elif flags[1] == "a":
                resync_suspended = "dependency"
        body = " ".join(rest[1:])
        pct = eta = speed = None
        m = _SYNCED.search(body)
        if m:
            pct = _num(m.group(1))
        m = _FINISH.search(body)
        if m:
            eta = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
        m = _SPEED.search(body)
        if m:
            speed = _num(m.group(1).replace(",", ""))
        oos = kv.get("oos")
        out[name] = DrbdStatus(
            name, up=True, role=role or "Unknown", peer_role=peer_role or "Unknown",
            disk=disk or "DUnknown", peer_disk=peer_disk or "DUnknown",
            connection=connection, replication=replication,
            sync_percent=pct, sync_eta_s=eta, sync_speed_kib=speed,
            out_of_sync_kib=int(oos) if oos and oos.isdigit() else 0,
            suspended=suspended, minor=minor, resync_suspended=resync_suspended,
        )
    return out


def proc_drbd_version(text: str) -> str | None:
    """``version: 8.4.11 (api:1/proto:86-101)`` -> "8.4.11"."""
    m = re.search(r"^version:\s*(\S+)", text, re.M)
    return m.group(1) if m else None


# ---------------------------------------------------------------- legacy events (8.4)

_LEGACY = re.compile(r"^\s*\d+\s+(\w\w)\s+(\d+),([^\[\s]+)\[\d+\]\s*(.*)$")


def parse_legacy_event(line: str) -> DrbdStatus | None:
    """One ``drbdsetup events`` (8.4) ST line -> status; other lines -> None."""
    m = _LEGACY.match(line)
    if not m or m.group(1) != "ST":
        return None
    minor, name, body = int(m.group(2)), m.group(3), m.group(4)
    kv = dict(_KV.findall(body))
    cs = kv.get("cs", "StandAlone")
    if cs == "Unconfigured":
        return DrbdStatus(name, up=False, minor=minor)
    role, _, peer_role = kv.get("ro", "Unknown/Unknown").partition("/")
    disk, _, peer_disk = kv.get("ds", "DUnknown/DUnknown").partition("/")
    connection, replication = map_cs(cs)
    flags = next((w for w in body.strip("{} ").split() if re.fullmatch(r"[a-z-]{4,6}", w)), "")
    return DrbdStatus(name, up=True, role=role, peer_role=peer_role or "Unknown", disk=disk,
                      peer_disk=peer_disk or "DUnknown", connection=connection,
                      replication=replication, suspended=flags[:1] == "s", minor=minor)


# ---------------------------------------------------------------- events2

_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\S+\s+")
_VERBS = ("exists", "create", "change", "destroy", "call", "response")


@dataclass
class _Res:
    """Mutable per-resource state inside the stream (objects by key)."""

    name: str
    role: str = "Unknown"
    suspended: bool = False
    devices: dict[int, dict[str, str]] = dataclasses.field(default_factory=dict)  # volume ->
    connections: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)  # peer-node-id ->
    peer_devices: dict[tuple[str, int], dict[str, str]] = dataclasses.field(default_factory=dict)
    split_brain: bool = False


def _split(line: str) -> tuple[str, str, dict[str, str]] | None:
    line = _TIMESTAMP.sub("", line.strip())
    parts = line.split()
    if len(parts) < 2 or parts[0] not in _VERBS:
        return None
    fields: dict[str, str] = {}
    for p in parts[2:]:
        k, sep, v = p.partition(":")
        if sep:
            fields[k] = v
    return parts[0], parts[1], fields


def _yes(v: str | None) -> bool:
    return v not in (None, "no", "false")


class Events2Stream:
    """State of ``drbdsetup events2`` output, fed one line at a time.

    ``feed(line)`` returns the statuses that line changed: nothing during the
    initial dump, every known resource at ``exists -``, then one status per
    change/create/destroy line.  A ``call helper ... helper:split-brain``
    marks the resource split-brain until a handshake with the peer succeeds
    again (replication leaves Off): a StandAlone after a split brain looks
    like any other StandAlone.
    """

    def __init__(self) -> None:
        self._res: dict[str, _Res] = {}
        self._sticky_split_brain: set[str] = set()
        self.initial_done = False

    def reset(self) -> None:
        """A new events2 process: its initial dump replaces what we knew."""
        sb = {n for n, r in self._res.items() if r.split_brain}
        self._res = {}
        self._sticky_split_brain = sb
        self.initial_done = False

    def statuses(self) -> dict[str, DrbdStatus]:
        return {n: self._status(r) for n, r in self._res.items()}

    def status(self, name: str) -> DrbdStatus:
        r = self._res.get(name)
        return self._status(r) if r else DrbdStatus(name, up=False)

    def feed(self, line: str) -> list[DrbdStatus]:
        parsed = _split(line)
        if parsed is None:
            return []
        verb, obj, f = parsed
        if verb == "exists" and obj == "-":
            self.initial_done = True
            return list(self.statuses().values())
        name = f.get("name")
        if not name:
            return []
        if verb in ("call", "response"):
            if obj == "helper" and f.get("helper") == "split-brain" and verb == "call":
                self._get(name).split_brain = True
                return self._emit(name)
            return []
        if verb == "destroy" and obj == "resource":
            self._res.pop(name, None)
            self._sticky_split_brain.discard(name)
            return [DrbdStatus(name, up=False)] if self.initial_done else []
        r = self._get(name)
        if name in self._sticky_split_brain:
            r.split_brain = True
            self._sticky_split_brain.discard(name)
        peer = f.get("peer-node-id", "0")
        vol = int(_num(f.get("volume")) or 0)
        if obj == "resource":
            if "role" in f:
                r.role = f["role"]
            if "suspended" in f:
                r.suspended = _yes(f["suspended"])
        elif obj == "device":
            if verb == "destroy":
                r.devices.pop(vol, None)
            else:
                r.devices.setdefault(vol, {}).update(f)
        elif obj == "connection":
            if verb == "destroy":
                r.connections.pop(peer, None)
            else:
                r.connections.setdefault(peer, {}).update(f)
        elif obj == "peer-device":
            if verb == "destroy":
                r.peer_devices.pop((peer, vol), None)
            else:
                r.peer_devices.setdefault((peer, vol), {}).update(f)
                if f.get("replication", "Off") != "Off":
                    r.split_brain = False  # the handshake passed: resolved
        else:  # path and future objects: nothing we report
            return []
        return self._emit(name)

    def _get(self, name: str) -> _Res:
        if name not in self._res:
            self._res[name] = _Res(name)
        return self._res[name]

    def _emit(self, name: str) -> list[DrbdStatus]:
        return [self._status(self._res[name])] if self.initial_done else []

    @staticmethod
    def _status(r: _Res) -> DrbdStatus:
        dev = r.devices[min(r.devices)] if r.devices else {}
        conn_key = min(r.connections) if r.connections else None
        conn = r.connections.get(conn_key, {}) if conn_key is not None else {}
        pds = sorted(k for k in r.peer_devices if k[0] == conn_key) if conn_key is not None else []
        pd = r.peer_devices[pds[0]] if pds else {}
        connection = conn.get("connection", "StandAlone")
        connected = connection == "Connected"
        # DRBD sends one line per object for one state change: between the
        # connection line and the peer-device line, do not report a
        # replication or peer disk that a lost connection cannot have.
        replication = pd.get("replication", "Off") if connected else "Off"
        peer_disk = pd.get("peer-disk", "DUnknown") if conn else "DUnknown"
        if not connected and peer_disk not in ("Outdated", "Inconsistent"):
            peer_disk = "DUnknown"
        pct = eta = speed = None
        if replication in SYNCING:
            pct, eta, speed = _num(pd.get("done")), _num(pd.get("eta")), _num(pd.get("dbdt1"))
        minor = dev.get("minor")
        return DrbdStatus(
            r.name, up=True, role=r.role,
            peer_role=conn.get("role", "Unknown") if connected else "Unknown",
            disk=dev.get("disk", "Diskless") if r.devices else "Diskless",
            peer_disk=peer_disk,
            connection=connection, replication=replication,
            sync_percent=pct, sync_eta_s=eta, sync_speed_kib=speed,
            out_of_sync_kib=int(_num(pd.get("out-of-sync")) or 0) if conn else 0,
            suspended=r.suspended, split_brain=r.split_brain,
            minor=int(minor) if minor and minor.isdigit() else None,
            resync_suspended=pd.get("resync-suspended", "no") if conn else "no",
        )


def parse_events2(text: str) -> dict[str, DrbdStatus]:
    """``drbdsetup events2 --now`` output -> status per resource."""
    stream = Events2Stream()
    for line in text.splitlines():
        stream.feed(line)
    return stream.statuses()


def merge_progress(status: DrbdStatus, proc: DrbdStatus | None) -> DrbdStatus:
    """Fill sync progress/oos that events2 lacked (8.4 module without
    --statistics) from the /proc/drbd view of the same resource."""
    if proc is None or not proc.up:
        return status
    changes: dict[str, object] = {}
    for f in ("sync_percent", "sync_eta_s", "sync_speed_kib"):
        if getattr(status, f) is None and getattr(proc, f) is not None:
            changes[f] = getattr(proc, f)
    if not status.out_of_sync_kib and proc.out_of_sync_kib:
        changes["out_of_sync_kib"] = proc.out_of_sync_kib
    if status.minor is None and proc.minor is not None:
        changes["minor"] = proc.minor
    return dataclasses.replace(status, **changes) if changes else status


# ---------------------------------------------------------------- failures


class FailureKind(str, Enum):
    NO_UTILS = "no_utils"  # drbdadm/drbdsetup not installed
    NO_MODULE = "no_module"  # kernel module missing
    NOT_LOADED = "not_loaded"  # kernel module not loaded (drbdsetup cannot reach it)
    NOT_UP = "not_up"  # (127) Device minor not allocated / unknown resource
    NOT_CONFIGURED = "not_configured"  # resource not in drbd.conf for this host
    NEED_UPTODATE = "need_uptodate"  # (-2) Need access to UpToDate data
    HELD_OPEN = "held_open"  # (-12) Device is held open by someone
    MULTIPLE_PRIMARIES = "multiple_primaries"  # (-1) Multiple primaries not allowed by config
    NO_METADATA = "no_metadata"  # no valid meta data on the backing disk
    NEEDS_CONFIRMATION = "needs_confirmation"  # create-md found data and asks 'yes'
    TIMEOUT = "timeout"
    OTHER = "other"


@dataclass(frozen=True)
class DrbdFailure:
    kind: FailureKind
    code: int | None = None  # DRBD's own (N) code
    text: str = ""  # DRBD's own line, e.g. "State change failed: (-2) Need access to UpToDate data"


_CODE = re.compile(r"(?:Failure|State change failed):\s*\((-?\d+)\)\s*(.*)")


def classify(output: str, returncode: int | None, *, errno: int | None = None,
             timed_out: bool = False, command: Sequence[str] = (),
             module_loaded: bool | None = None) -> DrbdFailure:
    """What a failed drbdadm/drbdsetup/modprobe run means.  ``module_loaded``
    (/proc/drbd exists) disambiguates drbdadm's bare "exit code 20"."""
    prog = command[0].rsplit("/", 1)[-1] if command else ""
    if timed_out:
        return DrbdFailure(FailureKind.TIMEOUT, None, "timed out")
    if errno == 2 or returncode == 127 and "not found" in output:
        if prog == "modprobe":
            return DrbdFailure(FailureKind.OTHER, None, "modprobe not found (package kmod)")
        return DrbdFailure(FailureKind.NO_UTILS, None, output.strip().splitlines()[-1] if output.strip() else "")
    low = output.lower()
    if "could not connect to 'drbd' generic netlink family" in low:
        return DrbdFailure(FailureKind.NOT_LOADED, None, "the drbd generic netlink family is absent")
    if "module drbd not found" in low or "failed to modprobe drbd" in low:
        line = next((x for x in output.splitlines() if "drbd" in x.lower()), output.strip())
        return DrbdFailure(FailureKind.NO_MODULE, None, line.strip())
    if module_loaded is False and "terminated with exit code 20" in output:
        # `drbdadm up` without the module only says: Command 'drbdsetup
        # new-resource r0 0' terminated with exit code 20 (fixtures/no-module.txt)
        return DrbdFailure(FailureKind.NO_MODULE, None, "drbdsetup could not reach the drbd module, "
                                                        "which is not loaded")
    m = _CODE.search(output)
    if m:
        code, text = int(m.group(1)), m.group(0).strip()
        kind = {127: FailureKind.NOT_UP, 158: FailureKind.NOT_UP, -2: FailureKind.NEED_UPTODATE,
                -12: FailureKind.HELD_OPEN, -1: FailureKind.MULTIPLE_PRIMARIES}.get(code, FailureKind.OTHER)
        return DrbdFailure(kind, code, text)
    if "no valid meta data found" in low or "no valid meta-data signature found" in low:
        return DrbdFailure(FailureKind.NO_METADATA, None, "No valid meta data found")
    if "not defined in your config" in low:
        line = next(x for x in output.splitlines() if "not defined in your config" in x.lower())
        return DrbdFailure(FailureKind.NOT_CONFIGURED, None, line.strip())
    if "no such resource" in low or "unknown resource" in low:
        return DrbdFailure(FailureKind.NOT_UP, None, "unknown resource")
    if "need to type 'yes' to confirm" in low or "do you want to proceed" in low \
            or "operation canceled" in low or "operation cancelled" in low:
        return DrbdFailure(FailureKind.NEEDS_CONFIRMATION, None, "confirmation needed")
    last = output.strip().splitlines()[-1] if output.strip() else f"exit {returncode}"
    return DrbdFailure(FailureKind.OTHER, None, last)


_OPENED_BY = re.compile(r"opened by (\S+) \(pid (\d+)\)")


def kernel_holders(output: str) -> list[str]:
    """DRBD 9 names the openers in its refusal: ``/dev/drbd1 opened by mount
    (pid 3035) at ...`` -> ["pid 3035 (mount)"]."""
    return [f"pid {pid} ({name})" for name, pid in _OPENED_BY.findall(output)]


MODULE_PACKAGES = ("the DRBD kernel module: on Debian/Ubuntu it is in-tree, shipped with the kernel "
                   "(linux-image-*; cloud kernels may lack it); on EL install kmod-drbd84 or "
                   "kmod-drbd9x from ELRepo")


def promotable_hint(st: DrbdStatus | None) -> str:
    """What would make this node promotable, from its current status."""
    if st is None or not st.up:
        return "the resource is not up: run drbdadm up first"
    d, pd = st.disk, st.peer_disk
    if d == "Diskless":
        return "no backing disk is attached (Diskless): attach it (drbdadm attach) or fix the disk"
    if d == "Inconsistent":
        if st.replication in SYNCING:
            pct = f" ({st.sync_percent:g}% done)" if st.sync_percent is not None else ""
            return f"it is being resynced from the peer{pct}: wait until it is UpToDate"
        if st.connected and pd == "Inconsistent":
            return ("both disks are Inconsistent (no initial sync yet): run `hasupctl drbd init "
                    f"{st.resource} --this-node-wins` on the node whose data should win")
        return ("connect the peer so it resyncs this disk, or force it (`--force`) only if the "
                "peer's data is lost")
    if d == "Outdated":
        return ("the peer has newer data: connect to it and let it resync this disk, or force it "
                "(`--force`) only if the peer's data is lost")
    if d == "Consistent":
        return ("the peer is not known to be Outdated: connect to the peer, or configure "
                "`fencing resource-only` with the hasupd-drbd-handler fence-peer handler so the "
                "peer gets outdated")
    if d == "UpToDate" and pd == "UpToDate" and not st.connected:
        return "the fence-peer handler refused (the peer may be Primary): check the peer"
    return "promotion needs an UpToDate disk, or a Consistent one with the peer Outdated"


def explain(failure: DrbdFailure, resource: str, *, action: str = "",
            status: DrbdStatus | None = None, holders: Iterable[str] = (),
            minor: int | None = None, program: str = "drbdadm", kernel: str = "") -> str:
    """One sentence naming the real cause of a failed DRBD command."""
    what = f"{action} of {resource}" if action else resource
    k = failure.kind
    if k is FailureKind.NO_UTILS:
        return (f"{program} is not installed: install the drbd-utils package "
                f"(it provides drbdadm and drbdsetup)")
    if k is FailureKind.NO_MODULE:
        on = f" for kernel {kernel}" if kernel else ""
        return f"the drbd kernel module is missing{on} ({failure.text}): install {MODULE_PACKAGES}"
    if k is FailureKind.NOT_LOADED:
        return f"{what} failed: the drbd kernel module is not loaded (modprobe drbd)"
    if k is FailureKind.NOT_UP:
        m = f" (minor {minor} does not exist yet)" if minor is not None else ""
        return (f"{what} failed: resource {resource} is not up{m}: run `drbdadm up {resource}` "
                f"first; this is not a minor_count problem (minor_count does not limit minors "
                f"on 8.4.11)")
    if k is FailureKind.NOT_CONFIGURED:
        return (f"resource {resource} is not defined in the DRBD configuration for this host "
                f"({failure.text}): check /etc/drbd.d/{resource}.res and that its `on` name "
                f"matches `uname -n`")
    if k is FailureKind.NEED_UPTODATE:
        disk = status.disk if status and status.up else "unknown"
        return (f"{what} refused: DRBD needs UpToDate data but the local disk is {disk}"
                f" (peer disk {status.peer_disk if status else 'DUnknown'}); "
                f"{promotable_hint(status)}")
    if k is FailureKind.HELD_OPEN:
        held = ", ".join(holders)
        by = f"by {held}" if held else "by an unknown user (no process or mount found)"
        return f"{what} refused: the DRBD device is held open {by}: stop them or unmount first"
    if k is FailureKind.MULTIPLE_PRIMARIES:
        return (f"{what} refused: the peer is Primary and connected (single-primary): demote "
                f"the peer first")
    if k is FailureKind.NO_METADATA:
        return (f"resource {resource} has no DRBD metadata on its backing disk: create it with "
                f"`hasupctl drbd init {resource}` (drbdadm create-md)")
    if k is FailureKind.NEEDS_CONFIRMATION:
        return (f"drbdadm create-md for {resource} wants a confirmation: the backing disk holds "
                f"data or metadata; rerun with force if it may be overwritten")
    if k is FailureKind.TIMEOUT:
        return f"{what} timed out"
    return f"{what} failed: {failure.text}"


def format_progress(st: DrbdStatus) -> str:
    """One line for `hasupctl drbd init`/status: role, disks, sync progress."""
    if not st.up:
        return f"{st.resource}: not up"
    line = (f"{st.resource}: {st.role}/{st.peer_role} {st.disk}/{st.peer_disk} "
            f"{st.connection}" + (f" {st.replication}" if st.replication not in ("Off", "Established") else ""))
    if st.sync_percent is not None:
        line += f" {st.sync_percent:.1f}%"
        if st.sync_speed_kib is not None:
            line += f" {st.sync_speed_kib:,.0f} KiB/s"
        if st.sync_eta_s is not None:
            eta = int(st.sync_eta_s)
            line += f" ETA {eta // 3600}:{eta % 3600 // 60:02d}:{eta % 60:02d}"
    if st.resync_suspended not in ("no", ""):
        line += f" (paused: {st.resync_suspended})"
    if st.split_brain:
        line += " SPLIT BRAIN"
    if not st.backing_disk_present:
        line += " (backing disk missing)"
    return line
