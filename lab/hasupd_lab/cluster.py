"""A two-node hasupd cluster on one machine.

Network namespaces make the nodes (hasupd_lab.netlab); each node also gets
a mount namespace of its own, held open by a small holder process, so the
node's /mnt/data mount is private to it and vanishes when the node
"crashes" (every process of the node killed).  DRBD is the simulator
(hasupd_lab.drbdsim); httpd is a real apache2 per node.

Everything the lab makes is recorded in RUN_ROOT/PREFIX/lab.json, so
`down` works from any process and twice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

from hasupd_lab import bmc as bmcmod
from hasupd_lab.netlab import Topology

RUN_ROOT = Path(os.environ.get("HASUPD_LAB_ROOT", "/run/hasupd-lab"))
REPO = Path(__file__).resolve().parents[2]
REFERENCE_CONFIG = REPO / "conf" / "hasupd.yaml"
NODES = ("n1", "n2")
VIP = "10.99.0.20"
CLIENT = "client"


class LabError(Exception):
    pass


def _run(argv, check=True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def start_journald() -> int | None:
    """Start a journald when none listens (no systemd here); its PID, or None
    when one already listens or there is none to start (the daemons then
    fall back to syslog/stderr)."""
    from hasupd.alerts import journal_listening
    jd = Path("/lib/systemd/systemd-journald")
    if journal_listening() or not jd.exists():
        return None
    p = subprocess.Popen([str(jd)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not journal_listening():
        time.sleep(0.05)
    return p.pid


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _kill_group(pid: int, sig=signal.SIGKILL) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class Lab:
    def __init__(self, prefix: str = "hl"):
        if not prefix.isalnum() or len(prefix) > 6:
            raise LabError("the lab prefix is 1 to 6 letters or digits")
        self.prefix = prefix
        self.dir = RUN_ROOT / prefix
        self.topo = Topology(prefix, nodes=NODES, rings=2, client=True, mgmt=True)
        self.meta_path = self.dir / "lab.json"
        self.meta: dict = {}
        if self.meta_path.exists():
            self.meta = json.loads(self.meta_path.read_text())

    # ------------------------------------------------------------ bookkeeping

    def reload(self) -> None:
        """Re-read lab.json: a BMC's power control boots and crashes nodes
        from its own process."""
        if self.meta_path.exists():
            self.meta = json.loads(self.meta_path.read_text())

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.meta, indent=1))
        os.replace(tmp, self.meta_path)

    def node_dir(self, node: str) -> Path:
        return self.dir / node

    def config_path(self, node: str) -> Path:
        return self.node_dir(node) / "hasupd.yaml"

    def socket_path(self, node: str) -> Path:
        return self.node_dir(node) / "run" / "hasupd.sock"

    def holder_pid(self, node: str) -> int:
        return self.meta["holders"][node]

    # ------------------------------------------------------------ node environment

    def _base_env(self, node: str) -> dict[str, str]:
        env = dict(os.environ)
        env["HASUPD_CONFIG"] = str(self.config_path(node))
        env["HASUPD_SOCKET"] = str(self.socket_path(node))
        env["HASUPD_NODE"] = node
        bindir = str(Path(sys.executable).parent)
        env["PATH"] = ":".join(p for p in (env.get("HASUPD_LAB_PATH_FIRST", ""), bindir, env.get("PATH", "")) if p)
        return env

    def enter_argv(self, node: str, argv: list[str]) -> list[str]:
        """argv run inside the node: its network and mount namespaces."""
        holder = self.holder_pid(node)
        return ["nsenter", f"--net=/run/netns/{self.topo.ns(node)}", f"--mount=/proc/{holder}/ns/mnt", "--", *argv]

    def exec(self, node: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.enter_argv(node, argv), env=self.node_env(node), **kw)

    # commands that talk to the node's daemon or its DRBD simulator: they wait
    # for ever on a frozen node (its processes are stopped)
    TALKS_TO_NODE = ("hasupctl", "drbdadm", "drbdsetup")

    def exec_bounded(self, node: str, argv: list[str], timeout: float) -> int:
        """`hasupd-lab exec`: the command's exit code; a frozen node and a
        timeout are said plainly (LabError) instead of hanging."""
        stopped = self.stopped_pids(node)
        if stopped and os.path.basename(argv[0]) in self.TALKS_TO_NODE:
            raise LabError(f"{node} is frozen ({len(stopped)} processes stopped): {argv[0]} would wait for "
                           f"it for ever; `hasupd-lab --prefix {self.prefix} fault {node} thaw` first")
        # its own session, so the timeout ends the whole command, not only nsenter
        p = subprocess.Popen(self.enter_argv(node, argv), env=self.node_env(node), start_new_session=True)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(p.pid)
            p.wait()
            frozen = f"; {node} is frozen ({len(stopped)} processes stopped)" if self.stopped_pids(node) else ""
            raise LabError(f"`{' '.join(argv)}` on {node} gave no answer within {timeout:g}s{frozen}") from None

    def stopped_pids(self, node: str) -> list[int]:
        """The node's processes that are stopped (SIGSTOP: a frozen node)."""
        out = []
        for pid in self._node_pids(node):
            try:
                if psutil.Process(pid).status() == psutil.STATUS_STOPPED:
                    out.append(pid)
            except psutil.Error:
                pass
        return out

    def spawn(self, node: str, argv: list[str], log: Path, env: dict | None = None) -> int:
        with open(log, "ab") as out:
            p = subprocess.Popen(self.enter_argv(node, argv), env={**self.node_env(node), **(env or {})}, stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return p.pid

    # ------------------------------------------------------------ configuration

    def node_config(self, node: str, overrides: dict | None = None) -> dict:
        """conf/hasupd.yaml with only the addresses and paths changed."""
        cfg = yaml.safe_load(REFERENCE_CONFIG.read_text())
        nd = self.node_dir(node)
        cfg["cluster"] = f"lab-{self.prefix}"
        cfg["nodes"] = [{"name": n, "addresses": [self.topo.address(n, 0), self.topo.address(n, 1)]}
                        for n in NODES]
        hb = cfg["heartbeat"]
        hb["rings"] = [
            {"bind_network": "10.99.0.0/24", "group": "226.94.1.1", "port": 5405, "ttl": 1},
            {"bind_network": "10.99.1.0/24", "group": "226.94.1.2", "port": 5407, "ttl": 1},
        ]
        hb["authkey"] = str(nd / "authkey")
        hb["initdead"] = "20s"
        drbd = cfg["drbd"]
        sim = self.meta.get("drbd", {}).get(node, {})
        drbd["status_path"] = sim.get("status_path", "/proc/drbd")
        drbd["peer_dead_wait"] = "2s"  # the simulator runs DRBD with ping-int 1s, ping-timeout 0.5s
        drbd["resources"] = [{"name": "r0", "device": sim.get("device", str(nd / "drbd1")), "minor": 1,
                              "disk": sim.get("disk", str(nd / "disk")), "port": 7789}]
        group = cfg["groups"][0]
        group["timeouts"] = {"start": "30s", "stop": "30s", "monitor": "10s"}
        group["monitor_interval"] = "5s"
        for r in group["resources"]:
            if r["type"] == "vip":
                r.update(ip=VIP, cidr_netmask=24, nic="eth0", arp_repeat_after="2s")
            elif r["type"] == "filesystem":
                r.update(device=sim.get("device", str(nd / "drbd1")), directory="/mnt/data")
            elif r["type"] == "httpd":
                r.pop("unit", None)
                r.update(configfile=str(nd / "httpd" / "httpd.conf"), binary="apache2", port=80,
                         pidfile=str(nd / "httpd" / "httpd.pid"))
        self._guard_config(cfg, node)
        cfg["state_dir"] = str(nd / "state")
        cfg["control"] = {"socket": str(self.socket_path(node)), "group": "root"}
        for key, value in (overrides or {}).items():
            _deep_set(cfg, key, value)
        return cfg

    # drbd: DRBD's fencing with hasupd's handler and no fence device (no
    # takeover of a silent peer); drbd+fence: the same with the BMCs as devices
    GUARDS = ("none", "ping", "drbd", "fence", "drbd+fence")

    def _guard_config(self, cfg: dict, node: str) -> None:
        """--guard: the split-brain guard, and for fence/drbd the nodes' BMCs
        as fence devices (fence_ipmilan over the management network)."""
        guard = self.meta.get("guard")
        if not guard:
            return  # the reference configuration's guard
        cfg["split_brain_guard"] = {"mode": guard.split("+")[0]}
        if guard == "ping":
            cfg["split_brain_guard"]["ping"] = {"targets": [self.topo.address(CLIENT, 0)]}
        if guard in ("fence", "drbd+fence"):
            cfg["fencing"] = {"owner_head_start": "2s", "devices": [
                {"name": f"bmc-{n}", "agent": "fence_ipmilan", "nodes": [n],
                 "options": {"ip": self.topo.bmc_address(n), "username": "admin", "lanplus": "1",
                             # cipher 3: ipmi_sim does not answer ipmitool's cipher-suite query
                             # (10 s lost per call); power_wait 0: its power control is synchronous
                             "cipher": "3", "power_wait": "0"},
                 "secrets": str(self.node_dir(node) / "fence" / "bmc.secret"),
                 "timeout": "10s", "retries": 1}
                for n in NODES]}

    def bmc_password(self) -> str:
        """The lab's BMC password (random, 0600 in the lab directory)."""
        path = self.dir / "bmc.password"
        if not path.exists():
            path.write_text(os.urandom(8).hex())  # IPMI passwords: at most 20 bytes
            path.chmod(0o600)
        return path.read_text().strip()

    def _write_fence_secrets(self, node: str) -> None:
        d = self.node_dir(node) / "fence"
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = d / "bmc.secret"
        path.write_text(f"password={self.bmc_password()}\n")
        path.chmod(0o600)

    def write_configs(self, overrides: dict | None = None, only: str | None = None) -> None:
        for node in NODES:
            if only and node != only:
                continue
            text = "# generated by hasupd-lab from conf/hasupd.yaml\n" + yaml.safe_dump(
                self.node_config(node, overrides), sort_keys=False)
            self.config_path(node).write_text(text)


    # ------------------------------------------------------------ up / down

    def up(self, overrides: dict | None = None, start: bool = True, settle: float = 90.0,
           guard: str | None = None, drbd_version: str = "8.4") -> None:
        """``drbd_version``: the simulator's dialect, "8.4" or "9" (drbdsim --drbd-version)."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, loop devices, mounts)")
        if self.topo.exists() or self.meta_path.exists():
            raise LabError(f"lab {self.prefix} is already up: `hasupd-lab down --prefix {self.prefix}` first")
        if guard is not None and guard not in self.GUARDS:
            raise LabError(f"guard {guard!r}: one of {', '.join(self.GUARDS)}")
        for tool in ("apache2", "nsenter", "unshare", "losetup", "mkfs.ext4", "nft", "ipmi_sim"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                raise LabError(f"{tool} is missing: run `make deps` (or apt-get install the lab packages)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.meta = {"prefix": self.prefix, "holders": {}, "daemons": {}, "journald": None,
                     "drbd": {}, "env": {}, "overrides": overrides or {}, "guard": guard, "bmcs": {},
                     "drbd_version": drbd_version}
        self.save()
        try:
            self.topo.up()
            self._journald()
            key = os.urandom(64)
            for node in NODES:
                nd = self.node_dir(node)
                for sub in ("state", "run", "httpd"):
                    (nd / sub).mkdir(parents=True, exist_ok=True)
                keyfile = nd / "authkey"
                keyfile.write_bytes(key)
                keyfile.chmod(0o400)
                self._start_holder(node)
                self._write_httpd(node)
                self._write_fence_secrets(node)
                bmcmod.start(self, node)
            self._start_drbd()
            self.write_configs(overrides)
            self._first_sync()
            if start:
                for node in NODES:
                    self.start_daemon(node)
                self.wait_served(settle)
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Remove everything the lab made; safe to run twice."""
        for node in NODES:
            self.kill_node_processes(node)
        self._stop_drbd()
        jd = self.meta.get("journald")
        others = [d for d in RUN_ROOT.glob("*/lab.json") if d.parent != self.dir] if RUN_ROOT.exists() else []
        if jd and not others:  # the journald we started, once no other lab may be writing to it
            _kill_group(jd, signal.SIGTERM)
        self.topo.down()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.meta = {}

    def bmc_pid(self, node: str) -> int | None:
        pid = self.meta.get("bmcs", {}).get(node)
        return pid if pid and _alive(pid) else None

    def kill_node_processes(self, node: str) -> None:
        """SIGKILL every process of the node: its daemon, apache, holder."""
        pids = set(self.topo.pids(node)) if self.topo.exists() else set()
        for key in ("daemons", "holders"):
            pid = self.meta.get(key, {}).get(node)
            if pid:
                pids.add(pid)
        for pid in pids:
            _kill_group(pid)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.02)

    # ------------------------------------------------------------ pieces

    def _journald(self) -> None:
        pid = start_journald()
        if pid is not None:
            self.meta["journald"] = pid
            self.save()

    def _start_holder(self, node: str) -> None:
        """A process that owns the node's mount namespace (private propagation)."""
        p = subprocess.Popen(["ip", "netns", "exec", self.topo.ns(node), "unshare", "--mount",
                              "--propagation", "private", "sleep", "infinity"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        self.meta["holders"][node] = p.pid
        self.save()
        bmcmod.record_power(self, node, p.pid)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if os.readlink(f"/proc/{p.pid}/exe").endswith("sleep") and \
                        os.readlink(f"/proc/{p.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"):
                    return
            except OSError:
                pass
            time.sleep(0.01)
        raise LabError(f"the mount namespace holder of {node} did not start")

    def _write_httpd(self, node: str) -> None:
        from hasupd_lab.apache import write_lab_config
        nd = self.node_dir(node)
        conf = Path(write_lab_config(nd / "httpd", "0.0.0.0:80", "/mnt/data/www", node))
        # which node answered: a header, since the page itself lives on the replicated disk
        text = conf.read_text()
        if "mod_headers" not in text:
            text += ("LoadModule headers_module /usr/lib/apache2/modules/mod_headers.so\n"
                     f"Header always set X-Served-By {node}\n")
        conf.write_text(text)

    def start_daemon(self, node: str, extra: list[str] | None = None, env: dict | None = None) -> int:
        log = self.node_dir(node) / "hasupd.log"
        argv = [sys.executable, "-m", "hasupd.daemon", "--config", str(self.config_path(node)), "--node", node]
        pid = self.spawn(node, argv + (extra or []), log, env)
        self.meta["daemons"][node] = pid
        self.save()
        return pid

    @staticmethod
    def alive(pid: int) -> bool:
        return _alive(pid)

    def daemon_pid(self, node: str) -> int | None:
        self.reload()
        pid = self.meta.get("daemons", {}).get(node)
        return pid if pid and _alive(pid) else None

    # ------------------------------------------------------------ the client side

    def curl(self, timeout: float = 1.0, path: str = "/") -> tuple[int, str, str]:
        """(HTTP status or 0, body, node that answered) from the client namespace."""
        proc = subprocess.run(
            self.topo.exec_argv(CLIENT, ["curl", "-s", "-m", str(timeout), "-D", "-", f"http://{VIP}{path}"]),
            capture_output=True, text=True)
        if proc.returncode != 0:
            return 0, proc.stderr.strip(), ""
        head, _, body = proc.stdout.replace("\r\n", "\n").partition("\n\n")
        status = int(head.split()[1]) if head.startswith("HTTP/") else 0
        served = ""
        for line in head.splitlines():
            if line.lower().startswith("x-served-by:"):
                served = line.split(":", 1)[1].strip()
        return status, body, served

    def wait_served(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _, served = self.curl(0.5)
            if status == 200:
                return served
            time.sleep(0.2)
        tails = []
        for node in NODES:
            log = self.node_dir(node) / "hasupd.log"
            if log.exists():
                tails.append(f"--- {node}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:]))
        raise LabError(f"the VIP {VIP} did not answer within {timeout:g}s\n" + "\n".join(tails))

    # ------------------------------------------------------------ faults

    FAULTS = ("kill-httpd", "kill-daemon", "freeze", "thaw", "crash", "boot", "cut-ring", "heal-ring",
              "loss", "detach-disk", "partition", "partition-rings", "heal", "bmc-down", "bmc-up",
              "wake-unplugged", "plug")

    def fault(self, node: str, kind: str, *args: str) -> str:
        """Inject a fault; returns one line saying what was done."""
        self.reload()
        if node not in NODES:
            raise LabError(f"no node {node!r} (nodes: {', '.join(NODES)})")
        if kind == "kill-httpd":
            pid = self.httpd_pid(node)
            if pid is None:
                raise LabError(f"httpd does not run on {node}")
            os.kill(pid, signal.SIGKILL)
            return f"killed httpd main process {pid} on {node} (SIGKILL; its workers are left behind)"
        if kind == "kill-daemon":
            pid = self.daemon_pid(node)
            if pid is None:
                raise LabError(f"hasupd does not run on {node}")
            os.kill(pid, signal.SIGKILL)
            return f"killed hasupd {pid} on {node} (SIGKILL)"
        if kind == "freeze":
            pids = self._node_pids(node)
            for pid in pids:  # stopped first: a frozen node does not see its cables go
                _signal(pid, signal.SIGSTOP)
            self.topo.isolate(node)
            return f"froze {len(pids)} processes of {node} and cut its cables"
        if kind == "thaw":
            self.topo.restore(node)  # cables first: the node wakes up to a working network
            for pid in self._node_pids(node):
                _signal(pid, signal.SIGCONT)
            return f"thawed {node} and plugged its cables back"
        if kind == "wake-unplugged":  # a frozen node wakes before its link is back (a slow switch port)
            for pid in self._node_pids(node):
                _signal(pid, signal.SIGCONT)
            return f"thawed {node}; its cables are still cut"
        if kind == "plug":
            self.topo.restore(node)
            return f"plugged {node}'s cables back"
        if kind == "crash":
            # all at once, as a power cut: the processes die before they can
            # notice the cables, and the addresses go with the "RAM"
            pids = self._node_pids(node)
            for pid in pids:
                _signal(pid, signal.SIGSTOP)
            self.topo.isolate(node)
            self.kill_node_processes(node)
            _run(["ip", "-n", self.topo.ns(node), "addr", "del", f"{VIP}/24", "dev", "eth0"], check=False)
            # the simulator ran inside the node: it died with it, and its
            # /proc/drbd goes with the kernel (a stale "Primary" there would
            # read as a live one until the node boots and its DRBD starts)
            status = self.meta.get("drbd", {}).get(node, {}).get("status_path")
            if status:
                Path(status).unlink(missing_ok=True)
            return f"crashed {node}: every process killed, its mounts and the VIP gone, cables cut"
        if kind == "boot":
            return self.boot(node)
        if kind in ("cut-ring", "heal-ring"):
            ring = int(args[0]) if args else 0
            (self.topo.cut_ring if kind == "cut-ring" else self.topo.heal_ring)(node, ring)
            return f"{'cut' if kind == 'cut-ring' else 'healed'} ring {ring} of {node}"
        if kind == "loss":
            if not args:
                raise LabError("loss PCT [RING]")
            pct = float(args[0])
            rings = [int(args[1])] if len(args) > 1 else list(range(self.topo.rings))
            for ring in rings:
                if pct <= 0:
                    self.topo.clear_loss(node, ring)
                else:
                    self.topo.loss(node, ring, pct)
            return f"{pct:g}% loss on ring(s) {', '.join(map(str, rings))} of {node}"
        if kind == "detach-disk":
            return self._detach_disk(node)
        if kind in ("partition", "partition-rings"):
            a, b = NODES
            self.topo.partition(a, b, keep_drbd=kind == "partition-rings")
            what = "both rings" if kind == "partition-rings" else "both rings and the DRBD link"
            return f"partitioned {a} from {b}: {what} cut (client and management network still reached)"
        if kind == "heal":
            self.topo.heal_partition()
            return "healed the partition between the nodes"
        if kind == "bmc-down":
            self.topo.bmc_down(node)
            return f"{node}'s BMC unplugged from the management network (fencing {node} fails)"
        if kind == "bmc-up":
            self.topo.bmc_up(node)
            return f"{node}'s BMC plugged back in"
        raise LabError(f"unknown fault {kind!r} (faults: {', '.join(self.FAULTS)})")

    def _node_pids(self, node: str) -> list[int]:
        pids = set(self.topo.pids(node))
        holder = self.meta.get("holders", {}).get(node)
        if holder:
            pids.add(holder)
        return sorted(pids)

    def httpd_pid(self, node: str) -> int | None:
        try:
            pid = int((self.node_dir(node) / "httpd" / "httpd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def boot(self, node: str) -> str:
        """Bring a crashed node back: holder, DRBD, daemon, cables."""
        if self.daemon_pid(node):
            raise LabError(f"{node} is running")
        self._start_holder(node)
        self._boot_drbd(node)
        self.topo.restore(node)
        self.start_daemon(node)
        return f"booted {node}"

    # ------------------------------------------------------------ DRBD (the simulator)

    def sim(self):
        from hasupd_lab.drbdsim.harness import SimCluster
        nodes = {n: (self.topo.ns(n), self.topo.address(n, 0)) for n in NODES}
        exec_prefix = {n: self.enter_argv(n, []) for n in NODES} if self.meta.get("holders") else None
        guard = {}
        if self.meta.get("guard") in ("drbd", "drbd+fence"):
            # DRBD's own fencing with hasupd as the fence-peer handler, as on a real cluster
            handler = str(Path(sys.executable).parent / "hasupd-drbd-handler")
            guard = dict(fencing="resource-and-stonith",
                         handlers={h: f"{handler} {h}" for h in ("fence-peer", "unfence-peer")},
                         daemon_env={n: {"HASUPD_SOCKET": str(self.socket_path(n))} for n in NODES})
        sc = SimCluster(self.dir / "drbd", nodes, prefix=self.prefix, ping_int=1.0, ping_timeout=0.5,
                        exec_prefix=exec_prefix, size_mib=64,
                        drbd_version=self.meta.get("drbd_version", "8.4"), **guard)
        sc.disks.update(self.meta.get("drbd_disks", {}))
        return sc

    def _start_drbd(self) -> None:
        sc = self.sim()
        sc.start()
        self.meta["drbd_disks"] = dict(sc.disks)
        self.meta["drbd_pids"] = {n: sc.pid(n) for n in NODES}
        self.meta["drbd"] = {n: {"status_path": sc.status_path(n), "device": sc.device(n), "disk": sc.disk(n)}
                             for n in NODES}
        self.meta["env"] = {n: {"PATH": str(sc.bin_dir(n)), "DRBDSIM_SOCKET": sc.socket(n)} for n in NODES}
        self.save()

    def node_env(self, node: str) -> dict[str, str]:
        env = self._base_env(node)
        extra = self.meta.get("env", {}).get(node, {})
        if "PATH" in extra:
            env["PATH"] = extra["PATH"] + ":" + env["PATH"]
        if "DRBDSIM_SOCKET" in extra:
            env["DRBDSIM_SOCKET"] = extra["DRBDSIM_SOCKET"]
        return env

    def _first_sync(self) -> None:
        """What an administrator does once: metadata, first sync, mkfs, content."""
        def run(node, *argv):
            proc = self.exec(node, list(argv), capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise LabError(f"{node}: {' '.join(argv)} exited {proc.returncode}: {proc.stdout}{proc.stderr}")
            return proc.stdout
        for node in NODES:
            run(node, "drbdadm", "create-md", "--force", "r0")
            run(node, "drbdadm", "up", "r0")
        deadline = time.monotonic() + 30
        while "Connected" not in run("n1", "drbdadm", "cstate", "r0"):
            if time.monotonic() > deadline:
                raise LabError("the simulated DRBD nodes did not connect within 30 s")
            time.sleep(0.1)
        run("n1", "drbdadm", "primary", "--force", "r0")
        dev = self.meta["drbd"]["n1"]["device"]
        run("n1", "mkfs.ext4", "-q", "-F", dev)
        run("n1", "sh", "-c", f"mkdir -p /mnt/data && mount {dev} /mnt/data && mkdir -p /mnt/data/www && "
                              "echo '<html><body><h1>hasupd lab: this page lives on the DRBD disk</h1>"
                              "</body></html>' > /mnt/data/www/index.html && chmod -R a+rX /mnt/data/www && "
                              "umount /mnt/data")
        deadline = time.monotonic() + 60
        while "UpToDate/UpToDate" not in run("n1", "drbdadm", "dstate", "r0"):
            if time.monotonic() > deadline:
                raise LabError("the first sync did not finish within 60 s")
            time.sleep(0.2)
        run("n1", "drbdadm", "secondary", "r0")

    def _stop_drbd(self) -> None:
        from hasupd_lab.drbdsim.harness import cleanup_loops
        for pid in self.meta.get("drbd_pids", {}).values():
            _kill_group(pid)
        cleanup_loops(self.dir / "drbd")

    def _boot_drbd(self, node: str) -> None:
        sc = self.sim()
        sc.start_node(node)
        self.meta["drbd_pids"][node] = sc.pid(node)
        self.save()

    def _detach_disk(self, node: str) -> str:
        disk = self.meta["drbd"][node]["disk"]
        proc = _run(["losetup", "-d", disk], check=False)
        if proc.returncode != 0:
            raise LabError(f"losetup -d {disk}: {proc.stderr.strip()}")
        return f"detached {node}'s backing disk {disk} (DRBD goes Diskless there)"

def _deep_set(cfg: dict, dotted: str, value) -> None:
    """overrides like {"heartbeat.interval": "50ms", "groups.0.migration_threshold": 3}."""
    parts = dotted.split(".")
    cur = cfg
    for p in parts[:-1]:
        cur = cur[int(p)] if isinstance(cur, list) else cur.setdefault(p, {})
    last = parts[-1]
    if isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = value
