"""The status document shows the fence facts the planner decides by (view.fence): the
peer's power as its devices report it, the failed attempts, the last message, and when
the next attempt is (the fence race's wait, then the retry backoff)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_daemon  # noqa: E402

from hasupd import config as configmod  # noqa: E402
from hasupd.model import FenceFacts, FenceState, NodeState  # noqa: E402
from hasupd.status import build_status, render_status  # noqa: E402

P, S, NOW, WALL = fake_daemon.P, fake_daemon.S, fake_daemon.NOW, fake_daemon.WALL


def _fence_config(tmp_path):
    doc = yaml.safe_load(open(os.path.join(fake_daemon.ROOT, "conf", "hasupd.yaml")))
    doc["split_brain_guard"] = {"mode": "fence"}
    doc["fencing"] = {"owner_head_start": "5s", "devices": [
        {"name": "site-fence", "command": ["/bin/true"], "nodes": [P, S]}]}
    (tmp_path / "hasupd.yaml").write_text(yaml.safe_dump(doc))
    return configmod.load(str(tmp_path / "hasupd.yaml"))


def _lost_peer_view(**fence):
    """The peer went silent 3 s ago; this node (primarycentos) runs no group."""
    v = fake_daemon.healthy_view()
    me = replace(v.me, resources={}, drbd={}, claims={})
    peer = NodeState(S, alive=False, rings=(False,))
    return replace(v, nodes={P: me, S: peer}, peer_lost_at=NOW - 3,
                   fence=FenceFacts(devices=True, owner_head_start=5.0, **fence))


def test_status_shows_the_peers_fence_facts_and_the_next_attempt(tmp_path):
    cfg = _fence_config(tmp_path)
    # in the fence race: a node without a group waits owner_head_start (5 s) from the loss
    doc = build_status(cfg, _lost_peer_view(peer_power="on"))
    pf = doc["fencing"]["peer"]
    assert pf == {"node": S, "power": "on", "state": "none", "attempts": 0, "last_attempt_wall": None,
                  "last_message": "", "next_attempt_wall": WALL + 2, "next_attempt_in_s": 2.0}
    assert f"Fencing {S}: power on; next attempt at" in render_status(doc) and "(in 2s)" in render_status(doc)
    # two failed attempts, the last 1 s ago: the backoff after the 2nd failure is 4 s
    view = replace(_lost_peer_view(peer_power="unknown", attempts=2, last_attempt_at=NOW - 1,
                                   last_message="site-fence: exit 1"), fencing=FenceState.FAILED)
    doc = build_status(cfg, view)
    pf = doc["fencing"]["peer"]
    assert (pf["power"], pf["state"], pf["attempts"], pf["last_attempt_wall"], pf["last_message"]) == \
        ("unknown", "failed", 2, WALL - 1, "site-fence: exit 1")
    assert (pf["next_attempt_wall"], pf["next_attempt_in_s"]) == (WALL + 3, 3.0)
    text = render_status(doc)
    assert f"Fencing {S}: power unknown; 2 failed attempts, last at" in text and "site-fence: exit 1" in text
    assert "(in 3s)" in text
    # the devices report the silent peer off: fenced already, no attempt is due
    doc = build_status(cfg, _lost_peer_view(peer_power="off"))
    assert doc["fencing"]["peer"]["power"] == "off" and doc["fencing"]["peer"]["next_attempt_wall"] is None
    # a peer that is heard: nothing to fence, no line
    doc = build_status(cfg, fake_daemon.healthy_view())
    assert doc["fencing"]["peer"]["next_attempt_wall"] is None and "Fencing " not in render_status(doc)
