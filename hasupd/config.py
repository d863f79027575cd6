"""hasupd.yaml -> frozen dataclasses.

Every error names file, line and column and says what was expected.  Each
key is declared once, on its dataclass field (``conf(...)``: its reader,
its default and its meaning); one generic reader (``_read``) derives the
allowed, required and default values from those declarations, and the
README's configuration reference is generated from them
(``python -m hasupd.config --table``).  Checks across keys stay explicit
code in ``loads`` and the section readers below it.
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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Union

import yaml

from hasupd import redact

EX_CONFIG = 78
DEFAULT_PATH = "/etc/hasupd/hasupd.yaml"


class ConfigError(Exception):
    """A configuration error, with where it is and what was expected."""

    def __init__(self, path: str, line: int, column: int, message: str):
        self.path, self.line, self.column, self.message = path, line, column, message
        super().__init__(f"{path}:{line}:{column}: {message}")


# ---------------------------------------------------------------- declarations


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def _show_value(value) -> str:
    """A default as the README writes it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if value == "":
        return '`""`'
    if isinstance(value, float) and math.isinf(value):
        return "`infinity`"
    return f"`{value}`"


def _show_duration(seconds: float) -> str:
    if 0 < seconds < 1:
        return f"`{seconds * 1000:g}ms`"
    if seconds >= 600 and seconds % 60 == 0:
        return f"`{seconds / 60:g}m`"
    return f"`{seconds:g}s`"


class _Read:
    """How one key's value is read (from a _Value) and how its default is shown."""

    def __init__(self, read: Callable[[_Value], Any], show: Callable[[Any], str] = _show_value):
        self.read, self.show = read, show

    def __call__(self, v: _Value):
        return self.read(v)


def _whole(low: int | None = None, high: int | None = None) -> _Read:
    return _Read(lambda v: v.int(low, high))


def _choice(*choices: str) -> _Read:
    return _Read(lambda v: v.choice(choices))


def _named(what: str) -> _Read:
    return _Read(lambda v: v.str(_NAME, what))


_DURATION_OR_ZERO = _Read(lambda v: v.duration(), _show_duration)
_DURATION_ABOVE_ZERO = _Read(lambda v: v.duration(False), _show_duration)
_BOOL = _Read(lambda v: v.bool())
_TEXT = _Read(lambda v: v.str())
_PATH = _Read(lambda v: v.path_str())
_NETWORK = _Read(lambda v: v.network())
_PORT = _whole(1, 65535)


@dataclass(frozen=True)
class Key:
    """One configuration key, declared on the dataclass field it fills."""

    read: _Read | None  # None: the section's own code reads it (it depends on other keys)
    default: Any  # REQUIRED, or the value when the key is absent
    doc: str  # its meaning, for the README
    shown: str | None  # the default as the README shows it, when it is not a plain value
    yaml: str | None  # the key when it is not the field's name ("control.socket": in a sub-mapping)
    nested: type | None  # the dataclass its value is read into (for the README)
    many: bool  # a list of `nested`
    pacemaker: str  # what Pacemaker calls it (resource keys, for the README)

    def shown_default(self) -> str:
        """The default as the README shows it."""
        if self.shown is not None:
            return self.shown
        if self.default is REQUIRED:
            return "required"
        return (self.read.show if self.read is not None else _show_value)(self.default)


def conf(read: _Read | None, default: Any = REQUIRED, doc: str = "", *, shown: str | None = None,
         yaml_key: str | None = None, nested: type | None = None, many: bool = False,
         pacemaker: str = "", init_default: bool = False, compare: bool = True):
    """A dataclass field read from the configuration; INIT_DEFAULT: the dataclass
    constructor has the same default (for fields after one that has)."""
    extra = {"default": default} if init_default else {}
    return field(metadata={"conf": Key(read, default, doc, shown, yaml_key, nested, many, pacemaker)},
                 compare=compare, **extra)


def _key(f) -> Key | None:
    return f.metadata.get("conf")


def defaults(cls) -> dict[str, Any]:
    """The declared default of each of CLS's keys that has one."""
    return {f.name: k.default for f in fields(cls)
            if (k := _key(f)) is not None and k.default is not REQUIRED}


def default_of(cls, name: str) -> Any:
    return defaults(cls)[name]


# ---------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class Ring:
    """One heartbeat ring (a network): where to send and listen."""

    index: int
    # ring bound to this interface, or ...
    interface: str | None = conf(_TEXT, None, "the ring's interface name", shown="one required")
    # ... to the local address inside this network
    bind_network: str | None = conf(_NETWORK, None, "or the network of the local address (like corosync's "
                                    "`bindnetaddr`)", shown="one required")
    group: str = conf(None, "", "multicast group, e.g. `226.94.1.1`",  # read by transport
                      shown="required for multicast")
    port: int = conf(_PORT, 5405, "UDP port")
    ttl: int = conf(_whole(1, 255), 1, "multicast TTL")


@dataclass(frozen=True)
class Node:
    name: str = conf(_named("a node name"), doc="exactly two nodes; the node's `uname -n` (or `hasupd --node`)")
    # heartbeat address on each ring, by ring index
    addresses: tuple[str, ...] = conf(None, doc="the node's heartbeat address on each ring, in ring order")


