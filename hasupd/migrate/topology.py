"""Nodes and heartbeat rings both ways: corosync.conf's nodelist/interfaces (or the DRBD
and hosts files) <-> nodes + heartbeat; and the corosync.conf part of an export."""

from __future__ import annotations

import ipaddress

from hasupd.migrate.common import DataError, duration, pcmk_seconds
from hasupd.migrate.yamlout import C, Flow


class TopologyImport:
    """Pacemaker -> hasupd.yaml (a part of importer._Import)."""

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
                    net, why = _common_network([a[-1][0] for a in addrs], coro.where(coro.line_of["totem"]))
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
            net, why = _common_network([a[0][0] for a in addrs], self.crm.path)
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


def _network(addr: str | None) -> str | None:
    if not addr:
        return None
    try:
        return str(ipaddress.IPv4Network(f"{addr}/24", strict=False))
    except ValueError:
        return None


def _common_network(addrs: list[str], where: str) -> tuple[str, str]:
    """The /24 of the addresses, or the smallest network holding them all (routed
    replication links), with the reason."""
    nets = {_network(a) for a in addrs}
    if len(nets) == 1 and None not in nets:
        return nets.pop(), "the /24 of the addresses"
    try:
        ips = [ipaddress.ip_address(a) for a in addrs]
    except ValueError:
        raise DataError(where, f"heartbeat addresses {', '.join(addrs)} are not IP addresses") from None
    if any(ip.version != 4 for ip in ips):
        raise DataError(where, f"heartbeat addresses {', '.join(addrs)}: hasupd's heartbeat runs over IPv4; give "
                        "--corosync (its IPv4 ring addresses) or --hosts")
    prefix = 24
    while prefix > 0 and len({ipaddress.IPv4Network(f"{ip}/{prefix}", strict=False) for ip in ips}) > 1:
        prefix -= 1
    net = ipaddress.IPv4Network(f"{ips[0]}/{prefix}", strict=False)
    return str(net), f"the smallest network holding {', '.join(addrs)} (they are in different /24s)"


# ---------------------------------------------------------------- export


def render_corosync(cfg) -> tuple[str, list[str]]:
    """The totem/nodelist/quorum part of corosync.conf for CFG -> (text, notes)."""
    hb = cfg.heartbeat
    notes: list[str] = []
    lines = ["# corosync.conf for the same two nodes, written by `hasupctl export`",
             "totem {", "    version: 2", f"    cluster_name: {cfg.cluster}"]
    multicast = hb.transport == "multicast"
    if multicast:
        lines.append("    transport: udp")
        if len(hb.rings) > 1:
            lines.append("    # corosync 2 (redundant rings); corosync 3 runs one udp ring: use knet there")
            lines.append("    rrp_mode: passive")
            notes.append("corosync 3 runs one multicast (udp) ring only; the second ring needs corosync 2 "
                         "(rrp_mode) or transport knet with unicast rings")
    else:
        lines.append("    transport: knet")
    lines.append(f"    token: {round(hb.deadtime * 1000)}")
    if multicast:
        notes.append("authentication: corosync's udp transport cannot encrypt; hasupd signed its heartbeat "
                     f"with {hb.authkey}")
    else:
        lines += ["    crypto_cipher: aes256", "    crypto_hash: sha256"]
        notes.append("corosync needs its own key: run `corosync-keygen` (hasupd's authkey is not reused)")
    for ring in hb.rings:
        key = "ringnumber" if multicast else "linknumber"
        lines += ["    interface {", f"        {key}: {ring.index}"]
        if ring.bind_network:
            lines.append(f"        bindnetaddr: {ring.bind_network.split('/')[0]}")
        elif multicast:
            notes.append(f"ring {ring.index} is bound to interface {ring.interface}; corosync needs "
                         "bindnetaddr (the interface's network): fill it in")
            lines.append(f"        bindnetaddr: 0.0.0.0  # CHANGE: the network of {ring.interface}")
        if multicast:
            lines.append(f"        mcastaddr: {ring.group}")
        lines.append(f"        mcastport: {ring.port}")
        if multicast:
            lines.append(f"        ttl: {ring.ttl}")
        lines.append("    }")
    lines += ["}", "", "nodelist {"]
    for nodeid, node in enumerate(cfg.nodes, 1):
        lines.append("    node {")
        for i, addr in enumerate(node.addresses):
            lines.append(f"        ring{i}_addr: {addr}")
        lines += [f"        name: {node.name}", f"        nodeid: {nodeid}", "    }"]
    lines += ["}", "", "quorum {", "    provider: corosync_votequorum", "    two_node: 1", "}", ""]
    return "\n".join(lines), notes
