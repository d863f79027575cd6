"""Start and clean up two simulated DRBD nodes, for tests and the lab.

    with SimCluster(workdir, {"n1": ("ds-n1", "10.77.0.1"), "n2": ("ds-n2", "10.77.0.2")},
                    prefix="ds", fencing="resource-only", ping_int=1.0) as sc:
        sc.run("n1", "drbdadm", "create-md", "--force", "r0")
        sc.env("n1")            # PATH (sim bin first), DRBDSIM_SOCKET
        sc.device("n1")         # where the Primary's block device node appears

Namespaces are the caller's (``netns`` names, e.g. made by hasupd_lab.netlab);
``TwoNodeNet`` makes a minimal pair joined by a bridge for standalone tests.
Every process started here is stopped by PID; loop devices backed by files
under ``workdir`` are detached; nothing else is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CLIENT = Path(__file__).resolve().parent / "client.py"
SHIMS = ("drbdadm", "drbdsetup", "modprobe", "rmmod", "drbdsim")


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


class SimCluster:
    def __init__(self, workdir: str | os.PathLike, nodes: dict[str, tuple[str, str]], *,
                 prefix: str = "ds", resource: str = "r0", minor: int = 1, port: int = 7789,
                 size_mib: int = 64, fencing: str = "dont-care", ping_int: float = 10.0,
                 ping_timeout: float = 0.5, handlers: dict | None = None, module: str = "available",
                 resync_rate_kib: int = 65536, resync_min_s: float = 1.0,
                 exec_prefix: dict[str, list[str]] | None = None, disk_mib: int = 1,
                 daemon_env: dict[str, dict[str, str]] | None = None, drbd_version: str = "8.4"):
        """``nodes``: name -> (network namespace, replication address).
        ``exec_prefix``: name -> argv prefix that enters the node (default:
        ``nsenter --net=/run/netns/NS``).  ``daemon_env``: name -> extra
        environment of the node's simulator, which its handlers inherit
        (e.g. where hasupd's control socket is for ``hasupd-drbd-handler``)."""
        self.workdir = Path(workdir).resolve()
        self.nodes = dict(nodes)
        self.prefix, self.resource = prefix, resource
        self.module = module
        self.disk_mib = disk_mib
        self.exec_prefix = exec_prefix or {n: ["nsenter", f"--net=/run/netns/{ns}", "--"]
                                           for n, (ns, _a) in self.nodes.items()}
        self.procs: dict[str, subprocess.Popen] = {}
        self.daemon_env = daemon_env or {}
        self.drbd_version = drbd_version  # "8.4" | "9": the dialect both nodes speak
        self.disks: dict[str, str] = {}
        self.res_opts = dict(name=resource, minor=minor, port=port, size_mib=size_mib, fencing=fencing,
                             ping_int=ping_int, ping_timeout=ping_timeout, handlers=handlers or {})
        self.sim_opts = dict(resync_rate_kib=resync_rate_kib, resync_min_s=resync_min_s)
        self.config_path = self.workdir / "drbdsim.json"

    # ------------------------------------------------------------ paths

    def node_dir(self, node: str) -> Path:
        return self.workdir / node

    def bin_dir(self, node: str) -> Path:
        return self.node_dir(node) / "bin"

    def socket(self, node: str) -> str:
        return str(self.node_dir(node) / "sim.sock")

    def status_path(self, node: str) -> str:
        return str(self.node_dir(node) / "proc-drbd")

    def device(self, node: str) -> str:
        return str(self.node_dir(node) / "dev" / f"drbd{self.res_opts['minor']}")

    def disk(self, node: str) -> str:
        """The node's backing disk (a loop device): ``losetup -d`` it to fail the disk."""
        return self.disks[node]

    def kern_log(self, node: str) -> str:
        return str(self.node_dir(node) / "kern.log")

    def env(self, node: str, base: dict | None = None) -> dict:
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir(node)}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        env["DRBDSIM_SOCKET"] = self.socket(node)
        return env

    # ------------------------------------------------------------ set-up

    def write_config(self) -> None:
        hosts = {n: {"address": addr, "device": self.device(n), "disk": self.disks[n]}
                 for n, (_ns, addr) in self.nodes.items()}
        cfg = {"image_dir": str(self.workdir / "images"), **self.sim_opts,
               "nodes": {n: {"state_dir": str(self.node_dir(n)), "socket": self.socket(n),
                             "status_path": self.status_path(n)} for n in self.nodes},
               "resources": [dict(self.res_opts, hosts=hosts)]}
        self.config_path.write_text(json.dumps(cfg, indent=1))

    def reconfigure(self, **res_opts) -> None:
        """Change resource options (fencing, handlers, ping_int, ...) in the config;
        a node applies them at its next ``drbdadm adjust``."""
        self.res_opts.update(res_opts)
        self.write_config()

    def write_shims(self, node: str) -> None:
        b = self.bin_dir(node)
        b.mkdir(parents=True, exist_ok=True)
        for prog in SHIMS:
            p = b / prog
            p.write_text(f"#!/bin/sh\nexec {sys.executable} -S {CLIENT} --socket {self.socket(node)} "
                         f"{prog} \"$@\"\n")
            p.chmod(0o755)

    def start(self) -> SimCluster:
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            for n in self.nodes:
                self.node_dir(n).mkdir(parents=True, exist_ok=True)
                img = self.node_dir(n) / "backing-disk.img"
                with open(img, "wb") as f:
                    f.truncate(self.disk_mib << 20)
                self.disks[n] = _sh("losetup", "--find", "--show", str(img)).stdout.strip()
                self.write_shims(n)
            self.write_config()
            for n in self.nodes:
                self.start_node(n)
        except BaseException:
            self.close()
            raise
        return self

    def start_node(self, node: str, module: str | None = None) -> None:
        """(Re)start the node's simulator: a fresh boot (module state reset; metadata kept)."""
        old = self.procs.get(node)
        if old is not None and old.poll() is None:
            raise RuntimeError(f"simulator of {node} is already running (pid {old.pid})")
        sock = self.socket(node)
        if len(sock.encode()) > 107:
            raise ValueError(f"socket path {sock} is longer than a UNIX socket allows (107 bytes): "
                             "use a shorter workdir")
        if os.path.exists(sock):
            os.unlink(sock)
        log = open(self.node_dir(node) / "daemon.log", "ab")
        env = dict(os.environ, **self.daemon_env.get(node, {}))
        env.update(PYTHONPATH=str(REPO), PATH=self.env(node, env)["PATH"])
        argv = [*self.exec_prefix[node], sys.executable, "-m", "hasupd_lab.drbdsim.daemon",
                "--node", node, "--config", str(self.config_path), "--module", module or self.module,
                "--drbd-version", self.drbd_version]
        self.procs[node] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            env=env, cwd=str(REPO), start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while not os.path.exists(sock):
            if self.procs[node].poll() is not None:
                raise RuntimeError(f"simulator of {node} exited: "
                                   f"{(self.node_dir(node) / 'daemon.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"simulator of {node} did not come up")
            time.sleep(0.05)

    def stop_node(self, node: str, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        p = self.procs.get(node)
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)

    def pid(self, node: str) -> int:
        return self.procs[node].pid

    # ------------------------------------------------------------ use

    def run(self, node: str, *argv: str, timeout: float = 60, input: str | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
        """Run a command inside the node with the simulator's PATH."""
        return subprocess.run([*self.exec_prefix[node], *argv], env=self.env(node), capture_output=True,
                              text=True, timeout=timeout, input=input, check=check)

    def state(self, node: str) -> dict:
        r = self.run(node, "drbdsim", "state")
        return json.loads(r.stdout)["resources"][self.resource]

    def wait_for(self, node: str, pred, timeout: float = 30.0, interval: float = 0.1) -> dict:
        deadline = time.monotonic() + timeout
        st = self.state(node)
        while not pred(st):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node}: condition not met within {timeout}s; state {st}")
            time.sleep(interval)
            st = self.state(node)
        return st

    # ------------------------------------------------------------ tear-down

    def close(self) -> None:
        for n in list(self.procs):
            try:
                self.stop_node(n)
            except Exception:
                pass
        cleanup_loops(self.workdir)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SimCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def cleanup_loops(under: Path) -> None:
    """Unmount what is mounted from ``under`` (this mount namespace) and detach its loop devices."""
    under = Path(under).resolve()
    loops = loops_backed_by_files(under)
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            src = parts[parts.index("-") + 2]
            if src in loops or parts[4].startswith(str(under) + "/") or src.startswith(str(under) + "/"):
                mounts.append(parts[4])
    for m in reversed(mounts):
        _sh("umount", "-l", m, check=False)
    for dev in loops:
        _sh("losetup", "-d", dev, check=False)


def loops_backed_by_files(under: Path) -> list[str]:
    """Loop devices backed by a file below ``under``: its backing path is below ``under``,
    or, where ``under`` lies on a tmpfs of its own (/run on a systemd machine) and the
    loop was attached in a node's mount namespace, the kernel names the backing file
    from that tmpfs's root (/hasupd-lab/...), which no path below ``under`` matches:
    then by the file's device and inode, or, for a file already deleted (an image a
    rebooted simulator replaced), by the same filesystem and the same path below one
    of ``under``'s ancestors."""
    under = Path(under).resolve()
    try:
        under_dev = under.stat().st_dev
    except OSError:
        under_dev = None  # gone already: only the path can still tell
    files = set()
    for path in under.rglob("*"):
        try:
            st = path.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            files.add((st.st_dev, st.st_ino))
    own = str(under) + "/"
    # "/hasupd-lab/P/drbd/", "/P/drbd/" for /run/hasupd-lab/P/drbd: never the last part alone
    tails = ["/" + "/".join(under.parts[i:]) + "/" for i in range(2, len(under.parts) - 1)]
    out = _sh("losetup", "--list", "--json", "--output", "NAME,BACK-MAJ:MIN,BACK-INO,BACK-FILE", check=False).stdout
    try:
        devices = json.loads(out).get("loopdevices", []) if out.strip() else []
    except ValueError:
        return []
    found = []
    for d in devices:
        backing = str(d.get("back-file") or "").strip()
        try:
            major, minor = (int(x) for x in str(d.get("back-maj:min") or "").strip().split(":"))
            dev = os.makedev(major, minor)
        except ValueError:
            dev = None
        if backing.startswith(own) or (dev, int(d.get("back-ino") or 0)) in files or (
                dev is not None and dev == under_dev and any(backing.startswith(t) for t in tails)):
            found.append(d["name"])
    return found


class TwoNodeNet:
    """Two network namespaces joined by a bridge in a third: PREFIX-n1, PREFIX-n2, PREFIX-lan."""

    def __init__(self, prefix: str, subnet: str = "10.77.0"):
        self.prefix = prefix
        self.lan = f"{prefix}-lan"
        self.ns = {"n1": f"{prefix}-n1", "n2": f"{prefix}-n2"}
        self.addr = {"n1": f"{subnet}.1", "n2": f"{subnet}.2"}
        self.created: list[str] = []

    def up(self) -> TwoNodeNet:
        try:
            self._add(self.lan)
            _sh("ip", "-n", self.lan, "link", "set", "lo", "up")
            _sh("ip", "-n", self.lan, "link", "add", "br0", "type", "bridge")
            _sh("ip", "-n", self.lan, "link", "set", "br0", "up")
            for n, ns in self.ns.items():
                self._add(ns)
                _sh("ip", "-n", ns, "link", "set", "lo", "up")
                _sh("ip", "-n", self.lan, "link", "add", self.port(n), "type", "veth", "peer", "name",
                    "eth0", "netns", ns)
                _sh("ip", "-n", self.lan, "link", "set", self.port(n), "master", "br0", "up")
                _sh("ip", "-n", ns, "addr", "add", f"{self.addr[n]}/24", "dev", "eth0")
                _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        except BaseException:
            self.down()
            raise
        return self

    def port(self, node: str) -> str:
        return f"{node}-eth0"

    def nodes(self) -> dict[str, tuple[str, str]]:
        return {n: (self.ns[n], self.addr[n]) for n in self.ns}

    def cut(self, node: str) -> None:
        _sh("ip", "-n", self.lan, "link", "set", self.port(node), "down")

    def mend(self, node: str) -> None:
        _sh("ip", "-n", self.lan, "link", "set", self.port(node), "up")

    def pids(self, node: str) -> list[int]:
        r = _sh("ip", "netns", "pids", self.ns[node], check=False)
        return [int(x) for x in r.stdout.split()]

    def _add(self, ns: str) -> None:
        r = _sh("ip", "netns", "add", ns, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"ip netns add {ns}: {r.stderr.strip()} (another run with prefix "
                               f"{self.prefix!r}?)")
        self.created.append(ns)

    def down(self) -> None:
        """Delete only the namespaces this object created (never someone else's)."""
        for ns in reversed(self.created):
            for pid in _sh("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _sh("ip", "netns", "del", ns, check=False)
        self.created = []

    def __enter__(self) -> TwoNodeNet:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()
