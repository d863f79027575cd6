"""Placement: where a group runs.  Nobody holds it (move target, preferred node, first name); it runs
here (stay, or leave and why); it runs on the peer.  Stickiness is decided in ``stickiness`` only."""

from __future__ import annotations

from hasupd.model import ResState
from hasupd.planner import failure, intents, ownership
from hasupd.planner.eligibility import stale_copy, stale_copy_alert, stale_reason, why_not
from hasupd.planner.facts import NO_LOCAL_DISK, Decision, GroupFacts, times
from hasupd.planner.rules import rule


@rule("R2-stickiness", "A running group stays where it is (stickiness > 0); with stickiness 0 it goes back "
      "to its preferred node when that node can run it and no move keeps it here.")
def stickiness(f: GroupFacts, holder: str, other_can: bool) -> tuple[str, str]:
    """For a group that runs on holder: (why it goes back to the other node, "" = it stays; the
    explain tail that says why it stays).  The tails differ by side only in wording: the holder's
    own explain names its preferred node, the other side's names that it is not going back."""
    other = f.cfg.peer_of(holder)
    if f.g.stickiness > 0:
        tail = " and stays there (stickiness)"
        if holder != f.local and f.g.preferred_node == f.local:
            tail += f", although {f.local} is its preferred node"
        return "", tail
    move = f.view.moves.get(f.name)
    if f.g.preferred_node == other and other_can and not (move is not None and move.node == holder):
        return f"{f.name} prefers {other} and has no stickiness: it goes back there", ""
    return "", " (its preferred node)" if holder == f.local and f.g.preferred_node == f.local else ""


# ---------------------------------------------------------------- nobody holds it, peer alive


@rule("R7-peer-probing", "A live peer that has not finished its start-up probe (or reports a resource of the "
      "group unprobed) may be running the group: wait for it.")
def peer_probing(f: GroupFacts) -> Decision | None:
    if f.peer.settled and ResState.UNKNOWN not in f.peer_states:
        return None
    return Decision(f"{f.name} is not running: waiting for {f.peer_name} to finish probing its resources "
                    "(it may be running them).", f.drbd_up())


@rule("R7-placement", "Nobody holds the group: it starts on the move target if that node can run it, else on "
      "preferred_node if it can, else on the first node name that can; both nodes reach the same answer.")
def place(f: GroupFacts) -> Decision:
    name, local, peer = f.name, f.local, f.peer_name
    can = {n: why_not(f, n) for n in (local, peer)}
    eligible = [n for n in (local, peer) if not can[n]]
    move = f.view.moves.get(name)
    if not eligible:
        alerts = stale_copy_alert(f, f"{peer} cannot run it ({can[peer]})", can[local]) \
            if can[local] == stale_reason(f) else {}
        return Decision(f"{name} is not running and cannot start: {can[local]}, and {can[peer]}.",
                        ownership.release_stale_claim(f) + f.drbd_up(), alerts)
    if move is not None and move.node in eligible:
        owner, why = move.node, f"the operator moved it to {move.node}"
    elif f.g.preferred_node in eligible:
        owner, why = f.g.preferred_node, f"{f.g.preferred_node} is its preferred node"
    elif len(eligible) == 1:
        owner, why = eligible[0], can[f.cfg.peer_of(eligible[0])]
    else:
        owner, why = sorted(eligible)[0], f"both nodes can run it and {sorted(eligible)[0]} comes first by name"
    if move is not None and move.node != owner:
        why += f"; the move to {move.node} waits: {can[move.node]}"
    if owner == local:
        return Decision(f"{name} is starting on {local}: {why}.",
                        f.start_all(f"{name} is not running anywhere and {why}: start it on {local}",
                                    f.start_epoch()))
    return Decision(f"{name} is not running here: {peer} starts it because {why}.",
                    ownership.release_stale_claim(f) + f.drbd_up())


# ---------------------------------------------------------------- the group runs here


@rule("R2-link-moves", "A node whose VIP link is down gives a running group to a peer that can run it (no fail "
      "count, no ban); with no such peer it keeps the group and waits for the link.")
def link_moves(f: GroupFacts, holder: str, other_can: bool) -> str:
    """Why the group leaves holder for the other node because of holder's link ("" = it does not)."""
    link = f.link(f.node(holder))
    if not link or not other_can:
        return ""
    if holder != f.local:
        return f"{holder} cannot serve it now: {link}"
    return (f"{f.local} cannot serve {f.name} now ({link}), so {f.name} moves to {f.peer_name}, whose link "
            "is up (the resource did not fail: no fail count, no ban)")


@rule("R4-diskless", "A Primary whose local disk is gone gives the group up when the peer can take it over "
      "(not a failure: no fail count, no ban); else it keeps running on the peer's copy.")
def diskless_moves(f: GroupFacts, holder: str, other_can: bool) -> str:
    """Why the group leaves holder for the other node because holder lost its disk ("" = it does not)."""
    d = f.drbd(f.node(holder))
    if d is None or d.role != "Primary" or d.disk not in NO_LOCAL_DISK or not other_can:
        return ""
    if holder != f.local:
        return f"DRBD {d.resource} on {holder} has lost its local disk, it is {d.disk}"
    return (f"DRBD {d.resource} on {f.local} has lost its local disk ({d.disk}: every read and write "
            f"goes to {f.peer_name}'s copy), so {f.name} moves to {f.peer_name}, which has the data (not a "
            "resource failure: no fail count, no ban)")


