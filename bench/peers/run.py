#!/usr/bin/env python3
"""Failover times and footprint of hasupd's peers, measured in a namespace lab.

The peers: Pacemaker 2.1 + corosync 3 (Debian's packages, the reference
settings: IPaddr2 + apache in one group, stickiness INFINITY,
migration-threshold 1, monitor 20 s, default token) and keepalived (VIP +
a vrrp_script on httpd, defaults).  Each runs in the same kind of lab as
hasupd's own benchmark (peerlab.py: prefix "pk", 10.77.0.0/24), and is
measured the same way (peerlab.outcome follows bench/common.py's Poller):
a client polls http://VIP/ every 10 ms, and a trial's figure is the time
from the fault to the answer of the first probe sent after it that the new
owner answered 200 (for a planned move: the gap, the longest time without
any 200 answer).  Scenarios:

* kill_httpd  SIGKILL of apache's main process on the owner
* freeze      node death: cables cut on the switch side, every process of
              the owner stopped (SIGSTOP)
* move        planned move (Pacemaker only: crm_resource --move)

and, for Pacemaker with fencing (``pacemaker_fence``: the reference timings;
``pacemaker_fence_tuned``: monitor 2 s, token 1000 ms; fence_ipmilan against
an ipmi_sim BMC per node on a management network, as in hasupd's lab):

* power_cut   the owner's processes killed and cables cut (its BMC reads off)
* hung        the owner frozen (cables cut + SIGSTOP): fenced through its BMC
* partition   the nodes cut from each other, both alive (n >= 10): the time
              until one is powered off and the other answers; the VIP holders
              are sampled every ~20 ms (``two_holders``)

and the footprint of each node's cluster processes at idle (RSS, PSS, CPU;
apache excluded).  Writes bench/results/peers.json and prints a table.

    .venv/bin/python bench/peers/run.py [--quick] [--runs N] [--only PEER]

Run as root.  Missing Debian packages are installed with apt-get.  A peer
that cannot run here is recorded with the reason (``blocked``).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import keepalived
import pacemaker
from peerlab import POLL_INTERVAL, Blocked, PeerLab, Poller, summary

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results" / "peers.json"
PEERS = {"pacemaker": (pacemaker, pacemaker.Pacemaker), "keepalived": (keepalived, keepalived.Keepalived),
         "pacemaker_fence": (pacemaker, pacemaker.PacemakerFenced),
         "pacemaker_fence_tuned": (pacemaker, pacemaker.PacemakerFencedTuned)}
PR_SET_CHILD_SUBREAPER = 36
PARTITION_RUNS = 10  # issue 22: n = 10 for the partition (not with --quick)
MEASURES = {"kill_httpd": "from_fault", "freeze": "from_fault", "move": "gap", "power_cut": "from_fault",
            "hung": "from_fault", "partition": "from_fault"}
DESCRIPTIONS = {
    "kill_httpd": "SIGKILL of apache's main process on the owner -> first HTTP 200 from the other node",
    "freeze": "owner's cables cut (switch side) + every process of it SIGSTOPped -> first HTTP 200 "
              "from the other node",
    "move": "planned move (crm_resource --move): the longest time without an HTTP 200 answer until "
            "the new owner answers",
    "power_cut": "owner power cut (every process killed, cables out; its BMC reads off) -> first HTTP 200 "
                 "from the other node (after it fenced the owner: already off)",
    "hung": "owner hung: cables cut + every process SIGSTOPped, its BMC still on -> first HTTP 200 from the "
            "other node (after it fenced the owner through the BMC)",
    "partition": "live partition (the nodes cut from each other, both reaching the client and the BMCs) -> "
                 "one node fenced and the other answering 200; two_holders = samples with the VIP on both",
}


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "load_1min_at_start": round(os.getloadavg()[0], 2)}


def ensure_packages(module) -> str | None:
    """Install the peer's missing Debian packages; the reason it cannot run, or None."""
    if not module.check_installed():
        return None
    print(f"  installing {' '.join(module.PACKAGES)} (apt-get)", flush=True)
    proc = subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq",
                           *module.PACKAGES], capture_output=True, text=True,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    missing = module.check_installed()
    if missing:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return f"missing {', '.join(missing)} after apt-get install (exit {proc.returncode}: {' | '.join(tail)})"
    return None


