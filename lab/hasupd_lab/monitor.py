"""The lab's invariant monitor: samples the two nodes every 50 ms.

For every node that is live (not crashed, not frozen) it reads, without
spawning anything, how many hold the VIP (the node's /proc/PID/net/fib_trie
through its mount-namespace holder), how many are DRBD Primary (the
simulator's /proc/drbd-format status), how many have /mnt/data mounted
(/proc/PID/mountinfo of the holder); and a poller in the client namespace
says who answers HTTP on the VIP every 20 ms.

A frozen node cannot act, so its stale state does not count while it is
frozen; after a thaw it gets ``thaw_grace`` seconds to step down (it must
hear the peer's newer claim first), and holding anything past that is a
violation.  A violation is any sample with 2 of anything.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from hasupd_lab.cluster import CLIENT, NODES, VIP, Lab, _alive

POLLER = r"""
import http.client, json, sys, time
interval, vip = float(sys.argv[1]), sys.argv[2]
while True:
    t = time.time()
    try:
        c = http.client.HTTPConnection(vip, 80, timeout=0.25)
        c.request("GET", "/")
        r = c.getresponse(); r.read()
        out = [t, r.status, r.getheader("X-Served-By") or ""]
        c.close()
    except Exception:
        out = [t, 0, ""]
    print(json.dumps(out), flush=True)
    time.sleep(max(0.0, interval - (time.time() - t)))
"""


@dataclass
class Sample:
    at: float
    vip: tuple[str, ...]
    primaries: tuple[str, ...]
    mounts: tuple[str, ...]


@dataclass
class Report:
    samples: int = 0
    violations: list[str] = field(default_factory=list)
    probes: list[tuple[float, int, str]] = field(default_factory=list)  # (wall, status, node)

    def availability(self, since: float = 0.0, until: float = float("inf")) -> float:
        ps = [p for p in self.probes if since <= p[0] <= until]
        return sum(1 for p in ps if p[1] == 200) / len(ps) if ps else 0.0

    def failed_probes(self, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for p in self.probes if since <= p[0] <= until and p[1] != 200)

    def first_ok_after(self, t: float, node: str | None = None) -> float | None:
        for wall, status, served in self.probes:
            if wall >= t and status == 200 and (node is None or served == node):
                return wall
        return None

    def answerers(self) -> set[str]:
        return {p[2] for p in self.probes if p[1] == 200}


_PRIMARY = re.compile(r"ro:Primary/")


class InvariantMonitor:
    def __init__(self, lab: Lab, interval: float = 0.05, http_interval: float = 0.02, thaw_grace: float = 5.0):
        self.lab = lab
        self.interval = interval
        self.http_interval = http_interval
        self.thaw_grace = thaw_grace
        self.report = Report()
        self.frozen: set[str] = set()
        self.crashed: set[str] = set()
        self.thawed_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._poller: subprocess.Popen | None = None

    # the test tells the monitor what it did to a node
    def note_fault(self, node: str, kind: str) -> None:
        if kind == "freeze":
            self.frozen.add(node)
        elif kind == "thaw":
            self.frozen.discard(node)
            self.thawed_at[node] = time.monotonic()
        elif kind == "crash":
            self.crashed.add(node)
        elif kind == "boot":
            self.crashed.discard(node)

    def start(self) -> InvariantMonitor:
        self._poller = subprocess.Popen(
            self.lab.topo.exec_argv(CLIENT, [sys.executable, "-c", POLLER, str(self.http_interval), VIP]),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        for target in (self._sample_loop, self._read_poller):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> Report:
        self._stop.set()
        if self._poller is not None:
            self._poller.kill()
            self._poller.wait()
        for t in self._threads:
            t.join(timeout=5)
        return self.report

    def __enter__(self) -> InvariantMonitor:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ sampling

    def _counted(self, node: str) -> bool:
        if node in self.frozen or node in self.crashed:
            return False
        thawed = self.thawed_at.get(node)
        return thawed is None or time.monotonic() - thawed > self.thaw_grace

    def sample(self) -> Sample:
        vip, primaries, mounts = [], [], []
        for node in NODES:
            if not self._counted(node):
                continue
            holder = self.lab.meta.get("holders", {}).get(node)
            if holder and not _alive(holder):
                self.lab.reload()  # a BMC's power on writes the new holder to lab.json
                holder = self.lab.meta.get("holders", {}).get(node)
            if holder and not _alive(holder):
                # powered off (a fence, a crash): its simulator's status file
                # is what it said before it died, not a Primary that runs
                continue
            if holder:
                try:
                    with open(f"/proc/{holder}/net/fib_trie") as f:
                        if f"|-- {VIP}\n" in f.read():
                            vip.append(node)
                    with open(f"/proc/{holder}/mountinfo") as f:
                        if " /mnt/data " in f.read():
                            mounts.append(node)
                except OSError:
                    pass
            status_path = self.lab.meta.get("drbd", {}).get(node, {}).get("status_path")
            if status_path:
                try:
                    with open(status_path) as f:
                        if _PRIMARY.search(f.read()):
                            primaries.append(node)
                except OSError:
                    pass
        return Sample(time.time(), tuple(vip), tuple(primaries), tuple(mounts))

    def _sample_loop(self) -> None:
        while not self._stop.is_set():
            s = self.sample()
            self.report.samples += 1
            for what, holders in (("VIP holders", s.vip), ("DRBD primaries", s.primaries),
                                  ("mounts of /mnt/data", s.mounts)):
                if len(holders) > 1:
                    self.report.violations.append(f"{time.strftime('%H:%M:%S', time.localtime(s.at))}"
                                                  f".{int(s.at % 1 * 1000):03d} {what}: {', '.join(holders)}")
            self._stop.wait(self.interval)

    def _read_poller(self) -> None:
        assert self._poller is not None and self._poller.stdout is not None
        for line in self._poller.stdout:
            try:
                wall, status, served = json.loads(line)
            except ValueError:
                continue
            self.report.probes.append((wall, status, served))
            if self._stop.is_set():
                break
