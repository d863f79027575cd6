"""hasupd Config -> Pacemaker: crm shell script or pcs commands, plus the
corosync.conf totem/nodelist part and a DRBD resource file (pure, no I/O).

The Pacemaker side uses the standard agents and the constraints of the
reference setup in Pacemaker 2.1 syntax: a promotable ocf:linbit:drbd clone,
one group per hasupd group, colocation with the Promoted role, order
promote -> start.  Everything that has no Pacemaker equivalent is listed in
``Exported.notes``.  Importing the result again gives the same hasupd.yaml
(tests/migrate).
"""

from __future__ import annotations

import math
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field

from hasupd.config import (
    Config,
    FilesystemResource,
    Group,
    HttpdResource,
    OcfResource,
    SystemdUnitResource,
    VipResource,
)
from hasupd.migrate import corosync as corosyncmod
from hasupd.migrate import fencing as fencingmod
from hasupd.migrate.common import duration, score_text

_JOURNALING = {"ext3", "ext4", "xfs", "btrfs", "jfs", "reiserfs", "gfs2", "ocfs2", "nilfs2"}
_CASE = re.compile(r"(?P<hosts>[^\s;)]+)\) exec (?P<cmd>.*?);;")


@dataclass
class Exported:
    script: str  # crm shell script or pcs command script
    corosync: str  # corosync.conf (totem, nodelist, quorum)
    drbd: str  # DRBD resource file ("" without DRBD)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Prim:
    id: str
    agent: str
    params: list[tuple[str, str]]
    ops: list[tuple[str, list[tuple[str, str]]]]
    meta: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Model:
    """The Pacemaker objects, before they are written in crm or pcs syntax."""

    properties: list[tuple[str, str]] = field(default_factory=list)
    rsc_defaults: list[tuple[str, str]] = field(default_factory=list)
    op_defaults: list[tuple[str, str]] = field(default_factory=list)
    nodes: list[tuple[int, str]] = field(default_factory=list)
    prims: list[_Prim] = field(default_factory=list)
    clones: list[tuple[str, str, bool, list[tuple[str, str]]]] = field(default_factory=list)
    groups: list[tuple[str, list[str], list[tuple[str, str]]]] = field(default_factory=list)
    colocations: list[tuple[str, str, str, str]] = field(default_factory=list)  # id, rsc, with, role
    orders: list[tuple[str, str, str]] = field(default_factory=list)  # id, first (promote), then (start)
    locations: list[tuple[str, str, str, str | None]] = field(default_factory=list)  # id, rsc, score, node|rule
    alerts: list[tuple[str, str, float, str]] = field(default_factory=list)
    fence_levels: list[tuple[str, int, list[str]]] = field(default_factory=list)  # node, index, devices


def _t(seconds: float) -> str:
    return duration(seconds)


def _common_value(values: list) -> object:
    return Counter(values).most_common(1)[0][0] if values else None


