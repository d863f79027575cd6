"""Shared pieces of the membership tests: labs with the "hb" prefix, configs,
and heartbeat endpoints run as subprocesses inside node namespaces."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hasupd.config import Heartbeat, Ring, default_of
from hasupd.membership import wire
from hasupd_lab.netlab import Topology

REPO = Path(__file__).resolve().parents[2]
TOOLS = Path(__file__).resolve().parent / "tools.py"
DEFAULT_PROFILE = (default_of(Heartbeat, "interval"), default_of(Heartbeat, "deadtime"))
PROFILES = {"default": DEFAULT_PROFILE, "tuned": (0.05, 0.3)}  # interval, deadtime
_counter = itertools.count(1)


def new_topology() -> Topology:
    """A lab with a prefix free on this machine: hb + pid + counter (<= 6 chars)."""
    for _ in range(100):
        n = next(_counter)
        topo = Topology(f"hb{os.getpid() % 100:02d}{n % 100:02d}")
        if not topo.exists():
            topo.up()
            return topo
    raise RuntimeError("no free lab prefix")


def write_config(path: Path, topo: Topology, transport: str = "multicast", interval: float = DEFAULT_PROFILE[0],
                 deadtime: float = DEFAULT_PROFILE[1], cluster: str = "hbtest",
                 key: str = default_of(Heartbeat, "authkey"),
                 extra: str = "") -> Path:
    rings = []
    for r in range(topo.rings):
        line = f"    - {{bind_network: {topo.network(r)}, port: {default_of(Ring, 'port')}"
        if transport == "multicast":
            line += f", group: 239.192.0.{r + 1}"
        rings.append(line + "}")
    nodes = "\n".join(
        f"  - {{name: {n}, addresses: [{', '.join(topo.address(n, r) for r in range(topo.rings))}]}}"
        for n in topo.nodes)
    path.write_text(
        f"cluster: {cluster}\nnodes:\n{nodes}\nheartbeat:\n  transport: {transport}\n  rings:\n"
        + "\n".join(rings)
        + f"\n  interval: {interval}\n  deadtime: {deadtime}\n  authkey: {key}\n"
        + "groups: []\n" + extra)
    return path


class Endpoint:
    """`python -m hasupd.membership.heartbeat` in a node's namespace; its JSON
    lines are collected by a thread."""

    def __init__(self, topo: Topology, node: str, config: Path, key: Path, log_dir: Path):
        self.node = node
        self.lines: list[dict] = []
        self.cond = threading.Condition()
        self.stderr = open(log_dir / f"{topo.prefix}-{node}-{time.monotonic_ns()}.stderr", "w")
        self.proc = subprocess.Popen(
            topo.exec_argv(node, [sys.executable, "-m", "hasupd.membership.heartbeat",
                                  "--config", str(config), "--node", node, "--key", str(key)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
            cwd=REPO, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.ready = self.wait_for("ready", timeout=20)
        assert self.ready is not None, f"{node}: heartbeat did not start: {self.stderr_text()}"
        self.incarnation = self.ready["incarnation"]

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                d = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                self.lines.append(d)
                self.cond.notify_all()

    def stderr_text(self) -> str:
        self.stderr.flush()
        return Path(self.stderr.name).read_text()[-2000:]

    def events(self, name: str, since: int = 0) -> list[dict]:
        with self.cond:
            return [d for d in self.lines[since:] if d["event"] == name]

    def mark(self) -> int:
        with self.cond:
            return len(self.lines)

    def wait_for(self, name: str, timeout: float, since: int = 0, pred=lambda d: True) -> dict | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for d in self.lines[since:]:
                    if d["event"] == name and pred(d):
                        return d
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self.cond.wait(min(left, 0.2))

    def status(self) -> dict:
        since = self.mark()
        self.proc.stdin.write("status\n")
        self.proc.stdin.flush()
        d = self.wait_for("status", 10, since)
        assert d is not None, f"{self.node}: no status: {self.stderr_text()}"
        return d

    def set_payload(self, payload: dict) -> None:
        self.proc.stdin.write("payload " + json.dumps(payload) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> dict | None:
        """SIGTERM; returns the final status line."""
        since = self.mark()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.reader.join(5)
        self.stderr.close()
        return self.wait_for("status", 0, since)

    def kill(self) -> None:
        """SIGKILL (a crash): no goodbye, sockets vanish."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


class Pair:
    """A lab, a config, a key and heartbeat endpoints n1 (observer) and n2."""

    def __init__(self, tmp: Path, transport: str = "multicast", profile: str = "default"):
        self.tmp = tmp
        self.transport = transport
        self.interval, self.deadtime = PROFILES[profile]
        self.endpoints: list[Endpoint] = []
        self.topo = new_topology()
        try:
            self.key = tmp / f"authkey-{self.topo.prefix}"
            wire.write_key(str(self.key))
            self.config = write_config(tmp / f"hb-{self.topo.prefix}.yaml", self.topo, transport,
                                       self.interval, self.deadtime, key=str(self.key))
        except BaseException:
            self.topo.down()
            raise

    def dest(self, node: str, ring: int = 0) -> str:
        """Where a packet to ``node`` on a ring goes: the group or its address."""
        return f"239.192.0.{ring + 1}" if self.transport == "multicast" else self.topo.address(node, ring)

    def start(self, node: str) -> Endpoint:
        ep = Endpoint(self.topo, node, self.config, self.key, self.tmp)
        self.endpoints.append(ep)
        return ep

    def start_both(self) -> tuple[Endpoint, Endpoint]:
        a = self.start("n1")
        b = self.start("n2")
        assert a.wait_for("PeerAlive", 10) is not None, a.stderr_text()
        assert b.wait_for("PeerAlive", 10) is not None, b.stderr_text()
        return a, b

    def tool(self, node: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run tests/membership/tools.py in a namespace (client, lan, a node)."""
        proc = subprocess.run(self.topo.exec_argv(node, [sys.executable, str(TOOLS), *args]),
                              capture_output=True, text=True, timeout=timeout, cwd=REPO)
        assert proc.returncode == 0, proc.stderr
        return proc

    def close(self) -> None:
        for ep in self.endpoints:
            if ep.proc.poll() is None:
                ep.kill()
            if not ep.stderr.closed:
                ep.stderr.close()
        self.topo.down()


@pytest.fixture
def make_pair(tmp_path):
    pairs: list[Pair] = []

    def make(transport: str = "multicast", profile: str = "default") -> Pair:
        p = Pair(tmp_path, transport, profile)
        pairs.append(p)
        return p

    try:
        yield make
    finally:
        for p in pairs:
            p.close()
