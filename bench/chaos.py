"""Chaos: random fault schedules against a lab, invariants checked throughout.

Each schedule is 1 to 3 faults drawn at random (kill httpd or the daemon on
either node, freeze or crash a node, cut a ring, packet loss, a detached
disk, an operator's move; with --guard also a partition of the two live
nodes, of their rings only, or a BMC unplugged), each held a random time and then healed (thaw,
boot, daemon restarted as systemd would, ring healed, loss cleared), with
random pauses in between so faults also land in the middle of a failover.
After the schedule the cluster must come back to health on its own plus
what an administrator does (cleanup; a DRBD split brain resolved with
--discard-my-data on the node that lost).  hasupd_lab.monitor's invariant
monitor runs the whole time: two VIP holders, two DRBD Primaries or two
mounts at any sample is a violation, and so is a DRBD split brain (seen in
either node's kernel log, or generations that diverged): counted per
schedule (``split_brains``), with what the harness did about it
(``split_brains_resolved``) and both nodes' logs around it.

Prints availability (share of the 20 ms HTTP probes answered 200),
failovers (changes of the node answering), the slowest failover (longest
time without an answer), violations, and exits 1 on any violation or any
schedule after which the cluster did not recover.

    .venv/bin/python bench/chaos.py [--runs N] [--seed S] [--quick] [--guard fence]

Writes bench/results/chaos.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    boot,
    ctl,
    curl_node,
    heal,
    healthy,
    machine,
    need_root,
    rebuild,
    wait,
    write_json,
)
from hasupd_lab.cluster import NODES, Lab, LabError  # noqa: E402
from hasupd_lab.monitor import InvariantMonitor  # noqa: E402

# fault kind -> weight
FAULTS = {"kill-httpd": 4, "kill-daemon": 3, "freeze": 3, "crash": 3, "cut-ring": 2, "loss": 2,
          "move": 2, "detach-disk": 1}
# with --guard (a lab with BMCs) the mix also partitions two live nodes; the
# reference configuration's guard (none) is there to be run on purpose only
PARTITION_FAULTS = {"partition": 3, "partition-rings": 2, "bmc-down": 2}
# the lab's split-brain guards (--guard); fence and drbd+fence fence through the BMCs
GUARDS = ("none", "ping", "drbd", "fence", "drbd+fence")


class Chaos:
    def __init__(self, prefix: str = "bc", seed: int = 1, overrides: dict | None = None, log=print,
                 guard: str | None = None):
        self.lab = Lab(prefix)
        self.guard = guard
        self.faults = {**FAULTS, **PARTITION_FAULTS} if guard else dict(FAULTS)
        self.rng = random.Random(seed)
        self.seed = seed
        self.overrides = overrides or {}
        self.log = log
        self.schedules: list[dict] = []

    # ------------------------------------------------------------ one fault

    def pick(self, owner: str) -> tuple[str, str, list[str]]:
        kinds = list(self.faults)
        kind = self.rng.choices(kinds, weights=[self.faults[k] for k in kinds])[0]
        # the owner is hit more often: that is where faults cost something
        node = owner if owner and self.rng.random() < 0.7 else self.rng.choice(NODES)
        args: list[str] = []
        if kind == "cut-ring":
            args = [str(self.rng.randrange(2))]
        elif kind == "loss":
            args = [str(self.rng.choice((10, 20, 30, 50))), str(self.rng.randrange(2))]
        return kind, node, args

    def inject(self, mon: InvariantMonitor, kind: str, node: str, args: list[str], hold: float) -> str:
        """Inject, hold, heal; returns what happened (or why it was skipped)."""
        lab = self.lab
        if kind == "kill-httpd":
            if lab.httpd_pid(node) is None:
                return "skipped: httpd does not run there"
            lab.fault(node, kind)
            time.sleep(hold)
            return "done"
        if kind == "kill-daemon":
            if lab.daemon_pid(node) is None:
                return "skipped: hasupd does not run there"
            lab.fault(node, kind)
            time.sleep(min(hold, 3.0))
            lab.start_daemon(node)  # systemd: Restart=on-failure
            return "done, restarted"
        if kind == "freeze":
            if lab.daemon_pid(node) is None:
                return "skipped: the node is down"
            mon.note_fault(node, "freeze")
            lab.fault(node, "freeze")
            time.sleep(hold)
            lab.fault(node, "thaw")
            mon.note_fault(node, "thaw")
            return "done, thawed"
        if kind == "crash":
            if lab.daemon_pid(node) is None:
                return "skipped: the node is down"
            mon.note_fault(node, "crash")
            lab.fault(node, "crash")
            time.sleep(hold)
            boot(lab, node)
            mon.note_fault(node, "boot")
            return "done, booted"
        if kind == "cut-ring":
            lab.fault(node, "cut-ring", *args)
            time.sleep(hold)
            lab.fault(node, "heal-ring", *args)
            return "done, healed"
        if kind == "loss":
            lab.fault(node, "loss", *args)
            time.sleep(hold)
            lab.fault(node, "loss", "0", args[1])
            return "done, cleared"
        if kind == "move":
            live = [n for n in NODES if lab.daemon_pid(n)]
            if not live:
                return "skipped: no daemon runs"
            proc = ctl(lab, live[0], "move", "rg_web", timeout=30)
            time.sleep(hold)
            return "done" if proc.returncode == 0 else f"refused: {(proc.stdout + proc.stderr).strip()[:120]}"
        if kind in ("partition", "partition-rings"):
            lab.fault(node, kind)
            time.sleep(hold)
            lab.fault(node, "heal")
            return "done, healed" + self._power_on_fenced(mon)
        if kind == "bmc-down":
            lab.fault(node, "bmc-down")
            time.sleep(hold)
            lab.fault(node, "bmc-up")
            return "done, plugged back"
        if kind == "detach-disk":
            lab.fault(node, "detach-disk")
            self.needs_rebuild = True  # nothing re-attaches a deleted loop device
            time.sleep(hold)
            return "done (lab rebuilt afterwards)"
        raise LabError(f"unknown fault {kind}")

    def _power_on_fenced(self, mon: InvariantMonitor) -> str:
        """An operator powers on a node its peer fenced (it stays off)."""
        self.lab.reload()
        off = [n for n in NODES if not self.lab.alive(self.lab.meta.get("holders", {}).get(n, 0) or 0)]
        for node in off:
            mon.note_fault(node, "crash")
            boot(self.lab, node)
            mon.note_fault(node, "boot")
        return f", powered on fenced {', '.join(off)}" if off else ""

    # ------------------------------------------------------------ one schedule

    def schedule(self, index: int) -> dict:
        lab = self.lab
        owner = healthy(lab)
        if not owner:
            owner = rebuild(lab, self.overrides)
        self.needs_rebuild = False
        mon = InvariantMonitor(lab).start()
        t_start = time.time()
        steps = []
        resolved: list[str] = []
        try:
            time.sleep(0.5)
            for _ in range(self.rng.randint(1, 3)):
                kind, node, args = self.pick(curl_node(lab) or owner)
                hold = round(self.rng.uniform(0.2, 6.0), 2)
                t = time.time()
                try:
                    what = self.inject(mon, kind, node, args, hold)
                except LabError as e:
                    what = f"lab error: {e}"
                steps.append({"at": round(t - t_start, 2), "fault": kind, "node": node, "args": args,
                              "hold": hold, "result": what})
                time.sleep(round(self.rng.uniform(0.0, 3.0), 2))
            if self.needs_rebuild:
                # let the cluster react to the lost disk before the lab goes
                # (nothing re-attaches it: the lab is rebuilt afterwards)
                recovered_owner = wait(lambda: curl_node(lab), 30, 0.5) or ""
            else:
                recovered_owner = heal(lab, timeout=120, log=self.log, resolved_split_brains=resolved)
            t_end = time.time()
            time.sleep(mon.thaw_grace + 0.5)  # a thawed node's grace ends inside the watch
            served_at_end = curl_node(lab)
        finally:
            report = mon.stop()
        probes = [p for p in report.probes if t_start <= p[0]]
        answered = [p for p in probes if p[1] == 200]
        failovers = sum(1 for a, b in zip(answered, answered[1:]) if a[2] != b[2])
        outage, last, outages = 0.0, t_start, []
        for wall, code, _ in probes + [(probes[-1][0] if probes else t_start, 200, "")]:
            # (the sentinel closes an outage still running when the watch ended)
            if code == 200:
                if wall - last > 0.1:
                    outages.append([round(last - t_start, 2), round(wall - last, 2)])
                outage = max(outage, wall - last)
                last = wall
        result = {"schedule": index + 1, "steps": steps, "seconds": round(t_end - t_start, 1),
                  "probes": len(probes), "answered": len(answered),
                  "availability": round(len(answered) / len(probes), 4) if probes else 0.0,
                  "failovers": failovers, "longest_outage_s": round(outage, 3),
                  "outages": outages,  # [seconds after the schedule began, length] of each > 0.1 s
                  "violations": report.violations, "samples": report.samples,
                  "split_brains": report.split_brain_count(), "split_brain_lines": report.split_brains,
                  "split_brains_resolved": resolved,
                  "recovered": bool(recovered_owner) or self.needs_rebuild,
                  "disk_detached": self.needs_rebuild,
                  "served_at_end": served_at_end}
        if not result["recovered"] or report.split_brains:
            result["log_tail"] = {n: (lab.node_dir(n) / "hasupd.log").read_text(errors="replace")
                                  .splitlines()[-30:] for n in NODES if (lab.node_dir(n) / "hasupd.log").exists()}
            result["drbd_log_tail"] = {n: kern_log(lab, n)[-25:] for n in NODES}
        if self.needs_rebuild or not result["recovered"]:
            rebuild(lab, self.overrides)
        return result

    def run(self, runs: int) -> dict:
        if self.lab.meta_path.exists():
            self.lab.down()
        self.lab.up(self.overrides, guard=self.guard)
        started = time.monotonic()
        try:
            wait(lambda: healthy(self.lab), 90, 0.5)
            for i in range(runs):
                res = self.schedule(i)
                self.schedules.append(res)
                faults = "; ".join(f"@{s['at']}s {s['fault']}{' ' + ' '.join(s['args']) if s['args'] else ''} "
                                   f"on {s['node']} {s['hold']}s ({s['result']})" for s in res["steps"])
                flag = "" if res["recovered"] and not res["violations"] else "  <-- " + (
                    "VIOLATION" if res["violations"] else "NOT RECOVERED")
                self.log(f"  #{i + 1:>2} avail {res['availability']:.1%} failovers {res['failovers']} "
                         f"outage {res['longest_outage_s']:.2f}s violations {len(res['violations'])}: {faults}{flag}")
                if res["outages"]:
                    self.log("      outages (at, s): " + ", ".join(f"@{a}:{d}" for a, d in res["outages"]))
                for v in res["violations"][:5]:
                    self.log(f"      {v}")
            served_at_end = curl_node(self.lab)
        finally:
            self.lab.down()
        return summarize(self.schedules, self.seed, served_at_end, time.monotonic() - started)


def kern_log(lab: Lab, node: str) -> list[str]:
    """The node's simulated DRBD kernel log (handshakes, new generations, split brains)."""
    status_path = lab.meta.get("drbd", {}).get(node, {}).get("status_path")
    try:
        return (Path(status_path).with_name("kern.log").read_text(errors="replace").splitlines()
                if status_path else [])
    except OSError:
        return []