class _Exporter:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.notes: list[str] = []
        self.m = _Model()

    def run(self) -> _Model:
        cfg, m = self.cfg, self.m
        m.properties.append(("cluster-name", cfg.cluster))
        m.nodes = [(i, n.name) for i, n in enumerate(cfg.nodes, 1)]
        self.guard()
        if cfg.heartbeat.initdead != 20.0:
            m.properties.append(("dc-deadtime", _t(cfg.heartbeat.initdead)))
        # the groups' own `timeouts` become Pacemaker's op defaults; resources that
        # differ get op timeouts of their own
        group_timeouts = [getattr(g.default_timeouts, a) for g in cfg.groups for a in ("start", "stop", "monitor")]
        self.base = _common_value(group_timeouts) or 20.0
        if len(set(group_timeouts)) > 1:
            self.notes.append("the groups' timeouts differ: Pacemaker has one op default "
                              f"({_t(self.base)}); the others are written on each operation")
        m.op_defaults.append(("timeout", _t(self.base)))
        self.policies()
        for d in cfg.drbd.resources:
            pid, cid = f"drbd_{d.name}", f"ms_drbd_{d.name}"
            m.prims.append(_Prim(pid, "ocf:linbit:drbd", [("drbd_resource", d.name)], [
                ("monitor", [("interval", "29s"), ("role", "Promoted"), ("timeout", "20s")]),
                ("monitor", [("interval", "31s"), ("role", "Unpromoted"), ("timeout", "20s")]),
                ("start", [("timeout", "240s"), ("interval", "0s")]),
                ("stop", [("timeout", "100s"), ("interval", "0s")]),
                ("promote", [("timeout", "90s"), ("interval", "0s")]),
                ("demote", [("timeout", "90s"), ("interval", "0s")]),
                ("notify", [("timeout", "90s"), ("interval", "0s")])]))
            m.clones.append((cid, pid, True, [("promotable", "true"), ("promoted-max", "1"),
                                              ("promoted-node-max", "1"), ("clone-max", "2"),
                                              ("clone-node-max", "1"), ("notify", "true")]))
        for g in cfg.groups:
            self.group(g)
        for a in cfg.alerts:
            m.alerts.append((f"alert_{len(m.alerts) + 1}", a.path, a.timeout, a.recipient))
        if cfg.drbd.minor_count > max((d.minor for d in cfg.drbd.resources), default=0) + 1:
            self.notes.append(f"drbd.minor_count {cfg.drbd.minor_count}: load the module with it yourself "
                              "(DRBD 9 needs none)")
        hb = cfg.heartbeat
        if hb.interval != 0.2:
            self.notes.append(f"heartbeat.interval {_t(hb.interval)}: corosync has its own token timing")
        if hb.authkey != "/etc/hasupd/authkey":
            self.notes.append(f"heartbeat.authkey {hb.authkey}: corosync uses its own key (corosync-keygen)")
        return m

    # ---------------------------------------------------------------- guard
    def guard(self) -> None:
        cfg, m = self.cfg, self.m
        guard = cfg.split_brain_guard
        self.fencing = False
        fencing_cfg = getattr(cfg, "fencing", None)  # fence-schema.md's Fencing
        if fencing_cfg is not None and fencing_cfg.devices:
            st = fencingmod.export_fencing(fencing_cfg)
            self.notes += st.notes
            if st.prims:
                self.fencing = True
                m.properties += st.properties
                m.prims += [_Prim(pid, agent, params, [("monitor", [("interval", "60s")])])
                            for pid, agent, params in st.prims]
                m.fence_levels = st.levels
                return
        if guard.mode == "fence" and guard.fence is not None:
            devices = self.fence_devices(list(guard.fence.command))
            if devices:
                self.fencing = True
                m.properties += [("stonith-enabled", "true"), ("stonith-timeout", _t(guard.fence.timeout))]
                m.prims += devices
                return
            self.notes.append(f"fence command {' '.join(guard.fence.command)!r} is not a fence agent: "
                              "configure a stonith device for it by hand; exported with stonith disabled")
        m.properties += [("stonith-enabled", "false"), ("no-quorum-policy", "ignore")]
        if guard.mode == "ping" and guard.ping is not None:
            p = guard.ping
            m.prims.append(_Prim("p_ping", "ocf:pacemaker:ping",
                                 [("host_list", " ".join(p.targets)), ("multiplier", "1000"),
                                  ("timeout", f"{p.timeout:g}")],
                                 [("monitor", [("interval", _t(p.interval)), ("timeout", "60s")])]))
            m.clones.append(("cl_ping", "p_ping", False, []))
            for g in cfg.groups:
                m.locations.append((f"loc_{g.name}_on_ping", g.name, "-inf",
                                    "rule:not_defined pingd or pingd lte 0"))
            if p.tcp_port is not None:
                self.notes.append(f"split_brain_guard.ping.tcp_port {p.tcp_port}: the ping agent uses ICMP")
            if (p.rise, p.fall) != (2, 2):
                self.notes.append("split_brain_guard.ping rise/fall: the ping agent has attempts/dampen instead")

    def fence_devices(self, command: list[str]) -> list[_Prim]:
        def device(argv: list[str], pid: str, hosts: str | None) -> _Prim | None:
            if not argv or not re.match(r"^(/\S*/)?fence_\w+$", argv[0]):
                return None
            params: list[tuple[str, str]] = []
            for a in argv[1:]:
                if not a.startswith("--"):
                    return None
                k, eq, v = a[2:].partition("=")
                if k == "action":
                    continue
                params.append((k, v if eq else "1"))
            if hosts:
                params.append(("pcmk_host_list", hosts))
            return _Prim(pid, f"stonith:{argv[0].rsplit('/', 1)[-1]}", params,
                         [("monitor", [("interval", "60s")])])

        if len(command) == 3 and command[:2] == ["/bin/sh", "-c"]:
            out = []
            for m in _CASE.finditer(command[2]):
                hosts = m.group("hosts").replace("|", " ")
                d = device(shlex.split(m.group("cmd")), f"st_{hosts.split()[0]}", hosts)
                if d is None:
                    return []
                out.append(d)
            return out
        d = device(command, "st_peer", None)
        return [d] if d else []

    # ---------------------------------------------------------------- groups
    def policies(self) -> None:
        cfg, m = self.cfg, self.m
        keys = [(g.stickiness, g.migration_threshold, g.failure_timeout) for g in cfg.groups]
        self.shared = len(set(keys)) == 1 and bool(keys)
        if self.shared:
            m.rsc_defaults = self.policy_pairs(cfg.groups[0])

    def policy_pairs(self, g: Group) -> list[tuple[str, str]]:
        return [("resource-stickiness", score_text(g.stickiness)),
                ("migration-threshold", str(g.migration_threshold)),
                ("failure-timeout", _t(g.failure_timeout) if g.failure_timeout else "0")]

    def group(self, g: Group) -> None:
        m = self.m
        meta: list[tuple[str, str]] = []
        if not self.shared:
            meta += self.policy_pairs(g)
        if not g.autostart:
            meta.append(("target-role", "Stopped"))
        if g.on_stop_failure == "reboot" and not self.fencing:
            self.notes.append(f"group {g.name}: on_stop_failure reboot needs fencing in Pacemaker "
                              "(on-fail=fence); without it a failed stop blocks")
        # with fencing, Pacemaker fences on a failed stop unless told to block
        block = g.on_stop_failure == "block" and self.fencing
        ids = []
        for r in g.resources:
            prim = self.resource(r)
            ops = []
            for action in ("start", "stop"):
                attrs = []
                t = getattr(r.timeouts, action)
                if t != self.base:
                    attrs.append(("timeout", _t(t)))
                if action == "stop" and block:
                    attrs.append(("on-fail", "block"))
                if attrs:
                    ops.append((action, attrs + [("interval", "0s")]))
            mon = [("interval", _t(r.monitor_interval))]
            if r.timeouts.monitor != self.base:
                mon.append(("timeout", _t(r.timeouts.monitor)))
            ops.append(("monitor", mon))
            prim.ops = ops
            m.prims.append(prim)
            ids.append(prim.id)
        m.groups.append((g.name, ids, meta))
        if g.drbd:
            m.colocations.append((f"col_{g.name}_on_drbd_{g.drbd}", g.name, f"ms_drbd_{g.drbd}", "Promoted"))
            m.orders.append((f"ord_drbd_{g.drbd}_before_{g.name}", f"ms_drbd_{g.drbd}", g.name))
        if g.preferred_node:
            m.locations.append((f"loc_{g.name}_prefers_{g.preferred_node}", g.name, "100", g.preferred_node))

    def resource(self, r) -> _Prim:
        if isinstance(r, VipResource):
            params = [("ip", r.ip), ("cidr_netmask", str(r.cidr_netmask))]
            if r.nic:
                params.append(("nic", r.nic))
            if r.label:
                label = r.label.split(":", 1)[1] if r.nic and r.label.startswith(f"{r.nic}:") else r.label
                params.append(("iflabel", label))
            if r.arp_count != 5:
                params.append(("arp_count", str(r.arp_count)))
            if r.arp_interval != 0.2:
                params.append(("arp_interval", str(round(r.arp_interval * 1000))))
            if (r.arp_repeat_after, r.check_duplicate) != (5.0, True):
                self.notes.append(f"{r.name}: arp_repeat_after/check_duplicate have no IPaddr2 equivalent")
            return _Prim(r.name, "ocf:heartbeat:IPaddr2", params, [])
        if isinstance(r, FilesystemResource):
            params = [("device", r.device), ("directory", r.directory), ("fstype", r.fstype)]
            if r.options:
                params.append(("options", r.options))
            auto_fsck = r.fstype not in _JOURNALING
            if r.fsck != auto_fsck:
                params.append(("run_fsck", "force" if r.fsck else "no"))
            if not r.force_unmount:
                params.append(("force_unmount", "false"))
            if (r.kill_grace, r.probe_file) != (5.0, True):
                self.notes.append(f"{r.name}: kill_grace/probe_file have no Filesystem agent equivalent")
            return _Prim(r.name, "ocf:heartbeat:Filesystem", params, [])
        if isinstance(r, HttpdResource):
            params = [("configfile", r.configfile)]
            # the agent wants a full path; a bare name is what it finds by itself
            guess = "httpd" if r.configfile.startswith("/etc/httpd/") else "apache2"
            if r.binary.startswith("/"):
                params.append(("httpd", r.binary))
            elif r.binary != guess:
                self.notes.append(f"{r.name}: binary {r.binary}: give the apache agent its full path (httpd=)")
            params.append(("port", str(r.port)))
            if r.statusurl != f"http://127.0.0.1:{r.port}/server-status?auto":
                params.append(("statusurl", r.statusurl))
            if r.status_regex != r"(?m)^(Total Accesses|ServerVersion|BusyWorkers):":
                params.append(("testregex", r.status_regex))
            if r.unit:
                self.notes.append(f"{r.name}: unit {r.unit}: the apache agent runs httpd itself (use "
                                  f"systemd:{r.unit.removesuffix('.service')} to keep systemd in charge)")
            if r.pidfile or r.environment:
                self.notes.append(f"{r.name}: pidfile/environment: the apache agent reads PidFile from the "
                                  "configuration (envfiles for the environment)")
            return _Prim(r.name, "ocf:heartbeat:apache", params, [])
        if isinstance(r, SystemdUnitResource):
            return _Prim(r.name, f"systemd:{r.unit.removesuffix('.service')}", [], [])
        if isinstance(r, OcfResource):
            if r.ocf_root != "/usr/lib/ocf":
                self.notes.append(f"{r.name}: ocf_root {r.ocf_root}: Pacemaker uses its own OCF root")
            return _Prim(r.name, f"ocf:{r.agent}", list(r.params), [])
        raise TypeError(r)


