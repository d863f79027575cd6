"""Faults shorter than the deadtime must not split DRBD's data (issue 23).

The chaos run's two schedules that ended in a DRBD split brain, and the
deterministic core of the second one: DRBD's replication link gone for a
moment while the heartbeat says the peer is alive, then a move.  The
invariant monitor counts a split brain (the simulator's kernel log, or
diverged generations at the end) as a violation; data written before the
fault must be on the node serving afterwards.
"""

from __future__ import annotations

import time

from bench.common import boot
from tests.lab.labkit import ctl, group, served_by, wait_for

OTHER = {"n1": "n2", "n2": "n1"}


def owner_of(lab) -> str:
    owner = wait_for("the VIP to answer", lambda: served_by(lab), timeout=90)
    wait_for("the group to be started", lambda: group(lab, owner)["state"] == "started", timeout=60)
    wait_for("DRBD in sync", lambda: in_sync(lab), timeout=60)
    return owner


def drbd(lab, node: str, what: str) -> str:
    return lab.exec(node, ["drbdadm", what, "r0"], capture_output=True, text=True, timeout=30).stdout.strip()


def in_sync(lab) -> bool:
    return all(drbd(lab, n, "cstate") == "Connected" and drbd(lab, n, "dstate") == "UpToDate/UpToDate"
               for n in OTHER)


def write_marker(lab, node: str, name: str) -> str:
    text = f"{name} {time.time()}"
    lab.exec(node, ["sh", "-c", f"echo '{text}' > /mnt/data/{name} && sync /mnt/data/{name}"],
             check=True, timeout=30)
    return text


def read_marker(lab, node: str, name: str) -> str:
    return lab.exec(node, ["cat", f"/mnt/data/{name}"], capture_output=True, text=True, timeout=30).stdout.strip()


def settle_and_check(lab, mon, want_on: str | None, marker: tuple[str, str]) -> str:
    """Wait for one owner serving with DRBD in sync, then: no violation, no split brain, the data there."""
    owner = wait_for("one node serving again", lambda: served_by(lab) if (want_on is None or served_by(lab) == want_on)
                     else "", timeout=90)
    try:
        wait_for("DRBD connected and in sync on both nodes", lambda: in_sync(lab), timeout=90)
    except AssertionError:
        mon.check_kern_logs()
        assert not mon.report.split_brains, "DRBD split brain:\n" + "\n".join(mon.report.split_brains)
        raise
    time.sleep(mon.thaw_grace + 0.5)
    report = mon.stop()
    assert report.samples > 10, "the invariant monitor did not run"
    assert not report.split_brains, "DRBD split brain:\n" + "\n".join(report.split_brains)
    assert not report.violations, "invariant violated:\n" + "\n".join(report.violations[:20])
    owner = served_by(lab) or owner  # the node serving now (a later failure may have moved the group)
    assert read_marker(lab, owner, marker[0]) == marker[1], "data written before the fault is gone"
    return owner


def test_owner_crash_and_boot_within_the_deadtime(make_lab, monitor_of):
    """The owner crashes and boots again 1.2 s later (deadtime 2 s): the peer did not take over;
    the crashed Primary kept its generation, so DRBD resyncs from it and nothing splits."""
    lab = make_lab()
    owner = owner_of(lab)
    marker = ("before-crash", write_marker(lab, owner, "before-crash"))
    mon = monitor_of(lab)
    mon.note_fault(owner, "crash")
    lab.fault(owner, "crash")
    time.sleep(1.2)
    boot(lab, owner)
    mon.note_fault(owner, "boot")
    settle_and_check(lab, mon, None, marker)


def test_owner_frozen_shorter_than_the_deadtime_then_moved(make_lab, monitor_of):
    """The chaos schedule: the owner frozen 1.42 s, the group moved 1.5 s after the thaw."""
    lab = make_lab()
    owner = owner_of(lab)
    peer = OTHER[owner]
    marker = ("before-freeze", write_marker(lab, owner, "before-freeze"))
    mon = monitor_of(lab)
    mon.note_fault(owner, "freeze")
    lab.fault(owner, "freeze")
    time.sleep(1.42)
    lab.fault(owner, "thaw")
    mon.note_fault(owner, "thaw")
    time.sleep(1.5)
    ctl(lab, peer, "move", "rg_web", peer, "--wait", "--timeout", "90")
    settle_and_check(lab, mon, peer, marker)


def test_drbd_link_down_peer_alive_no_promotion_apart(make_lab, monitor_of):
    """The core of the freeze schedule, made certain: DRBD's link (ring 0) is cut for longer than
    its ping timeout while the heartbeat goes on over ring 1, so the Primary starts a new data
    generation; the cut eth0 has no carrier either, so the owner cannot serve and the group would
    go to the peer (issue 16: a lost carrier moves the group, no ban) while DRBD is apart.  The
    peer must wait for DRBD to connect and resync instead of promoting apart (which would fork
    the data).  Who serves at the end depends on which comes first, the owner's link or the
    resync: either is right, one owner and the data whole is what counts."""
    lab = make_lab()
    owner = owner_of(lab)
    peer = OTHER[owner]
    marker = ("before-cut", write_marker(lab, owner, "before-cut"))
    mon = monitor_of(lab)
    lab.fault(owner, "cut-ring", "0")
    wait_for("DRBD to notice the cut link", lambda: drbd(lab, peer, "cstate") != "Connected", timeout=30)
    wait_for("the owner to give the group up", lambda: group(lab, peer)["state"] != "started"
             or group(lab, peer)["node"] == peer, timeout=30)
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        assert not drbd(lab, peer, "role").startswith("Primary/"), f"{peer} promoted apart from its live peer"
        time.sleep(0.2)
    lab.fault(owner, "heal-ring", "0")
    settle_and_check(lab, mon, None, marker)
