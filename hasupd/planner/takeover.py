"""Takeover and peer death (rules 5 and 7): nobody holds the group and the peer is not heard.  Wait out
initdead at start-up, wait for DRBD to notice the loss (alert if it never does), refuse when this node
cannot run the group, fence first when the guard says so, then take over."""

from __future__ import annotations

from hasupd.model import FenceState
from hasupd.planner import fencing
from hasupd.planner.eligibility import stale_copy_alert, stale_reason, why_not
from hasupd.planner.facts import Decision, GroupFacts
from hasupd.planner.ownership import release_stale_claim
from hasupd.planner.rules import rule


def take_over(f: GroupFacts) -> Decision:
    initdead = initdead_wait(f)
    if initdead:
        return initdead
    gone = ("has not been heard since start-up" if not f.view.peer_ever_seen
            else f"is silent on every ring for {round(silent_for(f), 1):g}s")
    return (drbd_still_connected(f, gone) or refuse_stale_copy(f, gone) or cannot_take_over(f, gone)
            or fencing.fence_first(f, gone) or start_here(f, gone))


def silent_for(f: GroupFacts) -> float:
    """How long the peer has been silent: the heartbeat declares it dead deadtime after
    its last packet, so the silence began deadtime before peer_lost_at."""
    return f.view.now - lost_at(f) + f.cfg.heartbeat.deadtime


def lost_at(f: GroupFacts) -> float:
    return f.view.peer_lost_at if f.view.peer_lost_at is not None else f.view.now


@rule("R7-initdead", "A node that starts alone waits initdead for its peer before it starts anything.")
def initdead_wait(f: GroupFacts) -> Decision | None:
    view = f.view
    uptime = view.now - view.started_at
    initdead = f.cfg.heartbeat.initdead
    if view.peer_ever_seen or uptime >= initdead:
        return None
    return Decision(f"{f.name} is not running: {f.local} started {uptime:g}s ago and has not heard "
                    f"{f.peer_name} yet; it waits {initdead - uptime:g}s more of initdead before "
                    "starting anything.", f.drbd_up())


@rule("R5-drbd-connected", "DRBD still Connected while the heartbeat is silent: wait up to "
      "drbd.peer_dead_wait after the loss, then alert drbd_connected:GROUP and never take over (at start-up "
      "a Connected DRBD after initdead alerts at once).")
def drbd_still_connected(f: GroupFacts, gone: str) -> Decision | None:
    d, view, peer, name = f.d, f.view, f.peer_name, f.name
    if d is None or not d.connected or fencing.peer_fenced(view):
        return None
    sees = f" and still sees {peer} {d.peer_role}" if d.peer_role == "Primary" else ""
    if view.peer_ever_seen:
        waited = view.now - lost_at(f)
        bound = f.cfg.drbd.peer_dead_wait
        if waited < bound:
            return Decision(f"{name} is not running: {peer} {gone} but DRBD {d.resource} is still "
                            f"Connected{sees}; waiting up to {bound - waited:g}s more for DRBD to notice "
                            "before taking over.")
        how = f"still Connected {waited:g}s after the heartbeat loss (bound {bound:g}s)"
    else:
        how = f"Connected although the heartbeat of {peer} was never heard"
    why = (f"DRBD {d.resource} is {how}{sees}: {peer} is alive and only the heartbeat is broken, "
           f"so {f.local} does not take {name} over")
    return Decision(f"{name} is not running: {why}.", release_stale_claim(f),
                    f.alert(f"drbd_connected:{name}", "critical", "heartbeat_broken", why))


@rule("R13-refuse-stale", "The peer is gone and this node's copy is stale (R13-stale-copy): nothing starts and "
      "nothing is fenced (a node that will not take over has no reason to), with the standing alert "
      "no_takeover:GROUP saying what the operator can do.")
def refuse_stale_copy(f: GroupFacts, gone: str) -> Decision | None:
    why = why_not(f, f.local)
    if not why or why != stale_reason(f):
        return None
    return Decision(f"{f.name} is not running: {f.peer_name} {gone} and {f.local} cannot take it: {why}.",
                    release_stale_claim(f) + f.drbd_up(), stale_copy_alert(f, f"{f.peer_name} {gone}", why))


@rule("R5-no-takeover", "The peer is gone but this node cannot run the group: nothing starts; a refusal by "
      "the ping guard or by the data raises the standing alert no_takeover:GROUP.")
def cannot_take_over(f: GroupFacts, gone: str) -> Decision | None:
    name, local, peer = f.name, f.local, f.peer_name
    why = why_not(f, local)
    if not why:
        return None
    # an operator's choice (standby, ban, pin) is no news; a refusal by the guard or by
    # the data is: the service is down until someone acts (split brain alerts on its own)
    refused = (f.cfg.split_brain_guard.mode == "ping" and f.view.tiebreaker is False) or (
        why == f.good_data(local)[0] and "split brain" not in why)
    alerts = f.alert(f"no_takeover:{name}", "critical", "no_takeover",
                     f"{name} cannot run anywhere: {peer} {gone} and {why}") if refused else {}
    return Decision(f"{name} is not running: {peer} {gone} and {local} cannot take it: {why}.",
                    release_stale_claim(f) + f.drbd_up(), alerts)


@rule("R5-peer-death", "The survivor takes the group over when the peer is silent on every ring for "
      "deadtime, DRBD is not Connected to it, the split-brain guard agrees and (if configured) it is fenced.")
def start_here(f: GroupFacts, gone: str) -> Decision:
    view, peer, name, local, d = f.view, f.peer_name, f.name, f.local, f.d
    mode = f.cfg.split_brain_guard.mode
    actions = fencing.disconnect_fenced_peer(f)
    guard = {"ping": "the tie-breaker is reachable", "fence": f"{peer} was fenced",
             "drbd": "DRBD's fence-peer handler outdates the peer on promotion",
             "none": "split_brain_guard is none"}[mode]
    if mode == "drbd" and fencing.fence_first_guard(f.cfg, view):
        guard = f"{peer} was fenced"
    elif mode == "drbd":
        guard = f"DRBD knows {peer}'s copy of {d.resource} is Outdated" if d is not None else guard
    if fencing.peer_fenced(view) and view.fencing != FenceState.SUCCEEDED:
        guard = f"its fence devices report {peer} powered off (fenced already)"
    reason = f"{peer} {gone} and {guard}: take {name} over on {local}"
    return Decision(f"{name} is starting on {local}: {peer} {gone} and {guard}.",
                    actions + f.start_all(reason, f.start_epoch()))
