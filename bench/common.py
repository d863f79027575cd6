"""Shared pieces of the lab benchmarks (failover, footprint, chaos).

* ``Poller``: an HTTP prober in the lab's client namespace.  It starts one
  probe every ``interval`` seconds whatever the previous ones do (a probe
  that hangs on an unanswered ARP does not delay the next), so the first
  HTTP 200 after a fault is seen to within ``interval``.
* ``node_records`` / ``merged_records``: both nodes' history.jsonl.
* ``heal``: brings a lab back to a healthy cluster (thaw, boot, restart a
  dead daemon, resolve a DRBD split brain as an administrator would,
  cleanup) and waits for it; a split brain it resolves is said and
  returned, never silent.
* ``stats``: min / median / p95 / max.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from hasupd.history import read as read_history
from hasupd_lab.cluster import CLIENT, NODES, VIP, Lab
from hasupd_lab.monitor import SPLIT_BRAIN_LINES

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
OTHER = {"n1": "n2", "n2": "n1"}

POLLER = r"""
import asyncio, json, sys, time
interval, vip, timeout = float(sys.argv[1]), sys.argv[2], float(sys.argv[3])

async def probe(t0):
    status, node = 0, ""
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(vip, 80), timeout)
        w.write(b"GET / HTTP/1.0\r\nHost: " + vip.encode() + b"\r\n\r\n")
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
        w.close()
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        for line in lines[1:]:
            if line.lower().startswith("x-served-by:"):
                node = line.split(":", 1)[1].strip()
    except Exception:
        pass
    print(json.dumps([round(t0, 4), round(time.time(), 4), status, node]), flush=True)

async def main():
    tasks = set()
    nxt = time.time()
    while True:
        t = asyncio.ensure_future(probe(time.time()))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        nxt += interval
        await asyncio.sleep(max(0.0, nxt - time.time()))

