"""The simulator's own configuration (JSON): what a ``drbd.conf`` would say,
plus where the simulated node keeps its files.

Example (one file shared by both nodes; each daemon picks its node by name)::

    {
      "image_dir": "/tmp/lab/images",          # shared by the two nodes
      "resync_rate_kib": 65536,                # simulated resync speed, KiB/s
      "resync_min_s": 1.0,                     # every resync takes at least this long
      "conf_path": "/etc/drbd.conf",           # DRBD_CONF given to handlers
      "nodes": {
        "n1": {"state_dir": "/tmp/lab/n1", "socket": "/tmp/lab/n1/sim.sock",
               "status_path": "/tmp/lab/n1/proc-drbd"},
        "n2": {...}
      },
      "resources": [
        {"name": "r0", "minor": 1, "port": 7789, "size_mib": 64,
         "fencing": "resource-only",            # or "dont-care"
         "ping_int": 1.0, "ping_timeout": 0.5,  # seconds (DRBD: 10 and 0.5)
         "handlers": {"fence-peer": "...", "unfence-peer": "...", "split-brain": "..."},
         "hosts": {
           "n1": {"address": "10.99.0.11", "device": "/tmp/lab/n1/drbd1", "disk": "/dev/loop7"},
           "n2": {"address": "10.99.0.12", "device": "/tmp/lab/n2/drbd1", "disk": "/dev/loop8"}}}
      ]
    }
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


class SimConfigError(Exception):
    pass


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    device: str  # path where the Primary's block device node appears
    disk: str  # backing "disk": a loop device (its detach = disk failure) or any path


@dataclass(frozen=True)
class SimResource:
    name: str
    minor: int
    port: int
    hosts: tuple[Host, Host]
    size_mib: int = 64
    protocol: str = "C"
    fencing: str = "dont-care"  # dont-care | resource-only | resource-and-stonith
    ping_int: float = 10.0
    ping_timeout: float = 0.5
    connect_int: float = 0.5  # retry interval of the connecting side
    handlers: dict = field(default_factory=dict)
    auto_promote: bool = False  # DRBD 9's `options { auto-promote }` as `drbdadm dump` shows it (not acted on)

    def me(self, node: str) -> Host:
        return next(h for h in self.hosts if h.name == node)

    def peer(self, node: str) -> Host:
        return next(h for h in self.hosts if h.name != node)


@dataclass(frozen=True)
class NodePaths:
    state_dir: str
    socket: str
    status_path: str


@dataclass(frozen=True)
class SimConfig:
    path: str
    image_dir: str
    resources: tuple[SimResource, ...]
    nodes: dict
    resync_rate_kib: int = 65536
    resync_min_s: float = 1.0
    conf_path: str = "/etc/drbd.conf"

    def node(self, name: str) -> NodePaths:
        if name not in self.nodes:
            raise SimConfigError(f"{self.path}: node {name!r} not in nodes ({', '.join(self.nodes)})")
        return self.nodes[name]

    def resource(self, name: str) -> SimResource | None:
        return next((r for r in self.resources if r.name == name), None)


def _need(d: dict, key: str, where: str):
    if key not in d:
        raise SimConfigError(f"{where}: missing {key!r}")
    return d[key]


def parse(data: dict, path: str = "<sim config>") -> SimConfig:
    try:
        nodes = {}
        for name, n in _need(data, "nodes", path).items():
            w = f"{path}: nodes.{name}"
            nodes[name] = NodePaths(str(_need(n, "state_dir", w)), str(_need(n, "socket", w)),
                                    str(_need(n, "status_path", w)))
        resources = []
        for i, r in enumerate(_need(data, "resources", path)):
            w = f"{path}: resources[{i}]"
            hosts = []
            for hname, h in _need(r, "hosts", w).items():
                hw = f"{w}.hosts.{hname}"
                hosts.append(Host(hname, str(_need(h, "address", hw)), str(_need(h, "device", hw)),
                                  str(_need(h, "disk", hw))))
            if len(hosts) != 2:
                raise SimConfigError(f"{w}: exactly two hosts are needed, got {len(hosts)}")
            fencing = r.get("fencing", "dont-care")
            if fencing not in ("dont-care", "resource-only", "resource-and-stonith"):
                raise SimConfigError(f"{w}: fencing must be dont-care, resource-only or "
                                     f"resource-and-stonith, not {fencing!r}")
            resources.append(SimResource(
                name=str(_need(r, "name", w)), minor=int(_need(r, "minor", w)),
                port=int(r.get("port", 7789)), hosts=(hosts[0], hosts[1]),
                size_mib=int(r.get("size_mib", 64)), protocol=str(r.get("protocol", "C")),
                fencing=fencing, ping_int=float(r.get("ping_int", 10.0)),
                ping_timeout=float(r.get("ping_timeout", 0.5)),
                connect_int=float(r.get("connect_int", 0.5)),
                handlers=dict(r.get("handlers", {})), auto_promote=bool(r.get("auto_promote", False))))
        return SimConfig(path=path, image_dir=str(_need(data, "image_dir", path)),
                         resources=tuple(resources), nodes=nodes,
                         resync_rate_kib=int(data.get("resync_rate_kib", 65536)),
                         resync_min_s=float(data.get("resync_min_s", 1.0)),
                         conf_path=str(data.get("conf_path", "/etc/drbd.conf")))
    except (TypeError, ValueError, AttributeError) as e:
        raise SimConfigError(f"{path}: {e}") from None


def load(path: str | Path) -> SimConfig:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise SimConfigError(f"{path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise SimConfigError(f"{path}:{e.lineno}:{e.colno}: {e.msg}") from None
    return parse(data, str(path))
