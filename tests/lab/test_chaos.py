"""Chaos smoke: 5 random fault schedules (bench/chaos.py) against a lab.

The invariant monitor runs the whole time: never two VIP holders, two DRBD
Primaries or two mounts, no DRBD split brain (but the one guard none makes
when a node is frozen past the deadtime); every schedule ends with the
cluster healthy again and the service answering.
"""

from __future__ import annotations

import os

import pytest

from bench.chaos import Chaos, print_summary

DEADTIME_S = 2.0  # the lab's heartbeat deadtime (conf/hasupd.yaml)


def frozen_past_deadtime(schedule: dict) -> bool:
    return any(st["fault"] == "freeze" and st["hold"] > DEADTIME_S and st["result"].startswith("done")
               for st in schedule["steps"])


@pytest.mark.lab
@pytest.mark.slow
def test_chaos_five_schedules_keep_the_invariants():
    if os.geteuid() != 0:
        pytest.fail("the chaos test needs root (it builds a namespace lab)")
    seed = int(os.environ.get("HASUPD_CHAOS_SEED", "5"))
    summary = Chaos(f"tc{os.getpid() % 1000}", seed).run(5)
    print_summary(summary)
    assert summary["runs"] == 5
    assert sum(s["samples"] for s in summary["schedules"]) > 100, "the invariant monitor did not run"
    violations = [v for s in summary["schedules"] for v in s["violations"] if "DRBD split brain" not in v]
    assert not violations, f"seed {seed}: invariants violated:\n" + "\n".join(violations[:20])
    # a DRBD split brain is a violation too, except the one split_brain_guard none (the lab's
    # default) makes by design: a node frozen longer than the deadtime is taken over on silence
    # alone, and its DRBD starts a generation of its own when it thaws (real DRBD 8.4 does too)
    unexplained = [s for s in summary["schedules"] if s["split_brains"] and not frozen_past_deadtime(s)]
    assert not unexplained, f"seed {seed}: DRBD split brain after faults shorter than the deadtime: " + \
        "; ".join(f"#{s['schedule']} {s['steps']}: {s['split_brain_lines'][:2]}" for s in unexplained)
    unrecovered = [s for s in summary["schedules"] if not s["recovered"]]
    assert not unrecovered, f"seed {seed}: not recovered after {[s['steps'] for s in unrecovered]}"
    assert summary["served_at_end"] in ("n1", "n2")
