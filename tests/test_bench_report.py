"""bench/report.py: the README's performance table is the one generated from the
results JSON, and the fencing rows say median, min–max, n and the two-holder samples."""

from __future__ import annotations

import json

from bench.report import (
    README_BEGIN,
    README_END,
    RESULTS,
    fenced_timelines,
    goal_cell,
    load,
    readme_block,
    readme_section,
    report,
    write_readme,
)

REPO = RESULTS.parents[1]


def test_readme_performance_table_is_the_one_generated_from_the_results():
    shown = readme_section((REPO / "README.md").read_text())
    assert shown is not None, "README.md has no performance-table markers"
    assert shown == readme_block(load(RESULTS)), (
        "README's performance table differs from bench/results/*.json: run `bench/report.py --readme`")


def fenced_docs(two_vip: tuple[int, ...] = (0, 0)) -> dict:
    part_runs = [{"ok": True, "total": t, "two_vip_samples": v, "samples": 50} for t, v in zip((1.6, 1.8), two_vip)]
    return {
        "failover": {"scenarios": {"kill_httpd": {"seconds": [0.3, 0.1, 0.2]}}},
        "failover-fencing": {"scenarios": {
            "crash_fenced_tuned": {"seconds": [0.9, 0.7, 1.4, 0.8, 1.0]},
            "partition_fenced_tuned": {
                "seconds": [1.6, 1.8], "runs": part_runs,
                "goal": {"metric": "two_vip_samples", "limit": 0, "total": sum(two_vip), "met": sum(two_vip) == 0}}}},
        "peers": {"peers": {
            "pacemaker": {"scenarios": {"kill_httpd": {"seconds": [4.0, 20.0, 15.0]}}},
            "pacemaker_fence": {"scenarios": {
                "power_cut": {"seconds": [9.5, 9.4, 9.7]},
                "partition": {"seconds": [7.9], "runs": [{"from_fault": 7.9, "two_holders": 0, "vip_samples": 365}]}}},
        }},
    }


def row(block: str, label_start: str) -> str:
    return next(line for line in block.splitlines() if line.startswith("| " + label_start))


def test_every_row_says_median_min_max_and_n():
    block = readme_block(fenced_docs())
    assert row(block, "httpd `kill -9` (migration") == (
        "| httpd `kill -9` (migration threshold 1) | 0.20 s (0.10–0.30, n=3) | 15.00 s (4.00–20.00, n=3) | — "
        "| ≤ 0.12 s **missed** |")
    assert "| 0.90 s (0.70–1.40, n=5) | 9.50 s (9.40–9.70, n=3) |" in row(block, "owner power cut, fencing")
    assert "| 1.70 s (1.60–1.80, n=2) | 7.90 s (7.90–7.90, n=1) |" in row(block, "live partition, fencing: time")


def test_two_holder_samples_are_counted_over_every_run_and_fail_the_goal():
    safe = row(readme_block(fenced_docs((0, 0))), "live partition, fencing: samples")
    assert "| 0 of 100 samples | 0 of 365 samples |" in safe and "✓" in safe
    unsafe = row(readme_block(fenced_docs((0, 3))), "live partition, fencing: samples")
    assert "| 3 of 100 samples |" in unsafe and "**missed**" in unsafe
    assert goal_cell(fenced_docs((1, 0)), "partition_fenced_tuned").endswith("**missed**")


def test_the_report_has_the_fencing_table_beside_pacemaker_with_fencing(tmp_path):
    text = report(fenced_docs(), tmp_path, plots=False)  # the make test venv has no matplotlib
    fencing = text.split("## Failover with fencing", 1)[1].split("\n## ", 1)[0]
    assert "| hasupd | Pacemaker + fencing, reference timings |" in fencing
    assert "| 0.90 s (0.70–1.40, n=5) | 9.50 s (9.40–9.70, n=3) |" in fencing
    # the fencing rows are not in the first table a second time
    first_table = text.split("## Failover time", 1)[1].split("\n\n", 3)[2]
    assert first_table.startswith("| scenario |") and "httpd kill -9" in first_table
    assert "power cut" not in first_table and "crash_fenced_tuned" not in first_table


def test_the_fenced_takeover_is_shown_step_by_step_with_wall_times(tmp_path):
    wall = 1796435435.25
    run = {"ok": True, "total": 0.9, "owner": "n1", "fault_wall": wall, "steps": [
        {"step": "failure seen", "offset": 0.3, "duration": 0.0, "node": "n2"},
        {"step": "power status", "offset": 0.45, "duration": 0.0, "node": "n2"},
        {"step": "promote", "offset": 0.6, "duration": 0.1, "node": "n2"},
        {"step": "first HTTP 200", "offset": 0.9, "duration": 0.0, "node": "n2"}]}
    lines = fenced_timelines({"crash_fenced_tuned": {"runs": [run]}}, tmp_path)
    text = "\n".join(lines)
    assert "| fault injected | n1 | 01:50:35.250 | 0 ms | |" in text
    assert "| peer lost (heartbeat deadtime) | n2 | 01:50:35.550 | 300 ms | 0 ms |" in text
    assert "| fence device: power status read through the BMC | n2 | 01:50:35.700 | 450 ms | 0 ms |" in text
    assert "| promote | n2 | 01:50:35.850 | 600 ms | 100 ms |" in text
    assert "Where the time goes: " in text
    assert "300 ms waiting before \"peer lost (heartbeat deadtime)\" began" in text
    assert "150 ms waiting before \"fence device: power status read through the BMC\" began" in text


