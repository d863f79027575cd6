"""Groups both ways: which resources run together, in which start order, on which DRBD
resource, with which policy and preferred node; and what hasupd does not run
(3+ nodes, active/active, dual-primary, stacked DRBD)."""

from __future__ import annotations

import math
import re

from hasupd.config import Group
from hasupd.migrate.common import DataError, Refused, duration, kv, pcmk_score, pcmk_seconds, score_text
from hasupd.migrate.crm import Primitive
from hasupd.migrate.yamlout import C

PROMOTED = ("master", "promoted")
# agents that only make sense cloned on every node at once
_ACTIVE_ACTIVE = {"controld", "o2cb", "clvm", "lvmlockd", "IPaddr2", "IPaddr", "apache", "Filesystem"}


class LayoutImport:
    """Pacemaker -> hasupd.yaml (a part of importer._Import)."""

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


def _group_name(first: str) -> str:
    base = re.sub(r"^(p|res|rsc|prm|r)[_-]", "", first)
    return f"g_{base}"


class LayoutExport:
    """hasupd.yaml -> Pacemaker (a part of export._Exporter)."""

    def policies(self) -> None:
        cfg, m = self.cfg, self.m
        keys = [(g.stickiness, g.migration_threshold, g.failure_timeout) for g in cfg.groups]
        self.shared = len(set(keys)) == 1 and bool(keys)
        if self.shared:
            m.rsc_defaults = self.policy_pairs(cfg.groups[0])

    def policy_pairs(self, g: Group) -> list[tuple[str, str]]:
        return [("resource-stickiness", score_text(g.stickiness)),
                ("migration-threshold", str(g.migration_threshold)),
                ("failure-timeout", duration(g.failure_timeout) if g.failure_timeout else "0")]

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
                    attrs.append(("timeout", duration(t)))
                if action == "stop" and block:
                    attrs.append(("on-fail", "block"))
                if attrs:
                    ops.append((action, attrs + [("interval", "0s")]))
            mon = [("interval", duration(r.monitor_interval))]
            if r.timeouts.monitor != self.base:
                mon.append(("timeout", duration(r.timeouts.monitor)))
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