# ---------------------------------------------------------------- crm syntax


def _q(value: str) -> str:
    return value if re.fullmatch(r"[\w./:@%+,-]+", value) else '"' + value.replace('"', '\\"') + '"'


def _pairs(pairs) -> str:
    return " ".join(f"{k}={_q(v)}" for k, v in pairs)


_LEGACY_ROLE = {"Promoted": "Master", "Unpromoted": "Slave"}


def render_crm(m: _Model, cfg: Config, legacy: bool = False) -> str:
    """crm shell syntax; LEGACY: Pacemaker 1.1 (`ms`, Master/Slave roles)."""
    header = [f"Pacemaker configuration for cluster {cfg.cluster}, written by `hasupctl export`",
              f"from {cfg.path}. Load it with: crm configure load update FILE",
              "(Pacemaker 1.1 syntax: ms, Master/Slave roles)" if legacy else
              "(Pacemaker 2.1 syntax: promotable clone, Promoted role)"]
    # crmsh keeps comments as XML comments, which may not contain "--" or end with "-"
    out = ["# " + re.sub(r"-(?=-)", "- ", h).rstrip("-") for h in header]
    role = (lambda r: _LEGACY_ROLE.get(r, r)) if legacy else (lambda r: r)
    for nid, name in m.nodes:
        out.append(f"node {name}" if legacy else f"node {nid}: {name}")
    for p in m.prims:
        lines = [f"primitive {p.id} {p.agent}"]
        if p.params:
            lines.append(f"params {_pairs(p.params)}")
        for name, attrs in p.ops:
            attrs = [(k, role(v) if k == "role" else v) for k, v in attrs]
            lines.append(f"op {name} {_pairs(attrs)}")
        if p.meta:
            lines.append(f"meta {_pairs(p.meta)}")
        out.append(" \\\n\t".join(lines))
    for gid, members, meta in m.groups:
        out.append(f"group {gid} {' '.join(members)}" + (f" \\\n\tmeta {_pairs(meta)}" if meta else ""))
    for cid, child, promotable, meta in m.clones:
        kind = "clone"
        if legacy and promotable:
            kind = "ms"
            meta = [(k.replace("promoted-", "master-"), v) for k, v in meta if k != "promotable"]
        out.append(f"{kind} {cid} {child}" + (f" \\\n\tmeta {_pairs(meta)}" if meta else ""))
    for cid, rsc, with_rsc, with_role in m.colocations:
        out.append(f"colocation {cid} inf: {rsc} {with_rsc}:{role(with_role)}")
    for lid, rsc, score, target in m.locations:
        if target and target.startswith("rule:"):
            out.append(f"location {lid} {rsc} rule {score}: {target[5:]}")
        else:
            out.append(f"location {lid} {rsc} {score}: {target}")
    for oid, first, then in m.orders:
        out.append(f"order {oid} Mandatory: {first}:promote {then}:start")
    for aid, path, timeout, recipient in m.alerts:
        line = f"alert {aid} {_q(path)} \\\n\tmeta timeout={_t(timeout)}"
        if recipient:
            line += f" \\\n\tto {_q(recipient)}"
        out.append(line)
    if m.fence_levels:
        by_node: dict[str, list[str]] = {}
        for node, _i, devs in m.fence_levels:
            by_node.setdefault(node, []).append(",".join(devs))
        out.append("fencing_topology " + " ".join(f"{n}: {' '.join(v)}" for n, v in by_node.items()))
    out.append("property cib-bootstrap-options: \\\n\t" + " \\\n\t".join(f"{k}={_q(v)}" for k, v in m.properties))
    if m.rsc_defaults:
        out.append("rsc_defaults rsc-options: \\\n\t" + " \\\n\t".join(f"{k}={_q(v)}" for k, v in m.rsc_defaults))
    out.append("op_defaults op-options: \\\n\t" + " \\\n\t".join(f"{k}={_q(v)}" for k, v in m.op_defaults))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- pcs syntax


