"""Heartbeat figures on this machine, in a namespace lab (two nodes, two rings).

* detection time of a dead peer: both of n2's rings are cut at once (switch
  side) and n1's PeerDead is timed from the cut; median and max over the
  trials, for the default profile (interval 200ms, deadtime 2s) and the
  tuned one (50ms / 300ms).  The cut lands at a random phase of the send
  interval, so the figure ranges over [deadtime - interval, deadtime] plus
  the machine's scheduling delay.
* CPU time one heartbeat process costs (user + system, from /proc), both
  nodes running and exchanging packets, measured over a window and
  extrapolated to one hour.

    .venv/bin/python bench/heartbeat.py [--quick] [--trials N] [--cpu-seconds S]

Run as root (it builds network namespaces with the prefix "hbb<pid>").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from hasupd.config import Heartbeat, default_of
from hasupd.membership import wire
from hasupd_lab.netlab import Topology

REPO = Path(__file__).resolve().parents[1]
PROFILES = {"default": (default_of(Heartbeat, "interval"), default_of(Heartbeat, "deadtime")), "tuned": (0.05, 0.3)}


class Node:
    """One `python -m hasupd.membership.heartbeat` in a node namespace."""

    def __init__(self, topo: Topology, node: str, config: Path, key: Path):
        self.lines: list[dict] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            topo.exec_argv(node, [sys.executable, "-m", "hasupd.membership.heartbeat",
                                  "--config", str(config), "--node", node, "--key", str(key)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            cwd=REPO, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        if self.wait("ready", 20) is None:
            raise SystemExit(f"heartbeat on {node} did not start")

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(json.loads(line))
                self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.lines)

    def wait(self, event: str, timeout: float, since: int = 0) -> dict | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for d in self.lines[since:]:
                    if d["event"] == event:
                        return d
                if time.monotonic() > deadline:
                    return None
                self.cond.wait(0.1)

    def status(self) -> dict:
        since = self.mark()
        self.proc.stdin.write("status\n")
        self.proc.stdin.flush()
        return self.wait("status", 10, since) or {}

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def config_text(topo: Topology, interval: float, deadtime: float, key: Path) -> str:
    nodes = "\n".join(f"  - {{name: {n}, addresses: [{topo.address(n, 0)}, {topo.address(n, 1)}]}}"
                      for n in topo.nodes)
    return (f"cluster: bench\nnodes:\n{nodes}\nheartbeat:\n  transport: multicast\n  rings:\n"
            f"    - {{bind_network: {topo.network(0)}, group: 239.192.0.1}}\n"
            f"    - {{bind_network: {topo.network(1)}, group: 239.192.0.2}}\n"
            f"  interval: {interval}\n  deadtime: {deadtime}\n  authkey: {key}\ngroups: []\n")


def with_pair(tmp: Path, profile: str, work):
    interval, deadtime = PROFILES[profile]
    topo = Topology(f"hbb{os.getpid() % 1000}")
    topo.down()
    topo.up()
    nodes: list[Node] = []
    try:
        key = tmp / f"key-{profile}"
        if not key.exists():
            wire.write_key(str(key))
        config = tmp / f"{profile}.yaml"
        config.write_text(config_text(topo, interval, deadtime, key))
        nodes += [Node(topo, "n1", config, key), Node(topo, "n2", config, key)]
        if nodes[0].wait("PeerAlive", 10) is None:
            raise SystemExit("the nodes do not see each other")
        return work(topo, nodes[0], nodes[1], interval, deadtime)
    finally:
        for n in nodes:
            n.stop()
        topo.down()


def detection(topo: Topology, a: Node, b: Node, interval: float, deadtime: float, trials: int):
    times = []
    for _ in range(trials):
        time.sleep(deadtime / 2 + random.uniform(0, interval))  # random phase
        since = a.mark()
        before = time.time()
        topo.isolate("n2")
        cut_at = (before + time.time()) / 2
        dead = a.wait("PeerDead", deadtime + 10, since)
        if dead is None:
            raise SystemExit("no PeerDead after cutting both rings")
        times.append(dead["wall"] - cut_at)
        since = a.mark()
        topo.restore("n2")
        if a.wait("PeerAlive", 10, since) is None:
            raise SystemExit("the peer did not come back")
    return times


def cpu(topo: Topology, a: Node, b: Node, interval: float, deadtime: float, seconds: float):
    time.sleep(1.0)
    c0, t0 = a.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    c1, t1 = a.cpu_seconds(), time.monotonic()
    st = a.status()
    return (c1 - c0) / (t1 - t0), st


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 trials, 10 s of CPU measurement")
    p.add_argument("--trials", type=int, default=None, help="detection trials per profile (default 10)")
    p.add_argument("--cpu-seconds", type=float, default=None, help="CPU measurement window (default 30)")
    p.add_argument("--output", default=str(Path(__file__).resolve().parent / "results" / "heartbeat.json"),
                   help="where the figures are written for bench/report.py")
    args = p.parse_args()
    trials = args.trials or (3 if args.quick else 10)
    window = args.cpu_seconds or (10.0 if args.quick else 30.0)
    if os.geteuid() != 0:
        print("bench/heartbeat.py: run as root (it builds network namespaces)", file=sys.stderr)
        return 1
    print(f"heartbeat bench: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
          f"multicast, 2 rings, {trials} trials per profile")
    out: dict = {"detection": {}, "machine": {"nproc": os.cpu_count(), "load_avg": list(os.getloadavg())}}
    with tempfile.TemporaryDirectory(prefix="hbbench-") as tmp:
        for profile, (interval, deadtime) in PROFILES.items():
            times = with_pair(Path(tmp), profile,
                              lambda t, a, b, i, d: detection(t, a, b, i, d, trials))
            out["detection"][profile] = {"interval_s": interval, "deadtime_s": deadtime,
                                         "seconds": [round(x, 4) for x in times]}
            print(f"  dead-peer detection, {profile:7s} (interval {interval * 1000:g}ms, deadtime "
                  f"{deadtime:g}s): median {statistics.median(times):.3f}s, max {max(times):.3f}s, "
                  f"min {min(times):.3f}s over {len(times)} trials")
        per_second, st = with_pair(Path(tmp), "default",
                                   lambda t, a, b, i, d: cpu(t, a, b, i, d, window))
        rtt = ", ".join(f"{x * 1000:.2f}ms" for x in st.get("peer", {}).get("rtt", []) if x is not None)
        print(f"  CPU, default profile: {per_second * 3600:.1f} s per hour "
              f"({per_second * 100:.3f}% of one CPU), measured over {window:g}s of one node "
              f"exchanging packets with its peer on 2 rings and extrapolated to an hour; "
              f"ring round trips {rtt}")
    out["cpu_pct"] = round(per_second * 100, 4)
    out["cpu_s_per_hour"] = round(per_second * 3600, 2)
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