def leave_reason(f: GroupFacts) -> tuple[str, bool]:
    """(why the group must leave this node, ban?) or ("", False) to keep it."""
    name, local = f.name, f.local
    peer_why = why_not(f, f.peer_name)
    threshold = failure.threshold_leaves(f, peer_why)
    if threshold:
        return threshold, True
    # at the threshold with nowhere to go: keep it here and recover in place (runs_here)
    why = why_not(f, local, starting=False, count_failures=not f.fail(local))
    if why:
        return f"{why}, so {name} leaves {local}", False
    peer_can = f.peer_alive and not peer_why
    leave = (link_moves(f, local, peer_can) or diskless_moves(f, local, peer_can) or intents.move_away(f, peer_can)
             or stickiness(f, local, peer_can)[0])
    if leave:
        return leave, False
    if f.d is not None and f.d.role != "Primary":
        leave = ownership.peer_is_primary(f)
        if leave:
            return leave, False
        why = f.good_data(local)[0] or stale_copy(f)
        if why:
            return f"{why}, so {name} cannot be promoted there and leaves {local}", False
    return "", False


def runs_here(f: GroupFacts) -> Decision:
    """The group is held here (and not by the live peer): leave, or keep it and complete it."""
    name, local, peer = f.name, f.local, f.peer_name
    leave, ban = leave_reason(f)
    if leave:
        nxt = why_not(f, peer)
        then = f"{peer} takes over" if not nxt else f"{peer} cannot take over: {nxt}"
        if not f.peer_alive and f.d is not None and f.d.connected and f.d.peer_role == "Primary":
            then = f"{peer} is silent on the heartbeat but DRBD sees it Primary"
        return Decision(f"{name} is stopping on {local}: {leave}; {then}.", f.stop_all(leave, ban=ban))

    stuck = failure.no_failover(f)  # why the group cannot fail over although it reached the threshold here
    alerts = failure.no_failover_alert(f, stuck)
    actions = ownership.adopt(f)
    if f.d is not None and f.d.role != "Primary":
        actions += f.promote(f"{name} holds resources on {local}: promote {f.d.resource} before starting more")
    k = next((i for i, s in enumerate(f.states) if s != ResState.STARTED), None)
    if k is None:
        actions += intents.forget_force(f) + intents.forget_move(f) + ownership.announce_after_two_owners(f)
        if stuck:
            fail = f.fail(local)
            return Decision(f"{name} runs on {local}, recovered in place after {fail[0]} failed "
                            f"{times(fail[1])}; it cannot fail over: {stuck}.", actions, alerts)
        return Decision(f"{name} runs on {local}{why_here(f)}.", actions, alerts)
    link = f.link(f.me)
    if link:
        return Decision(f"{name} runs on {local} but is incomplete, and {local} cannot serve it now "
                        f"({link}); {peer} cannot take it over ({why_not(f, peer)}): {local} keeps it "
                        "and waits for the link before starting the rest.", actions, alerts)
    restart = failure.restart_in_place(f, k, stuck)
    return Decision(restart.sentence, actions + restart.actions, alerts)


def why_here(f: GroupFacts) -> str:
    move = f.view.moves.get(f.name)
    if move is not None and move.node == f.local:
        return " where the operator pinned it" if move.pin else " where the operator moved it"
    why = why_not(f, f.peer_name)
    link = f.link(f.me)
    if link:
        return (f" but cannot serve it now ({link}); {f.peer_name} cannot take it over ({why}): "
                f"{f.local} keeps it and waits for the link")
    if why and f.diskless_primary():
        return (f" without a local disk (DRBD {f.d.resource} is {f.d.disk}: it runs on "
                f"{f.peer_name}'s copy); {f.peer_name} cannot take it over: {why}")
    if why:
        return f"; {f.peer_name} would not take it over: {why}"
    return stickiness(f, f.local, True)[1]


# ---------------------------------------------------------------- the group runs on the peer


def runs_on_peer(f: GroupFacts) -> Decision:
    name, peer = f.name, f.peer_name
    actions = ownership.release_stale_claim(f) + f.drbd_up()
    why = why_not(f, f.local)
    # the peer at its threshold keeps the group when this node cannot take it (it recovers in place)
    leave = why_not(f, peer, starting=False, count_failures=not why)
    if not leave:
        leave = diskless_moves(f, peer, not why) or link_moves(f, peer, not why)
    peer_fail = f.fail(peer)
    if not leave and why and peer_fail:
        return Decision(f"{name} runs on {peer}, which recovers it in place after {peer_fail[0]} failed "
                        f"{times(peer_fail[1])}: it cannot fail over because {why}.", actions)
    if leave:
        then = f"{f.local} cannot take over: {why}" if why else f"{f.local} takes over then"
        return Decision(f"{name} is still held by {peer}, which must give it up ({leave}); it waits "
                        f"for {peer} to stop it and demote; {then}.", actions)
    tail = f"; {f.local} would not take it over: {why}" if why else stickiness(f, peer, True)[1]
    return Decision(f"{name} runs on {peer}{tail}.", actions)
