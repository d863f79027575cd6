"""Split-brain guard inputs: the ping guard against real addresses in a lab
(ICMP through a ping socket and through a raw socket, TCP connect), and the
fence runner with real commands."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from hasupd.config import PingGuard as PingGuardConfig
from hasupd.membership.tiebreaker import PingGuard

from .conftest import REPO, TOOLS, new_topology


def test_hysteresis():
    g = PingGuard(PingGuardConfig(("10.99.0.1",), None, 1.0, 1.0, rise=2, fall=3))
    assert g.reachable is None
    assert [g.record(x) for x in (True, False, True)] == [False, False, False]
    assert g.reachable is None
    assert g.record(True) and g.reachable is True
    assert [g.record(x) for x in (False, False, True, False, False)] == [False] * 5
    assert g.record(False) and g.reachable is False
    assert not g.record(True) and g.reachable is False
    assert g.record(True) and g.reachable is True


class GuardProcess:
    def __init__(self, topo, node, *args):
        self.proc = subprocess.Popen(
            topo.exec_argv(node, [sys.executable, str(TOOLS), "ping-guard", *args]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        self.changes: list[dict] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            d = json.loads(line)
            with self.cond:
                self.changes.append(d)
                self.cond.notify_all()

    def wait(self, reachable, since, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for d in self.changes[since:]:
                    if d.get("reachable") is reachable:
                        return d
                if time.monotonic() > deadline:
                    return None
                self.cond.wait(0.2)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def topo():
    t = new_topology()
    try:
        yield t
    finally:
        t.down()


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.parametrize("socket_kind", ["ping-socket", "raw-socket"])
def test_icmp_guard_follows_reachability(topo, socket_kind):
    if socket_kind == "raw-socket":  # no unprivileged ping sockets: the raw socket (root) is used
        topo.run("n1", ["sysctl", "-qw", "net.ipv4.ping_group_range=1 0"])
    client = topo.address("client", 0)
    g = GuardProcess(topo, "n1", "--targets", f"10.99.0.99,{client}", "--interval", "0.2",
                     "--timeout", "0.3", "--rise", "2", "--fall", "2")
    try:
        assert g.wait(True, 0, 10) is not None, g.proc.stderr.read() if g.proc.poll() is not None else ""
        mark = len(g.changes)
        topo.cut_ring("client", 0)
        assert g.wait(False, mark, 5) is not None
        mark = len(g.changes)
        topo.heal_ring("client", 0)
        assert g.wait(True, mark, 5) is not None
        assert [d["reachable"] for d in g.changes[1:]] == [True, False, True]  # changes only
    finally:
        g.stop()


@pytest.mark.lab
@pytest.mark.slow
def test_tcp_guard(topo):
    listener = subprocess.Popen(topo.exec_argv("client", [sys.executable, str(TOOLS), "listen",
                                                          "--port", "8089", "--seconds", "60"]),
                                stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert "listening" in listener.stdout.readline()
        g = GuardProcess(topo, "n1", "--targets", topo.address("client", 0), "--tcp-port", "8089",
                         "--interval", "0.2", "--timeout", "0.3")
        try:
            assert g.wait(True, 0, 10) is not None
            mark = len(g.changes)
            listener.kill()  # connection refused: not reachable on that port
            assert g.wait(False, mark, 5) is not None
        finally:
            g.stop()
    finally:
        listener.kill()
        listener.wait()
