"""Ownership: probing and adoption after a start (rule 11), claims and their epochs, two owners seen
(rule 12), the data deciding first, and DRBD's split brain."""

from __future__ import annotations

from hasupd.config import Config
from hasupd.model import Action, ClusterView, ResState
from hasupd.planner.eligibility import why_not
from hasupd.planner.facts import RUNNING, Decision, GroupFacts, K
from hasupd.planner.rules import Trace, rule


@rule("R11-settle-first", "The local node still probing its resources after start-up decides nothing.")
def not_settled(f: GroupFacts) -> Decision | None:
    if f.me.settled:
        return None
    return Decision(f"{f.name}: {f.local} is still probing its resources after "
                    "start-up; nothing is decided until that is done.")


@rule("R11-probe-first", "Resources not probed yet on this node are probed (MONITOR); the group is decided "
      "the next round.")
def probe_first(f: GroupFacts) -> Decision | None:
    unknown = [r.name for r, s in zip(f.g.resources, f.states) if s == ResState.UNKNOWN]
    if not unknown:
        return None
    return Decision(f"{f.name}: {', '.join(unknown)} on {f.local} must be probed before anything is decided.",
                    [f.act(K.MONITOR, r, f"{r} on {f.local} has not been probed: probe it before deciding")
                     for r in unknown])


@rule("R11-adopt", "A restart of hasupd disturbs nothing: a group found running here, held by nobody else, "
      "is adopted (claimed) as it is.")
def adopt(f: GroupFacts) -> list[Action]:
    if f.name in f.me.claims:
        return []
    return [f.act(K.CLAIM, None, f"{f.name} runs on {f.local} and nobody else holds it: claim it (adopted "
                  "after the start-up probe)", epoch=f.new_epoch())]


@rule("R12-stale-claim", "A claim alone is only an epoch: a node that holds nothing of the group drops "
      "its claim.")
def release_stale_claim(f: GroupFacts) -> list[Action]:
    if f.name in f.me.claims:
        return [f.act(K.RELEASE, None, f"{f.local} holds nothing of {f.name}: drop its ownership claim")]
    return []


@rule("R13-owner-reclaims", "An owner whose DRBD lost its peer goes on writing alone and claims a new epoch "
      "once (its claim not newer than the last in-sync epoch; fence-first guards only), so that the peer "
      "knows its copy is stale when it hears that claim.")
def reclaim_alone(f: GroupFacts, d: Decision) -> Decision | None:
    """d: the decision for the group held here; None when no new claim is due.  The peer hears the
    claim at once over a live heartbeat, or when it boots after a fence, and knows its copy is stale
    although the owner never changed.  Only with a fence-first guard: the peer cannot take the group
    over unfenced there, so the new epoch never turns a two-owner decision (rule 12) of a live partition."""
    from hasupd.planner.fencing import fence_first_guard  # fencing imports this module

    dr, view, name = f.d, f.view, f.name
    if (dr is None or dr.role != "Primary" or dr.connected or not fence_first_guard(f.cfg, view)
            or name not in f.me.claims or f.claim(f.me) > view.synced_epochs.get(name, 0)
            or any(a.kind in (K.STOP, K.DEMOTE, K.CLAIM) for a in d.actions)):
        return None
    claim = f.act(K.CLAIM, None, f"DRBD {dr.resource} is {dr.connection}, so {f.local} writes it alone: claim "
                  f"{name} at a new epoch, so that {f.peer_name}'s copy is known stale until it resyncs",
                  epoch=f.new_epoch())
    return Decision(d.sentence, d.actions + [claim], d.alerts, d.fence)


@rule("R12-two-owners", "Two owners seen: the older claim epoch loses (equal epochs: the node placement "
      "would pick); the loser stops at once and demotes, the winner starts nothing more until it has; "
      "critical alert two_owners:GROUP.")
