"""Resource agents both ways: IPaddr2 <-> vip, Filesystem <-> filesystem, apache <-> httpd,
lsb/systemd/service <-> systemd_unit, other OCF agents <-> ocf; their operations'
timeouts and intervals."""

from __future__ import annotations

import ipaddress

from hasupd.config import FilesystemResource, HttpdResource, OcfResource, SystemdUnitResource, VipResource
from hasupd.migrate.common import DataError, duration, pcmk_seconds
from hasupd.migrate.crm import Primitive
from hasupd.migrate.pcmkmodel import Prim
from hasupd.migrate.yamlout import C, Comment, Flow

PCMK_DEFAULT_TIMEOUT = 20.0
_JOURNALING = {"ext3", "ext4", "xfs", "btrfs", "jfs", "reiserfs", "gfs2", "ocfs2", "nilfs2"}


class AgentsImport:
    """Pacemaker -> hasupd.yaml (a part of importer._Import)."""

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


class AgentsExport:
    """hasupd.yaml -> Pacemaker (a part of export._Exporter)."""

    def resource(self, r) -> Prim:
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
            return Prim(r.name, "ocf:heartbeat:IPaddr2", params, [])
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
            return Prim(r.name, "ocf:heartbeat:Filesystem", params, [])
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
            return Prim(r.name, "ocf:heartbeat:apache", params, [])
        if isinstance(r, SystemdUnitResource):
            return Prim(r.name, f"systemd:{r.unit.removesuffix('.service')}", [], [])
        if isinstance(r, OcfResource):
            if r.ocf_root != "/usr/lib/ocf":
                self.notes.append(f"{r.name}: ocf_root {r.ocf_root}: Pacemaker uses its own OCF root")
            return Prim(r.name, f"ocf:{r.agent}", list(r.params), [])
        raise TypeError(r)
