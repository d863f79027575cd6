"""Facts and queries about one group as this node sees it, the planner's vocabulary of actions,
and ``Decision``: what a rule returns (its actions, its one sentence, its standing alerts)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hasupd.config import Config, Group
from hasupd.model import (
    Action,
    ActionKind,
    ClusterView,
    DrbdStatus,
    NodeState,
    ResourceStatus,
    ResState,
)
from hasupd.planner.rules import Trace, rule

RUNNING = (ResState.STARTED, ResState.FAILED, ResState.STOP_FAILED)
# DRBD disk states of a node that has lost its local copy (on-io-error detach, the disk vanished):
# a Primary there serves every read and write over the network from the peer's disk
NO_LOCAL_DISK = ("Diskless", "Failed", "Detaching")
K = ActionKind


def times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


@dataclass
class Decision:
    """What one rule decided for a group: the actions (in order), the one sentence of explain(),
    the standing-condition alerts (key -> ALERT), and why the peer must be fenced ("" = no)."""
    sentence: str
    actions: list[Action] = field(default_factory=list)
    alerts: dict[str, Action] = field(default_factory=dict)
    fence: str = ""


class GroupFacts(Trace):
    """One group from the local node's view: read-only queries, and builders of its actions."""

    def __init__(self, cfg: Config, view: ClusterView, g: Group, peer_name: str):
        super().__init__()
        self.cfg, self.view, self.g = cfg, view, g
        self.name = g.name
        self.local, self.peer_name = view.local, peer_name
        self.me = view.nodes[view.local]
        self.peer = view.nodes.get(peer_name) or NodeState(peer_name)
        self.peer_alive = self.peer.alive
        self.d = self.drbd(self.me)
        self.states = self.res_states(self.me)
        self.peer_states = self.res_states(self.peer)

    # ------------------------------------------------------------ queries

    def drbd(self, node: NodeState) -> DrbdStatus | None:
        if self.g.drbd is None:
            return None
        return node.drbd.get(self.g.drbd) or DrbdStatus(self.g.drbd)

    def res_states(self, node: NodeState) -> list[ResState]:
        return [node.resources.get(r.name, ResourceStatus()).state for r in self.g.resources]

    def holds(self, node: NodeState) -> bool:
        """Holding a group: some resource of it started, failed or stop-failed, or DRBD Primary."""
        d = self.drbd(node)
        return any(s in RUNNING for s in self.res_states(node)) or (d is not None and d.role == "Primary")

    def peer_holds(self) -> bool:
        """The live peer holds the group (its heartbeat says so, or DRBD sees it Primary).

        A peer the heartbeat lost is judged by the takeover rules, DRBD's Connected state first."""
        drbd_sees_primary = self.d is not None and self.d.connected and self.d.peer_role == "Primary"
        return self.peer_alive and (drbd_sees_primary or self.holds(self.peer))

    def diskless_primary(self) -> bool:
        """This node is DRBD Primary without a local disk (it runs on the peer's copy)."""
        return self.d is not None and self.d.role == "Primary" and self.d.disk in NO_LOCAL_DISK

    def link(self, node: NodeState) -> str:
        """Why node's interfaces cannot carry the group's VIPs now ("" = they can)."""
        for r in self.g.resources:
            why = node.link_down.get(r.name)
            if why:
                return f"{r.name}: {why}"
        return ""

    def claim(self, node: NodeState) -> int:
        return node.claims.get(self.name, 0)

    def fail(self, node: str) -> tuple[str, int] | None:
        """(resource, count) of the first resource at the migration threshold on node."""
        for r in self.g.resources:
            c = self.count(node, r.name)
            if c >= self.g.migration_threshold:
                return r.name, c
        return None

    def count(self, node: str, res: str) -> int:
        fc = self.view.fail_counts.get((node, self.name, res))
        if fc is None:
            return 0
        timeout = self.g.failure_timeout
        if timeout > 0 and self.view.wall - fc.last_failure_wall > timeout:
            return 0  # expired (the engine drops it too)
        return fc.count

    def count_text(self, node: str, res: str) -> str:
        raw = self.view.fail_counts.get((node, self.name, res))
        count = self.count(node, res)
        text = f"fail count {count} of {self.g.migration_threshold}"
        if raw is not None and count == 0:
            text += f"; its older failures expired after failure_timeout {self.g.failure_timeout:g}s"
        return text

    def node(self, name: str) -> NodeState:
        return self.me if name == self.local else self.peer

    def tiebreaker(self, node: str) -> bool | None:
        return self.view.tiebreaker if node == self.local else self.node(node).tiebreaker

    def placement_choice(self) -> str:
        """The node placement prefers when both could run it: preferred_node, else first name."""
        if self.g.preferred_node:
            return self.g.preferred_node
        return sorted(self.cfg.node_names())[0]

    # ------------------------------------------------------------ the data (rule 4)

    @rule("R4-good-data", "A node promotes only an UpToDate disk, or a Consistent one whose peer is known "
          "Outdated; anything else needs the operator's forced promotion (split brain and may_promote:no bar it).",
          applied=lambda answer: answer != ("", False))
    def good_data(self, node: str) -> tuple[str, bool]:
        """("" or why not, force needed) for promoting the group's DRBD on node."""
        d = self.drbd(self.node(node))
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

    @rule("R4-no-fork", "Both nodes up but DRBD not connected: never promote apart from a live peer that may "
          "have good data (it would start a second data generation); wait for DRBD to connect.")
    def apart_from_live_peer(self, node: str) -> str:
        """Why promoting node now would fork the data ("" if it would not).  Both nodes are up and
        DRBD is not connected: the peer made a new data generation of its own if it was Primary when
        the link broke, and promoting node without its peer makes another; DRBD calls that a split
        brain when they reconnect (8.4's uuid_compare, rule 90).  Wait for DRBD to connect (and
        resync): the promotion then goes through the peer.  A peer whose DRBD is down, or whose disk
        is known Outdated, Inconsistent or Diskless, has no generation to fork."""
        d = self.drbd(self.node(node))
        other = self.drbd(self.peer if node == self.local else self.me)
        if d is None or other is None or not self.peer_alive or d.role == "Primary" or d.connected:
            return ""
        if not other.up or other.disk in ("Outdated", "Inconsistent", *NO_LOCAL_DISK) \
                or d.peer_disk in ("Outdated", "Inconsistent"):
            return ""
        return (f"DRBD {d.resource} on {node} is {d.connection}, not connected to its live peer: promoting it "
                "apart would start a second data generation (a split brain when they reconnect); waiting for "
                "DRBD to connect")

    # ------------------------------------------------------------ builders of actions

    def act(self, kind: ActionKind, resource: str | None, reason: str, **kw) -> Action:
        return Action(kind, self.name, resource, reason, **kw)

    def alert(self, key: str, severity: str, event: str, reason: str) -> dict[str, Action]:
        return {key: Action(K.ALERT, self.name, None, reason, severity=severity, event=event, key=key)}

    def drbd_up(self) -> list[Action]:
        if self.d is not None and not self.d.up:
            return [self.act(K.DRBD_UP, self.d.resource, f"DRBD {self.d.resource} is not up on {self.local}: "
                             "bring it up so that it replicates")]
        return []

    @rule("R1-stop-then-demote", "A group stops in reverse order, then its DRBD resource is demoted, then "
          "the claim is dropped (a ban, when one is due, is recorded first).")
    def stop_all(self, reason: str, ban: bool = False) -> list[Action]:
        """Stop the group here in reverse order, then demote, then drop the claim."""
        out = []
        if ban and (self.name, self.local) not in self.view.bans:
            out.append(self.act(K.BAN, None, reason))
        for r, s in reversed(list(zip(self.g.resources, self.states))):
            if s in (ResState.STARTED, ResState.FAILED):
                out.append(self.act(K.STOP, r.name, reason))
        if self.d is not None and self.d.role == "Primary":
            out.append(self.act(K.DEMOTE, self.d.resource, reason))
        if self.name in self.me.claims:
            out.append(self.act(K.RELEASE, None, reason))
        return out

    @rule("R1-promote-then-start", "A group starts only after its claim and its DRBD promotion, then in "
          "group order.")
    def start_all(self, reason: str, epoch: int | None) -> list[Action]:
        """Claim (when epoch is given), promote, then start in group order."""
        out = []
        if epoch is not None:
            out.append(self.act(K.CLAIM, None, reason, epoch=epoch))
        out += self.promote(reason)
        for r, s in zip(self.g.resources, self.states):
            if s != ResState.STARTED:
                out.append(self.act(K.START, r.name, reason))
        return out

    def promote(self, reason: str) -> list[Action]:
        d = self.d
        if d is None or d.role == "Primary":
            return []
        _, force = self.good_data(self.local)
        if force:
            reason = f"{reason} (promotion forced by the operator: {d.resource} is {d.disk})"
        return self.drbd_up() + [self.act(K.PROMOTE, d.resource, reason, force=force)]

    @rule("R12-epochs", "Claim epochs only go up: a new claim is one more than any claim in view and than "
          "the highest epoch this node ever saw; a retried takeover does not raise it again.")
    def new_epoch(self) -> int:
        """One more than any claim this node has seen (now, or ever: view.epoch_floor)."""
        return max(self.view.epoch_floor, self.claim(self.me), self.claim(self.peer)) + 1

    def start_epoch(self) -> int | None:
        """The epoch to claim before starting; None: our claim is already the newest
        (a retry after a failed promotion must not raise the epoch every round)."""
        if self.name in self.me.claims and self.claim(self.me) > self.claim(self.peer):
            return None
        return self.new_epoch()