asyncio.run(main())
"""


class Poller:
    """Probes http://VIP/ from the client namespace; ``probes`` holds
    (sent_wall, answered_wall, status, node), status 0 = no answer."""

    def __init__(self, lab: Lab, interval: float = 0.01, timeout: float = 0.5):
        self.lab = lab
        self.interval = interval
        self.timeout = timeout
        self.probes: list[tuple[float, float, int, str]] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Poller:
        self._proc = subprocess.Popen(
            self.lab.topo.exec_argv(CLIENT, [sys.executable, "-c", POLLER, str(self.interval), VIP,
                                             str(self.timeout)]),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                sent, done, status, node = json.loads(line)
            except ValueError:
                continue
            self.probes.append((sent, done, status, node))

    def stop(self) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, 9)
            except ProcessLookupError:
                pass
            self._proc.wait()
            self._proc = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Poller:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ analysis

    def since(self, t: float, until: float = math.inf) -> list[tuple[float, float, int, str]]:
        return sorted((p for p in list(self.probes) if t <= p[0] <= until), key=lambda p: p[0])

    def first_ok(self, t: float, node: str | None = None) -> float | None:
        """Answer time of the first probe sent after t answered 200 (by node)."""
        for _sent, done, status, served in self.since(t):
            if status == 200 and (node is None or served == node):
                return done
        return None

    def wait_ok(self, t: float, node: str | None, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.first_ok(t, node)
            if found is not None:
                return found
            time.sleep(0.02)
        return None

    def failed(self, t: float, until: float) -> int:
        return sum(1 for p in self.since(t, until) if p[2] != 200)

    def longest_gap(self, t: float, until: float) -> float:
        """Longest time without a 200 answer between t and until."""
        last = t
        gap = 0.0
        for _sent, done, status, _ in self.since(t, until):
            if status == 200:
                gap = max(gap, done - last)
                last = done
        return max(gap, 0.0)


# ---------------------------------------------------------------- lab helpers


def ctl(lab: Lab, node: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return lab.exec(node, ["hasupctl", *args], capture_output=True, text=True, timeout=timeout)


def status(lab: Lab, node: str) -> dict | None:
    try:
        proc = ctl(lab, node, "status", "--json", timeout=15)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return None


def group_of(st: dict | None, name: str = "rg_web") -> dict | None:
    if not st:
        return None
    return next((g for g in st.get("groups", []) if g["name"] == name), None)


def curl_node(lab: Lab) -> str:
    code, _, node = lab.curl(0.5)
    return node if code == 200 else ""


def drbd(lab: Lab, node: str, what: str) -> str:
    try:
        proc = lab.exec(node, ["drbdadm", what, "r0"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return ""
    return proc.stdout.strip()


def node_records(lab: Lab, node: str, since_wall: float | None = None) -> list[dict]:
    recs = list(read_history(str(lab.node_dir(node) / "state"), since_wall))
    for r in recs:
        r.setdefault("node", node)
    return recs


def merged_records(lab: Lab, since_wall: float | None = None) -> list[dict]:
    return [r for n in NODES for r in node_records(lab, n, since_wall)]


def wait(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = predicate()
        except (subprocess.SubprocessError, ValueError, KeyError, OSError):
            got = None
        if got:
            return got
        time.sleep(interval)
    return None


def healthy(lab: Lab) -> str:
    """The owner when the cluster is healthy (both daemons up and online, one
    owner serving, no ban or fail count, DRBD connected UpToDate/UpToDate),
    else ""."""
    owner = curl_node(lab)
    if not owner:
        return ""
    for node in NODES:
        if lab.daemon_pid(node) is None:
            return ""
        st = status(lab, node)
        g = group_of(st)
        if not g or g["node"] != owner or g["state"] != "started" or g["bans"] or g["fail_counts"]:
            return ""
        if not all(n["online"] for n in st["nodes"]):
            return ""
    for node in NODES:
        if drbd(lab, node, "cstate") != "Connected" or drbd(lab, node, "dstate") != "UpToDate/UpToDate":
            return ""
    return owner


def split_brain_seen(lab: Lab) -> bool:
    """DRBD refused to connect over diverged data: StandAlone after a split-brain handshake
    (the kernel-log line), not merely waiting for its peer (WFConnection)."""
    states = [drbd(lab, n, "cstate") for n in NODES]
    if "StandAlone" not in states:
        return False
    for node in NODES:
        log = Path(lab.meta.get("drbd", {}).get(node, {}).get("status_path", "/nonexistent")).with_name("kern.log")
        try:
            text = log.read_text(errors="replace")
        except OSError:
            continue
        if any(m in text for m in SPLIT_BRAIN_LINES):
            return True
    return False


def resolve_split_brain(lab: Lab, survivor: str) -> bool:
    """What the alert tells an administrator: the loser discards its data."""
    loser = OTHER[survivor]
    if not split_brain_seen(lab):
        return False
    lab.exec(loser, ["drbdadm", "secondary", "r0"], capture_output=True, timeout=30)
    lab.exec(loser, ["drbdadm", "disconnect", "r0"], capture_output=True, timeout=30)
    lab.exec(loser, ["drbdadm", "connect", "--discard-my-data", "r0"], capture_output=True, timeout=30)
    lab.exec(survivor, ["drbdadm", "connect", "r0"], capture_output=True, timeout=30)
    return True


def boot(lab: Lab, node: str) -> str:
    """Boot a crashed node as a real reboot would: the dead kernel's
    addresses are gone.  (The lab's crash kills the node's processes but
    keeps its network namespace, so the VIP would still sit on its eth0 and
    answer ARP from the moment the cables are back, before hasupd runs.)"""
    for ring in range(lab.topo.rings):
        own = lab.topo.address(node, ring)
        proc = subprocess.run(lab.topo.exec_argv(node, ["ip", "-o", "-4", "addr", "show", "dev", f"eth{ring}"]),
                              capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            fields = line.split()
            cidr = fields[fields.index("inet") + 1] if "inet" in fields else ""
            if cidr and cidr.split("/")[0] != own:
                subprocess.run(lab.topo.exec_argv(node, ["ip", "addr", "del", cidr, "dev", f"eth{ring}"]),
                               capture_output=True)
    return lab.fault(node, "boot")


def powered_off(lab: Lab, node: str) -> bool:
    """As the node's BMC reads it: its holder (the "machine") is gone."""
    lab.reload()
    holder = lab.meta.get("holders", {}).get(node)
    return not holder or not lab.alive(holder)