def start(lab: PeerLab, peer) -> Poller:
    """A fresh lab with the peer running on both nodes and the client polling."""
    lab.down()
    lab.up()
    peer.up()
    poller = lab.start_poller()
    poller.wait_steady(120)
    return poller


def measure_peer(name: str, runs: int, footprint_window: float) -> dict:
    module, cls = PEERS[name]
    settings = cls.settings() if hasattr(cls, "settings") else module.SETTINGS
    record: dict = {"settings": settings, "config": module.config_files(), "blocked": None,
                    "scenarios": {}, "footprint": {},  # when: --only keeps the other peers' older records
                    "measured": {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                                 "load_1min_at_start": round(os.getloadavg()[0], 2)}}
    reason = ensure_packages(module)
    record["versions"] = module.versions()
    if reason:
        record["blocked"] = reason
        return record
    lab = PeerLab(bmcs=getattr(cls, "fencing", False))
    peer = cls(lab)
    step = f"building the lab and starting {name} on both nodes"
    try:
        t0 = time.monotonic()
        poller = start(lab, peer)
        record["startup_s"] = round(time.monotonic() - t0, 2)
        print(f"  {name} up in {record['startup_s']:.1f}s, the VIP answers from {poller.owner()}", flush=True)
        step = "measuring the footprint"
        for node in lab.nodes if getattr(peer, "measures_footprint", True) else ():
            record["footprint"][node] = lab.footprint(node, peer.daemon_processes_excluded(), footprint_window)
        rebuilt = False
        for scenario in peer.scenarios:
            entry = record["scenarios"][scenario] = {"description": DESCRIPTIONS[scenario],
                                                     "measure": MEASURES[scenario], "runs": [], "errors": []}
            for i in range(max(runs, PARTITION_RUNS) if scenario == "partition" and runs > 2 else runs):
                step = f"{scenario}, run {i + 1}"
                owner = poller.wait_steady(120)
                try:
                    result = getattr(peer, scenario)(poller, owner)
                except Blocked as e:  # no new owner: the trial failed, the cluster is restored below
                    entry["errors"].append(f"run {i + 1}: {e}")
                    print(f"  {name} {scenario} #{i + 1}: FAILED: {e}", flush=True)
                else:
                    entry["runs"].append(result)
                    extra = "".join(f", {k} {result[k]}" for k in ("fenced_at", "two_holders", "vip_samples")
                                    if k in result)
                    print(f"  {name} {scenario} #{i + 1}: {result[MEASURES[scenario]]:.3f}s "
                          f"({result['old']} -> {result['new']}, {result['failed_probes']} failed probes{extra})",
                          flush=True)
                try:
                    getattr(peer, f"restore_{scenario}")(owner)
                except Blocked as e:
                    if rebuilt:  # once is bad luck, twice is the peer
                        raise
                    rebuilt = True
                    entry["errors"].append(f"restoring after run {i + 1}: {e} (lab rebuilt)")
                    print(f"  {name}: restoring after {scenario} #{i + 1} failed ({e}); rebuilding the lab",
                          file=sys.stderr, flush=True)
                    step = f"rebuilding the lab after {scenario}, run {i + 1}"
                    poller = start(lab, peer)
            entry["seconds"] = [r[MEASURES[scenario]] for r in entry["runs"]]
            entry.update(summary(entry["seconds"]))
    except Blocked as e:
        record["blocked"] = f"{step}: {e}"
        print(f"  {name} BLOCKED while {step}: {e}", file=sys.stderr, flush=True)
    except Exception as e:  # anything else that stops the peer is recorded, not lost
        record["blocked"] = f"{step}: {type(e).__name__}: {e}"
        print(f"  {name} FAILED while {step}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    finally:
        lab.down()
    for entry in record["scenarios"].values():  # keep what a broken run measured
        if "seconds" not in entry:
            entry["seconds"] = [r[entry["measure"]] for r in entry["runs"]]
            entry.update(summary(entry["seconds"]))
            entry["errors"].append(record["blocked"])
    return record


def table(doc: dict) -> str:
    rows = [f"{'peer':<11} {'scenario':<11} {'n':>2} {'min':>7} {'median':>7} {'p95':>7} {'max':>7}"]
    for name, rec in doc["peers"].items():
        if rec.get("blocked"):
            rows.append(f"{name:<11} BLOCKED: {rec['blocked']}")
        for scenario, e in rec.get("scenarios", {}).items():
            if e.get("n"):
                rows.append(f"{name:<11} {scenario:<11} {e['n']:>2} {e['min']:>6.2f}s {e['median']:>6.2f}s "
                            f"{e['p95']:>6.2f}s {e['max']:>6.2f}s")
        for node, fp in rec.get("footprint", {}).items():
            rows.append(f"{name:<11} {node}: RSS {fp['rss_mb']:.1f} MB, PSS {fp['pss_mb']:.1f} MB, "
                        f"CPU {fp['cpu_pct']:.2f}% of a core at idle")
    return "\n".join(rows)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def reaping(work) -> int:
    """Run ``work()`` in a child process while this one, a child subreaper,
    reaps at once every process the lab orphans (apache's daemonized main
    process above all).  This machine's PID 1 reaps orphans late: a killed
    apache stayed a zombie for a second or two, and a zombie still passes
    the `kill -0` of keepalived's check and of the apache agent, which
    would add that delay to the peers' figures.  (systemd reaps at once.)"""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        return work()  # no subreaper: measure anyway
    child = os.fork()
    if child == 0:
        code = 1
        try:
            code = work()
        finally:
            os._exit(code)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the child gets Ctrl-C too and tears the lab down
    signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGTERM))
    code = 1
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return code
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            break
    try:  # whatever else has already ended; the lab is down, nothing of it is left running
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    return code


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 runs per scenario, 5 s footprint window")
    p.add_argument("--runs", type=int, default=None, help="runs per scenario (default 5; --quick 2)")
    p.add_argument("--only", choices=sorted(PEERS), help="measure one peer only")
    p.add_argument("--output", type=Path, default=RESULTS, help=f"JSON written (default {RESULTS})")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench/peers/run.py: run as root (it builds network namespaces)", file=sys.stderr)
        return 1
    if args.runs is not None and args.runs < 1:
        print("bench/peers/run.py: --runs must be at least 1", file=sys.stderr)
        return 2
    return reaping(lambda: bench(args))


