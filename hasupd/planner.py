"""The failover policy: ``decide(config, view) -> [Action]``, pure.

Every two-node rule of DESIGN.md lives here and only here.  The planner
reads nothing and writes nothing; time is ``view.now`` (monotonic) and
``view.wall`` (Unix time, for fail-count expiry).  It plans for the LOCAL
node only; the peer runs the same function on its own view, and the rules
are written so that both nodes reach the same answer from what they both
see (placement uses only shared facts: bans, fail counts, intents, both
nodes' reported DRBD states and tie-breaker results, node names).

``explain(config, view)`` gives one sentence per group: why it runs where
it runs, or why it is not running / not moving.

What the engine executes (engine-contract.md), in list order, stopping at
the first failure:

* DRBD_UP, PROMOTE (``--force`` only when ``action.force``), DEMOTE: drbdadm
  on ``action.resource`` (the DRBD resource).
* START, STOP, MONITOR: the driver of ``action.resource``.
* CLAIM / RELEASE: set / drop ``claims[group] = action.epoch``.
* BAN: bar this node from ``action.group`` until cleanup.
* BLOCK: record ``blocked[group] = action.reason`` (critical alert).
* REBOOT: self-fence.  FENCE: fence the peer with the fence devices
  (``fencer.fence(peer)``); the result comes back as ``view.fencing`` and,
  when it failed, ``view.fence`` (attempts, when, why).
* DRBD_DISCONNECT: drop DRBD's connection to the fenced peer at once
  (``drbdadm disconnect --force``, then ``connect`` to listen for it again).
* DRBD_OUTDATE: ``drbdadm outdate`` on ``action.resource`` (the peer asked).
* ALERT: emit ``action.event``/``severity``/``reason``; when ``action.key``
  is set it is a standing condition: add the key to ``view.alerted``.
* FORGET_ALERT: the condition ``action.key`` cleared: drop it from
  ``view.alerted`` (no alert is emitted).
* FORGET_MOVE: the one-shot move of ``action.group`` is satisfied (the
  group runs fully on the move's target, planned by that node): drop the
  intent (``State.forget_move``), from now on stickiness keeps it there.
  Pins (``--pin``) are never forgotten by the planner, only by ``clear``.
* ANNOUNCE: send the gratuitous ARP of the VIP resource ``action.resource``
  again (its driver's ``announce()``).
* FORGET_FORCE: the DRBD resource ``action.resource`` is Primary on this
  node, so the operator's forced promotion is used up: drop it
  (``force_promotion(res, False)``), so that it cannot promote bad data
  again later on its own.

Decisions taken where DESIGN.md is silent (each is a scenario):

* "Holding" a group on a node means: some resource of it is started, failed
  or stop-failed there, or its DRBD resource is Primary there.  A claim alone
  is only an epoch (a stale claim of a node that holds nothing is released).
* Placement when nobody holds the group: the move target if it can run it,
  else ``preferred_node`` if it can, else the first node name (sort order)
  that can.  Stickiness infinity (or any value > 0) keeps a running group
  where it is; stickiness 0 lets it go back to ``preferred_node``.
* A move to a node that cannot run the group waits (the group stays); a pin
  to such a node stops the group everywhere else (a pin is a constraint).
* Two owners seen (rule 12): the older claim epoch loses; at equal epochs
  the node placement would pick (preferred_node, else first name) keeps it.
  The loser stops at once and demotes; the winner starts nothing more until
  the loser has let go.
* ... but the data decides first: when only one of the two is DRBD Primary,
  the group runs there whatever the claims say, and the other holds only
  leftovers (e.g. a VIP still configured when a crashed node comes back with
  the claim it persisted, which may even be newer): it stops them at once and
  releases its claim, silently (no two_owners alert: nothing of the group can
  run without the data); the Primary starts nothing more until they are gone.
* Claim epochs only go up: a new claim is one more than both claims in view
  and ``view.epoch_floor`` (the highest epoch this node ever saw, persisted by
  the engine), so a clean failover (the old claim released) or a restart
  never lets an epoch restart from 1.
* A Primary whose local disk is gone (DRBD Diskless/Failed/Detaching: every
  I/O goes to the peer's copy) gives the group up when the peer could take it
  over: stop in reverse order, demote, release; the peer waits for the demote
  (it never promotes while the other node is Primary) and takes over; the
  diskless node is not eligible again until its disk is UpToDate (rule 4).
  It is not counted as a failure (no fail count, no ban): none of the
  group's resources failed, the DRBD agent Pacemaker uses moves the master
  role of a Diskless node through its promotion score rather than a failed
  monitor, and rule 4 already keeps the group off the node until its disk is
  back and UpToDate, so a ban would only add a cleanup chore.  If the peer
  cannot take over, the group keeps running on the peer's copy and the
  status says so.
* Blocked (a stop failed): the group is frozen on both nodes, nothing of it
  is started, stopped, promoted or demoted until cleanup.  A stop failure the
  peer reports blocks us too (unless on_stop_failure is reboot and the peer
  is gone: it self-fenced).
* The ping guard: a node without the tie-breaker starts nothing and stops
  what it runs; "not known yet" (None) stops nothing but starts nothing.
* A peer that is alive but has not finished its start-up probe (or reports
  a resource of the group unprobed) may be running the group: wait for it.
* DRBD still Connected while the heartbeat is silent: wait up to
  ``drbd.peer_dead_wait`` after the loss; then alert, never take over.  At
  start-up (peer never heard) a Connected DRBD after initdead alerts at once.
* A split brain reported by DRBD: critical alert with the recovery commands;
  a node that is Primary keeps running, nothing is promoted (not even with a
  forced promotion) until DRBD no longer reports it.
* A failed resource below the threshold restarts in place: the resources
  after it stop (reverse order), it stops (cleanup of the failed instance),
  then it and those after it start again in order.  A stopped resource in
  the middle of a running group is treated the same way (order is kept).
* The threshold reached: BAN first (so the reason is on record even if a
  stop then fails), stops in reverse order, DEMOTE, RELEASE.  The ban stays
  until cleanup even after the fail count expires (rule 3); expiry matters
  for failures that stay below the threshold.
* A node that holds resources while DRBD (Connected) sees the peer Primary
  cannot be promoted: it stops what it holds.  A takeover that claimed but
  failed to promote retries without raising its epoch again.
* Never turn a partial outage into a full one (issue 16).  A VIP whose
  interface has no carrier (``NodeState.link_down``) is not a failed
  resource but "this node cannot serve now": the group moves to a peer that
  can run it (link up), else it stays and waits for the link; no fail count,
  no ban; a node without the link starts nothing of the group.  A failure
  that reaches the migration threshold when the peer cannot run the group
  (banned, gone, standby, no good data, no link) keeps the group here: no
  ban, restart in place with a backoff (RECOVER_BACKOFF, by failures beyond
  the threshold) and the standing critical alert ``no_failover:GROUP``
  ("cannot fail over: WHY"); once the peer can run it, rule 3 applies.
* Two owners seen, then the loser stepped down: the winner sends its VIPs'
  gratuitous ARP again (ANNOUNCE), in the round the two_owners condition
  clears, so that clients whose ARP entry moved to the loser come back.
* The takeover sentence counts the peer's silence from its last packet
  (``peer_lost_at`` is deadtime after it).
* Resources not probed yet (UNKNOWN) on this node: MONITOR them, decide the
  group next round.  The local node not settled, or maintenance: no actions
  but the standing-condition alerts.
* One FENCE per round whatever the number of groups; FENCE again after a
  failed attempt (like Pacemaker's fencing retries); never while DRBD is
  Connected to the peer (it is alive: only the heartbeat is broken).

Fencing (issue 17; ``view.fence``, DESIGN.md rules 5, 6, 12).  "Fence first"
applies with split_brain_guard fence, and with drbd when fence devices are
configured; the peer counts as fenced when a FENCE confirmed it off, or
when the devices report its power off (a power cut: fenced already, no
FENCE, no delay):

* The fence race is decided: a silent peer is fenced by both nodes; the node
  that holds any group fences at once (after ``random_delay``), the other
  waits ``owner_head_start`` + ``random_delay`` counted from when the peer
  was lost (heartbeat silent and DRBD no longer Connected, whichever came
  last), so the owner's fence lands first.  The owner keeps running meanwhile.
  When each node runs a group, both fence at once and only the random delay
  decides (Pacemaker's priority-fencing-delay with equal priorities).
* A node whose tie-breaker is unreachable (``view.tiebreaker`` False) does not
  fence at all: if it is the isolated one, it must be the one that loses.
* Nothing of a group starts on a node that is not holding it until the peer
  is fenced; a failed fence is retried with a backoff (2 s, doubling, at most
  60 s) and raises the standing alert ``fence_failed:PEER``; no takeover.
* Once the peer is fenced, a DRBD still Connected to it (DRBD's ping timeout
  has not run out yet) is disconnected at once (DRBD_DISCONNECT) and the
  takeover goes on: no wait for ``drbd.peer_dead_wait``.
* Guard drbd without fence devices: a silent peer is never assumed down; no
  takeover unless DRBD itself knows the peer's copy is Outdated (the fence-peer
  handler would refuse the promotion anyway): standing alert ``no_takeover``.
* The live peer asks this node to outdate a DRBD resource (its fence-peer
  handler runs, ``view.outdate_requested``): DRBD_OUTDATE when this node is
  Secondary, disconnected, with UpToDate or Consistent data, and no split brain.

Stale copy (rule 13, issues 17/23; ``view.peer_epochs``, ``view.synced_epochs``): a node whose
peer held the group at a newer claim epoch than the last one at which the two copies were seen in
sync does not promote on the peer's loss (nor after initdead), whatever DRBD's disk state says,
until DRBD has been Connected and in sync since; only an operator's forced promotion overrides it.
An owner whose DRBD lost its peer goes on alone and claims a new epoch once (its claim not newer
than the last in-sync one; fence-first guards only), so the peer knows its copy is stale when it
hears that claim.  It is checked before fencing (a node that will not take over has no reason to fence)
and raises the standing alert ``no_takeover:GROUP`` saying why and what the operator can do.

Standing-condition alert keys (``Action.key``): ``split_brain:RES``
(critical, with the recovery commands), ``drbd_connected:GROUP`` (heartbeat
broken, no takeover), ``no_takeover:GROUP`` (the peer is gone but the guard
or the data refuses), ``two_owners:GROUP`` (rule 12), ``no_failover:GROUP``
(the threshold is reached where no other node can run the group).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hasupd.config import Config, Group
from hasupd.model import (
    Action,
    ActionKind,
    ClusterView,
    DrbdStatus,
    FenceFacts,
    FenceState,
    NodeState,
    ResourceStatus,
    ResState,
)

RUNNING = (ResState.STARTED, ResState.FAILED, ResState.STOP_FAILED)
# a group that reached its migration threshold where no other node can run it restarts in place,
# waiting this long after the latest failure (by failures beyond the threshold: 0, 1, 2, ...)
RECOVER_BACKOFF = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)
# DRBD disk states of a node that has lost its local copy (on-io-error detach, the disk vanished):
# a Primary there serves every read and write over the network from the peer's disk
NO_LOCAL_DISK = ("Diskless", "Failed", "Detaching")
K = ActionKind


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


@dataclass
class _Plan:
    actions: list[Action] = field(default_factory=list)
    sentences: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, Action] = field(default_factory=dict)  # standing conditions: key -> ALERT
    fence: str = ""  # why the peer must be fenced ("" = no)


def decide(config: Config, view: ClusterView) -> list[Action]:
    """The actions for the local node, in execution order."""
    return _plan(config, view).actions


def explain(config: Config, view: ClusterView) -> dict[str, str]:
    """Per group, one sentence: why it runs where it runs, or why not."""
    return _plan(config, view).sentences


# ---------------------------------------------------------------- the round


def _plan(cfg: Config, view: ClusterView) -> _Plan:
    plan = _Plan()
    me = view.nodes[view.local]
    peer_name = cfg.peer_of(view.local)

    for res in cfg.drbd.resources:
        d = me.drbd.get(res.name)
        if d is not None and d.split_brain:
            plan.alerts[f"split_brain:{res.name}"] = Action(
                K.ALERT, None, res.name, severity="critical", event="drbd_split_brain",
                key=f"split_brain:{res.name}",
                reason=(f"DRBD {res.name} reports a split brain: nothing is promoted until an operator "
                        f"resolves it; on the node whose changes are to be discarded run `drbdadm "
                        f"secondary {res.name}; drbdadm connect --discard-my-data {res.name}`, then on "
                        f"the other `drbdadm connect {res.name}`"))

    group_actions: list[Action] = []
    for g in cfg.groups:
        if not me.settled:
            plan.sentences[g.name] = (f"{g.name}: {view.local} is still probing its resources after "
                                      "start-up; nothing is decided until that is done.")
            continue
        if view.maintenance:
            plan.sentences[g.name] = (f"{g.name}: maintenance mode, hasupd observes only and starts, "
                                      f"stops or moves nothing ({_where(cfg, view, g)}).")
            continue
        gp = _GroupPlanner(cfg, view, g, peer_name)
        gp.plan()
        group_actions += gp.actions
        plan.sentences[g.name] = gp.sentence
        plan.alerts.update(gp.alerts)
        if gp.fence and not plan.fence:
            plan.fence = gp.fence

    group_actions = _outdate_on_request(cfg, view, group_actions) + group_actions
    # standing-condition alerts: raise the new ones, forget the cleared ones
    for key in sorted(view.alerted - set(plan.alerts)):
        plan.actions.append(Action(K.FORGET_ALERT, key=key, reason=f"the condition {key} has cleared"))
    for key, alert in plan.alerts.items():
        if key not in view.alerted:
            plan.actions.append(alert)
    if plan.fence:
        plan.actions.append(Action(K.FENCE, None, peer_name, reason=plan.fence))
    plan.actions += group_actions
    return plan


def _where(cfg: Config, view: ClusterView, g: Group) -> str:
    """Where the group runs, from what this node sees (for maintenance)."""
    def running(n: str) -> bool:
        return n in view.nodes and any(
            view.nodes[n].resources.get(r.name, ResourceStatus()).state in RUNNING for r in g.resources)

    live = [n for n in cfg.node_names() if running(n) and (n == view.local or view.nodes[n].alive)]
    if live:
        return f"it runs on {' and '.join(live)}"
    silent = [n for n in cfg.node_names() if running(n) and n not in live]
    if silent:
        return f"it ran on {silent[0]}, which is silent now"
    return "it is not running"


# ---------------------------------------------------------------- one group


class _GroupPlanner:
    def __init__(self, cfg: Config, view: ClusterView, g: Group, peer_name: str):
        self.cfg, self.view, self.g = cfg, view, g
        self.name = g.name
        self.local, self.peer_name = view.local, peer_name
        self.me = view.nodes[view.local]
        self.peer = view.nodes.get(peer_name) or NodeState(peer_name)
        self.peer_alive = self.peer.alive
        self.d = self._drbd(self.me)
        self.states = self._states(self.me)
        self.peer_states = self._states(self.peer)
        self.actions: list[Action] = []
        self.alerts: dict[str, Action] = {}
        self.fence = ""
        self.sentence = ""

    # ------------------------------------------------------------ facts

    def _drbd(self, node: NodeState) -> DrbdStatus | None:
        if self.g.drbd is None:
            return None
        return node.drbd.get(self.g.drbd) or DrbdStatus(self.g.drbd)

    def _states(self, node: NodeState) -> list[ResState]:
        return [node.resources.get(r.name, ResourceStatus()).state for r in self.g.resources]

    def _holds(self, node: NodeState) -> bool:
        d = self._drbd(node)
        return any(s in RUNNING for s in self._states(node)) or (d is not None and d.role == "Primary")

    def _peer_holds(self) -> bool:
        """The live peer holds the group (its heartbeat says so, or DRBD sees it Primary).

        A peer the heartbeat lost is judged by take_over(), DRBD's Connected state first."""
        drbd_sees_primary = self.d is not None and self.d.connected and self.d.peer_role == "Primary"
        return self.peer_alive and (drbd_sees_primary or self._holds(self.peer))

    def _diskless_primary(self) -> bool:
        """This node is DRBD Primary without a local disk (it runs on the peer's copy)."""
        return self.d is not None and self.d.role == "Primary" and self.d.disk in NO_LOCAL_DISK

    def _link(self, node: NodeState) -> str:
        """Why node's interfaces cannot carry the group's VIPs now ("" = they can)."""
        for r in self.g.resources:
            why = node.link_down.get(r.name)
            if why:
                return f"{r.name}: {why}"
        return ""

    def _claim(self, node: NodeState) -> int:
        return node.claims.get(self.name, 0)

    def _fail(self, node: str) -> tuple[str, int] | None:
        """(resource, count) of the first resource at the migration threshold on node."""
        for r in self.g.resources:
            c = self._count(node, r.name)
            if c >= self.g.migration_threshold:
                return r.name, c
        return None

    def _count(self, node: str, res: str) -> int:
        fc = self.view.fail_counts.get((node, self.name, res))
        if fc is None:
            return 0
        timeout = self.g.failure_timeout
        if timeout > 0 and self.view.wall - fc.last_failure_wall > timeout:
            return 0  # expired (the engine drops it too)
        return fc.count

    def _count_text(self, node: str, res: str) -> str:
        raw = self.view.fail_counts.get((node, self.name, res))
        count = self._count(node, res)
        text = f"fail count {count} of {self.g.migration_threshold}"
        if raw is not None and count == 0:
            text += f"; its older failures expired after failure_timeout {self.g.failure_timeout:g}s"
        return text

    def _node(self, name: str) -> NodeState:
        return self.me if name == self.local else self.peer

    def _good_data(self, node: str) -> tuple[str, bool]:
        """("" or why not, force needed) for promoting the group's DRBD on node."""
        d = self._drbd(self._node(node))
        if d is None or d.role == "Primary":
            return "", False
        r = d.resource
        if d.split_brain:
            return f"DRBD {r} on {node} reports a split brain, which an operator must resolve first", False
        if not d.up:
            return f"DRBD {r} is not up on {node}", False
        if d.may_promote is False and d.disk == "UpToDate":
            # DRBD 9 knows more than the disk state: a Primary peer, failing I/O, no quorum
            return (f"DRBD {r} on {node} reports may_promote:no although its disk is UpToDate (a Primary "
                    "peer, quorum lost or forced I/O failures)"), False
        if d.disk == "UpToDate" or (d.disk == "Consistent" and d.peer_disk == "Outdated"):
            return "", False
        if r in self.view.forced_promotions:
            return "", True
        if d.disk == "Consistent":
            return (f"{node}'s copy of {r} is Consistent but its peer's is {d.peer_disk}, not known to be "
                    "Outdated (only an operator's forced promotion would use it)"), False
        return (f"{node}'s copy of {r} is {d.disk}, not UpToDate (only an operator's forced promotion "
                "would use it)"), False

    def _tiebreaker(self, node: str) -> bool | None:
        return self.view.tiebreaker if node == self.local else self._node(node).tiebreaker

    def why_not(self, node: str, starting: bool = True, count_failures: bool = True) -> str:
        """Why node cannot run (start, or with starting=False keep) the group; "" = it can.
        count_failures=False: a fail count at the threshold does not bar node (it keeps the
        group and recovers in place because no other node can run it)."""
        ns = self._node(node)
        if node != self.local and not self.peer_alive:
            return f"{node} is not reachable"
        if ns.standby:
            return f"{node} is in standby"
        if (self.name, node) in self.view.bans:
            return f"{node} is banned from {self.name} until `hasupctl cleanup {self.name}`"
        fail = self._fail(node) if count_failures else None
        if fail:
            return (f"{fail[0]} failed {_times(fail[1])} on {node}, reaching the migration threshold "
                    f"of {self.g.migration_threshold}")
        move = self.view.moves.get(self.name)
        if move is not None and move.pin and move.node != node:
            return f"{self.name} is pinned to {move.node}"
        if self.cfg.split_brain_guard.mode == "ping":
            tb = self._tiebreaker(node)
            if tb is False:
                return f"the tie-breaker is unreachable from {node} (split_brain_guard ping)"
            if tb is None and starting and node == self.local:
                return f"the tie-breaker check has not answered yet on {node}"
        d = self._drbd(ns)
        if d is not None and d.quorum_lost:  # DRBD 9: I/O there is frozen or failing
            what = f"suspended:{d.suspended_reason}" if d.suspended_reason else "quorum:no"
            return f"DRBD {d.resource} has lost quorum on {node} ({what})"
        if starting:
            link = self._link(ns)
            if link:
                return f"{node} cannot serve {self.name} now: {link}"
            why, _ = self._good_data(node)
            if why:
                return why
            if node == self.local and self.stale_copy():
                # rule 13; with the peer alive this only matters when its copy is unusable (else DRBD
                # not in sync is refused by _apart_from_live_peer on both nodes alike)
                return self.stale_copy()
            return self._apart_from_live_peer(node)
        return ""

    def _apart_from_live_peer(self, node: str) -> str:
        """Why promoting node now would fork the data ("" if it would not).  Both nodes are up and
        DRBD is not connected: the peer made a new data generation of its own if it was Primary when
        the link broke, and promoting node without its peer makes another; DRBD calls that a split
        brain when they reconnect (8.4's uuid_compare, rule 90).  Wait for DRBD to connect (and
        resync): the promotion then goes through the peer.  A peer whose DRBD is down, or whose disk
        is known Outdated, Inconsistent or Diskless, has no generation to fork."""
        d = self._drbd(self._node(node))
        other = self._drbd(self.peer if node == self.local else self.me)
        if d is None or other is None or not self.peer_alive or d.role == "Primary" or d.connected:
            return ""
        if not other.up or other.disk in ("Outdated", "Inconsistent", *NO_LOCAL_DISK) \
                or d.peer_disk in ("Outdated", "Inconsistent"):
            return ""
        return (f"DRBD {d.resource} on {node} is {d.connection}, not connected to its live peer: promoting it "
                "apart would start a second data generation (a split brain when they reconnect); waiting for "
                "DRBD to connect")

    # ------------------------------------------------------------ helpers that plan

    def act(self, kind: ActionKind, resource: str | None, reason: str, **kw) -> None:
        self.actions.append(Action(kind, self.name, resource, reason, **kw))

    def alert(self, key: str, severity: str, event: str, reason: str) -> None:
        self.alerts[key] = Action(K.ALERT, self.name, None, reason, severity=severity, event=event, key=key)

    def drbd_up(self) -> None:
        if self.d is not None and not self.d.up:
            self.act(K.DRBD_UP, self.d.resource, f"DRBD {self.d.resource} is not up on {self.local}: "
                     "bring it up so that it replicates")

    def release_stale_claim(self) -> None:
        if self.name in self.me.claims:
            self.act(K.RELEASE, None, f"{self.local} holds nothing of {self.name}: drop its ownership claim")

    def stop_all(self, reason: str, ban: bool = False) -> None:
        """Stop the group here in reverse order, then demote, then drop the claim."""
        if ban and (self.name, self.local) not in self.view.bans:
            self.act(K.BAN, None, reason)
        for r, s in reversed(list(zip(self.g.resources, self.states))):
            if s in (ResState.STARTED, ResState.FAILED):
                self.act(K.STOP, r.name, reason)
        if self.d is not None and self.d.role == "Primary":
            self.act(K.DEMOTE, self.d.resource, reason)
        if self.name in self.me.claims:
            self.act(K.RELEASE, None, reason)

    def start_all(self, reason: str, epoch: int | None) -> None:
        """Claim (when epoch is given), promote, then start in group order."""
        if epoch is not None:
            self.act(K.CLAIM, None, reason, epoch=epoch)
        self.promote(reason)
        for r, s in zip(self.g.resources, self.states):
            if s != ResState.STARTED:
                self.act(K.START, r.name, reason)

    def promote(self, reason: str) -> None:
        d = self.d
        if d is None or d.role == "Primary":
            return
        self.drbd_up()
        _, force = self._good_data(self.local)
        if force:
            reason = f"{reason} (promotion forced by the operator: {d.resource} is {d.disk})"
        self.act(K.PROMOTE, d.resource, reason, force=force)

    def new_epoch(self) -> int:
        """One more than any claim this node has seen (now, or ever: view.epoch_floor)."""
        return max(self.view.epoch_floor, self._claim(self.me), self._claim(self.peer)) + 1

    def start_epoch(self) -> int | None:
        """The epoch to claim before starting; None: our claim is already the newest
        (a retry after a failed promotion must not raise the epoch every round)."""
        if self.name in self.me.claims and self._claim(self.me) > self._claim(self.peer):
            return None
        return self.new_epoch()

    def placement_choice(self) -> str:
        """The node placement prefers when both could run it: preferred_node, else first name."""
        if self.g.preferred_node:
            return self.g.preferred_node
        return sorted(self.cfg.node_names())[0]

    # ------------------------------------------------------------ the rules, in order

    def plan(self) -> None:
        g, name = self.g, self.name
        unknown = [r.name for r, s in zip(g.resources, self.states) if s == ResState.UNKNOWN]
        if unknown:
            for r in unknown:
                self.act(K.MONITOR, r, f"{r} on {self.local} has not been probed: probe it before deciding")
            self.sentence = (f"{name}: {', '.join(unknown)} on {self.local} must be probed before "
                             "anything is decided.")
            return

        stop_failed = [r.name for r, s in zip(g.resources, self.states) if s == ResState.STOP_FAILED]
        if stop_failed:
            return self.local_stop_failure(stop_failed[0])
        if self.d is not None and self.d.role == "Primary" and self.d.demote_failed \
                and not any(s in RUNNING for s in self.states):
            # the driver already stopped the holders and tried `secondary --force` where DRBD has it
            return self.local_stop_failure(self.d.resource, f"DRBD {self.d.resource} could not be demoted "
                                           f"({self.d.demote_failed})")
        if name in self.view.blocked:
            self.sentence = (f"{name} is blocked ({self.view.blocked[name]}): nothing of it is started, "
                             f"stopped or moved on either node until an operator checks and runs "
                             f"`hasupctl cleanup {name}`.")
            return
        peer_stop_failed = [r.name for r, s in zip(g.resources, self.peer_states) if s == ResState.STOP_FAILED]
        if peer_stop_failed and (self.peer_alive or g.on_stop_failure == "block"):
            self.sentence = (f"{name} is blocked: {peer_stop_failed[0]} failed to stop on {self.peer_name}, "
                             f"which may still hold the data, so nothing of it starts on {self.local} "
                             f"until `hasupctl cleanup {name}`.")
            return

        holds_me = self._holds(self.me)
        if self.view.target_roles.get(name) == "stopped":
            if holds_me:
                self.stop_all(f"the operator stopped {name} (target role stopped)")
                self.sentence = f"{name} is stopping on {self.local}: the operator stopped it."
            else:
                self.release_stale_claim()
                self.drbd_up()
                self.sentence = (f"{name} is stopped by the operator (target role stopped); "
                                 f"`hasupctl start {name}` starts it again.")
            return

        peer_holds = self._peer_holds()
        if holds_me and peer_holds:
            return self.two_owners()
        if holds_me:
            self.keep_or_leave()
            self.reclaim_alone()
            return self.owner_fences_silent_peer()
        if peer_holds:
            return self.runs_on_peer()
        if self.peer_alive:
            return self.place()
        return self.take_over()

    # ------------------------------------------------------------ stop failure

    def local_stop_failure(self, res: str, failed: str = "") -> None:
        name = self.name
        failed = failed or f"{res} failed to stop"
        if self.g.on_stop_failure == "reboot":
            why = (f"{failed} on {self.local}: reboot this node (on_stop_failure reboot) so that "
                   f"{self.peer_name} can take {name} over safely")
            self.actions.append(Action(K.REBOOT, name, res, why))
            self.sentence = f"{name}: {why}."
            return
        if name not in self.view.blocked:
            self.act(K.BLOCK, res, f"{failed} on {self.local}, which may still hold the data: "
                     f"{name} is blocked on both nodes until `hasupctl cleanup {name}`")
        self.sentence = (f"{name} is blocked: {failed} on {self.local}, which may still hold "
                         f"the data, so nothing of it is started, stopped or moved on either node until "
                         f"an operator checks and runs `hasupctl cleanup {name}`.")

    # ------------------------------------------------------------ rule 12

    def two_owners(self) -> None:
        if self.d is not None:
            mine_primary = self.d.role == "Primary"
            theirs_primary = self._drbd(self.peer).role == "Primary" or (
                self.d.connected and self.d.peer_role == "Primary")
            if mine_primary != theirs_primary:
                return self.leftovers(self.local if mine_primary else self.peer_name)
        name, mine, theirs = self.name, self._claim(self.me), self._claim(self.peer)
        if mine != theirs:
            winner = self.local if mine > theirs else self.peer_name
            how = f"its claim (epoch {max(mine, theirs)}) is newer than {min(mine, theirs)}"
        else:
            winner = self.placement_choice()
            first = "is the preferred node" if self.g.preferred_node else "comes first by name"
            how = f"both claims have epoch {mine} and {winner} {first}"
        loser = self.cfg.peer_of(winner)
        why = f"{name} is active on both {self.local} and {self.peer_name}: {winner} keeps it because {how}"
        self.alert(f"two_owners:{name}", "critical", "two_owners",
                   f"{why}; {loser} stops it at once and demotes")
        if loser == self.local:
            self.stop_all(f"{why}: stop it here at once and demote")
            self.sentence = f"{why}; {self.local} stops it at once and demotes."
            return
        leave = self.why_not(self.local, starting=False)
        if leave:
            self.stop_all(f"{leave}, so {name} leaves {self.local}")
            self.sentence = f"{why}, but it leaves {self.local} anyway: {leave}."
            return
        self.sentence = f"{why}; {self.local} starts nothing more until {loser} has stopped it."

    def leftovers(self, primary: str) -> None:
        """Both nodes hold the group but only `primary` has its DRBD resource Primary: the
        group runs there (nothing of it can run without the data); the other node holds
        leftovers (e.g. a VIP still configured after a restart) and stops them at once,
        whatever the claims say (its claim may be a stale one kept across a restart)."""
        name, local, peer, r = self.name, self.local, self.peer_name, self.d.resource
        if primary == peer:
            held = [res.name for res, s in zip(self.g.resources, self.states) if s in RUNNING]
            why = (f"{name} runs on {peer}, where DRBD {r} is Primary; {local} is not Primary and holds only "
                   f"leftovers of it ({', '.join(held)})")
            self.stop_all(f"{why}: stop them at once")
            self.sentence = f"{why}, which it stops at once."
            return
        held = [res.name for res, s in zip(self.g.resources, self.peer_states) if s in RUNNING]
        why = (f"{name} runs on {local}, where DRBD {r} is Primary; {peer} is not Primary and holds only "
               f"leftovers of it ({', '.join(held)}), which it stops at once")
        leave = self.why_not(local, starting=False)
        if leave:
            self.stop_all(f"{leave}, so {name} leaves {local}")
            self.sentence = f"{why}, but {name} leaves {local} anyway: {leave}."
            return
        self.sentence = f"{why}; {local} starts nothing more until they are gone."

    # ------------------------------------------------------------ the group runs here

    def leave_reason(self) -> tuple[str, bool]:
        """(why the group must leave this node, ban?) or ("", False) to keep it."""
        name, local, peer = self.name, self.local, self.peer_name
        fail = self._fail(local)
        peer_why = self.why_not(peer)
        if fail and not peer_why:
            return (f"{fail[0]} failed {_times(fail[1])} on {local}, reaching the migration threshold of "
                    f"{self.g.migration_threshold}: stop {name} here and bar {local} from it until cleanup"), True
        # at the threshold with nowhere to go: keep it here and recover in place (keep_or_leave)
        why = self.why_not(local, starting=False, count_failures=not fail)
        if why:
            return f"{why}, so {name} leaves {local}", False
        peer_can = self.peer_alive and not peer_why
        link = self._link(self.me)
        if link and peer_can:
            return (f"{local} cannot serve {name} now ({link}), so {name} moves to {peer}, whose link is up "
                    "(the resource did not fail: no fail count, no ban)"), False
        if self._diskless_primary() and peer_can:
            d = self.d
            return (f"DRBD {d.resource} on {local} has lost its local disk ({d.disk}: every read and write "
                    f"goes to {peer}'s copy), so {name} moves to {peer}, which has the data (not a resource "
                    "failure: no fail count, no ban)"), False
        move = self.view.moves.get(name)
        if move is not None and move.node == peer and peer_can:
            return f"the operator moved {name} to {peer}", False
        if (self.g.stickiness == 0 and self.g.preferred_node == peer and peer_can
                and not (move is not None and move.node == local)):
            return f"{name} prefers {peer} and has no stickiness: it goes back there", False
        if self.d is not None and self.d.role != "Primary":
            if self.d.connected and self.d.peer_role == "Primary":
                return (f"DRBD {self.d.resource} is Primary on {peer} (one Primary at a time), so {name} "
                        f"cannot be promoted here and leaves {local}"), False
            why = self._good_data(local)[0] or self.stale_copy()
            if why:
                return f"{why}, so {name} cannot be promoted there and leaves {local}", False
        return "", False

    def keep_or_leave(self) -> None:
        name, local, peer = self.name, self.local, self.peer_name
        leave, ban = self.leave_reason()
        if leave:
            self.stop_all(leave, ban=ban)
            nxt = self.why_not(peer)
            then = f"{peer} takes over" if not nxt else f"{peer} cannot take over: {nxt}"
            if not self.peer_alive and self.d is not None and self.d.connected and self.d.peer_role == "Primary":
                then = f"{peer} is silent on the heartbeat but DRBD sees it Primary"
            self.sentence = f"{name} is stopping on {local}: {leave}; {then}."
            return

        fail = self._fail(local)
        stuck = ""  # why the group cannot fail over although it reached the threshold here
        if fail:
            stuck = self.why_not(peer)
            self.alert(f"no_failover:{name}", "critical", "no_failover",
                       f"{name} cannot fail over: {stuck}; {fail[0]} failed {_times(fail[1])} on {local}, "
                       f"reaching the migration threshold of {self.g.migration_threshold}, so {local} keeps "
                       "it and recovers it in place (restarts with backoff)")
        if name not in self.me.claims:
            self.act(K.CLAIM, None, f"{name} runs on {local} and nobody else holds it: claim it (adopted "
                     "after the start-up probe)", epoch=self.new_epoch())
        if self.d is not None and self.d.role != "Primary":
            self.promote(f"{name} holds resources on {local}: promote {self.d.resource} before starting more")
        k = next((i for i, s in enumerate(self.states) if s != ResState.STARTED), None)
        move = self.view.moves.get(name)
        if k is None:
            if self.d is not None and self.d.role == "Primary" and self.d.resource in self.view.forced_promotions:
                self.act(K.FORGET_FORCE, self.d.resource, f"{self.d.resource} is Primary on {local}: "
                         "the operator's forced promotion is used up")
            if move is not None and move.node == local and not move.pin:
                self.act(K.FORGET_MOVE, None, f"{name} runs on {local} as the operator asked: the one-shot "
                         "move is done, stickiness keeps it here from now on")
            if f"two_owners:{name}" in self.view.alerted:
                for r in self.g.resources:
                    if r.type == "vip":
                        self.act(K.ANNOUNCE, r.name, f"the other owner of {name} has stepped down: announce "
                                 f"{r.name} again (gratuitous ARP) for clients whose ARP entry moved to it")
            if stuck:
                self.sentence = (f"{name} runs on {local}, recovered in place after {fail[0]} failed "
                                 f"{_times(fail[1])}; it cannot fail over: {stuck}.")
                return
            self.sentence = f"{name} runs on {local}{self.why_here()}."
            return

        link = self._link(self.me)
        if link:
            self.sentence = (f"{name} runs on {local} but is incomplete, and {local} cannot serve it now "
                             f"({link}); {peer} cannot take it over ({self.why_not(peer)}): {local} keeps it "
                             "and waits for the link before starting the rest.")
            return
        res = self.g.resources
        failed = self.states[k] == ResState.FAILED
        if failed and stuck:
            r = res[k].name
            wait = self._recover_wait(r)
            if wait > 0:
                self.sentence = (f"{name} cannot fail over ({stuck}): {r} failed on {local} "
                                 f"({self._count_text(local, r)}); {local} restarts it in {wait:.0f}s (backoff).")
                return
            reason = (f"{r} failed on {local} ({self._count_text(local, r)}) and {name} cannot fail over "
                      f"({stuck}): restart it and what follows it, in place")
        elif failed:
            r = res[k].name
            reason = (f"{r} failed on {local} ({self._count_text(local, r)}): restart it and what "
                      "follows it, in place")
        elif any(s != ResState.STOPPED for s in self.states[k:]):
            reason = (f"{res[k].name} is stopped while later resources of {name} run on {local}: restart "
                      "from it to keep the group order")
        else:
            reason = f"{name} runs on {local} but is incomplete: start the rest in order"
        for r, s in reversed(list(zip(res[k + 1:], self.states[k + 1:]))):
            if s in (ResState.STARTED, ResState.FAILED):
                self.act(K.STOP, r.name, reason)
        if failed:
            self.act(K.STOP, res[k].name, reason)
        for r in res[k:]:
            self.act(K.START, r.name, reason)
        self.sentence = f"{name} is (re)starting on {local}: {reason}."

    def _recover_wait(self, res: str) -> float:
        """Seconds left before an in-place restart of res (backoff by failures beyond the threshold)."""
        fc = self.view.fail_counts.get((self.local, self.name, res))
        if fc is None:
            return 0.0
        beyond = max(0, fc.count - self.g.migration_threshold)
        delay = RECOVER_BACKOFF[min(beyond, len(RECOVER_BACKOFF) - 1)]
        return max(0.0, fc.last_failure_wall + delay - self.view.wall)

    def why_here(self) -> str:
        move = self.view.moves.get(self.name)
        if move is not None and move.node == self.local:
            return " where the operator pinned it" if move.pin else " where the operator moved it"
        why = self.why_not(self.peer_name)
        link = self._link(self.me)
        if link:
            return (f" but cannot serve it now ({link}); {self.peer_name} cannot take it over ({why}): "
                    f"{self.local} keeps it and waits for the link")
        if why and self._diskless_primary():
            return (f" without a local disk (DRBD {self.d.resource} is {self.d.disk}: it runs on "
                    f"{self.peer_name}'s copy); {self.peer_name} cannot take it over: {why}")
        if why:
            return f"; {self.peer_name} would not take it over: {why}"
        if self.g.stickiness == 0:
            return " (its preferred node)" if self.g.preferred_node == self.local else ""
        return " and stays there (stickiness)"

    # ------------------------------------------------------------ the group runs on the peer

    def runs_on_peer(self) -> None:
        name, peer = self.name, self.peer_name
        self.release_stale_claim()
        self.drbd_up()
        why = self.why_not(self.local)
        # the peer at its threshold keeps the group when this node cannot take it (it recovers in place)
        leave = self.why_not(peer, starting=False, count_failures=not why)
        pd = self._drbd(self.peer)
        if not leave and not why and pd is not None and pd.role == "Primary" and pd.disk in NO_LOCAL_DISK:
            leave = f"DRBD {pd.resource} on {peer} has lost its local disk, it is {pd.disk}"
        if not leave and not why and self._link(self.peer):
            leave = f"{peer} cannot serve it now: {self._link(self.peer)}"
        peer_fail = self._fail(peer)
        if not leave and why and peer_fail:
            self.sentence = (f"{name} runs on {peer}, which recovers it in place after {peer_fail[0]} failed "
                             f"{_times(peer_fail[1])}: it cannot fail over because {why}.")
            return
        if leave:
            then = f"{self.local} cannot take over: {why}" if why else f"{self.local} takes over then"
            self.sentence = (f"{name} is still held by {peer}, which must give it up ({leave}); it waits "
                             f"for {peer} to stop it and demote; {then}.")
            return
        if why:
            tail = f"; {self.local} would not take it over: {why}"
        elif self.g.stickiness > 0:
            tail = " and stays there (stickiness)"
            if self.g.preferred_node == self.local:
                tail += f", although {self.local} is its preferred node"
        else:
            tail = ""
        self.sentence = f"{name} runs on {peer}{tail}."

    # ------------------------------------------------------------ nobody holds it, peer alive

    def place(self) -> None:
        name, local, peer = self.name, self.local, self.peer_name
        if not self.peer.settled or ResState.UNKNOWN in self.peer_states:
            self.drbd_up()
            self.sentence = (f"{name} is not running: waiting for {peer} to finish probing its resources "
                             "(it may be running them).")
            return
        can = {n: self.why_not(n) for n in (local, peer)}
        eligible = [n for n in (local, peer) if not can[n]]
        move = self.view.moves.get(name)
        if not eligible:
            self.release_stale_claim()
            self.drbd_up()
            self.sentence = (f"{name} is not running and cannot start: {can[local]}, and {can[peer]}.")
            if can[local] == self.stale_copy():
                self.alert_stale_copy(f"{peer} cannot run it ({can[peer]})", can[local])
            return
        if move is not None and move.node in eligible:
            owner, why = move.node, f"the operator moved it to {move.node}"
        elif self.g.preferred_node in eligible:
            owner, why = self.g.preferred_node, f"{self.g.preferred_node} is its preferred node"
        elif len(eligible) == 1:
            owner, why = eligible[0], can[self.cfg.peer_of(eligible[0])]
        else:
            owner, why = sorted(eligible)[0], f"both nodes can run it and {sorted(eligible)[0]} comes first by name"
        if move is not None and move.node != owner:
            why += f"; the move to {move.node} waits: {can[move.node]}"
        if owner == local:
            self.start_all(f"{name} is not running anywhere and {why}: start it on {local}", self.start_epoch())
            self.sentence = f"{name} is starting on {local}: {why}."
        else:
            self.release_stale_claim()
            self.drbd_up()
            self.sentence = f"{name} is not running here: {peer} starts it because {why}."

    # ------------------------------------------------------------ nobody holds it, peer not seen

    def take_over(self) -> None:
        name, local, peer, view = self.name, self.local, self.peer_name, self.view
        uptime = view.now - view.started_at
        initdead = self.cfg.heartbeat.initdead
        if not view.peer_ever_seen and uptime < initdead:
            self.drbd_up()
            self.sentence = (f"{name} is not running: {local} started {uptime:g}s ago and has not heard "
                             f"{peer} yet; it waits {initdead - uptime:g}s more of initdead before "
                             "starting anything.")
            return
        gone = ("has not been heard since start-up" if not view.peer_ever_seen
                else f"is silent on every ring for {round(self._silent_for(), 1):g}s")
        d = self.d
        if d is not None and d.connected and not _peer_fenced(view):
            sees = f" and still sees {peer} {d.peer_role}" if d.peer_role == "Primary" else ""
            if view.peer_ever_seen:
                waited = view.now - self._lost_at()
                bound = self.cfg.drbd.peer_dead_wait
                if waited < bound:
                    self.sentence = (f"{name} is not running: {peer} {gone} but DRBD {d.resource} is still "
                                     f"Connected{sees}; waiting up to {bound - waited:g}s more for DRBD to notice "
                                     "before taking over.")
                    return
                how = f"still Connected {waited:g}s after the heartbeat loss (bound {bound:g}s)"
            else:
                how = f"Connected although the heartbeat of {peer} was never heard"
            why = (f"DRBD {d.resource} is {how}{sees}: {peer} is alive and only the heartbeat is broken, "
                   f"so {local} does not take {name} over")
            self.alert(f"drbd_connected:{name}", "critical", "heartbeat_broken", why)
            self.release_stale_claim()
            self.sentence = f"{name} is not running: {why}."
            return

        why = self.why_not(local)
        if why and why == self.stale_copy():
            return self.refuse_stale_copy(gone, why)
        if why:
            self.release_stale_claim()
            self.drbd_up()
            self.sentence = f"{name} is not running: {peer} {gone} and {local} cannot take it: {why}."
            # an operator's choice (standby, ban, pin) is no news; a refusal by the guard or by
            # the data is: the service is down until someone acts (split brain alerts on its own)
            refused = (self.cfg.split_brain_guard.mode == "ping" and view.tiebreaker is False) or (
                why == self._good_data(local)[0] and "split brain" not in why)
            if refused:
                self.alert(f"no_takeover:{name}", "critical", "no_takeover",
                           f"{name} cannot run anywhere: {peer} {gone} and {why}")
            return

        mode = self.cfg.split_brain_guard.mode
        if self.fence_first(gone):
            return
        self.disconnect_fenced_peer()
        guard = {"ping": "the tie-breaker is reachable", "fence": f"{peer} was fenced",
                 "drbd": "DRBD's fence-peer handler outdates the peer on promotion",
                 "none": "split_brain_guard is none"}[mode]
        if mode == "drbd" and _fence_first_guard(self.cfg, view):
            guard = f"{peer} was fenced"
        elif mode == "drbd":
            guard = f"DRBD knows {peer}'s copy of {d.resource} is Outdated" if d is not None else guard
        if _peer_fenced(view) and view.fencing != FenceState.SUCCEEDED:
            guard = f"its fence devices report {peer} powered off (fenced already)"
        reason = f"{peer} {gone} and {guard}: take {name} over on {local}"
        self.start_all(reason, self.start_epoch())
        self.sentence = f"{name} is starting on {local}: {peer} {gone} and {guard}."

    def stale_copy(self) -> str:
        """Why this node's copy may be stale ("" = it is not known to be): the peer held the group
        at a newer claim epoch than the last one at which this copy was in sync with the owner
        (``view.peer_epochs``/``synced_epochs``: the engine folds the claims and DRBD state in view
        into them before each round), so the peer wrote data this copy lacks, whatever DRBD's disk
        state says (fencing dont-care brings an unconnected disk up UpToDate).  An operator's
        forced promotion overrides it."""
        d, view, name = self.d, self.view, self.name
        if d is None or d.resource in view.forced_promotions:
            return ""
        seen, synced = view.peer_epochs.get(name, 0), view.synced_epochs.get(name, 0)
        if seen <= synced:
            return ""
        return (f"{self.peer_name} held {name} at claim epoch {seen}, newer than epoch {synced}, the last at "
                f"which {self.local}'s copy of {d.resource} was seen in sync with the owner, and DRBD has not "
                f"been Connected and in sync since: that copy may be stale, although DRBD calls it {d.disk}")

    def reclaim_alone(self) -> None:
        """Rule 13, the owner's half: an owner whose DRBD lost its peer goes on writing alone, so it
        claims a new epoch once (its claim is not newer than the epoch the copies were last in sync
        at); the peer, when it hears that claim (at once over a live heartbeat, or when it boots
        after a fence), knows its copy is stale although the owner never changed.  Only with a
        fence-first guard: the peer cannot take the group over unfenced there, so the new epoch
        never turns a two-owner decision (rule 12) of a live partition."""
        d, view, name = self.d, self.view, self.name
        if (d is None or d.role != "Primary" or d.connected or not _fence_first_guard(self.cfg, view)
                or name not in self.me.claims or self._claim(self.me) > view.synced_epochs.get(name, 0)
                or any(a.kind in (K.STOP, K.DEMOTE, K.CLAIM) for a in self.actions)):
            return
        self.act(K.CLAIM, None, f"DRBD {d.resource} is {d.connection}, so {self.local} writes it alone: claim "
                 f"{name} at a new epoch, so that {self.peer_name}'s copy is known stale until it resyncs",
                 epoch=self.new_epoch())

    def refuse_stale_copy(self, gone: str, why: str) -> None:
        """Rule 13 (stale copy): a node whose peer held the group at a newer epoch than its last
        in-sync one never promotes on the peer's loss until DRBD has connected and resynced, unless
        an operator forces the promotion (why_not says so; here: the alert, before any fencing,
        as a node that will not take over has no reason to fence)."""
        name, local, peer = self.name, self.local, self.peer_name
        self.release_stale_claim()
        self.drbd_up()
        self.alert_stale_copy(f"{peer} {gone}", why)
        self.sentence = f"{name} is not running: {peer} {gone} and {local} cannot take it: {why}."

    def alert_stale_copy(self, situation: str, why: str) -> None:
        name, local, peer, r = self.name, self.local, self.peer_name, self.d.resource
        self.alert(f"no_takeover:{name}", "critical", "no_takeover",
                   f"{situation}, but {local} does not take {name} over: {why}; bring {peer}'s copy back so "
                   f"that DRBD resyncs {local}'s, or, if {peer}'s data is lost for good, force the promotion "
                   f"on {local} (`hasupctl promote --force {r}`), accepting the loss of what {peer} wrote")

    def _silent_for(self) -> float:
        """How long the peer has been silent: the heartbeat declares it dead deadtime after
        its last packet, so the silence began deadtime before peer_lost_at."""
        return self.view.now - self._lost_at() + self.cfg.heartbeat.deadtime

    def _lost_at(self) -> float:
        return self.view.peer_lost_at if self.view.peer_lost_at is not None else self.view.now

    # ------------------------------------------------------------ fencing (issue 17)

    def fence_first(self, gone: str) -> bool:
        """Takeover must wait for the peer to be fenced: plan the FENCE when its time has come,
        say why not otherwise.  False: go on with the takeover."""
        cfg, view, name, local, peer = self.cfg, self.view, self.name, self.local, self.peer_name
        mode = cfg.split_brain_guard.mode
        if mode not in ("fence", "drbd") or _peer_fenced(view):
            return False
        if mode == "drbd" and not view.fence.devices:
            d = self.d
            if d is None or d.peer_disk == "Outdated":
                return False  # no DRBD to guard, or DRBD knows the peer cannot promote: no handler call
            why = (f"split_brain_guard drbd has no fence device: DRBD refuses to promote {d.resource} "
                   f"while {peer} may be alive with good data (its fence-peer handler never answers "
                   f"'down' on silence), so {local} does not take {name} over; bring {peer} back or "
                   "configure fencing devices")
            self.release_stale_claim()
            self.drbd_up()
            self.alert(f"no_takeover:{name}", "critical", "no_takeover", f"{peer} {gone}: {why}")
            self.sentence = f"{name} is not running: {peer} {gone} and {why}."
            return True
        go, why = _fence_gate(cfg, view, peer)
        self.drbd_up()
        self.fence_alert()
        if go:
            again = " again" if view.fencing == FenceState.FAILED else ""
            self.fence = f"{peer} {gone}: fence it{again} before taking over ({why})"
            self.sentence = f"{name} is not running: {self.fence}."
        else:
            self.sentence = f"{name} is not running: {peer} {gone}; {why}; no takeover before it is fenced."
        return True

    def owner_fences_silent_peer(self) -> None:
        """The node that holds the group fences a silent peer at once (its head start in the
        fence race); it keeps running the group meanwhile."""
        view, peer = self.view, self.peer_name
        if (self.peer_alive or not _fence_first_guard(self.cfg, view) or _peer_fenced(view)
                or not view.fence.devices or any(a.kind in (K.STOP, K.DEMOTE) for a in self.actions)):
            return
        if not view.peer_ever_seen and view.now - view.started_at < self.cfg.heartbeat.initdead:
            return
        go, why = _fence_gate(self.cfg, view, peer)
        self.fence_alert()
        if go:
            self.fence = f"{peer} is silent on every ring while {self.local} runs {self.name}: fence it ({why})"
            self.sentence = self.sentence[:-1] + f"; it fences the silent {peer} ({why})."
        else:
            self.sentence = self.sentence[:-1] + f"; {peer} is silent: {why}."

    def fence_alert(self) -> None:
        f = self.view.fence
        if self.view.fencing == FenceState.FAILED and f.attempts:
            self.alert(f"fence_failed:{self.peer_name}", "critical", "fence_failed",
                       f"fencing {self.peer_name} failed {_times(f.attempts)} ({f.last_message or 'no detail'}): "
                       f"no takeover until a fence succeeds; check the devices with `hasupctl fence test`")

    def disconnect_fenced_peer(self) -> None:
        """The peer is fenced but DRBD has not noticed yet (its ping timeout runs): drop the connection
        now rather than wait for drbd.peer_dead_wait."""
        d = self.d
        if d is not None and d.connected and _peer_fenced(self.view):
            self.act(K.DRBD_DISCONNECT, d.resource, f"{self.peer_name} is fenced (off) but DRBD {d.resource} is "
                     f"still Connected to it: disconnect now instead of waiting for DRBD's ping timeout")


