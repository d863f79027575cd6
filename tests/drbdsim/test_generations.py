"""The simulator's data generations against real DRBD 8.4.11 (issue 23).

Every ``drbd_sync_handshake`` the kernel logged in the captures of
shared/fixtures/drbd (the UUIDs of both sides, flags, and the kernel's
``uuid_compare()=N by rule R``) is replayed through
``hasupd_lab.drbdsim.generations`` and through the simulator's own
handshake decision (``daemon.decide``): both must reach the kernel's
verdict, by the kernel's rule, and what the kernel did next (resync as
source or target, split brain) must follow.  The captures live outside the
repository (``../shared/fixtures/drbd`` of the clone, or an ancestor's
``shared/``; ``HASUPD_SHARED_FIXTURES`` overrides): missing captures fail
the test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from hasupd_lab.drbdsim import generations
from hasupd_lab.drbdsim.generations import Uuids
from hasupd_lab.drbdsim.states import decide

REPO = Path(__file__).resolve().parents[2]


def shared_captures() -> Path:
    env = os.environ.get("HASUPD_SHARED_FIXTURES")
    candidates = [Path(env)] if env else [p / "shared" / "fixtures" / "drbd" for p in REPO.parents]
    for c in candidates:
        if c.is_dir():
            return c
    pytest.fail(f"the real DRBD captures are missing: no shared/fixtures/drbd beside {REPO} or above it "
                "(set HASUPD_SHARED_FIXTURES)")


_UUIDS = re.compile(r"block drbd\d+: (self|peer) ([0-9A-F:]+) bits:(\d+) flags:(\d+)")
_VERDICT = re.compile(r"uuid_compare\(\)=(-?\d+) by rule (\d+)")


def handshakes() -> list[dict]:
    """Each handshake in the dmesg captures: self/peer UUIDs, peer flags, verdict, and what followed."""
    found = []
    for path in sorted(shared_captures().glob("dmesg-*.txt")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if "drbd_sync_handshake:" not in line:
                continue
            hs = {"file": path.name}
            for follow in lines[i + 1:i + 4]:
                m = _UUIDS.search(follow)
                if m:
                    hs[m.group(1)] = Uuids.parse(m.group(2))
                    hs[m.group(1) + "_flags"] = int(m.group(4))
                m = _VERDICT.search(follow)
                if m:
                    hs["hg"], hs["rule"] = int(m.group(1)), int(m.group(2))
            after = "\n".join(lines[i + 4:i + 20])
            hs["then"] = ("split-brain" if "Split-Brain detected but unresolved" in after else
                          "source" if re.search(r"Sync from this node|Began resync as SyncSource", after) else
                          "target" if re.search(r"Sync from peer node|Began resync as SyncTarget", after) else
                          "none")
            found.append(hs)
    return found


def test_the_captures_hold_handshakes_of_each_kind():
    got = handshakes()
    assert len(got) >= 6, [h["file"] for h in got]
    assert {h["then"] for h in got} >= {"split-brain", "source", "target"}
    assert all("self" in h and "peer" in h and "hg" in h for h in got), got


@pytest.mark.parametrize("hs", handshakes(), ids=lambda h: h["file"])
def test_uuid_compare_matches_the_kernel(hs):
    got = generations.compare(hs["self"], hs["peer"], peer_flags=hs["peer_flags"])
    assert got == (hs["hg"], hs["rule"]), f"{hs['file']}: kernel said {hs['hg']} by rule {hs['rule']}"


@pytest.mark.parametrize("hs", handshakes(), ids=lambda h: h["file"])
def test_compare_is_the_same_verdict_seen_from_the_peer(hs):
    """Both kernels compute the handshake: the peer reaches the mirrored verdict."""
    mine, _ = generations.compare(hs["self"], hs["peer"])
    theirs, _ = generations.compare(hs["peer"], hs["self"])
    assert theirs == (mine if abs(mine) == 100 else -mine)


def _discards(hs: dict, all_hs: list[dict]) -> bool:
    """Whether this node connected with --discard-my-data: its peer's dump of it (the other node's
    capture of the same scenario) says flags:1."""
    other = hs["file"].replace("node1", "NODE").replace("node2", "node1").replace("NODE", "node2")
    twin = [o for o in all_hs if o["file"] == other and o["self"] == hs["peer"] and o["peer"] == hs["self"]]
    return any(o["peer_flags"] & generations.FLAG_DISCARD_MY_DATA for o in twin)


@pytest.mark.parametrize("hs", handshakes(), ids=lambda h: h["file"])
def test_what_the_kernel_did_next_follows(hs):
    hg = generations.handshake(hs["hg"], "UpToDate", "UpToDate", _discards(hs, handshakes()), hs["peer_flags"])
    then = "split-brain" if generations.is_split_brain(hg) else "source" if hg > 0 else \
        "target" if hg < 0 else "none"
    assert then == hs["then"], hs


def _hello(node: str, u: Uuids, discard: bool = False) -> dict:
    hexs = [f"{x:016X}" if x else None for x in u]
    return {"node": node, "uuid": hexs[0], "bitmap": hexs[1], "history": hexs[2:], "disk": "UpToDate",
            "role": "Secondary", "discard": discard, "oos": 0, "fresh": False, "crashed": False}


@pytest.mark.parametrize("hs", handshakes(), ids=lambda h: h["file"])
def test_the_simulator_decides_as_the_kernel(hs):
    """The simulator's handshake on the captured generations ends where the kernel's did."""
    me = _hello("a", hs["self"], discard=_discards(hs, handshakes()))
    peer = _hello("b", hs["peer"], discard=bool(hs["peer_flags"] & generations.FLAG_DISCARD_MY_DATA))
    outcome, source, _ = decide(me, peer)
    want = {"split-brain": ("split-brain", None), "source": ("sync", "a"), "target": ("sync", "b"),
            "none": ("none", None)}[hs["then"]]
    assert (outcome, source) == want, hs


def test_new_generation_keeps_the_history_and_moves_current_to_bitmap():
    """link-loss-primary (node1) started a generation when it lost node2; node2's own UUIDs, logged
    at the reconnect, are node1's from before: the old current went to the bitmap slot, the
    history stayed (the lowest bit only says who was Primary)."""
    d = shared_captures()
    m = re.search(r"new current UUID ([0-9A-F:]+)", (d / "dmesg-link-loss-primary-node1.txt").read_text())
    new = Uuids.parse(m.group(1))
    before = next(h["self"] for h in handshakes() if h["file"] == "dmesg-reconnect-resync-node2.txt")
    strip = ~1
    assert before.bitmap == 0  # a generation starts only from an empty bitmap slot
    assert new.bitmap & strip == before.current & strip
    assert [x & strip for x in new.history] == [x & strip for x in before.history]
    assert new.current & strip not in {before.current & strip, *(x & strip for x in before.history)}


def test_a_crashed_primary_that_kept_its_generation_resyncs_not_splits():
    """The rules the captures do not show but the kernel source does (rule 40/41/50/90)."""
    u = Uuids(0xAAAA0000AAAA0000, 0, 0x1111, 0x2222)
    assert generations.compare(u, u, me_crashed_primary=True) == (1, 40)
    assert generations.compare(u, u, peer_flags=generations.FLAG_CRASHED_PRIMARY) == (-1, 40)
    assert generations.compare(u, u, me_crashed_primary=True, peer_primary=True) == (-1, 41)
    assert generations.compare(u, u) == (0, 40)
    took_over = Uuids(0xBBBB0000BBBB0000, u.current, *u.history)
    assert generations.compare(u, took_over, me_crashed_primary=True) == (-1, 50)
    also = Uuids(0xCCCC0000CCCC0000, u.current, *u.history)
    assert generations.compare(also, took_over) == (100, 90)
