"""The engine's side of the rolling upgrade (membership/heartbeat.py "Rolling upgrade"): its report goes
out in the form of the wire version the peer reads, and a change of that version is said once."""

from __future__ import annotations

import asyncio

from engine_fakes import PEER, make_engine

from hasupd.membership import heartbeat as hbmod
from hasupd.membership import report, wire
from hasupd.model import ResourceStatus, ResState, node_state_from_dict


def test_the_report_follows_the_peers_wire_version(tmp_path):
    async def main():
        eng = make_engine(tmp_path)
        hb = eng.heartbeat
        eng.publish()
        assert report.unpack(hb.payloads[-1]["N"]).name == eng.local_state().name and "node" not in hb.payloads[-1]
        hb.speak_version = 1  # the peer's packets are of version 1 now
        eng.intake.on_event[hbmod.PeerVersion](hbmod.PeerVersion(1, True))
        assert "N" not in hb.payloads[-1]
        assert node_state_from_dict(hb.payloads[-1]["node"]).claims == eng.local_state().claims
        assert [(a["event"], a["severity"], a["message"]) for a in eng.alerter.emitted] == \
            [("peer_version", "info", f"{PEER} speaks wire version 1: this node sends version 1 until it is upgraded")]
        hb.speak_version = 2  # upgraded; no alert for a switch that only follows the start-up's version 1
        eng.intake.on_event[hbmod.PeerVersion](hbmod.PeerVersion(2, False))
        assert "N" in hb.payloads[-1] and len(eng.alerter.emitted) == 1

    asyncio.run(main())


def test_before_the_peer_is_heard_a_state_too_large_for_version_1_goes_in_version_2(tmp_path):
    """Version 1 first (the peer may still be 0.1.0), but a state its form cannot carry in one datagram
    goes in version 2 rather than not at all: 0.1.0 could not have been sent it either."""
    async def main():
        eng = make_engine(tmp_path)
        hb = eng.heartbeat = hbmod.Heartbeat(eng.cfg, eng.local, b"k" * 32)  # not started: no socket
        eng.publish()
        small = hb.payload_version
        eng.resources = {f"res{i:04}": ResourceStatus(ResState.STARTED, "", 1000.0 + i * 0.37) for i in range(300)}
        eng.publish()
        return small, hb.payload_version, hb.payload_bytes(), eng.alerter.emitted

    small, large, size, alerts = asyncio.run(main())
    assert (small, large) == (1, 2) and size <= wire.MAX_PACKET and alerts == []