FENCE_RETRY_FIRST = 2.0  # s after the first failed fence; doubles per failure ...
FENCE_RETRY_MAX = 60.0  # ... up to this


def fence_policy(cfg: Config) -> FenceFacts:
    """The configuration's part of ``view.fence`` (the engine and hasupd-simulate start from it).
    ``random_delay`` is the configured maximum here: the engine draws the delay of each loss of
    the peer in [0, maximum]; hasupd-simulate shows the longest wait.  A round-1
    ``split_brain_guard.fence.command`` is one command device of ``cfg.fencing`` already."""
    fencing = cfg.fencing
    if fencing is not None:
        return FenceFacts(devices=bool(fencing.devices), owner_head_start=fencing.owner_head_start,
                          random_delay=fencing.random_delay_max)
    return FenceFacts(devices=False, owner_head_start=5.0)


def guard_price(cfg: Config) -> str:
    """What the split-brain guard costs, in one sentence (``hasupctl check``, README)."""
    mode, f = cfg.split_brain_guard.mode, fence_policy(cfg)
    if mode == "drbd" and not f.devices:
        return ("drbd without fence devices: a live peer outdates itself, but a peer that vanishes (silent, "
                "not fenced) is never taken over automatically (DRBD keeps I/O frozen and refuses to promote: "
                "data before availability); add fence devices (fencing:) for automatic takeover")
    if mode in ("drbd", "fence"):
        how = "a live peer outdates itself; " if mode == "drbd" else ""
        return (f"{mode} with fence devices: {how}a silent peer is fenced (confirmed off) before any takeover; "
                f"the node that runs a group fences at once, the other after owner_head_start "
                f"{f.owner_head_start:g}s; a failed fence means no takeover")
    if mode == "ping":
        return ("ping: takes over while the tie-breaker answers; it does not decide a partition where both "
                "nodes reach it (two primaries possible)")
    return "none: takes over on heartbeat silence alone; a cut network runs the group on both nodes"