def _sh(pairs) -> str:
    return " ".join(shlex.quote(f"{k}={v}") for k, v in pairs)


def render_pcs(m: _Model, cfg: Config) -> str:
    nodes = " ".join(name for _, name in m.nodes)
    out = ["#!/bin/sh",
           f"# pcs commands for cluster {cfg.cluster}, written by `hasupctl export` from {cfg.path}",
           "# Set up corosync first (the corosync.conf written beside this script, or",
           f"#   pcs cluster setup {cfg.cluster} {nodes} ; pcs cluster start --all)",
           "# then run this on one node. It edits a copy of the CIB and pushes it once.",
           "# pcs 0.10/0.11 (Pacemaker 2) syntax.",
           "set -e",
           'CIB="${CIB:-hasupd-export-cib.xml}"',
           'if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib "$CIB"; fi',
           'PCS="pcs -f $CIB"']
    # cluster-name comes from corosync.conf (pcs cluster setup), not from a property
    out.append(f"$PCS property set {_sh([(k, v) for k, v in m.properties if k != 'cluster-name'])}")
    if m.rsc_defaults:
        out.append(f"$PCS resource defaults update {_sh(m.rsc_defaults)}")
    out.append(f"$PCS resource op defaults update {_sh(m.op_defaults)}")
    clone_of = {child: (cid, promotable, meta) for cid, child, promotable, meta in m.clones}
    group_of = {member: gid for gid, members, _ in m.groups for member in members}
    for p in m.prims:
        agent = p.agent if not p.agent.startswith("stonith:") else p.agent.split(":", 1)[1]
        cmd = ["$PCS", "stonith" if p.agent.startswith("stonith:") else "resource", "create", p.id, agent]
        line = " ".join(cmd)
        if p.params:
            line += " " + _sh(p.params)
        for name, attrs in p.ops:
            line += f" op {name} {_sh(attrs)}"
        if p.meta:
            line += f" meta {_sh(p.meta)}"
        if p.id in clone_of:
            _cid, promotable, meta = clone_of[p.id]
            meta = [(k, v) for k, v in meta if k != "promotable"]
            line += (" promotable" if promotable else " clone") + (f" {_sh(meta)}" if meta else "")
        if p.id in group_of:
            line += f" --group {group_of[p.id]}"
        if not p.agent.startswith("stonith:"):
            line += " --no-default-ops"  # no timeouts pcs would take from the agent's meta-data
        out.append(line)
    for cid, child, _promotable, _meta in m.clones:
        if cid != f"{child}-clone":
            out.append(f"# pcs names the clone of {child} {child}-clone (the crm export calls it {cid})")
    for gid, _members, meta in m.groups:
        if meta:
            out.append(f"$PCS resource meta {gid} {_sh(meta)}")
    for _cid, rsc, with_rsc, role in m.colocations:
        child = next(c for cid, c, _, _ in m.clones if cid == with_rsc)
        out.append(f"$PCS constraint colocation add {rsc} with {role} {child}-clone INFINITY")
    for _oid, first, then in m.orders:
        child = next(c for cid, c, _, _ in m.clones if cid == first)
        out.append(f"$PCS constraint order promote {child}-clone then start {then}")
    for _lid, rsc, score, target in m.locations:
        if target and target.startswith("rule:"):
            out.append(f"$PCS constraint location {rsc} rule score={score.replace('inf', 'INFINITY')} "
                       f"{target[5:].replace('not_defined', 'not_defined')}")
        else:
            out.append(f"$PCS constraint location {rsc} prefers {target}={score}")
    for node, index, devs in m.fence_levels:
        out.append(f"$PCS stonith level add {index} {node} {','.join(devs)}")
    for aid, path, timeout, recipient in m.alerts:
        out.append(f"$PCS alert create id={aid} path={shlex.quote(path)} meta timeout={_t(timeout)}")
        if recipient:
            out.append(f"$PCS alert recipient add {aid} value={shlex.quote(recipient)}")
    out.append('if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib-push "$CIB" --config; fi')
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- DRBD


