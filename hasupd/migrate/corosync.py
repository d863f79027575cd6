"""corosync.conf <-> heartbeat rings (pure, no I/O).

``parse(text, path)`` reads corosync's ``section { key: value }`` syntax
(corosync 1/2 with openais ``service``/``aisexec`` sections, corosync 3 with
knet) into ``CorosyncInfo``: transport, token, authentication, the rings
(``interface { ringnumber/linknumber bindnetaddr mcastaddr mcastport ttl }``)
and the ``nodelist``.  ``render(cfg)`` writes the ``totem``/``nodelist``/
``quorum`` part of a corosync.conf for a hasupd configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hasupd.migrate.common import DataError, Note, at


@dataclass
class Section:
    name: str
    line: int
    items: list[tuple[str, str, int]] = field(default_factory=list)  # key, value, line
    sections: list[Section] = field(default_factory=list)

    def get(self, key: str) -> tuple[str, int] | None:
        for k, v, line in self.items:
            if k == key:
                return v, line
        return None

    def value(self, key: str, default: str | None = None) -> str | None:
        got = self.get(key)
        return got[0] if got else default

    def subs(self, name: str) -> list[Section]:
        return [s for s in self.sections if s.name == name]


_LINE = re.compile(r"^(?P<key>[A-Za-z0-9_.-]+)\s*:\s*(?P<value>.*?)\s*$")
# `interface: {` is accepted by corosync's own parser too
_OPEN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)\s*:?\s*\{\s*(?P<rest>.*)$")


def parse_tree(text: str, path: str) -> Section:
    root = Section("", 0)
    stack = [root]
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        while line:
            m = _OPEN.match(line)
            if m:
                sec = Section(m.group("name"), lineno)
                stack[-1].sections.append(sec)
                stack.append(sec)
                line = m.group("rest").strip()
                continue
            if line.startswith("}"):
                if len(stack) == 1:
                    raise DataError(at(path, lineno), "'}' without a matching '{'")
                stack.pop()
                line = line[1:].strip()
                continue
            m = _LINE.match(line)
            if not m:
                raise DataError(at(path, lineno), f"expected `key: value`, `name {{` or `}}`, found {line!r}")
            value, line = m.group("value"), ""
            if value.endswith("}"):  # `key: value }` closing on the same line
                value, line = value[:-1].strip(), "}"
            stack[-1].items.append((m.group("key"), value, lineno))
    if len(stack) > 1:
        raise DataError(at(path, stack[-1].line), f"section {stack[-1].name!r} is never closed")
    return root


@dataclass
class Interface:
    index: int
    line: int
    bindnetaddr: str | None = None
    mcastaddr: str | None = None
    mcastport: int | None = None
    ttl: int | None = None
    broadcast: bool = False
    members: list[tuple[str, int]] = field(default_factory=list)  # corosync 1.x udpu member { memberaddr }


@dataclass
class CNode:
    name: str | None
    nodeid: int | None
    addrs: dict[int, str]  # ring/link index -> address (or host name)
    line: int


@dataclass
class CorosyncInfo:
    path: str
    version: int | None  # totem version (always 2 in corosync 2 and 3)
    cluster_name: str | None
    transport: str  # udp (multicast), udpu, knet, iba
    token_ms: int | None
    token_line: int
    secauth: bool
    crypto: str | None  # "aes256/sha256" or None
    interfaces: list[Interface]
    nodes: list[CNode]
    two_node: bool
    qdevice_host: str | None
    notes: list[Note]
    line_of: dict[str, int] = field(default_factory=dict)

    def where(self, line: int) -> str:
        return at(self.path, line)


_KNOWN_SECTIONS = {"totem", "nodelist", "quorum", "logging", "service", "aisexec", "amf", "uidgid",
                   "resources", "system", "nozzle", "qb", "event", "pload", "nodelist.node"}
_TOTEM_TUNING = {"token_retransmits_before_loss_const", "consensus", "join", "threads", "netmtu",
                 "window_size", "max_messages", "send_join", "vsftype", "config_version",
                 "clear_node_high_bit", "token_coefficient", "token_warning", "heartbeat_failures_allowed",
                 "max_network_delay", "miss_count_const", "fail_recv_const", "seqno_unchanged_const",
                 "merge", "downcheck", "hold", "block_unlisted_ips", "cancel_token_hold_on_retransmit",
                 "ip_version", "link_mode", "rrp_mode", "nodeid", "token_retransmit", "keyfile", "key",
                 "crypto_model", "knet_pmtud_interval", "knet_mtu", "knet_compression_model",
                 "knet_compression_threshold", "knet_compression_level", "rrp_problem_count_timeout",
                 "rrp_problem_count_threshold", "rrp_token_expired_timeout", "rrp_autorecovery_check_timeout",
                 "interface"}
_TOTEM_USED = {"version", "cluster_name", "transport", "token", "secauth", "crypto_cipher", "crypto_hash"}
_INTERFACE_KEYS = {"ringnumber", "linknumber", "bindnetaddr", "mcastaddr", "mcastport", "ttl", "broadcast",
                   "knet_link_priority", "knet_ping_interval", "knet_ping_timeout", "knet_ping_precision",
                   "knet_pong_count", "knet_transport"}


def parse(text: str, path: str = "<corosync.conf>") -> CorosyncInfo:
    root = parse_tree(text, path)
    notes: list[Note] = []
    for sec in root.sections:
        if sec.name not in _KNOWN_SECTIONS:
            notes.append(Note(at(path, sec.line), "unknown", f"unknown corosync section {sec.name!r}; ignored"))
    for key, _value, line in root.items:
        if key == "compatibility":  # corosync 1.x (whitetank): no meaning since
            continue
        notes.append(Note(at(path, line), "unknown", f"corosync key {key!r} outside any section; ignored"))
    totems = root.subs("totem")
    if not totems:
        raise DataError(at(path, 1), "no totem { } section: is this a corosync.conf?")
    totem = totems[0]
    tuning: list[str] = []
    for key, _value, line in totem.items:
        if key in _TOTEM_TUNING:
            if key not in ("interface",):
                tuning.append(key)
        elif key not in _TOTEM_USED:
            notes.append(Note(at(path, line), "unknown", f"unknown totem key {key!r}; ignored"))
    if tuning:
        notes.append(Note(at(path, totem.line), "dropped",
                          f"totem tuning ({', '.join(sorted(set(tuning)))}) has no hasupd equivalent"))

    version = totem.value("version")
    token = totem.get("token")
    secauth = (totem.value("secauth", "off") or "off").lower() in ("on", "yes", "1")
    cipher = totem.value("crypto_cipher")
    hashing = totem.value("crypto_hash")
    crypto = None
    if cipher and cipher != "none" or hashing and hashing != "none":
        crypto = f"{cipher or 'none'}/{hashing or 'none'}"

    interfaces: list[Interface] = []
    for sec in totem.subs("interface"):
        for key, _value, line in sec.items:
            if key not in _INTERFACE_KEYS:
                notes.append(Note(at(path, line), "unknown", f"unknown interface key {key!r}; ignored"))
        idx = sec.value("ringnumber", sec.value("linknumber", str(len(interfaces))))
        port = sec.value("mcastport")
        ttl = sec.value("ttl")
        members = []
        for sub in sec.sections:
            got = sub.get("memberaddr") if sub.name == "member" else None
            if got is None:
                notes.append(Note(at(path, sub.line), "unknown", f"interface: unknown section {sub.name!r}"))
            else:
                members.append(got)
        interfaces.append(Interface(
            int(idx) if idx and idx.isdigit() else len(interfaces), sec.line,
            sec.value("bindnetaddr"), sec.value("mcastaddr"),
            int(port) if port and port.isdigit() else None,
            int(ttl) if ttl and ttl.isdigit() else None,
            (sec.value("broadcast", "no") or "no").lower() in ("yes", "on", "1"), members))
    interfaces.sort(key=lambda i: i.index)

    nodes: list[CNode] = []
    for nl in root.subs("nodelist"):
        for sec in nl.sections:
            if sec.name != "node":
                notes.append(Note(at(path, sec.line), "unknown", f"nodelist: unknown section {sec.name!r}"))
                continue
            addrs: dict[int, str] = {}
            name = nodeid = None
            for key, value, line in sec.items:
                m = re.fullmatch(r"ring(\d+)_addr", key)
                if m:
                    addrs[int(m.group(1))] = value
                elif key == "name":
                    name = value
                elif key == "nodeid":
                    nodeid = int(value) if value.isdigit() else None
                elif key not in ("quorum_votes",):
                    notes.append(Note(at(path, line), "unknown", f"nodelist node: unknown key {key!r}"))
            nodes.append(CNode(name, nodeid, addrs, sec.line))
    nodes.sort(key=lambda n: (n.nodeid is None, n.nodeid or 0))
    if not nodes and any(i.members for i in interfaces):
        # corosync 1.x udpu: the nodes are the members, listed per ring in the same order
        for k in range(max(len(i.members) for i in interfaces)):
            addrs = {i.index: i.members[k][0] for i in interfaces if k < len(i.members)}
            line = next(i.members[k][1] for i in interfaces if k < len(i.members))
            nodes.append(CNode(None, None, addrs, line))
        if len(interfaces) > 1:
            notes.append(Note(at(path, interfaces[0].line), "info", "member lists of the rings paired by "
                              "position (the first member of each ring is one node)"))

    transport = totem.value("transport")
    if transport is None:
        # corosync 3 defaults to knet; 1/2 to udp (multicast); a multicast address says udp
        has_mcast = any(i.mcastaddr for i in interfaces)
        transport = "udp" if has_mcast or not nodes else "knet"
    two_node = False
    qdevice = None
    for q in root.subs("quorum"):
        two_node = (q.value("two_node", "0") or "0") == "1"
        for dev in q.subs("device"):
            for net in dev.subs("net"):
                qdevice = net.value("host")
    return CorosyncInfo(path, int(version) if version and version.isdigit() else None,
                        totem.value("cluster_name"), transport,
                        int(token[0]) if token and token[0].isdigit() else None,
                        token[1] if token else totem.line, secauth, crypto, interfaces, nodes,
                        two_node, qdevice, notes, {"totem": totem.line})
