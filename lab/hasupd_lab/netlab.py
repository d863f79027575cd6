"""The lab network: nodes and a two-ring LAN in network namespaces.

One ``Topology`` builds the layout of shared/lab-notes.md under a name
prefix, so several labs can exist side by side::

    netns PREFIX-lan     br0 (ring 0, 10.99.0.0/24), br1 (ring 1, 10.99.1.0/24)
    netns PREFIX-n1      eth0 10.99.0.11/24 (br0)   eth1 10.99.1.11/24 (br1)
    netns PREFIX-n2      eth0 10.99.0.12/24 (br0)   eth1 10.99.1.12/24 (br1)
    netns PREFIX-client  eth0 10.99.0.100/24 (br0)

Node k (0-based, in ``nodes`` order) has the address 10.99.RING.(11+k).
Each node's cable on ring R is a veth pair: ``ethR`` inside the node's
namespace, and the switch port ``NODE-ethR`` inside PREFIX-lan (port names
live in the lan namespace, which already carries the prefix, so they need
none and stay within the kernel's 15-character limit).  Nothing touches
the root namespace: no packet of the lab reaches the host's network.

With ``mgmt=True`` a management network joins (10.77.0.0/24, bridge
``brm`` in PREFIX-lan): each node gets ``ethm`` 10.77.0.(11+k) and a BMC
namespace PREFIX-NODE-bmc with ``eth0`` 10.77.0.(21+k) (hasupd_lab.bmc
runs ipmi_sim there).  Partitions cut the rings only, never this network.

Faults act on the switch side, like pulling a cable out of the switch: the
node keeps its address and route, ``sendto()`` succeeds, the packets are
lost (``cut_ring``); or drop a share of them at random with nftables
``numgen`` rules (``loss``; there is no netem on these machines).

Run commands in a node with ``exec_argv(node, argv)``: it uses
``nsenter --net=...`` so the command stays in the root mount namespace
(``ip netns exec`` would give it a private one, hiding its mounts).

    topo = Topology("hb1")
    topo.up()
    try:
        subprocess.run(topo.exec_argv("n1", ["ping", "-c1", topo.address("n2", 0)]))
        topo.cut_ring("n2", 1)
    finally:
        topo.down()
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from typing import Sequence

LAN = "lan"
CLIENT = "client"
NET = "10.99"  # ring R is 10.99.R.0/24
CLIENT_HOST = 100
FIRST_NODE_HOST = 11
MGMT_NET = "10.77.0"  # the management network: nodes .11+k, their BMCs .21+k
FIRST_BMC_HOST = 21
DRBD_PORT = 7789  # the simulator's replication link (ring 0): partition-rings keeps it
_PREFIX = re.compile(r"^[A-Za-z0-9]{1,6}$")
_NODE = re.compile(r"^[a-z][a-z0-9]{0,9}$")  # NODE-ethR must fit in 15 characters


class NetlabError(Exception):
    """A lab command failed; the message has the command and its error."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run(["ip", *args], check=check)


