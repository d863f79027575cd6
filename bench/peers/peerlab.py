"""The lab the peers run in: two nodes and a client in network namespaces.

    netns pk-lan      bridge br0 (10.77.0.0/24), the switch
    netns pk-n1       eth0 10.77.0.11   (node n1)
    netns pk-n2       eth0 10.77.0.12   (node n2)
    netns pk-client   eth0 10.77.0.100  (the HTTP poller)
    VIP 10.77.0.20/24, owned by whichever node the peer makes active

It is hasupd_lab.netlab's Topology (one ring) with 10.77 addresses, so the
peers and hasupd meet the same switch, the same faults (a cable is pulled on
the switch side) and the same client.  Each node is also a mount + UTS
namespace of its own, held open by a ``sleep`` holder: every daemon of the
node is started with ``nsenter`` into it, so it sees the node's private
/run, /dev/shm, /etc/corosync, /var/lib/pacemaker... (bind mounts of
BASE/NODE/...) and its own host name.  The node's files are always visible
inside the node at NODE_MOUNT, so a path in a cluster-wide setting (the
apache config of a Pacemaker resource) is the same on both nodes.

Every process of a node lives in its network namespace, so ``kill_node``
and ``down`` find them all there and kill them by PID.
"""

from __future__ import annotations

import bisect
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from hasupd_lab import bmc as labbmc
from hasupd_lab.apache import write_lab_config
from hasupd_lab.netlab import CLIENT, FIRST_BMC_HOST, FIRST_NODE_HOST, Topology

PREFIX = "pk"
NODES = ("n1", "n2")
VIP = "10.77.0.20"
BASE = Path("/var/lib/pk-bench")  # not /tmp: keepalived refuses scripts under world-writable dirs
NODE_MOUNT = BASE / "node"  # inside a node: that node's own BASE/NODE
POLL_INTERVAL = 0.010
MGMT_NET = "10.77.1"  # with BMCs: the management network (nodes .11+k, their BMCs .21+k)


CHASSIS_SH = """#!/bin/sh
# ipmi_sim chassis_control of a peer-lab node (written by bench/peers/peerlab.py)
on() {{
    pid=$(cat {d}/holder.pid 2>/dev/null)
    [ -n "$pid" ] && [ "$(tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null)" = "sleep infinity " ]
}}
case "$1 $2" in
"get power")
    if on; then echo power:1; else echo power:0; fi
    exit 0;;
"set power")
    [ "$3" = 0 ] || {{ echo "unsupported: power on (the bench boots nodes)"; exit 1; }}
    if on; then
        for pid in $(ip netns pids {ns}); do kill -9 "$pid" 2>/dev/null; done
        ip -n {ns} addr del {vip}/24 dev eth0 2>/dev/null
        date +%s.%N > {d}/off-at
    fi
    exit 0;;
esac
echo "unsupported: $*"
exit 1
"""


class Blocked(Exception):
    """The peer cannot run (or stopped working) here; the message says why."""


def other(node: str) -> str:
    return NODES[1] if node == NODES[0] else NODES[0]


def run(argv: list[str], timeout: float = 60, check: bool = True, **kw) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        raise Blocked(f"{' '.join(argv)}: no answer within {timeout:g}s") from e
    if check and proc.returncode != 0:
        raise Blocked(f"{' '.join(argv)}: exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-400:]}")
    return proc