def summarize(schedules: list[dict], seed: int, served_at_end: str, elapsed: float) -> dict:
    probes = sum(s["probes"] for s in schedules)
    answered = sum(s["answered"] for s in schedules)
    slowest = max(schedules, key=lambda s: s["longest_outage_s"], default=None)
    return {"machine": machine(), "seed": seed, "runs": len(schedules),
            "availability": round(answered / probes, 4) if probes else 0.0,
            "probes": probes, "failovers": sum(s["failovers"] for s in schedules),
            "slowest_failover_s": slowest["longest_outage_s"] if slowest else None,
            "slowest_failover_schedule": slowest["schedule"] if slowest else None,
            "violations": sum(len(s["violations"]) for s in schedules),
            "split_brains": sum(s["split_brains"] for s in schedules),
            "split_brain_schedules": [s["schedule"] for s in schedules if s["split_brains"]],
            "split_brains_resolved": sum(len(s["split_brains_resolved"]) for s in schedules),
            "not_recovered": sum(1 for s in schedules if not s["recovered"]),
            "served_at_end": served_at_end, "elapsed_s": round(elapsed, 1), "schedules": schedules}


def print_summary(s: dict) -> None:
    print(f"\nchaos: {s['runs']} schedules, seed {s['seed']}, guard {s.get('guard') or 'default'}, "
          f"{s['elapsed_s']:.0f}s")
    print(f"  availability     {s['availability']:.2%} of {s['probes']} HTTP probes (every 20 ms)")
    print(f"  failovers        {s['failovers']}")
    print(f"  slowest failover {s['slowest_failover_s']}s (schedule {s['slowest_failover_schedule']})")
    print(f"  violations       {s['violations']}")
    print(f"  split brains     {s['split_brains']} (schedules {s['split_brain_schedules'] or 'none'}; "
          f"{s['split_brains_resolved']} resolved by the harness with --discard-my-data)")
    print(f"  not recovered    {s['not_recovered']}")
    print(f"  served at end    {s['served_at_end'] or 'NO'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="3 schedules")
    ap.add_argument("--prefix", default="bc")
    ap.add_argument("--output", default="chaos.json")
    ap.add_argument("--guard", choices=GUARDS, default=None,
                    help="the lab's split-brain guard (default: the reference configuration's)")
    args = ap.parse_args(argv)
    need_root()
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    runs = 3 if args.quick else args.runs
    print(f"chaos: {runs} schedules, seed {seed}", flush=True)
    summary = Chaos(args.prefix, seed, log=lambda m: print(m, flush=True), guard=args.guard).run(runs)
    summary["guard"] = args.guard
    print_summary(summary)
    path = write_json(args.output, summary)
    print(f"wrote {path}")
    return 1 if summary["violations"] or summary["split_brains"] or summary["not_recovered"] \
        or not summary["served_at_end"] else 0


if __name__ == "__main__":
    sys.exit(main())
