"""What hasupd costs on a node: memory, CPU, heartbeat traffic, detection
time, for 1, 10, 50 and 100 resource groups.

For each size a lab (prefix "bfp") runs the reference group rg_web (DRBD +
VIP + filesystem + httpd) plus N-1 generated groups, each a VIP
10.99.0.(20+i) and an ``ocf:heartbeat:Dummy`` (Debian's resource-agents;
its state file is per node).  Once every group runs, both daemons are
watched for WINDOW seconds (60 s, 15 s with --quick):

* RSS / USS of the hasupd process (psutil; max over the window) and CPU
  (user + system of hasupd itself, and with its finished children: the
  OCF agents, drbdadm, ...), in % of one core;
* heartbeat packets and bytes per second each node sends (all rings),
  counted by tcpdump on the lab's bridges (frame bytes), and the largest
  heartbeat datagram's payload (it must stay below 1200 bytes);
* detection: an address of one group is removed with ``ip addr del`` on
  its node, timed to the daemon's "failed" observation in history.jsonl.

Where the idle figures come from (the floor under the goals):

* RSS: what each import costs, in the order the daemon loads them, each
  step's RSS growth in one fresh interpreter of the daemon's Python
  (``import_costs``); what the running daemon holds beyond that is its data.
* CPU: one group is watched again with the tuned heartbeat (interval 50 ms);
  the extra CPU over the extra packets is the cost of one packet sent and
  one received, and that cost times the reference packet rate is the
  heartbeat's share of the idle CPU; the rest is monitors and timers
  (``cpu_breakdown``).

If a size does not fit in one heartbeat packet, that is reported, and the
largest size that fits is measured instead.

    .venv/bin/python bench/footprint.py [--quick] [--sizes 1,10,50,100]

Writes bench/results/footprint.json (format: bench/results/README.md).
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    curl_node,
    fmt,
    machine,
    need_root,
    node_records,
    stats,
    status,
    wait,
    write_json,
)
from hasupd_lab.cluster import NODES, Lab, LabError  # noqa: E402

PACKET_LIMIT = 1200  # the heartbeat's own budget (one datagram, far below the MTU)
HB_PORTS = (5405, 5407)
TUNED_HEARTBEAT = {"heartbeat.interval": "50ms", "heartbeat.deadtime": "300ms"}

# The daemon's imports in the order it loads them (hasupd.daemon, then what
# build_engine and the drivers import; prometheus_client only with metrics on).
IMPORT_STEPS = (
    ("interpreter, asyncio and the standard library the daemon uses",
     "import asyncio, json, hashlib, hmac, socket, subprocess, argparse, dataclasses, logging"),
    ("yaml (the configuration)", "import yaml"),
    ("structlog (logging and alerts)", "import structlog"),
    ("systemd.journal (the journal sink)", "import systemd.journal"),
    ("psutil", "import psutil"),
    ("pyudev (DRBD's udev events)", "import pyudev"),
    ("pyroute2 (the VIP and link events over netlink)", "import pyroute2"),
    ("hasupd's own modules", "import hasupd.daemon, hasupd.engine, hasupd.intake, hasupd.executor, "
     "hasupd.peerfence, hasupd.alerts, hasupd.history, hasupd.state, hasupd.fencing, hasupd.redact, "
     "hasupd.membership.heartbeat, hasupd.membership.tiebreaker, hasupd.control.commands, "
     "hasupd.control.server, hasupd.resources.drbd, hasupd.resources.vip, hasupd.resources.filesystem, "
     "hasupd.resources.httpd, hasupd.resources.ocf"),
    ("prometheus_client (only when `metrics` is configured)", "import prometheus_client"),
)

_IMPORT_PROBE = r"""
import json, sys
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
steps = json.loads(sys.argv[1])
out = [{"step": "python itself", "rss_mb": round(rss() / 2**20, 2)}]
last = rss()
for label, statement in steps:
    try:
        exec(statement, {})
        ok = True
    except ImportError:
        ok = False
    now = rss()
    out.append({"step": label, "rss_mb": round((now - last) / 2**20, 2), "loaded": ok})
    last = now