@dataclass(frozen=True)
class Heartbeat:
    transport: str = conf(_choice("multicast", "unicast"), "multicast",
                          "or `unicast` (to the peer's ring address)")
    rings: tuple[Ring, ...] = conf(None, doc="at least one", nested=Ring, many=True)
    interval: float = conf(_DURATION_ABOVE_ZERO, 0.2, "a packet on every ring this often")
    deadtime: float = conf(_DURATION_ABOVE_ZERO, 2.0, "the peer is dead when silent on every ring this long "
                           "(at least 3 x interval)")
    initdead: float = conf(_DURATION_OR_ZERO, 20.0, "at start-up, how long to wait for the peer before "
                           "starting anything alone (at least deadtime)")
    authkey: str = conf(_PATH, "/etc/hasupd/authkey", "HMAC-SHA256 key, made by `hasupctl keygen`, mode 0400")


def _addresses_needed(v: _Value) -> tuple[str, ...]:
    targets = tuple(_Value(t.node, t.path, t.where).ipv4() for t in v.list())
    if not targets:
        raise v.error("at least one tie-breaker address is needed")
    return targets


@dataclass(frozen=True)
class PingGuard:
    targets: tuple[str, ...] = conf(_Read(_addresses_needed), doc="tie-breaker addresses (e.g. the gateway)")
    # None: ICMP echo; else a TCP connect to this port
    tcp_port: int | None = conf(_PORT, None, "check by TCP connect to this port instead of ping", shown="ICMP")
    interval: float = conf(_DURATION_ABOVE_ZERO, 1.0, "how often")
    timeout: float = conf(_DURATION_ABOVE_ZERO, 1.0, "how long to wait")
    rise: int = conf(_whole(1, 100), 2, "successes in a row before \"reachable\"")
    fall: int = conf(_whole(1, 100), 2, "failures in a row before \"unreachable\"")


@dataclass(frozen=True)
class FenceGuard:
    command: tuple[str, ...] = conf(_Read(lambda v: v.str_list()), doc="the old form of fencing: read as one "
                                    "`command` device fencing both nodes (with a warning)")
    timeout: float = conf(_DURATION_ABOVE_ZERO, 60.0, "its timeout")


@dataclass(frozen=True)
class SplitBrainGuard:
    mode: str = conf(_choice("ping", "fence", "drbd", "none"), doc="`ping`, `fence`, `drbd` or `none` "
                     "(warned about at every start)", shown="`none` (no section)")
    ping: PingGuard | None = conf(None, None, "required for ping", nested=PingGuard, init_default=True)
    fence: FenceGuard | None = conf(None, None, "", nested=FenceGuard, init_default=True)


@dataclass(frozen=True)
class FenceDevice:
    """One fence device: a fence-agents agent or a site command (fed the same stdin)."""

    name: str = conf(_named("a device name (letters, digits, _ . -)"), doc="unique")
    # fence-agents program name (fence_ipmilan), or ...
    agent: str | None = conf(None, None, "a fence-agents program (`fence_ipmilan`, found on PATH, /usr/sbin, "
                             "/sbin)", shown="one of agent, command")
    # ... a site command's argv
    command: tuple[str, ...] | None = conf(None, None, "or a site command (absolute path; `{peer}` is replaced "
                                           "by the node's name)", shown="one of agent, command")
    nodes: tuple[str, ...] = conf(None, doc="the nodes this device fences")  # the nodes this device can fence
    plugs: tuple[tuple[str, str], ...] = conf(None, (), "per node plug/port (pcmk_host_map), sent as `plug=`",
                                              shown="none")  # node -> plug/port
    options: tuple[tuple[str, str], ...] = conf(None, (), "the agent's options, sent as `key=value` lines on "
                                                "stdin; no secrets here (refused)", shown="none")
    secrets: str | None = conf(None, None, "file of `key=value` lines (`password=...`), owned by root, mode "
                               "0600 or 0400; values go to the agent's stdin only")
    timeout: float = conf(_DURATION_ABOVE_ZERO, 20.0, "per agent call")
    retries: int = conf(_whole(0, 10), 1, "extra attempts of a failed off/on")
    delay: float = conf(_DURATION_OR_ZERO, 0.0, "wait before this device's off (pcmk_delay_base)")
    # where each key was written (file, line) for `hasupctl check`'s errors
    positions: tuple[tuple[str, str, int], ...] = field(default=(), compare=False)

    def plug(self, node: str) -> str | None:
        return next((p for n, p in self.plugs if n == node), None)


@dataclass(frozen=True)
class Fencing:
    devices: tuple[FenceDevice, ...] = conf(None, doc="", nested=FenceDevice, many=True)
    # node -> levels of device names
    levels: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = conf(
        None, (), "`{NODE: [LEVEL, ...]}`, each level a list of device names: a level succeeds when all its "
        "devices do; else the next level", shown="one level of every device naming the node")
    owner_head_start: float = conf(_DURATION_OR_ZERO, 5.0, "a node that does not run the group waits this "
                                   "long before fencing (priority-fencing-delay)")
    random_delay_max: float = conf(_DURATION_OR_ZERO, 0.0, "an extra random delay in [0, max] (pcmk_delay_max)")

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
    name: str = conf(_named("a DRBD resource name"), doc="the DRBD resource")
    device: str = conf(_PATH, doc="`/dev/drbdN`")
    minor: int = conf(None, doc="the device's minor", shown="from the device name")
    # the backing disk; the first node's when they differ per node
    disk: str = conf(None, doc="backing disk (or `{NODE: disk, NODE: disk}` when the nodes differ)")
    port: int = conf(_PORT, 7789, "replication port")
    disks: tuple[tuple[str, str], ...] = ()  # (node, disk) when `disk:` is given per node

    def disk_of(self, node: str) -> str:
        return dict(self.disks).get(node, self.disk)


