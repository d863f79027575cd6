"""What DRBD 8.4.11 + drbd-utils 9.22 print, from a resource's state.  Pure.

Formats copied from the captures in shared/fixtures/drbd/ (/proc/drbd,
``drbdsetup events2``, ``drbdadm status/role/cstate/dstate``, refusals).
"""

from __future__ import annotations

from dataclasses import dataclass, field

VERSION = "version: 8.4.11 (api:1/proto:86-101)"
SRCVERSION = "srcversion: B536C32A3EADA868561EFD9"
DRBDADM_VERSION = (
    "DRBDADM_BUILDTAG=GIT-hash:\\ 409097fe02187f83790b88ac3e0d94f3c167adab\\ reproducible\\ build\\,"
    "\\ 2023-01-09\\ 14:51:18\nDRBDADM_API_VERSION=1\nDRBD_KERNEL_VERSION_CODE=0x08040b\n"
    "DRBDADM_VERSION_CODE=0x091600\nDRBDADM_VERSION=9.22.0\n")

SYNC_STATES = ("SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT")


@dataclass
class View:
    """One resource (one volume) as one node sees it."""
    name: str
    minor: int
    role: str = "Secondary"
    disk: str = "Diskless"
    conn: str = "StandAlone"  # events2 names: StandAlone Unconnected Connecting Connected ...
    repl: str = "Off"  # Off Established SyncSource SyncTarget PausedSyncS PausedSyncT WFBitMapS ...
    peer_role: str = "Unknown"
    peer_disk: str = "DUnknown"
    protocol: str = "C"
    user_isp: bool = False
    peer_isp: bool = False
    al_suspended: bool = False
    size_kib: int = 0
    counters: dict = field(default_factory=dict)  # ns nr dw dr al bm
    oos_kib: int = 0
    sync_total_kib: int = 0
    speed_kib: int = 0
    want_kib: int = 0
    # what only DRBD 9 prints (render9): the peer by name and node id, paths, open, forced I/O errors
    peer_name: str = "peer"
    peer_node_id: int = 0
    local_addr: str = ""
    peer_addr: str = ""
    backing_dev: str = "none"
    open: bool = False
    fail_io: bool = False

    @property
    def connected(self) -> bool:
        return self.conn == "Connected"


# ---------------------------------------------------------------- /proc/drbd


def cs84(v: View) -> str:
    """8.4's single connection state (cs:) from the events2 pair."""
    if v.conn == "Connected":
        return "Connected" if v.repl in ("Established", "Off") else v.repl
    if v.conn == "Connecting":
        return "WFConnection"
    return v.conn


def _thousands(n: int) -> str:
    return f"{n:,}"


def sync_done_permille(v: View) -> int:
    total = max(v.sync_total_kib, 1)
    return max(0, min(1000, 1000 - (v.oos_kib * 1000) // (total + 1)))


def _progress(v: View) -> str:
    res = sync_done_permille(v)
    x = res // 50
    bar = "=" * max(0, x - 1) + ">" + "." * (20 - x)
    if v.sync_total_kib > (4 << 20):  # more than a few GB: MiB
        amount = f"({v.oos_kib >> 10}/{v.sync_total_kib >> 10})M"
    else:
        amount = f"({v.oos_kib}/{v.sync_total_kib})K"
    speed = max(v.speed_kib, 1)
    secs = v.oos_kib // speed
    want = f" want: {_thousands(v.want_kib)}" if cs84(v) in ("SyncTarget", "PausedSyncT") else ""
    return (f"\t[{bar}] sync'ed:{res // 10:3d}.{res % 10}% {amount}\n"
            f"\tfinish: {secs // 3600}:{secs // 60 % 60:02d}:{secs % 60:02d} "
            f"speed: {_thousands(v.speed_kib)} ({_thousands(v.speed_kib)}){want} K/sec\n")


def proc_drbd(views: list[View]) -> str:
    if not views:
        return f"{VERSION}\n{SRCVERSION}\n"
    out = [f"{VERSION}\n{SRCVERSION} \n"]
    prev = -1
    for v in sorted(views, key=lambda v: v.minor):
        if prev != v.minor - 1:
            out.append("\n")
        prev = v.minor
        proto = v.protocol if v.conn != "StandAlone" else " "
        flags = ("r" + "-" + ("p" if v.peer_isp else "-") + ("u" if v.user_isp else "-") + "-"
                 + ("s" if v.al_suspended else "-"))
        c = v.counters
        out.append(f"{v.minor:2d}: cs:{cs84(v)} ro:{v.role}/{v.peer_role} ds:{v.disk}/{v.peer_disk} "
                   f"{proto} {flags}\n"
                   f"    ns:{c.get('ns', 0)} nr:{c.get('nr', 0)} dw:{c.get('dw', 0)} dr:{c.get('dr', 0)} "
                   f"al:{c.get('al', 0)} bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:{v.oos_kib}\n")
        if cs84(v) in ("SyncSource", "SyncTarget"):  # not while paused
            out.append(_progress(v))
    return "".join(out)


# ---------------------------------------------------------------- events2

OBJECTS = ("resource", "connection", "device", "peer-device")


def objects(v: View) -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]]:
    """Per events2 object: (identifying keys, state fields, statistics fields)."""
    conn_keys = [("name", v.name), ("peer-node-id", "0"), ("conn-name", "peer")]
    syncing = v.repl in SYNC_STATES
    susp = "user" if v.user_isp else "peer" if v.peer_isp else "no"
    c = v.counters
    pd_stats = [("received", str(c.get("nr", 0))), ("sent", str(c.get("ns", 0))),
                ("out-of-sync", str(v.oos_kib)), ("pending", "0"), ("unacked", "0")]
    if syncing:
        pd_stats.append(("done", f"{sync_done_permille(v) / 10:.2f}"))
    return {
        "resource": ([("name", v.name)], [("role", v.role), ("suspended", "no")],
                     [("write-ordering", "flush")]),
        "connection": (conn_keys, [("connection", v.conn), ("role", v.peer_role)],
                       [("congested", "no")]),
        "device": ([("name", v.name), ("volume", "0"), ("minor", str(v.minor))], [("disk", v.disk)],
                   [("size", str(v.size_kib)), ("read", str(c.get("dr", 0))),
                    ("written", str(c.get("dw", 0))), ("al-writes", str(c.get("al", 0))),
                    ("bm-writes", "0"), ("upper-pending", "0"), ("lower-pending", "0"),
                    ("al-suspended", "yes" if v.al_suspended else "no"), ("blocked", "no")]),
        "peer-device": (conn_keys + [("volume", "0")],
                        [("replication", v.repl), ("peer-disk", v.peer_disk),
                         ("resync-suspended", susp)], pd_stats),
    }


