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
import math
import re
from collections import Counter
from dataclasses import dataclass

from hasupd.migrate import fencing, yamlout
from hasupd.migrate.common import DataError, Note, Refused, at, duration, kv, pcmk_score, pcmk_seconds
from hasupd.migrate.corosync import CorosyncInfo
from hasupd.migrate.crm import CrmConfig, Primitive
from hasupd.migrate.drbdconf import DrbdInfo
from hasupd.migrate.yamlout import C, Comment, Flow

PCMK_DEFAULT_TIMEOUT = 20.0
DEFAULT_SECRETS_DIR = "/etc/hasupd/fence"
PROMOTED = ("master", "promoted")
_TRUE = ("true", "yes", "1", "on", "y")
# agents that only make sense cloned on every node at once
_ACTIVE_ACTIVE = {"controld", "o2cb", "clvm", "lvmlockd", "IPaddr2", "IPaddr", "apache", "Filesystem"}
_JOURNALING = {"ext3", "ext4", "xfs", "btrfs", "jfs", "reiserfs", "gfs2", "ocfs2", "nilfs2"}


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


class _Import:
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

    # -------------------------------------------------------------- helpers
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

    # -------------------------------------------------------------- classify
    def classify(self) -> None:
        crm = self.crm
        self.drbd_of: dict[str, tuple[str, int]] = {}  # crm id (primitive or clone) -> (DRBD name, line)
        self.stonith: list[Primitive] = []
        self.ping: list[Primitive] = []
        self.cloned: set[str] = set()
        self.dual_primary: list[tuple[int, str]] = []
        for p in crm.primitives.values():
            if p.cls == "stonith":
                self.stonith.append(p)
            elif self.is_drbd(p):
                name = p.params.get("drbd_resource")
                if not name:
                    raise DataError(self.w(p.line), f"primitive {p.id}: ocf:linbit:drbd without drbd_resource")
                self.drbd_of[p.id] = (name, p.line)
                clone = self.clone_of(p.id)
                if clone is None:
                    self.note(self.w(p.line), "warning", f"{p.id}: a DRBD primitive outside a promotable "
                              "clone (ms) can never be promoted by Pacemaker; hasupd promotes it")
                elif not clone.promotable:
                    self.note(self.w(clone.line), "warning", f"clone {clone.id} of DRBD is not promotable "
                              "(ms / promotable=true); hasupd promotes it anyway")
                if clone is not None:
                    self.drbd_of[clone.id] = (name, p.line)
                    self._check_ms_meta(clone)
                if p.ops:
                    self.note(self.w(p.line), "info", f"{p.id}: its ops ({', '.join(o.name for o in p.ops)}) "
                              "are not needed: hasupd follows DRBD through drbdsetup events2 and /proc/drbd")
                extra = {k: v for k, v in p.params.items() if k != "drbd_resource"}
                if extra:
                    self.note(self.w(p.line), "dropped", f"{p.id}: params {kv(extra)} are for the drbd agent; "
                              "hasupd drives DRBD with drbdadm and the DRBD configuration")
            elif self.is_ping(p):
                self.ping.append(p)
        for c in crm.clones.values():
            child = crm.primitives.get(c.child)
            if child is None and c.child not in crm.groups:
                raise DataError(self.w(c.line), f"clone {c.id}: {c.child} is not defined")
            if child is not None and (self.is_drbd(child) or self.is_ping(child)):
                continue
            self.cloned.add(c.child)
            members = crm.groups[c.child].members if c.child in crm.groups else [c.child]
            self.cloned.update(members)
            units = [crm.primitives[m].type for m in members if m in crm.primitives and
                     crm.primitives[m].cls in ("systemd", "lsb", "service", "upstart")]
            how = (f"enable it on both nodes yourself (systemctl enable {' '.join(units)})" if units else
                   "start it on both nodes yourself (outside hasupd)")
            self.note(self.w(c.line), "dropped", f"{'promotable ' if c.promotable else ''}clone {c.id} "
                      f"({', '.join(members)}) runs on both nodes, beside the groups: {how}; hasupd runs "
                      "groups on one node at a time")

    def _check_ms_meta(self, clone) -> None:
        for key in ("master-max", "promoted-max"):
            if key in clone.meta and clone.meta[key] != "1":
                self.dual_primary.append((clone.line, f"dual-primary DRBD: {clone.id} has "
                                          f"{key}={clone.meta[key]} (Primary on both nodes)"))

    # -------------------------------------------------------------- refusals
    def refuse_what_hasupd_does_not_run(self) -> None:
        """Raise Refused for 3+ nodes, active/active clones and stacked DRBD."""
        crm = self.crm
        active = []
        for c in crm.clones.values():
            members = crm.groups[c.child].members if c.child in crm.groups else [c.child]
            kinds = [crm.primitives[m] for m in members if m in crm.primitives]
            shared = [p for p in kinds if p.type in _ACTIVE_ACTIVE or
                      (p.type == "Filesystem" and p.params.get("fstype", "") in ("gfs2", "ocfs2"))]
            if shared:
                active.append(f"clone {c.id} runs {', '.join(f'{p.id} ({p.type})' for p in shared)} on every node")
        found = [text for _l, text in self.dual_primary]
        if active:
            found.insert(0, "active/active: " + "; ".join(active))
        if found:
            line = min([c.line for c in crm.clones.values()] + [ln for ln, _t in self.dual_primary])
            raise Refused(self.w(line), "; ".join(found), "hasupd keeps DRBD Primary on one node and runs each "
                          "group on one node at a time (active/passive); a cluster file system (GFS2, OCFS2) "
                          "mounted on both nodes needs Pacemaker's clones and DLM.")
        # stacked DRBD: a DRBD clone placed with or after another DRBD clone
        for col in [*crm.colocations, *crm.orders]:
            drbds = [r for r, _ in col.members if r in self.drbd_of]
            if len({self.drbd_of[r][0] for r in drbds}) >= 2:
                raise Refused(self.w(col.line), f"stacked DRBD: {col.id} ties DRBD "
                              f"{' and '.join(dict.fromkeys(self.drbd_of[r][0] for r in drbds))} together (a DRBD "
                              "resource on top of another, usually for a third node off site)",
                              "hasupd replicates one DRBD level between two nodes.")
        for r in (self.drbd.resources if self.drbd else []):
            used = r.name in {n for n, _ in self.drbd_of.values()}
            if r.stacked_on and used:
                raise Refused(r.where, f"stacked DRBD: resource {r.name} is stacked-on-top-of {r.stacked_on}",
                              "hasupd replicates one DRBD level between two nodes.")
            if used and len(r.hosts) > 2:
                raise Refused(r.where, f"{len(r.hosts)} nodes: DRBD resource {r.name} replicates between "
                              f"{', '.join(h.name for h in r.hosts)}", "hasupd runs two nodes.")
        nodes = [n.name or str(n.addrs.get(0)) for n in self.coro.nodes] if self.coro and self.coro.nodes \
            else list(crm.nodes)
        if self.coro and len(self.coro.nodes) == 1:
            raise DataError(self.coro.where(self.coro.nodes[0].line), "the corosync nodelist names one node "
                            f"({nodes[0]}): hasupd needs both nodes of the pair (give the complete corosync.conf)")
        if len(nodes) > 2:
            where = self.coro.where(self.coro.nodes[2].line) if self.coro and self.coro.nodes \
                else self.w(crm.nodes[nodes[2]].line)
            raise Refused(where, f"{len(nodes)} nodes ({', '.join(nodes)})", "hasupd runs two nodes, one "
                          "active and one standby.")

    # -------------------------------------------------------------- groups
    def service(self, rid: str) -> bool:
        p = self.crm.primitives.get(rid)
        return p is not None and p.cls != "stonith" and not self.is_drbd(p) and not self.is_ping(p) \
            and rid not in self.cloned

    def group_members(self) -> list[tuple[str, list[str], int, str | None]]:
        """(name, member ids, line, approximation) for every hasupd group."""
        crm = self.crm
        owner: dict[str, str] = {}
        for g in crm.groups.values():
            if g.id in self.cloned:
                continue
            for m in g.members:
                if m not in crm.primitives:
                    raise DataError(self.w(g.line), f"group {g.id}: member {m} is not a primitive defined here")
                owner[m] = g.id
        loose = [rid for rid in crm.primitives if self.service(rid) and rid not in owner]
        # union-find over groups and loose primitives joined by positive colocations
        parent: dict[str, str] = {}

        def unit(rid: str) -> str | None:
            rid = owner.get(rid, rid)
            return rid if rid in crm.groups or rid in loose else None

        def find(x: str) -> str:
            while parent.get(x, x) != x:
                x = parent[x]
            return x

        for col in crm.colocations:
            score = pcmk_score(col.score)
            units = [unit(r) for r, _ in col.members]
            units = [u for u in units if u is not None]
            if len(units) < 2:
                continue
            if score is None or score <= 0:
                self.note(self.w(col.line), "dropped", f"colocation {col.id} ({col.score}) keeps resources "
                          "apart; hasupd has no anti-colocation (each group fails over on its own)")
                continue
            for u in units[1:]:
                parent[find(u)] = find(units[0])
        comps: dict[str, list[str]] = {}
        for u in [g for g in crm.groups if g not in self.cloned] + loose:
            comps.setdefault(find(u), []).append(u)
        out = []
        for units in comps.values():
            groups = [u for u in units if u in crm.groups]
            members = self._ordered(units)
            if len(groups) == 1 and len(units) == 1:
                g = crm.groups[groups[0]]
                out.append((g.id, list(g.members), g.line, None))
                continue
            if groups:
                name = groups[0]
                line = crm.groups[name].line
                why = (f"group {name} joined by colocation with {', '.join(u for u in units if u != name)}, "
                       "in the order of the order constraints")
            else:
                name = _group_name(units[0])
                line = crm.primitives[units[0]].line
                why = (f"the source has no group: {', '.join(units)} tied by colocation, in the order "
                       f"of the order constraints" if len(units) > 1 else
                       f"the source has no group: {units[0]} alone")
            out.append((name, members, line, why))
        # by name: `crm configure show` reorders objects, the import must not follow
        out.sort(key=lambda t: t[0])
        return out

    def _ordered(self, units: list[str]) -> list[str]:
        """Units (groups/primitives) in start order, expanded to primitives."""
        crm = self.crm
        after: dict[str, set[str]] = {u: set() for u in units}
        ids = {m: u for u in units for m in (crm.groups[u].members if u in crm.groups else [u])}
        for o in crm.orders:
            chain = [ids.get(r) for r, _ in o.members]
            if sum(1 for c in chain if c) >= 2 and (o.kind in ("Optional", "Serialize") or pcmk_score(o.kind) == 0):
                self.note(self.w(o.line), "dropped", f"order {o.id} is {o.kind}: hasupd starts a group's "
                          "resources strictly in order")
            for a, b in zip(chain, chain[1:]):
                if a and b and a != b:
                    after[b].add(a)
        done: list[str] = []
        pending = list(units)
        while pending:
            ready = next((u for u in pending if after[u] <= set(done)), pending[0])
            done.append(ready)
            pending.remove(ready)
        return [m for u in done for m in (crm.groups[u].members if u in crm.groups else [u])]

    def drbd_for(self, gname: str, members: list[str]) -> tuple[str | None, str | None, str]:
        """(DRBD resource, approximation, where) of a group from colocation/order constraints."""
        crm = self.crm
        ours = set(members) | {gname} | {g for g in crm.groups if set(crm.groups[g].members) & set(members)}
        found: list[tuple[str, str | None, int]] = []
        for col in crm.colocations:
            names = [r for r, _ in col.members]
            if not (set(names) & ours) or (pcmk_score(col.score) or 0) <= 0:
                continue
            # "colocation c inf: A B": A is placed with B; only a DRBD after one of ours holds ours
            first_ours = min(i for i, r in enumerate(names) if r in ours)
            for rid, role in col.members[first_ours + 1:]:
                if rid in self.drbd_of:
                    approx = None
                    if (role or "").lower() not in PROMOTED:
                        approx = (f"colocation {col.id} ties {gname} to {rid} without the promoted role; "
                                  "hasupd runs the group where DRBD is Primary")
                    found.append((self.drbd_of[rid][0], approx, col.line))
        ordered = any(set(r for r, _ in o.members) & ours and any(r in self.drbd_of for r, _ in o.members)
                      for o in crm.orders)
        if not found:
            for o in crm.orders:
                if set(r for r, _ in o.members) & ours:
                    for rid, _ in o.members:
                        if rid in self.drbd_of:
                            found.append((self.drbd_of[rid][0], f"only order {o.id} ties {gname} to DRBD; "
                                          "hasupd also keeps it where DRBD is Primary", o.line))
        if not found:
            return self.drbd_from_devices(gname, members)
        # a tie to the promoted role is the one that counts
        found.sort(key=lambda f: f[1] is not None)
        names = list(dict.fromkeys(f[0] for f in found))
        if len(names) > 1:
            self.note(self.w(found[0][2]), "dropped", f"group {gname} depends on DRBD {', '.join(names)}; "
                      f"a hasupd group has one DRBD resource: {names[0]} is used, put the others in "
                      "groups of their own")
        name, approx, line = found[0]
        if not ordered and approx is None:
            self.note(self.w(line), "info", f"group {gname}: the source has no order "
                      f"promote -> start; hasupd always starts the group after the promotion")
        return name, approx, self.w(line)

    def drbd_from_devices(self, gname: str, members: list[str]) -> tuple[str | None, str | None, str]:
        """No DRBD primitive ties the group (DRBD 9 auto-promote): its filesystem's device
        (/dev/drbd/by-res/NAME[/VOL], /dev/drbdN) names the DRBD resource."""
        for m in members:
            p = self.crm.primitives[m]
            if self.kind(p) != "filesystem":
                continue
            dev = p.params.get("device", "")
            name = None
            by_res = re.match(r"^/dev/drbd/by-res/([^/]+)(?:/\d+)?$", dev)
            if by_res:
                name = by_res.group(1)
            else:
                minor = re.match(r"^/dev/drbd(\d+)$", dev)
                if minor:
                    name = next((r.name for r in (self.drbd.resources if self.drbd else [])
                                 for h in r.hosts if h.minor == int(minor.group(1))), None)
            if name:
                return name, (f"no DRBD primitive in the source: {m} mounts {dev} (DRBD 9 auto-promote: the "
                              "mount promotes it); hasupd promotes it before the group starts"), self.w(p.line)
        return None, None, ""

    # -------------------------------------------------------------- policy
    def meta(self, key: str, ids: list[str]) -> tuple[str, str] | None:
        """The first of resource/group meta, rsc_defaults: (value, where)."""
        crm = self.crm
        for rid in ids:
            obj = crm.primitives.get(rid) or crm.groups.get(rid) or crm.clones.get(rid)
            if obj is not None and key in obj.meta:
                return obj.meta[key], self.w(obj.line)
        if key in crm.rsc_defaults:
            v, line = crm.rsc_defaults[key]
            return v, self.w(line)
        return None

    def policy(self, gname: str, members: list[str], group: dict) -> None:
        crm = self.crm
        heads = [gname] if gname in crm.groups else []
        # stickiness
        got = self.meta("resource-stickiness", heads + members)
        prop = self.prop("default-resource-stickiness")
        if got is None and prop is not None:
            got = (prop[0], self.w(prop[1]))
        elif got is not None and prop is not None and got[0] != prop[0]:
            self.note(self.w(prop[1]), "info", f"property default-resource-stickiness={prop[0]} is "
                      f"deprecated and overridden by resource-stickiness={got[0]}")
        if got is None:
            group["stickiness"] = C(0, "Pacemaker's default stickiness 0: the group may move back")
        else:
            score = pcmk_score(got[0])
            if score is None or score < 0:
                self.note(got[1], "dropped", f"resource-stickiness={got[0]} is not a usable score; 0 used")
                score = 0.0
            if math.isinf(score):
                group["stickiness"] = C("infinity", "no automatic fail-back")
            elif score == 0:
                group["stickiness"] = 0
            else:
                group["stickiness"] = C(int(score), approx=f"resource-stickiness={got[0]}: hasupd keeps a "
                                        "running group where it is for any stickiness above 0")
        # migration threshold
        got = self.meta("migration-threshold", heads + members)
        if got is None:
            group["migration_threshold"] = C(1000000, approx="Pacemaker's default INFINITY: failures never "
                                             "move the group (restarted in place)")
        else:
            score = pcmk_score(got[0])
            if score is None or score <= 0 or math.isinf(score) or score > 1000000:
                group["migration_threshold"] = C(1000000, approx=f"migration-threshold={got[0]}: never moves "
                                                 "on failures")
            else:
                group["migration_threshold"] = int(score)
        # failure timeout
        got = self.meta("failure-timeout", heads + members)
        seconds = pcmk_seconds(got[0]) if got else 0.0
        if got is not None and seconds is None:
            self.note(got[1], "dropped", f"failure-timeout={got[0]} is not a duration; 0 used")
            seconds = 0.0
        if seconds == 0:
            group["failure_timeout"] = C(0, "fail counts never expire (Pacemaker's default); "
                                            "`hasupctl cleanup` resets them")
        else:
            group["failure_timeout"] = duration(seconds)
        # stop failure
        on_fail = {op.attrs.get("on-fail") for m in members for op in crm.primitives[m].ops
                   if op.name == "stop" and op.attrs.get("on-fail")}
        stonith = self.fencing_enabled()
        if "block" in on_fail or (not on_fail and not stonith):
            group["on_stop_failure"] = C("block", "a resource that will not stop blocks the group "
                                                  "(Pacemaker without fencing)")
        else:
            group["on_stop_failure"] = C("reboot", approx="Pacemaker fences a node whose stop fails; "
                                         "hasupd's nearest is to reboot itself")

    def fencing_enabled(self) -> bool:
        p = self.prop("stonith-enabled") or self.prop("fencing-enabled")  # renamed in Pacemaker 2.1
        enabled = p is None or p[0].lower() in _TRUE
        return enabled and bool(self.stonith)

    # -------------------------------------------------------------- timeouts
    def base_timeout(self) -> tuple[float, str]:
        crm = self.crm
        if "timeout" in crm.op_defaults:
            v, line = crm.op_defaults["timeout"]
            return pcmk_seconds(v) or PCMK_DEFAULT_TIMEOUT, f"op_defaults timeout={v}"
        p = self.prop("default-action-timeout")
        if p is not None:
            return pcmk_seconds(p[0]) or PCMK_DEFAULT_TIMEOUT, f"default-action-timeout={p[0]}"
        return PCMK_DEFAULT_TIMEOUT, "Pacemaker's default action timeout (the source sets none)"

    def monitor_op(self, p: Primitive):
        mons = [op for op in p.ops if op.name == "monitor" and (pcmk_seconds(op.attrs.get("interval", "0")) or 0) > 0]
        if len(mons) > 1:
            self.note(self.w(mons[1].line), "dropped", f"{p.id}: more than one monitor; hasupd uses the "
                      f"first (interval {mons[0].attrs.get('interval')})")
        return mons[0] if mons else None

    # -------------------------------------------------------------- resources
    def resource(self, p: Primitive, base: float, group_interval: float | None) -> dict:
        res: dict = {"name": p.id}
        kind = self.kind(p)
        res["type"] = kind
        mapper = getattr(self, f"_map_{kind}")
        mapper(p, res)
        # timeouts
        touts: dict = {}
        for action in ("start", "stop", "monitor"):
            op = self.monitor_op(p) if action == "monitor" else p.op(action)
            if op is not None and "timeout" in op.attrs:
                t = pcmk_seconds(op.attrs["timeout"])
                if t is None:
                    self.note(self.w(op.line), "dropped", f"{p.id}: op {action} timeout={op.attrs['timeout']} "
                              "is not a duration")
                elif t != base:
                    touts[action] = duration(t)
        if touts:
            res["timeouts"] = Flow(touts)
        mon = self.monitor_op(p)
        if mon is not None and group_interval is not None:
            iv = pcmk_seconds(mon.attrs.get("interval", "0"))
            if iv is not None and iv != group_interval:
                res["monitor_interval"] = duration(iv)
        self._op_notes(p)
        self._meta_notes(p)
        return res

    def kind(self, p: Primitive) -> str:
        if p.cls == "ocf" and p.provider == "heartbeat" and p.type in ("IPaddr2", "IPaddr"):
            return "vip"
        if p.cls == "ocf" and p.provider == "heartbeat" and p.type == "Filesystem":
            return "filesystem"
        if p.cls == "ocf" and p.provider == "heartbeat" and p.type == "apache":
            return "httpd"
        if p.cls in ("lsb", "systemd", "service", "upstart"):
            return "systemd_unit"
        if p.cls == "ocf":
            return "ocf"
        raise DataError(self.w(p.line), f"primitive {p.id}: resource class {p.cls!r} ({p.agent}) is not "
                        "supported (ocf, lsb, systemd, service, stonith are)")

    def _leftover(self, p: Primitive, used: set[str], why: str) -> None:
        rest = {k: v for k, v in p.params.items() if k not in used}
        if rest:
            self.note(self.w(p.line), "dropped", f"{p.id}: params {', '.join(f'{k}={v}' for k, v in rest.items())}"
                      f" {why}")

    def _map_vip(self, p: Primitive, res: dict) -> None:
        pr = p.params
        if "ip" not in pr:
            raise DataError(self.w(p.line), f"primitive {p.id}: {p.type} without ip")
        res["ip"] = C(pr["ip"], approx=f"from the legacy {p.type} agent") if p.type == "IPaddr" else pr["ip"]
        mask = pr.get("cidr_netmask")
        if mask is None:
            res["cidr_netmask"] = C(24, approx="cidr_netmask not set: IPaddr2 takes it from the route; /24 assumed")
        elif mask.isdigit():
            res["cidr_netmask"] = int(mask)
        else:
            try:
                res["cidr_netmask"] = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
            except ValueError:
                raise DataError(self.w(p.line), f"primitive {p.id}: cidr_netmask={mask} is not a netmask") from None
        if "nic" in pr:
            res["nic"] = pr["nic"]
        else:
            res[Comment("nic: not set; hasupd finds the interface from the route, as IPaddr2 does")] = None
        if "iflabel" in pr:
            res["label"] = pr["iflabel"]
        if "arp_count" in pr:
            res["arp_count"] = int(pr["arp_count"])
        if "arp_interval" in pr:
            res["arp_interval"] = duration(float(pr["arp_interval"]) / 1000.0)
        self._leftover(p, {"ip", "cidr_netmask", "nic", "iflabel", "arp_count", "arp_interval"},
                       "have no hasupd vip equivalent")

    def _map_filesystem(self, p: Primitive, res: dict) -> None:
        pr = p.params
        for key in ("device", "directory"):
            if key not in pr:
                raise DataError(self.w(p.line), f"primitive {p.id}: Filesystem without {key}")
            res[key] = pr[key]
        fstype = pr.get("fstype")
        if fstype:
            res["fstype"] = fstype
        else:
            res["fstype"] = C("ext4", approx="fstype not set (Filesystem lets mount detect it); ext4 assumed")
        if pr.get("options"):
            res["options"] = pr["options"]
        fsck = (pr.get("run_fsck") or "auto").lower()
        if fsck == "force" or (fsck == "auto" and (fstype or "ext4") not in _JOURNALING):
            res["fsck"] = True
        if "force_unmount" in pr:
            fu = pr["force_unmount"].lower()
            res["force_unmount"] = fu != "false"
            if fu == "safe":
                res["force_unmount"] = C(True, approx="force_unmount=safe: hasupd kills the holders it finds")
        self._leftover(p, {"device", "directory", "fstype", "options", "run_fsck", "force_unmount"},
                       "have no hasupd filesystem equivalent")

    def _map_httpd(self, p: Primitive, res: dict) -> None:
        pr = p.params
        conf = pr.get("configfile")
        if conf:
            res["configfile"] = conf
        else:
            res["configfile"] = C("/etc/apache2/apache2.conf", approx="configfile not set; the agent looks "
                                  "for the distribution's default")
            conf = "/etc/apache2/apache2.conf"
        if pr.get("httpd"):
            res["binary"] = pr["httpd"]
        else:
            guess = "httpd" if conf.startswith("/etc/httpd/") else "apache2"
            res["binary"] = C(guess, approx="the apache agent finds the binary itself; guessed from "
                              "the configfile path")
        res[Comment("no unit: the apache agent runs httpd itself, as hasupd's command mode does")] = None
        if "port" in pr:
            res["port"] = int(pr["port"])
        else:
            res["port"] = C(80, approx="port not set: the apache agent reads Listen from the configuration")
        if "statusurl" in pr:
            res["statusurl"] = pr["statusurl"]
        if "testregex" in pr:
            res["status_regex"] = pr["testregex"]
        self._leftover(p, {"configfile", "httpd", "port", "statusurl", "testregex"},
                       "have no hasupd httpd equivalent")

    def _map_systemd_unit(self, p: Primitive, res: dict) -> None:
        unit = p.type if "." in p.type else f"{p.type}.service"
        if p.cls == "systemd":
            res["unit"] = unit
        else:
            res["unit"] = C(unit, approx=f"{p.cls}:{p.type} run through systemd's unit for it")
        self._leftover(p, set(), f"are ignored by {p.cls} resources")

    def _map_ocf(self, p: Primitive, res: dict) -> None:
        res["agent"] = f"{p.provider}:{p.type}"
        if p.params:
            # sorted: pcs and crmsh reorder them, and an agent reads them by name
            res["params"] = dict(sorted(p.params.items()))

    def _op_notes(self, p: Primitive) -> None:
        for op in p.ops:
            extra = {k: v for k, v in op.attrs.items()
                     if k not in ("interval", "timeout", "role", "id", "name", "record-pending")}
            if op.name not in ("start", "stop", "monitor"):
                if p.cls == "ocf" and self.kind(p) == "ocf" and "timeout" in op.attrs:
                    self.note(self.w(op.line), "dropped", f"{p.id}: op {op.name} timeout: hasupd takes it from "
                              "the agent's meta-data")
                continue
            for k, v in extra.items():
                if k == "on-fail" and (op.name == "stop" or v == "restart"):
                    continue  # stop: on_stop_failure; restart: Pacemaker's default, as hasupd does
                self.note(self.w(op.line), "dropped", f"{p.id}: op {op.name} {k}={v} has no hasupd equivalent")

    def _meta_notes(self, p: Primitive) -> None:
        for k, v in p.meta.items():
            if k in ("resource-stickiness", "migration-threshold", "failure-timeout", "target-role"):
                continue
            self.note(self.w(p.line), "dropped", f"{p.id}: meta {k}={v} has no hasupd equivalent")

    # -------------------------------------------------------------- guard
    def guard(self, names: list[str]) -> dict:
        """The split_brain_guard mapping."""
        crm = self.crm
        st = self.prop("stonith-enabled") or self.prop("fencing-enabled")
        nqp = self.prop("no-quorum-policy")
        if self.fencing_enabled():
            fenced = self._fence_guard(names)
            if fenced is not None:
                return fenced
        if st is None and not self.stonith:
            self.note(self.crm.path, "warning", "stonith-enabled is not set (default true) and there is no "
                      "stonith device: Pacemaker would not have started any resource")
        drbd_fenced = [r for r in (self.drbd.resources if self.drbd else [])
                       if r.fencing in ("resource-only", "resource-and-stonith") and r.name in self.used_drbd]
        if drbd_fenced:
            r = drbd_fenced[0]
            return {"mode": C("drbd", f"DRBD resource-level fencing ({r.fencing}, {r.fencing_where})")}
        pinged = self._ping_guard()
        if pinged is not None:
            return pinged
        parts = []
        if st is not None:
            parts.append(f"stonith-enabled={st[0]}")
        if nqp is not None:
            parts.append(f"no-quorum-policy={nqp[0]}")
        neither = (st is not None and st[0].lower() not in _TRUE) and \
            (nqp is not None and nqp[0] == "ignore")
        if neither or (self.coro and self.coro.two_node):
            self.note(self.w(st[1]) if st else crm.path, "warning",
                      "the source had neither fencing nor quorum: either node takes over on silence alone, "
                      "and a cut network runs the group twice. Consider split_brain_guard mode ping "
                      "(a tie-breaker such as the default gateway), drbd or fence")
        else:
            self.note(crm.path, "warning", "no fencing in the source: split_brain_guard none; consider ping, "
                      "drbd or fence")
        why = " + ".join(parts) or "no fencing in the source"
        return {"mode": C("none", f"{why}: take over on heartbeat silence alone")}

    def _fence_guard(self, names: list[str]) -> dict | None:
        got = fencing.import_fencing(self.crm, self.stonith, names, self.note, self.secrets_dir)
        if got.section is None:
            self.note(self.crm.path, "warning", "stonith is enabled but no stonith device could be carried "
                      "over: the guard falls back to what else the source has")
            return None
        self.fencing_section = got.section
        self.secrets = got.secrets
        if got.secrets:
            self.note(self.crm.path, "info", f"stonith passwords/keys are not in the YAML: they go to "
                      f"{', '.join(sorted(got.secrets))} (mode 0600, root only)")
        return {"mode": C("fence", "stonith-enabled with stonith devices: the fencing section")}

    def _ping_guard(self) -> dict | None:
        for p in self.ping:
            hosts = p.params.get("host_list", "").split()
            targets = []
            for h in hosts:
                try:
                    targets.append(str(ipaddress.IPv4Address(h)))
                except ValueError:
                    addr = self.hosts.entries.get(h) if self.hosts else None
                    if addr:
                        targets.append(addr[0])
                    else:
                        self.note(self.w(p.line), "dropped", f"{p.id}: ping target {h} is not an IPv4 address")
            if not targets:
                continue
            used = any(p.params.get("name", "pingd") in (loc.rule or "") for loc in self.crm.locations)
            if not used:
                self.note(self.w(p.line), "info", f"{p.id}: no location rule uses its attribute; "
                          "hasupd makes it the split-brain guard anyway")
            ping: dict = {"targets": Flow(targets)}
            mon = self.monitor_op(p)
            if mon is not None:
                ping["interval"] = duration(pcmk_seconds(mon.attrs.get("interval", "10")) or 10.0)
            else:
                ping["interval"] = C("10s", approx=f"{p.id} has no monitor op; the ping agent's usual 10s")
            ping["timeout"] = duration(pcmk_seconds(p.params.get("timeout", "2")) or 2.0)
            leftover = {k: v for k, v in p.params.items() if k not in ("host_list", "timeout", "name",
                                                                         "multiplier")}
            if leftover:
                self.note(self.w(p.line), "dropped", f"{p.id}: params {kv(leftover)} have no hasupd equivalent "
                          "(rise/fall count rounds instead)")
            return {"mode": C("ping", f"cloned {p.agent} {p.id}: run only while a target answers"),
                    "ping": ping}
        return None

    # -------------------------------------------------------------- nodes & rings
    def node_names(self) -> list[str]:
        """The two node names: corosync nodelist, DRBD hosts, crm nodes, locations, hosts file."""
        if self.coro and self.coro.nodes:
            names = []
            for n in self.coro.nodes:
                if not n.name:
                    n.name = self._name_of(n.addrs.get(0, ""), self.coro.where(n.line))
                names.append(n.name)
            return names
        used = [r for r in (self.drbd.resources if self.drbd else []) if r.name in self.used_drbd] or \
            (self.drbd.resources if self.drbd else [])
        if used and used[0].hosts:
            return [h.name for h in used[0].hosts]
        if used and used[0].floating:
            raise DataError(used[0].where, f"DRBD resource {used[0].name} names its nodes by `floating ADDRESS` "
                            "sections only: give --corosync (nodelist), or name the hosts in DRBD "
                            "(`on HOST { address ...; }`)")
        if self.crm.nodes:
            return list(self.crm.nodes)
        names = list(dict.fromkeys(loc.node for loc in self.crm.locations if loc.node))
        if names:
            return names
        nets = [_network(i.bindnetaddr) for i in (self.coro.interfaces if self.coro else []) if i.bindnetaddr]
        if self.hosts and nets:
            # one name per address in the ring's network, short names first
            by_addr: dict[str, str] = {}
            for name, (addr, _w) in self.hosts.entries.items():
                if ipaddress.IPv4Address(addr) in ipaddress.IPv4Network(nets[0]):
                    if addr not in by_addr or ("." in by_addr[addr] and "." not in name):
                        by_addr[addr] = name
            if by_addr:
                self.note(self.hosts.entries[next(iter(by_addr.values()))][1], "info",
                          f"node names from the hosts file (no nodelist, no DRBD): {', '.join(by_addr.values())}")
                return list(by_addr.values())
        raise DataError(self.crm.path, "cannot tell the node names: give --corosync (nodelist) or --drbd "
                        "(on HOST sections)")

    def _name_of(self, addr: str, where: str) -> str:
        """A nodelist entry without `name:`: its ring0_addr is a name, or an address that
        the DRBD configuration or the hosts file names."""
        try:
            ipaddress.IPv4Address(addr)
        except ValueError:
            return addr
        for r in (self.drbd.resources if self.drbd else []):
            for h in r.hosts:
                if h.address == addr:
                    self.note(where, "info", f"node {addr} has no name: {h.name}, from DRBD ({h.where})")
                    return h.name
        if self.hosts:
            names = [n for n, (a, _w) in self.hosts.entries.items() if a == addr]
            if names:
                short = [n for n in names if "." not in n] or names
                self.note(where, "info", f"node {addr} has no name: {short[0]}, from the hosts file")
                return short[0]
        raise DataError(where, f"node {addr} has no name: give --drbd or --hosts to name it")

    def _node_of(self, host: str, names: list[str]) -> str:
        """A DRBD host name as one of the cluster's node names (pcmk-1 / pcmk-1.example.com)."""
        if host in names:
            return host
        return next((n for n in names if n.split(".")[0] == host.split(".")[0]), host)

    def drbd_address(self, node: str) -> tuple[str, str] | None:
        for r in (self.drbd.resources if self.drbd else []):
            if r.name not in self.used_drbd and self.used_drbd:
                continue
            h = r.host(node) or next((x for x in r.hosts if x.name.split(".")[0] == node.split(".")[0]), None)
            if h and h.address:
                return h.address, h.where
        return None

    def check_hosts(self, names: list[str]) -> None:
        self.hosts_disagree: dict[str, str] = {}
        if not self.hosts:
            return
        for n in names:
            in_hosts = self.hosts.entries.get(n)
            drbd = self.drbd_address(n)
            # the same /24 but another address: one of them is wrong (a dedicated
            # replication network elsewhere is normal)
            if in_hosts and drbd and in_hosts[0] != drbd[0] and _network(in_hosts[0]) == _network(drbd[0]):
                self.hosts_disagree[n] = f"{in_hosts[1]} says {in_hosts[0]}"
                self.note(in_hosts[1], "warning", f"{n} is {in_hosts[0]} here but {drbd[0]} in the DRBD "
                          f"configuration ({drbd[1]}): the two disagree; hasupd uses {drbd[0]} "
                          "(fix whichever is wrong)")

    def heartbeat(self, names: list[str]) -> tuple[dict, list[dict]]:
        coro = self.coro
        hb: dict = {}
        nodes = [{"name": n} for n in names]
        addrs: list[list[tuple[str, str | None]]] = [[] for _ in names]  # per node: (address, approx)
        rings: list[dict] = []
        multicast = coro is not None and coro.transport == "udp" and \
            any(i.mcastaddr and not i.broadcast for i in coro.interfaces)
        if multicast:
            hb["transport"] = "multicast"
            by_name = {(n.name or n.addrs.get(0)): n for n in coro.nodes}
            for itf in coro.interfaces:
                ring: dict = {}
                net = _network(itf.bindnetaddr)
                if net is None:
                    raise DataError(coro.where(itf.line), "interface without a usable bindnetaddr")
                ring["bind_network"] = C(net, approx="corosync takes the mask from the interface; /24 assumed")
                ring["group"] = itf.mcastaddr
                ring["port"] = itf.mcastport or 5405
                ring["ttl"] = itf.ttl or 1
                rings.append(ring)
                for i, n in enumerate(names):
                    cn = by_name.get(n)
                    if cn is not None and itf.index in cn.addrs:
                        addrs[i].append(self._resolve(cn.addrs[itf.index], coro.where(cn.line)))
                    else:
                        addrs[i].append(self._address_in(n, net, coro.where(itf.line)))
        elif coro is not None and (coro.nodes or coro.transport in ("udpu", "knet", "iba")):
            hb["transport"] = C("unicast", f"corosync transport {coro.transport}") if coro.transport != "udp" \
                else C("unicast", approx="corosync udp with a nodelist")
            indexes = sorted({i for n in coro.nodes for i in n.addrs})
            if not indexes:
                # corosync 3 resolves the node names itself (knet): so do we, with the hosts file
                for cn in coro.nodes:
                    if not (self.hosts and cn.name in self.hosts.entries):
                        raise DataError(coro.where(cn.line), f"node {cn.name} has no ring0_addr: corosync resolves "
                                        "its name; give --hosts (/etc/hosts) so that the import can too")
                    cn.addrs[0] = cn.name
                indexes = [0]
            by_name = {(n.name or n.addrs.get(0)): n for n in coro.nodes}
            for idx in indexes:
                itf = next((i for i in coro.interfaces if i.index == idx), None)
                for i, n in enumerate(names):
                    cn = by_name[n]
                    a = cn.addrs.get(idx)
                    if a is None:
                        raise DataError(coro.where(cn.line), f"node {n} has no ring{idx}_addr")
                    addrs[i].append(self._resolve(a, coro.where(cn.line)))
                net = _network(itf.bindnetaddr) if itf and itf.bindnetaddr else None
                ring = {}
                if net:
                    ring["bind_network"] = C(net, approx="corosync takes the mask from the interface; /24 assumed")
                else:
                    net, why = _common_network([a[-1][0] for a in addrs])
                    ring["bind_network"] = C(net, approx=f"ring{idx}: {why}")
                ring["port"] = (itf.mcastport if itf and itf.mcastport else 5405)
                rings.append(ring)
            if coro.transport == "udp" and any(i.broadcast for i in coro.interfaces):
                self.note(coro.where(coro.line_of["totem"]), "dropped", "broadcast: hasupd sends unicast")
        else:
            hb["transport"] = C("unicast", approx="no corosync.conf given: heartbeat over the DRBD "
                                "replication network")
            for i, n in enumerate(names):
                d = self.drbd_address(n)
                h = self.hosts.entries.get(n) if self.hosts else None
                setup = [a for a in self.crm.node_addrs.get(n, []) if _network(a)]
                if setup:
                    addrs[i].append((setup[0], f"pcs cluster setup addr= ({self.w(self.crm.nodes[n].line)})"))
                elif d is not None:
                    addrs[i].append((d[0], f"DRBD address ({d[1]})"))
                elif h is not None:
                    addrs[i].append((h[0], f"hosts file ({h[1]})"))
                else:
                    raise DataError(self.crm.path, f"no address for node {n}: give --corosync, --drbd or --hosts")
            hb["transport"] = C("unicast", approx="no corosync.conf given: heartbeat over the nodes' "
                                + ("DRBD replication network" if self.drbd_address(names[0]) else "addresses"))
            net, why = _common_network([a[0][0] for a in addrs])
            rings.append({"bind_network": C(net, approx=why), "port": 5405})
        for i, node in enumerate(nodes):
            values = [a for a, _ in addrs[i]]
            why = "; ".join(w for _, w in addrs[i] if w)
            node["addresses"] = C(Flow(values), approx=why) if why else Flow(values)
        hb["rings"] = rings
        hb["interval"] = "200ms"
        if coro is not None and coro.token_ms is not None:
            dead = max(coro.token_ms / 1000.0, 0.6)
            hb["deadtime"] = C(duration(dead), approx=f"corosync token {coro.token_ms} ms "
                               f"({coro.where(coro.token_line)})")
        else:
            hb["deadtime"] = C("2s", "hasupd's default (no corosync token given)")
        dcd = self.prop("dc-deadtime")
        if dcd is not None:
            hb["initdead"] = C(duration(pcmk_seconds(dcd[0]) or 20.0), f"dc-deadtime={dcd[0]}")
        else:
            hb["initdead"] = C("20s", "like Pacemaker's dc-deadtime default")
        if coro is None:
            auth = "make it with `hasupctl keygen`"
        elif coro.crypto or coro.secauth:
            auth = "corosync's authkey cannot be reused: make one with `hasupctl keygen`"
            self.note(coro.where(coro.line_of["totem"]), "dropped", "corosync authkey (secauth/crypto_*): "
                      "hasupd signs its heartbeat with HMAC-SHA256 under its own key (`hasupctl keygen`)")
        else:
            auth = "corosync ran unauthenticated (secauth off); hasupd always signs: `hasupctl keygen`"
            self.note(coro.where(coro.line_of["totem"]), "warning", "corosync ran without authentication: "
                      "anyone on the LAN could join or disturb the ring; hasupd signs every packet "
                      "(run `hasupctl keygen` on one node, copy the key)")
        hb["authkey"] = C("/etc/hasupd/authkey", auth)
        return hb, nodes

    def _address_in(self, node: str, net: str, where: str) -> tuple[str, str | None]:
        network = ipaddress.IPv4Network(net)
        d = self.drbd_address(node)
        if d and ipaddress.IPv4Address(d[0]) in network:
            other = self.hosts_disagree.get(node)
            return d[0], f"corosync.conf lists no nodes; DRBD address ({d[1]})" + \
                (f"; the hosts file disagrees ({other})" if other else "")
        h = self.hosts.entries.get(node) if self.hosts else None
        if h and ipaddress.IPv4Address(h[0]) in network:
            return h[0], f"corosync.conf lists no nodes; hosts file ({h[1]})"
        raise DataError(where, f"no address of node {node} in {net}: give --drbd or --hosts")

    def _resolve(self, a: str, where: str) -> tuple[str, str | None]:
        try:
            return str(ipaddress.IPv4Address(a)), None
        except ValueError:
            pass
        h = self.hosts.entries.get(a) if self.hosts else None
        if h:
            return h[0], f"{a} resolved by the hosts file ({h[1]})"
        d = self.drbd_address(a)
        if d:
            return d[0], f"{a} resolved by the DRBD configuration ({d[1]})"
        raise DataError(where, f"ring address {a!r} is a host name: give --hosts to resolve it")

    # -------------------------------------------------------------- drbd
    def drbd_section(self, names: list[str], group_devices: dict[str, str]) -> dict | None:
        if not self.used_drbd:
            if self.drbd and self.drbd.resources:
                for r in self.drbd.resources:
                    self.note(r.where, "dropped", f"DRBD resource {r.name} is not used by the crm "
                              "configuration; left out")
            return None
        known = {r.name: r for r in (self.drbd.resources if self.drbd else [])}
        for r in known.values():
            if r.name not in self.used_drbd:
                self.note(r.where, "dropped", f"DRBD resource {r.name} is not used by the crm configuration; left out")
        resources = []
        minors = []
        ping = []
        for name in self.used_drbd:
            entry: dict = {"name": name}
            r = known.get(name)
            if r is None:
                dev = group_devices.get(name, "/dev/drbd0")
                m = re.search(r"^/dev/drbd(\d+)$", dev)
                if m is None:
                    # /dev/drbd/by-res/NAME, or LVM on top of DRBD: the minor is not in the crm input
                    dev = f"/dev/drbd{len(minors)}"
                    why = (f"no DRBD configuration given (--drbd) and the filesystem's device "
                           f"{group_devices.get(name)} does not name the minor: set the device")
                else:
                    why = "no DRBD configuration given (--drbd): the filesystem's device"
                entry["device"] = C(dev, approx=why)
                entry["disk"] = C("/dev/UNKNOWN", approx="no DRBD configuration given (--drbd): set the "
                                  "backing disk")
                entry["port"] = C(7789, approx="DRBD's usual port")
                self.note(self.crm.path, "warning", f"DRBD resource {name}: no DRBD configuration given "
                          "(--drbd); device, disk and port are placeholders")
                m = re.search(r"drbd(\d+)$", dev)
                minors.append(int(m.group(1)) if m else 0)
                resources.append(entry)
                continue
            host = r.host(names[0]) or (r.hosts[0] if r.hosts else None)
            if r.floating and not r.hosts:
                raise DataError(r.where, f"DRBD resource {name} names its nodes by `floating ADDRESS` sections "
                                "only: hasupd needs the host names (`on HOST { address ...; }`)")
            if host is None:
                raise DataError(r.where, f"DRBD resource {name} has no `on HOST` section")
            diskless = [h.name for h in r.hosts if (h.disk or "").lower() == "none"]
            if diskless:
                raise Refused(r.where, f"DRBD resource {name}: {', '.join(diskless)} is diskless (disk none)",
                              "A diskless node has no copy of the data to take over with; hasupd fails over "
                              "between two nodes that both keep the data.")
            for key in ("device", "disk"):
                if getattr(host, key) is None:
                    raise DataError(host.where, f"DRBD resource {name} on {host.name}: no {key}")
            entry["device"] = host.device
            if not re.search(r"drbd\d+$", host.device):
                entry["minor"] = host.minor
            by_node = {self._node_of(h.name, names): h.disk for h in r.hosts}
            if len(set(by_node.values())) > 1 and set(by_node) == set(names):
                entry["disk"] = C(Flow({n: by_node[n] for n in names}), "each node's own backing disk")
            else:
                entry["disk"] = host.disk
            entry["port"] = host.port or 7789
            for other in r.hosts:
                for key in ("device", "port"):
                    if getattr(other, key) != getattr(host, key):
                        self.note(other.where, "dropped", f"DRBD {name}: {other.name} has {key} "
                                  f"{getattr(other, key)}, {host.name} {getattr(host, key)}; hasupd assumes the "
                                  "same on both nodes (DRBD keeps its own configuration)")
            if len(r.hosts) > 2:
                self.note(r.where, "dropped", f"DRBD {name} has {len(r.hosts)} hosts; hasupd runs two nodes")
            if host.volumes > 1:
                self.note(r.where, "dropped", f"DRBD {name} has {host.volumes} volumes; hasupd follows "
                          "volume 0 (the others switch with it, DRBD keeps them together)")
            if r.protocol != "C":
                self.note(r.where, "warning", f"DRBD {name} replicates with protocol {r.protocol}: a failover "
                          "can lose the last writes")
            if r.two_primaries:
                self.note(r.where, "dropped", f"DRBD {name}: allow-two-primaries; hasupd keeps one Primary")
            if host.meta_disk and host.meta_disk != "internal":
                self.note(host.where, "info", f"DRBD {name}: meta-disk {host.meta_disk} stays in DRBD's "
                          "configuration")
            handler = r.handlers.get("fence-peer", "")
            if (r.fencing in ("resource-only", "resource-and-stonith") or handler) and "hasupd" not in handler:
                self.note(r.fencing_where or r.where, "warning", f"DRBD {name}: point its fence-peer handler at "
                          "`hasupd-drbd-handler fence-peer` (README: DRBD, Fencing handlers) instead of "
                          f"{handler or 'nothing'}")
            minors.append(host.minor if host.minor is not None else 0)
            ping.append((r.ping_int + r.ping_timeout, r))
            resources.append(entry)
        section: dict = {"load_module": True,
                         "minor_count": C(max(minors) + 1, f"modprobe drbd minor_count: enough for minor "
                                                           f"{max(minors)}")}
        if ping:
            wait, r = max(ping, key=lambda t: t[0])
            section["peer_dead_wait"] = C(duration(math.ceil(wait)), f"DRBD's ping-int {r.ping_int:g}s + "
                                          f"ping-timeout {r.ping_timeout:g}s"
                                          + (f" ({r.ping_where})" if r.ping_where else " (DRBD's defaults)"))
        else:
            section["peer_dead_wait"] = "11s"
        section["resources"] = resources
        return section

    # -------------------------------------------------------------- all
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

    def check_vips(self, groups: list[dict], nodes: list[dict]) -> None:
        """A VIP that is a node's own address would be added on one node while the other has it."""
        own = {}
        for n in nodes:
            value = n["addresses"].value if isinstance(n["addresses"], C) else n["addresses"]
            for a in (value.value if isinstance(value, Flow) else value):
                own[a] = n["name"]
        for g in groups:
            for r in g["resources"]:
                ip = r.get("ip")
                ip = ip.value if isinstance(ip, C) else ip
                name = r["name"].value if isinstance(r["name"], C) else r["name"]
                if ip is not None and ip in own:
                    p = self.crm.primitives[name]
                    self.note(self.w(p.line), "warning", f"{name}: the VIP {ip} is node {own[ip]}'s own address: "
                              "the other node would take the address of a live machine; give the service an "
                              "address of its own")

    def autostart(self, name: str, members: list[str]):
        got = self.meta("target-role", [name] + members)
        if got is not None and got[0].lower() == "stopped":
            return C(False, f"target-role=Stopped ({got[1]})")
        return True

    def location(self, name: str, members: list[str], g: dict, names: list[str]) -> None:
        best: tuple[float, str, str] | None = None
        ours = {name, *members}
        drbd_name = self.group_drbd.get(name)
        promoted_of_ours = {rid for rid, (dname, _l) in self.drbd_of.items() if dname == drbd_name}
        for loc in self.crm.locations:
            if loc.rsc in promoted_of_ours and (loc.role or "").lower() in PROMOTED:
                pass  # where DRBD is promoted is where the group runs
            elif loc.rsc not in ours:
                continue
            where = self.w(loc.line)
            if loc.id.startswith(("cli-prefer-", "cli-ban-", "cli-standby-")):
                self.note(where, "dropped", f"location {loc.id} was left behind by `crm resource move/ban` "
                          "(crm_resource -M/-B); hasupd moves are one-shot (`hasupctl move`, --pin to keep "
                          "one): not carried over as a pin")
                continue
            score = pcmk_score(loc.score)
            node = loc.node
            if node is None and loc.rule:
                m = re.fullmatch(r"#uname\s+eq\s+(\S+)", loc.rule.strip())
                if m:
                    node = m.group(1)
                elif any(p.params.get("name", "pingd") in loc.rule for p in self.ping):
                    continue  # the ping guard's rule
                else:
                    self.note(where, "dropped", f"location {loc.id}: rule {loc.rule!r} has no hasupd equivalent")
                    continue
            if score is None or node is None:
                self.note(where, "dropped", f"location {loc.id}: score {loc.score} not understood")
                continue
            if score < 0:
                other = [n for n in names if n != node]
                self.note(where, "dropped", f"location {loc.id} bans {loc.rsc} from {node}; hasupd cannot "
                          f"forbid a node (it would only prefer {other[0] if other else 'the other'})")
                continue
            if node not in names:
                self.note(where, "dropped", f"location {loc.id}: {node} is not one of the nodes")
                continue
            if best is None or score > best[0]:
                best = (score, node, where)
        if best is not None:
            if math.isinf(best[0]):
                g["preferred_node"] = C(best[1], approx=f"score INFINITY ({best[2]}): hasupd prefers {best[1]} "
                                        "but still fails over")
            else:
                g["preferred_node"] = C(best[1], f"location score {int(best[0])} ({best[2]})")

    def constraint_notes(self, grouped: set[str]) -> None:
        """Constraints that touch no group (e.g. keeping a stonith device off its own node)."""
        crm = self.crm
        for kind, items in (("location", crm.locations), ("colocation", crm.colocations), ("order", crm.orders)):
            for c in items:
                rscs = [c.rsc] if kind == "location" else [r for r, _ in c.members]
                if any(r in grouped or r in self.drbd_of for r in rscs):
                    continue
                if any(r in {p.id for p in self.ping} or r in crm.clones for r in rscs):
                    continue
                why = ("hasupd runs the fence command on the survivor, never against itself"
                       if any(crm.primitives.get(r) is not None and crm.primitives[r].cls == "stonith"
                              for r in rscs) else "hasupd does not run these resources")
                self.note(self.w(c.line), "dropped", f"{kind} {c.id} ({', '.join(rscs)}): {why}")

    def property_notes(self) -> None:
        known = {"stonith-enabled", "fencing-enabled", "priority-fencing-delay", "no-quorum-policy", "default-action-timeout", "default-resource-stickiness",
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
            if name not in ("resource-stickiness", "migration-threshold", "failure-timeout", "target-role"):
                self.note(self.w(line), "dropped", f"rsc_defaults {name}={value} has no hasupd equivalent")
        for n in self.crm.nodes.values():
            for k, v in n.attrs.items():
                if k == "standby" and v.lower() in ("off", "false"):
                    continue
                self.note(self.w(n.line), "dropped", f"node {n.name} attribute {k}={v} is state, not "
                          "configuration (`hasupctl standby` for standby)")


def _network(addr: str | None) -> str | None:
    if not addr:
        return None
    try:
        return str(ipaddress.IPv4Network(f"{addr}/24", strict=False))
    except ValueError:
        return None


def _common_network(addrs: list[str]) -> tuple[str, str]:
    """The /24 of the addresses, or the smallest network holding them all (routed
    replication links), with the reason."""
    nets = {_network(a) for a in addrs}
    if len(nets) == 1 and None not in nets:
        return nets.pop(), "the /24 of the addresses"
    try:
        ips = [ipaddress.ip_address(a) for a in addrs]
    except ValueError:
        raise DataError("heartbeat", f"addresses {', '.join(addrs)} are not IP addresses") from None
    if any(ip.version != 4 for ip in ips):
        raise DataError("heartbeat", f"addresses {', '.join(addrs)}: hasupd's heartbeat runs over IPv4; give "
                        "--corosync (its IPv4 ring addresses) or --hosts")
    prefix = 24
    while prefix > 0 and len({ipaddress.IPv4Network(f"{ip}/{prefix}", strict=False) for ip in ips}) > 1:
        prefix -= 1
    net = ipaddress.IPv4Network(f"{ips[0]}/{prefix}", strict=False)
    return str(net), f"the smallest network holding {', '.join(addrs)} (they are in different /24s)"


def _group_name(first: str) -> str:
    base = re.sub(r"^(p|res|rsc|prm|r)[_-]", "", first)
    return f"g_{base}"


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
