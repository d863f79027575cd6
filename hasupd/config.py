"""hasupd.yaml -> frozen dataclasses.

Every error names file, line and column and says what was expected.  The
defaults live in one place: the ``DEFAULTS`` section of each ``_load_*``
function below, mirrored in README.md's configuration reference.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import math
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Union

import yaml

from hasupd import redact

EX_CONFIG = 78
DEFAULT_PATH = "/etc/hasupd/hasupd.yaml"


class ConfigError(Exception):
    """A configuration error, with where it is and what was expected."""

    def __init__(self, path: str, line: int, column: int, message: str):
        self.path, self.line, self.column, self.message = path, line, column, message
        super().__init__(f"{path}:{line}:{column}: {message}")


# ---------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class Ring:
    """One heartbeat ring (a network): where to send and listen."""

    index: int
    interface: str | None  # ring bound to this interface, or ...
    bind_network: str | None  # ... to the local address inside this network
    group: str  # multicast group (multicast transport)
    port: int
    ttl: int


@dataclass(frozen=True)
class Node:
    name: str
    addresses: tuple[str, ...]  # heartbeat address on each ring, by ring index


@dataclass(frozen=True)
class Heartbeat:
    transport: str  # "multicast" | "unicast"
    rings: tuple[Ring, ...]
    interval: float
    deadtime: float
    initdead: float
    authkey: str


@dataclass(frozen=True)
class PingGuard:
    targets: tuple[str, ...]
    tcp_port: int | None  # None: ICMP echo; else a TCP connect to this port
    interval: float
    timeout: float
    rise: int  # successes in a row before "reachable"
    fall: int  # failures in a row before "unreachable"


@dataclass(frozen=True)
class FenceGuard:
    command: tuple[str, ...]
    timeout: float


@dataclass(frozen=True)
class SplitBrainGuard:
    mode: str  # "ping" | "fence" | "drbd" | "none"
    ping: PingGuard | None = None
    fence: FenceGuard | None = None


@dataclass(frozen=True)
class FenceDevice:
    """One fence device: a fence-agents agent or a site command (fed the same stdin)."""

    name: str
    agent: str | None  # fence-agents program name (fence_ipmilan), or ...
    command: tuple[str, ...] | None  # ... a site command's argv
    nodes: tuple[str, ...]  # the nodes this device can fence
    plugs: tuple[tuple[str, str], ...]  # node -> plug/port (pcmk_host_map)
    options: tuple[tuple[str, str], ...]  # non-secret key=value lines for stdin
    secrets: str | None  # file of key=value lines, values only ever go to stdin
    timeout: float  # per agent call
    retries: int  # extra attempts of a failed off/on
    delay: float  # pcmk_delay_base: wait before this device's off
    # where each key was written (file, line) for `hasupctl check`'s errors
    positions: tuple[tuple[str, str, int], ...] = field(default=(), compare=False)

    def plug(self, node: str) -> str | None:
        return next((p for n, p in self.plugs if n == node), None)


@dataclass(frozen=True)
class Fencing:
    devices: tuple[FenceDevice, ...]
    levels: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]  # node -> levels of device names
    owner_head_start: float
    random_delay_max: float

    def device(self, name: str) -> FenceDevice | None:
        return next((d for d in self.devices if d.name == name), None)

    def levels_for(self, node: str) -> list[list[FenceDevice]]:
        """The levels that fence NODE, in order; by default one level with
        every device naming the node."""
        for n, levels in self.levels:
            if n == node:
                return [[d for d in (self.device(name) for name in level) if d is not None]
                        for level in levels]
        every = [d for d in self.devices if node in d.nodes]
        return [every] if every else []


@dataclass(frozen=True)
class DrbdResource:
    name: str
    device: str
    minor: int
    disk: str  # the backing disk; the first node's when they differ per node
    port: int
    disks: tuple[tuple[str, str], ...] = ()  # (node, disk) when `disk:` is given per node

    def disk_of(self, node: str) -> str:
        return dict(self.disks).get(node, self.disk)


@dataclass(frozen=True)
class Drbd:
    load_module: bool
    minor_count: int
    status_path: str  # /proc/drbd
    drbdadm: str
    drbdsetup: str
    peer_dead_wait: float  # bound on waiting for DRBD to notice a dead peer
    resources: tuple[DrbdResource, ...]

    def resource(self, name: str) -> DrbdResource | None:
        return next((r for r in self.resources if r.name == name), None)


@dataclass(frozen=True)
class Timeouts:
    start: float
    stop: float
    monitor: float


@dataclass(frozen=True)
class FilesystemResource:
    name: str
    timeouts: Timeouts
    monitor_interval: float
    device: str
    directory: str
    fstype: str
    options: str
    fsck: bool
    force_unmount: bool
    kill_grace: float
    probe_file: bool
    type: str = "filesystem"


@dataclass(frozen=True)
class VipResource:
    name: str
    timeouts: Timeouts
    monitor_interval: float
    ip: str
    cidr_netmask: int
    nic: str | None
    label: str | None
    arp_count: int
    arp_interval: float
    arp_repeat_after: float
    check_duplicate: bool
    type: str = "vip"


@dataclass(frozen=True)
class HttpdResource:
    name: str
    timeouts: Timeouts
    monitor_interval: float
    configfile: str
    unit: str | None  # systemd mode when set; command mode otherwise
    binary: str
    pidfile: str | None
    port: int
    statusurl: str
    status_regex: str
    check_config: bool
    environment: tuple[tuple[str, str], ...]
    graceful_stop: bool = False  # wait for in-flight requests (SIGWINCH) before SIGTERM
    type: str = "httpd"


@dataclass(frozen=True)
class SystemdUnitResource:
    name: str
    timeouts: Timeouts
    monitor_interval: float
    unit: str
    type: str = "systemd_unit"


@dataclass(frozen=True)
class OcfResource:
    name: str
    timeouts: Timeouts
    monitor_interval: float
    agent: str  # PROVIDER:TYPE, e.g. heartbeat:Dummy
    params: tuple[tuple[str, str], ...]
    ocf_root: str
    type: str = "ocf"
    # which of start/stop/monitor the configuration sets (resource or group
    # `timeouts`); the others come from the agent's meta-data (OcfDriver)
    explicit_timeouts: tuple[str, ...] = ()


Resource = Union[
    FilesystemResource, VipResource, HttpdResource, SystemdUnitResource, OcfResource
]


@dataclass(frozen=True)
class Group:
    name: str
    drbd: str | None
    resources: tuple[Resource, ...]
    preferred_node: str | None
    stickiness: float  # math.inf = never fail back
    migration_threshold: int
    failure_timeout: float  # 0 = fail counts never expire
    on_stop_failure: str  # "block" | "reboot"
    autostart: bool
    # the group-level `timeouts` / `monitor_interval` as written (each resource's
    # own values are resolved already); kept so `hasupctl export` can write them
    # back as Pacemaker's op defaults
    default_timeouts: Timeouts = field(default=Timeouts(240.0, 240.0, 240.0), compare=False)
    default_monitor_interval: float = field(default=20.0, compare=False)

    def resource(self, name: str) -> Resource | None:
        return next((r for r in self.resources if r.name == name), None)


@dataclass(frozen=True)
class AlertAgent:
    path: str
    timeout: float
    recipient: str


METRICS_PORT = 9675  # Prometheus: ha_cluster_exporter has 9664, drbd-reactor 9942


@dataclass(frozen=True)
class Metrics:
    address: str  # "" = every address
    port: int


@dataclass(frozen=True)
class Config:
    path: str
    cluster: str
    nodes: tuple[Node, Node]
    heartbeat: Heartbeat
    split_brain_guard: SplitBrainGuard
    drbd: Drbd
    groups: tuple[Group, ...]
    alerts: tuple[AlertAgent, ...]
    state_dir: str
    control_socket: str
    control_group: str
    history_max_bytes: int
    warnings: tuple[str, ...] = field(default=(), compare=False)
    fencing: Fencing | None = None
    metrics: Metrics | None = field(default=None, compare=False)  # None: no metrics endpoint

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def node_names(self) -> tuple[str, str]:
        return (self.nodes[0].name, self.nodes[1].name)

    def peer_of(self, name: str) -> str:
        a, b = self.node_names()
        if name == a:
            return b
        if name == b:
            return a
        raise KeyError(name)

    def group(self, name: str) -> Group | None:
        return next((g for g in self.groups if g.name == name), None)

    def digest(self) -> str:
        """Digest of the part both nodes must share (not node-local paths)."""
        shared = {
            "cluster": self.cluster,
            "nodes": [asdict(n) for n in self.nodes],
            "heartbeat": {
                "transport": self.heartbeat.transport,
                "rings": [(r.group, r.port) for r in self.heartbeat.rings],
                "interval": self.heartbeat.interval,
                "deadtime": self.heartbeat.deadtime,
            },
            "guard": self.split_brain_guard.mode,
            "drbd": [(r.name, r.minor) for r in self.drbd.resources],
            "groups": [
                {
                    "name": g.name,
                    "drbd": g.drbd,
                    "resources": [(r.name, r.type) for r in g.resources],
                    "policy": [
                        g.preferred_node,
                        str(g.stickiness),
                        g.migration_threshold,
                        g.failure_timeout,
                        g.on_stop_failure,
                    ],
                }
                for g in self.groups
            ],
        }
        blob = json.dumps(shared, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# ---------------------------------------------------------------- loading

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class _Value:
    """A YAML node with its position, for typed reads with good errors."""

    def __init__(self, node: yaml.Node, path: str, where: str):
        self.node, self.path, self.where = node, path, where

    def error(self, message: str) -> ConfigError:
        m = self.node.start_mark
        return ConfigError(self.path, m.line + 1, m.column + 1, f"{self.where}: {message}")

    # scalars
    def _scalar(self) -> str | None:
        if not isinstance(self.node, yaml.ScalarNode):
            kind = "a list" if isinstance(self.node, yaml.SequenceNode) else "a mapping"
            raise self.error(f"expected a single value, found {kind}")
        if self.node.tag == "tag:yaml.org,2002:null":
            return None
        return self.node.value

    def str(self, pattern: re.Pattern | None = None, what: str = "") -> str:
        v = self._scalar()
        if v is None or v == "":
            raise self.error("expected a value, found nothing")
        if pattern is not None and not pattern.fullmatch(v):  # "$" alone lets a final newline through
            raise self.error(f"{v!r} is not {what}")
        return v

    def int(self, low: int | None = None, high: int | None = None) -> int:
        v = self._scalar()
        try:
            n = int(str(v), 10)
        except (TypeError, ValueError):
            raise self.error(f"expected a whole number, found {v!r}") from None
        if (low is not None and n < low) or (high is not None and n > high):
            raise self.error(f"{n} is out of range ({low} to {high})")
        return n

    def bool(self) -> bool:
        v = self._scalar()
        lowered = (v or "").lower()
        if lowered in ("true", "yes", "on"):
            return True
        if lowered in ("false", "no", "off"):
            return False
        raise self.error(f"expected true or false, found {v!r}")

    def duration(self, allow_zero: bool = True) -> float:
        v = self._scalar()
        m = _DURATION.match(str(v)) if v is not None else None
        if not m:
            raise self.error(f"expected a duration such as 200ms, 2s, 10m or a number of seconds, found {v!r}")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
        if seconds == 0 and not allow_zero:
            raise self.error("must be more than zero")
        return seconds

    def choice(self, choices: tuple[str, ...]) -> str:
        v = self._scalar()
        if v not in choices:
            hint = _did_you_mean(str(v), choices)
            raise self.error(f"expected one of {', '.join(choices)}, found {v!r}{hint}")
        return v

    def ipv4(self) -> str:
        v = self.str()
        try:
            return str(ipaddress.IPv4Address(v))
        except ValueError:
            raise self.error(f"{v!r} is not an IPv4 address") from None

    def network(self) -> str:
        v = self.str()
        try:
            return str(ipaddress.IPv4Network(v, strict=False))
        except ValueError:
            raise self.error(f"{v!r} is not an IPv4 network (like 192.168.0.0/24)") from None

    def path_str(self) -> str:
        v = self.str()
        if not v.startswith("/"):
            raise self.error(f"expected an absolute path, found {v!r}")
        return v

    # containers
    def list(self) -> list[_Value]:
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error("expected a list")
        return [
            _Value(item, self.path, f"{self.where}[{i}]") for i, item in enumerate(self.node.value)
        ]

    def str_list(self) -> tuple[str, ...]:
        if isinstance(self.node, yaml.ScalarNode):
            return (self.str(),)
        return tuple(v.str() for v in self.list())

    def mapping(self, allowed: tuple[str, ...]) -> _Mapping:
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error("expected a mapping (key: value lines)")
        return _Mapping(self, allowed)


class _Mapping:
    def __init__(self, value: _Value, allowed: tuple[str, ...]):
        self.value = value
        self.items: dict[str, _Value] = {}
        for key_node, val_node in value.node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            where = f"{value.where}.{key}" if value.where else str(key)
            key_value = _Value(key_node, value.path, where)
            if not isinstance(key, str):
                raise key_value.error("expected a plain key")
            if allowed and key not in allowed:
                raise key_value.error(
                    f"unknown key {key!r}{_did_you_mean(key, allowed)}"
                    f" (allowed here: {', '.join(allowed)})"
                )
            if key in self.items:
                raise key_value.error(f"key {key!r} is given twice")
            self.items[key] = _Value(val_node, value.path, where)

    def get(self, key: str) -> _Value | None:
        v = self.items.get(key)
        if v is not None and isinstance(v.node, yaml.ScalarNode) and v.node.tag.endswith(":null"):
            return None
        return v

    def need(self, key: str) -> _Value:
        v = self.get(key)
        if v is None:
            raise self.value.error(f"missing required key {key!r}")
        return v

    def opt(self, key: str, read, default):
        v = self.get(key)
        return default if v is None else read(v)


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _timeouts(m: _Mapping, default: Timeouts) -> Timeouts:
    t = m.get("timeouts")
    if t is None:
        return default
    tm = t.mapping(("start", "stop", "monitor"))
    return Timeouts(
        start=tm.opt("start", lambda v: v.duration(False), default.start),
        stop=tm.opt("stop", lambda v: v.duration(False), default.stop),
        monitor=tm.opt("monitor", lambda v: v.duration(False), default.monitor),
    )


_COMMON_RESOURCE_KEYS = ("name", "type", "timeouts", "monitor_interval")
_RESOURCE_KEYS = {
    "filesystem": ("device", "directory", "fstype", "options", "fsck", "force_unmount", "kill_grace", "probe_file"),
    "vip": ("ip", "cidr_netmask", "nic", "label", "arp_count", "arp_interval", "arp_repeat_after", "check_duplicate"),
    "httpd": ("configfile", "unit", "binary", "pidfile", "port", "statusurl", "status_regex", "check_config",
              "environment", "graceful_stop"),
    "systemd_unit": ("unit",),
    "ocf": ("agent", "params", "ocf_root"),
}


def _timeout_keys(m: _Mapping) -> tuple[str, ...]:
    """The action timeouts a mapping's `timeouts` sets explicitly."""
    t = m.get("timeouts")
    if t is None:
        return ()
    return tuple(k for k in ("start", "stop", "monitor") if t.mapping(("start", "stop", "monitor")).get(k))


