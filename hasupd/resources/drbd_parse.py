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

import contextlib
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


@dataclass(frozen=True)
class DrbdVersions:
    """Which DRBD runs here: the kernel module's and drbd-utils' versions."""

    kernel: str = ""  # "8.4.11", "9.2.12"; "" = not known (module not loaded)
    utils: str = ""  # drbd-utils (drbdadm) version, "9.22.0"

    @property
    def major(self) -> int | None:
        head = self.kernel.split(".", 1)[0]
        return int(head) if head.isdigit() else None

    def at_least(self, kernel: tuple[int, ...], utils: tuple[int, ...]) -> bool:
        return _vtuple(self.kernel) >= kernel and _vtuple(self.utils) >= utils

    @property
    def secondary_force(self) -> bool:
        """``drbdadm secondary --force`` exists (DRBD 9.1.7+, drbd-utils 9.21+)."""
        return self.at_least((9, 1, 7), (9, 21))


def _vtuple(v: str) -> tuple[int, ...]:
    nums = re.findall(r"\d+", v.split("-", 1)[0])
    return tuple(int(x) for x in nums[:3]) if nums else (0,)


def version_from_code(code: int) -> str:
    """``0x09020c`` -> "9.2.12" (DRBD_KERNEL_VERSION_CODE / DRBDADM_VERSION_CODE)."""
    return f"{code >> 16}.{code >> 8 & 0xff}.{code & 0xff}"


def parse_drbdadm_version(text: str) -> DrbdVersions:
    """``drbdadm --version``: DRBD_KERNEL_VERSION_CODE=0x08040b (0x000000 and
    DRBD_KERNEL_VERSION=0 when the module is not loaded), DRBDADM_VERSION=9.22.0
    (fixtures/drbdadm-version.txt)."""
    kv = dict(m.groups() for m in re.finditer(r"^(\w+)=(.*)$", text, re.M))
    kernel = kv.get("DRBD_KERNEL_VERSION", "").replace("\\", "")
    if kernel in ("", "0"):  # 9.22 without the module prints DRBD_KERNEL_VERSION=0
        try:
            code = int(kv.get("DRBD_KERNEL_VERSION_CODE", "0"), 16)
        except ValueError:
            code = 0
        kernel = version_from_code(code) if code else ""
    utils = kv.get("DRBDADM_VERSION", "")
    if not utils and kv.get("DRBDADM_VERSION_CODE"):
        with contextlib.suppress(ValueError):
            utils = version_from_code(int(kv["DRBDADM_VERSION_CODE"], 16))
    return DrbdVersions(kernel, utils)


def auto_promote(dump: str) -> bool | None:
    """From ``drbdadm dump RES``: is auto-promote on?  DRBD 9's default is yes;
    None when the text is no DRBD 9 resource dump at all."""
    if not re.search(r"^\s*resource\s", dump, re.M):
        return None
    m = re.search(r"\bauto-promote\s+(\S+?);", dump)
    return True if m is None else m.group(1) not in ("no", "false", "off")


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
_VERBS = ("exists", "create", "change", "destroy", "call", "response", "rename")
MIB = 1024  # KiB per MiB: drbdsetup prints dbdt1 (resync speed) in MiB/s (sectors/ms * 1000 / 2048)


@dataclass
class _Res:
    """Mutable per-resource state inside the stream (objects by key).

    Connections are kept per peer (peer-node-id, or the peer's name in
    ``drbdadm status``), devices per volume, peer devices per (peer, volume)."""

    name: str
    role: str = "Unknown"
    suspended: str = "no"
    fields: dict[str, str] = dataclasses.field(default_factory=dict)  # may_promote, promotion_score ...
    devices: dict[int, dict[str, str]] = dataclasses.field(default_factory=dict)  # volume ->
    connections: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)  # peer ->
    peer_devices: dict[tuple[str, int], dict[str, str]] = dataclasses.field(default_factory=dict)
    split_brain: bool = False


def _split(line: str) -> tuple[str, str, dict[str, str]] | None:
    line = _TIMESTAMP.sub("", line.strip())
    parts = line.split()
    if len(parts) < 2 or parts[0] not in _VERBS:
        return None
    return parts[0], parts[1], _fields(parts[2:])