def render_drbd(cfg: Config) -> str:
    if not cfg.drbd.resources:
        return ""
    out = ["# DRBD resources for Pacemaker's ocf:linbit:drbd, written by `hasupctl export`",
           "# (DRBD 9 syntax; the replication address is each node's first heartbeat address)"]
    fenced = cfg.split_brain_guard.mode == "drbd"
    wait = cfg.drbd.peer_dead_wait
    for d in cfg.drbd.resources:
        out.append(f"resource {d.name} {{")
        out.append("    protocol C;")
        net = []
        if fenced:
            net.append("fencing resource-only;")
        if wait != 11.0 and wait >= 2:
            net += [f"ping-int {math.ceil(wait) - 1};", "ping-timeout 10;"]
        if net:
            out.append("    net {")
            out += [f"        {n}" for n in net]
            out.append("    }")
        if fenced:
            out += ["    handlers {",
                    '        fence-peer "/usr/lib/drbd/crm-fence-peer.9.sh";',
                    '        unfence-peer "/usr/lib/drbd/crm-unfence-peer.9.sh";',
                    "    }"]
        for i, n in enumerate(cfg.nodes):
            out += [f"    on {n.name} {{",
                    f"        node-id {i};",
                    f"        device {d.device} minor {d.minor};",
                    f"        disk {d.disk_of(n.name)};",
                    f"        address {n.addresses[0]}:{d.port};",
                    "        meta-disk internal;",
                    "    }"]
        out.append("}")
    return "\n".join(out) + "\n"


def export_config(cfg: Config, fmt: str = "crm", legacy: bool = False) -> Exported:
    """CFG as a crm (or pcs) script, a corosync.conf part and a DRBD file.
    LEGACY writes Pacemaker 1.1 crm syntax (ms, Master/Slave)."""
    ex = _Exporter(cfg)
    model = ex.run()
    script = render_crm(model, cfg, legacy) if fmt == "crm" else render_pcs(model, cfg)
    if legacy and fmt == "pcs":
        ex.notes.append("--pacemaker 1.1: the pcs script is for pcs 0.10+ (Pacemaker 2); use --format crm")
    coro, coro_notes = corosyncmod.render(cfg)
    drbd = render_drbd(cfg)
    if cfg.drbd.resources:
        ex.notes.append("DRBD replication addresses are the nodes' first heartbeat addresses: check "
                        "the DRBD resource file")
    return Exported(script, coro, drbd, ex.notes + coro_notes)