print(json.dumps(out))
"""


def import_costs(python: str = sys.executable) -> list[dict]:
    """[{step, rss_mb (what this step added), loaded}] in load order, one fresh interpreter."""
    import json
    proc = subprocess.run([python, "-c", _IMPORT_PROBE, json.dumps(IMPORT_STEPS)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"import probe failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def cpu_breakdown(ref: dict, tuned: dict) -> dict | None:
    """The heartbeat's share of the idle CPU: from two windows of one group,
    at the reference and at the tuned heartbeat rate (the same lab otherwise)."""
    out = {}
    for node, r in ref.get("nodes", {}).items():
        t = tuned.get("nodes", {}).get(node)
        if not t:
            continue
        extra_pps = t["heartbeat_pps"] - r["heartbeat_pps"]
        if extra_pps <= 0:
            continue
        # cpu_pct is % of one core: 1 % = 10 ms of CPU per second
        per_packet_ms = max(0.0, (t["cpu_pct"] - r["cpu_pct"]) * 10 / extra_pps)
        heartbeat_pct = per_packet_ms * r["heartbeat_pps"] / 10
        out[node] = {"role": r.get("role"), "cpu_pct": r["cpu_pct"], "cpu_pct_tuned": t["cpu_pct"],
                     "heartbeat_pps": r["heartbeat_pps"], "heartbeat_pps_tuned": t["heartbeat_pps"],
                     "ms_per_packet": round(per_packet_ms, 3),
                     "heartbeat_pct": round(min(heartbeat_pct, r["cpu_pct"]), 3),
                     "rest_pct": round(max(0.0, r["cpu_pct"] - heartbeat_pct), 3)}
    return out or None


def groups_yaml(lab: Lab, node: str, n: int) -> list[dict]:
    """N-1 generated groups: a VIP and a Dummy each (rg_web is the first)."""
    state_dir = lab.node_dir(node) / "dummy"
    state_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(1, n):
        out.append({
            "name": f"rg_g{i}",
            "stickiness": "infinity",
            "migration_threshold": 1000,  # a removed address is restarted in place
            "monitor_interval": "20s",
            "timeouts": {"start": "30s", "stop": "30s", "monitor": "20s"},
            "resources": [
                {"name": f"vip_g{i}", "type": "vip", "ip": f"10.99.0.{20 + i}", "cidr_netmask": 24,
                 "nic": "eth0", "arp_repeat_after": "2s"},
                {"name": f"dummy_g{i}", "type": "ocf", "agent": "heartbeat:Dummy",
                 "params": {"state": str(state_dir / f"g{i}.state")}},
            ],
        })
    return out


def write_configs(lab: Lab, n: int, overrides: dict | None = None) -> None:
    for node in NODES:
        cfg = lab.node_config(node, {"groups.0.migration_threshold": 1000, **(overrides or {})})
        cfg["groups"] = cfg["groups"][:1] + groups_yaml(lab, node, n)
        text = f"# generated by bench/footprint.py: rg_web + {n - 1} groups\n" + \
            yaml.safe_dump(cfg, sort_keys=False)
        lab.config_path(node).write_text(text)


def all_started(lab: Lab, n: int) -> bool:
    st = status(lab, "n1")
    if not st or len(st["groups"]) != n:
        return False
    return all(g["state"] == "started" and g["node"] for g in st["groups"])


# ---------------------------------------------------------------- capture


class Capture:
    """tcpdump of the heartbeat ports on every ring's bridge (lan namespace)."""

    def __init__(self, lab: Lab, tmp: Path):
        self.lab = lab
        self.files = [tmp / f"ring{r}.pcap" for r in range(lab.topo.rings)]
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        filt = "udp and (" + " or ".join(f"dst port {p}" for p in HB_PORTS) + ")"
        for ring, f in enumerate(self.files):
            argv = self.lab.topo.exec_argv("lan", ["tcpdump", "-i", self.lab.topo.bridge(ring), "-n", "-s",
                                                    "2048", "-U", "-w", str(f), filt])
            self.procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                               start_new_session=True))
        time.sleep(1.0)  # tcpdump opens its socket

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def per_source(self) -> dict[str, dict]:
        """{source address: {packets, bytes, max_payload}} over all rings."""
        out: dict[str, dict] = {}
        for f in self.files:
            for src, frame_len, payload in read_pcap(f):
                d = out.setdefault(src, {"packets": 0, "bytes": 0, "max_payload": 0})
                d["packets"] += 1
                d["bytes"] += frame_len
                d["max_payload"] = max(d["max_payload"], payload)
        return out


