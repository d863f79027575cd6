"""The engine's side of the rolling upgrade (membership/heartbeat.py "Rolling upgrade"): its report goes
out in the form of the wire version the peer reads, and a change of that version is said once."""

from __future__ import annotations

import asyncio

from engine_fakes import PEER, make_engine

from hasupd.membership import heartbeat as hbmod
from hasupd.membership import report
from hasupd.model import node_state_from_dict


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
