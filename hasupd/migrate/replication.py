"""DRBD both ways: the DRBD configuration's resources (device, per-node disks, port,
ping timing) <-> drbd:, and the DRBD resource file of an export."""

from __future__ import annotations

import math
import re

from hasupd.config import Config
from hasupd.migrate.common import DataError, Refused, duration
from hasupd.migrate.yamlout import C, Flow


class DrbdImport:
    """Pacemaker -> hasupd.yaml (a part of importer._Import)."""

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


# what DRBD runs when it loses the peer under guard drbd: hasupd answers (README: Fencing handlers)
DRBD_HANDLER = "/usr/bin/hasupd-drbd-handler"


def render_drbd(cfg: Config, drbd84: bool = False) -> str:
    """The DRBD resource file; DRBD84 writes 8.4's syntax (fencing in disk { }, no node-id)."""
    if not cfg.drbd.resources:
        return ""
    out = ["# DRBD resources for Pacemaker's ocf:linbit:drbd, written by `hasupctl export`",
           f"# (DRBD {'8.4' if drbd84 else '9'} syntax; the replication address is each node's first "
           "heartbeat address)"]
    fenced = cfg.split_brain_guard.mode == "drbd"
    wait = cfg.drbd.peer_dead_wait
    for d in cfg.drbd.resources:
        out.append(f"resource {d.name} {{")
        out.append("    protocol C;")
        net = []
        if fenced and not drbd84:
            net.append("fencing resource-and-stonith;")
        if wait != 11.0 and wait >= 2:
            net += [f"ping-int {math.ceil(wait) - 1};", "ping-timeout 10;"]
        if net:
            out.append("    net {")
            out += [f"        {n}" for n in net]
            out.append("    }")
        if fenced and drbd84:
            out += ["    disk {", "        fencing resource-and-stonith;", "    }"]
        if fenced:
            out += ["    handlers {",
                    f'        fence-peer "{DRBD_HANDLER} fence-peer";',
                    f'        unfence-peer "{DRBD_HANDLER} unfence-peer";',
                    "    }"]
        for i, n in enumerate(cfg.nodes):
            out += [f"    on {n.name} {{"] + ([] if drbd84 else [f"        node-id {i};"]) + [
                    f"        device {d.device} minor {d.minor};",
                    f"        disk {d.disk_of(n.name)};",
                    f"        address {n.addresses[0]}:{d.port};",
                    "        meta-disk internal;",
                    "    }"]
        out.append("}")
    return "\n".join(out) + "\n"
