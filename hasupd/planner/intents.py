"""Operator intents: maintenance, target role stopped, moves (one-shot) and pins, forced promotions
(rules 8 and 10).  Standby and bans bar a node (eligibility)."""

from __future__ import annotations

from hasupd.config import Group
from hasupd.model import Action, ClusterView, ResourceStatus, ResState
from hasupd.planner.facts import RUNNING, Decision, GroupFacts, K
from hasupd.planner.ownership import release_stale_claim
from hasupd.planner.rules import rule


@rule("R10-maintenance", "Maintenance mode: hasupd observes only; no actions but the standing-condition "
      "alerts.")
def maintenance(f: GroupFacts) -> Decision | None:
    if not f.view.maintenance:
        return None
    return Decision(f"{f.name}: maintenance mode, hasupd observes only and starts, "
                    f"stops or moves nothing ({where(f)}).")


def where(f: GroupFacts) -> str:
    """Where the group runs, from what this node sees (for maintenance)."""
    view, cfg = f.view, f.cfg

    def running(n: str) -> bool:
        return n in view.nodes and any(s in RUNNING for s in f.res_states(view.nodes[n]))

    live = [n for n in cfg.node_names() if running(n) and (n == view.local or view.nodes[n].alive)]
    if live:
        return f"it runs on {' and '.join(live)}"
    silent = [n for n in cfg.node_names() if running(n) and n not in live]
    if silent:
        return f"it ran on {silent[0]}, which is silent now"
    return "it is not running"


@rule("R10-target-stopped", "The operator stopped the group (target role stopped): it stops where it runs "
      "and starts nowhere until `hasupctl start`.")
def target_stopped(f: GroupFacts) -> Decision | None:
    name = f.name
    if f.view.target_roles.get(name) != "stopped":
        return None
    if f.holds(f.me):
        return Decision(f"{name} is stopping on {f.local}: the operator stopped it.",
                        f.stop_all(f"the operator stopped {name} (target role stopped)"))
    return Decision(f"{name} is stopped by the operator (target role stopped); "
                    f"`hasupctl start {name}` starts it again.", release_stale_claim(f) + f.drbd_up())


@rule("R8-move", "`hasupctl move` sends a running group to the other node when it can run it; a move to a "
      "node that cannot run the group waits (the group stays).")
def move_away(f: GroupFacts, peer_can: bool) -> str:
    move = f.view.moves.get(f.name)
    if move is not None and move.node == f.peer_name and peer_can:
        return f"the operator moved {f.name} to {f.peer_name}"
    return ""


@rule("R8-one-shot-move", "A move is one-shot: once the group runs fully on the move's target, the intent "
      "is dropped and stickiness keeps it there (pins are kept until `clear`).")
def forget_move(f: GroupFacts) -> list[Action]:
    move = f.view.moves.get(f.name)
    if move is not None and move.node == f.local and not move.pin:
        return [f.act(K.FORGET_MOVE, None, f"{f.name} runs on {f.local} as the operator asked: the one-shot "
                      "move is done, stickiness keeps it here from now on")]
    return []


@rule("R4-force-once", "An operator's forced promotion is used once: when the resource is Primary here it is "
      "dropped, so that it cannot promote bad data again later.")
def forget_force(f: GroupFacts) -> list[Action]:
    d = f.d
    if d is not None and d.role == "Primary" and d.resource in f.view.forced_promotions:
        return [f.act(K.FORGET_FORCE, d.resource, f"{d.resource} is Primary on {f.local}: "
                      "the operator's forced promotion is used up")]
    return []


def stop_on_exit(group: Group, view: ClusterView, reason: str) -> list[Action]:
    """Rule stop-on-exit (hasupd --stop-resources-on-exit): at shutdown, every resource of the
    group that runs, failed or is unknown here is stopped in reverse group order, then DRBD is
    demoted when it is Primary here.  Each step runs whatever the previous one did."""
    me = view.me
    actions = [Action(K.STOP, group.name, r.name, reason) for r in reversed(group.resources)
               if me.resources.get(r.name, ResourceStatus()).state in (ResState.STARTED, ResState.FAILED,
                                                                       ResState.UNKNOWN)]
    drbd = me.drbd.get(group.drbd) if group.drbd else None
    if drbd is not None and drbd.role == "Primary":
        actions.append(Action(K.DEMOTE, group.name, group.drbd, reason))
    return actions
