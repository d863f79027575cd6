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

import re
import shlex
from collections import Counter
from dataclasses import dataclass, field

from hasupd.config import Config
from hasupd.migrate.agents import AgentsExport
from hasupd.migrate.common import duration
from hasupd.migrate.guard import GuardExport
from hasupd.migrate.layout import LayoutExport
from hasupd.migrate.pcmkmodel import Model, Prim
from hasupd.migrate.replication import render_drbd
from hasupd.migrate.topology import render_corosync


@dataclass
class Exported:
    script: str  # crm shell script or pcs command script
    corosync: str  # corosync.conf (totem, nodelist, quorum)
    drbd: str  # DRBD resource file ("" without DRBD)
    notes: list[str] = field(default_factory=list)


def _common_value(values: list) -> object:
    return Counter(values).most_common(1)[0][0] if values else None


class _Exporter(LayoutExport, AgentsExport, GuardExport):
    """hasupd Config -> the Pacemaker objects; each concern's mapping sits beside its
    reverse (the import) in layout.py, agents.py, guard.py, topology.py, replication.py."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.notes: list[str] = []
        self.m = Model()

    def run(self) -> Model:
        cfg, m = self.cfg, self.m
        m.properties.append(("cluster-name", cfg.cluster))
        m.nodes = [(i, n.name) for i, n in enumerate(cfg.nodes, 1)]
        self.guard()
        if cfg.heartbeat.initdead != 20.0:
            m.properties.append(("dc-deadtime", duration(cfg.heartbeat.initdead)))
        # the groups' own `timeouts` become Pacemaker's op defaults; resources that
        # differ get op timeouts of their own
        group_timeouts = [getattr(g.default_timeouts, a) for g in cfg.groups for a in ("start", "stop", "monitor")]
        self.base = _common_value(group_timeouts) or 20.0
        if len(set(group_timeouts)) > 1:
            self.notes.append("the groups' timeouts differ: Pacemaker has one op default "
                              f"({duration(self.base)}); the others are written on each operation")
        m.op_defaults.append(("timeout", duration(self.base)))
        self.policies()
        m.rsc_defaults += self.fence_rsc_defaults
        for d in cfg.drbd.resources:
            pid, cid = f"drbd_{d.name}", f"ms_drbd_{d.name}"
            m.prims.append(Prim(pid, "ocf:linbit:drbd", [("drbd_resource", d.name)], [
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
            self.notes.append(f"heartbeat.interval {duration(hb.interval)}: corosync has its own token timing")
        if hb.authkey != "/etc/hasupd/authkey":
            self.notes.append(f"heartbeat.authkey {hb.authkey}: corosync uses its own key (corosync-keygen)")
        return m


def _q(value: str) -> str:
    return value if re.fullmatch(r"[\w./:@%+,-]+", value) else '"' + value.replace('"', '\\"') + '"'


def _pairs(pairs) -> str:
    return " ".join(f"{k}={_q(v)}" for k, v in pairs)


_LEGACY_ROLE = {"Promoted": "Master", "Unpromoted": "Slave"}


def render_crm(m: Model, cfg: Config, legacy: bool = False) -> str:
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
        line = f"alert {aid} {_q(path)} \\\n\tmeta timeout={duration(timeout)}"
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


def _sh(pairs) -> str:
    return " ".join(shlex.quote(f"{k}={v}") for k, v in pairs)


def render_pcs(m: Model, cfg: Config) -> str:
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
        out.append(f"$PCS alert create id={aid} path={shlex.quote(path)} meta timeout={duration(timeout)}")
        if recipient:
            out.append(f"$PCS alert recipient add {aid} value={shlex.quote(recipient)}")
    out.append('if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib-push "$CIB" --config; fi')
    return "\n".join(out) + "\n"


def export_config(cfg: Config, fmt: str = "crm", legacy: bool = False) -> Exported:
    """CFG as a crm (or pcs) script, a corosync.conf part and a DRBD file.
    LEGACY writes Pacemaker 1.1 crm syntax (ms, Master/Slave) and the DRBD file in 8.4's."""
    ex = _Exporter(cfg)
    model = ex.run()
    script = render_crm(model, cfg, legacy) if fmt == "crm" else render_pcs(model, cfg)
    if legacy and fmt == "pcs":
        ex.notes.append("--pacemaker 1.1: the pcs script is for pcs 0.10+ (Pacemaker 2); use --format crm")
    coro, coro_notes = render_corosync(cfg)
    drbd = render_drbd(cfg, drbd84=legacy)
    if cfg.drbd.resources:
        ex.notes.append("DRBD replication addresses are the nodes' first heartbeat addresses: check "
                        "the DRBD resource file")
    return Exported(script, coro, drbd, ex.notes + coro_notes)


