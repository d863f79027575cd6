#!/usr/bin/env python3
"""bench/results/*.json -> bench/results/report.md with PNG plots.

    .venv/bin/python bench/report.py [--results DIR]

Reads whatever exists of the files below (each is optional; the report says
which are missing) and writes report.md, failover.png (failover time per
scenario, hasupd and its peers side by side, box plots), timeline.png (one
failover of hasupd, step by step) and footprint.png (RSS / CPU / detection
time against the number of resource groups).  Needs matplotlib (the
``bench`` extra: ``pip install -e '.[bench]'``).  Every key is optional:
missing ones leave a gap in the report, never a traceback.

Input formats (seconds are floats; "summary" = n, min, median, p95, max,
which the report recomputes from the lists when absent):

failover.json (bench/failover.py, hasupd)::

    {"generated": "2026-11-24T20:00:00+00:00",
     "machine": {"nproc": 2, "cpu": "AMD EPYC", "kernel": "6.18.44"},
     "scenarios": {
       "kill_httpd": {                      # scenario keys: see SCENARIOS below
         "description": "...",              # optional, one line
         "seconds": [0.31, 0.35],           # fault -> first HTTP 200 from the new owner
                                            # (move: the gap without a 200); if absent,
                                            # taken from runs[].total
         "median": 0.33, "min": ..., "p95": ..., "max": ...,      # optional
         "runs": [{"total": 0.31,           # same figure as seconds[i]
                   "failed_probes": 12,     # optional
                   "steps": [{"step": "failure seen", "offset": 0.004, "duration": 0.004},
                             {"step": "VIP up + GARP", "offset": 0.21, "duration": 0.02}]}],
                                            # offset: seconds from the fault to the end of
                                            # the step; duration: how long the step took
         "steps": {"failure seen": {"median": 0.004, "max": 0.01}}  # optional
       }}}

footprint.json (bench/footprint.py, hasupd)::

    {"machine": {...},
     "idle": {"rss_mb": 28.5, "cpu_pct": 0.21, "heartbeat_pps": 10.0, "heartbeat_bps": 4100},
     "sizes": [{"groups": 1, "rss_mb": 28.5, "cpu_pct": 0.21, "detect_ms": 4.1},
               {"groups": 10, ...}, {"groups": 50, ...}]}

chaos.json (bench/chaos.py, optional): runs, seed, availability (0..1),
failovers, slowest_failover_s, violations (count), split_brains (count, also
among the violations), split_brains_resolved, not_recovered.

peers.json (bench/peers/run.py): per peer, the same scenario entries
(``seconds`` + summary + ``runs``), ``footprint`` per node (rss_mb, pss_mb,
cpu_pct), ``blocked`` (why the peer could not run, or null).

heartbeat.json (optional)::

    {"detection": {"default": {"interval_s": 0.2, "deadtime_s": 2.0, "seconds": [...]},
                   "tuned": {...}},
     "cpu_pct": 0.02}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = {  # key -> label; peers run kill_httpd, freeze and move
    "kill_httpd": "httpd kill -9",
    "kill_httpd_restart": "httpd kill -9, restart in place (threshold 3)",
    "crash": "node crash",
    "crash_tuned": "node crash, tuned heartbeat",
    "freeze": "node death (freeze + cables cut)",
    "freeze_tuned": "node death, tuned heartbeat",
    "move": "planned move (gap)",
    "kill_daemon": "daemon killed on the owner",
}
GOALS = {  # hasupd's targets, seconds (issue 9's; kill -9, move and the fenced power cut: issue 22's)
    "kill_httpd": 0.12, "crash": 2.5, "crash_tuned": 0.5, "freeze": 2.5, "freeze_tuned": 0.5, "move": 0.15,
    "crash_fenced_tuned": 0.5,
}
GOAL_RSS_MB, GOAL_CPU_PCT = 35.0, 0.3  # issue 22
# fenced cluster against fenced cluster: (label, hasupd's scenario, the fenced peers' scenario)
FENCING_ROWS = [
    ("owner power cut (its BMC reads off: already fenced)", "crash_fenced_tuned", "power_cut"),
    ("owner hung (alive, silent: SIGSTOP + cables cut), fenced through its BMC", "freeze_fenced_tuned", "hung"),
    ("live partition (both alive, cut from each other): one node fenced, the other serving",
     "partition_fenced_tuned", "partition"),
]
FENCED_HASUPD = {row[1] for row in FENCING_ROWS}
FENCED_PEERS = {"pacemaker_fence": "Pacemaker + fencing, reference timings",
                "pacemaker_fence_tuned": "Pacemaker + fencing, tuned"}
# the recorded step -> what it is, in the fenced takeover's timeline
FENCED_STEP_LABELS = {"failure seen": "peer lost (heartbeat deadtime)",
                      "power status": "fence device: power status read through the BMC",
                      "fence started": "fence started (the head start over)",
                      "fenced": "fence done (power off confirmed)"}
# why the fence waits (hasupd's rule, planner.py's docstring): not in the history
FENCE_WAIT_WHY = {
    "freeze_fenced_tuned": " The node that does not run the group fences after owner_head_start (2 s), counted "
                           "from the later of the peer lost and DRBD's loss of its link (the simulated DRBD: "
                           "ping-int 1 s + ping-timeout 0.5 s); then the fence itself (off, confirmed through the BMC).",
    "partition_fenced_tuned": " The owner fences at once, but only once the peer is lost to both the heartbeat and "
                              "DRBD (its link's ping timeout); it keeps serving meanwhile.",
}
README_BEGIN = "<!-- performance-table:begin (generated by bench/report.py --readme) -->"
README_END = "<!-- performance-table:end -->"
SYSTEMS = ("hasupd", "pacemaker", "keepalived")
COLORS = {"hasupd": "#2a7ab0", "pacemaker": "#c0504d", "keepalived": "#9bbb59"}


# --------------------------------------------------------------------- reading (pure)


# `make bench` runs the chaos with the reference configuration's guard (none);
# these runs of bench/chaos.py --guard (by hand, 14 min for 50) stand beside it
CHAOS_BY_GUARD = ("chaos-fence-rule13-main", "chaos-drbd-fence-rule13")


def load(results: Path) -> dict[str, dict | None]:
    docs = {}
    for name in ("failover", "failover-fencing", "footprint", "peers", "chaos", "heartbeat", *CHAOS_BY_GUARD):
        path = results / f"{name}.json"
        docs[name] = None
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except ValueError as e:
            print(f"bench/report.py: {path}: not JSON ({e}); left out", file=sys.stderr)
            continue
        if isinstance(doc, dict):
            docs[name] = doc
        else:
            print(f"bench/report.py: {path}: not a JSON object; left out", file=sys.stderr)
    return docs


def seconds_of(entry: dict | None) -> list[float]:
    """A scenario's measured seconds: ``seconds``, else runs[].total / from_fault."""
    if not isinstance(entry, dict):
        return []
    values = entry.get("seconds")
    if not isinstance(values, list):
        values = [r.get("total", r.get("from_fault")) for r in entry.get("runs", []) if isinstance(r, dict)]
    return [float(v) for v in values if isinstance(v, (int, float))]