def wait_until(what: str, predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Blocked(f"{what}: not reached within {timeout:g}s")
        time.sleep(interval)


class PeerTopology(Topology):
    """netlab's Topology on 10.77.0.0/24 (the range kept for the peers)."""

    def address(self, node: str, ring: int) -> str:
        return "10.77." + super().address(node, ring).split(".", 2)[2]

    def network(self, ring: int) -> str:
        return "10.77." + super().network(ring).split(".", 2)[2]

    # netlab's management network is 10.77.0.0/24, the peers' ring here: move it
    def mgmt_address(self, node: str) -> str:
        return f"{MGMT_NET}.{FIRST_NODE_HOST + self.nodes.index(node)}"

    def bmc_address(self, node: str) -> str:
        return f"{MGMT_NET}.{FIRST_BMC_HOST + self.nodes.index(node)}"


# --------------------------------------------------------------------- the client

POLLER = r"""
import asyncio, json, sys, time
interval, vip, timeout = float(sys.argv[1]), sys.argv[2], float(sys.argv[3])

async def probe():
    t0, status, served = time.time(), 0, ""
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(vip, 80), timeout)
        try:
            w.write(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
            data = await asyncio.wait_for(r.read(), timeout)
        finally:
            w.close()
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        for line in head[1:]:
            if line.lower().startswith("x-served-by:"):
                served = line.split(":", 1)[1].strip()
    except Exception:
        pass
    print(json.dumps([t0, time.time(), status, served]), flush=True)

async def main():
    pending, tick = set(), time.monotonic()
    while True:
        task = asyncio.create_task(probe())
        pending.add(task)
        task.add_done_callback(pending.discard)
        tick += interval
        await asyncio.sleep(max(0.0, tick - time.monotonic()))

asyncio.run(main())
"""


@dataclass(frozen=True)
class Probe:
    start: float
    end: float
    status: int
    served: str


class Poller:
    """A GET of http://VIP/ every 10 ms from the client namespace.

    Probes overlap (each has its own connection and a 0.5 s timeout), so a
    slow or hanging one never delays the next: the resolution stays 10 ms
    while the VIP is unreachable.  Which node answered comes from the
    X-Served-By header each node's apache sets."""

    def __init__(self, topo: Topology):
        self.probes: list[Probe] = []  # in the order the answers came, so by ``end``
        self.ends: list[float] = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            topo.exec_argv(CLIENT, [sys.executable, "-c", POLLER, str(POLL_INTERVAL), VIP, "0.5"]),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                p = Probe(*json.loads(line))
            except (ValueError, TypeError):
                continue
            with self.lock:
                self.probes.append(p)
                self.ends.append(p.end)

    def since(self, t: float) -> list[Probe]:
        """Probes answered (or timed out) at t or later."""
        with self.lock:
            return self.probes[bisect.bisect_left(self.ends, t):]

    def owner(self, window: float = 1.0) -> str | None:
        """The node that answered every probe ended in the last ``window`` s, if one did."""
        recent = self.since(time.time() - window)
        served = {p.served if p.status == 200 else "" for p in recent}
        if len(recent) >= window / POLL_INTERVAL / 4 and len(served) == 1 and "" not in served:
            return served.pop()
        return None

    def wait_steady(self, timeout: float = 120) -> str:
        return wait_until("the VIP answers steadily from one node", self.owner, timeout)

    def sent(self, t: float, until: float = float("inf")) -> list[Probe]:
        """Probes sent between t and until, in the order they were sent."""
        return sorted((p for p in self.since(t) if p.start <= until), key=lambda p: p.start)

    def first_ok_from(self, node: str, since: float, timeout: float) -> Probe:
        """The first probe sent after ``since`` that ``node`` answered 200."""
        def found():
            return next((p for p in self.sent(since) if p.status == 200 and p.served == node), None)
        return wait_until(f"an HTTP 200 from {node}", found, timeout, interval=0.05)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def outcome(poller: Poller, fault_at: float, old: str, new: str, timeout: float) -> dict:
    """One trial's figures, computed as bench/common.py's Poller does for
    hasupd: ``from_fault``, from the fault to the answer of the first probe
    sent after it that the new owner answered 200; ``gap``, the longest time
    without a 200 answer from the fault to then; ``failed_probes``, probes
    sent in that time not answered 200."""
    first = poller.first_ok_from(new, fault_at, timeout)
    window = poller.sent(fault_at, first.end)
    gap, last = 0.0, fault_at
    for p in window:
        if p.status == 200:
            gap, last = max(gap, p.end - last), p.end
    return {"from_fault": round(first.end - fault_at, 4), "gap": round(gap, 4), "old": old, "new": new,
            "failed_probes": sum(1 for p in window if p.status != 200)}


def summary(values: list[float]) -> dict:
    """min / median / p95 / max of a list of seconds (p95: nearest rank)."""
    if not values:
        return {"n": 0}
    s = sorted(values)
    p95 = s[min(len(s) - 1, max(0, int(round(0.95 * len(s) + 0.5)) - 1))]
    return {"n": len(s), "min": round(s[0], 4), "median": round(statistics.median(s), 4),
            "p95": round(p95, 4), "max": round(s[-1], 4)}


# --------------------------------------------------------------------- the lab


@dataclass
class NodeHandle:
    name: str
    holder: int | None = None
    daemons: dict[str, int] = field(default_factory=dict)


class PeerLab:
    """Namespaces, per-node mount/UTS namespaces, apache configs, faults."""

    def __init__(self, bmcs: bool = False):
        self.topo = PeerTopology(PREFIX, nodes=NODES, rings=1, client=True, mgmt=bmcs)
        self.bmcs = bmcs
        self.nodes = {n: NodeHandle(n) for n in NODES}
        self.poller: Poller | None = None
        self._procs: dict[int, subprocess.Popen] = {}

    def dir(self, node: str) -> Path:
        return BASE / node

    # ------------------------------------------------------------ up / down

    def up(self) -> None:
        self.down()  # what a killed earlier run may have left
        BASE.mkdir(parents=True, exist_ok=True)
        BASE.chmod(0o755)
        NODE_MOUNT.mkdir(exist_ok=True)
        for node in NODES:
            shutil.rmtree(self.dir(node), ignore_errors=True)
            self.dir(node).mkdir(mode=0o755)
            self._write_httpd(node)
        self.topo.up()
        if self.bmcs:
            for node in NODES:
                self.start_bmc(node)

    def down(self) -> None:
        if self.poller:
            self.poller.stop()
            self.poller = None
        for node in NODES:
            self.kill_node(node)
        self.topo.down()
        for node in NODES:  # the BMCs' state and their password go with the lab
            shutil.rmtree(self.bmc_dir(node), ignore_errors=True)
        (BASE / "bmc.password").unlink(missing_ok=True)

    def start_poller(self) -> Poller:
        self.poller = Poller(self.topo)
        return self.poller

    # ------------------------------------------------------------ nodes

    def boot(self, node: str, mounts: dict[str, str], extra_setup: str = "") -> None:
        """Start the node's holder (mount + UTS namespaces inside its netns)
        and make its private mounts: {path in the node: directory under
        BASE/NODE}; /run and /dev/shm are fresh tmpfs."""
        h = self.nodes[node]
        p = subprocess.Popen(["ip", "netns", "exec", self.topo.ns(node), "unshare", "--mount", "--uts",
                              "--propagation", "private", "sleep", "infinity"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        h.holder = p.pid
        if self.bmcs:  # the BMC's power reads on while this holder lives
            (self.bmc_dir(node) / "holder.pid").write_text(f"{p.pid}\n")
            (self.bmc_dir(node) / "off-at").unlink(missing_ok=True)

        def ready():
            try:
                return (os.readlink(f"/proc/{p.pid}/exe").endswith("sleep")
                        and os.readlink(f"/proc/{p.pid}/ns/uts") != os.readlink("/proc/self/ns/uts"))
            except OSError:
                return False
        wait_until(f"the namespace holder of {node}", ready, 10, 0.01)
        lines = [f"hostname {node}", f"mount --bind {self.dir(node)} {NODE_MOUNT}",
                 "mount -t tmpfs -o mode=1777 tmpfs /dev/shm", "mount -t tmpfs -o mode=755 tmpfs /run",
                 "mkdir -p /run/lock /run/resource-agents"]
        for inside, sub in mounts.items():
            src = self.dir(node) / sub
            src.mkdir(parents=True, exist_ok=True)
            lines.append(f"mount --bind {src} {inside}")
        self.sh(node, "\n".join(lines + [extra_setup]))

    def enter(self, node: str, argv: list[str]) -> list[str]:
        holder = self.nodes[node].holder
        if holder is None:
            raise Blocked(f"node {node} is not booted")
        return ["nsenter", "-t", str(holder), "-m", "-u", "-n", "--", *argv]

    def sh(self, node: str, script: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return run(self.enter(node, ["sh", "-ec", script]), timeout=timeout, check=check)

    def spawn(self, node: str, name: str, argv: list[str]) -> int:
        """Start a daemon in the node (foreground mode), its output in BASE/NODE/NAME.out."""
        with open(self.dir(node) / f"{name}.out", "ab") as out:
            p = subprocess.Popen(self.enter(node, argv), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        self.nodes[node].daemons[name] = p.pid
        self._procs[p.pid] = p
        return p.pid

    def exited(self, pid: int) -> bool:
        """Has a daemon started by ``spawn`` ended?"""
        proc = self._procs.get(pid)
        return proc is not None and proc.poll() is not None

    def pids(self, node: str) -> list[int]:
        pids = set(self.topo.pids(node)) if self.topo.exists() else set()
        h = self.nodes[node]
        pids.update(p for p in [h.holder, *h.daemons.values()] if p)
        return sorted(pids)

    def kill_node(self, node: str) -> None:
        """Power the node off: SIGKILL every process of it, drop the VIP it may hold."""
        pids = self.pids(node)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:  # reap our own children
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(psutil.pid_exists(p) and _not_zombie(p) for p in pids):
            time.sleep(0.02)
        h = self.nodes[node]
        h.holder, h.daemons = None, {}
        if self.topo.exists():
            run(["ip", "-n", self.topo.ns(node), "addr", "del", f"{VIP}/24", "dev", "eth0"], check=False)

    # ------------------------------------------------------------ faults

    def httpd_pid(self, node: str) -> int | None:
        try:
            pid = int((self.dir(node) / "httpd" / "httpd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if psutil.pid_exists(pid) and _not_zombie(pid) else None

    def kill_httpd(self, node: str) -> float:
        """SIGKILL apache's main process (as hasupd-lab's kill-httpd fault: its
        workers are left behind, still holding port 80); returns the time."""
        pid = self.httpd_pid(node)
        if pid is None:
            raise Blocked(f"apache does not run on {node}")
        at = time.time()
        os.kill(pid, signal.SIGKILL)
        return at

    def kill_stray_httpd(self, node: str) -> None:
        """Kill apache processes of the node (the workers a parent kill left),
        and wait until they are gone (their port 80 with them)."""
        def strays():
            found = []
            for pid in self.topo.pids(node):
                try:
                    p = psutil.Process(pid)
                    if p.name() == "apache2" and p.status() != psutil.STATUS_ZOMBIE:
                        found.append(pid)
                except psutil.Error:
                    pass
            return found
        for pid in strays():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(f"apache's processes on {node} gone", lambda: not strays(), 10, 0.05)
        (self.dir(node) / "httpd" / "httpd.pid").unlink(missing_ok=True)

    def freeze(self, node: str) -> float:
        """Node death as hasupd-lab's freeze fault: cables cut (switch side),
        every process of the node stopped; returns the time."""
        at = time.time()
        self.topo.isolate(node)
        for pid in self.pids(node):
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        return at

    def revive(self, node: str) -> None:
        """After a freeze: power the node off, plug its cable back (boot it yourself)."""
        self.kill_node(node)
        self.topo.restore(node)

    def partition(self) -> float:
        """Cut the nodes from each other (switch side), both still reaching the
        client and the BMCs; returns the time."""
        at = time.time()
        self.topo.partition(*NODES)
        return at

    # ------------------------------------------------------------ BMCs

    def bmc_dir(self, node: str) -> Path:
        return BASE / f"bmc-{node}"

    def bmc_password(self) -> str:
        path = BASE / "bmc.password"
        if not path.exists():
            path.write_text(os.urandom(8).hex())  # IPMI passwords: at most 20 bytes
            path.chmod(0o600)
        return path.read_text().strip()

    def start_bmc(self, node: str) -> None:
        """The node's BMC: ipmi_sim on the management network, as in hasupd's
        lab (hasupd_lab.bmc's LAN config), with a chassis control of this lab:
        power reads on while the node's holder lives, power off is a power cut
        (every process of the node killed, the VIP gone with the "RAM");
        power on is not offered (stonith-action=off; the bench boots nodes)."""
        d = self.bmc_dir(node)
        shutil.rmtree(d, ignore_errors=True)
        (d / "state").mkdir(mode=0o700, parents=True)
        chassis = d / "chassis"
        chassis.write_text(CHASSIS_SH.format(d=d, ns=self.topo.ns(node), vip=VIP))
        chassis.chmod(0o700)
        (d / "lan.conf").write_text(labbmc.lan_conf(f"{PREFIX}{node}", self.topo.bmc_address(node),
                                                    self.bmc_password(), str(chassis)))
        (d / "lan.conf").chmod(0o600)
        (d / "sim.emu").write_text(labbmc.EMU)
        with open(d / "ipmi_sim.log", "ab") as log:
            p = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.topo.bmc_ns(node)}", "--", "ipmi_sim",
                                  "-n", "-c", str(d / "lan.conf"), "-f", str(d / "sim.emu"), "-s", str(d / "state")],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=str(d),
                                 start_new_session=True)
        self._procs[p.pid] = p

        def listening():
            if p.poll() is not None:
                raise Blocked(f"ipmi_sim of {node} exited {p.returncode}: "
                              f"{(d / 'ipmi_sim.log').read_text(errors='replace')[-300:]}")
            return run(["ip", "netns", "exec", self.topo.bmc_ns(node), "ss", "-Hlun",
                        f"sport = :{labbmc.IPMI_PORT}"], check=False).stdout.strip()
        wait_until(f"the BMC of {node} listening", listening, 10, 0.05)

    def powered_off_at(self, node: str) -> float | None:
        """When the node's BMC powered it off (a fence), if it did since its boot."""
        try:
            return float((self.bmc_dir(node) / "off-at").read_text())
        except (OSError, ValueError):
            return None

    def power_is_on(self, node: str) -> bool:
        h = self.nodes[node].holder
        return bool(h) and psutil.pid_exists(h) and _not_zombie(h)

    def vip_holders(self) -> list[str]:
        """The nodes that have the VIP on an interface now."""
        return [n for n in NODES
                if f" {VIP}/" in run(["ip", "-n", self.topo.ns(n), "-o", "-4", "addr", "show"], check=False).stdout]

    # ------------------------------------------------------------ measurements

    def footprint(self, node: str, exclude: tuple[str, ...], window: float) -> dict:
        """RSS / PSS of the node's cluster processes (not ``exclude``), and
        their CPU share of one core over ``window`` seconds."""
        procs = []
        for pid in self.pids(node):
            try:
                p = psutil.Process(pid)
                if p.name() not in exclude:
                    procs.append(p)
            except psutil.Error:
                pass
        cpu0 = {p.pid: _cpu(p) for p in procs}
        t0 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - t0
        per_name: dict[str, float] = {}
        rss = pss = cpu = 0.0
        for p in procs:
            try:
                mem = p.memory_full_info()
                used = _cpu(p) - cpu0[p.pid]
            except psutil.Error:
                continue
            rss += mem.rss
            pss += getattr(mem, "pss", 0)
            cpu += used
            per_name[p.name()] = round(per_name.get(p.name(), 0) + mem.rss / 2**20, 1)
        return {"rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1),
                "cpu_pct": round(100 * cpu / elapsed, 3), "window_s": window, "processes_rss_mb": per_name}

    # ------------------------------------------------------------ apache

    def _write_httpd(self, node: str) -> None:
        """hasupd's lab apache config, with NODE_MOUNT paths and an X-Served-By header."""
        real = self.dir(node)
        conf = Path(write_lab_config(real / "httpd", "80", real / "www", node))
        text = conf.read_text().replace(str(real), str(NODE_MOUNT))
        text += ("LoadModule headers_module /usr/lib/apache2/modules/mod_headers.so\n"
                 f"Header always set X-Served-By {node}\n")
        conf.write_text(text)
        for d in (real / "www", real / "httpd"):
            d.chmod(0o755)

    def start_httpd(self, node: str) -> None:
        (self.dir(node) / "httpd" / "httpd.pid").unlink(missing_ok=True)
        argv = self.enter(node, ["apache2", "-f", str(NODE_MOUNT / "httpd" / "httpd.conf"), "-k", "start"])
        deadline = time.monotonic() + 10
        # port 80 was seen still taken once, just after the old workers were gone: try again a while
        while (proc := run(argv, check=False)).returncode != 0:
            if "Address already in use" not in proc.stderr or time.monotonic() > deadline:
                raise Blocked(f"apache does not start on {node}: {proc.stderr.strip()[-300:]}")
            time.sleep(0.5)
        wait_until(f"apache on {node}", lambda: self.httpd_pid(node), 15, 0.05)


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def random_phase(max_seconds: float) -> None:
    """Wait a random time, so a fault lands at a random phase of a periodic check."""
    time.sleep(random.uniform(0, max_seconds))
