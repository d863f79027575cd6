"""What DRBD 9.2 + drbd-utils 9.22 print (the simulator's ``--drbd-version 9``
dialect), from the same ``View`` as the 8.4 dialect in render.py.

There is no DRBD 9 module on these machines: every format here follows a
capture in ``../shared/realworld/drbdout/`` or drbd-utils' source
(user/v9/drbdsetup.c, drbdsetup_events2.c, drbdadm_main.c); the simulator's
README says which one for each behaviour.
"""

from __future__ import annotations

import re

from hasupd_lab.drbdsim import render
from hasupd_lab.drbdsim.render import SYNC_STATES, View, sync_done_permille

KERNEL_VERSION = "9.2.12"
VERSION = f"version: {KERNEL_VERSION} (api:2/proto:86-122)"
PROC_DRBD = (f"{VERSION}\nGIT-hash: 5ad5ef0d5a8b0fbc1c5f1d0ed52a8d9b7d5b0d8e build by drbdsim, 2024-11-20 10:00:00\n"
             f"Transports (api:21): tcp ({KERNEL_VERSION})\n")
# drbdadm_main.c -V as Debian's drbd-utils 9.22.0 prints it (its API 2 keys), with a 9.2.12 module
DRBDADM_VERSION = (
    "DRBDADM_BUILDTAG=GIT-hash:\\ 409097fe02187f83790b88ac3e0d94f3c167adab\\ reproducible\\ build\\,"
    "\\ 2023-01-09\\ 14:51:18\nDRBDADM_API_VERSION=2\nDRBD_KERNEL_VERSION_CODE=0x09020c\n"
    f"DRBD_KERNEL_VERSION={KERNEL_VERSION}\nDRBDADM_VERSION_CODE=0x091600\nDRBDADM_VERSION=9.22.0\n")
# events2 order of objects (drbdsetup_events2.c print_changes; the user guide's events2 --now)
OBJECTS = ("resource", "connection", "device", "peer-device", "path")
# drbdsetup 9 addresses these by resource (the others by minor, connect/disconnect by peer)
_BY_RESOURCE = ("primary", "secondary", "down", "new-resource", "status", "resume-io", "suspend-io")
_BY_PEER = ("connect", "disconnect")


def promotion(v: View) -> tuple[bool, int]:
    """(may_promote, promotion_score) as drbd-utils computes them for one
    volume (drbdsetup_events2.c compute_promotion_info; two nodes, quorum off)."""
    if v.fail_io:
        return False, 0
    replicas = (v.disk == "UpToDate") + (v.connected and v.peer_disk == "UpToDate")
    if replicas == 0:
        return False, 0
    stable = v.disk == "UpToDate" or v.peer_role != "Primary"
    have_primary = v.role == "Primary" or (v.connected and v.peer_role == "Primary")
    has_disk = v.disk in ("UpToDate", "Consistent", "Inconsistent", "Outdated")
    return (not have_primary and stable), has_disk * 10000 + (v.disk == "UpToDate") * 100 + replicas


def _yn(b: bool) -> str:
    return "yes" if b else "no"


