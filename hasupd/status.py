"""`hasupctl status`: the status document and its human rendering.

``build_status(...)`` turns what the engine knows into a plain dict, the
``--json`` output.  Its schema is stable: fields may be added, none is
renamed or removed without raising ``version``.

Schema (version 1; times ``*_wall`` are Unix seconds, durations seconds)::

    version            1
    generated_wall     when the document was made
    cluster, local     cluster name, the node that answered
    hasupd             {version, pid, started_wall, incarnation}
    config             {path, digest}
    maintenance        bool
    nodes              [{name, local, online, standby, settled, incarnation,
                         config_digest, config_matches, lost_wall (peer declared dead, or null)}]
    heartbeat          {transport, interval, deadtime,
                        rings: [{index, where, address, peer_heard, rtt_ms, loss_pct}]}
    guard              {mode, tiebreaker (bool|null), targets, fencing, warning (str|null)}
    drbd               [{resource, device, group,
                         nodes: {NODE: {role, disk, connection, replication, peer_role,
                                        peer_disk, sync_percent, sync_eta_s, split_brain, up,
                                        kernel_version, may_promote, quorum (null: 8.4)}}}]
    groups             [{name, state, node, since_wall, target_role, drbd,
                         resources: [{name, type, summary, state, node, detail,
                                      states: {NODE: state}}],
                         fail_counts: [{node, resource, count, last_failure_wall}],
                         bans: [NODE], pin (NODE|null),
                         pending_move ({node, epoch, pin}|null),
                         blocked (reason|null), explain (sentence),
                         last_failover ({start_wall, total, trigger, outcome, steps}|null)}]
    acting             {kind, group, resource, reason, waits_on} | null
    alerts             {recent: [{wall, event, severity, message}], dropped, agent_failures}
    warnings           [str]

``since_wall`` is known for a group running on the answering node (the
peer's clock is not ours): ask the node that runs it.  Group ``state``: ``started`` (every resource started on ``node``),
``stopped``, ``partial`` (some started), ``failed`` (a resource failed),
``stop_failed``, ``blocked``.  Resource ``state`` is a ``ResState`` value.
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping, Sequence

from hasupd import __version__
from hasupd.model import ClusterView, ResState

SCHEMA_VERSION = 1


def _resource_summary(r) -> str:
    t = r.type
    if t == "vip":
        return f"{r.ip}/{r.cidr_netmask}" + (f" on {r.nic}" if r.nic else "")
    if t == "filesystem":
        return f"{r.device} on {r.directory} ({r.fstype})"
    if t == "httpd":
        return f"{r.unit or r.binary} port {r.port}"
    if t == "systemd_unit":
        return r.unit
    if t == "ocf":
        return f"ocf:{r.agent}"
    return t


def _wall_of(view: ClusterView, mono: float) -> float | None:
    if not mono:
        return None
    return round(view.wall - (view.now - mono), 3)


def build_status(cfg, view: ClusterView, *, explains: Mapping[str, str] | None = None,
                 rings: Sequence[Mapping[str, Any]] | None = None,
                 last_failovers: Mapping[str, dict | None] | None = None, acting=None,
                 daemon: Mapping[str, Any] | None = None, alerter=None,
                 warnings: Sequence[str] | None = None, fencer=None, acting_waits_on: str = "") -> dict[str, Any]:
    """The status document.  ``rings``: per heartbeat ring, what the heartbeat
    knows of the peer there (``peer_heard``, ``rtt_ms``, ``loss_pct``); when
    None, ``view.peer.rings`` gives ``peer_heard`` only.  ``daemon``: pid,
    started_wall, incarnation (defaults: this process).  ``last_failovers``:
    {group: its latest failover timeline or None} (``History.last_failovers``)."""
    explains = explains or {}
    last_failovers = last_failovers or {}
    me, peer = view.me, view.peer
    local_digest = me.config_digest or cfg.digest()
    node_names = cfg.node_names()

    nodes = []
    for name in node_names:
        ns = view.nodes.get(name)
        nodes.append({
            "name": name, "local": name == view.local,
            "online": bool(ns and (ns.alive or name == view.local)),
            "standby": bool(ns and ns.standby), "settled": bool(ns and ns.settled),
            "incarnation": ns.incarnation if ns else "",
            "config_digest": ns.config_digest if ns else "",
            "config_matches": bool(ns and (not ns.config_digest or ns.config_digest == local_digest)),
            "lost_wall": (_wall_of(view, view.peer_lost_at)
                          if name != view.local and view.peer_lost_at is not None else None),
        })

    hb = cfg.heartbeat
    ring_list = []
    for r in hb.rings:
        known = dict(rings[r.index]) if rings is not None and r.index < len(rings) else {}
        heard = known.get("peer_heard")
        if heard is None:
            heard = bool(peer.rings[r.index]) if r.index < len(peer.rings) else False
        ring_list.append({
            "index": r.index, "where": r.interface or r.bind_network,
            "address": (f"{r.group}:{r.port}" if hb.transport == "multicast" else f"port {r.port}"),
            "peer_heard": bool(heard), "rtt_ms": known.get("rtt_ms"), "loss_pct": known.get("loss_pct"),
        })

    guard_cfg = cfg.split_brain_guard
    guard = {
        "mode": guard_cfg.mode, "tiebreaker": view.tiebreaker,
        "targets": list(guard_cfg.ping.targets) if guard_cfg.ping else [],
        "fencing": view.fencing.value,
        "warning": ("no split-brain protection: takes over on heartbeat silence alone"
                    if guard_cfg.mode == "none" else None),
    }

    # a peer that is not online is not shown by its last report: that is
    # history, not state (after a crash it still "holds" everything)
    live = [n for n in node_names if n == view.local or (view.nodes.get(n) and view.nodes[n].alive)]
    drbd = []
    group_of_drbd = {g.drbd: g.name for g in cfg.groups if g.drbd}
    for d in cfg.drbd.resources:
        per_node = {}
        for name in live:
            ns = view.nodes.get(name)
            st = ns.drbd.get(d.name) if ns else None
            if st is None:
                continue
            per_node[name] = {
                "role": st.role, "disk": st.disk, "connection": st.connection,
                "replication": st.replication, "peer_role": st.peer_role, "peer_disk": st.peer_disk,
                "sync_percent": st.sync_percent, "sync_eta_s": st.sync_eta_s,
                "split_brain": st.split_brain, "up": st.up, "kernel_version": st.kernel_version,
                "may_promote": st.may_promote, "quorum": st.quorum,
            }
        drbd.append({"resource": d.name, "device": d.device, "group": group_of_drbd.get(d.name),
                     "nodes": per_node})

    groups = []
    for g in cfg.groups:
        res_out = []
        started_on = {name: 0 for name in node_names}
        failed = stop_failed = False
        for r in g.resources:
            states = {}
            for name in live:
                ns = view.nodes.get(name)
                rs = ns.resources.get(r.name) if ns else None
                if rs is None:
                    continue
                states[name] = rs.state.value
                if rs.state == ResState.STARTED:
                    started_on[name] += 1
                failed |= rs.state == ResState.FAILED
                stop_failed |= rs.state == ResState.STOP_FAILED
            where = next((n for n, s in states.items() if s == ResState.STARTED.value), None)
            shown = where or (view.local if view.local in states else next(iter(states), None))
            ns = view.nodes.get(shown) if shown else None
            rs = ns.resources.get(r.name) if ns else None
            res_out.append({
                "name": r.name, "type": r.type, "summary": _resource_summary(r),
                "state": rs.state.value if rs else ResState.UNKNOWN.value, "node": where,
                "detail": rs.detail if rs else "", "states": states,
            })
        full = [n for n, c in started_on.items() if c == len(g.resources) and c > 0]
        some = [n for n, c in started_on.items() if c > 0]
        node = full[0] if full else (some[0] if some else None)
        if g.name in view.blocked:
            state = "blocked"
        elif stop_failed:
            state = "stop_failed"
        elif failed:
            state = "failed"
        elif full:
            state = "started"
        elif some:
            state = "partial"
        else:
            state = "stopped"
        since = None
        if full and node == view.local:
            sinces = [view.me.resources[r.name].since for r in g.resources]
            since = _wall_of(view, max(sinces))
        intent = view.moves.get(g.name)
        fo = last_failovers.get(g.name)
        groups.append({
            "name": g.name, "state": state, "node": node, "since_wall": since,
            "target_role": view.target_roles.get(g.name, "started" if g.autostart else "stopped"),
            "drbd": g.drbd, "resources": res_out,
            "fail_counts": [{"node": n, "resource": r, "count": fc.count, "last_failure_wall": fc.last_failure_wall}
                            for (n, gr, r), fc in sorted(view.fail_counts.items()) if gr == g.name],
            "bans": sorted(n for gr, n in view.bans if gr == g.name),
            "pin": intent.node if intent and intent.pin else None,
            "pending_move": ({"node": intent.node, "epoch": intent.epoch, "pin": intent.pin}
                             if intent and not (node == intent.node and state == "started") else None),
            "blocked": view.blocked.get(g.name),
            "explain": explains.get(g.name, ""),
            "last_failover": ({"start_wall": fo["start_wall"], "total": fo["total"], "trigger": fo["trigger"],
                               "outcome": fo["outcome"], "steps": len(fo["steps"])} if fo else None),
        })

    d = dict(daemon or {})
    recent = list(getattr(alerter, "recent", ()))[-5:]
    return {
        "version": SCHEMA_VERSION,
        "generated_wall": round(view.wall or time.time(), 3),
        "cluster": cfg.cluster, "local": view.local,
        "hasupd": {"version": d.get("version", __version__), "pid": d.get("pid", os.getpid()),
                   "started_wall": d.get("started_wall", _wall_of(view, view.started_at)),
                   "incarnation": d.get("incarnation", me.incarnation)},
        "config": {"path": cfg.path, "digest": local_digest},
        "maintenance": view.maintenance,
        "nodes": nodes,
        "heartbeat": {"transport": hb.transport, "interval": hb.interval, "deadtime": hb.deadtime,
                      "rings": ring_list},
        "guard": guard,
        "drbd": drbd,
        "groups": groups,
        "acting": ({"kind": getattr(acting.kind, "value", str(acting.kind)), "group": acting.group,
                    "resource": acting.resource, "reason": acting.reason, "waits_on": acting_waits_on}
                   if acting is not None else None),
        "alerts": {"recent": [{"wall": a.get("wall"), "event": a.get("event"), "severity": a.get("severity"),
                               "message": a.get("message")} for a in recent],
                   "dropped": getattr(alerter, "dropped", 0), "agent_failures": getattr(alerter, "agent_failures", 0)},
        "warnings": list(cfg.warnings if warnings is None else warnings),
        "fencing": _fencing_status(cfg, fencer, view),
    }


def _fencing_status(cfg, fencer, view: ClusterView) -> dict[str, Any] | None:
    """Each fence device with its last test, the last fence, and what the planner
    knows of fencing the peer (view.fence) (no secrets: the Fencer keeps only
    redacted messages)."""
    if cfg.fencing is None:
        return None
    tests = getattr(fencer, "last_tests", {}) or {}
    devices = [{"name": d.name, "agent": d.agent or (d.command[0] if d.command else None),
                "nodes": list(d.nodes), "last_test": tests.get(d.name)} for d in cfg.fencing.devices]
    return {"devices": devices, "last_fence": getattr(fencer, "last_fence", None), "peer": _peer_fence(cfg, view)}


def _peer_fence(cfg, view: ClusterView) -> dict[str, Any]:
    """view.fence, the facts the planner fences the peer by: its power as the devices
    report it, the failed attempts since it was lost, and when the next attempt is."""
    from hasupd.planner import fence_next_attempt
    f = view.fence
    at = fence_next_attempt(cfg, view)
    return {"node": cfg.peer_of(view.local), "power": f.peer_power or "unknown", "state": view.fencing.value,
            "attempts": f.attempts,
            "last_attempt_wall": _wall_of(view, f.last_attempt_at) if f.last_attempt_at is not None else None,
            "last_message": f.last_message,
            "next_attempt_wall": _wall_of(view, at) if at is not None else None,
            "next_attempt_in_s": round(at - view.now, 1) if at is not None else None}


# ---------------------------------------------------------------- human output

_COLORS = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2"}
_STATE_COLOR = {"started": "green", "online": "green", "stopped": "dim", "failed": "red", "stop_failed": "red",
                "blocked": "red", "offline": "red", "partial": "yellow", "unknown": "yellow",
                "standby": "yellow", "UpToDate": "green", "Connected": "green"}


def _ago(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _clock(wall: float | None, with_date: bool = False) -> str:
    if not wall:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S", time.localtime(wall))


def render_status(s: Mapping[str, Any], color: bool = False) -> str:
    """Short, aligned text like a clearer ``crm_mon -Af``; colour only if asked (a TTY)."""

    def c(text: str, name: str | None) -> str:
        if not color or not name:
            return text
        return f"\033[{_COLORS[name]}m{text}\033[0m"

    def st(text: str, pad: int = 0) -> str:
        return c(text.ljust(pad), _STATE_COLOR.get(text))

    now = s["generated_wall"]
    h = s["hasupd"]
    up = f", up {_ago(now - h['started_wall'])}" if h.get("started_wall") else ""
    out = [c(f"Cluster {s['cluster']}", "bold") + f" on {s['local']} (hasupd {h['version']}, pid {h['pid']}{up})"
           f"  {_clock(now, True)}"]
    if s["maintenance"]:
        out.append(c("MAINTENANCE MODE: hasupd watches but changes nothing (hasupctl maintenance off)", "yellow"))
    w = max(len(n["name"]) for n in s["nodes"])
    hb = s["heartbeat"]
    out.append("")
    out.append("Nodes:")
    for n in s["nodes"]:
        state = "online" if n["online"] else "offline"
        extra = []
        if n["local"]:
            extra.append("(this node)")
        if n["standby"]:
            extra.append(st("standby"))
        if n.get("lost_wall"):
            extra.append(f"lost {_ago(now - n['lost_wall'])} ago")
        elif n["online"] and not n["config_matches"]:
            extra.append(c("CONFIG DIFFERS", "red"))
        if not n["local"]:
            rings = []
            for r in hb["rings"]:
                if r["peer_heard"]:
                    more = []
                    if r.get("rtt_ms") is not None:
                        more.append(f"rtt {r['rtt_ms']:.1f}ms")
                    if r.get("loss_pct") is not None:
                        more.append(f"loss {r['loss_pct']:.0f}%")
                    rings.append(f"ring {r['index']} " + c("ok", "green") + (f" ({', '.join(more)})" if more else ""))
                else:
                    rings.append(f"ring {r['index']} " + c("silent", "red"))
            extra.append(", ".join(rings))
        out.append(f"  {n['name']:<{w}}  {st(state, 7)}  " + "; ".join(extra))
    out.append(f"Heartbeat: {hb['transport']} on " + ", ".join(f"ring {r['index']} {r['where']} {r['address']}"
                                                          for r in hb["rings"])
               + f"; every {hb['interval']:g}s, peer dead after {hb['deadtime']:g}s")
    g = s["guard"]
    if g["mode"] == "ping":
        tb = {True: c("reachable", "green"), False: c("UNREACHABLE", "red"), None: "not probed yet"}[g["tiebreaker"]]
        out.append(f"Guard: ping {', '.join(g['targets'])} {tb}")
    elif g["mode"] == "fence":
        out.append(f"Guard: fence (fencing of the peer: {g['fencing']})")
    else:
        out.append(f"Guard: {g['mode']}" + (c(f" (warning: {g['warning']})", "yellow") if g["warning"] else ""))

    fencing = s.get("fencing")
    if fencing:
        for dev in fencing["devices"]:
            t = dev.get("last_test")
            test = (f"last test {_clock(t['when'])}: " + (c("ok", "green") if t["ok"] else c("FAILED", "red"))
                    + f" ({t['message']})") if t else "not tested yet (hasupctl fence test)"
            out.append(f"Fence device {dev['name']} ({dev['agent']}) for {', '.join(dev['nodes'])}: {test}")
        lf = fencing.get("last_fence")
        if lf:
            result = c("ok", "green") if lf["ok"] else c("FAILED", "red")
            out.append(f"Last fence: {lf['node']} by {lf.get('by', '?')} at {_clock(lf['when'], True)}, "
                       f"{lf['duration']:.2f}s, {result}: {lf['message']}")
        pf = fencing.get("peer")
        if pf and (pf["attempts"] or pf["next_attempt_wall"] is not None or pf["power"] != "unknown"):
            line = f"Fencing {pf['node']}: power {pf['power']}"
            if pf["attempts"]:
                line += (f"; {pf['attempts']} failed attempt{'s' if pf['attempts'] > 1 else ''}, last at "
                         f"{_clock(pf['last_attempt_wall'], True)}: {pf['last_message'] or 'no detail'}")
            if pf["next_attempt_in_s"]:
                line += f"; next attempt at {_clock(pf['next_attempt_wall'])} (in {pf['next_attempt_in_s']:g}s)"
            elif pf["next_attempt_wall"] is not None:
                line += "; fencing now"
            out.append(line)

    for d in s["drbd"]:
        out.append("")
        out.append(f"DRBD {d['resource']} {d['device']}" + (f" (for {d['group']})" if d["group"] else "") + ":")
        for name, x in d["nodes"].items():
            extra = ""
            if x["replication"] not in ("Off", "Established") and x["replication"]:
                extra = f"  {x['replication']}"
                if x["sync_percent"] is not None:
                    extra += f" {x['sync_percent']:.1f}%"
                if x["sync_eta_s"] is not None:
                    extra += f" eta {_ago(x['sync_eta_s'])}"
            if x["split_brain"]:
                extra += "  " + c("SPLIT BRAIN", "red")
            if not x["up"]:
                extra += "  (not up)"
            if x.get("quorum") is False:
                extra += "  " + c("NO QUORUM", "red")
            if x.get("kernel_version"):
                extra += f"  (DRBD {x['kernel_version']})"
            out.append(f"  {name:<{w}}  {x['role']:<9}  {st(x['disk'], 12)}  {st(x['connection'], 10)}{extra}".rstrip())

    for grp in s["groups"]:
        out.append("")
        where = f" on {grp['node']}" if grp["node"] else ""
        since = f" since {_clock(grp['since_wall'])} ({_ago(now - grp['since_wall'])})" if grp["since_wall"] else ""
        role = "" if grp["target_role"] == "started" else c(f"  [target role: {grp['target_role']}]", "yellow")
        out.append(f"Group {c(grp['name'], 'bold')}: {st(grp['state'])}{where}{since}{role}")
        rw = max((len(r["name"]) for r in grp["resources"]), default=0)
        tw = max((len(r["type"]) for r in grp["resources"]), default=0)
        for r in grp["resources"]:
            detail = r["detail"] or r["summary"]  # the driver's detail says more; the summary is in --json
            out.append(f"  {r['name']:<{rw}}  {r['type']:<{tw}}  {st(r['state'], 11)}  {detail}".rstrip())
        if grp["explain"]:
            out.append(f"  why: {grp['explain']}")
        if grp["blocked"]:
            out.append("  " + c(f"BLOCKED: {grp['blocked']}", "red") + f" (after fixing: hasupctl cleanup {grp['name']})")
        if grp["pin"]:
            out.append(f"  pinned to {grp['pin']} (hasupctl clear {grp['name']} removes it)")
        if grp["pending_move"]:
            out.append(c(f"  moving to {grp['pending_move']['node']}", "yellow")
                       + f" (intent epoch {grp['pending_move']['epoch']})")
        for fc in grp["fail_counts"]:
            out.append("  " + c(f"fail count {fc['resource']} on {fc['node']}: {fc['count']}", "yellow")
                       + f" (last {_clock(fc['last_failure_wall'])})")
        for node in grp["bans"]:
            out.append("  " + c(f"banned from {node}", "red") + f" (hasupctl cleanup {grp['name']} --node {node})")
        fo = grp["last_failover"]
        if fo:
            out.append(f"  last failover: {_clock(fo['start_wall'], True)}, {fo['total']:.2f}s, {fo['outcome']}"
                       f" ({fo['trigger']})")

    if s["acting"]:
        a = s["acting"]
        out.append("")
        target = a["resource"] or a["group"] or ""
        out.append(c(f"Now: {a['kind']} {target}".rstrip(), "yellow") + (f" ({a['reason']})" if a["reason"] else ""))
        if a.get("waits_on"):
            out.append(f"  waiting for {a['waits_on']}")
    recent = [a for a in s["alerts"]["recent"] if a["event"] != "config_warning"]  # listed below
    if recent:
        out.append("")
        out.append("Recent alerts:")
        for a in recent:
            sev = a["severity"]
            out.append(f"  {_clock(a['wall'])}  " + c(f"{sev:<8}", {"critical": "red", "warning": "yellow"}.get(sev))
                       + f"  {a['event']}: {a['message']}")
    if s["warnings"]:
        out.append("")
        out.append("Configuration warnings:")
        for warning in s["warnings"]:
            out.append("  " + c(warning, "yellow"))
    return "\n".join(out) + "\n"