def fence_retry_delay(attempts: int) -> float:
    """Wait after the attempts-th failed fence before the next one."""
    return min(FENCE_RETRY_MAX, FENCE_RETRY_FIRST * 2 ** max(0, attempts - 1))


def _fence_first_guard(cfg: Config, view: ClusterView) -> bool:
    """The guard fences a silent peer before anything of its groups starts here."""
    mode = cfg.split_brain_guard.mode
    return mode == "fence" or (mode == "drbd" and view.fence.devices)


def _peer_fenced(view: ClusterView) -> bool:
    """The silent peer is known off: a fence confirmed it, or its devices report its power off."""
    return not view.peer.alive and (view.fencing == FenceState.SUCCEEDED or view.fence.peer_power == "off")


def _holds_any_group(cfg: Config, view: ClusterView) -> bool:
    peer = cfg.peer_of(view.local)
    return any(_GroupPlanner(cfg, view, g, peer)._holds(view.me) for g in cfg.groups)


def _fence_gate(cfg: Config, view: ClusterView, peer: str) -> tuple[bool, str]:
    """(fence the silent peer now?, why / why not yet): the fence race and the retries."""
    f, local = view.fence, view.local
    if view.fencing == FenceState.PENDING:
        return False, f"fencing {peer} is under way"
    if not f.devices:
        return False, f"no fence device can fence {peer}"
    if view.tiebreaker is False:
        return False, (f"{local} does not reach its tie-breaker, so it does not fence {peer} (if {local} "
                       "is the isolated one, it must be the one that loses)")
    connected = sorted(d.resource for d in view.me.drbd.values() if d.connected)
    if connected:
        return False, (f"DRBD {', '.join(connected)} is still Connected to {peer}: it is alive (only the "
                       "heartbeat is broken), so it is not fenced")
    lost = _fence_race_start(cfg, view)
    owner = _holds_any_group(cfg, view)
    wait = f.random_delay + (0.0 if owner else f.owner_head_start)
    parts = ([] if owner else [f"owner_head_start {f.owner_head_start:g}s"]) + (
        [f"random delay {f.random_delay:g}s"] if f.random_delay else [])
    delay = f" after {' + '.join(parts)}" if parts else " at once"
    who = f"{local} runs a group, so it fences{delay}" if owner else f"{local} runs no group, so it fences{delay}"
    waited = view.now - lost
    if waited < wait:
        return False, f"{who}: {peer} is fenced in {round(wait - waited, 1):g}s unless it is heard again"
    if view.fencing == FenceState.FAILED and f.attempts and f.last_attempt_at is not None:
        retry = f.last_attempt_at + fence_retry_delay(f.attempts) - view.now
        if retry > 0:
            return False, (f"fencing {peer} failed {_times(f.attempts)} ({f.last_message or 'no detail'}); "
                           f"the next attempt is in {round(retry, 1):g}s")
    return True, who