def two_owners(f: GroupFacts) -> Decision:
    if f.d is not None:
        mine_primary = f.d.role == "Primary"
        theirs_primary = f.drbd(f.peer).role == "Primary" or (f.d.connected and f.d.peer_role == "Primary")
        if mine_primary != theirs_primary:
            return leftovers(f, f.local if mine_primary else f.peer_name)
    name, mine, theirs = f.name, f.claim(f.me), f.claim(f.peer)
    if mine != theirs:
        winner = f.local if mine > theirs else f.peer_name
        how = f"its claim (epoch {max(mine, theirs)}) is newer than {min(mine, theirs)}"
    else:
        winner = f.placement_choice()
        first = "is the preferred node" if f.g.preferred_node else "comes first by name"
        how = f"both claims have epoch {mine} and {winner} {first}"
    loser = f.cfg.peer_of(winner)
    why = f"{name} is active on both {f.local} and {f.peer_name}: {winner} keeps it because {how}"
    alerts = f.alert(f"two_owners:{name}", "critical", "two_owners", f"{why}; {loser} stops it at once and demotes")
    if loser == f.local:
        return Decision(f"{why}; {f.local} stops it at once and demotes.",
                        f.stop_all(f"{why}: stop it here at once and demote"), alerts)
    leave = why_not(f, f.local, starting=False)
    if leave:
        return Decision(f"{why}, but it leaves {f.local} anyway: {leave}.",
                        f.stop_all(f"{leave}, so {name} leaves {f.local}"), alerts)
    return Decision(f"{why}; {f.local} starts nothing more until {loser} has stopped it.", alerts=alerts)


@rule("R12-leftovers", "The data decides first: when only one of two holders is DRBD Primary the group runs "
      "there; the other holds only leftovers and stops them at once, silently, whatever the claims say.")
def leftovers(f: GroupFacts, primary: str) -> Decision:
    """Both nodes hold the group but only `primary` has its DRBD resource Primary: the
    group runs there (nothing of it can run without the data); the other node holds
    leftovers (e.g. a VIP still configured after a restart) and stops them at once,
    whatever the claims say (its claim may be a stale one kept across a restart)."""
    name, local, peer, r = f.name, f.local, f.peer_name, f.d.resource
    if primary == peer:
        held = [res.name for res, s in zip(f.g.resources, f.states) if s in RUNNING]
        why = (f"{name} runs on {peer}, where DRBD {r} is Primary; {local} is not Primary and holds only "
               f"leftovers of it ({', '.join(held)})")
        return Decision(f"{why}, which it stops at once.", f.stop_all(f"{why}: stop them at once"))
    held = [res.name for res, s in zip(f.g.resources, f.peer_states) if s in RUNNING]
    why = (f"{name} runs on {local}, where DRBD {r} is Primary; {peer} is not Primary and holds only "
           f"leftovers of it ({', '.join(held)}), which it stops at once")
    leave = why_not(f, local, starting=False)
    if leave:
        return Decision(f"{why}, but {name} leaves {local} anyway: {leave}.",
                        f.stop_all(f"{leave}, so {name} leaves {local}"))
    return Decision(f"{why}; {local} starts nothing more until they are gone.")


@rule("R12-announce", "Once the other owner stepped down, the winner sends its VIPs' gratuitous ARP again, "
      "in the round the two_owners condition clears.")
def announce_after_two_owners(f: GroupFacts) -> list[Action]:
    if f"two_owners:{f.name}" not in f.view.alerted:
        return []
    return [f.act(K.ANNOUNCE, r.name, f"the other owner of {f.name} has stepped down: announce "
                  f"{r.name} again (gratuitous ARP) for clients whose ARP entry moved to it")
            for r in f.g.resources if r.type == "vip"]


@rule("R1-one-primary", "One Primary at a time: a node that holds resources while DRBD (Connected) sees the "
      "peer Primary cannot be promoted and stops what it holds.")
def peer_is_primary(f: GroupFacts) -> str:
    d = f.d
    if d is not None and d.role != "Primary" and d.connected and d.peer_role == "Primary":
        return (f"DRBD {d.resource} is Primary on {f.peer_name} (one Primary at a time), so {f.name} "
                f"cannot be promoted here and leaves {f.local}")
    return ""


@rule("R12-split-brain", "A split brain reported by DRBD: critical alert with the recovery commands; nothing "
      "is promoted (not even forced) until DRBD no longer reports it; a Primary keeps running.")
def split_brain_alerts(trace: Trace, cfg: Config, view: ClusterView) -> dict[str, Action]:
    out = {}
    me = view.nodes[view.local]
    for res in cfg.drbd.resources:
        d = me.drbd.get(res.name)
        if d is not None and d.split_brain:
            out[f"split_brain:{res.name}"] = Action(
                K.ALERT, None, res.name, severity="critical", event="drbd_split_brain",
                key=f"split_brain:{res.name}",
                reason=(f"DRBD {res.name} reports a split brain: nothing is promoted until an operator "
                        f"resolves it; on the node whose changes are to be discarded run `drbdadm "
                        f"secondary {res.name}; drbdadm connect --discard-my-data {res.name}`, then on "
                        f"the other `drbdadm connect {res.name}`"))
    return out