def heal(lab: Lab, frozen: set[str] | None = None, crashed: set[str] | None = None,
         timeout: float = 120.0, log=print, resolved_split_brains: list[str] | None = None) -> str:
    """Bring the lab back to a healthy cluster; returns the owner or "" on failure.  A DRBD
    split brain it had to resolve (data thrown away on one node) is logged and appended to
    ``resolved_split_brains``."""
    for node in sorted(frozen or ()):
        lab.fault(node, "thaw")
    for node in sorted(crashed or ()):
        boot(lab, node)
    for node in NODES:
        for ring in (0, 1):
            lab.topo.heal_ring(node, ring)
            lab.topo.clear_loss(node, ring)
    deadline = time.monotonic() + timeout
    resolved = False

    def resolve_and_report(survivor: str, what: str) -> bool:
        """Resolve a split brain (the survivor keeps its data); said and counted when done."""
        done = resolve_split_brain(lab, survivor)
        if done:
            log(f"    SPLIT BRAIN: {what}")
            if resolved_split_brains is not None:
                resolved_split_brains.append(what)
        return done
    while time.monotonic() < deadline:
        for node in NODES:
            if lab.daemon_pid(node) is None:
                if lab.meta.get("holders", {}).get(node) and lab.alive(lab.holder_pid(node)):
                    lab.start_daemon(node)  # what systemd's Restart=on-failure does
                else:
                    boot(lab, node)
        owner = curl_node(lab)
        live = next((n for n in NODES if lab.daemon_pid(n)), None)
        if live:
            st = status(lab, live)
            g = group_of(st)
            if g and (g["bans"] or g["fail_counts"] or g.get("blocked")):
                ctl(lab, live, "cleanup", "rg_web")
        states = [drbd(lab, n, "cstate") for n in NODES] if not resolved else []
        if not owner and states and all(s == "StandAlone" for s in states):
            # a split brain that nobody serves through (no node promotes on a split brain):
            # the operator picks the survivor, here the node still Primary or else n1
            primary = next((n for n in NODES if drbd(lab, n, "role").startswith("Primary")), NODES[0])
            resolved = resolve_and_report(primary, f"DRBD split brain {states} and nobody serves: "
                                          f"resolved ({primary} survives)")
        if owner and not resolved and split_brain_seen(lab):
            states = [drbd(lab, n, "cstate") for n in NODES]
            resolved = resolve_and_report(owner, f"DRBD split brain {states}: resolved with --discard-my-data "
                                          f"on {OTHER[owner]} ({owner} survives)")
        got = healthy(lab)
        if got:
            return got
        time.sleep(0.5)
    return ""


def rebuild(lab: Lab, overrides: dict | None) -> str:
    guard = lab.meta.get("guard")  # the rebuilt lab keeps the split-brain guard
    lab.down()
    lab.up(overrides, guard=guard)
    return wait(lambda: healthy(lab), 90, 0.5) or ""


# ---------------------------------------------------------------- figures


def stats(values: list[float]) -> dict:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return {"n": 0, "min": None, "median": None, "p95": None, "max": None}
    # p95 by the nearest-rank method (with 5 runs it is the max)
    p95 = vals[min(len(vals) - 1, math.ceil(0.95 * len(vals)) - 1)]
    return {"n": len(vals), "min": round(vals[0], 4), "median": round(statistics.median(vals), 4),
            "p95": round(p95, 4), "max": round(vals[-1], 4)}


def fmt(v: float | None, unit: str = "s") -> str:
    return "—" if v is None else f"{v:.3f}{unit}"


def machine() -> dict:
    try:
        model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                      if line.startswith("model name")), "")
    except OSError:
        model = ""
    try:
        mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem = 0
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"host": platform.node(), "kernel": platform.release(), "cpu": model, "nproc": os.cpu_count(),
            "mem_gb": round(mem / 1024 / 1024, 1), "python": platform.python_version(),
            "load_avg": [round(x, 2) for x in os.getloadavg()], "commit": commit,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_json(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def need_root() -> None:
    if os.geteuid() != 0:
        raise SystemExit("the benchmarks build a namespace lab: run them as root")
