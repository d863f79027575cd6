"""Who may run a group: ``why_not(f, node)`` asks each bar in turn (standby, ban, the migration
threshold, a pin elsewhere, the ping guard, DRBD quorum, the link, the data, a stale copy)."""

from __future__ import annotations

from hasupd.model import Action
from hasupd.planner.facts import GroupFacts, times
from hasupd.planner.rules import rule


def why_not(f: GroupFacts, node: str, starting: bool = True, count_failures: bool = True) -> str:
    """Why node cannot run (start, or with starting=False keep) the group; "" = it can.
    count_failures=False: a fail count at the threshold does not bar node (it keeps the
    group and recovers in place because no other node can run it)."""
    if node != f.local and not f.peer_alive:
        return f"{node} is not reachable"
    why = (standby(f, node) or banned(f, node) or (count_failures and at_threshold(f, node))
           or pinned_elsewhere(f, node) or ping_guard(f, node, starting) or quorum_lost(f, node))
    if why or not starting:
        return why or ""
    return (link_down(f, node) or f.good_data(node)[0] or (node == f.local and stale_copy(f))
            or f.apart_from_live_peer(node))


@rule("R2-standby", "A node in standby runs no group: its groups leave it, nothing starts there.")
def standby(f: GroupFacts, node: str) -> str:
    return f"{node} is in standby" if f.node(node).standby else ""


@rule("R3-ban", "A node barred from a group (the threshold was reached there) stays barred until "
      "`hasupctl cleanup`, even after its fail count expires.")
def banned(f: GroupFacts, node: str) -> str:
    if (f.name, node) in f.view.bans:
        return f"{node} is banned from {f.name} until `hasupctl cleanup {f.name}`"
    return ""


@rule("R3-threshold-bars", "A node where a resource of the group failed migration_threshold times (not "
      "expired by failure_timeout) cannot run the group.")
def at_threshold(f: GroupFacts, node: str) -> str:
    fail = f.fail(node)
    if fail:
        return (f"{fail[0]} failed {times(fail[1])} on {node}, reaching the migration threshold "
                f"of {f.g.migration_threshold}")
    return ""


@rule("R8-pin", "A pin (`hasupctl move --pin`) is a constraint: the group runs nowhere but on the pinned "
      "node, and a pin to a node that cannot run it stops it everywhere else.")
def pinned_elsewhere(f: GroupFacts, node: str) -> str:
    move = f.view.moves.get(f.name)
    if move is not None and move.pin and move.node != node:
        return f"{f.name} is pinned to {move.node}"
    return ""


@rule("R6-ping-guard", "split_brain_guard ping: a node without the tie-breaker starts nothing and stops "
      "what it runs; a check not answered yet stops nothing but starts nothing.")
def ping_guard(f: GroupFacts, node: str, starting: bool) -> str:
    if f.cfg.split_brain_guard.mode != "ping":
        return ""
    tb = f.tiebreaker(node)
    if tb is False:
        return f"the tie-breaker is unreachable from {node} (split_brain_guard ping)"
    if tb is None and starting and node == f.local:
        return f"the tie-breaker check has not answered yet on {node}"
    return ""


@rule("R4-quorum", "DRBD 9 without quorum on a node (I/O frozen or failing there): the node cannot run "
      "the group.")
def quorum_lost(f: GroupFacts, node: str) -> str:
    d = f.drbd(f.node(node))
    if d is not None and d.quorum_lost:  # DRBD 9: I/O there is frozen or failing
        what = f"suspended:{d.suspended_reason}" if d.suspended_reason else "quorum:no"
        return f"DRBD {d.resource} has lost quorum on {node} ({what})"
    return ""


@rule("R2-link-down", "A VIP whose interface has no carrier is not a failure but 'cannot serve now': "
      "nothing of the group starts on that node; the group moves to a peer whose link is up, else waits.")
def link_down(f: GroupFacts, node: str) -> str:
    link = f.link(f.node(node))
    return f"{node} cannot serve {f.name} now: {link}" if link else ""


# ---------------------------------------------------------------- rule 13: the stale copy after a fence


def stale_reason(f: GroupFacts) -> str:
    """Why this node's copy may be stale ("" = it is not known to be): the peer held the group
    at a newer claim epoch than the last one at which this copy was in sync with the owner
    (``view.peer_epochs``/``synced_epochs``: the engine folds the claims and DRBD state in view
    into them before each round), so the peer wrote data this copy lacks, whatever DRBD's disk
    state says (fencing dont-care brings an unconnected disk up UpToDate).  An operator's
    forced promotion overrides it."""
    d, view, name = f.d, f.view, f.name
    if d is None or d.resource in view.forced_promotions:
        return ""
    seen, synced = view.peer_epochs.get(name, 0), view.synced_epochs.get(name, 0)
    if seen <= synced:
        return ""
    return (f"{f.peer_name} held {name} at claim epoch {seen}, newer than epoch {synced}, the last at "
            f"which {f.local}'s copy of {d.resource} was seen in sync with the owner, and DRBD has not "
            f"been Connected and in sync since: that copy may be stale, although DRBD calls it {d.disk}")


@rule("R13-stale-copy", "A node whose peer held the group at a newer claim epoch than the last one at which "
      "their copies were seen in sync does not promote (whatever DRBD's disk state says) until DRBD has been "
      "Connected and in sync since; only an operator's forced promotion overrides it.")
def stale_copy(f: GroupFacts) -> str:
    # with the peer alive this only matters when its copy is unusable (else DRBD not in sync is
    # refused by apart_from_live_peer on both nodes alike)
    return stale_reason(f)


def stale_copy_alert(f: GroupFacts, situation: str, why: str) -> dict[str, Action]:
    """The standing alert no_takeover:GROUP of a refused stale copy: why, and what the operator can do."""
    name, local, peer, r = f.name, f.local, f.peer_name, f.d.resource
    return f.alert(f"no_takeover:{name}", "critical", "no_takeover",
                   f"{situation}, but {local} does not take {name} over: {why}; bring {peer}'s copy back so "
                   f"that DRBD resyncs {local}'s, or, if {peer}'s data is lost for good, force the promotion "
                   f"on {local} (`hasupctl promote --force {r}`), accepting the loss of what {peer} wrote")
