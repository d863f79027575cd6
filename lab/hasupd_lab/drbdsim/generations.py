"""DRBD 8.4's data generations (UUIDs) and its resync decision, pure.

Each disk carries four 64-bit UUIDs: current, bitmap, history1, history2.
A Primary that loses its peer, or a node promoted without one, starts a
new generation (``new_current``): the old current UUID moves to the bitmap
slot, but only when that slot is empty (a node already apart keeps its
generation).  The lowest bit of a UUID says "was Primary" and is ignored in
comparisons.  A Primary that crashes keeps its current UUID (it never saw
the disconnect) and its metadata says "crashed primary" on the next attach.

``compare`` is ``drbd_uuid_compare`` of drbd-8.4 (drbd/drbd_receiver.c),
rule by rule, for a peer speaking protocol 101 (the kernel's numbers and
rule numbers, so a kernel log's ``uuid_compare()=N by rule R`` can be
checked against it); ``handshake`` adds what ``drbd_sync_handshake`` does
with the result (disk states, ``--discard-my-data``, default after-sb
policies = disconnect).  Results: 2 / -2 full sync as source / target,
1 / -1 bitmap-based resync as source / target, 0 nothing to do, 100 / -100
split brain, -1000 unrelated data.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

UUID_JUST_CREATED = 4
UUID_NEW_BM_OFFSET = 1 << 48
FLAG_DISCARD_MY_DATA, FLAG_CRASHED_PRIMARY, FLAG_INCONSISTENT = 1, 2, 4
_NOT_PRIMARY = ~1 & ((1 << 64) - 1)


class Uuids(NamedTuple):
    current: int
    bitmap: int = 0
    history1: int = 0
    history2: int = 0

    @classmethod
    def parse(cls, text: str) -> Uuids:
        """``CD5D76D4C69DE661:F28863833DF7AF79:5D8D...:5D8C...`` as the kernel logs it."""
        return cls(*(int(x, 16) for x in text.split(":")[:4]))

    @property
    def history(self) -> tuple[int, int]:
        return (self.history1, self.history2)


def _m(u: int) -> int:
    return u & _NOT_PRIMARY


def compare(me: Uuids, peer: Uuids, *, me_crashed_primary: bool = False, peer_flags: int = 0,
            me_primary: bool = False, peer_primary: bool = False,
            resolve_conflicts: bool = False) -> tuple[int, int]:
    """(result, rule) of drbd_uuid_compare seen from ``me``."""
    s, p = _m(me.current), _m(peer.current)
    if s == UUID_JUST_CREATED and p == UUID_JUST_CREATED:
        return 0, 10
    if s in (UUID_JUST_CREATED, 0) and p != UUID_JUST_CREATED:
        return -2, 20
    if s != UUID_JUST_CREATED and p in (UUID_JUST_CREATED, 0):
        return 2, 30
    if s == p:
        if peer.bitmap == 0 and me.bitmap != 0:
            ok = _m(me.bitmap) == _m(peer.history1) and _m(me.history1) == _m(peer.history2)
            return 1, (34 if ok else 36)
        if me.bitmap == 0 and peer.bitmap != 0:
            ok = _m(me.history1) == _m(peer.bitmap) and _m(me.history2) == _m(peer.history1)
            return -1, (35 if ok else 37)
        # common power failure: who had been Primary when it went down?
        rct = (1 if me_crashed_primary else 0) + (peer_flags & FLAG_CRASHED_PRIMARY)
        if rct == 0:
            return 0, 40
        if me_primary or peer_primary:
            if me_primary and peer_primary:
                return -100, 41
            return (1 if me_primary else -1), 41
        if rct == 1:
            return 1, 40
        if rct == 2:
            return -1, 40
        return (-1 if resolve_conflicts else 1), 40
    if s == _m(peer.bitmap):
        return -1, 50
    if s == _m(peer.history1) and s + UUID_NEW_BM_OFFSET == _m(peer.bitmap):
        return -1, 51  # the peer's last sync UUID did not get through: undone
    if any(s == _m(h) for h in peer.history):
        return -2, 60
    if _m(me.bitmap) == p:
        return 1, 70
    if _m(me.history1) == p and _m(me.history1) + UUID_NEW_BM_OFFSET == _m(me.bitmap):
        return 1, 71
    if any(_m(h) == p for h in me.history):
        return 2, 80
    if _m(me.bitmap) == _m(peer.bitmap) and _m(me.bitmap) != 0:
        return 100, 90
    if any(_m(a) == _m(b) for a in me.history for b in peer.history):  # empty slots too, as the kernel
        return -100, 100
    return -1000, 100


DISK_RANK = {"Diskless": 0, "Failed": 0, "Inconsistent": 4, "Outdated": 5, "DUnknown": 6, "Consistent": 7,
             "UpToDate": 8}


def handshake(hg: int, my_disk: str, peer_disk: str, discard_mine: bool, peer_flags: int) -> int:
    """drbd_sync_handshake's use of the compare result (after-sb policies: disconnect)."""
    if hg == -1000:
        return hg
    mine, theirs = DISK_RANK.get(my_disk, 0), DISK_RANK.get(peer_disk, 0)
    inc = DISK_RANK["Inconsistent"]
    if (mine == inc and theirs > inc) or (theirs == inc and mine > inc):
        full = hg == -100 or abs(hg) == 2
        hg = 1 if mine > inc else -1
        if full:
            hg *= 2
    if hg == 100:
        hg = -100  # after-sb-0pri/1pri/2pri disconnect: unresolved unless a side discards its data
    if hg == -100:
        if discard_mine and not peer_flags & FLAG_DISCARD_MY_DATA:
            hg = -1
        elif not discard_mine and peer_flags & FLAG_DISCARD_MY_DATA:
            hg = 1
    return hg


def is_split_brain(hg: int) -> bool:
    return abs(hg) == 100


# ---------------------------------------------------------------- the simulator's metadata

def of_md(md: dict) -> Uuids:
    """The simulator's metadata (hex strings, None for an empty slot) as UUIDs."""
    def num(x) -> int:
        if not x:
            return 0
        try:
            return int(x, 16)
        except ValueError:  # a name, not a hex UUID (hand-written hellos): any stable number
            return int.from_bytes(hashlib.sha256(str(x).encode()).digest()[:8], "big") & ~1
    current = UUID_JUST_CREATED if md.get("fresh") else num(md.get("uuid"))
    hist = list(md.get("history") or [])[:2] + [None, None]
    return Uuids(current, num(md.get("bitmap")), num(hist[0]), num(hist[1]))


def diverged(a: dict, b: dict) -> str:
    """Why two nodes' metadata would split at the next handshake ("" when they would not)."""
    hg, rule = compare(of_md(a), of_md(b))
    if is_split_brain(hg):
        return f"uuid_compare()={hg} by rule {rule}"
    if hg == -1000:
        return "unrelated data"
    return ""