def summarize(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    s = sorted(values)
    return {"n": len(s), "min": s[0], "median": statistics.median(s),
            "p95": s[min(len(s) - 1, max(0, round(0.95 * len(s) + 0.5) - 1))], "max": s[-1]}


def hasupd_scenarios(docs: dict) -> dict[str, dict]:
    """hasupd's scenario entries: failover.json's and failover-fencing.json's."""
    out: dict[str, dict] = {}
    for name in ("failover", "failover-fencing"):
        scenarios = (docs.get(name) or {}).get("scenarios")
        if isinstance(scenarios, dict):
            out.update({k: v for k, v in scenarios.items() if isinstance(v, dict)})
    return out


def peer_scenarios(docs: dict, peer: str) -> dict[str, dict]:
    rec = ((docs.get("peers") or {}).get("peers") or {}).get(peer) or {}
    return {k: v for k, v in (rec.get("scenarios") or {}).items() if isinstance(v, dict)}


def by_system(docs: dict) -> dict[str, dict[str, list[float]]]:
    """{system: {scenario: [seconds]}} for hasupd and every peer that ran (the
    fencing rows apart: see FENCING_ROWS)."""
    out: dict[str, dict[str, list[float]]] = {}
    out["hasupd"] = {k: seconds_of(v) for k, v in hasupd_scenarios(docs).items() if k not in FENCED_HASUPD}
    for name in ((docs.get("peers") or {}).get("peers") or {}):
        if name not in FENCED_PEERS:
            out[name] = {k: seconds_of(v) for k, v in peer_scenarios(docs, name).items()}
    return out


def scenario_order(data: dict[str, dict[str, list[float]]]) -> list[str]:
    seen = {k for sys_ in data.values() for k, v in sys_.items() if v}
    return [k for k in SCENARIOS if k in seen] + sorted(seen - set(SCENARIOS))


def median_run(entry: dict) -> dict | None:
    """The run whose total is the median one, if it has steps."""
    runs = [r for r in entry.get("runs", []) if isinstance(r, dict) and r.get("steps") and r.get("ok", True)]
    if not runs:
        return None
    runs.sort(key=lambda r: r.get("total", 0) or 0)
    return runs[(len(runs) - 1) // 2]


def step_rows(run: dict) -> list[tuple[str, float, float]]:
    """(step, start, duration) from a run's steps; start = offset - duration."""
    rows = []
    for s in run.get("steps", []):
        if not isinstance(s, dict) or "offset" not in s:
            continue
        offset = float(s["offset"])
        duration = float(s.get("duration") or 0.0)
        rows.append((str(s.get("step", "?")), max(0.0, offset - duration), duration))
    return sorted(rows, key=lambda r: r[1] + r[2])


def this_machine() -> dict:
    model = ""
    try:
        model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release()}


def fmt(v, unit="s", digits=2) -> str:
    return "—" if v is None else f"{v:.{digits}f} {unit}".rstrip()


# --------------------------------------------------------------------- plots


def plot_failover(data: dict, order: list[str], path: Path) -> bool:
    import matplotlib.pyplot as plt

    systems = [s for s in SYSTEMS if any(data.get(s, {}).get(k) for k in order)]
    systems += [s for s in data if s not in systems and any(data[s].get(k) for k in order)]
    if not order or not systems:
        return False
    width = 0.8 / len(systems)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(order) + 2), 4.5))
    for i, system in enumerate(systems):
        positions, values = [], []
        for j, k in enumerate(order):
            v = data.get(system, {}).get(k)
            if v:
                positions.append(j - 0.4 + width * (i + 0.5))
                values.append(v)
        if not values:
            continue
        bp = ax.boxplot(values, positions=positions, widths=width * 0.85, patch_artist=True,
                        manage_ticks=False, whis=(0, 100))
        for box in bp["boxes"]:
            box.set(facecolor=COLORS.get(system, "#888888"), alpha=0.8)
        for median in bp["medians"]:
            median.set(color="black")
        for x, v in zip(positions, values):  # the runs themselves: with a few runs a box says little
            ax.plot([x] * len(v), v, ".", color="black", markersize=3, alpha=0.6)
        ax.plot([], [], "s", color=COLORS.get(system, "#888888"), label=system)
    for j, k in enumerate(order):
        if k in GOALS:
            ax.hlines(GOALS[k], j - 0.45, j + 0.45, colors="#444444", linestyles="dashed", linewidth=1)
    ax.plot([], [], "--", color="#444444", linewidth=1, label="hasupd goal")
    ax.set_xticks(range(len(order)), [SCENARIOS.get(k, k).replace(" (", "\n(") for k in order], fontsize=8)
    ax.set_yscale("symlog", linthresh=0.1)  # log above 0.1 s, linear below (a 0 s run stays visible)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("seconds to the first HTTP 200 (log above 0.1 s)")
    ax.set_title("Failover time per scenario (client polls the VIP every 10 ms)")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_timeline(scenario: str, run: dict, path: Path) -> bool:
    import matplotlib.pyplot as plt

    rows = step_rows(run)
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    for i, (_step, start, duration) in enumerate(rows):
        ax.barh(i, max(duration, 0.001), left=start, color=COLORS["hasupd"])
        if duration < 0.005:  # an event, not a span: a mark where it happened
            ax.plot([start + duration], [i], "|", color=COLORS["hasupd"], markersize=12, markeredgewidth=2)
        ax.text(start + duration, i, f"  {(start + duration) * 1000:.0f} ms", va="center", fontsize=8)
    total = run.get("to_first_200", run.get("total"))
    if isinstance(total, (int, float)):
        ax.axvline(total, color="#c0504d", linestyle="--", linewidth=1, label=f"first HTTP 200: {total:.3f} s")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds after the fault")
    ax.set_xlim(left=0)
    ax.set_title(f"hasupd, {label_of(scenario)}:\none failover (the median run), step by step", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_footprint(sizes: list[dict], path: Path) -> bool:
    import matplotlib.pyplot as plt

    sizes = sorted((s for s in sizes if isinstance(s, dict) and isinstance(s.get("groups"), (int, float))),
                   key=lambda s: s["groups"])
    if not sizes:
        return False
    panels = [(key, label) for key, label in (("rss_mb", "RSS (MB)"), ("cpu_pct", "CPU (% of one core)"),
                                               ("detect_ms", "failure -> observed (ms)"))
              if any(isinstance(s.get(key), (int, float)) for s in sizes)]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.5), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        pts = [(s["groups"], s[key]) for s in sizes if isinstance(s.get(key), (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=COLORS["hasupd"])
        goal = {"rss_mb": GOAL_RSS_MB, "cpu_pct": GOAL_CPU_PCT}.get(key)
        if goal is not None:
            ax.axhline(goal, color="#444444", linestyle="--", linewidth=1, label="goal (idle, 1 group)")
            ax.legend(fontsize=8)
        ax.set_xlabel("resource groups")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.suptitle("hasupd on an idle node against the number of groups")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------- the report


def report(docs: dict, results: Path, plots: bool = True) -> str:
    """The report's text; plots=False leaves the figures out (no matplotlib needed)."""
    data = by_system(docs)
    order = scenario_order(data)
    machine = this_machine()
    out = ["# hasupd benchmarks", "",
           "Generated by `bench/report.py` from the JSON files in this directory "
           "(see README.md for their format).", "",
           f"Machine the report was made on: {machine['nproc']} CPUs, {machine['cpu'] or 'unknown CPU'}, "
           f"Linux {machine['kernel']}."]
    for name, doc in docs.items():
        if isinstance(doc, dict) and isinstance(doc.get("machine"), dict):
            m = doc["machine"]
            out.append(f"`{name}.json` was measured on: {m.get('nproc', m.get('cpus', '?'))} CPUs, {m.get('cpu', '?')}, "
                       f"Linux {m.get('kernel', '?')}"
                       + (f", load {m['load_1min_at_start']} at start" if "load_1min_at_start" in m else "")
                       + (f" ({doc['generated']})" if doc.get("generated") else "") + ".")
    missing = [f"`{n}.json`" for n, d in docs.items() if d is None]
    if missing:
        out += ["", f"**Missing:** {', '.join(missing)} (not measured yet: the sections that need them "
                "are left out or marked —)."]

    # ---- failover
    out += ["", "## Failover time", "",
            "From the fault to the first HTTP 200 from the new owner, the client polling the VIP every "
            "10 ms from its own namespace (planned move: the gap without any 200). Median (min–max, n runs).",
            ""]
    systems = [s for s in SYSTEMS if data.get(s)] + [s for s in data if s not in SYSTEMS and data[s]]
    if order:
        out.append("| scenario | " + " | ".join(systems) + " | hasupd goal |")
        out.append("|---|" + "---|" * (len(systems) + 1))
        for k in order:
            cells = []
            for s in systems:
                sm = summarize(data.get(s, {}).get(k, []))
                cells.append(f"{sm['median']:.2f} s ({sm['min']:.2f}–{sm['max']:.2f}, n={sm['n']})"
                             if sm["n"] else "—")
            out.append(f"| {SCENARIOS.get(k, k)} | " + " | ".join(cells) + f" | {goal_cell(docs, k)} |")
        if plots and plot_failover(data, order, results / "failover.png"):
            out += ["", "![failover time per scenario](failover.png)"]
    else:
        out.append("No failover figures yet.")
    out += goal_notes(docs)
    out += peer_notes(docs)

    out += fencing_section(docs, results, plots)

    # ---- timeline
    scenarios = {k: v for k, v in hasupd_scenarios(docs).items() if k not in FENCED_HASUPD}
    out += ["", "## One failover, step by step (hasupd)", ""]
    shown = False
    for k in [k for k in SCENARIOS if k in scenarios] + sorted(set(scenarios) - set(SCENARIOS)):
        run = median_run(scenarios[k]) if isinstance(scenarios[k], dict) else None
        if run is None:
            continue
        if plots and not shown and plot_timeline(k, run, results / "timeline.png"):
            out += [f"![timeline of one failover: {SCENARIOS.get(k, k)}](timeline.png)", ""]
            shown = True
        what = {"gap": "without an answer"}.get(scenarios[k].get("measure"), "to the first 200")
        out += [f"**{SCENARIOS.get(k, k)}** (median run, {fmt(run.get('total'))} {what}):", "",
                "| step | done at | took |", "|---|---|---|"]
        out += [f"| {step} | {(start + dur) * 1000:.0f} ms | {dur * 1000:.0f} ms |"
                for step, start, dur in step_rows(run)]
        out.append("")
    if not shown:
        out.append("No step timeline yet (failover.json has no runs with steps).")

    # ---- footprint
    out += ["", "## Footprint", ""]
    fp = docs.get("footprint") or {}
    idle = fp.get("idle") if isinstance(fp.get("idle"), dict) else {}
    rows = ["| system, node | RSS | PSS | CPU at idle |", "|---|---|---|---|"]
    nodes = idle.get("nodes") if isinstance(idle.get("nodes"), dict) else {}
    for node, f in (nodes.items() if nodes else [("", idle)] if idle else []):
        label = f"hasupd, {node}" + (f" ({f['role']})" if f.get("role") else "") if node else "hasupd"
        rows.append(f"| {label} | {fmt(f.get('rss_mb'), 'MB', 1)} | {fmt(f.get('pss_mb'), 'MB', 1)} "
                    f"| {fmt(f.get('cpu_pct'), '%', 2)} |")
    for name, rec in ((docs.get("peers") or {}).get("peers") or {}).items():
        for node, f in (rec.get("footprint") or {}).items():
            rows.append(f"| {name}, {node} | {fmt(f.get('rss_mb'), 'MB', 1)} | {fmt(f.get('pss_mb'), 'MB', 1)} "
                        f"| {fmt(f.get('cpu_pct'), '%', 2)} |")
    out += rows if len(rows) > 2 else ["No footprint figures yet."]
    pps = idle.get("heartbeat_pps", idle.get("hb_packets_s"))
    if isinstance(pps, (int, float)):
        bps = idle.get("heartbeat_bps", idle.get("hb_bytes_s"))
        out += ["", f"hasupd's goals at idle: RSS ≤ {GOAL_RSS_MB:g} MB, CPU ≤ {GOAL_CPU_PCT:g} % of one core. "
                f"Its heartbeat: {pps:g} packets/s" + (f", {bps:g} bytes/s" if isinstance(bps, (int, float)) else "")
                + " per node."]
    out.append("")
    out.append("Peers: the cluster processes of each node (corosync + pacemaker daemons; keepalived), "
               "apache left out; RSS counts shared libraries on every node, PSS shares them out.")
    out += footprint_floor(fp, idle)
    sizes = [s for s in (fp.get("sizes") if isinstance(fp.get("sizes"), list) else [])
             if isinstance(s, dict) and s.get("ok", True)]
    if sizes:
        out += ["", "| groups | RSS | CPU | failure → observed |", "|---|---|---|---|"]
        for s in sorted((s for s in sizes if isinstance(s, dict)), key=lambda s: s.get("groups", 0)):
            out.append(f"| {s.get('groups', '?')} | {fmt(s.get('rss_mb'), 'MB', 1)} | {fmt(s.get('cpu_pct'), '%', 2)} "
                       f"| {fmt(s.get('detect_ms'), 'ms', 1)} |")
        if plots and plot_footprint(sizes, results / "footprint.png"):
            out += ["", "![RSS, CPU and detection time against the number of groups](footprint.png)"]
    findings = [f for f in fp.get("findings", []) if isinstance(f, str)] if isinstance(fp.get("findings"), list) else []
    if findings:
        out += ["", "Findings of the footprint run:", "", *[f"* {f}" for f in findings]]

    # ---- chaos
    chaos = docs.get("chaos")
    if isinstance(chaos, dict):
        out += ["", "## Chaos (random fault schedules, invariants checked throughout)", ""]
        guard = chaos.get("guard") or "none"
        out.append(f"* split-brain guard: {guard}" + (
            " (the reference configuration's: a node takes over on heartbeat silence alone, so a freeze "
            "longer than the deadtime runs the group twice; the guards below prevent it)"
            if guard == "none" else ""))
        facts = [("schedules", chaos.get("runs"), "{}"), ("seed", chaos.get("seed"), "{}"),
                 ("availability", chaos.get("availability"), "{:.2%} of the probes answered 200"),
                 ("failovers", chaos.get("failovers"), "{}"),
                 ("slowest failover", chaos.get("slowest_failover_s"), "{:.2f} s without an answer"),
                 ("invariant violations", chaos.get("violations"), "{} (samples, split brains included)"),
                 ("DRBD split brains", chaos.get("split_brains"), "{}"),
                 ("split brains the harness resolved (--discard-my-data)", chaos.get("split_brains_resolved"), "{}"),
                 ("schedules not recovered", chaos.get("not_recovered"), "{}")]
        out += [f"* {label}: {form.format(v)}" for label, v, form in facts if isinstance(v, (int, float))]
        split = [sc for sc in chaos.get("schedules") or [] if isinstance(sc, dict) and sc.get("split_brains")]
        if split:
            out += ["", "Schedules that ended in a DRBD split brain (their faults):", ""]
            out += [f"* #{sc.get('schedule')}: " + "; ".join(
                f"{st.get('fault')} on {st.get('node')} {st.get('hold')} s" for st in sc.get("steps") or [])
                for sc in split]
    guarded = [(name, docs[name]) for name in CHAOS_BY_GUARD if isinstance(docs.get(name), dict)]
    if isinstance(chaos, dict) and guarded:
        out += ["", "The same kind of schedules with a split-brain guard (lab BMCs; live partitions in the mix):", "",
                "| guard | schedules (seed) | availability | failovers | invariant violations | DRBD split brains "
                "| not recovered | file |", "|---|---|---|---|---|---|---|---|"]
        for name, c in [("chaos", chaos), *guarded]:
            av = c.get("availability")
            out.append(f"| {c.get('guard') or 'none'} | {c.get('runs')} ({c.get('seed')}) | "
                       f"{f'{av:.2%}' if isinstance(av, (int, float)) else '—'} | {c.get('failovers')} | "
                       f"{c.get('violations')} | {c.get('split_brains')} | {c.get('not_recovered')} | {name}.json |")

    # ---- heartbeat
    hb = docs.get("heartbeat")
    if isinstance(hb, dict):
        out += ["", "## Heartbeat", ""]
        for profile, d in (hb.get("detection") or {}).items():
            sm = summarize(seconds_of(d))
            if sm["n"]:
                out.append(f"* dead-peer detection, {profile} (interval {d.get('interval_s', '?')} s, deadtime "
                           f"{d.get('deadtime_s', '?')} s): median {sm['median']:.3f} s, max {sm['max']:.3f} s, "
                           f"n={sm['n']}")
        if isinstance(hb.get("cpu_pct"), (int, float)):
            out.append(f"* CPU of one heartbeat process: {hb['cpu_pct']:.3f} % of one core")
    return "\n".join(out).rstrip() + "\n"


def label_of(k: str) -> str:
    return SCENARIOS.get(k) or next((label for label, key, _ in FENCING_ROWS if key == k), k)


def cell(values: list[float]) -> str:
    """median (min–max, n=N) of a list of seconds."""
    sm = summarize(values)
    return f"{sm['median']:.2f} s ({sm['min']:.2f}–{sm['max']:.2f}, n={sm['n']})" if sm["n"] else "—"


def two_holders(entry: dict | None) -> str:
    """Samples with the VIP on both nodes, over every run: "0 of 780 samples"."""
    runs = [r for r in (entry or {}).get("runs", []) if isinstance(r, dict)]
    two = [r.get("two_vip_samples", r.get("two_holders")) for r in runs]
    samples = [r.get("samples", r.get("vip_samples")) for r in runs]
    if not runs or any(not isinstance(v, int) for v in two):
        return "—"
    total = sum(v for v in samples if isinstance(v, int))
    return f"{sum(two)} of {total} samples"


def fencing_section(docs: dict, results: Path, plots: bool = True) -> list[str]:
    hasupd = hasupd_scenarios(docs)
    peers = [p for p in FENCED_PEERS if peer_scenarios(docs, p)]
    if not any(k in hasupd for _, k, _ in FENCING_ROWS) and not peers:
        return []
    out = ["", "## Failover with fencing: fenced cluster against fenced cluster", "",
           "hasupd with the tuned heartbeat (50 ms / 300 ms) and guard fence; Pacemaker 2.1 + corosync 3 "
           "with stonith-enabled; both fence with Debian's fence_ipmilan against the same kind of lab BMC "
           "(ipmi_sim over IPMI-over-LAN), and both give the owner a 2 s head start in a fence race "
           "(hasupd's owner_head_start, Pacemaker's priority-fencing-delay). From the fault to the first "
           "HTTP 200 from the node left serving (partition: the first 200 after the other was powered "
           "off). Median (min–max, n runs); two holders: VIP on both nodes, sampled throughout.", "",
           "| " + " | ".join(["fault", "hasupd", *(FENCED_PEERS[p] for p in peers),
                               "two VIP holders (" + " / ".join(["hasupd", *peers]) + ")", "hasupd goal"]) + " |",
           "|---|---|" + "---|" * len(peers) + "---|---|"]
    for label, k, pk in FENCING_ROWS:
        entries = [hasupd.get(k)] + [peer_scenarios(docs, p).get(pk) for p in peers]
        holders = " / ".join(two_holders(e) for e in entries) if pk == "partition" else ""
        out.append(f"| {label} | " + " | ".join(cell(seconds_of(e)) for e in entries)
                   + f" | {holders} | {goal_cell(docs, k)} |")
    cut_runs = [r for r in (hasupd.get("crash_fenced_tuned") or {}).get("runs", []) if isinstance(r, dict) and r.get("ok")]
    if cut_runs:
        off = sum(1 for r in cut_runs if any(st.get("step") == "power status" and st.get("ok")
                                             for st in r.get("steps", []) if isinstance(st, dict)))
        out += ["", f"hasupd, power cut: the BMC read the owner powered off (already fenced, no fence run) in "
                f"{off} of {len(cut_runs)} runs."]
    if peers:
        out += ["", "Where Pacemaker's time goes: corosync declares the node lost after its token and consensus "
                "timeouts (3 s + 3.6 s at the reference, 1 s + 1.2 s tuned), then priority-fencing-delay holds the "
                "fence of the node that ran the group for 2 s (in a power cut too: Pacemaker does not ask the BMC "
                "first, while hasupd reads the power off and skips the fence), then fence_ipmilan powers it off "
                "and the group starts. In a partition the owner fences at once and keeps serving."]
    for p in peers:
        fenced = {pk: [r["fenced_at"] for r in (peer_scenarios(docs, p).get(pk) or {}).get("runs", [])
                       if isinstance(r, dict) and isinstance(r.get("fenced_at"), (int, float))]
                  for _, _, pk in FENCING_ROWS}
        parts = [f"{pk} {cell(v)}" for pk, v in fenced.items() if v]
        if parts:
            out += ["", f"{FENCED_PEERS[p]}: the fenced node's BMC powered it off after " + "; ".join(parts) + "."]
    out += fenced_timelines(hasupd, results, plots)
    return out


def fenced_timelines(hasupd: dict, results: Path, plots: bool = True) -> list[str]:
    """One fenced takeover of hasupd, step by step, for each fencing row: the
    median run's steps with their wall-clock time (UTC) from the nodes' history."""
    out: list[str] = []
    plotted = False
    for label, k, _ in FENCING_ROWS:
        run = median_run(hasupd[k]) if k in hasupd else None
        if run is None:
            continue
        if not out:
            out += ["", "### One fenced takeover, step by step (hasupd)", ""]
        if plots and not plotted and k == "freeze_fenced_tuned" and plot_timeline(k, run, results / "timeline-fenced.png"):
            out += ["![timeline of one fenced takeover: hung owner](timeline-fenced.png)", ""]
            plotted = True
        wall = run.get("fault_wall")
        out += [f"**{label}** (median run, {fmt(run.get('total'))} to the first 200"
                + (f"; {run['fenced']} fenced" if run.get("fenced") else "") + "):", "",
                "| step | node | at (UTC) | done at | took |", "|---|---|---|---|---|"]
        nodes = {str(st.get("step")): st.get("node") or "" for st in run.get("steps", []) if isinstance(st, dict)}
        out.append(f"| fault injected | {run.get('owner', '')} | {utc(wall)} | 0 ms | |")
        for step, start, dur in step_rows(run):
            at = utc(wall + start + dur) if isinstance(wall, (int, float)) else ""
            out.append(f"| {FENCED_STEP_LABELS.get(step, step)} | {nodes.get(step, '')} | {at} | "
                       f"{(start + dur) * 1000:.0f} ms | {dur * 1000:.0f} ms |")
        waits = waits_of(step_rows(run))[:3]
        if waits:
            out += ["", "Where the time goes: " + "; ".join(
                f"{dt * 1000:.0f} ms waiting before \"{FENCED_STEP_LABELS.get(step, step)}\" began"
                for step, dt in waits) + "." + FENCE_WAIT_WHY.get(k, "")]
        out.append("")
    return out


def waits_of(rows: list[tuple[str, float, float]]) -> list[tuple[str, float]]:
    """The idle stretches of a timeline: (step, time between the end of the
    steps before it and its start), largest first."""
    waits, end = [], 0.0
    for step, start, dur in sorted(rows, key=lambda r: (round(r[1], 3), r[1] + r[2])):
        if start - end > 0.001:
            waits.append((step, start - end))
        end = max(end, start + dur)
    return sorted(waits, key=lambda w: -w[1])


def utc(wall) -> str:
    if not isinstance(wall, (int, float)):
        return ""
    return time.strftime("%H:%M:%S", time.gmtime(wall)) + f".{int(round(wall % 1 * 1000)) % 1000:03d}"


def goal_of(docs: dict, k: str) -> dict | None:
    """{metric, limit, median, met} from failover.json, else from GOALS and the seconds."""
    entry = hasupd_scenarios(docs).get(k)
    goal = entry.get("goal") if isinstance(entry, dict) else None
    if isinstance(goal, dict) and "limit" in goal:
        if k in GOALS and goal["limit"] != GOALS[k] and isinstance(goal.get("median"), (int, float)):
            # measured against an older goal: judged against today's
            return {**goal, "limit": GOALS[k], "met": goal["median"] <= GOALS[k], "costliest": goal.get("costliest")}
        return goal
    if k not in GOALS:
        return None
    sm = summarize(seconds_of(entry))
    return {"metric": "seconds", "limit": GOALS[k], "median": sm.get("median"),
            "met": sm["n"] > 0 and sm["median"] <= GOALS[k]}


def goal_cell(docs: dict, k: str) -> str:
    goal = goal_of(docs, k)
    if goal is None:
        return "no failed probe" if k == "kill_daemon" else ""
    metric = {"to_first_200": "", "seconds": "", "gap": "gap ", "failed_probes": "failed probes "}.get(
        goal.get("metric"), f"{goal.get('metric')} ")
    if "total" in goal:  # a safety count over every sample of every run
        return f"{goal['limit']:g} samples with two holders" + (" ✓" if goal.get("met") else " **missed**")
    unit = "" if goal.get("metric") == "failed_probes" else " s"
    verdict = "" if goal.get("median") is None else (" ✓" if goal.get("met") else " **missed**")
    return f"{metric}≤ {goal['limit']:g}{unit}{verdict}"


def goal_notes(docs: dict) -> list[str]:
    """For each goal hasupd misses: where the time of its median run goes."""
    notes = []
    for k, entry in hasupd_scenarios(docs).items():
        if entry.get("failed_runs"):
            notes.append(f"* {label_of(k)}: {entry['failed_runs']} run(s) failed (left out of the figures).")
        goal = goal_of(docs, k)
        if goal is None or goal.get("median") is None or goal.get("met"):
            continue
        unit = "" if goal.get("metric") == "failed_probes" else " s"
        head = (f"* {label_of(k)}: median {goal.get('metric', 'seconds')} {goal['median']:.3g}{unit} "
                f"misses the goal of {goal['limit']:g}{unit}")
        costliest = goal.get("costliest")
        if isinstance(costliest, list) and costliest:
            notes.append(head + "; the time goes to " + "; ".join(
                f"{c.get('segment', '?')} {float(c.get('seconds', 0)):.3f} s" for c in costliest if isinstance(c, dict))
                + ".")
            continue
        run = median_run(entry)
        rows = step_rows(run) if run else []
        if rows:
            step, _, dur = max(rows, key=lambda r: r[2])
            notes.append(head + f"; the costliest step is \"{step}\" ({dur * 1000:.0f} ms).")
        else:
            notes.append(head + " (no step timeline recorded).")
    for k, entry in hasupd_scenarios(docs).items():
        if k == "kill_daemon":
            failed = [r.get("failed_probes") for r in entry.get("runs", []) if isinstance(r, dict)]
            failed = [f for f in failed if isinstance(f, int)]
            if sum(failed):
                notes.append(f"* daemon killed: {sum(failed)} failed probes over {len(failed)} runs "
                             f"(goal: none).")
    return ["", "Against the goals:", "", *notes] if notes else []


def peer_notes(docs: dict) -> list[str]:
    peers = docs.get("peers") or {}
    notes = []
    for name, rec in (peers.get("peers") or {}).items():
        if rec.get("blocked"):
            notes.append(f"* **{name} could not run here:** {rec['blocked']}")
        versions = ", ".join(f"{k} {v}" for k, v in (rec.get("versions") or {}).items() if v)
        settings = "; ".join(f"{k} {v}" for k, v in (rec.get("settings") or {}).items())
        when = rec.get("measured") if isinstance(rec.get("measured"), dict) else {}
        measured = (f" Measured {when.get('date')}, load {when.get('load_1min_at_start')} at start."
                    if when.get("date") else "")
        if versions or settings:
            notes.append(f"* {name}: {versions or 'versions unknown'}. Settings: {settings or 'unknown'}.{measured}")
    if not notes:
        return []
    runs = peers.get("runs_per_scenario")
    notes.append("* The peers move less than hasupd: no DRBD and no filesystem in their group (the lab has "
                 "no DRBD module for them), and keepalived only moves the address (apache runs on both "
                 "nodes all the time). A kill -9 of apache's main process leaves its workers answering "
                 "until the group is stopped there: the client sees no error before that, only the old node.")
    return ["", "The peers (`bench/peers/run.py`" + (f", {runs} runs per scenario" if runs else "") + "):", "",
            *notes]


# --------------------------------------------------------------------- the README's table

README_ROWS = [  # (label, hasupd's scenario, {peer: its scenario})
    ("httpd `kill -9` (migration threshold 1)", "kill_httpd", {"pacemaker": "kill_httpd", "keepalived": "kill_httpd"}),
    ("httpd `kill -9`, threshold 3 (restart in place)", "kill_httpd_restart", {}),
    ("owner crashed, default heartbeat (200 ms / 2 s)", "crash", {}),
    ("owner frozen + cables cut, default heartbeat", "freeze", {"pacemaker": "freeze", "keepalived": "freeze"}),
    ("owner crashed, tuned heartbeat (50 ms / 300 ms)", "crash_tuned", {}),
    ("owner frozen + cables cut, tuned heartbeat", "freeze_tuned", {}),
    ("planned move (gap without an answer)", "move", {"pacemaker": "move"}),
    ("hasupd killed on the owner, restarted 1 s later (gap)", "kill_daemon", {}),
    ("owner power cut, fencing (tuned; already off through the BMC)", "crash_fenced_tuned",
     {"pacemaker_fence": "power_cut", "pacemaker_fence_tuned": "power_cut"}),
    ("owner hung (alive, silent), fencing after the owner's head start", "freeze_fenced_tuned",
     {"pacemaker_fence": "hung", "pacemaker_fence_tuned": "hung"}),
    ("live partition, fencing: time to a single owner serving", "partition_fenced_tuned",
     {"pacemaker_fence": "partition", "pacemaker_fence_tuned": "partition"}),
]


def readme_block(docs: dict) -> str:
    """The README's performance table: median (min–max, n) of every row,
    from the results JSON (bench/report.py --readme writes it)."""
    hasupd = hasupd_scenarios(docs)
    rows = ["| scenario | hasupd | Pacemaker | keepalived | hasupd goal |", "|---|---|---|---|---|"]
    for label, k, peers in README_ROWS:
        pcmk = []
        for p, note in (("pacemaker", ""), ("pacemaker_fence", ""), ("pacemaker_fence_tuned", "tuned: ")):
            if p in peers and seconds_of(peer_scenarios(docs, p).get(peers[p])):
                pcmk.append(note + cell(seconds_of(peer_scenarios(docs, p).get(peers[p]))))
        keep = cell(seconds_of(peer_scenarios(docs, "keepalived").get(peers["keepalived"]))) \
            if "keepalived" in peers else "—"
        goal = "" if k == "partition_fenced_tuned" else goal_cell(docs, k)  # its goal: the samples row below
        rows.append(f"| {label} | {cell(seconds_of(hasupd.get(k)))} | {'; '.join(pcmk) or '—'} | {keep} "
                    f"| {goal} |")
    part = "partition_fenced_tuned"
    if part in hasupd:
        peers_two = [two_holders(peer_scenarios(docs, p).get("partition")) for p in FENCED_PEERS
                     if peer_scenarios(docs, p).get("partition")]
        rows.append(f"| live partition, fencing: samples with the VIP on both nodes | {two_holders(hasupd[part])} "
                    f"| {'; '.join(peers_two) or '—'} | — | {goal_cell(docs, part)} |")
    rows.append(footprint_row(docs))
    return "\n".join(rows) + "\n"


def footprint_floor(fp: dict, idle: dict) -> list[str]:
    """Where the idle RSS and CPU go, from footprint.json's import probe and
    its second (tuned heartbeat) window: the floor under the two goals."""
    out: list[str] = []
    imports = [i for i in fp.get("imports") or [] if isinstance(i, dict)]
    if imports:
        loaded = [i for i in imports if i.get("loaded", True) and "only when" not in i["step"]]
        total = sum(i["rss_mb"] for i in loaded)
        out += ["", f"Where the idle RSS goes: each import's growth, in the order the daemon loads them, in one "
                f"fresh interpreter (bench/footprint.py `import_costs`). Imports alone come to {total:.1f} MB "
                f"against the goal of {GOAL_RSS_MB:g} MB.", "", "| step | RSS added |", "|---|---|"]
        out += [f"| {i['step']} | {fmt(i['rss_mb'], 'MB', 1)} |" for i in imports]
        measured = idle.get("rss_mb")
        if isinstance(measured, (int, float)):
            out.append(f"| the running daemon's own data (measured {measured:.1f} MB minus the imports) "
                       f"| {fmt(measured - total, 'MB', 1)} |")
    breakdown = idle.get("cpu_breakdown")
    if isinstance(breakdown, dict) and breakdown:
        out += ["", "Where the idle CPU goes: one group watched twice, at the reference heartbeat and at the tuned "
                "one (interval 50 ms); the extra CPU over the extra packets is the cost of a packet sent and "
                "one received.", "",
                "| node | CPU at idle | heartbeat packets/s | CPU per packet | heartbeat's share | the rest "
                "(monitors, timers) |", "|---|---|---|---|---|---|"]
        for node, b in breakdown.items():
            out.append(f"| {node} ({b.get('role') or '?'}) | {fmt(b.get('cpu_pct'), '%', 2)} | "
                       f"{b.get('heartbeat_pps', '?')} (tuned {b.get('heartbeat_pps_tuned', '?')}) | "
                       f"{fmt(b.get('ms_per_packet'), 'ms', 3)} | {fmt(b.get('heartbeat_pct'), '%', 2)} | "
                       f"{fmt(b.get('rest_pct'), '%', 2)} |")
    return out


def footprint_row(docs: dict) -> str:
    def per_node(nodes: dict) -> str:
        parts = [f"{f['rss_mb']:.1f} MB / {f['cpu_pct']:.2f} % ({n})" for n, f in sorted(nodes.items())
                 if isinstance(f, dict) and isinstance(f.get("rss_mb"), (int, float))
                 and isinstance(f.get("cpu_pct"), (int, float))]
        return "; ".join(parts) or "—"
    idle = (docs.get("footprint") or {}).get("idle") or {}
    nodes = idle.get("nodes") if isinstance(idle.get("nodes"), dict) else {}
    peers = {p: (((docs.get("peers") or {}).get("peers") or {}).get(p) or {}).get("footprint") or {}
             for p in ("pacemaker", "keepalived")}
    window = (docs.get("footprint") or {}).get("window_s")
    ours = f"hasupd one {window:g} s window, " if isinstance(window, (int, float)) else ""
    return (f"| idle RSS / CPU per node ({ours}the peers one 20 s window) | {per_node(nodes)} | "
            f"{per_node(peers['pacemaker'])} "
            f"| {per_node(peers['keepalived'])} | RSS ≤ {GOAL_RSS_MB:g} MB, CPU ≤ {GOAL_CPU_PCT:g} % |")


def readme_section(text: str) -> str | None:
    """What the README holds between the performance-table markers."""
    if README_BEGIN not in text or README_END not in text:
        return None
    return text.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip("\n") + "\n"


def write_readme(path: Path, block: str) -> bool:
    text = path.read_text()
    if readme_section(text) is None:
        return False
    head, rest = text.split(README_BEGIN, 1)
    path.write_text(head + README_BEGIN + "\n" + block + README_END + rest.split(README_END, 1)[1])
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=RESULTS, help=f"directory of the JSON files (default {RESULTS})")
    p.add_argument("--readme", type=Path, nargs="?", const=RESULTS.parents[1] / "README.md",
                   help="also write the performance table into this README (default the repository's), "
                        "between its markers")
    args = p.parse_args()
    try:
        import matplotlib
    except ImportError:
        print("bench/report.py: matplotlib is missing: .venv/bin/pip install -e '.[bench]'", file=sys.stderr)
        return 1
    matplotlib.use("Agg")
    if not args.results.is_dir():
        print(f"bench/report.py: {args.results}: no such directory", file=sys.stderr)
        return 1
    docs = load(args.results)
    if not any(docs.values()):
        print(f"bench/report.py: no results in {args.results} (run the benchmarks first)", file=sys.stderr)
        return 1
    text = report(docs, args.results)
    (args.results / "report.md").write_text(text)
    if args.readme and not write_readme(args.readme, readme_block(docs)):
        print(f"bench/report.py: {args.readme} has no performance-table markers ({README_BEGIN})", file=sys.stderr)
        return 1
    print(f"written {args.results / 'report.md'}"
          + "".join(f"; {n}.json missing" for n, d in docs.items() if d is None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
