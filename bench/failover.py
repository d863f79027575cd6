"""Failover time in the lab, per kind of failure.

For each scenario a fresh lab (prefix "bf") is built; each run injects the
fault on the node that serves the VIP and measures, from the fault:

* ``to_first_200``: the first HTTP 200 on the VIP from the expected node
  (the peer after a failover, the same node after a restart in place: then
  counted from the end of the stop, since apache's workers outlive a kill
  of its parent and answer until then), probed from the client namespace
  every 10 ms;
* ``gap``: the longest stretch without a 200 (a planned move's figure);
* ``failed_probes``: probes not answered 200 from the fault until the
  service was back (for the daemon kill: until the restarted daemon has
  settled; the goal there is none);
* ``timeline_total``: the end of the last step the daemons recorded;
* ``steps``: each step of the failover timeline from both nodes' history
  (failure seen, stop httpd, umount, VIP down, demote, promote, VIP up +
  GARP, mount, httpd answering), ``offset`` = seconds from the fault to
  the end of the step, ``duration`` = how long the step took.

``total`` (and the scenario's ``seconds``) is the figure a scenario is
judged by: ``gap`` for the move and the daemon kill, ``to_first_200`` for
the others.  Goals (issue 9) are checked on the median; where one is
missed, the median run's costliest segments are printed (a step's own
duration, or the wait before it began).

Between runs the cluster is brought back to health (cleanup, boot, thaw,
split brain resolved as an administrator would); a run that does not
recover within the timeout is recorded as failed, and the lab is rebuilt.

    .venv/bin/python bench/failover.py [--runs N] [--quick] [--only NAME,...]

Writes bench/results/failover.json (format: bench/results/README.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    OTHER,
    RESULTS,
    Poller,
    ctl,
    fmt,
    group_of,
    heal,
    healthy,
    machine,
    merged_records,
    need_root,
    powered_off,
    rebuild,
    stats,
    status,
    wait,
    write_json,
)
from hasupd.history import timelines  # noqa: E402
from hasupd_lab.cluster import NODES, Lab, LabError  # noqa: E402
from hasupd_lab.monitor import InvariantMonitor  # noqa: E402

TUNED = {"heartbeat.interval": "50ms", "heartbeat.deadtime": "300ms"}

# name: (what it is, overrides, fault, who must answer afterwards, goal (metric, limit) or None);
# the names are bench/report.py's scenario keys
SCENARIOS: dict[str, tuple[str, dict, str, str, tuple[str, float] | None]] = {
    "kill_httpd": ("httpd killed (kill -9), migration threshold 1: failover", {}, "kill-httpd", "peer",
                   ("to_first_200", 0.12)),
    "kill_httpd_restart": ("httpd killed (kill -9), migration threshold 3: restart in place",
                           {"groups.0.migration_threshold": 3}, "kill-httpd", "same", None),
    "crash": ("owner node crashed, default profile (interval 200ms, deadtime 2s)", {}, "crash",
              "peer", ("to_first_200", 2.5)),
    "crash_tuned": ("owner node crashed, tuned profile (interval 50ms, deadtime 300ms)", TUNED, "crash",
                    "peer", ("to_first_200", 0.5)),
    "freeze": ("owner node frozen (SIGSTOP + cables cut), default profile", {}, "freeze", "peer",
               ("to_first_200", 2.5)),
    "freeze_tuned": ("owner node frozen (SIGSTOP + cables cut), tuned profile", TUNED, "freeze", "peer",
                     ("to_first_200", 0.5)),
    "move": ("planned move (hasupctl move rg_web --wait): the gap without an answer", {}, "move", "peer",
             ("gap", 0.15)),
    "kill_daemon": ("hasupd killed on the owner, restarted 1 s later (systemd RestartSec=1s)", {},
                    "kill-daemon", "same", ("failed_probes", 0)),
    "crash_fenced_tuned": ("owner power cut, tuned profile, guard fence: its BMC reports it off (already fenced)",
                           TUNED, "crash", "peer", ("to_first_200", 0.5)),
    "freeze_fenced_tuned": ("owner hung (frozen), tuned profile, guard fence: fenced after the 2 s head start",
                            TUNED, "freeze", "peer", None),
    "partition_fenced_tuned": ("live partition (rings + DRBD link cut, both nodes alive), tuned profile, guard "
                               "fence: one node fenced, the other serving; two VIP holders never sampled",
                               TUNED, "partition", "either", ("two_vip_samples", 0)),
}
# scenarios run with a split-brain guard of the lab's (fence: fence_ipmilan against ipmi_sim BMCs)
GUARD = {"crash_fenced_tuned": "fence", "freeze_fenced_tuned": "fence", "partition_fenced_tuned": "fence"}
PARTITION_HOLD = 2.0  # s the invariants are still watched after the survivor answers
PARTITION_RUNS = 10  # issue 22: n = 10 for the partition
# the figure a scenario is judged by ("seconds" in failover.json)
HEADLINE = {"move": "gap", "kill_daemon": "gap"}

# timeline step -> the benchmark's step name (others, bookkeeping, are left out)
STEP_NAMES = {
    "stop res_httpd": "stop httpd",
    "stop res_filesystem": "umount",
    "stop res_vip": "VIP down",
    "demote r0": "demote",
    "promote r0": "promote",
    "start res_vip": "VIP up + GARP",
    "start res_filesystem": "mount",
    "start res_httpd": "httpd answering",
}
STEP_ORDER = ["failure seen", "power status", "fence started", "fenced", "daemon restarted", "stop httpd", "umount", "VIP down", "demote", "promote",
              "VIP up + GARP", "mount", "httpd answering", "first HTTP 200"]


def canonical(step: str) -> str | None:
    if step.startswith(("failure seen", "peer lost", "stop failed")):
        return "failure seen"
    return STEP_NAMES.get(step)


def steps_of(records: list[dict], t0: float, until: float, detector: str | None = None) -> list[dict]:
    """First occurrence after the fault of each step: offset = seconds from
    the fault to the end of the step (bench/report.py's convention).
    ``detector``: the node whose "failure seen" counts (the survivor, when
    the owner dies: what the dying node saw itself does not matter)."""
    found: dict[str, dict] = {}
    for tl in timelines(records):
        base = tl.get("start_wall") or 0.0
        for s in tl["steps"]:
            name = canonical(s["step"])
            begin = base + s["offset"]
            if name is None or name in found or not (t0 - 0.05 <= begin <= until):
                continue
            if name == "failure seen" and detector and s["node"] != detector:
                continue
            found[name] = {"step": name, "offset": round(begin + s["duration"] - t0, 4),
                           "duration": s["duration"], "node": s["node"], "ok": s["ok"]}
    for r in records:  # fencing: the devices' power answer, a fence's end
        wall = r.get("wall", 0)
        if not t0 <= wall <= until:
            continue
        if r.get("kind") == "observation" and r.get("state") == "peer_power" and "power status" not in found:
            found["power status"] = {"step": "power status", "offset": round(wall - t0, 4), "duration": 0.0,
                                     "node": r.get("node"), "ok": "powered off" in (r.get("reason") or "")}
        if r.get("kind") == "fence-start" and "fence started" not in found:  # the head start ends here
            found["fence started"] = {"step": "fence started", "offset": round(wall - t0, 4), "duration": 0.0,
                                      "node": r.get("node"), "ok": True}
        if r.get("kind") == "fence" and "fenced" not in found:
            found["fenced"] = {"step": "fenced", "offset": round(wall - t0, 4),
                               "duration": r.get("duration") or 0.0, "node": r.get("node"), "ok": bool(r.get("ok"))}
    for r in records:  # a restarted daemon's first record
        if r.get("kind") == "start" and "daemon restarted" not in found and t0 <= r.get("wall", 0) <= until:
            found["daemon restarted"] = {"step": "daemon restarted", "offset": round(r["wall"] - t0, 4),
                                         "duration": 0.0, "node": r.get("node"), "ok": True}
    return sorted(found.values(), key=lambda s: s["offset"])


def running_on(st: dict | None, node: str) -> bool:
    """Every resource of rg_web started on NODE, as NODE itself sees it
    (the group's "node" field can lag behind after the peer died)."""
    g = group_of(st)
    return bool(g) and all(r["states"].get(node) == "started" for r in g["resources"])


class Bench:
    def __init__(self, name: str, runs: int, prefix: str = "bf", log=print):
        self.name = name
        self.what, self.overrides, self.fault, self.expect, self.goal = SCENARIOS[name]
        self.runs = runs
        self.lab = Lab(prefix)
        self.log = log
        self.results: list[dict] = []

    def run_all(self) -> list[dict]:
        if self.lab.meta_path.exists():
            self.lab.down()  # a leftover of an interrupted run
        self.lab.up(self.overrides, guard=GUARD.get(self.name))
        poller = Poller(self.lab).start()
        try:
            owner = wait(lambda: healthy(self.lab), 90, 0.5)
            for i in range(self.runs):
                if not owner:
                    self.log("    the cluster is not healthy: rebuilding the lab")
                    poller.stop()
                    owner = rebuild(self.lab, self.overrides)
                    poller = Poller(self.lab).start()
                    if not owner:
                        self.results.append({"ok": False, "error": "lab did not become healthy"})
                        continue
                res = self.one_run(poller, owner)
                res["run"] = i + 1
                if res.get("ok"):
                    res["total"] = res[HEADLINE.get(self.name, "to_first_200")]
                self.results.append(res)
                self.log("    run %d: %s" % (i + 1, describe(res)))
                owner = self.recover(res)
        finally:
            poller.stop()
            self.lab.down()
        return self.results

    def one_run(self, poller: Poller, owner: str) -> dict:
        if self.fault == "partition":
            return self.partition_run(poller, owner)
        lab = self.lab
        target = OTHER[owner] if self.expect == "peer" else owner
        if poller.wait_ok(time.time(), owner, 10) is None:
            return {"ok": False, "owner": owner, "error": "the VIP did not answer before the fault"}
        time.sleep(0.3)
        t0 = time.time()
        restarted = None
        if self.fault == "move":
            proc = ctl(lab, owner, "move", "rg_web", "--wait", "--timeout", "60", timeout=90)
            if proc.returncode != 0:
                return {"ok": False, "owner": owner, "error": f"move: {proc.stdout}{proc.stderr}".strip()}
        else:
            lab.fault(owner, self.fault)
        if self.fault == "kill-daemon":
            time.sleep(1.0)  # systemd: Restart=on-failure, RestartSec=1s
            restarted = time.time()
            lab.start_daemon(owner)
        t_ok = poller.wait_ok(t0, target, 60)
        if t_ok is None:
            return {"ok": False, "owner": owner, "target": target, "fault_wall": t0,
                    "error": f"no HTTP 200 from {target} within 60 s"}
        # let the daemons finish and record the whole timeline
        settled = wait(lambda: running_on(status(lab, target), target), 30, 0.2)
        if self.fault == "kill-daemon":
            # the restarted daemon must have adopted the group; watch a while longer
            wait(lambda: (st := status(lab, owner)) and st["hasupd"]["pid"] == lab.daemon_pid(owner)
                 and running_on(st, owner), 30, 0.2)
            time.sleep(2.0)
        else:
            time.sleep(0.5)
        until = time.time()
        records = merged_records(lab, t0 - 1)
        steps = steps_of(records, t0, until, target if self.fault in ("crash", "freeze") else None)
        if self.fault == "kill-httpd" and self.expect == "same":
            # apache's workers outlive a kill -9 of its parent and keep answering
            # until the daemon stops the group: count from the end of that stop
            stop = next((s for s in steps if s["step"] == "stop httpd"), None)
            if stop is None:
                return {"ok": False, "owner": owner, "target": target, "fault_wall": t0,
                        "error": "no stop of httpd in the history", "steps": steps}
            t_ok = poller.wait_ok(t0 + stop["offset"], target, 30)
            if t_ok is None:
                return {"ok": False, "owner": owner, "target": target, "fault_wall": t0,
                        "error": "no HTTP 200 after httpd was restarted", "steps": steps}
        to_first = t_ok - t0
        steps.append({"step": "first HTTP 200", "offset": round(to_first, 4), "duration": 0.0, "node": target,
                      "ok": True})
        ends = [s["offset"] for s in steps if s["step"] != "first HTTP 200"]
        window_end = until if self.fault == "kill-daemon" else t_ok
        return {"ok": True, "owner": owner, "target": target, "fault_wall": round(t0, 4),
                "to_first_200": round(to_first, 4),
                "timeline_total": round(max(ends), 4) if ends else round(to_first, 4),
                "failed_probes": poller.failed(t0, window_end),
                "probes": len(poller.since(t0, window_end)),
                "gap": round(poller.longest_gap(t0, window_end), 4),
                "restart_offset": round(restarted - t0, 4) if restarted else None,
                "settled": bool(settled),
                "steps": steps}

    def partition_run(self, poller: Poller, owner: str) -> dict:
        """A live partition: from the cut until one node is powered off (fenced)
        and the other answers 200 (``to_first_200``: the time to a single owner
        serving), the lab's invariant monitor sampling VIP holders, DRBD
        Primaries and mounts throughout and PARTITION_HOLD s after."""
        lab = self.lab
        if poller.wait_ok(time.time(), owner, 10) is None:
            return {"ok": False, "owner": owner, "error": "the VIP did not answer before the fault"}
        mon = InvariantMonitor(lab).start()
        try:
            time.sleep(0.3)
            t0 = time.time()
            lab.fault(owner, "partition")
            off = wait(lambda: next((n for n in NODES if powered_off(lab, n)), None), 60, 0.01)
            off_at = time.time()
            if not off:
                return {"ok": False, "owner": owner, "fault_wall": t0, "error": "no node fenced within 60 s"}
            target = OTHER[off]
            t_ok = poller.wait_ok(off_at, target, 60)
            time.sleep(PARTITION_HOLD)
        finally:
            report = mon.stop()
        until = time.time()
        still_on = [n for n in NODES if not powered_off(lab, n)]
        steps = steps_of(merged_records(lab, t0 - 1), t0, until)
        base = {"owner": owner, "target": target, "fenced": off, "still_on": still_on, "fault_wall": round(t0, 4),
                "fenced_at": round(off_at - t0, 4), "samples": report.samples,
                "two_vip_samples": sum(1 for v in report.violations if "VIP holders" in v),
                "two_primary_samples": sum(1 for v in report.violations if "DRBD primaries" in v),
                "two_mount_samples": sum(1 for v in report.violations if "mounts" in v),
                "violations": report.violations[:5], "steps": steps}
        if t_ok is None:
            return {"ok": False, **base, "error": f"no HTTP 200 from {target} within 60 s of the fence"}
        steps.append({"step": "first HTTP 200", "offset": round(t_ok - t0, 4), "duration": 0.0, "node": target,
                      "ok": True})
        return {"ok": True, **base, "to_first_200": round(t_ok - t0, 4),
                "timeline_total": round(max(s["offset"] for s in steps), 4),
                "failed_probes": poller.failed(t0, t_ok), "probes": len(poller.since(t0, t_ok)),
                "gap": round(poller.longest_gap(t0, t_ok), 4), "restart_offset": None, "settled": True}

    def recover(self, res: dict) -> str:
        owner = res.get("owner")
        if self.fault == "partition":
            self.lab.fault(owner or NODES[0], "heal")
            off = {n for n in NODES if powered_off(self.lab, n)}
            try:
                return heal(self.lab, crashed=off, timeout=120, log=self.log)
            except LabError as e:
                self.log(f"    heal failed: {e}")
                return ""
        frozen = {owner} if self.fault == "freeze" and owner else set()
        crashed = {owner} if self.fault == "crash" and owner else set()
        try:
            got = heal(self.lab, frozen, crashed, timeout=120, log=self.log)
        except LabError as e:
            self.log(f"    heal failed: {e}")
            got = ""
        return got


def describe(res: dict) -> str:
    if not res.get("ok"):
        return "FAILED: " + res.get("error", "?")
    steps = ", ".join(f"{s['step']} +{s['offset']:.3f}" for s in res["steps"])
    if "two_vip_samples" in res:
        steps += (f"; {res['fenced']} fenced at +{res['fenced_at']:.3f}, two VIP holders "
                  f"{res['two_vip_samples']}/{res['samples']} samples, two Primaries {res['two_primary_samples']}")
    return (f"{res['owner']}->{res['target']} first 200 after {res['to_first_200']:.3f}s, timeline "
            f"{res['timeline_total']:.3f}s, gap {res['gap']:.3f}s, failed probes {res['failed_probes']}/{res['probes']}"
            f"  [{steps}]")


def summarize(name: str, runs: list[dict]) -> dict:
    ok = [r for r in runs if r.get("ok")]
    headline = HEADLINE.get(name, "to_first_200")
    seconds = [r["total"] for r in ok]
    out = {"description": SCENARIOS[name][0], "measure": headline, "seconds": seconds, **stats(seconds),
           "runs": runs, "failed_runs": len(runs) - len(ok),
           "stats": stats(seconds),
           "to_first_200_stats": stats([r["to_first_200"] for r in ok]),
           "timeline_total_stats": stats([r["timeline_total"] for r in ok]),
           "gap_stats": stats([r["gap"] for r in ok]),
           "failed_probes_stats": stats([r["failed_probes"] for r in ok])}
    step_stats = {}
    for step in STEP_ORDER:
        offs = [s["offset"] for r in ok for s in r["steps"] if s["step"] == step]
        durs = [s["duration"] for r in ok for s in r["steps"] if s["step"] == step]
        if offs:
            step_stats[step] = {"offset": stats(offs), "duration": stats(durs)}
    out["steps"] = {step: ss["offset"] for step, ss in step_stats.items()}  # done at, from the fault
    out["step_stats"] = step_stats
    goal = SCENARIOS[name][4]
    if goal:
        metric, limit = goal
        if metric.startswith("two_"):  # a safety count: every sample of every run, failed runs included
            value = sum(r.get(metric, 0) for r in runs)
            out["goal"] = {"metric": metric, "limit": limit, "total": value, "met": value <= limit and not
                           out["failed_runs"]}
        else:
            value = stats([r[metric] for r in ok])["median"] if ok else None
            out["goal"] = {"metric": metric, "limit": limit, "median": value,
                           "met": value is not None and value <= limit}
    return out


def costliest(run: dict) -> list[tuple[str, float]]:
    """Where a run's time went: each step's duration and the wait before it
    began (after the previous step ended), largest first."""
    segs = []
    prev_end = 0.0
    for s in sorted(run["steps"], key=lambda s: s["offset"] - s["duration"]):
        begin = s["offset"] - s["duration"]
        if begin - prev_end > 0.001:
            segs.append((f"waiting before '{s['step']}'", begin - prev_end))
        if s["duration"] > 0.001:
            segs.append((f"'{s['step']}' itself", s["duration"]))
        prev_end = max(prev_end, s["offset"])
    return sorted(segs, key=lambda s: -s[1])


def print_summary(name: str, s: dict) -> None:
    st = s["stats"]
    print(f"\n== {name}: {s['description']}")
    print(f"   {s['measure']}: min {fmt(st['min'])}  median {fmt(st['median'])}  p95 {fmt(st['p95'])}  "
          f"max {fmt(st['max'])}  (n={st['n']}, failed runs {s['failed_runs']})")
    ft, tt, gp, fp = (s["to_first_200_stats"], s["timeline_total_stats"], s["gap_stats"],
                      s["failed_probes_stats"])
    print(f"   first 200: median {fmt(ft['median'])}  max {fmt(ft['max'])};  timeline: median {fmt(tt['median'])}"
          f"  max {fmt(tt['max'])};  longest gap: median {fmt(gp['median'])}  max {fmt(gp['max'])};  "
          f"failed probes: median {fp['median']}  max {fp['max']}")
    for step, ss in s["step_stats"].items():
        o, d = ss["offset"], ss["duration"]
        print(f"   {step:<17} done at +{fmt(o['median'])} (min {fmt(o['min'])}, p95 {fmt(o['p95'])}, max "
              f"{fmt(o['max'])})  took {fmt(d['median'])} (max {fmt(d['max'])})")
    goal = s.get("goal")
    if goal:
        verdict = "met" if goal["met"] else "MISSED"
        value = f"total {goal['total']}" if "total" in goal else f"median {goal['median']}"
        print(f"   goal {goal['metric']} <= {goal['limit']}: {value} -> {verdict}")
        ok = [r for r in s["runs"] if r.get("ok")]
        if not goal["met"] and ok and "median" in goal:
            median_run = sorted(ok, key=lambda r: r[goal["metric"]])[len(ok) // 2]
            segs = costliest(median_run)[:3]
            print("   where the time goes (median run): " +
                  "; ".join(f"{name} {dt:.3f}s" for name, dt in segs))
            s["goal"]["costliest"] = [{"segment": n, "seconds": round(dt, 4)} for n, dt in segs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per scenario (the partition: at least 10)")
    ap.add_argument("--quick", action="store_true", help="2 runs per scenario")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--prefix", default="bf")
    ap.add_argument("--output", default="failover.json", help="the scenarios without a guard")
    ap.add_argument("--fencing-output", default="failover-fencing.json", help="the scenarios with guard fence")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other scenarios of the existing outputs (each says when it was measured)")
    args = ap.parse_args(argv)
    need_root()
    runs = 2 if args.quick else args.runs
    runs_of = {name: max(runs, PARTITION_RUNS) if SCENARIOS[name][2] == "partition" and not args.quick else runs
               for name in SCENARIOS}
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"failover.py: unknown scenario(s) {', '.join(unknown)} (known: {', '.join(SCENARIOS)})",
              file=sys.stderr)
        return 2
    mach = machine()
    measured: dict[str, dict] = {}
    started = time.monotonic()
    for name in names:
        print(f"-- {name}: {SCENARIOS[name][0]} ({runs_of[name]} runs)", flush=True)
        t = time.monotonic()
        runs_out = Bench(name, runs_of[name], args.prefix).run_all()
        measured[name] = {**summarize(name, runs_out), "measured": mach["date"], "commit": mach["commit"]}
        print(f"   ({time.monotonic() - t:.0f}s)", flush=True)
    for name in names:
        print_summary(name, measured[name])
    elapsed = round(time.monotonic() - started, 1)
    # two files, so that the fencing rows and the others can be measured (and merged) apart
    for output, fenced in ((args.output, False), (args.fencing_output, True)):
        mine = {k: v for k, v in measured.items() if (k in GUARD) == fenced}
        scenarios = {}
        if args.merge:
            try:
                scenarios = json.loads((RESULTS / output).read_text()).get("scenarios", {})
            except (OSError, ValueError):
                pass
            scenarios = {k: v for k, v in scenarios.items() if k in SCENARIOS and (k in GUARD) == fenced}
        if not mine:
            continue
        scenarios.update(mine)
        result = {"generated": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), "machine": mach,
                  "runs_per_scenario": runs, "probe_interval_s": 0.01, "elapsed_s": elapsed,
                  "scenarios": scenarios}
        path = write_json(output, result)
        print(f"\nwrote {path} ({elapsed:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
