"""Chaos smoke: 5 random fault schedules (bench/chaos.py) against a lab.

The invariant monitor runs the whole time: never two VIP holders, two DRBD
Primaries or two mounts; every schedule ends with the cluster healthy again
and the service answering.
"""

from __future__ import annotations

import os

import pytest

from bench.chaos import Chaos, print_summary


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
    violations = [v for s in summary["schedules"] for v in s["violations"]]
    assert not violations, f"seed {seed}: invariants violated:\n" + "\n".join(violations[:20])
    unrecovered = [s for s in summary["schedules"] if not s["recovered"]]
    assert not unrecovered, f"seed {seed}: not recovered after {[s['steps'] for s in unrecovered]}"
    assert summary["served_at_end"] in ("n1", "n2")