def read_pcap(path: Path):
    """(source IPv4, frame length, UDP payload length) of each packet (Ethernet pcap)."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    pos = 24
    while pos + 16 <= len(data):
        _, _, incl, orig = struct.unpack(endian + "IIII", data[pos:pos + 16])
        pkt = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        if len(pkt) < 42 or pkt[12:14] != b"\x08\x00":
            continue
        ihl = (pkt[14] & 0x0F) * 4
        src = ".".join(str(b) for b in pkt[26:30])
        udp_len = struct.unpack(">H", pkt[14 + ihl + 4:14 + ihl + 6])[0]
        yield src, orig, udp_len - 8


# ---------------------------------------------------------------- one size


def measure_size(lab: Lab, n: int, window: float, trials: int, log=print,
                 overrides: dict | None = None) -> dict:
    if lab.meta_path.exists():
        lab.down()
    lab.up(start=False)
    try:
        write_configs(lab, n, overrides)
        for node in NODES:
            lab.start_daemon(node)
        def up_or_dead():
            if any(lab.daemon_pid(node) is None for node in NODES):
                return "dead"
            return curl_node(lab) and all_started(lab, n) and "ok"
        started = wait(up_or_dead, 120, 1.0)
        if started != "ok":
            tails = {node: (lab.node_dir(node) / "hasupd.log").read_text(errors="replace").splitlines()[-8:]
                     for node in NODES if (lab.node_dir(node) / "hasupd.log").exists()}
            alive = {node: lab.daemon_pid(node) is not None for node in NODES}
            why = next((line for tail in tails.values() for line in reversed(tail) if "Error" in line), "")
            error = (f"hasupd exited: {why}" if why else "hasupd exited") if started == "dead" \
                else f"the {n} groups did not all start within 120 s"
            return {"groups": n, "ok": False, "daemons_alive": alive, "error": error, "log_tail": tails}
        time.sleep(5)  # settle: the first monitors, GARP repeats
        sizes = {}
        with tempfile.TemporaryDirectory(prefix="hasupd-fp-") as tmp:
            cap = Capture(lab, Path(tmp))
            procs = {node: psutil.Process(lab.daemon_pid(node)) for node in NODES}
            cap.start()
            t0 = time.monotonic()
            before = {node: p.cpu_times() for node, p in procs.items()}
            rss = {node: [] for node in NODES}
            uss = {node: 0 for node in NODES}
            pss = {node: 0 for node in NODES}
            while time.monotonic() - t0 < window:
                for node, p in procs.items():
                    rss[node].append(p.memory_info().rss)
                time.sleep(1.0)
            elapsed = time.monotonic() - t0
            after = {node: p.cpu_times() for node, p in procs.items()}
            for node, p in procs.items():
                try:
                    full = p.memory_full_info()
                    uss[node], pss[node] = full.uss, getattr(full, "pss", 0)
                except psutil.Error:
                    pass
            cap.stop()
            per_src = cap.per_source()
        dead = [node for node in NODES if lab.daemon_pid(node) is None]
        if dead:
            tails = {node: (lab.node_dir(node) / "hasupd.log").read_text(errors="replace").splitlines()[-8:]
                     for node in dead}
            why = next((line for tail in tails.values() for line in reversed(tail) if "Error" in line), "")
            return {"groups": n, "ok": False, "daemons_alive": {node: node not in dead for node in NODES},
                    "error": f"hasupd exited on {', '.join(dead)} during the window: {why}", "log_tail": tails}
        owner = curl_node(lab)
        for node in NODES:
            b, a = before[node], after[node]
            own = (a.user - b.user) + (a.system - b.system)
            kids = (a.children_user - b.children_user) + (a.children_system - b.children_system)
            addrs = [lab.topo.address(node, r) for r in range(lab.topo.rings)]
            pk = sum(per_src.get(x, {}).get("packets", 0) for x in addrs)
            by = sum(per_src.get(x, {}).get("bytes", 0) for x in addrs)
            mp = max([per_src.get(x, {}).get("max_payload", 0) for x in addrs])
            sizes[node] = {"role": "owner of rg_web" if node == owner else "standby for rg_web",
                           "rss_mb": round(max(rss[node]) / 2**20, 2), "uss_mb": round(uss[node] / 2**20, 2),
                           "pss_mb": round(pss[node] / 2**20, 2),
                           "cpu_pct": round(100 * own / elapsed, 3),
                           "cpu_pct_with_children": round(100 * (own + kids) / elapsed, 3),
                           "heartbeat_pps": round(pk / elapsed, 2), "heartbeat_bps": round(by / elapsed, 1),
                           "hb_max_payload": mp}
        detect = detection(lab, n, trials, log)
        worst = max(sizes.values(), key=lambda d: d["rss_mb"])
        return {"groups": n, "ok": True, "window_s": round(elapsed, 1),
                "rss_mb": max(d["rss_mb"] for d in sizes.values()),
                "pss_mb": max(d["pss_mb"] for d in sizes.values()),
                "cpu_pct": max(d["cpu_pct"] for d in sizes.values()),
                "cpu_pct_with_children": max(d["cpu_pct_with_children"] for d in sizes.values()),
                "heartbeat_pps": max(d["heartbeat_pps"] for d in sizes.values()),
                "heartbeat_bps": max(d["heartbeat_bps"] for d in sizes.values()),
                "hb_max_payload": max(d["hb_max_payload"] for d in sizes.values()),
                "fits_packet_limit": max(d["hb_max_payload"] for d in sizes.values()) < PACKET_LIMIT,
                "detect_ms": detect["median_ms"], "detect": detect, "nodes": sizes,
                "busiest_rss_node": worst["role"]}
    finally:
        lab.down()


def detection(lab: Lab, n: int, trials: int, log=print) -> dict:
    """Remove one group's address on its node; time to the "failed" observation."""
    name, res, ip = ("rg_web", "res_vip", "10.99.0.20") if n == 1 else \
        (f"rg_g{n - 1}", f"vip_g{n - 1}", f"10.99.0.{20 + n - 1}")
    values = []
    for _ in range(trials):
        st = status(lab, "n1")
        g = next((g for g in (st or {}).get("groups", []) if g["name"] == name), None)
        if not g or g["state"] != "started":
            wait(lambda: (g2 := next((x for x in (status(lab, "n1") or {}).get("groups", [])
                                      if x["name"] == name), None)) and g2["state"] == "started", 30, 0.5)
            g = next((g for g in (status(lab, "n1") or {}).get("groups", []) if g["name"] == name), None)
        if not g or not g["node"]:
            break
        node = g["node"]
        time.sleep(1.0)
        t0 = time.time()
        lab.exec(node, ["ip", "addr", "del", f"{ip}/24", "dev", "eth0"], capture_output=True, timeout=10)

        def seen(node=node, t0=t0):
            for r in node_records(lab, node, t0 - 0.5):
                if r.get("kind") == "observation" and r.get("state") == "failed" and r.get("resource") == res \
                        and r.get("wall", 0) >= t0 - 0.01:
                    return r["wall"]
            return None
        at = wait(seen, 30, 0.05)
        if at is None:
            log(f"    detection: no failed observation of {res} within 30 s")
            continue
        values.append((at - t0) * 1000)
        # restarted in place (threshold 1000); clear the fail count for the next trial
        wait(lambda: (g2 := next((x for x in (status(lab, "n1") or {}).get("groups", []) if x["name"] == name),
                                 None)) and g2["state"] == "started", 30, 0.5)
        lab.exec(node, ["hasupctl", "cleanup", name], capture_output=True, timeout=30)
    s = stats(values)
    return {"group": name, "resource": res, "trials": len(values), "values_ms": [round(v, 2) for v in values],
            "median_ms": None if s["median"] is None else round(s["median"], 2),
            "max_ms": None if s["max"] is None else round(s["max"], 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="15 s windows, 3 detection trials")
    ap.add_argument("--window", type=float, default=None, help="seconds per measurement (default 60)")
    ap.add_argument("--sizes", default="1,10,50,100")
    ap.add_argument("--prefix", default="bfp")
    ap.add_argument("--output", default="footprint.json")
    ap.add_argument("--no-cpu-breakdown", action="store_true",
                    help="skip the second 1-group window with the tuned heartbeat")
    args = ap.parse_args(argv)
    need_root()
    try:
        sizes = [int(x) for x in args.sizes.split(",") if x]
    except ValueError:
        print(f"footprint.py: --sizes takes numbers like 1,10,50, not {args.sizes!r}", file=sys.stderr)
        return 2
    window = args.window or (15.0 if args.quick else 60.0)
    trials = 3 if args.quick else 5
    lab = Lab(args.prefix)
    result = {"generated": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), "machine": machine(), "window_s": window, "packet_limit": PACKET_LIMIT, "sizes": [],
              "findings": []}
    for n in sizes:
        print(f"-- {n} group(s): {window:g} s window", flush=True)
        try:
            row = measure_size(lab, n, window, trials)
        except LabError as e:
            row = {"groups": n, "ok": False, "error": str(e).splitlines()[0]}
        if row["ok"] and not row["fits_packet_limit"]:
            result["findings"].append(f"{n} groups: heartbeat payload {row['hb_max_payload']} bytes "
                                      f">= {PACKET_LIMIT}")
        if not row["ok"]:
            result["findings"].append(f"{n} groups: {row['error']}")
            print(f"   {n} groups FAILED: {row['error']}")
            for node, tail in (row.get("log_tail") or {}).items():
                print(f"   {node} log: " + "\n      ".join(tail))
            # measure what fits (in one packet, and then within the 1200-byte budget)
            steps = (30, 20, 15) if args.quick else (40, 30, 25, 20, 15)
            for m in [m for m in steps if m < n and m not in sizes]:
                print(f"-- {m} group(s) instead", flush=True)
                try:
                    alt = measure_size(lab, m, window, trials)
                except LabError as e:
                    alt = {"groups": m, "ok": False, "error": str(e).splitlines()[0]}
                alt["instead_of"] = n
                result["sizes"].append(row)
                row = alt
                if alt["ok"]:
                    print_row(alt)
                    if alt["fits_packet_limit"]:
                        break
                    result["findings"].append(f"{m} groups: heartbeat payload {alt['hb_max_payload']} bytes "
                                              f">= {PACKET_LIMIT}")
                else:
                    print(f"   {m} groups FAILED: {alt['error']}")
                    result["findings"].append(f"{m} groups: {alt['error']}")
        result["sizes"].append(row)
        if row["ok"] and "instead_of" not in row:
            print_row(row)
    ok_rows = [r for r in result["sizes"] if r["ok"]]
    if ok_rows:
        first = ok_rows[0]
        result["idle"] = {k: first[k] for k in ("groups", "rss_mb", "pss_mb", "cpu_pct", "cpu_pct_with_children",
                                                "heartbeat_pps", "heartbeat_bps", "hb_max_payload")}
        result["idle"]["nodes"] = first["nodes"]
        result["idle"]["goals"] = {"rss_mb<=35": first["rss_mb"] <= 35, "cpu_pct<=0.3": first["cpu_pct"] <= 0.3}
        result["imports"] = import_costs()
        print("\n where the RSS goes (one fresh interpreter, in load order):")
        for step in result["imports"]:
            print(f"   {step['rss_mb']:6.1f} MB  {step['step']}")
        if first["groups"] == 1 and not args.no_cpu_breakdown:
            print(f"-- 1 group, tuned heartbeat {TUNED_HEARTBEAT}: {window:g} s window", flush=True)
            try:
                tuned = measure_size(lab, 1, window, 1, overrides=TUNED_HEARTBEAT)
            except LabError as e:
                tuned = {"ok": False, "error": str(e).splitlines()[0]}
            if tuned.get("ok"):
                print_row(tuned)
                result["idle"]["cpu_breakdown"] = cpu_breakdown(first, tuned)
                for node, b in (result["idle"]["cpu_breakdown"] or {}).items():
                    print(f"   {node}: {b['ms_per_packet']} ms of CPU per heartbeat packet; at "
                          f"{b['heartbeat_pps']} packets/s the heartbeat is {b['heartbeat_pct']} % of the "
                          f"{b['cpu_pct']} %, the rest {b['rest_pct']} %")
            else:
                result["findings"].append(f"tuned-heartbeat window for the CPU breakdown: {tuned['error']}")
    print("\n groups |  RSS MB | USS MB | CPU % (own / +children) | hb pkt/s | hb B/s | max payload | detect ms")
    for r in result["sizes"]:
        if not r["ok"]:
            print(f" {r['groups']:>6} | failed: {r['error']}")
            continue
        uss = max(d["uss_mb"] for d in r["nodes"].values())
        print(f" {r['groups']:>6} | {r['rss_mb']:7.1f} | {uss:6.1f} | {r['cpu_pct']:6.2f} / "
              f"{r['cpu_pct_with_children']:6.2f}          | {r['heartbeat_pps']:8.1f} | {r['heartbeat_bps']:6.0f} | "
              f"{r['hb_max_payload']:11d} | {fmt(r['detect_ms'], '')}")
    for f in result["findings"]:
        print(f" finding: {f}")
    path = write_json(args.output, result)
    print(f"wrote {path}")
    return 0


def print_row(r: dict) -> None:
    for node, d in r["nodes"].items():
        print(f"   {node} ({d['role']}): RSS {d['rss_mb']} MB (USS {d['uss_mb']}), CPU {d['cpu_pct']}% "
              f"(+children {d['cpu_pct_with_children']}%), heartbeat {d['heartbeat_pps']} pkt/s "
              f"{d['heartbeat_bps']} B/s, largest payload {d['hb_max_payload']} B")
    print(f"   detection of a removed address: {r['detect']['values_ms']} ms")


if __name__ == "__main__":
    sys.exit(main())
