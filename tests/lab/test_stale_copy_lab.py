"""Issue 23 in the lab (guard fence: fence_ipmilan against the lab's ipmi_sim BMCs, DRBD fencing
dont-care): the owner crashes, its peer fences it and takes the group over at a newer claim epoch
and writes; the old owner boots while its replication link is still cut (it hears the new owner,
DRBD cannot resync it), then the new owner crashes too.  The booted node's copy lacks what the new
owner wrote although DRBD calls it UpToDate: it must not promote it (rule 13).  Once the new owner
is powered on again and DRBD has resynced, the group runs again, with the data written at the
newer epoch."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from labkit import ctl, group, served_by, status, wait_for

from bench.common import boot
from hasupd_lab.netlab import DRBD_PORT, LAN

CUT = "st_drbd_cut"  # this test's own nftables table on the lab's switch


def cut_drbd(lab, a: str, b: str) -> None:
    """Drop only the DRBD replication link between a and b (the heartbeat rings stay up)."""
    rules = [f"add table bridge {CUT}",
             f"add chain bridge {CUT} cut {{ type filter hook forward priority -10; }}"]
    for src, dst in ((a, b), (b, a)):
        match = f'iifname "{lab.topo.port(src, 0)}" oifname "{lab.topo.port(dst, 0)}"'
        rules += [f"add rule bridge {CUT} cut {match} tcp dport {DRBD_PORT} drop",
                  f"add rule bridge {CUT} cut {match} tcp sport {DRBD_PORT} drop"]
    subprocess.run(lab.topo.exec_argv(LAN, ["nft", "-f", "-"]), input="\n".join(rules) + "\n", text=True,
                   check=True)


def heal_drbd(lab) -> None:
    subprocess.run(lab.topo.exec_argv(LAN, ["nft", "delete", "table", "bridge", CUT]), check=True)


MOUNT = "/mnt/data"


def drbd(lab, node: str) -> dict:
    """The node's DRBD r0 as hasupd sees it (hasupctl drbd status --json)."""
    return json.loads(ctl(lab, node, "drbd", "status", "--json").stdout)["r0"]


def in_sync(lab, node: str) -> bool:
    d = drbd(lab, node)
    return d["connection"] == "Connected" and d["disk"] == d["peer_disk"] == "UpToDate"


def saved_state(lab, node: str) -> dict:
    return json.loads((lab.node_dir(node) / "state" / "state.json").read_text())


def claim(lab, node: str) -> int:
    return saved_state(lab, node).get("claims", {}).get(node, {}).get("rg_web", 0)


def synced_epoch(lab, node: str) -> int:
    return saved_state(lab, node).get("se", {}).get("rg_web", 0)


def fenced(lab, node: str) -> bool:
    """node's fencing of its peer is over: a fence confirmed it off, or its BMC reports it off."""
    peer = status(lab, node)["fencing"]["peer"]
    return peer["state"] == "succeeded" or peer["power"] == "off"


@pytest.mark.lab
@pytest.mark.parametrize("crashes", ["owner", "standby"])
def test_fenced_node_boots_then_survivor_crashes_stale_copy_not_promoted(make_lab, crashes):
    """crashes=owner: the survivor takes the group over at a newer epoch (issue 23 as chaos found
    it); crashes=standby: the owner fences its silent peer and goes on writing alone, claiming a
    new epoch (rule 13's owner half)."""
    lab = make_lab(guard="fence")
    owner = wait_for("the group served", lambda: served_by(lab), 90)
    other = "n2" if owner == "n1" else "n1"
    first, second = (owner, other) if crashes == "owner" else (other, owner)
    wait_for(f"DRBD in sync on {other}", lambda: in_sync(lab, other), 90)

    # 1. one node crashes; the other fences it (BMC), runs the group at a newer claim epoch, and writes
    lab.fault(first, "crash")
    wait_for(f"{second} serving", lambda: served_by(lab) == second, 90)
    wait_for(f"{second} knows {first} fenced", lambda: fenced(lab, second), 60)  # before it boots again
    before = synced_epoch(lab, second)
    wait_for(f"{second} claims an epoch newer than the last in-sync one ({before})",
             lambda: claim(lab, second) > before, 30)
    marker = "written at the newer epoch"
    lab.exec(second, ["sh", "-c", f"echo '{marker}' > {MOUNT}/epoch2 && sync"], check=True)

    # 2. the fenced node boots with its replication link cut: it hears the new owner, cannot resync
    cut_drbd(lab, first, second)
    boot(lab, first)
    wait_for(f"{first} hears {second} run the group", lambda: group(lab, first)["node"] == second, 90)
    assert drbd(lab, first)["disk"] == "UpToDate"  # DRBD fencing dont-care: an unconnected copy looks good

    # 3. the new owner crashes before any resync: the stale copy is neither promoted nor served
    lab.fault(second, "crash")
    deadline = time.monotonic() + 20  # well past deadtime, owner_head_start and a fence
    while time.monotonic() < deadline:
        assert served_by(lab) == "", f"{first} serves its stale copy"
        assert drbd(lab, first)["role"] == "Secondary"
        time.sleep(0.5)
    assert "may be stale" in ctl(lab, first, "explain").stdout
    alerts = (lab.node_dir(first) / "hasupd.log").read_text(errors="replace")
    assert "no_takeover" in alerts and "hasupctl promote --force r0" in alerts

    # 4. the new owner is powered on, DRBD resyncs the stale copy: the group runs again, with the data
    heal_drbd(lab)
    boot(lab, second)
    owner = wait_for("the group served again", lambda: served_by(lab), 120)
    shown = lab.exec(owner, ["cat", f"{MOUNT}/epoch2"], capture_output=True, text=True)
    assert shown.stdout.strip() == marker