def _kv(pairs) -> str:
    return " ".join(f"{k}:{val}" for k, val in pairs)


def events2_now(views: list[View], statistics: bool = False) -> list[str]:
    """The ``exists`` dump (without the final ``exists -``)."""
    lines = []
    for v in views:
        objs = objects(v)
        for obj in OBJECTS:
            keys, fields, stats = objs[obj]
            if v.conn == "StandAlone" and obj in ("connection", "peer-device"):
                keys = [kv for kv in keys if kv[0] != "conn-name"]  # 8.4: no conn-name when StandAlone
            pairs = keys + fields + (stats if statistics else [])
            lines.append(f"exists {obj} {_kv(pairs)}")
    return lines


def event_line(verb: str, obj: str, keys, fields, stats=None) -> str:
    pairs = list(keys) + list(fields) + list(stats or [])
    return f"{verb} {obj} {_kv(pairs)}".rstrip()


# ---------------------------------------------------------------- drbdadm status

_BAD_LOCAL, _BAD = "1;31", "31"


def _c(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and code else text


def _role_color(role: str, local: bool) -> str:
    return ("1;36" if local else "36") if role == "Primary" else ""


def _disk_color(disk: str, local: bool) -> str:
    if disk == "UpToDate":
        return "1;32" if local else "32"
    if disk in ("Inconsistent", "Outdated", "Diskless", "Failed", "DUnknown"):
        return _BAD_LOCAL if local else _BAD
    if disk == "Consistent":
        return "1" if local else ""
    return ""


def _repl_color(repl: str) -> str:
    if repl in ("SyncTarget", "PausedSyncT", "WFBitMapT", "WFSyncUUID"):
        return _BAD_LOCAL
    if repl in ("SyncSource", "PausedSyncS", "WFBitMapS"):
        return _BAD
    return ""


def status(v: View, color: bool) -> str:
    out = [f"{v.name} role:{_c(v.role, _role_color(v.role, True), color)}\n",
           f"  disk:{_c(v.disk, _disk_color(v.disk, True), color)}\n"]
    if v.conn == "Connected":
        out.append(f"  peer role:{_c(v.peer_role, _role_color(v.peer_role, False), color)}\n")
        done = f" done:{sync_done_permille(v) / 10:.2f}" if v.repl in SYNC_STATES else ""
        out.append(f"    replication:{_c(v.repl, _repl_color(v.repl), color)} "
                   f"peer-disk:{_c(v.peer_disk, _disk_color(v.peer_disk, False), color)}{done}\n")
    elif v.conn != "StandAlone":
        out.append(f"  peer connection:{_c(v.conn, _BAD_LOCAL, color)}\n")
    return "".join(out)


def role(v: View) -> str:
    return f"{v.role}/{v.peer_role}\n"


def cstate(v: View) -> str:
    return f"{cs84(v)}\n"


def dstate(v: View) -> str:
    return f"{v.disk}/{v.peer_disk}\n"


# ---------------------------------------------------------------- refusals


def state_change_failed(who: str, code: int, text: str, command: str, exit_code: int,
                        extra: str = "") -> tuple[str, int]:
    more = f"additional info from kernel:\n{extra}\n" if extra else ""
    return (f"{who}: State change failed: ({code}) {text}\n{more}"
            f"Command '{command}' terminated with exit code {exit_code}\n", exit_code)


def failure(who: str, code: int, text: str, command: str, exit_code: int = 10,
            extra: str = "") -> tuple[str, int]:
    more = f"additional info from kernel:\n{extra}\n" if extra else ""
    return (f"{who}: Failure: ({code}) {text}\n{more}"
            f"Command '{command}' terminated with exit code {exit_code}\n", exit_code)
