"""The safe rows of the failure matrix (issue 17), run in the lab.

With the fence guard, and with the drbd guard plus fence devices, no fault
of the matrix (live partition, partition of the rings only, owner power
cut, owner hung, the peer's BMC down plus a partition) ever shows two VIP
holders or two DRBD Primaries in the invariant monitor's samples; exactly
one node serves at the end of each fault's hold; and the cluster comes back
healthy afterwards (a fenced node powered on rejoins as Secondary).

bench/matrix.py runs the same cells for every guard (`make test-partitions`,
which writes the README's table).  Here the heartbeat is tuned (interval
0.1 s, deadtime 1 s) and each fault held 7 s (deadtime + the 2 s head start
+ a fence + the takeover, with room): shorter runs, the same decisions.
"""

from __future__ import annotations

import os

import pytest

from bench.matrix import FAULTS, run_guard

TUNED = {"heartbeat.interval": "100ms", "heartbeat.deadtime": "1s"}
HOLD = 7.0


def _check_safe(cells: list[dict], guard: str, faults: list[str]) -> None:
    assert [c["fault"] for c in cells] == faults
    for c in cells:
        where = f"guard {guard}, fault {c['fault']}"
        assert c["samples"] > 50, f"{where}: the invariant monitor did not run"
        assert c["two_vip_samples"] == 0 and c["two_primary_samples"] == 0, \
            f"{where}: two holders: {c['violations']}"
        assert c["served_at_hold"] in ("n1", "n2"), f"{where}: nobody served at the end of the hold: {c}"
        assert c["recovered"] and c["served_at_end"], f"{where}: not healthy again after the heal: {c}"
        if c["fault"] in ("power-cut", "hung"):
            assert c["served_at_hold"] != c["owner"], f"{where}: the peer did not take over: {c}"
        if c["fault"] == "partition":
            # the owner's head start: it keeps the service, the peer is fenced
            assert c["served_at_hold"] == c["owner"] and c["powered_off"] == [c["peer"]], c


def _prefix(tag: str) -> str:
    return f"p{tag}{os.getpid() % 1000}"[:6]


# the cells where a guard's decisions differ (make test's time is bounded:
# the whole matrix is `make test-partitions`): the fence race of a live
# partition, a failed fence (the BMC down) deciding it the other way, a hung
# owner fenced after the head start; DRBD's fence-peer handler fencing in a
# partition, and answering "fenced" for a node its BMC reports off
@pytest.mark.lab
def test_fence_guard_partition_hung_owner_and_bmc_down_are_safe():
    faults = ["partition", "hung", "bmc-down+partition"]
    assert set(faults) <= set(FAULTS)
    _check_safe(run_guard("fence", faults, HOLD, _prefix("f"), TUNED), "fence", faults)


@pytest.mark.lab
def test_drbd_guard_with_fence_devices_partition_and_power_cut_are_safe():
    faults = ["partition", "power-cut"]
    _check_safe(run_guard("drbd+fence", faults, HOLD, _prefix("d"), TUNED), "drbd+fence", faults)