def _fields(words: Iterable[str]) -> dict[str, str]:
    """``key:value`` words; ``--diff`` output's ``key:old->new`` keeps the new value."""
    fields: dict[str, str] = {}
    for p in words:
        k, sep, v = p.partition(":")
        if sep:
            fields[k] = v.rpartition("->")[2]
    return fields


def _yes(v: str | None) -> bool:
    return v not in (None, "no", "false")


def _bool(v: str | None) -> bool | None:
    return None if v is None else v == "yes"


def join_wrapped(text: str) -> list[str]:
    """Lines of events2 output; a line that starts with white space continues
    the previous one (drbdsetup never starts a line so; the user guide wraps
    its examples that way)."""
    lines: list[str] = []
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and lines and line.strip():
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


def _data_peer(r: _Res) -> str | None:
    """The peer shown in the status: a peer with a disk (a ``peer-client:yes``
    peer, a diskless tie-breaker, never counts as a data copy), the lowest
    node id first; a client peer only when there is no other."""
    def client(peer: str) -> bool:
        pds = [v for (p, _vol), v in r.peer_devices.items() if p == peer]
        return bool(pds) and all(_yes(v.get("peer-client")) for v in pds)

    def key(peer: str) -> tuple[bool, int, str]:
        return client(peer), int(peer) if peer.isdigit() else 1 << 30, peer

    return min(r.connections, key=key) if r.connections else None


def _status_of(r: _Res) -> DrbdStatus:
    dev = r.devices[min(r.devices)] if r.devices else {}
    conn_key = _data_peer(r)
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
        if speed is not None:
            speed = round(speed * MIB, 2)
    minor = dev.get("minor")
    quorums = [_bool(d.get("quorum")) for d in r.devices.values()]
    quorum = None if all(q is None for q in quorums) else all(q is not False for q in quorums)
    score = r.fields.get("promotion_score")
    return DrbdStatus(
        r.name, up=True, role=r.role,
        peer_role=conn.get("role", "Unknown") if connected else "Unknown",
        disk=dev.get("disk", "Diskless") if r.devices else "Diskless",
        peer_disk=peer_disk,
        connection=connection, replication=replication,
        sync_percent=pct, sync_eta_s=eta, sync_speed_kib=speed,
        out_of_sync_kib=int(_num(pd.get("out-of-sync")) or 0) if conn else 0,
        suspended=_yes(r.suspended), split_brain=r.split_brain,
        minor=int(minor) if minor and minor.isdigit() else None,
        resync_suspended=pd.get("resync-suspended", "no") if conn else "no",
        may_promote=_bool(r.fields.get("may_promote")),
        promotion_score=int(score) if score is not None and score.lstrip("-").isdigit() else None,
        quorum=quorum, suspended_reason="" if r.suspended == "no" else r.suspended,
        peer_client=_yes(pd.get("peer-client")) if conn else False,
    )


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
        return {n: _status_of(r) for n, r in self._res.items()}

    def status(self, name: str) -> DrbdStatus:
        r = self._res.get(name)
        return _status_of(r) if r else DrbdStatus(name, up=False)

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
        if verb == "rename":
            new = f.get("new_name")
            if obj != "resource" or not new or name not in self._res:
                return []
            r = self._res.pop(name)
            r.name = new
            self._res[new] = r
            return ([DrbdStatus(name, up=False)] + self._emit(new)) if self.initial_done else []
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
                r.suspended = f["suspended"]
            r.fields.update(f)
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
        return [_status_of(self._res[name])] if self.initial_done else []


def parse_events2(text: str) -> dict[str, DrbdStatus]:
    """``drbdsetup events2 --now`` output -> status per resource."""
    stream = Events2Stream()
    for line in join_wrapped(text):
        stream.feed(line)
    return stream.statuses()


# ---------------------------------------------------------------- drbdadm status

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_DEVICE_KEYS = frozenset(("disk", "minor", "client", "quorum", "open", "backing_dev"))
_PEER_DEVICE_KEYS = frozenset(("peer-disk", "replication", "done", "peer-client", "resync-suspended"))