def bench(args) -> int:
    runs = args.runs or (2 if args.quick else 5)
    window = 5.0 if args.quick else 20.0
    # Ctrl-C (even when started from a shell that ignores it) and SIGTERM unwind
    # through the `finally` that tears the lab down
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    doc = {"generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(), "quick": args.quick, "runs_per_scenario": runs,
           "method": {"poll_interval_s": POLL_INTERVAL, "probe_timeout_s": 0.5,
                      "figure": "seconds from the fault to the answer of the first probe sent after it "
                                "that the new owner answered 200 (move: the longest time without a 200)",
                      "scenarios": DESCRIPTIONS},
           "peers": {}}
    if args.output.exists():  # --only keeps the other peer's last figures
        try:
            doc["peers"] = json.loads(args.output.read_text()).get("peers", {}) if args.only else {}
        except ValueError:
            pass
    names = [args.only] if args.only else list(PEERS)
    print(f"peers bench: {doc['machine']['nproc']} CPUs ({doc['machine']['cpu']}), load "
          f"{doc['machine']['load_1min_at_start']}, {runs} runs per scenario", flush=True)
    started = time.monotonic()
    try:
        for name in names:
            print(f"{name}:", flush=True)
            doc["peers"][name] = measure_peer(name, runs, window)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(doc, indent=1) + "\n")
    except KeyboardInterrupt:
        print("interrupted: the lab was torn down; figures so far are not written", file=sys.stderr)
        return 130
    doc["duration_s"] = round(time.monotonic() - started, 1)
    args.output.write_text(json.dumps(doc, indent=1) + "\n")
    print(table(doc))
    print(f"written {args.output} in {doc['duration_s']:.0f}s")
    return 0 if not any(doc["peers"][n].get("blocked") for n in names) else 3


if __name__ == "__main__":
    sys.exit(main())