def _fence_race_start(cfg: Config, view: ClusterView) -> float:
    """When the fence race for the silent peer started: the later of the heartbeat's and DRBD's loss."""
    lost = view.peer_lost_at if view.peer_lost_at is not None else view.started_at + cfg.heartbeat.initdead
    return lost if view.fence.drbd_lost_at is None else max(lost, view.fence.drbd_lost_at)


def fence_next_attempt(cfg: Config, view: ClusterView) -> float | None:
    """When (monotonic) this node fences its silent peer, for the status: now, the end of its
    wait in the fence race, or of the retry backoff; None when no fence is due (the peer is heard
    or fenced, the guard does not fence) or something other than time holds it (the explain
    sentence says what)."""
    if view.peer.alive or not _fence_first_guard(cfg, view) or _peer_fenced(view):
        return None
    f = view.fence
    at = _fence_race_start(cfg, view) + f.random_delay + (0.0 if _holds_any_group(cfg, view)
                                                            else f.owner_head_start)
    if view.fencing == FenceState.FAILED and f.attempts and f.last_attempt_at is not None:
        at = max(at, f.last_attempt_at + fence_retry_delay(f.attempts))
    at = max(at, view.now)
    go, _ = _fence_gate(cfg, replace(view, now=at), cfg.peer_of(view.local))
    return at if go else None


def _outdate_on_request(cfg: Config, view: ClusterView, planned: list[Action]) -> list[Action]:
    """The live peer's fence-peer handler asks this node to outdate its copy (guard drbd): do it
    when this node is a disconnected Secondary with good data, so the peer may promote; not in
    maintenance, and not when this node's own plan promotes it (then the peer's request times out
    and its promotion fails: neither promotes on a doubt)."""
    out = []
    if not view.peer.alive or not view.me.settled or view.maintenance:
        return out
    promoting = {a.resource for a in planned if a.kind == K.PROMOTE}
    for res in sorted(view.outdate_requested - promoting):
        d = view.me.drbd.get(res)
        if (d is not None and d.up and d.role == "Secondary" and not d.connected and not d.split_brain
                and d.disk in ("UpToDate", "Consistent")):
            out.append(Action(K.DRBD_OUTDATE, None, res, f"{cfg.peer_of(view.local)} asks {view.local} to "
                              f"outdate its disconnected copy of {res} (DRBD's fence-peer handler there) so that "
                              "it may promote; this copy stays Outdated until it resyncs"))
    return out