def test_write_readme_replaces_only_the_block_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{README_BEGIN}\nold table\n{README_END}\nafter\n")
    assert write_readme(readme, "| new |\n")
    assert readme.read_text() == f"# x\n\nbefore\n{README_BEGIN}\n| new |\n{README_END}\nafter\n"
    (tmp_path / "plain.md").write_text("no markers\n")
    assert not write_readme(tmp_path / "plain.md", "| new |\n")


def test_the_committed_fencing_results_are_safe():
    """The committed partition row: every run fenced one node and never had two VIP holders."""
    doc = json.loads((RESULTS / "failover-fencing.json").read_text())
    part = doc["scenarios"]["partition_fenced_tuned"]
    assert len(part["runs"]) >= 10 and all(r["ok"] for r in part["runs"])
    assert sum(r["two_vip_samples"] for r in part["runs"]) == 0
    assert all(len(r["still_on"]) == 1 for r in part["runs"])


def test_the_footprint_shows_where_the_idle_rss_and_cpu_go(tmp_path):
    """The floor under the idle goals: each import's RSS, the daemon's own data,
    and the heartbeat's share of the CPU from the second (tuned) window."""
    from bench.footprint import cpu_breakdown

    ref = {"nodes": {"n1": {"role": "owner of rg_web", "cpu_pct": 0.5, "heartbeat_pps": 10.0}}}
    tuned = {"nodes": {"n1": {"role": "owner of rg_web", "cpu_pct": 1.7, "heartbeat_pps": 40.0}}}
    b = cpu_breakdown(ref, tuned)["n1"]
    # 1.2 % more CPU = 12 ms/s over 30 more packets/s: 0.4 ms a packet, 4 ms/s = 0.4 % at 10 packets/s
    assert b["ms_per_packet"] == 0.4 and b["heartbeat_pct"] == 0.4 and b["rest_pct"] == 0.1
    idle = {"rss_mb": 45.0, "cpu_pct": 0.5, "heartbeat_pps": 10.0, "nodes": {"n1": {"rss_mb": 45.0}},
            "cpu_breakdown": {"n1": b}}
    docs = {"footprint": {"idle": idle, "imports": [
        {"step": "python itself", "rss_mb": 10.0},
        {"step": "pyroute2 (the VIP and link events over netlink)", "rss_mb": 9.5, "loaded": True},
        {"step": "prometheus_client (only when `metrics` is configured)", "rss_mb": 1.2, "loaded": True}]}}
    text = report(docs, tmp_path, plots=False)
    assert "Imports alone come to 19.5 MB against the goal of 35 MB." in text
    assert "| pyroute2 (the VIP and link events over netlink) | 9.5 MB |" in text
    assert "| the running daemon's own data (measured 45.0 MB minus the imports) | 25.5 MB |" in text
    assert "| n1 (owner of rg_web) | 0.50 % | 10.0 (tuned 40.0) | 0.400 ms | 0.40 % | 0.10 % |" in text


def test_the_import_probe_measures_the_real_imports():
    from bench.footprint import import_costs

    steps = import_costs()
    assert steps[0]["step"] == "python itself" and steps[0]["rss_mb"] > 3
    by_step = {s["step"]: s for s in steps}
    pyroute2 = by_step["pyroute2 (the VIP and link events over netlink)"]
    assert pyroute2["loaded"] and pyroute2["rss_mb"] > 0.5
    assert all(s.get("loaded", True) for s in steps), steps


def test_the_chaos_section_names_its_guard_and_shows_the_guarded_runs(tmp_path):
    base = {"runs": 50, "seed": 1, "availability": 0.98, "failovers": 42, "violations": 12, "split_brains": 6,
            "not_recovered": 0, "guard": None}
    fenced = {**base, "guard": "fence", "seed": 17, "violations": 0, "split_brains": 0, "failovers": 27}
    text = report({"chaos": base, "chaos-fence-rule13-main": fenced}, tmp_path, plots=False)
    chaos = text.split("## Chaos", 1)[1]
    assert "* split-brain guard: none (the reference configuration's" in chaos
    assert "| none | 50 (1) | 98.00% | 42 | 12 | 6 | 0 | chaos.json |" in chaos
    assert "| fence | 50 (17) | 98.00% | 27 | 0 | 0 | 0 | chaos-fence-rule13-main.json |" in chaos
