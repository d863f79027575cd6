"""The split-brain guard both ways: stonith devices <-> fence (the devices themselves:
fencing.py), DRBD resource-level fencing <-> drbd, a cloned ping <-> ping, neither <-> none."""

from __future__ import annotations

import ipaddress
import math
import re
import shlex

from hasupd.migrate import fencing
from hasupd.migrate.common import duration, kv, pcmk_seconds
from hasupd.migrate.pcmkmodel import Prim
from hasupd.migrate.yamlout import C, Flow

_TRUE = ("true", "yes", "1", "on", "y")
# a round-1 config's `/bin/sh -c case "$HASUPD_PEER" in HOST) exec fence_x ...;; esac` command
_CASE = re.compile(r"(?P<hosts>[^\s;)]+)\) exec (?P<cmd>.*?);;")


class GuardImport:
    """Pacemaker -> hasupd.yaml (a part of importer._Import)."""

    def fencing_enabled(self) -> bool:
        p = self.prop("stonith-enabled") or self.prop("fencing-enabled")  # renamed in Pacemaker 2.1
        enabled = p is None or p[0].lower() in _TRUE
        return enabled and bool(self.stonith)

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
            self._ping_quorum_note(p, targets)
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


    def _ping_quorum_note(self, p, targets: list[str]) -> None:
        """`pingd lt 200` with multiplier 100: Pacemaker wanted 2 answers; hasupd wants one."""
        attr = p.params.get("name", "pingd")
        try:
            multiplier = float(p.params.get("multiplier", "1")) or 1.0
        except ValueError:
            return
        for loc in self.crm.locations:
            m = re.search(rf"\b{re.escape(attr)}\s+(lt|lte)\s+(\d+)", loc.rule or "")
            if not m:
                continue
            limit = int(m.group(2))
            needed = math.ceil(limit / multiplier) if m.group(1) == "lt" else math.floor(limit / multiplier) + 1
            if needed > 1:
                self.note(self.w(loc.line), "warning", f"location {loc.id} needed {needed} of the "
                          f"{len(targets)} ping targets to answer ({attr} {m.group(1)} {limit}, multiplier "
                          f"{multiplier:g}); hasupd's ping guard runs the group while any one answers")


class GuardExport:
    """hasupd.yaml -> Pacemaker (a part of export._Exporter)."""

    def guard(self) -> None:
        cfg, m = self.cfg, self.m
        guard = cfg.split_brain_guard
        self.fencing = False
        self.fence_rsc_defaults: list[tuple[str, str]] = []
        fencing_cfg = getattr(cfg, "fencing", None)  # fence-schema.md's Fencing
        if fencing_cfg is not None and fencing_cfg.devices:
            st = fencing.export_fencing(fencing_cfg)
            self.notes += st.notes
            if st.prims:
                self.fencing = True
                m.properties += st.properties
                self.fence_rsc_defaults = st.rsc_defaults
                m.prims += [Prim(pid, agent, params, [("monitor", [("interval", "60s")])])
                            for pid, agent, params in st.prims]
                m.fence_levels = st.levels
                return
        if guard.mode == "fence" and guard.fence is not None:
            devices = self.fence_devices(list(guard.fence.command))
            if devices:
                self.fencing = True
                m.properties += [("stonith-enabled", "true"), ("stonith-timeout", duration(guard.fence.timeout))]
                m.prims += devices
                return
            self.notes.append(f"fence command {' '.join(guard.fence.command)!r} is not a fence agent: "
                              "configure a stonith device for it by hand; exported with stonith disabled")
        m.properties += [("stonith-enabled", "false"), ("no-quorum-policy", "ignore")]
        if guard.mode == "ping" and guard.ping is not None:
            p = guard.ping
            m.prims.append(Prim("p_ping", "ocf:pacemaker:ping",
                                 [("host_list", " ".join(p.targets)), ("multiplier", "1000"),
                                  ("timeout", f"{p.timeout:g}")],
                                 [("monitor", [("interval", duration(p.interval)), ("timeout", "60s")])]))
            m.clones.append(("cl_ping", "p_ping", False, []))
            for g in cfg.groups:
                m.locations.append((f"loc_{g.name}_on_ping", g.name, "-inf",
                                    "rule:not_defined pingd or pingd lte 0"))
            if p.tcp_port is not None:
                self.notes.append(f"split_brain_guard.ping.tcp_port {p.tcp_port}: the ping agent uses ICMP")
            if (p.rise, p.fall) != (2, 2):
                self.notes.append("split_brain_guard.ping rise/fall: the ping agent has attempts/dampen instead")

    def fence_devices(self, command: list[str]) -> list[Prim]:
        def device(argv: list[str], pid: str, hosts: str | None) -> Prim | None:
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
            return Prim(pid, f"stonith:{argv[0].rsplit('/', 1)[-1]}", params,
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
