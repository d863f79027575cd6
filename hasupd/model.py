"""The cluster as the planner sees it, and the actions it returns.

Everything here is plain frozen data: the engine builds a ``ClusterView``
from observations, ``planner.decide`` turns it into ``Action``s.  The same
shapes travel in the heartbeat (``to_dict``/``from_dict``) and are shown by
``hasupctl status --json``.

Times: ``ClusterView.now`` and every ``*_at`` field are seconds on the
engine's monotonic clock; ``wall`` fields are Unix time (for fail counts
that must survive a restart and for display).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping


class ResState(str, Enum):
    STOPPED = "stopped"
    STARTED = "started"
    FAILED = "failed"  # was started, is not running/answering any more
    STOP_FAILED = "stop_failed"  # a stop timed out or failed: may still hold data
    UNKNOWN = "unknown"  # not probed yet


@dataclass(frozen=True)
class ResourceStatus:
    state: ResState = ResState.UNKNOWN
    detail: str = ""  # e.g. "pid 1234, server-status ok 3 ms ago"
    since: float = 0.0


@dataclass(frozen=True)
class DrbdStatus:
    """One DRBD resource on one node, as parsed from events2 or /proc/drbd.

    Names are DRBD 9 / events2 names; /proc/drbd's are mapped on parsing
    (cs:WFConnection -> connection Connecting, cs:SyncSource -> connection
    Connected + replication SyncSource).
    """

    resource: str
    up: bool = False  # the resource exists in the kernel (drbdadm up was done)
    role: str = "Unknown"  # Primary | Secondary | Unknown
    peer_role: str = "Unknown"
    disk: str = "DUnknown"  # UpToDate Consistent Outdated Inconsistent Diskless Failed ...
    peer_disk: str = "DUnknown"
    connection: str = "StandAlone"  # StandAlone Connecting Connected Disconnecting ...
    replication: str = "Off"  # Off Established SyncSource SyncTarget PausedSyncS ...
    sync_percent: float | None = None
    sync_eta_s: float | None = None
    sync_speed_kib: float | None = None
    out_of_sync_kib: int = 0
    suspended: bool = False
    split_brain: bool = False  # seen "Split-Brain detected" / StandAlone after it
    # added by the DRBD driver (issue 11)
    minor: int | None = None
    resync_suspended: str = "no"  # events2 resync-suspended: no | user | peer | dependency
    backing_disk_present: bool = True  # False: the backing disk vanished (udev/sysfs)
    # DRBD 9 only (issue 20); None = not reported (8.4 never reports them)
    may_promote: bool | None = None  # events2 may_promote (computed by drbd-utils)
    promotion_score: int | None = None
    quorum: bool | None = None  # False: some volume reports quorum:no
    suspended_reason: str = ""  # events2 suspended: user | no-data | fencing | quorum (joined by ,)
    peer_client: bool = False  # the peer is an intentionally diskless client: never a data copy
    kernel_version: str = ""  # the node's DRBD module ("8.4.11", "9.2.12"), found once at start
    # why the last demotion was refused after its escalation (holders stopped, `secondary
    # --force` where DRBD has it); "" once the node is no longer Primary
    demote_failed: str = ""

    @property
    def connected(self) -> bool:
        return self.connection == "Connected"

    @property
    def quorum_lost(self) -> bool:
        """DRBD 9 says this node has no quorum (quorum:no, or I/O suspended for it)."""
        return self.quorum is False or "quorum" in self.suspended_reason.split(",")


@dataclass(frozen=True)
class NodeState:
    """What one node reports about itself (the local node's is observed,
    the peer's arrives in its heartbeat)."""

    name: str
    alive: bool = False  # the local node is always alive
    rings: tuple[bool, ...] = ()  # per heartbeat ring: heard recently
    incarnation: str = ""  # new at each daemon start
    standby: bool = False
    drbd: Mapping[str, DrbdStatus] = field(default_factory=dict)
    resources: Mapping[str, ResourceStatus] = field(default_factory=dict)
    # group -> ownership epoch, for every group this node holds or is starting.
    # A takeover claims max(known epochs, ClusterView.epoch_floor) + 1, so after a partition both
    # nodes agree which claim is newer (rule 12).
    claims: Mapping[str, int] = field(default_factory=dict)
    settled: bool = False  # finished its start-up probe (adoption)
    config_digest: str = ""
    # added by the planner (issue 2): this node's ping-guard result, published
    # so both nodes weigh each other's tie-breaker the same way when placing
    # a group (None: not known / no ping guard)
    tiebreaker: bool | None = None
    # added by issue 16: VIP resource -> why its interface cannot carry it now ("eth0 has no
    # carrier"): this node cannot serve the group now, which is not a failure of the resource
    link_down: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FailCount:
    count: int
    last_failure_wall: float  # Unix time of the latest failure


@dataclass(frozen=True)
class MoveIntent:
    node: str
    epoch: int
    pin: bool = False  # --pin: the group stays on `node` until `clear`


class FenceState(str, Enum):
    NONE = "none"  # nothing asked
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class FenceFacts:
    """What the planner knows about fencing the peer (split_brain_guard fence, or drbd with devices).

    The engine builds the policy part from the configuration (``planner.fence_policy``) and the rest
    from its fencer; all of it is about the CURRENT loss of the peer (the engine starts afresh when
    the peer is heard again)."""

    devices: bool = False  # fence devices that can fence the peer are configured
    owner_head_start: float = 0.0  # a node that runs no group waits this long before fencing
    random_delay: float = 0.0  # drawn by the engine in [0, random_delay_max] when the peer was lost
    # when DRBD stopped being Connected to the peer (None: Connected, or not known); the head start
    # counts from the later of this and the heartbeat's loss, as the owner cannot fence before either
    drbd_lost_at: float | None = None
    attempts: int = 0  # failed fence attempts since the peer was lost
    last_attempt_at: float | None = None  # when the last failed attempt ended (monotonic)
    last_message: str = ""  # the last outcome's sentence (the fencer redacts secrets)
    # the devices' power status of the silent peer, asked by the engine as soon as it is lost:
    # "off" means it is fenced already (a power cut; the BMC keeps standby power); "" = not known
    peer_power: str = ""


@dataclass(frozen=True)
class ClusterView:
    local: str
    now: float
    started_at: float  # when this daemon started (initdead counts from here)
    nodes: Mapping[str, NodeState]
    peer_ever_seen: bool = False  # the peer was alive at least once since start
    peer_lost_at: float | None = None  # heartbeat declared the peer dead
    wall: float = 0.0
    # operator state, merged from both nodes (latest epoch wins)
    fail_counts: Mapping[tuple[str, str, str], FailCount] = field(default_factory=dict)  # (node, group, resource)
    bans: frozenset[tuple[str, str]] = frozenset()  # (group, node)
    moves: Mapping[str, MoveIntent] = field(default_factory=dict)  # group -> intent
    target_roles: Mapping[str, str] = field(default_factory=dict)  # group -> started|stopped
    maintenance: bool = False
    forced_promotions: frozenset[str] = frozenset()  # DRBD resources an operator forced
    # guards
    tiebreaker: bool | None = None  # ping guard: tie-breaker reachable from here
    fencing: FenceState = FenceState.NONE  # fencing of the peer (fence guard)
    # groups the engine holds blocked after a stop failure: group -> reason
    blocked: Mapping[str, str] = field(default_factory=dict)
    # added by the planner (issue 2): keys of the standing-condition alerts
    # already raised (Action.key of ALERT actions).  The engine keeps it in
    # memory: ALERT with a key adds it, FORGET_ALERT removes it.  So a
    # condition (split brain, "DRBD still Connected", ...) alerts once, and
    # again only after it has cleared and come back.
    alerted: frozenset[str] = frozenset()
    # added by the planner: the highest claim epoch this node has ever seen (its own claims
    # and the peer's published ones; the engine persists it).  A new claim takes
    # max(epoch_floor, both claims) + 1, so epochs never go back after a clean failover
    # (a released claim no longer shows) or a restart.
    epoch_floor: int = 0
    # added for fencing (issue 17): the fence facts, and the DRBD resources the live peer asks this
    # node to outdate (its fence-peer handler runs: DRBD resource-and-stonith, guard drbd)
    fence: FenceFacts = FenceFacts()
    outdate_requested: frozenset[str] = frozenset()
    # added for the stale copy after a fence (issues 17/23), persisted by the engine: per group, the
    # highest claim epoch this node has seen its peer hold, and the highest claim epoch at which the
    # two copies were last seen in sync (DRBD Connected, both disks UpToDate; State.observe_copy).
    # A peer that held the group at a newer epoch wrote data this copy lacks.
    peer_epochs: Mapping[str, int] = field(default_factory=dict)
    synced_epochs: Mapping[str, int] = field(default_factory=dict)

    @property
    def me(self) -> NodeState:
        return self.nodes[self.local]

    @property
    def peer(self) -> NodeState:
        return next(n for name, n in self.nodes.items() if name != self.local)


class ActionKind(str, Enum):
    DRBD_UP = "drbd_up"  # bring the DRBD resource up (drbdadm up/adjust)
    PROMOTE = "promote"
    DEMOTE = "demote"
    START = "start"
    STOP = "stop"
    MONITOR = "monitor"  # re-probe (e.g. after cleanup)
    FENCE = "fence"  # fence the peer with the fence devices (fencer.fence(peer))
    CLAIM = "claim"  # record ownership of the group at a new epoch
    RELEASE = "release"  # drop the ownership claim
    BAN = "ban"  # bar this node from the group (threshold reached)
    BLOCK = "block"  # mark the group blocked (stop failed)
    REBOOT = "reboot"  # self-fence (on_stop_failure: reboot)
    ALERT = "alert"
    # added by the planner (issue 2):
    FORGET_MOVE = "forget_move"  # a one-shot move is done: drop the intent (state.forget_move)
    FORGET_FORCE = "forget_force"  # a forced promotion is used up: drop it (force_promotion(res, False))
    FORGET_ALERT = "forget_alert"  # a standing condition cleared: drop action.key from view.alerted
    # added for fencing (issue 17):
    DRBD_DISCONNECT = "drbd_disconnect"  # the peer is fenced: drop DRBD's connection to it now
    DRBD_OUTDATE = "drbd_outdate"  # the live peer asked: mark this node's disconnected copy Outdated
    # added by issue 16:
    ANNOUNCE = "announce"  # send the VIP's gratuitous ARP again (the other owner stepped down)


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    group: str | None = None
    resource: str | None = None  # resource name, or DRBD resource name
    reason: str = ""  # one plain sentence: shown in status and history
    force: bool = False  # promote --force (operator forced) only
    epoch: int = 0  # for CLAIM
    severity: str = "info"  # for ALERT: info | warning | critical
    event: str = ""  # for ALERT: HASUPD_EVENT name
    key: str = ""  # for ALERT/FORGET_ALERT: standing-condition key (see ClusterView.alerted)


# ---------------------------------------------------------------- (de)serialisation


def to_dict(obj: Any) -> Any:
    """Plain JSON-able form of any model object (enums as their values)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, Mapping):
        return {("|".join(k) if isinstance(k, tuple) else k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, frozenset, set)):
        return [to_dict(v) for v in obj]
    return obj


def node_state_from_dict(d: Mapping[str, Any]) -> NodeState:
    return NodeState(
        name=d["name"],
        alive=bool(d.get("alive", False)),
        rings=tuple(bool(x) for x in d.get("rings", ())),
        incarnation=str(d.get("incarnation", "")),
        standby=bool(d.get("standby", False)),
        drbd={k: DrbdStatus(**v) for k, v in d.get("drbd", {}).items()},
        resources={
            k: ResourceStatus(ResState(v["state"]), v.get("detail", ""), float(v.get("since", 0.0)))
            for k, v in d.get("resources", {}).items()
        },
        claims={k: int(v) for k, v in d.get("claims", {}).items()},
        settled=bool(d.get("settled", False)),
        config_digest=str(d.get("config_digest", "")),
        tiebreaker=None if d.get("tiebreaker") is None else bool(d["tiebreaker"]),
        link_down={str(k): str(v) for k, v in d.get("link_down", {}).items()},
    )