def _run(argv: Sequence[str], check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise NetlabError(f"{' '.join(argv)}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    return proc


class Topology:
    """Namespaces PREFIX-lan, PREFIX-<node>..., PREFIX-client (see module doc)."""

    def __init__(self, prefix: str, nodes: Sequence[str] = ("n1", "n2"), rings: int = 2,
                 client: bool = True, mgmt: bool = False):
        if not _PREFIX.match(prefix):
            raise NetlabError(f"lab prefix {prefix!r}: 1 to 6 letters or digits")
        for n in nodes:
            if not _NODE.match(n) or n in (LAN, CLIENT):
                raise NetlabError(f"lab node name {n!r}: 1 to 10 lower-case letters or digits, "
                                  "starting with a letter, not 'lan' or 'client'")
        if len(set(nodes)) != len(nodes) or not 1 <= len(nodes) <= 80:
            raise NetlabError("lab node names must be distinct (1 to 80 nodes)")
        if not 1 <= rings <= 9:
            raise NetlabError("a lab has 1 to 9 rings")
        self.prefix = prefix
        self.nodes = tuple(nodes)
        self.rings = rings
        self.client = client
        self.mgmt = mgmt

    # ------------------------------------------------------------ names

    def ns(self, node: str) -> str:
        """Namespace name of a node, of 'client' or of 'lan'."""
        if node != LAN and node not in self.nodes and not (node == CLIENT and self.client):
            raise NetlabError(f"no node {node!r} in lab {self.prefix}")
        return f"{self.prefix}-{node}"

    @property
    def lan(self) -> str:
        return self.ns(LAN)

    def namespaces(self) -> list[str]:
        names = [self.lan] + [self.ns(n) for n in self.nodes]
        names += [self.bmc_ns(n) for n in self.nodes] if self.mgmt else []
        return names + ([self.ns(CLIENT)] if self.client else [])

    def bmc_ns(self, node: str) -> str:
        """The namespace of a node's BMC (on the management network)."""
        self.ns(node)
        return f"{self.prefix}-{node}-bmc"

    def mgmt_address(self, node: str) -> str:
        return f"{MGMT_NET}.{FIRST_NODE_HOST + self.nodes.index(node)}"

    def bmc_address(self, node: str) -> str:
        return f"{MGMT_NET}.{FIRST_BMC_HOST + self.nodes.index(node)}"

    def bridge(self, ring: int) -> str:
        self._check_ring(ring)
        return f"br{ring}"

    def port(self, node: str, ring: int) -> str:
        """The switch port (in the lan namespace) of a node's cable on a ring."""
        self._check_ring(ring)
        if node == CLIENT and ring != 0:
            raise NetlabError("the client is on ring 0 only")
        self.ns(node)
        return f"{node}-eth{ring}"

    def address(self, node: str, ring: int) -> str:
        self._check_ring(ring)
        if node == CLIENT:
            if ring != 0 or not self.client:
                raise NetlabError("the client is on ring 0 only")
            return f"{NET}.0.{CLIENT_HOST}"
        if node not in self.nodes:
            raise NetlabError(f"no node {node!r} in lab {self.prefix}")
        return f"{NET}.{ring}.{FIRST_NODE_HOST + self.nodes.index(node)}"

    def network(self, ring: int) -> str:
        self._check_ring(ring)
        return f"{NET}.{ring}.0/24"

    def _check_ring(self, ring: int) -> None:
        if not 0 <= ring < self.rings:
            raise NetlabError(f"no ring {ring} (the lab has {self.rings})")

    # ------------------------------------------------------------ running things

    def exec_argv(self, node: str, argv: Sequence[str]) -> list[str]:
        """argv that runs a command in the node's network namespace only."""
        return ["nsenter", f"--net=/run/netns/{self.ns(node)}", "--", *argv]

    def run(self, node: str, argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
        return _run(self.exec_argv(node, argv), check=check)

    def pids(self, node: str) -> list[int]:
        proc = _ip("netns", "pids", self.ns(node), check=False)
        return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []

    def exists(self) -> bool:
        return os.path.exists(f"/run/netns/{self.lan}")

    # ------------------------------------------------------------ build / tear down

    def up(self) -> None:
        """Build the lab (about 0.2 s).  Refuses if it already exists."""
        if self.exists():
            raise NetlabError(f"lab {self.prefix} already exists (run down() first)")
        try:
            self._build()
        except BaseException:
            self.down()
            raise

    def _build(self) -> None:
        lan = self.lan
        _ip("netns", "add", lan)
        lines = ["link set lo up"]
        for r in range(self.rings):
            # no STP / forwarding delay: ports forward at once
            lines += [f"link add br{r} type bridge forward_delay 0 stp_state 0", f"link set br{r} up"]
        self._batch(lan, lines)
        members = [(n, list(range(self.rings))) for n in self.nodes]
        if self.client:
            members.append((CLIENT, [0]))
        for node, rings in members:
            ns = self.ns(node)
            _ip("netns", "add", ns)
            lan_lines = []
            node_lines = ["link set lo up"]
            for r in rings:
                port = self.port(node, r)
                lan_lines += [f"link add {port} type veth peer name eth{r} netns {ns}",
                              f"link set {port} master br{r} up"]
                node_lines += [f"addr add {self.address(node, r)}/24 dev eth{r}", f"link set eth{r} up"]
            self._batch(lan, lan_lines)
            self._batch(ns, node_lines)
            if node != CLIENT:
                # a VIP can be bound before it is assigned (apache's Listen)
                self.run(node, ["sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"])
            # ICMP echo through unprivileged ping sockets (the ping tie-breaker)
            self.run(node, ["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"])
        if self.mgmt:
            self._build_mgmt()

    def _build_mgmt(self) -> None:
        self._batch(self.lan, ["link add brm type bridge forward_delay 0 stp_state 0", "link set brm up"])
        for node in self.nodes:
            bmc = self.bmc_ns(node)
            _ip("netns", "add", bmc)
            self._batch(self.lan, [
                f"link add {node}-ethm type veth peer name ethm netns {self.ns(node)}",
                f"link set {node}-ethm master brm up",
                f"link add {node}-bmc type veth peer name eth0 netns {bmc}",
                f"link set {node}-bmc master brm up"])
            self._batch(self.ns(node), [f"addr add {self.mgmt_address(node)}/24 dev ethm", "link set ethm up"])
            self._batch(bmc, ["link set lo up", f"addr add {self.bmc_address(node)}/24 dev eth0",
                              "link set eth0 up"])

    @staticmethod
    def _batch(ns: str, lines: list[str]) -> None:
        if lines:
            _run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n")

    def down(self) -> None:
        """Kill every process of the lab's namespaces (by PID) and delete them.

        Safe to call twice, and on a half-built lab."""
        names = [n for n in self.namespaces() if os.path.exists(f"/run/netns/{n}")]
        for ns in names:
            for pid in self._ns_pids(ns):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5.0
        for ns in names:
            while self._ns_pids(ns) and time.monotonic() < deadline:
                time.sleep(0.02)
            _ip("netns", "del", ns, check=False)

    @staticmethod
    def _ns_pids(ns: str) -> list[int]:
        proc = _ip("netns", "pids", ns, check=False)
        return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []

    def __enter__(self) -> Topology:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # ------------------------------------------------------------ faults

    def cut_ring(self, node: str, ring: int) -> None:
        """Pull the node's cable out of the switch on one ring (switch side)."""
        _ip("-n", self.lan, "link", "set", self.port(node, ring), "down")

    def heal_ring(self, node: str, ring: int) -> None:
        _ip("-n", self.lan, "link", "set", self.port(node, ring), "up")

    def isolate(self, node: str) -> None:
        """Cut every ring of the node (in one ``ip -batch``: all at once)."""
        self._batch(self.lan, [f"link set {self.port(node, r)} down" for r in self._rings_of(node)])

    def restore(self, node: str) -> None:
        self._batch(self.lan, [f"link set {self.port(node, r)} up" for r in self._rings_of(node)])

    def _rings_of(self, node: str) -> range:
        return range(1) if node == CLIENT else range(self.rings)

    _LOSS_TABLE = "hasupd_loss"

    def loss(self, node: str, ring: int, percent: float) -> None:
        """Drop ``percent`` % of the frames to and from the node on a ring, at
        random (nftables numgen on its switch port; replaces an earlier rule)."""
        if not 0 <= percent <= 100:
            raise NetlabError(f"loss {percent}% is not between 0 and 100")
        port = self.port(node, ring)
        chain = self._loss_chain(node, ring)
        self.clear_loss(node, ring)
        n = int(round(percent))
        script = (
            f"add table bridge {self._LOSS_TABLE}\n"
            f"add chain bridge {self._LOSS_TABLE} {chain} {{ type filter hook forward priority 0; }}\n"
            f'add rule bridge {self._LOSS_TABLE} {chain} iifname "{port}" numgen random mod 100 < {n} counter drop\n'
            f'add rule bridge {self._LOSS_TABLE} {chain} oifname "{port}" numgen random mod 100 < {n} counter drop\n'
        )
        self._nft(script)

    def clear_loss(self, node: str, ring: int) -> None:
        self.port(node, ring)
        chain = self._loss_chain(node, ring)
        listing = _run(self.exec_argv(LAN, ["nft", "list", "chain", "bridge", self._LOSS_TABLE, chain]),
                       check=False)
        if listing.returncode == 0:
            self._nft(f"delete chain bridge {self._LOSS_TABLE} {chain}\n")

    def loss_dropped(self, node: str, ring: int) -> int:
        """Packets dropped so far by the loss rules of this port (0 if none)."""
        chain = self._loss_chain(node, ring)
        listing = _run(self.exec_argv(LAN, ["nft", "list", "chain", "bridge", self._LOSS_TABLE, chain]),
                       check=False)
        return sum(int(m) for m in re.findall(r"counter packets (\d+)", listing.stdout))

    @staticmethod
    def _loss_chain(node: str, ring: int) -> str:
        return f"loss_{node}_{ring}"  # never "fwd": that name confuses nft here

    def bmc_down(self, node: str) -> None:
        """Unplug the node's BMC from the management network."""
        self.bmc_ns(node)
        _ip("-n", self.lan, "link", "set", f"{node}-bmc", "down")

    def bmc_up(self, node: str) -> None:
        self.bmc_ns(node)
        _ip("-n", self.lan, "link", "set", f"{node}-bmc", "up")

    _PARTITION_TABLE = "hasupd_partition"

    def partition(self, a: str, b: str, keep_drbd: bool = False) -> None:
        """Cut every path between nodes A and B (the rings and, with mgmt, their
        management ports; switch side, both ways); both keep reaching the
        client and the BMCs.  keep_drbd:
        the DRBD link (TCP DRBD_PORT on ring 0, and ARP) stays up."""
        self.heal_partition()
        lines = [f"add table bridge {self._PARTITION_TABLE}",
                 f"add chain bridge {self._PARTITION_TABLE} cut {{ type filter hook forward priority -10; }}"]
        for ring in range(self.rings):
            for src, dst in ((a, b), (b, a)):
                match = f'iifname "{self.port(src, ring)}" oifname "{self.port(dst, ring)}"'
                if keep_drbd and ring == 0:
                    lines += [f"add rule bridge {self._PARTITION_TABLE} cut {match} ether type arp accept",
                              f"add rule bridge {self._PARTITION_TABLE} cut {match} tcp dport {DRBD_PORT} accept",
                              f"add rule bridge {self._PARTITION_TABLE} cut {match} tcp sport {DRBD_PORT} accept"]
                lines.append(f"add rule bridge {self._PARTITION_TABLE} cut {match} counter drop")
        if self.mgmt:  # node to node over the management network too; their BMCs stay reachable
            for src, dst in ((a, b), (b, a)):
                lines.append(f'add rule bridge {self._PARTITION_TABLE} cut iifname "{src}-ethm" '
                             f'oifname "{dst}-ethm" counter drop')
        self._nft("\n".join(lines) + "\n")

    def heal_partition(self) -> None:
        listing = _run(self.exec_argv(LAN, ["nft", "list", "table", "bridge", self._PARTITION_TABLE]),
                       check=False)
        if listing.returncode == 0:
            self._nft(f"delete table bridge {self._PARTITION_TABLE}\n")

    def _nft(self, script: str) -> None:
        _run(self.exec_argv(LAN, ["nft", "-f", "-"]), input=script)
