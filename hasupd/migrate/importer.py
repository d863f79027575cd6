"""crm configuration + corosync.conf + DRBD files -> hasupd.yaml text (pure).

``build(...)`` maps what the three parsers read onto hasupd's schema and
writes the YAML with a comment on every approximated line.  Everything it
cannot carry over becomes a ``Note`` for the summary on stderr.  Mapping
rules (Pacemaker -> hasupd):

* groups stay groups; resources outside a group that are tied together by
  positive colocations become one group, ordered by the order constraints;
* a group colocated with a promotable ``ocf:linbit:drbd`` clone's promoted
  role gets ``drbd:`` (hasupd always starts it after the promotion);
* IPaddr2/IPaddr -> vip, Filesystem -> filesystem, apache -> httpd,
  lsb:/systemd:/service: -> systemd_unit, other ocf: -> ocf;
* stonith devices -> fence guard; DRBD resource-level fencing -> drbd guard;
  a cloned ocf:pacemaker:ping -> ping guard; else none (exactly what
  stonith-enabled=false + no-quorum-policy=ignore did), with a warning;
* resource-stickiness, migration-threshold, failure-timeout, target-role and
  op timeouts/intervals follow Pacemaker's precedence (resource meta, group
  meta, rsc_defaults / op_defaults, property, Pacemaker's built-in default).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass

from hasupd.migrate import yamlout
from hasupd.migrate.agents import AgentsImport
from hasupd.migrate.common import DataError, Note, at, duration, pcmk_seconds
from hasupd.migrate.corosync import CorosyncInfo
from hasupd.migrate.crm import CrmConfig, Primitive
from hasupd.migrate.drbdconf import DrbdInfo
from hasupd.migrate.guard import GuardImport
from hasupd.migrate.layout import LayoutImport
from hasupd.migrate.replication import DrbdImport
from hasupd.migrate.topology import TopologyImport
from hasupd.migrate.yamlout import C, Flow

DEFAULT_SECRETS_DIR = "/etc/hasupd/fence"


@dataclass
class Hosts:
    """/etc/hosts: name -> (address, file:line)."""

    entries: dict[str, tuple[str, str]]


def parse_hosts(text: str, path: str) -> Hosts:
    entries: dict[str, tuple[str, str]] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if len(words) < 2:
            continue
        try:
            ipaddress.IPv4Address(words[0])
        except ValueError:
            continue  # IPv6 lines
        for name in words[1:]:
            entries.setdefault(name, (words[0], at(path, lineno)))
    return Hosts(entries)


class _Import(LayoutImport, AgentsImport, GuardImport, TopologyImport, DrbdImport):
    """The assembly; each concern's mapping sits beside its reverse (the export) in
    layout.py, agents.py, guard.py (fencing.py), topology.py, replication.py."""

    def __init__(self, crm: CrmConfig, coro: CorosyncInfo | None, drbd: DrbdInfo | None,
                 hosts: Hosts | None, secrets_dir: str = DEFAULT_SECRETS_DIR):
        self.crm, self.coro, self.drbd, self.hosts = crm, coro, drbd, hosts
        self.secrets_dir = secrets_dir
        self.fencing_section: dict | None = None
        self.secrets: dict[str, str] = {}
        self.notes: list[Note] = list(crm.notes)
        if coro:
            self.notes += coro.notes
        if drbd:
            self.notes += drbd.notes

    def note(self, where: str, kind: str, message: str) -> None:
        self.notes.append(Note(where, kind, message))

    def w(self, line: int) -> str:
        return self.crm.where(line)

    def prop(self, name: str) -> tuple[str, int] | None:
        return self.crm.properties.get(name)

    def is_drbd(self, p: Primitive) -> bool:
        return p.type == "drbd" and p.provider in ("linbit", "heartbeat")

    def is_ping(self, p: Primitive) -> bool:
        return p.cls == "ocf" and p.type in ("ping", "pingd")

    def clone_of(self, rid: str):
        return next((c for c in self.crm.clones.values() if c.child == rid), None)

    def build(self) -> dict:
        crm = self.crm
        self.classify()
        self.refuse_what_hasupd_does_not_run()
        layout = self.group_members()
        drbd_of_group: dict[str, tuple[str | None, str | None, str]] = {}
        self.used_drbd: list[str] = []
        self.group_drbd: dict[str, str | None] = {}
        for name, members, _line, _why in layout:
            d = self.drbd_for(name, members)
            drbd_of_group[name] = d
            self.group_drbd[name] = d[0]
            if d[0] and d[0] not in self.used_drbd:
                self.used_drbd.append(d[0])
        for _rid, (dname, line) in self.drbd_of.items():
            if dname not in self.used_drbd:
                self.note(self.w(line), "dropped", f"DRBD {dname} is not tied to any group (no colocation); "
                          "left out")
        names = self.node_names()
        if self.drbd:
            for r in self.drbd.resources:
                if r.name in self.used_drbd and r.hosts and \
                        {h.name.split(".")[0] for h in r.hosts} != {n.split(".")[0] for n in names}:
                    self.note(r.where, "warning", f"DRBD {r.name} names hosts "
                              f"{', '.join(h.name for h in r.hosts)}, the cluster {', '.join(names)}")
        self.check_hosts(names)
        doc: dict = {}
        cname = self.prop("cluster-name")
        if cname:
            doc["cluster"] = C(cname[0], f"cluster-name ({self.w(cname[1])})")
        elif crm.cluster_name:
            doc["cluster"] = C(crm.cluster_name[0], f"pcs cluster name ({self.w(crm.cluster_name[1])})")
        elif self.coro and self.coro.cluster_name:
            doc["cluster"] = C(self.coro.cluster_name, "totem cluster_name")
        else:
            first = layout[0][0] if layout else "cluster"
            doc["cluster"] = C(_cluster_name(first), approx=f"the source names no cluster; named after {first}")
        hb, nodes = self.heartbeat(names)
        doc["nodes"] = nodes
        doc["heartbeat"] = hb
        doc["split_brain_guard"] = self.guard(names)
        if self.fencing_section is not None:
            doc["fencing"] = self.fencing_section
        group_devices: dict[str, str] = {}
        groups = []
        base, base_why = self.base_timeout()
        for name, members, _line, why in layout:
            g: dict = {"name": C(name, approx=why) if why else name}
            dname, approx, where = drbd_of_group[name]
            if dname:
                g["drbd"] = C(dname, approx=approx) if approx else C(dname, f"runs where {dname} is Primary, "
                                                                            f"after promotion ({where})")
            self.policy(name, members, g)
            self.location(name, members, g, names)
            g["timeouts"] = C(Flow({"start": duration(base), "stop": duration(base),
                                    "monitor": duration(base)}), base_why)
            intervals = []
            for m in members:
                mon = self.monitor_op(crm.primitives[m])
                if mon is not None:
                    intervals.append(pcmk_seconds(mon.attrs.get("interval", "0")))
            if intervals:
                common = Counter(intervals).most_common(1)[0][0]
                g["monitor_interval"] = duration(common)
            else:
                common = None
                g["monitor_interval"] = C("20s", approx="the source monitors none of them; hasupd probes "
                                          "every 20s")
            g["autostart"] = self.autostart(name, members)
            resources = []
            for m in members:
                p = crm.primitives[m]
                res = self.resource(p, base, common if common is not None else 20.0)
                if self.monitor_op(p) is None and common is not None:
                    res["name"] = C(m, approx=f"no monitor op in the source: hasupd probes it every "
                                    f"{duration(common)}")
                resources.append(res)
                if res["type"] == "filesystem" and dname:
                    group_devices.setdefault(dname, str(res["device"]))
            g["resources"] = resources
            groups.append(g)
        if not groups:
            found = [f"{p.id} ({p.agent}{', cloned' if p.id in self.cloned else ''})" for p in crm.primitives.values()]
            if not found:
                what = ("constraints only" if crm.colocations or crm.orders or crm.locations else "nothing") + \
                    ": give the whole configuration (`crm configure show`, `pcs config` or the CIB XML " \
                    "from `pcs cluster cib` / `cibadmin -Q`)"
            else:
                what = f"only {', '.join(found)}: no primitive runs on one node at a time"
            raise DataError(crm.path, f"no resources to run: this input has {what}")
        self.check_vips(groups, nodes)
        drbd = self.drbd_section(names, group_devices)
        if drbd is not None:
            doc["drbd"] = drbd
        doc["groups"] = groups
        if crm.alerts:
            alerts = []
            for a in crm.alerts:
                entry: dict = {"path": a.path}
                if "timeout" in a.meta:
                    entry["timeout"] = duration(pcmk_seconds(a.meta["timeout"]) or 30.0)
                else:
                    entry["timeout"] = C("30s", "Pacemaker's default alert timeout")
                if a.recipients:
                    entry["recipient"] = a.recipients[0]
                    if len(a.recipients) > 1:
                        self.note(self.w(a.line), "dropped", f"alert {a.id}: only the first recipient is kept")
                alerts.append(entry)
            doc["alerts"] = alerts
        grouped = {name for name, _m, _l, _w in layout} | {m for _n, ms, _l, _w in layout for m in ms} | \
            set(self.crm.groups)
        self.constraint_notes(grouped)
        self.property_notes()
        return doc

    def property_notes(self) -> None:
        known = {"stonith-enabled", "fencing-enabled", "priority-fencing-delay", "no-quorum-policy",
                 "default-action-timeout", "default-resource-stickiness",
                 "cluster-name", "dc-deadtime", "stonith-action", "stonith-timeout"}
        informational = {"dc-version", "cluster-infrastructure", "have-watchdog", "last-lrm-refresh",
                         "expected-quorum-votes"}
        seen_info = []
        for name, (value, line) in self.crm.properties.items():
            if name in known:
                continue
            if name in informational:
                seen_info.append(name)
                continue
            self.note(self.w(line), "dropped", f"property {name}={value} has no hasupd equivalent")
        if seen_info:
            self.note(self.crm.path, "info", f"properties recorded by Pacemaker itself ({', '.join(seen_info)}) "
                      "are not configuration")
        for name, (value, line) in self.crm.op_defaults.items():
            if name != "timeout":
                self.note(self.w(line), "dropped", f"op_defaults {name}={value} has no hasupd equivalent")
        for name, (value, line) in self.crm.rsc_defaults.items():
            if name == "priority" and self.prop("priority-fencing-delay"):
                continue  # what priority-fencing-delay weighs: the owner's head start
            if name not in ("resource-stickiness", "migration-threshold", "failure-timeout", "target-role"):
                self.note(self.w(line), "dropped", f"rsc_defaults {name}={value} has no hasupd equivalent")
        for n in self.crm.nodes.values():
            for k, v in n.attrs.items():
                if k == "standby" and v.lower() in ("off", "false"):
                    continue
                self.note(self.w(n.line), "dropped", f"node {n.name} attribute {k}={v} is state, not "
                          "configuration (`hasupctl standby` for standby)")


def _cluster_name(group: str) -> str:
    base = re.sub(r"^(rg|grp|g|group)[_-]", "", group)
    return base or "cluster"


def build(crm: CrmConfig, coro: CorosyncInfo | None = None, drbd: DrbdInfo | None = None,
          hosts: Hosts | None = None, sources: list[str] | None = None,
          secrets_dir: str = DEFAULT_SECRETS_DIR) -> tuple[str, list[Note], dict[str, str]]:
    """The hasupd.yaml text, the notes for the summary and the secrets files (path -> text).

    A DataError raised here carries the notes gathered so far (``.notes``): they
    often explain it."""
    imp = _Import(crm, coro, drbd, hosts, secrets_dir)
    try:
        doc = imp.build()
    except DataError as e:
        e.notes = imp.notes
        raise
    header = ["hasupd configuration imported from Pacemaker by `hasupctl import`",
              f"from: {', '.join(sources or [crm.path])}",
              "Lines marked `approximated:` are not exact translations; the summary printed on",
              "stderr lists what was not carried over. Check it: hasupctl check --config FILE"]
    return yamlout.render(doc, header), imp.notes, imp.secrets
