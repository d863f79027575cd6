"""DRBD configuration (drbd.conf, global_common.conf, *.res) -> ``DrbdInfo``.

``parse(text, path)`` is pure: DRBD's grammar (``word ... ;`` and
``word ... { ... }``) into a tree with lines.  ``load(path)`` reads a file or
a directory (``/etc/drbd.d``: global_common.conf then *.res; or a directory
holding drbd.conf) and follows ``include``.  ``interpret(trees)`` picks out
what hasupd needs: per resource, each host's address, device/minor, backing
disk and meta-disk, protocol, fencing and handlers, ping-int/ping-timeout.
Both DRBD 8.4 (``on HOST { device disk address meta-disk }``, fencing in
``disk``) and DRBD 9 (``node-id``, ``volume N { }``, ``connection-mesh``,
``connection``, fencing in ``net``) are read.  Options DRBD itself keeps
applying (hasupd drives the same DRBD configuration with drbdadm) are left
alone; unknown statements are reported with file:line.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field

from hasupd.migrate.common import DataError, Note, at


@dataclass
class Stmt:
    words: list[str]
    path: str
    line: int
    block: list[Stmt] | None = None  # children when the statement has { }

    @property
    def key(self) -> str:
        return self.words[0] if self.words else ""

    @property
    def where(self) -> str:
        return at(self.path, self.line)


_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[{};]|[^\s{};"#]+|#[^\n]*|\n|\s+|"')


_CONTINUED_STRING = re.compile(r'"(?:[^"\\\n]|\\[^\n])*\\\n')


def parse(text: str, path: str = "<drbd>") -> list[Stmt]:
    """DRBD configuration text -> statements; DataError on unbalanced braces or strings."""
    bad = _CONTINUED_STRING.search(text)
    if bad:
        raise DataError(at(path, text.count("\n", 0, bad.end()) ), "a quoted string continues onto the next "
                        "line with \\: drbdadm rejects this (write the handler on one line, or call a script)")
    line = 1
    stack: list[list[Stmt]] = [[]]
    opened: list[Stmt] = []
    words: list[str] = []
    start = 0
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        if tok == "\n":
            line += 1
            continue
        if tok.isspace():
            line += tok.count("\n")
            continue
        if tok.startswith("#"):
            continue
        if tok == '"':
            raise DataError(at(path, line), "a quoted string is not closed on its line")
        if tok == ";":
            if words:
                stack[-1].append(Stmt(words, path, start))
            words = []
        elif tok == "{":
            st = Stmt(words, path, start if words else line, [])
            stack[-1].append(st)
            stack.append(st.block)
            opened.append(st)
            words = []
        elif tok == "}":
            if words:
                raise DataError(at(path, start), f"missing ';' after {' '.join(words)!r}")
            if len(stack) == 1:
                raise DataError(at(path, line), "'}' without a matching '{'")
            stack.pop()
            opened.pop()
        else:
            if not words:
                start = line
            words.append(tok[1:-1] if tok.startswith('"') else tok)
    if words:
        raise DataError(at(path, start), f"missing ';' after {' '.join(words)!r}")
    if opened:
        st = opened[-1]
        raise DataError(st.where, f"'{{' of {' '.join(st.words)!r} is never closed")
    return stack[0]


def load(path: str, read=None) -> tuple[list[Stmt], list[Note]]:
    """Read PATH (a file or a directory) with its includes -> statements, notes."""
    read = read or (lambda p: open(p, encoding="utf-8").read())
    notes: list[Note] = []
    seen: set[str] = set()

    def files_of(p: str) -> list[str]:
        if os.path.isdir(p):
            if os.path.exists(os.path.join(p, "drbd.conf")):
                return [os.path.join(p, "drbd.conf")]
            common = [os.path.join(p, "global_common.conf")] if os.path.exists(
                os.path.join(p, "global_common.conf")) else []
            return common + sorted(glob.glob(os.path.join(p, "*.res")))
        return [p]

    def one(p: str) -> list[Stmt]:
        real = os.path.realpath(p)
        if real in seen:
            return []
        seen.add(real)
        try:
            text = read(p)
        except OSError as e:
            raise DataError(p, f"cannot read: {e.strerror}") from None
        out: list[Stmt] = []
        for st in parse(text, p):
            if st.key == "include" and len(st.words) == 2:
                pattern = st.words[1]
                base = os.path.dirname(p)
                # drbd.conf includes "drbd.d/*.res": relative to the including file,
                # or to its parent when the file itself lives in drbd.d
                candidates = [pattern] if os.path.isabs(pattern) else \
                    [os.path.join(base, pattern), os.path.join(os.path.dirname(base), pattern)]
                matched: list[str] = []
                for c in candidates:
                    matched = sorted(glob.glob(c))
                    if matched:
                        break
                if not matched and not os.path.isabs(pattern):
                    # an include of a sibling by its installed path (/etc/drbd.d/x)
                    matched = sorted(glob.glob(os.path.join(base, os.path.basename(pattern))))
                if not matched:
                    notes.append(Note(st.where, "warning", f"include {pattern!r} matches no file here"))
                for f in matched:
                    out.extend(one(f))
            else:
                out.append(st)
        return out

    stmts: list[Stmt] = []
    for f in files_of(path):
        stmts.extend(one(f))
    if os.path.isfile(path) and not any(st.key == "common" for st in stmts):
        sibling = os.path.join(os.path.dirname(path), "global_common.conf")
        if os.path.exists(sibling) and os.path.realpath(sibling) not in seen:
            stmts = one(sibling) + stmts
    return stmts, notes


# ---------------------------------------------------------------- interpretation


@dataclass
class Host:
    name: str
    where: str
    address: str | None = None
    port: int | None = None
    device: str | None = None
    minor: int | None = None
    disk: str | None = None
    meta_disk: str | None = None
    node_id: int | None = None
    volumes: int = 0
    volume_ids: set[str] = field(default_factory=set)
    first_volume: str | None = None  # the lowest volume number whose device/disk were taken


@dataclass
class Resource:
    name: str
    where: str
    hosts: list[Host] = field(default_factory=list)
    protocol: str = "C"
    fencing: str | None = None
    fencing_where: str = ""
    handlers: dict[str, str] = field(default_factory=dict)
    ping_int: float = 10.0
    ping_timeout: float = 0.5
    ping_where: str = ""
    two_primaries: bool = False
    version: int = 8  # 9 when node-id, volumes, connection-mesh or connection appear
    stacked_on: str | None = None  # stacked-on-top-of RESOURCE
    floating: bool = False  # floating ADDRESS sections instead of `on HOST`

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)


@dataclass
class DrbdInfo:
    resources: list[Resource]
    notes: list[Note]


# statements DRBD keeps applying by itself: read, then left to DRBD
_SECTIONS = {"net", "disk", "handlers", "startup", "options", "syncer", "proxy"}
_HOST_WORDS = {"device", "disk", "address", "meta-disk", "flexible-meta-disk", "node-id", "volume",
               "proxy"}
_RESOURCE_WORDS = {"protocol", "device", "disk", "meta-disk", "flexible-meta-disk", "on", "volume",
                   "connection-mesh", "connection", "floating", "stacked-on-top-of", "net", "handlers",
                   "startup", "options", "syncer", "template-file", "_this_host"}


def _device(words: list[str]) -> tuple[str | None, int | None]:
    """device /dev/drbd1 [minor 1] | device minor 1 | device drbd1."""
    dev, minor = None, None
    rest = words[1:]
    if rest and rest[0] != "minor":
        dev = rest[0] if rest[0].startswith("/") else f"/dev/{rest[0]}"
        rest = rest[1:]
    if len(rest) >= 2 and rest[0] == "minor" and rest[1].isdigit():
        minor = int(rest[1])
    if dev is None and minor is not None:
        dev = f"/dev/drbd{minor}"
    if minor is None and dev is not None:
        m = re.search(r"drbd(\d+)$", dev)
        minor = int(m.group(1)) if m else None
    return dev, minor


def _address(words: list[str]) -> tuple[str | None, int | None]:
    """address [ipv4|ipv6|ssocks|sdp] IP:PORT."""
    value = words[-1]
    host, _, port = value.rpartition(":")
    return host.strip("[]") or None, int(port) if port.isdigit() else None


_MAX_WORDS = {"device": 4, "disk": 2, "address": 3, "meta-disk": 3, "flexible-meta-disk": 3, "node-id": 2}


def _check_words(st: Stmt) -> None:
    """`disk /dev/sdb1 address ...`: a forgotten ';' joins two statements."""
    limit = _MAX_WORDS.get(st.key)
    if st.block is None and limit is not None and len(st.words) > limit:
        raise DataError(st.where, f"{st.key} takes at most {limit - 1} values, found "
                        f"{' '.join(st.words[1:])!r}: is a ';' missing?")


def _volume_or_disk(host: Host, st: Stmt, notes: list[Note]) -> None:
    _check_words(st)
    if st.key == "device":
        host.device, host.minor = _device(st.words)
    elif st.key == "disk" and st.block is None:
        host.disk = st.words[1] if len(st.words) > 1 else None
    elif st.key in ("meta-disk", "flexible-meta-disk"):
        host.meta_disk = " ".join(st.words[1:])
    elif st.key == "disk":
        pass  # disk { } options: DRBD's own


def _defaults_from(res: Resource, section: list[Stmt], notes: list[Note]) -> None:
    """net/disk/handlers/startup/options of a `common` or `resource` section."""
    for st in section:
        if st.key == "protocol" and len(st.words) > 1:
            res.protocol = st.words[1]
        elif st.key in ("net", "disk") and st.block is not None:
            for opt in st.block:
                if opt.key == "fencing" and len(opt.words) > 1:
                    res.fencing, res.fencing_where = opt.words[1], opt.where
                elif opt.key == "ping-int" and len(opt.words) > 1:
                    res.ping_int, res.ping_where = float(opt.words[1]), opt.where
                elif opt.key == "ping-timeout" and len(opt.words) > 1:
                    res.ping_timeout, res.ping_where = float(opt.words[1]) / 10.0, opt.where
                elif opt.key == "allow-two-primaries":
                    res.two_primaries = len(opt.words) == 1 or opt.words[1] in ("yes", "true")
                elif opt.key == "protocol" and len(opt.words) > 1:
                    res.protocol = opt.words[1]  # DRBD 9 allows it in net { }
        elif st.key == "handlers" and st.block is not None:
            for h in st.block:
                if len(h.words) > 1:
                    res.handlers[h.key] = " ".join(h.words[1:])


def interpret(stmts: list[Stmt]) -> DrbdInfo:
    notes: list[Note] = []
    common: list[Stmt] = []
    resources: list[Resource] = []
    for st in stmts:
        if st.key == "global":
            continue  # usage-count, udev names: DRBD's own
        if st.key == "common" and st.block is not None:
            common.extend(st.block)
        elif st.key == "resource" and st.block is not None and len(st.words) >= 2:
            resources.append(_resource(st, common, notes))
        elif st.key == "skip":
            continue
        else:
            notes.append(Note(st.where, "unknown", f"unknown DRBD statement {' '.join(st.words)!r}; ignored"))
    return DrbdInfo(resources, notes)


def _resource(st: Stmt, common: list[Stmt], notes: list[Note]) -> Resource:
    res = Resource(st.words[1], st.where)
    _defaults_from(res, common, notes)
    _defaults_from(res, st.block, notes)
    shared = Host("*", st.where)  # device/disk/meta-disk given once for every host
    for sub in st.block:
        if sub.key not in _RESOURCE_WORDS and sub.key not in _SECTIONS:
            notes.append(Note(sub.where, "unknown",
                              f"resource {res.name}: unknown DRBD statement {' '.join(sub.words)!r}; ignored"))
            continue
        if sub.key in ("device", "meta-disk", "flexible-meta-disk") or (sub.key == "disk" and sub.block is None):
            _volume_or_disk(shared, sub, notes)
        elif sub.key == "volume" and sub.block is not None:
            res.version = 9
            _volume(shared, sub, notes)
        elif sub.key == "on" and sub.block is not None and len(sub.words) >= 2:
            res.hosts.append(_host(sub, res, notes))
        elif sub.key in ("connection-mesh", "connection"):
            res.version = 9
            _connection(sub, res, notes)
        elif sub.key == "stacked-on-top-of":
            res.stacked_on = sub.words[1] if len(sub.words) > 1 else "?"
        elif sub.key == "floating":
            res.floating = True
    for h in res.hosts:
        own_first = h.first_volume is not None and (shared.first_volume is None or
                                                    _vol_key(h.first_volume) <= _vol_key(shared.first_volume))
        for attr in ("device", "minor", "disk", "meta_disk"):
            if getattr(h, attr) is None or (not own_first and getattr(shared, attr) is not None
                                            and shared.first_volume is not None):
                setattr(h, attr, getattr(shared, attr))
        h.volume_ids |= shared.volume_ids
        h.volumes = max(len(h.volume_ids), 1 if h.device else 0)
    return res


def _vol_key(v: str) -> int:
    return int(v) if v.isdigit() else 0


def _volume(host: Host, st: Stmt, notes: list[Note]) -> None:
    """`volume N { device; disk; meta-disk }`: the lowest N is the one hasupd follows."""
    vid = st.words[1] if len(st.words) > 1 else "0"
    host.volume_ids.add(vid)
    if host.first_volume is None or _vol_key(vid) < _vol_key(host.first_volume):
        host.first_volume = vid
        for v in st.block:
            _volume_or_disk(host, v, notes)


def _host(sub: Stmt, res: Resource, notes: list[Note]) -> Host:
    host = Host(sub.words[1], sub.where)
    if len(sub.words) > 2:
        notes.append(Note(sub.where, "dropped", f"resource {res.name}: `on {' '.join(sub.words[1:])}` "
                          f"names several hosts; only {sub.words[1]} is used"))
    for st in sub.block:
        if st.key not in _HOST_WORDS:
            notes.append(Note(st.where, "unknown", f"resource {res.name} on {host.name}: unknown DRBD "
                              f"statement {' '.join(st.words)!r}; ignored"))
        elif st.key == "address":
            _check_words(st)
            host.address, host.port = _address(st.words)
        elif st.key == "node-id" and len(st.words) > 1:
            host.node_id = int(st.words[1])
            res.version = 9
        elif st.key == "volume" and st.block is not None:
            res.version = 9
            _volume(host, st, notes)
        else:
            _volume_or_disk(host, st, notes)
    return host


def _connection(sub: Stmt, res: Resource, notes: list[Note]) -> None:
    """DRBD 9 connection sections: `host NAME address IP:PORT` fills in addresses."""
    for st in sub.block or []:
        if st.key == "host" and len(st.words) >= 2:
            name = st.words[1]
            if "address" in st.words:
                i = st.words.index("address")
                # host X address [FAMILY] A:P [via outside-address B | via proxy on ...]: A is X's address
                end = st.words.index("via") if "via" in st.words else len(st.words)
                addr, port = _address(st.words[i:end])
                host = res.host(name)
                if host is not None and host.address is None:
                    host.address, host.port = addr, port
        elif st.key == "path" and st.block is not None:
            _connection(st, res, notes)
        elif st.key in ("hosts", "net", "disk", "volume"):
            continue
        else:
            notes.append(Note(st.where, "unknown", f"resource {res.name}: unknown DRBD statement "
                              f"{' '.join(st.words)!r} in {sub.key}; ignored"))
