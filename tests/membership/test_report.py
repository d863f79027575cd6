"""The compact node report of the heartbeat (membership/report.py): the same facts back, and
100 groups in one packet of at most 1,200 bytes."""

from __future__ import annotations

import dataclasses
import time

import pytest

from hasupd.membership import report, wire
from hasupd.model import DrbdStatus, NodeState, ResourceStatus, ResState, to_dict

KEY = bytes(range(64))


def node_with(groups: int, details: bool = True) -> NodeState:
    """The reference group plus generated ones (a VIP and an OCF Dummy each, as bench/footprint.py)."""
    res = {"res_vip": ResourceStatus(ResState.STARTED, "10.99.0.20/24 on eth0, link up", time.monotonic()),
           "res_filesystem": ResourceStatus(ResState.STARTED, "/dev/drbd1 on /mnt/data (ext4)", time.monotonic()),
           "res_httpd": ResourceStatus(ResState.FAILED, "pid 1234 exited (signal 9)", time.monotonic())}
    for i in range(1, groups):
        res[f"vip_g{i}"] = ResourceStatus(ResState.STARTED, f"10.99.{i // 200}.{20 + i % 200}/24 on eth0, link up"
                                          if details else "", time.monotonic() + i * 0.0137)
        res[f"dummy_g{i}"] = ResourceStatus(ResState.STOPPED if i % 7 == 0 else ResState.STARTED,
                                            "monitor ok" if details else "", time.monotonic() + i * 0.021)
    return NodeState(
        "n1", alive=True, rings=(True, False), incarnation=wire.new_incarnation(), standby=True,
        drbd={"r0": DrbdStatus("r0", up=True, role="Primary", peer_role="Secondary", disk="UpToDate",
                               peer_disk="Inconsistent", connection="Connected", replication="SyncSource",
                               sync_percent=45.3, minor=1, may_promote=False)},
        resources=res, claims={"rg_web": 12, **{f"rg_g{i}": 3 + i % 2 for i in range(1, groups)}},
        settled=True, config_digest="0123456789abcdef", tiebreaker=False, link_down={"res_vip": "eth0 has no carrier"})


def test_round_trip_keeps_every_fact_but_the_senders_clock():
    ns = node_with(10)
    back = report.unpack(report.pack(ns))
    assert back == dataclasses.replace(
        ns, resources={k: dataclasses.replace(r, since=0.0) for k, r in ns.resources.items()})
    plain = NodeState("n2", incarnation="")
    assert report.unpack(report.pack(plain)) == plain
    no_details = report.unpack(report.pack(ns, details=False))
    assert {r.detail for r in no_details.resources.values()} == {""}
    assert {k: r.state for k, r in no_details.resources.items()} == {k: r.state for k, r in ns.resources.items()}


@pytest.mark.parametrize("groups", [1, 10, 50, 100])
def test_a_hundred_groups_fit_in_1200_bytes(groups):
    """The engine's payload (report without details when the packet is full) for 100 groups
    stays under the budget; the first form needed 2.7 kB (more than a datagram) for the same."""
    ns = node_with(groups, details=False)
    state = {"e": 42}
    packet = wire.encode(KEY, "web", "n1", ns.incarnation, 2**40, "0123456789abcdef",
                         {"N": report.pack(ns), "state": state, "outdate": []})
    print(f"{groups} groups: {len(packet)} bytes (first form: "
          f"{len(wire.Payload.of({'node': to_dict(ns), 'state': state}).body)} bytes of payload)")
    assert len(packet) <= 1200
    assert report.unpack(wire.decode(packet, KEY, "web").payload["N"]).claims == ns.claims


@pytest.mark.parametrize("bad, error", [
    ("n1", TypeError),
    ({}, KeyError),
    ({"n": "n1", "d": []}, TypeError),
    ({"n": "n1", "d": {"r0": {"evil": 1}}}, ValueError),
    ({"n": "n1", "r": {"started": 5}}, TypeError),
    ({"n": "n1", "r": {"bogus": "res_vip"}}, ValueError),
    ({"n": "n1", "e": {"1e999": "rg_web"}}, ValueError),
    ({"n": "n1", "g": "12"}, ValueError),
    ({"n": "n1", "x": {"res_vip": 5}}, TypeError),
])
def test_malformed_reports_raise(bad, error):
    with pytest.raises(error):
        report.unpack(bad)