@dataclass(frozen=True)
class Drbd:
    load_module: bool = conf(_BOOL, True, "`modprobe drbd minor_count=N` when `/proc/drbd` is absent")
    minor_count: int = conf(None, doc="the module parameter", shown="highest minor + 1")
    status_path: str = conf(_PATH, "/proc/drbd", "where the 8.4 status is read")  # /proc/drbd
    drbdadm: str = conf(_TEXT, "drbdadm", "the tool")
    drbdsetup: str = conf(_TEXT, "drbdsetup", "the tool")
    # bound on waiting for DRBD to notice a dead peer
    peer_dead_wait: float = conf(_DURATION_OR_ZERO, 11.0, "after heartbeat silence, how long to wait for DRBD "
                                 "to notice the peer is gone (its `ping-int` + `ping-timeout`)")
    resources: tuple[DrbdResource, ...] = conf(None, (), "", nested=DrbdResource, many=True)

    def resource(self, name: str) -> DrbdResource | None:
        return next((r for r in self.resources if r.name == name), None)


ACTION_TIMEOUT = 240.0  # seconds, the default of each action (Pacemaker's default-action-timeout)


@dataclass(frozen=True)
class Timeouts:
    start: float = conf(_DURATION_ABOVE_ZERO, ACTION_TIMEOUT, "per start, for every resource of the group "
                        "unless it sets its own")
    stop: float = conf(_DURATION_ABOVE_ZERO, ACTION_TIMEOUT, "per stop, the same")
    monitor: float = conf(_DURATION_ABOVE_ZERO, ACTION_TIMEOUT, "per monitor, the same")


DEFAULT_TIMEOUTS = Timeouts(**defaults(Timeouts))


@dataclass(frozen=True)
class _ResourceCommon:
    """The keys every resource has (`type` picks the class below)."""

    name: str = conf(_named("a name (letters, digits, _ . -)"))
    timeouts: Timeouts = conf(None, shown="the group's")  # read with the group's as defaults
    monitor_interval: float = conf(_DURATION_ABOVE_ZERO, shown="the group's")  # the group's is given


@dataclass(frozen=True)
class FilesystemResource(_ResourceCommon):
    device: str = conf(_PATH, doc="block device (symlinks are resolved; matched by device number) or "
                       "`host:/export` for network types", pacemaker="`device`")
    directory: str = conf(_PATH, doc="mount point; created (mode 0755) when missing", pacemaker="`directory`")
    fstype: str = conf(_TEXT, "ext4", "passed to `mount -t`", pacemaker="`fstype` (required there)")
    options: str = conf(_TEXT, "", "passed to `mount -o`; with `ro` the monitor only reads", pacemaker="`options`")
    fsck: bool = conf(_BOOL, False, "`fsck -p -t FSTYPE DEVICE` before mounting: exit 0-2 mounts (the message "
                      "says what was corrected), 4 and above refuses with fsck's meaning",
                      pacemaker="`run_fsck` (`auto`; `no` = false)")
    force_unmount: bool = conf(_BOOL, True, "when the unmount is busy, stop the processes that hold the mount; "
                               "`false` fails naming them (PID, command, what they hold)",
                               pacemaker="`force_unmount` (`true`)")
    kill_grace: float = conf(_DURATION_OR_ZERO, 5.0, "after SIGTERM, how long the holders have before SIGKILL",
                             pacemaker="`signal_delay` (`1`)")
    probe_file: bool = conf(_BOOL, True, "each monitor writes, fsyncs and reads back an anonymous file in "
                            "DIRECTORY (`O_TMPFILE`: no name a user of the mount could point at another file; "
                            "where the filesystem lacks it, `.hasupd-probe-NODE` created with "
                            "`O_EXCL|O_NOFOLLOW`); `false` = check the mount table only (level 0)",
                            pacemaker="monitor `OCF_CHECK_LEVEL=20` (`statusfile_prefix`)")
    type: str = "filesystem"


@dataclass(frozen=True)
class VipResource(_ResourceCommon):
    ip: str = conf(_Read(lambda v: v.ipv4()), doc="the IPv4 address", pacemaker="`ip`")
    cidr_netmask: int = conf(_whole(1, 32), 24, "prefix length; the broadcast address is derived "
                             "(`broadcast` `+`)", pacemaker="`cidr_netmask`")
    nic: str | None = conf(_TEXT, None, "where the address goes", pacemaker="`nic` (same search)",
                           shown="the interface whose connected route contains `ip/cidr_netmask`")
    label: str | None = conf(_TEXT, None, "the address label becomes `NIC:LABEL` (at most 15 characters, "
                             "checked)", pacemaker="`iflabel`")
    arp_count: int = conf(_whole(0, 100), 5, "gratuitous ARPs sent after adding; `0` = none",
                          pacemaker="`arp_count` (`5`)")
    arp_interval: float = conf(_DURATION_OR_ZERO, 0.2, "between two of them", pacemaker="`arp_interval` (`200` ms)")
    arp_repeat_after: float = conf(_DURATION_OR_ZERO, 5.0, "the same burst once more, this much later, in the "
                                   "background (start does not wait); `0` = off",
                                   pacemaker="(closest: `arp_count_refresh`)")
    check_duplicate: bool = conf(_BOOL, True, "ARP-probe the address first (as `arping -D`) and refuse if "
                                 "another host answers", pacemaker="`run_arping` (`false`)")
    type: str = "vip"