def objects(v: View) -> dict:
    """Per events2 object: (identifying keys, state fields, statistics fields), in 9's words."""
    conn_keys = [("name", v.name), ("peer-node-id", str(v.peer_node_id)), ("conn-name", v.peer_name)]
    syncing = v.repl in SYNC_STATES
    susp = "user" if v.user_isp else "peer" if v.peer_isp else "no"
    c = v.counters
    may, score = promotion(v)
    # 9 prints done: with or without --statistics (print_peer_device_statistics, indent 0)
    pd_fields = [("replication", v.repl), ("peer-disk", v.peer_disk),
                 ("peer-client", "no"), ("resync-suspended", susp)] + (
        [("done", f"{sync_done_permille(v) / 10:.2f}")] if syncing else [])
    pd_stats = [
        ("received", str(c.get("nr", 0))), ("sent", str(c.get("ns", 0))),
        ("out-of-sync", str(v.oos_kib)), ("pending", "0"), ("unacked", "0")]
    if syncing:  # MiB/s, as drbdsetup prints it (sectors/ms * 1000 / 2048)
        speed = max(v.speed_kib, 1)
        pd_stats += [("dbdt1", f"{v.speed_kib / 1024:.2f}"), ("eta", str(v.oos_kib // speed))]
    return {
        "resource": ([("name", v.name)],
                     [("role", v.role), ("suspended", "no"), ("force-io-failures", _yn(v.fail_io)),
                      ("may_promote", _yn(may)), ("promotion_score", str(score))],
                     [("write-ordering", "flush")]),
        "connection": (conn_keys, [("connection", v.conn), ("role", v.peer_role)],
                       [("congested", "no"), ("ap-in-flight", "0"), ("rs-in-flight", "0")]),
        "device": ([("name", v.name), ("volume", "0"), ("minor", str(v.minor))],
                   [("backing_dev", v.backing_dev), ("disk", v.disk), ("client", "no"),
                    ("open", _yn(v.open)), ("quorum", "yes")],
                   [("size", str(v.size_kib)), ("read", str(c.get("dr", 0))),
                    ("written", str(c.get("dw", 0))), ("al-writes", str(c.get("al", 0))),
                    ("bm-writes", "0"), ("upper-pending", "0"), ("lower-pending", "0"),
                    ("al-suspended", "no"), ("blocked", "no")]),
        "peer-device": (conn_keys + [("volume", "0")], pd_fields, pd_stats),
        "path": (conn_keys + [("local", f"ipv4:{v.local_addr}"), ("peer", f"ipv4:{v.peer_addr}")],
                 [("established", _yn(v.connected))], []),
    }


def events2_now(views: list[View], statistics: bool = False) -> list[str]:
    """The ``exists`` dump (without the final ``exists -``)."""
    lines = []
    for v in views:
        objs = objects(v)
        for obj in OBJECTS:
            keys, fields, stats = objs[obj]
            lines.append(f"exists {obj} {render._kv(keys + fields + (stats if statistics else []))}")
    return lines


event_line = render.event_line


def proc_drbd(views: list[View]) -> str:
    """DRBD 9's /proc/drbd has the version only: the state is in events2/status."""
    return PROC_DRBD


def status(v: View, color: bool) -> str:
    """``drbdadm status`` (drbdsetup.c resource_status/device_status/connection_status;
    captures drbdadm-status-9-*.txt)."""
    c = render._c
    head = f"{v.name} role:{c(v.role, render._role_color(v.role, True), color)}"
    if v.fail_io:
        head += f" force-io-failures:{c('yes', render._BAD_LOCAL, color)}"
    dev = f"  disk:{c(v.disk, render._disk_color(v.disk, True), color)}"
    if v.disk == "Diskless" and not color:
        dev += " client:no"
    dev += f" open:{_yn(v.open)}"
    out = [head + "\n", dev + "\n"]
    if v.conn != "Connected":
        out.append(f"  {v.peer_name} connection:{c(v.conn, render._BAD_LOCAL, color)}\n")
        return "".join(out)
    out.append(f"  {v.peer_name} role:{c(v.peer_role, render._role_color(v.peer_role, False), color)}\n")
    pd = []
    if v.repl not in ("Off", "Established"):
        pd.append(f"replication:{c(v.repl, render._repl_color(v.repl), color)}")
    pd.append(f"peer-disk:{c(v.peer_disk, render._disk_color(v.peer_disk, False), color)}")
    if v.repl in SYNC_STATES:
        pd.append(f"done:{sync_done_permille(v) / 10:.2f}")
    if v.user_isp or v.peer_isp:
        pd.append(f"resync-suspended:{'user' if v.user_isp else 'peer'}")
    out.append(f"    {' '.join(pd)}\n")
    return "".join(out)


def role(v: View) -> str:
    return f"{v.role}\n"


def cstate(v: View) -> str:
    return f"{v.conn}\n"


def dstate(v: View) -> str:
    return f"{v.disk}/{v.peer_disk}\n"


def status_json(views: list[View]) -> str:
    """``drbdsetup status --json`` (drbdsetup.c resource/device/connection/peer_device_status_json)."""
    import json

    out = []
    for v in views:
        may_sync = v.repl in SYNC_STATES
        pd = {"volume": 0, "replication-state": v.repl, "peer-disk-state": v.peer_disk, "peer-client": False,
              "resync-suspended": "user" if v.user_isp else "peer" if v.peer_isp else "no",
              "received": v.counters.get("nr", 0), "sent": v.counters.get("ns", 0), "out-of-sync": v.oos_kib,
              "pending": 0, "unacked": 0, "has-sync-details": may_sync, "has-online-verify-details": False,
              "percent-in-sync": round(100 * (1 - v.oos_kib / max(v.size_kib, 1)), 2)}
        if may_sync:
            pd.update({"db1/dt1 [MiB/s]": round(v.speed_kib / 1024, 2),
                       "estimated-seconds-to-finish": v.oos_kib // max(v.speed_kib, 1),
                       "percent-resync-done": round(sync_done_permille(v) / 10, 2)})
        local, _, lport = v.local_addr.rpartition(":")
        peer, _, pport = v.peer_addr.rpartition(":")
        out.append({
            "name": v.name, "node-id": 1 - v.peer_node_id, "role": v.role, "suspended": False,
            "suspended-user": False, "suspended-no-data": False, "suspended-fencing": False,
            "suspended-quorum": False, "force-io-failures": v.fail_io, "write-ordering": "flush",
            "devices": [{"volume": 0, "minor": v.minor, "disk-state": v.disk, "client": False, "open": v.open,
                         "quorum": True, "size": v.size_kib, "read": v.counters.get("dr", 0),
                         "written": v.counters.get("dw", 0), "al-writes": v.counters.get("al", 0),
                         "bm-writes": 0, "upper-pending": 0, "lower-pending": 0}],
            "connections": [{"peer-node-id": v.peer_node_id, "name": v.peer_name, "connection-state": v.conn,
                             "congested": False, "peer-role": v.peer_role, "tls": False, "ap-in-flight": 0,
                             "rs-in-flight": 0, "paths": [{
                                 "this_host": {"address": local, "port": int(lport or 0), "family": "ipv4"},
                                 "remote_host": {"address": peer, "port": int(pport or 0), "family": "ipv4"},
                                 "established": v.connected}],
                             "peer_devices": [pd]}]})
    return json.dumps(out, indent=2) + "\n"


def dump(rc, conf_path: str) -> str:
    """``drbdadm dump RES`` as drbd-utils 9.22 prints it (checked against its real output
    for a hasupd resource file): the simulator's resource in DRBD's words."""
    out = [f"# resource {rc.name} on {{me}}: not ignored, not stacked\n# defined at {conf_path}:1\n",
           f"resource {rc.name} {{\n"]
    for node_id, h in enumerate(rc.hosts):
        out.append(f"    on {h.name} {{\n        node-id {node_id};\n"
                   f"        device           /dev/drbd{rc.minor} minor {rc.minor};\n"
                   f"        disk             {h.disk};\n        meta-disk        internal;\n"
                   f"        address          ipv4 {h.address}:{rc.port};\n    }}\n")
    out.append(f"    options {{\n        auto-promote      {'yes' if rc.auto_promote else 'no'};\n"
               "        quorum           off;\n    }\n")
    out.append(f"    net {{\n        protocol           {rc.protocol};\n"
               f"        ping-int           {rc.ping_int:g};\n"
               f"        ping-timeout       {round(rc.ping_timeout * 10)};\n"
               f"        fencing          {rc.fencing};\n    }}\n")
    if rc.handlers:
        out.append("    handlers {\n" + "".join(f"        {k:<16} \"{v}\";\n" for k, v in rc.handlers.items())
                   + "    }\n")
    out.append("}\n\n")
    return "".join(out)


class Dialect9:
    """The 9 dialect as the daemon uses ``render``: the same names, 9's texts.
    Refusals name drbdsetup 9's commands (by resource, not by minor)."""

    version = "9"
    OBJECTS = OBJECTS
    DRBDADM_VERSION = DRBDADM_VERSION
    objects = staticmethod(objects)
    events2_now = staticmethod(events2_now)
    event_line = staticmethod(event_line)
    proc_drbd = staticmethod(proc_drbd)
    status = staticmethod(status)
    role = staticmethod(role)
    cstate = staticmethod(cstate)
    dstate = staticmethod(dstate)
    status_json = staticmethod(status_json)

    def __init__(self, names: dict[int, str]):
        self.names = names  # minor -> resource

    def command(self, command: str) -> str:
        """``drbdsetup-84 primary 1`` -> ``drbdsetup primary r0``."""
        m = re.match(r"drbdsetup-84 (\S+) (\S+)(.*)$", command)
        if not m:
            return command.replace("drbdsetup-84", "drbdsetup")
        sub, obj, rest = m.groups()
        res = self.names.get(int(obj), obj) if obj.isdigit() else obj
        if sub in _BY_RESOURCE:
            return f"drbdsetup {sub} {res}"
        if sub in _BY_PEER:
            return f"drbdsetup {sub} {res} 1"
        return f"drbdsetup {sub} {obj}{rest}"

    def _who(self, who: str, command: str) -> str:
        sub = command.split()[1] if len(command.split()) > 1 else ""
        return self.names.get(int(who), who) if who.isdigit() and sub in _BY_RESOURCE else who

    def state_change_failed(self, who: str, code: int, text: str, command: str, exit_code: int,
                            extra: str = "") -> tuple[str, int]:
        return render.state_change_failed(self._who(who, command), code, text, self.command(command),
                                          exit_code, extra)

    def failure(self, who: str, code: int, text: str, command: str, exit_code: int = 10,
                extra: str = "") -> tuple[str, int]:
        sub = command.split()[1] if len(command.split()) > 1 else ""
        if code == 127 and sub in _BY_RESOURCE:  # 9 looks the resource up by name
            who, code, text, extra = self._who(who, command), 158, "Unknown resource", ""
        return render.failure(who, code, text, self.command(command), exit_code, extra)
