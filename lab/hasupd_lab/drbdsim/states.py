"""The state rules that need no resource: the disk state names and the sync
handshake both sides decide from the two hellos they exchanged."""

from __future__ import annotations

from hasupd_lab.drbdsim import generations

UPTODATE, CONSISTENT, OUTDATED, INCONSISTENT, DISKLESS = (
    "UpToDate", "Consistent", "Outdated", "Inconsistent", "Diskless")


def decide(a: dict, b: dict) -> tuple[str, str | None, int]:
    """The sync handshake (DRBD's uuid_compare, simplified), symmetric: both
    sides compute it from the two hellos sorted by node name.  Returns
    (outcome, source node, KiB to resync); outcome in
    none|sync|split-brain|unrelated|target-primary."""
    outcome, source, amount = _compare(a, b)
    if outcome == "sync":
        src, tgt = (a, b) if source == a["node"] else (b, a)
        if tgt.get("role") == "Primary" and tgt.get("image") != src.get("image"):
            return "target-primary", None, 0  # its mounted data cannot be replaced under it
    return outcome, source, amount


def _compare(a: dict, b: dict) -> tuple[str, str | None, int]:
    """DRBD 8.4's drbd_uuid_compare + drbd_sync_handshake (generations.py) from a's side."""
    full = 1 << 62
    if a["disk"] == DISKLESS or b["disk"] == DISKLESS:
        return "none", None, 0
    hg, _rule = generations.compare(
        generations.of_md(a), generations.of_md(b), me_crashed_primary=bool(a.get("crashed")),
        peer_flags=generations.FLAG_CRASHED_PRIMARY if b.get("crashed") else 0,
        me_primary=a.get("role") == "Primary", peer_primary=b.get("role") == "Primary")
    hg = generations.handshake(hg, a["disk"], b["disk"], bool(a["discard"]),
                               generations.FLAG_DISCARD_MY_DATA if b["discard"] else 0)
    if hg == 0:
        return "none", None, 0
    if generations.is_split_brain(hg):
        return "split-brain", None, 0
    if abs(hg) not in (1, 2):
        return "unrelated", None, 0
    src = a if hg > 0 else b
    # a bitmap-based resync copies what either side wrote while apart (both bitmaps are merged)
    return "sync", src["node"], full if abs(hg) == 2 else max(a.get("oos", 0), b.get("oos", 0), 4)