@dataclass(frozen=True)
class HttpdResource(_ResourceCommon):
    configfile: str = conf(_PATH, doc="passed as `-f`; checked with `BINARY -t -f CONFIGFILE` before every start",
                           pacemaker="`configfile` (`/etc/apache2/apache2.conf`)")
    # systemd mode when set; command mode otherwise
    unit: str | None = conf(_TEXT, None, "systemd unit to start/stop; state and main PID come from systemd",
                            pacemaker="(the `systemd:httpd` resource class)", shown="none (command mode)")
    binary: str = conf(_TEXT, "apache2", "the server binary (`httpd` on RHEL/CentOS)",
                       pacemaker="`httpd` (`/usr/sbin/httpd`)")
    pidfile: str | None = conf(_PATH, None, "command mode: where the main PID is",
                               pacemaker="(read from the configuration, as here)",
                               shown="`PidFile` of the configuration (relative to `ServerRoot`, `${VAR}` "
                               "expanded), else apache's compiled default (`apache2 -V`: `DEFAULT_PIDLOG`)")
    port: int = conf(_PORT, 80, "only used to build the default `statusurl`", pacemaker="`port`")
    statusurl: str = conf(None, doc="the deep probe: a GET, no proxy, bounded by the monitor timeout",
                          pacemaker="`statusurl` (`http://localhost:PORT/server-status`)",
                          shown="`http://127.0.0.1:PORT/server-status?auto`")  # built from port
    status_regex: str = conf(_TEXT, r"(?m)^(Total Accesses|ServerVersion|BusyWorkers):", "the page must match "
                             "it (the default matches `?auto` output)", pacemaker="`testregex` (`</ *html *>`)")
    check_config: bool = conf(_BOOL, True, "run the configuration check before each start",
                              pacemaker="(`validate-all` runs `httpd -t`)")
    environment: tuple[tuple[str, str], ...] = conf(
        None, (), "variables given to apache (and used to expand `${VAR}` in the configuration); a mapping "
        "here, not a file to source", pacemaker="`envfiles` (`/etc/apache2/envvars`)", shown="`{}`")
    # wait for in-flight requests (SIGWINCH) before SIGTERM
    graceful_stop: bool = conf(_BOOL, False, "stop waits for in-flight requests (SIGWINCH, ~1 s) before "
                               "SIGTERM; off, a move or failover does not wait for slow clients",
                               pacemaker="(the agent sends WINCH first)", init_default=True)
    type: str = "httpd"


@dataclass(frozen=True)
class SystemdUnitResource(_ResourceCommon):
    unit: str = conf(_TEXT, doc="the unit name", pacemaker="`systemd:UNIT`")
    type: str = "systemd_unit"