def parse_status(text: str) -> dict[str, DrbdStatus]:
    """``drbdadm status`` / ``drbdsetup status [--verbose] [--statistics]``
    (colours allowed) -> status per resource.

    8.4 (drbdsetup-84) names the peer ``peer`` and always prints the
    replication; 9 names it by host, prints ``connection:`` only when not
    Connected and ``replication:`` only when not Established, and may add
    ``quorum:no`` (device line) or ``suspended:quorum`` (resource line).
    A line is placed by its keys, not its indentation (copies in guides
    often lose the indentation)."""
    out: dict[str, _Res] = {}
    r: _Res | None = None
    peer: str | None = None
    last: dict[str, str] | None = None  # where continuation (statistics) lines go
    for raw in _ANSI.sub("", text).splitlines():
        if not raw.strip():
            continue
        words = raw.split()
        if not raw[:1].isspace():
            r = out.setdefault(words[0], _Res(words[0]))
            f = _fields(words[1:])
            r.role = f.get("role", r.role)
            r.suspended = f.get("suspended", r.suspended)
            r.fields.update(f)
            peer, last = None, r.fields
            continue
        if r is None:
            continue
        if ":" not in words[0]:  # a peer: "peer role:Secondary" (8.4), "bob role:Primary" (9)
            peer = words[0]
            f = _fields(words[1:])
            if "connection" not in f:  # 9 prints connection: only when it is not Connected
                f["connection"] = "Connected" if "role" in f else "StandAlone"
            last = r.connections.setdefault(peer, {})
            last.update(f)
            continue
        f = _fields(words)
        vol = int(_num(f.get("volume")) or 0)
        if peer is not None and f.keys() & _PEER_DEVICE_KEYS:
            last = r.peer_devices.setdefault((peer, vol), {})
        elif f.keys() & _DEVICE_KEYS:
            last, peer = r.devices.setdefault(vol, {}), None
        elif last is None:
            continue
        last.update(f)
    for r in out.values():
        for (p, _vol), pd in r.peer_devices.items():
            if "replication" not in pd and r.connections.get(p, {}).get("connection") == "Connected":
                pd["replication"] = "Established"  # 9 omits it while Established
    return {n: _status_of(r) for n, r in out.items()}


def parse_status_json(text: str) -> dict[str, DrbdStatus]:
    """``drbdsetup status --json`` (DRBD 9 only; 8.4's drbdsetup refuses the
    option) -> status per resource.  Raises ValueError on anything else."""
    import json

    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("drbdsetup status --json: expected a list of resources")

    def yn(v: object) -> str:
        return "yes" if v is True else "no"

    out: dict[str, DrbdStatus] = {}
    for res in data:
        r = _Res(str(res["name"]), role=str(res.get("role", "Unknown")))
        reasons = [k for k in ("user", "no-data", "fencing", "quorum") if res.get(f"suspended-{k}")]
        r.suspended = ",".join(reasons) if reasons else ("user" if res.get("suspended") else "no")
        for dev in res.get("devices", []):
            r.devices[int(dev.get("volume", 0))] = {
                "disk": str(dev.get("disk-state", "DUnknown")), "minor": str(dev.get("minor", "")),
                "client": yn(dev.get("client")), "quorum": yn(dev.get("quorum", True))}
        for conn in res.get("connections", []):
            p = str(conn.get("peer-node-id", conn.get("name", "0")))
            r.connections[p] = {"connection": str(conn.get("connection-state", "StandAlone")),
                                "role": str(conn.get("peer-role", "Unknown")),
                                "conn-name": str(conn.get("name", ""))}
            for pd in conn.get("peer_devices", []):
                f = {"replication": str(pd.get("replication-state", "Off")),
                     "peer-disk": str(pd.get("peer-disk-state", "DUnknown")),
                     "peer-client": yn(pd.get("peer-client")),
                     "resync-suspended": str(pd.get("resync-suspended", "no")),
                     "out-of-sync": str(pd.get("out-of-sync", 0))}
                if "percent-resync-done" in pd:
                    f["done"] = str(pd["percent-resync-done"])
                if "db1/dt1 [MiB/s]" in pd:
                    f["dbdt1"] = str(pd["db1/dt1 [MiB/s]"])
                if "estimated-seconds-to-finish" in pd:
                    f["eta"] = str(pd["estimated-seconds-to-finish"])
                r.peer_devices[(p, int(pd.get("volume", 0)))] = f
        out[r.name] = _status_of(r)
    return out


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
                "`fencing resource-and-stonith` with the hasupd-drbd-handler fence-peer handler so the "
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
