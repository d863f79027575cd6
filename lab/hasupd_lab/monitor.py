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

A DRBD split brain is a violation too, whenever it is seen: the kernel-log
line a node writes when its handshake finds diverged data (``Split-Brain
detected but unresolved``, ``Unrelated data``, a Primary told to become
SyncTarget), read from each node's simulated kern.log as it grows, and,
when the watch ends, generations that have diverged without a handshake
yet (both nodes wrote while apart: they will split at the next connect).
Split brains are also listed in ``Report.split_brains``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from hasupd_lab.cluster import CLIENT, NODES, VIP, Lab, _alive
from hasupd_lab.drbdsim import generations

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
    split_brains: list[str] = field(default_factory=list)  # "TIME NODE: kernel line" per node that saw one

    def split_brain_count(self) -> int:
        """Split brains seen: both nodes log the same handshake, so the larger of the two counts."""
        per_node = [sum(1 for s in self.split_brains if f" {n}: " in s) for n in NODES]
        return max(per_node, default=0)

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


_PRIMARY = re.compile(r"ro:Primary/|^\S+ Primary$", re.M)  # /proc/drbd 8.4 | drbdsim 9's .roles
# what DRBD 8.4 logs when a handshake refuses to connect over diverged data
SPLIT_BRAIN_LINES = ("Split-Brain detected but unresolved", "Unrelated data, aborting",
                     "I shall become SyncTarget, but I am primary")


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
        self._kern_offsets = {n: self._kern_size(n) for n in NODES}  # only what happens from now on
        self._kern_lock = threading.Lock()  # the sampler and a test may both read the logs

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
        if self._stop.is_set():
            return self.report
        self._stop.set()
        if self._poller is not None:
            self._poller.kill()
            self._poller.wait()
        for t in self._threads:
            t.join(timeout=5)
        self.check_kern_logs()
        if not self.report.split_brains:
            self.check_generations()
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
                        text = f.read()
                    if os.path.exists(status_path + ".roles"):  # drbdsim's DRBD 9 dialect
                        with open(status_path + ".roles") as f:
                            text = f.read()
                    if _PRIMARY.search(text):
                        primaries.append(node)
                except OSError:
                    pass
        return Sample(time.time(), tuple(vip), tuple(primaries), tuple(mounts))

    # ------------------------------------------------------------ split brains

    def _sim_dir(self, node: str) -> str | None:
        status_path = self.lab.meta.get("drbd", {}).get(node, {}).get("status_path")
        return os.path.dirname(status_path) if status_path else None

    def _kern_size(self, node: str) -> int:
        d = self._sim_dir(node)
        try:
            return os.path.getsize(os.path.join(d, "kern.log")) if d else 0
        except OSError:
            return 0

    def _split_brain(self, node: str, what: str) -> None:
        now = time.time()
        stamp = f"{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d}"
        self.report.split_brains.append(f"{stamp} {node}: {what}")
        self.report.violations.append(f"{stamp} DRBD split brain on {node}: {what}")

    def check_kern_logs(self) -> None:
        """New kernel-log lines of each node: a split-brain line is a violation."""
        with self._kern_lock:
            self._check_kern_logs()

    def _check_kern_logs(self) -> None:
        for node in NODES:
            d = self._sim_dir(node)
            if not d or self._kern_size(node) <= self._kern_offsets[node]:
                continue
            try:
                with open(os.path.join(d, "kern.log"), "rb") as f:
                    f.seek(self._kern_offsets[node])
                    new = f.read()
            except OSError:
                continue
            done = new.rfind(b"\n") + 1  # a half-written last line is read next time
            self._kern_offsets[node] += done
            for line in new[:done].decode(errors="replace").splitlines():
                if any(m in line for m in SPLIT_BRAIN_LINES):
                    self._split_brain(node, line.split("] ", 1)[-1])

    def check_generations(self) -> None:
        """Both nodes' DRBD metadata: generations that diverged are a split brain waiting to happen."""
        mds = {}
        for node in NODES:
            d = self._sim_dir(node)
            try:
                with open(os.path.join(d or "", "r0.md.json")) as f:
                    mds[node] = json.load(f)
            except (OSError, ValueError):
                return
        verdict = generations.diverged(mds[NODES[0]], mds[NODES[1]])
        if verdict:
            self._split_brain(NODES[0], f"diverged generations ({verdict}): split brain at the next connect")

    def _sample_loop(self) -> None:
        while not self._stop.is_set():
            s = self.sample()
            self.report.samples += 1
            self.check_kern_logs()
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
