"""The failover policy: ``decide(config, view) -> [Action]``, pure.

Every two-node rule of DESIGN.md lives here and only here, organised by rule family:

* ``facts``        one group from the local node's view: queries, the data (rule 4), action builders
* ``eligibility``  who may run a group: standby, ban, threshold, pin, ping guard, quorum, link, data,
                   a stale copy (rule 13)
* ``placement``    where it runs: nobody holds it, it runs here (stay or leave), it runs on the peer;
                   stickiness is decided in ``placement.stickiness`` only
* ``failure``      failure and threshold: restart in place, leave with a ban, recover in place; stop failure
* ``takeover``     peer death: initdead, DRBD still Connected, refusal (a stale copy first), takeover
* ``ownership``    probing and adoption, claims and epochs (an owner alone reclaims, rule 13), two owners,
                   leftovers, DRBD split brain
* ``fencing``      fence first, the fence race and retries, guard drbd, outdate on request
* ``intents``      maintenance, target role stopped, moves and pins, forced promotions
* ``rules``        the registry: each rule's id, one-line statement and code (``hasupd-simulate --rules``)

A rule returns its decision (a ``Decision``: actions, the one sentence of ``explain``, standing alerts,
a fence) or None when it does not apply; ``_group`` asks them in order.  Decisions taken where DESIGN.md
is silent are rules too (see ``hasupd-simulate --rules``); each rule id is named by a scenario.

The planner reads nothing and writes nothing; time is ``view.now`` (monotonic) and ``view.wall``
(Unix time, for fail-count expiry).  It plans for the LOCAL node only; the peer runs the same function
on its own view, and the rules are written so that both nodes reach the same answer from what they
both see (placement uses only shared facts: bans, fail counts, intents, both nodes' reported DRBD
states and tie-breaker results, node names).

What the engine executes (engine-contract.md), in list order, stopping at the first failure:

* DRBD_UP, PROMOTE (``--force`` only when ``action.force``), DEMOTE: drbdadm on ``action.resource``.
* START, STOP, MONITOR: the driver of ``action.resource``.
* CLAIM / RELEASE: set / drop ``claims[group] = action.epoch``.
* BAN: bar this node from ``action.group`` until cleanup.
* BLOCK: record ``blocked[group] = action.reason`` (critical alert).
* REBOOT: self-fence.  FENCE: fence the peer with the fence devices (``fencer.fence(peer)``); the
  result comes back as ``view.fencing`` and, when it failed, ``view.fence`` (attempts, when, why).
* DRBD_DISCONNECT: drop DRBD's connection to the fenced peer at once (``drbdadm disconnect --force``,
  then ``connect`` to listen for it again).
* DRBD_OUTDATE: ``drbdadm outdate`` on ``action.resource`` (the peer asked).
* ALERT: emit ``action.event``/``severity``/``reason``; when ``action.key`` is set it is a standing
  condition: add the key to ``view.alerted``.
* FORGET_ALERT: the condition ``action.key`` cleared: drop it from ``view.alerted`` (no alert).
* FORGET_MOVE: the one-shot move of ``action.group`` is satisfied: drop the intent
  (``State.forget_move``).  Pins (``--pin``) are never forgotten by the planner, only by ``clear``.
* ANNOUNCE: send the gratuitous ARP of the VIP resource ``action.resource`` again.
* FORGET_FORCE: the operator's forced promotion of ``action.resource`` is used up: drop it.

Standing-condition alert keys (``Action.key``): ``split_brain:RES``, ``drbd_connected:GROUP``,
``no_takeover:GROUP``, ``two_owners:GROUP``, ``no_failover:GROUP``, ``fence_failed:PEER``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hasupd.config import Config
from hasupd.model import Action, ActionKind, ClusterView
from hasupd.planner import failure, fencing, intents, ownership, placement, takeover
from hasupd.planner.facts import NO_LOCAL_DISK, RUNNING, Decision, GroupFacts
from hasupd.planner.failure import RECOVER_BACKOFF, fail_count_after_failed_start, observation_replaces
from hasupd.planner.fencing import (
    FENCE_RETRY_FIRST,
    FENCE_RETRY_MAX,
    fence_next_attempt,
    fence_policy,
    fence_retry_delay,
    guard_price,
)
from hasupd.planner.intents import stop_on_exit
from hasupd.planner.rules import RULES, Rule, Trace

__all__ = [
    "FENCE_RETRY_FIRST", "FENCE_RETRY_MAX", "NO_LOCAL_DISK", "RECOVER_BACKOFF", "RULES", "RUNNING", "Rule",
    "decide", "explain", "fail_count_after_failed_start", "fence_next_attempt", "fence_policy", "fence_retry_delay",
    "guard_price", "observation_replaces", "rules_fired", "stop_on_exit",
]

K = ActionKind


@dataclass
class _Plan:
    actions: list[Action] = field(default_factory=list)
    sentences: dict[str, str] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)  # the rule ids that decided, first-fired order


def decide(config: Config, view: ClusterView) -> list[Action]:
    """The actions for the local node, in execution order."""
    return _plan(config, view).actions


def explain(config: Config, view: ClusterView) -> dict[str, str]:
    """Per group, one sentence: why it runs where it runs, or why not."""
    return _plan(config, view).sentences


def rules_fired(config: Config, view: ClusterView) -> list[str]:
    """The ids of the rules that decided this round (each once, in the order they first decided)."""
    return _plan(config, view).rules


# ---------------------------------------------------------------- the round


def _group(f: GroupFacts) -> Decision:
    """The rules for one group, in order: the first that applies decides."""
    d = (ownership.not_settled(f) or intents.maintenance(f) or ownership.probe_first(f)
         or failure.stop_failure(f) or failure.blocked(f) or failure.peer_stop_failure(f)
         or intents.target_stopped(f))
    if d:
        return d
    holds_me, peer_holds = f.holds(f.me), f.peer_holds()
    if holds_me and peer_holds:
        return ownership.two_owners(f)
    if holds_me:
        d = placement.runs_here(f)
        d = ownership.reclaim_alone(f, d) or d
        return fencing.owner_fences_silent_peer(f, d) or d
    if peer_holds:
        return placement.runs_on_peer(f)
    if f.peer_alive:
        return placement.peer_probing(f) or placement.place(f)
    return takeover.take_over(f)


def _plan(cfg: Config, view: ClusterView) -> _Plan:
    plan = _Plan()
    peer_name = cfg.peer_of(view.local)
    rf = Trace()  # the rules that concern the whole round
    alerts = dict(ownership.split_brain_alerts(rf, cfg, view))  # standing conditions: key -> ALERT
    decisions: list[Decision] = []
    fired: list[str] = []
    for g in cfg.groups:
        f = GroupFacts(cfg, view, g, peer_name)
        d = _group(f)
        decisions.append(d)
        plan.sentences[g.name] = d.sentence
        alerts.update(d.alerts)
        fired += f.fired
    group_actions = [a for d in decisions for a in d.actions]
    group_actions = fencing.outdate_on_request(rf, cfg, view, group_actions) + group_actions
    fence = fencing.one_fence(rf, decisions)
    # standing-condition alerts: raise the new ones, forget the cleared ones
    for key in sorted(view.alerted - set(alerts)):
        plan.actions.append(Action(K.FORGET_ALERT, key=key, reason=f"the condition {key} has cleared"))
    for key, alert in alerts.items():
        if key not in view.alerted:
            plan.actions.append(alert)
    if fence:
        plan.actions.append(Action(K.FENCE, None, peer_name, reason=fence))
    plan.actions += group_actions
    plan.rules = list(dict.fromkeys(rf.fired + fired))
    return plan