@dataclass(frozen=True)
class OcfResource(_ResourceCommon):
    agent: str = conf(_Read(lambda v: v.str(re.compile(r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$"),
                                            "PROVIDER:TYPE (like heartbeat:Dummy)")),
                      doc="runs `OCF_ROOT/resource.d/PROVIDER/TYPE ACTION`",
                      pacemaker="`primitive ... ocf:PROVIDER:TYPE`")  # heartbeat:Dummy
    params: tuple[tuple[str, str], ...] = conf(None, (), "each becomes `OCF_RESKEY_<name>`", pacemaker="`params`",
                                               shown="`{}`")
    ocf_root: str = conf(_PATH, "/usr/lib/ocf", pacemaker="`OCF_ROOT`")
    type: str = "ocf"
    # which of start/stop/monitor the configuration sets (resource or group
    # `timeouts`); the others come from the agent's meta-data (OcfDriver)
    explicit_timeouts: tuple[str, ...] = ()


Resource = Union[
    FilesystemResource, VipResource, HttpdResource, SystemdUnitResource, OcfResource
]
_RESOURCE_TYPES = {cls.type: cls for cls in
                   (FilesystemResource, VipResource, HttpdResource, SystemdUnitResource, OcfResource)}


def _stickiness(v: _Value) -> float:
    raw = str(v._scalar()).lower()
    return math.inf if raw in ("inf", "infinity") else float(v.int(0))


@dataclass(frozen=True)
class Group:
    name: str = conf(_named("a group name"), doc="unique")
    drbd: str | None = conf(None, None, "the DRBD resource the group runs on (only where it is Primary)")
    resources: tuple[Resource, ...] = conf(None, doc="ordered: started in this order, stopped in reverse "
                                           "(their keys are listed with each resource type below)")
    preferred_node: str | None = conf(None, None, "where the group starts when both nodes are free")
    # math.inf = never fail back
    stickiness: float = conf(_Read(_stickiness), math.inf, "a running group stays where it is (no fail-back)")
    migration_threshold: int = conf(_whole(1, 1000000), 1, "failures on a node before the group leaves it")
    # 0 = fail counts never expire
    failure_timeout: float = conf(_DURATION_OR_ZERO, 600.0, "fail counts expire after this (`0` = never)")
    on_stop_failure: str = conf(_choice("block", "reboot"), "block", "or `reboot` (self-fence)")
    # the group-level `timeouts` / `monitor_interval` as written (each resource's
    # own values are resolved already); kept so `hasupctl export` can write them
    # back as Pacemaker's op defaults
    default_timeouts: Timeouts = conf(None, DEFAULT_TIMEOUTS, yaml_key="timeouts", nested=Timeouts,
                                      init_default=True, compare=False)
    default_monitor_interval: float = conf(_DURATION_ABOVE_ZERO, 20.0, "deep probe interval (failures are "
                                           "also seen by events at once)", yaml_key="monitor_interval",
                                           init_default=True, compare=False)
    autostart: bool = conf(_BOOL, True, "start the group when the cluster forms (`hasupctl stop GROUP` "
                           "overrides)", init_default=True)

    def resource(self, name: str) -> Resource | None:
        return next((r for r in self.resources if r.name == name), None)


@dataclass(frozen=True)
class AlertAgent:
    path: str = conf(_PATH, doc="Pacemaker-style alert agent")
    timeout: float = conf(_DURATION_ABOVE_ZERO, 30.0, "per call")
    recipient: str = conf(_TEXT, "", "passed as `CRM_alert_recipient`")


METRICS_PORT = 9675  # Prometheus: ha_cluster_exporter has 9664, drbd-reactor 9942


@dataclass(frozen=True)
class Metrics:
    address: str = conf(None, doc=f"`ADDRESS:PORT` (`[v6]:PORT`; no port: {METRICS_PORT}) of the "
                        "Prometheus endpoint", yaml_key="listen", shown="required")  # "" = every address
    port: int = METRICS_PORT


@dataclass(frozen=True)
class Config:
    path: str
    cluster: str = conf(_named("a name (letters, digits, _ . -)"), doc="the cluster's name; packets of "
                        "another cluster are dropped")
    nodes: tuple[Node, Node] = conf(None, nested=Node, many=True)
    heartbeat: Heartbeat = conf(None, nested=Heartbeat)
    split_brain_guard: SplitBrainGuard = conf(None, nested=SplitBrainGuard)
    drbd: Drbd = conf(None, nested=Drbd)
    groups: tuple[Group, ...] = conf(None, nested=Group, many=True)
    alerts: tuple[AlertAgent, ...] = conf(None, nested=AlertAgent, many=True)
    state_dir: str = conf(_PATH, "/var/lib/hasupd", "state file and history")
    control_socket: str = conf(_PATH, "/run/hasupd/hasupd.sock", "control socket", yaml_key="control.socket")
    control_group: str = conf(_TEXT, "hasupd", "its group may read status", yaml_key="control.group")
    history_max_bytes: int = conf(_whole(4096), 4 * 1024 * 1024, "history file size before rotation",
                                  yaml_key="history.max_bytes")
    warnings: tuple[str, ...] = field(default=(), compare=False)
    fencing: Fencing | None = conf(None, None, nested=Fencing, init_default=True)
    # None: no metrics endpoint
    metrics: Metrics | None = conf(None, None, nested=Metrics, init_default=True, compare=False)

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


# ---------------------------------------------------------------- the generic reader


def _allowed(cls, section: str = "") -> tuple[str, ...]:
    """The keys CLS's mapping may hold (or its sub-mapping SECTION's), in declaration order."""
    names: list[str] = []
    for f in fields(cls):
        key = _key(f)
        if key is None:
            continue
        head, _, rest = (key.yaml or f.name).partition(".")
        if not section:
            names.append(head)
        elif head == section and rest:
            names.append(rest)
    return tuple(dict.fromkeys(names))


def _section(cls, v: _Value) -> _Mapping:
    return v.mapping(_allowed(cls))


def _read(cls, m: _Mapping, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Each of CLS's keys that has a reader, read from M: its value, else its
    default (from GIVEN when there, else the declared one); a missing required
    key is an error.  Keys read by a section's own code are left out."""
    out: dict[str, Any] = {}
    subs: dict[str, _Mapping | None] = {}
    for f in fields(cls):
        key = _key(f)
        if key is None:
            continue
        if key.read is None:  # the section's code reads it; it starts from the declared default
            if key.default is not REQUIRED:
                out[f.name] = key.default if given is None else given.get(f.name, key.default)
            continue
        where: _Mapping | None = m
        name = key.yaml or f.name
        if "." in name:  # control.socket: the key socket of the sub-mapping control
            section, name = name.split(".", 1)
            if section not in subs:
                sv = m.get(section)
                subs[section] = None if sv is None else sv.mapping(_allowed(cls, section))
            where = subs[section]
        v = where.get(name) if where is not None else None
        if v is not None:
            out[f.name] = key.read(v)
        elif given is not None and f.name in given:
            out[f.name] = given[f.name]
        elif key.default is REQUIRED:
            raise m.value.error(f"missing required key {name!r}")
        else:
            out[f.name] = key.default
    return out


def reference_rows(cls=None, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, meaning) of every configuration key, from the declarations."""
    rows: list[tuple[str, str, str]] = []
    for f in fields(cls or Config):
        key = _key(f)
        if key is None:
            continue
        name = prefix + (key.yaml or f.name)
        if key.nested is not None:
            if key.doc:
                rows.append((name, "none" if key.default is None else "required", key.doc))
            rows += reference_rows(key.nested, name + ("[]." if key.many else "."))
            continue
        rows.append((name, key.shown_default(), key.doc))
    return rows


def _row(*cells: str) -> str:
    """A Markdown table row (a `|` inside a cell escaped)."""
    return "|" + "|".join(f" {c.replace('|', chr(92) + '|')} " if c else " " for c in cells) + "|"


def reference_table() -> str:
    """README's configuration reference table."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [_row(f"`{name}`", shown, doc) for name, shown, doc in reference_rows()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- sections


def _timeouts(m: _Mapping, default: Timeouts) -> Timeouts:
    t = m.get("timeouts")
    if t is None:
        return default
    return Timeouts(**_read(Timeouts, _section(Timeouts, t), asdict(default)))


def _timeout_keys(m: _Mapping) -> tuple[str, ...]:
    """The action timeouts a mapping's `timeouts` sets explicitly."""
    t = m.get("timeouts")
    if t is None:
        return ()
    return tuple(k for k in _allowed(Timeouts) if _section(Timeouts, t).get(k))


def _load_resource(v: _Value, default_timeouts: Timeouts, default_interval: float,
                   group_timeout_keys: tuple[str, ...] = ()) -> Resource:
    if not isinstance(v.node, yaml.MappingNode):
        raise v.error("expected a resource (a mapping with name and type)")
    kind = _Mapping(v, ()).need("type").choice(tuple(_RESOURCE_TYPES))
    cls = _RESOURCE_TYPES[kind]
    keys = _allowed(cls)
    m = v.mapping(keys[:1] + ("type",) + keys[1:])  # type picks the class: not a field's key
    values = _read(cls, m, {"monitor_interval": default_interval})
    values["timeouts"] = _timeouts(m, default_timeouts)
    if cls is HttpdResource:
        env = m.get("environment")
        if env is not None:
            values["environment"] = tuple((k, ev.str()) for k, ev in env.mapping(()).items.items())
        values["statusurl"] = m.opt("statusurl", _TEXT,
                                    f"http://127.0.0.1:{values['port']}/server-status?auto")
    if cls is OcfResource:
        params = m.get("params")
        if params is not None:
            values["params"] = tuple((_ocf_param_name(k, pv), _ocf_param_value(pv))
                                     for k, pv in params.mapping(()).items.items())
        values["explicit_timeouts"] = tuple(sorted(set(group_timeout_keys) | set(_timeout_keys(m))))
    return cls(**values)


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
    top = _section(Config, _Value(root, path, ""))
    warnings: list[str] = []
    values = _read(Config, top)
    heartbeat = _heartbeat(top.need("heartbeat"))
    nodes = _nodes(top.need("nodes"), heartbeat.rings)
    node_names = (nodes[0].name, nodes[1].name)
    guard_v = top.get("split_brain_guard")
    guard = _guard(guard_v, warnings)
    drbd = _drbd(top.get("drbd"), nodes)
    groups = _groups(top.need("groups"), drbd, node_names)
    alerts = tuple(AlertAgent(**_read(AlertAgent, _section(AlertAgent, av)))
                   for av in (top.need("alerts").list() if top.get("alerts") is not None else ()))
    fencing = _fencing(top.get("fencing"), guard, node_names, warnings)
    if guard.mode == "fence" and fencing is None:
        raise (guard_v or top.value).error("split_brain_guard 'fence' needs a 'fencing:' section "
                                           "with the devices that fence each node")
    values.update(path=path, nodes=(nodes[0], nodes[1]), heartbeat=heartbeat, split_brain_guard=guard,
                  drbd=drbd, groups=groups, alerts=alerts, fencing=fencing, metrics=_metrics(top.get("metrics")))
    cfg = Config(**values)
    return Config(**{**values, "warnings": tuple(warnings + _warnings(cfg))})


def _warnings(cfg: Config) -> list[str]:
    """What is allowed but probably not meant (after the section warnings)."""
    warnings = []
    if cfg.split_brain_guard.mode == "drbd" and not cfg.drbd.resources:
        warnings.append("split_brain_guard 'drbd' without any DRBD resource guards nothing")
    if cfg.fencing is not None:
        warnings += _fence_race_warnings(cfg.fencing, len(cfg.groups))
    for g in cfg.groups:
        if g.drbd is None and any(r.type == "filesystem" for r in g.resources):
            warnings.append(f"group {g.name} mounts a filesystem but has no 'drbd': "
                            "nothing keeps the data on one node")
    drbd, heartbeat = cfg.drbd, cfg.heartbeat
    if drbd.resources and heartbeat.deadtime < drbd.peer_dead_wait:
        warnings.append(
            f"drbd.peer_dead_wait {drbd.peer_dead_wait:g}s is longer than deadtime "
            f"{heartbeat.deadtime:g}s: after a node dies the survivor waits for DRBD to notice "
            "(its ping-int + ping-timeout); set `net { ping-int 1; ping-timeout 5; }` in the "
            "DRBD resource and peer_dead_wait to match for a faster takeover")
    return warnings


def _heartbeat(hb_v: _Value) -> Heartbeat:
    hb = _section(Heartbeat, hb_v)
    values = _read(Heartbeat, hb)
    rings_v = hb.need("rings")
    rings: list[Ring] = []
    for i, rv in enumerate(rings_v.list()):
        rm = _section(Ring, rv)
        ring = _read(Ring, rm)
        if ring["interface"] is None and ring["bind_network"] is None:
            raise rv.error("a ring needs 'interface' or 'bind_network' to know where to send")
        group_v = rm.get("group")
        if values["transport"] == "multicast":
            if group_v is None:
                raise rv.error("a multicast ring needs 'group' (like 226.94.1.1)")
            ring["group"] = group_v.ipv4()
            if not ipaddress.IPv4Address(ring["group"]).is_multicast:
                raise group_v.error(f"{ring['group']} is not a multicast address (224.0.0.0/4)")
        elif group_v is not None:
            ring["group"] = group_v.ipv4()
        rings.append(Ring(index=i, **ring))
    if not rings:
        raise rings_v.error("at least one ring is needed")
    interval, deadtime = values["interval"], values["deadtime"]
    if deadtime < 3 * interval:
        raise (hb.get("deadtime") or hb_v).error(
            f"deadtime {deadtime:g}s must be at least 3 x interval ({3 * interval:g}s), "
            "or one lost packet would declare the peer dead")
    values.update(rings=tuple(rings), initdead=max(values["initdead"], deadtime))
    return Heartbeat(**values)


def _nodes(nodes_v: _Value, rings: tuple[Ring, ...]) -> list[Node]:
    nodes: list[Node] = []
    for nv in nodes_v.list():
        nm = _section(Node, nv)
        name = _read(Node, nm)["name"]
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
    return nodes


def _guard(guard_v: _Value | None, warnings: list[str]) -> SplitBrainGuard:
    if guard_v is None:
        warnings.append("no split_brain_guard configured (mode none): a node takes over on "
                        "heartbeat silence alone")
        return SplitBrainGuard("none")
    gm = _section(SplitBrainGuard, guard_v)
    mode = _read(SplitBrainGuard, gm)["mode"]
    ping = fence = None
    # fence/drbd: an optional ping tie-breaker; a node that cannot reach it does not fence
    if mode == "ping" or (mode in ("fence", "drbd") and gm.get("ping") is not None):
        ping = PingGuard(**_read(PingGuard, _section(PingGuard, gm.need("ping"))))
    if mode == "fence" and gm.get("fence") is not None:  # round 1; now the fencing: section
        fence = FenceGuard(**_read(FenceGuard, _section(FenceGuard, gm.need("fence"))))
    elif mode == "none":
        warnings.append("split_brain_guard is 'none': a node takes over on heartbeat silence "
                        "alone; a cut network can then run the group twice")
    return SplitBrainGuard(mode, ping, fence)


def _drbd(drbd_v: _Value | None, nodes: list[Node]) -> Drbd:
    if drbd_v is None:  # no DRBD: nothing to load
        return Drbd(**{**defaults(Drbd), "load_module": False, "minor_count": 1})
    dm = _section(Drbd, drbd_v)
    resources: list[DrbdResource] = []
    for rv in (dm.get("resources").list() if dm.get("resources") else []):
        rm = _section(DrbdResource, rv)
        values = _read(DrbdResource, rm)
        dev_minor = re.search(r"drbd(\d+)$", values["device"])
        values["minor"] = rm.opt("minor", lambda v: v.int(0, 1048575),
                                 int(dev_minor.group(1)) if dev_minor else None)
        if values["minor"] is None:
            raise rm.need("device").error("cannot tell the minor from the device name; set 'minor'")
        disk_v = rm.need("disk")
        if isinstance(disk_v.node, yaml.MappingNode):  # disk: {NODE: PATH, NODE: PATH}
            per_node = disk_v.mapping(tuple(n.name for n in nodes))
            values["disks"] = tuple((n.name, per_node.need(n.name).path_str()) for n in nodes)
            values["disk"] = values["disks"][0][1]
        else:
            values["disk"] = disk_v.path_str()
        resources.append(DrbdResource(**values))
    names = [r.name for r in resources]
    if len(set(names)) != len(names):
        raise drbd_v.error("two DRBD resources have the same name")
    values = _read(Drbd, dm)
    needed = max((r.minor for r in resources), default=0) + 1
    minor_count_v = dm.get("minor_count")
    values.update(minor_count=minor_count_v.int(1, 255) if minor_count_v else max(needed, 1),
                  resources=tuple(resources))
    return Drbd(**values)


def _groups(groups_v: _Value, drbd: Drbd, node_names: tuple[str, str]) -> tuple[Group, ...]:
    groups: list[Group] = []
    all_resource_names: set[str] = set()
    used_drbd: set[str] = set()
    for gv in groups_v.list():
        gm = _section(Group, gv)
        values = _read(Group, gm)
        drbd_name_v = gm.get("drbd")
        if drbd_name_v is not None:
            drbd_name = values["drbd"] = drbd_name_v.str()
            if drbd.resource(drbd_name) is None:
                raise drbd_name_v.error(f"no DRBD resource {drbd_name!r} under drbd.resources"
                                        f"{_did_you_mean(drbd_name, [r.name for r in drbd.resources])}")
            if drbd_name in used_drbd:
                raise drbd_name_v.error(f"DRBD resource {drbd_name!r} already belongs to another group")
            used_drbd.add(drbd_name)
        values["default_timeouts"] = _timeouts(gm, DEFAULT_TIMEOUTS)
        resource_vs = gm.need("resources").list()
        values["resources"] = tuple(
            _load_resource(rv, values["default_timeouts"], values["default_monitor_interval"], _timeout_keys(gm))
            for rv in resource_vs)
        for rv, r in zip(resource_vs, values["resources"]):
            if r.name in all_resource_names:
                raise rv.error(f"resource name {r.name!r} is used twice")
            all_resource_names.add(r.name)
        pref_v = gm.get("preferred_node")
        if pref_v is not None:
            values["preferred_node"] = pref_v.choice(node_names)
        groups.append(Group(**values))
    if len({g.name for g in groups}) != len(groups):
        raise groups_v.error("two groups have the same name")
    return tuple(groups)


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
    m = _section(FenceDevice, v)
    values = _read(FenceDevice, m)
    name = values["name"]
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
    values.update(agent=agent, command=command, nodes=nodes, plugs=tuple(plugs), options=tuple(options),
                  secrets=secrets, positions=tuple(positions))
    return FenceDevice(**values)


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
        device = FenceDevice(**{**defaults(FenceDevice), "name": "fence-command", "command": guard.fence.command,
                                "nodes": node_names, "timeout": guard.fence.timeout, "retries": 0})
        return Fencing(**{**defaults(Fencing), "devices": (device,)})
    m = _section(Fencing, v)
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
    fencing = Fencing(**{**_read(Fencing, m), "devices": tuple(devices), "levels": tuple(levels)})
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
    lv = _section(Metrics, v).need("listen")
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


# per resource type: the README table's Pacemaker column title, then the rows of the two
# keys every type has: (default or None for the group's, Pacemaker, meaning) of `timeouts`
# and (Pacemaker, meaning) of `monitor_interval`
_RESOURCE_README = {
    "filesystem": ("Pacemaker `Filesystem`", None, "operation timeouts", "the monitor's I/O probe is bounded by "
                   "`monitor`: a hung disk is a failure, and no second probe is piled on a hung one",
                   "monitor `interval`", ""),
    "vip": ("Pacemaker `IPaddr2`", None, "operation timeouts", "", "monitor `interval`", ""),
    "httpd": ("Pacemaker `apache`", None, "operation timeouts (agent meta-data: 40s / 60s / 20s)", "",
              "monitor `interval` (`10s`)", ""),
    "systemd_unit": ("Pacemaker", None, "operation timeouts", "bound on each `systemctl` call",
                     "monitor `interval`", ""),
    "ocf": ("Pacemaker", "the resource's or group's `timeouts` when given, else the agent's meta-data "
            f"(`<action name=\"start\" timeout=\"20s\"/>`), else {_show_duration(ACTION_TIMEOUT)}",
            "operation timeouts (crm/pcs copy the meta-data's)", "", "monitor `interval`", "also the watch's period"),
}


def resource_table(kind: str) -> str:
    """README's table of the keys of resource type KIND."""
    title, timeouts_default, timeouts_pcmk, timeouts_doc, interval_pcmk, interval_doc = _RESOURCE_README[kind]
    cls = _RESOURCE_TYPES[kind]
    lines = [f"| key | default | {title} | meaning |", "|---|---|---|---|"]
    for f in fields(cls):
        key = _key(f)
        if key is None or f.name in _allowed(_ResourceCommon):
            continue
        lines.append(_row(f"`{f.name}`", key.shown_default(), key.pacemaker, key.doc))
    group = defaults(Group)
    lines.append(_row("`timeouts.start/stop/monitor`",
                      timeouts_default or f"the group's ({_show_duration(ACTION_TIMEOUT)})", timeouts_pcmk, timeouts_doc))
    lines.append(_row("`monitor_interval`", f"the group's ({_show_duration(group['default_monitor_interval'])})",
                      interval_pcmk, interval_doc))
    return "\n".join(lines) + "\n"


_GENERATED_BY = "generated by `python -m hasupd.config --update-readme README.md`"
README_BEGIN = f"<!-- configuration reference: {_GENERATED_BY} -->\n"
README_END = "<!-- end of the generated configuration reference -->\n"


def _readme_blocks() -> list[tuple[str, str, str]]:
    """(begin marker, end marker, generated text) of each generated README table."""
    blocks = [(README_BEGIN, README_END, reference_table())]
    for kind in _RESOURCE_TYPES:
        blocks.append((f"<!-- keys of resource type {kind}: {_GENERATED_BY} -->\n",
                       f"<!-- end of the generated keys of {kind} -->\n", resource_table(kind)))
    return blocks


def readme_with_table(text: str) -> str:
    """TEXT (README.md) with the generated tables between their markers."""
    for begin_marker, end_marker, generated in _readme_blocks():
        head, begin, rest = text.partition(begin_marker)
        _, end, tail = rest.partition(end_marker)
        if not begin or not end:
            raise ValueError(f"README has no marker {begin_marker.strip()}")
        text = head + begin_marker + generated + end_marker + tail
    return text


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m hasupd.config",
                                     description="The configuration reference, from the key declarations.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--table", action="store_true", help="print the reference table (Markdown)")
    what.add_argument("--update-readme", metavar="README", help="rewrite the table between its markers")
    args = parser.parse_args(argv)
    if args.table:
        print(reference_table(), end="")
        return 0
    readme = Path(args.update_readme)
    readme.write_text(readme_with_table(readme.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