def _load_resource(v: _Value, default_timeouts: Timeouts, default_interval: float,
                   group_timeout_keys: tuple[str, ...] = ()) -> Resource:
    if not isinstance(v.node, yaml.MappingNode):
        raise v.error("expected a resource (a mapping with name and type)")
    kind = _Mapping(v, ()).need("type").choice(tuple(_RESOURCE_KEYS))
    m = v.mapping(_COMMON_RESOURCE_KEYS + _RESOURCE_KEYS[kind])
    common = dict(
        name=m.need("name").str(_NAME, "a name (letters, digits, _ . -)"),
        timeouts=_timeouts(m, default_timeouts),
        monitor_interval=m.opt("monitor_interval", lambda x: x.duration(False), default_interval),
    )
    if kind == "filesystem":
        return FilesystemResource(
            **common,
            device=m.need("device").path_str(),
            directory=m.need("directory").path_str(),
            fstype=m.opt("fstype", _Value.str, "ext4"),
            options=m.opt("options", _Value.str, ""),
            fsck=m.opt("fsck", _Value.bool, False),
            force_unmount=m.opt("force_unmount", _Value.bool, True),
            kill_grace=m.opt("kill_grace", _Value.duration, 5.0),
            probe_file=m.opt("probe_file", _Value.bool, True),
        )
    if kind == "vip":
        return VipResource(
            **common,
            ip=m.need("ip").ipv4(),
            cidr_netmask=m.opt("cidr_netmask", lambda x: x.int(1, 32), 24),
            nic=m.opt("nic", _Value.str, None),
            label=m.opt("label", _Value.str, None),
            arp_count=m.opt("arp_count", lambda x: x.int(0, 100), 5),
            arp_interval=m.opt("arp_interval", _Value.duration, 0.2),
            arp_repeat_after=m.opt("arp_repeat_after", _Value.duration, 5.0),
            check_duplicate=m.opt("check_duplicate", _Value.bool, True),
        )
    if kind == "httpd":
        port = m.opt("port", lambda x: x.int(1, 65535), 80)
        env = m.get("environment")
        environment: tuple[tuple[str, str], ...] = ()
        if env is not None:
            em = env.mapping(())
            environment = tuple((k, ev.str()) for k, ev in em.items.items())
        return HttpdResource(
            **common,
            configfile=m.need("configfile").path_str(),
            unit=m.opt("unit", _Value.str, None),
            binary=m.opt("binary", _Value.str, "apache2"),
            pidfile=m.opt("pidfile", _Value.path_str, None),
            port=port,
            statusurl=m.opt("statusurl", _Value.str, f"http://127.0.0.1:{port}/server-status?auto"),
            status_regex=m.opt("status_regex", _Value.str, r"(?m)^(Total Accesses|ServerVersion|BusyWorkers):"),
            check_config=m.opt("check_config", _Value.bool, True),
            environment=environment,
            graceful_stop=m.opt("graceful_stop", _Value.bool, False),
        )
    if kind == "systemd_unit":
        return SystemdUnitResource(**common, unit=m.need("unit").str())
    params = m.get("params")
    pairs: tuple[tuple[str, str], ...] = ()
    if params is not None:
        pm = params.mapping(())
        pairs = tuple((_ocf_param_name(k, pv), _ocf_param_value(pv)) for k, pv in pm.items.items())
    return OcfResource(
        **common,
        agent=m.need("agent").str(re.compile(r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$"), "PROVIDER:TYPE (like heartbeat:Dummy)"),
        params=pairs,
        ocf_root=m.opt("ocf_root", _Value.path_str, "/usr/lib/ocf"),
        explicit_timeouts=tuple(sorted(set(group_timeout_keys) | set(_timeout_keys(m)))),
    )


# an OCF parameter reaches the agent as the environment variable OCF_RESKEY_<name>=<value>
_OCF_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def _ocf_param_name(name: str, v: _Value) -> str:
    if not _OCF_PARAM.match(name or ""):
        raise v.error(f"{name!r} is not an OCF parameter name (letters, digits and _, as in "
                      "OCF_RESKEY_<name>; the agent could not be given it)")
    return name


def _ocf_param_value(v: _Value) -> str:
    value = v.str()
    if "\0" in value:
        raise v.error("the value contains a NUL byte, which no agent can be given in its environment")
    return value


def load(path: str | Path) -> Config:
    path = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(path, 0, 0, f"cannot read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(path, *_line_col(raw, e.start), f"not UTF-8 (byte {raw[e.start]:#04x})") from None
    return loads(text, path)


def _line_col(text: str | bytes, offset: int) -> tuple[int, int]:
    before = text[:offset]
    nl = "\n" if isinstance(text, str) else b"\n"
    return before.count(nl) + 1, offset - (before.rfind(nl) + 1) + 1


def _compose(text: str, path: str) -> yaml.Node | None:
    """yaml.compose with every failure as a ConfigError at its place."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ConfigError(path, line, col, f"not valid YAML: {e.problem or e.context}") from None
    except yaml.reader.ReaderError as e:  # a control character such as a raw NUL
        raise ConfigError(path, *_line_col(text, e.position),
                          f"control character U+{ord(e.character) if isinstance(e.character, str) else e.character:04X}"
                          " is not allowed") from None
    except RecursionError:
        depth = deepest = at = 0
        for i, ch in enumerate(text):  # the place where the flow nesting got deepest
            if ch in "[{":
                depth += 1
                if depth > deepest:
                    deepest, at = depth, i
            elif ch in "]}":
                depth -= 1
        raise ConfigError(path, *_line_col(text, at), "nested too deeply") from None


def loads(text: str, path: str = "<string>") -> Config:
    root = _compose(text, path)
    if root is None:
        raise ConfigError(path, 1, 1, "the file is empty")
    top = _Value(root, path, "").mapping(
        ("cluster", "nodes", "heartbeat", "split_brain_guard", "drbd", "groups", "alerts",
         "state_dir", "control", "history", "fencing", "metrics")
    )
    warnings: list[str] = []
    cluster = top.need("cluster").str(_NAME, "a name (letters, digits, _ . -)")

    # heartbeat
    hb_v = top.need("heartbeat")
    hb = hb_v.mapping(("transport", "rings", "interval", "deadtime", "initdead", "authkey"))
    transport = hb.opt("transport", lambda v: v.choice(("multicast", "unicast")), "multicast")
    rings_v = hb.need("rings")
    rings: list[Ring] = []
    for i, rv in enumerate(rings_v.list()):
        rm = rv.mapping(("interface", "bind_network", "group", "port", "ttl"))
        interface = rm.opt("interface", _Value.str, None)
        bind_network = rm.opt("bind_network", _Value.network, None)
        if interface is None and bind_network is None:
            raise rv.error("a ring needs 'interface' or 'bind_network' to know where to send")
        group_v = rm.get("group")
        if transport == "multicast":
            if group_v is None:
                raise rv.error("a multicast ring needs 'group' (like 226.94.1.1)")
            group = group_v.ipv4()
            if not ipaddress.IPv4Address(group).is_multicast:
                raise group_v.error(f"{group} is not a multicast address (224.0.0.0/4)")
        else:
            group = group_v.ipv4() if group_v is not None else ""
        rings.append(Ring(i, interface, bind_network, group,
                          rm.opt("port", lambda v: v.int(1, 65535), 5405),
                          rm.opt("ttl", lambda v: v.int(1, 255), 1)))
    if not rings:
        raise rings_v.error("at least one ring is needed")
    interval = hb.opt("interval", lambda v: v.duration(False), 0.2)
    deadtime_v = hb.get("deadtime")
    deadtime = deadtime_v.duration(False) if deadtime_v else 2.0
    if deadtime < 3 * interval:
        raise (deadtime_v or hb_v).error(
            f"deadtime {deadtime:g}s must be at least 3 x interval ({3 * interval:g}s), "
            "or one lost packet would declare the peer dead")
    initdead = hb.opt("initdead", _Value.duration, 20.0)
    heartbeat = Heartbeat(transport, tuple(rings), interval, deadtime, max(initdead, deadtime),
                          hb.opt("authkey", _Value.path_str, "/etc/hasupd/authkey"))

    # nodes
    nodes_v = top.need("nodes")
    nodes: list[Node] = []
    for nv in nodes_v.list():
        nm = nv.mapping(("name", "addresses"))
        name = nm.need("name").str(_NAME, "a node name")
        addr_v = nm.need("addresses")
        addresses = tuple(_Value(a.node, a.path, a.where).ipv4() for a in addr_v.list()) \
            if isinstance(addr_v.node, yaml.SequenceNode) else (addr_v.ipv4(),)
        if len(addresses) != len(rings):
            raise addr_v.error(f"expected one address per ring ({len(rings)}), found {len(addresses)}")
        for ring, addr in zip(rings, addresses):
            if ring.bind_network and ipaddress.IPv4Address(addr) not in ipaddress.IPv4Network(ring.bind_network):
                raise addr_v.error(f"{addr} is not in ring {ring.index}'s network {ring.bind_network}")
        nodes.append(Node(name, addresses))
    if len(nodes) != 2:
        raise nodes_v.error(f"hasupd runs exactly two nodes, found {len(nodes)}")
    if nodes[0].name == nodes[1].name:
        raise nodes_v.error(f"both nodes are named {nodes[0].name!r}")
    node_names = (nodes[0].name, nodes[1].name)

    # split-brain guard
    guard_v = top.get("split_brain_guard")
    if guard_v is None:
        guard = SplitBrainGuard("none")
    else:
        gm = guard_v.mapping(("mode", "ping", "fence"))
        mode = gm.need("mode").choice(("ping", "fence", "drbd", "none"))
        ping = fence = None
        # fence/drbd: an optional ping tie-breaker; a node that cannot reach it does not fence
        if mode == "ping" or (mode in ("fence", "drbd") and gm.get("ping") is not None):
            pm = gm.need("ping").mapping(("targets", "tcp_port", "interval", "timeout", "rise", "fall"))
            targets_v = pm.need("targets")
            targets = tuple(_Value(t.node, t.path, t.where).ipv4() for t in targets_v.list())
            if not targets:
                raise targets_v.error("at least one tie-breaker address is needed")
            ping = PingGuard(targets, pm.opt("tcp_port", lambda v: v.int(1, 65535), None),
                             pm.opt("interval", lambda v: v.duration(False), 1.0),
                             pm.opt("timeout", lambda v: v.duration(False), 1.0),
                             pm.opt("rise", lambda v: v.int(1, 100), 2),
                             pm.opt("fall", lambda v: v.int(1, 100), 2))
        if mode == "fence" and gm.get("fence") is not None:  # round 1; now the fencing: section
            fm = gm.need("fence").mapping(("command", "timeout"))
            fence = FenceGuard(fm.need("command").str_list(),
                               fm.opt("timeout", lambda v: v.duration(False), 60.0))
        elif mode == "none":
            warnings.append("split_brain_guard is 'none': a node takes over on heartbeat silence "
                            "alone; a cut network can then run the group twice")
        guard = SplitBrainGuard(mode, ping, fence)
    if guard_v is None:
        warnings.append("no split_brain_guard configured (mode none): a node takes over on "
                        "heartbeat silence alone")

    # drbd
    drbd_v = top.get("drbd")
    drbd_resources: list[DrbdResource] = []
    if drbd_v is not None:
        dm = drbd_v.mapping(("load_module", "minor_count", "status_path", "drbdadm", "drbdsetup",
                             "peer_dead_wait", "resources"))
        for rv in (dm.get("resources").list() if dm.get("resources") else []):
            rm = rv.mapping(("name", "device", "minor", "disk", "port"))
            device = rm.need("device").path_str()
            dev_minor = re.search(r"drbd(\d+)$", device)
            minor = rm.opt("minor", lambda v: v.int(0, 1048575), int(dev_minor.group(1)) if dev_minor else None)
            if minor is None:
                raise rm.need("device").error("cannot tell the minor from the device name; set 'minor'")
            disk_v = rm.need("disk")
            disks: tuple[tuple[str, str], ...] = ()
            if isinstance(disk_v.node, yaml.MappingNode):  # disk: {NODE: PATH, NODE: PATH}
                per_node = disk_v.mapping(tuple(n.name for n in nodes))
                disks = tuple((n.name, per_node.need(n.name).path_str()) for n in nodes)
                disk = disks[0][1]
            else:
                disk = disk_v.path_str()
            drbd_resources.append(DrbdResource(rm.need("name").str(_NAME, "a DRBD resource name"),
                                               device, minor, disk,
                                               rm.opt("port", lambda v: v.int(1, 65535), 7789), disks))
        needed = max((r.minor for r in drbd_resources), default=0) + 1
        minor_count_v = dm.get("minor_count")
        minor_count = minor_count_v.int(1, 255) if minor_count_v else max(needed, 1)
        drbd = Drbd(dm.opt("load_module", _Value.bool, True), minor_count,
                    dm.opt("status_path", _Value.path_str, "/proc/drbd"),
                    dm.opt("drbdadm", _Value.str, "drbdadm"),
                    dm.opt("drbdsetup", _Value.str, "drbdsetup"),
                    dm.opt("peer_dead_wait", _Value.duration, 11.0),
                    tuple(drbd_resources))
    else:
        drbd = Drbd(False, 1, "/proc/drbd", "drbdadm", "drbdsetup", 11.0, ())
    names = [r.name for r in drbd_resources]
    if len(set(names)) != len(names):
        raise drbd_v.error("two DRBD resources have the same name")

    # groups
    groups: list[Group] = []
    all_resource_names: set[str] = set()
    used_drbd: set[str] = set()
    for gv in (top.need("groups").list()):
        gm = gv.mapping(("name", "drbd", "resources", "preferred_node", "stickiness",
                         "migration_threshold", "failure_timeout", "on_stop_failure",
                         "timeouts", "monitor_interval", "autostart"))
        gname = gm.need("name").str(_NAME, "a group name")
        drbd_name_v = gm.get("drbd")
        drbd_name = None
        if drbd_name_v is not None:
            drbd_name = drbd_name_v.str()
            if drbd.resource(drbd_name) is None:
                raise drbd_name_v.error(f"no DRBD resource {drbd_name!r} under drbd.resources"
                                        f"{_did_you_mean(drbd_name, names)}")
            if drbd_name in used_drbd:
                raise drbd_name_v.error(f"DRBD resource {drbd_name!r} already belongs to another group")
            used_drbd.add(drbd_name)
        default_timeouts = _timeouts(gm, Timeouts(240.0, 240.0, 240.0))
        default_interval = gm.opt("monitor_interval", lambda v: v.duration(False), 20.0)
        resources = tuple(_load_resource(rv, default_timeouts, default_interval, _timeout_keys(gm))
                          for rv in gm.need("resources").list())
        for rv, r in zip(gm.need("resources").list(), resources):
            if r.name in all_resource_names:
                raise rv.error(f"resource name {r.name!r} is used twice")
            all_resource_names.add(r.name)
        pref_v = gm.get("preferred_node")
        preferred = None
        if pref_v is not None:
            preferred = pref_v.choice(node_names)
        stick_v = gm.get("stickiness")
        stickiness = math.inf
        if stick_v is not None:
            raw = str(stick_v._scalar()).lower()
            stickiness = math.inf if raw in ("inf", "infinity") else float(stick_v.int(0))
        groups.append(Group(
            name=gname, drbd=drbd_name, resources=resources, preferred_node=preferred,
            stickiness=stickiness,
            migration_threshold=gm.opt("migration_threshold", lambda v: v.int(1, 1000000), 1),
            failure_timeout=gm.opt("failure_timeout", _Value.duration, 600.0),
            on_stop_failure=gm.opt("on_stop_failure", lambda v: v.choice(("block", "reboot")), "block"),
            autostart=gm.opt("autostart", _Value.bool, True),
            default_timeouts=default_timeouts,
            default_monitor_interval=default_interval,
        ))
    if len({g.name for g in groups}) != len(groups):
        raise top.need("groups").error("two groups have the same name")

    # alerts
    alerts: list[AlertAgent] = []
    if top.get("alerts") is not None:
        for av in top.need("alerts").list():
            am = av.mapping(("path", "timeout", "recipient"))
            alerts.append(AlertAgent(am.need("path").path_str(),
                                     am.opt("timeout", lambda v: v.duration(False), 30.0),
                                     am.opt("recipient", _Value.str, "")))

    control = top.get("control")
    cm = control.mapping(("socket", "group")) if control is not None else None
    history = top.get("history")
    hm = history.mapping(("max_bytes",)) if history is not None else None

    fencing = _fencing(top.get("fencing"), guard, node_names, warnings)
    if guard.mode == "fence" and fencing is None:
        raise (guard_v or top.value).error("split_brain_guard 'fence' needs a 'fencing:' section "
                                           "with the devices that fence each node")
    if guard.mode == "drbd" and not drbd_resources:
        warnings.append("split_brain_guard 'drbd' without any DRBD resource guards nothing")
    if fencing is not None:
        warnings += _fence_race_warnings(fencing, len(groups))
    for g in groups:
        if g.drbd is None and any(r.type == "filesystem" for r in g.resources):
            warnings.append(f"group {g.name} mounts a filesystem but has no 'drbd': "
                            "nothing keeps the data on one node")
    if drbd_resources and heartbeat.deadtime < drbd.peer_dead_wait:
        warnings.append(
            f"drbd.peer_dead_wait {drbd.peer_dead_wait:g}s is longer than deadtime "
            f"{heartbeat.deadtime:g}s: after a node dies the survivor waits for DRBD to notice "
            "(its ping-int + ping-timeout); set `net { ping-int 1; ping-timeout 5; }` in the "
            "DRBD resource and peer_dead_wait to match for a faster takeover")

    return Config(
        path=path, cluster=cluster, nodes=(nodes[0], nodes[1]), heartbeat=heartbeat,
        split_brain_guard=guard, drbd=drbd, groups=tuple(groups), alerts=tuple(alerts),
        state_dir=top.opt("state_dir", _Value.path_str, "/var/lib/hasupd"),
        control_socket=cm.opt("socket", _Value.path_str, "/run/hasupd/hasupd.sock") if cm else "/run/hasupd/hasupd.sock",
        control_group=cm.opt("group", _Value.str, "hasupd") if cm else "hasupd",
        history_max_bytes=hm.opt("max_bytes", lambda v: v.int(4096), 4 * 1024 * 1024) if hm else 4 * 1024 * 1024,
        warnings=tuple(warnings),
        fencing=fencing,
        metrics=_metrics(top.get("metrics")),
    )


_OPTION_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
# keys hasupd writes itself; a key naming a password (password, passwd,
# snmp_priv_passwd, ...; not the *_script that prints one) belongs in the secrets file
_RESERVED_OPTIONS = ("action", "plug", "port", "nodename")


def check_secrets_file(path: str) -> str | None:
    """None when PATH is a regular file owned by root with mode 0600 or
    0400, else why not (a secrets file anyone else can read or write is
    refused)."""
    try:
        st = os.stat(path)
    except OSError as e:
        return f"cannot read {path}: {e.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if st.st_uid != 0:
        return f"{path} must be owned by root (it is owned by uid {st.st_uid})"
    mode = stat.S_IMODE(st.st_mode)
    if mode not in (0o600, 0o400):
        return f"{path} has mode {mode:04o}: a secrets file must be 0600 or 0400 (chmod 0600 {path})"
    return None


def _fence_device(v: _Value, node_names: tuple[str, ...]) -> FenceDevice:
    m = v.mapping(("name", "agent", "command", "nodes", "plugs", "options", "secrets",
                   "timeout", "retries", "delay"))
    name = m.need("name").str(_NAME, "a device name (letters, digits, _ . -)")
    positions: list[tuple[str, str, int]] = []
    agent_v, command_v = m.get("agent"), m.get("command")
    if (agent_v is None) == (command_v is None):
        raise v.error(f"fence device {name}: give either 'agent' (a fence-agents program) or "
                      "'command' (a site command), not both or neither")
    agent = command = None
    if agent_v is not None:
        agent = agent_v.str(re.compile(r"^(/[^\0\n]+|[A-Za-z0-9_.-]+)$"), "an agent name or absolute path")
        positions.append(("agent", v.path, agent_v.node.start_mark.line + 1))
    else:
        command = command_v.str_list()
        if not command[0].startswith("/"):
            raise command_v.error("a site command starts with an absolute path")
        positions.append(("command", v.path, command_v.node.start_mark.line + 1))
    nodes_v = m.need("nodes")
    nodes = tuple(nv.choice(node_names) for nv in
                  ([nodes_v] if isinstance(nodes_v.node, yaml.ScalarNode) else nodes_v.list()))
    plugs: list[tuple[str, str]] = []
    if m.get("plugs") is not None:
        for node, pv in m.need("plugs").mapping(()).items.items():
            if node not in nodes:
                raise pv.error(f"plug for {node!r}, which is not in this device's nodes ({', '.join(nodes)})")
            plugs.append((node, _stdin_value(pv)))
    options: list[tuple[str, str]] = []
    if m.get("options") is not None:
        om = m.need("options").mapping(())
        for key, ov in om.items.items():
            key_v = _Value(next(k for k, _ in om.value.node.value if k.value == key), v.path, ov.where)
            if not _OPTION_KEY.match(key):
                raise key_v.error(f"{key!r} is not an option name")
            if key in _RESERVED_OPTIONS:
                raise key_v.error(f"{key!r} is set by hasupd itself (use 'plugs' for the plug/port)")
            if "passw" in key.lower() and not key.lower().endswith("_script"):
                raise key_v.error(f"{key!r} is a secret: put it in the device's 'secrets' file "
                                  "(owned by root, mode 0600), not in the configuration")
            options.append((key, _stdin_value(ov)))
            positions.append((key, v.path, key_v.node.start_mark.line + 1))
    secrets = None
    secrets_v = m.get("secrets")
    if secrets_v is not None:
        secrets = secrets_v.path_str()
        problem = check_secrets_file(secrets)
        if problem:
            raise secrets_v.error(problem)
    return FenceDevice(
        name=name, agent=agent, command=command, nodes=nodes, plugs=tuple(plugs),
        options=tuple(options), secrets=secrets,
        timeout=m.opt("timeout", lambda x: x.duration(False), 20.0),
        retries=m.opt("retries", lambda x: x.int(0, 10), 1),
        delay=m.opt("delay", _Value.duration, 0.0),
        positions=tuple(positions),
    )


def _stdin_value(v: _Value) -> str:
    """A value for a key=value stdin line: one line, or it could add options."""
    text = v._scalar()
    text = "" if text is None else str(text)
    if "\n" in text or "\r" in text or "\0" in text:
        raise v.error("a fence option value must be one line")
    return text


def _fencing(v: _Value | None, guard: SplitBrainGuard, node_names: tuple[str, ...],
             warnings: list[str]) -> Fencing | None:
    if v is None:
        if guard.fence is None:
            return None
        # round 1: split_brain_guard.fence.command, one command for the peer
        warnings.append(
            "split_brain_guard.fence.command is the old form: write it as a 'fencing:' section, "
            "e.g. fencing: {devices: [{name: site-fence, command: [...], nodes: [both nodes]}]}")
        return Fencing(devices=(FenceDevice("fence-command", None, guard.fence.command, node_names, (), (),
                                            None, guard.fence.timeout, 0, 0.0),),
                       levels=(), owner_head_start=5.0, random_delay_max=0.0)
    m = v.mapping(("owner_head_start", "random_delay_max", "devices", "levels"))
    devices: list[FenceDevice] = []
    for dv in m.need("devices").list():
        d = _fence_device(dv, node_names)
        if any(o.name == d.name for o in devices):
            raise dv.error(f"fence device name {d.name!r} is used twice")
        devices.append(d)
    by_name = {d.name: d for d in devices}
    levels: list[tuple[str, tuple[tuple[str, ...], ...]]] = []
    if m.get("levels") is not None:
        for node, lv in m.need("levels").mapping(()).items.items():
            if node not in node_names:
                raise lv.error(f"levels for {node!r}, which is not a node ({', '.join(node_names)})")
            node_levels: list[tuple[str, ...]] = []
            for level_v in lv.list():
                names = level_v.str_list()
                if not names:
                    raise level_v.error("a level names at least one device")
                for name_v, name in zip([level_v] if isinstance(level_v.node, yaml.ScalarNode)
                                        else level_v.list(), names):
                    d = by_name.get(name)
                    if d is None:
                        raise name_v.error(f"no fence device {name!r}{_did_you_mean(name, by_name)}")
                    if node not in d.nodes:
                        raise name_v.error(f"fence device {name} does not fence {node} (its nodes: "
                                           f"{', '.join(d.nodes)})")
                node_levels.append(names)
            if not node_levels:
                raise lv.error(f"no levels for {node}")
            levels.append((node, tuple(node_levels)))
    fencing = Fencing(tuple(devices), tuple(levels),
                      m.opt("owner_head_start", _Value.duration, 5.0),
                      m.opt("random_delay_max", _Value.duration, 0.0))
    for node in node_names:
        if not fencing.levels_for(node):
            warnings.append(f"no fence device fences {node}: it can never be fenced")
    return fencing


def _fencing_summary(fencing: Fencing, node_names: tuple[str, ...]) -> list[str]:
    """The fencing lines of `hasupctl check`: the race, each device (its options, never the
    secrets file's content: only its path), the levels per node."""
    lines = [f"fencing: owner_head_start {fencing.owner_head_start:g}s, "
             f"random_delay_max {fencing.random_delay_max:g}s"]
    for d in fencing.devices:
        what = d.agent if d.agent is not None else "command " + " ".join(redact.argv(d.command or ()))
        line = f"fence device {d.name}: {what} for {', '.join(d.nodes)}"
        if d.plugs:
            line += ", plug " + ", ".join(f"{n}={p}" for n, p in d.plugs)
        if d.options:
            line += ", options " + " ".join(f"{k}={v}" for k, v in d.options)
        if d.secrets:
            line += f", secrets from {d.secrets}"
        lines.append(line + f", timeout {d.timeout:g}s, retries {d.retries}"
                     + (f", delay {d.delay:g}s" if d.delay else ""))
    for node in node_names:
        levels = fencing.levels_for(node)
        lines.append(f"fencing {node}: " + (" then ".join(
            "+".join(d.name for d in level) for level in levels) or "no device"))
    return lines


def _metrics(v: _Value | None) -> Metrics | None:
    """``metrics: {listen: ADDRESS:PORT}`` (``[v6]:PORT``; no port: METRICS_PORT)."""
    if v is None:
        return None
    lv = v.mapping(("listen",)).need("listen")
    text = lv.str()
    m = re.match(r"^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]*))(?::(\d{1,5}))?$", text)
    if m is None:
        raise lv.error(f"{text!r} is not ADDRESS:PORT (an IPv6 address in brackets: [::1]:{METRICS_PORT})")
    address = m.group(1) if m.group(1) is not None else m.group(2)
    try:
        if address:
            ipaddress.ip_address(address)
    except ValueError:
        raise lv.error(f"{address!r} is not an IP address") from None
    port = int(m.group(3)) if m.group(3) else METRICS_PORT
    if not 1 <= port <= 65535:
        raise lv.error(f"port {port} is out of range 1..65535")
    return Metrics(address, port)


def resource_summary(r: Resource) -> str:
    """A resource's key parameters, as `hasupctl check` shows them (secrets masked)."""
    if isinstance(r, VipResource):
        text = f"{r.ip}/{r.cidr_netmask} on {r.nic or 'the interface of its connected route'}"
        return text + (f" (label {r.label})" if r.label else "")
    if isinstance(r, FilesystemResource):
        return f"{r.device} -> {r.directory} ({r.fstype}" + (f", options {r.options}" if r.options else "") + ")"
    if isinstance(r, HttpdResource):
        how = f"unit {r.unit}" if r.unit else f"{r.binary}, pidfile {r.pidfile}"
        return f"{r.configfile}, port {r.port}, {how}"
    if isinstance(r, SystemdUnitResource):
        return f"unit {r.unit}"
    params = " ".join(f"{k}={redact.MASK if redact.is_secret_name(k) else v}" for k, v in r.params)
    provider, kind = r.agent.split(":", 1)
    return (f"agent {r.agent} ({r.ocf_root}/resource.d/{provider}/{kind})"
            + (f", params {params}" if params else ""))


def _fence_race_warnings(fencing: Fencing, group_count: int) -> list[str]:
    """What leaves the fence race of a partition undecided (both nodes may be fenced)."""
    out = []
    for d in fencing.devices:
        worst = d.timeout * (d.retries + 1)
        if worst > fencing.owner_head_start:
            out.append(f"fence device {d.name} may take {worst:g}s (timeout x (retries + 1)), longer than "
                       f"fencing.owner_head_start {fencing.owner_head_start:g}s: in a partition the peer's "
                       "fence can start before the owner's has ended and both nodes may be fenced")
    if group_count > 1 and fencing.random_delay_max <= 0:
        out.append("fencing.random_delay_max is 0 while groups can run on both nodes: a node running groups "
                   "gets no head start over another, so both fence each other at once in a partition; "
                   "set a random delay (e.g. 5s)")
    return out


def summary(cfg: Config) -> str:
    """What would run, in a few lines (for `hasupctl check`)."""
    hb = cfg.heartbeat
    lines = [f"cluster {cfg.cluster}: nodes {cfg.nodes[0].name}, {cfg.nodes[1].name}"]
    for r in hb.rings:
        where = r.interface or r.bind_network
        dest = f"{r.group}:{r.port} ttl {r.ttl}" if hb.transport == "multicast" else f"port {r.port}"
        addrs = ", ".join(f"{n.name} {n.addresses[r.index]}" for n in cfg.nodes)
        lines.append(f"ring {r.index}: {hb.transport} {dest} on {where} ({addrs})")
    lines.append(f"heartbeat every {hb.interval:g}s, peer dead after {hb.deadtime:g}s, "
                 f"initdead {hb.initdead:g}s, key {hb.authkey}")
    lines.append(f"split-brain guard: {cfg.split_brain_guard.mode}")
    if cfg.fencing is not None:
        lines += _fencing_summary(cfg.fencing, cfg.node_names())
    for d in cfg.drbd.resources:
        lines.append(f"drbd {d.name}: {d.device} (minor {d.minor}) on {d.disk}, port {d.port}")
    for g in cfg.groups:
        stick = "INFINITY" if math.isinf(g.stickiness) else f"{g.stickiness:g}"
        order = " -> ".join(f"{r.name} ({r.type})" for r in g.resources)
        head = f"group {g.name}: " + (f"after drbd {g.drbd} is Primary: " if g.drbd else "")
        lines.append(head + order)
        lines += [f"  {r.name} ({r.type}): {resource_summary(r)}" for r in g.resources]
        lines.append(f"  stickiness {stick}, migration threshold {g.migration_threshold}, "
                     f"failure timeout {g.failure_timeout:g}s, on stop failure {g.on_stop_failure}"
                     + (f", prefers {g.preferred_node}" if g.preferred_node else ""))
    if cfg.metrics is not None:
        lines.append(f"metrics: http://{cfg.metrics.address or '*'}:{cfg.metrics.port}/metrics")
    for w in cfg.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)
