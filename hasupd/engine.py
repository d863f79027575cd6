"""The engine: one asyncio loop that owns all state.

observations (heartbeat, watches, probes, timers, control socket)
    -> ClusterView -> planner.decide() -> actions, one at a time, in order
    -> observations again.

Nothing here decides policy: every "what next" is the planner's.  The
engine records fail counts, runs actions with their timeouts, publishes
the local state in the heartbeat and keeps the history.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import socket
import time
from dataclasses import replace

from hasupd import planner, redact
from hasupd.alerts import Alerter
from hasupd.config import Config, Group
from hasupd.fencing import FenceOutcome, Fencer
from hasupd.history import History, split_brain_unresolved
from hasupd.membership import heartbeat as hbmod
from hasupd.membership import tiebreaker
from hasupd.model import (
    Action,
    ActionKind,
    ClusterView,
    DrbdStatus,
    FenceState,
    NodeState,
    ResourceStatus,
    ResState,
    node_state_from_dict,
    to_dict,
)
from hasupd.resources import drbd as drbdmod
from hasupd.resources import make_driver
from hasupd.resources.base import Result
from hasupd.state import StateStore
from hasupd.state import merge as merge_state


class ControlError(Exception):
    """A request that cannot be done; the message goes back to hasupctl."""

TICK = 1.0  # the reconcile loop runs at least this often (timers: initdead, expiry)
RETRY_BACKOFF = 2.0  # after a failed round, wait before trying the same thing again
OUTDATE_WAIT = 10.0  # s: a fence-peer request waits this long for the live peer to outdate itself
# The systemd watchdog proves the loop is alive, not that no action runs (issue 16): it is
# pinged from a task of its own while the reconcile loop makes progress: a round ends at
# least every STALL_LIMIT seconds, or the action running now is still within its own bound
# (its timeout + ACTION_GRACE).  A loop stuck past that, or a blocked event loop, stops the pings.
STALL_LIMIT = 30.0
ACTION_GRACE = 30.0
STARTUP_LIMIT = 600.0
LINK_POLL = 0.5  # how often a VIP's interface is checked for carrier  # start-up: DRBD up and the initial probes, each bounded on its own


class Engine:
    def __init__(self, cfg: Config, local: str, key: bytes, *, foreground: bool = True,
                 stop_resources_on_exit: bool = False, notify=None, fencer=None):
        self.cfg = cfg
        redact.learn(cfg)  # the configuration's secrets are masked in every output
        self.local = local
        self.peer_name = cfg.peer_of(local)
        self.digest = cfg.digest()
        self.started_at = time.monotonic()
        self.stop_resources_on_exit = stop_resources_on_exit
        self.notify = notify or (lambda *a, **k: None)
        self.alerter = Alerter(cfg, local, foreground=foreground)
        self.history = History(cfg.state_dir, cfg.history_max_bytes, node=local)
        self.alerter.history = self.history
        self.store = StateStore(os.path.join(cfg.state_dir, "state.json"))
        self.heartbeat = hbmod.Heartbeat(cfg, local, key,
                                         replay_state=os.path.join(cfg.state_dir, "peer-incarnation.json"))
        self.guard = None
        if cfg.split_brain_guard.ping is not None:  # mode ping, or fence/drbd's tie-breaker
            self.guard = tiebreaker.PingGuard(cfg.split_brain_guard.ping)
        # fence-schema.md's Fencer: fence(node) -> FenceOutcome, power_status(node) -> on|off|unknown
        self.fencer = fencer if fencer is not None else (Fencer(cfg.fencing, local) if cfg.fencing is not None else None)
        self.fence_policy = replace(planner.fence_policy(cfg), devices=self.fencer is not None)
        self.fence_facts = replace(self.fence_policy, random_delay=0.0)  # about the current loss of the peer
        self.fence_gen = 0  # +1 at each loss / return of the peer: older fence results are dropped
        self.fence_task: asyncio.Task | None = None
        self.drbd_lost: dict[str, float] = {}  # DRBD resource -> when it stopped being Connected
        self.outdate_requests: set[str] = set()  # DRBD resources the peer is asked to outdate (fence-peer)
        self.drivers = {r.name: make_driver(r, local) for g in cfg.groups for r in g.resources}
        self.group_of = {r.name: g for g in cfg.groups for r in g.resources}
        self.drbd = {r.name: drbdmod.DrbdDriver(cfg.drbd, r) for r in cfg.drbd.resources}
        self.resources: dict[str, ResourceStatus] = {n: ResourceStatus() for n in self.drivers}
        self.drbd_status: dict[str, DrbdStatus] = {n: DrbdStatus(n) for n in self.drbd}
        self.claims: dict[str, int] = {}
        self.settled = False
        self.fencing = FenceState.NONE
        self.fenced_incarnation = ""
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.stopping = asyncio.Event()
        self.last_failed_round: tuple[tuple, float] | None = None
        self.last_round: tuple[tuple, float] | None = None
        self.peer_ever_seen = False
        self.last_summary = ""
        self.acting: Action | None = None  # the action running now (for status)
        self.alerted: set[str] = set()
        self.ring_errors: dict[int, str] = {}
        self.takeovers: dict[str, float] = {}  # group -> when this node began taking it over
        self.metrics = None  # hasupd.metrics.Metrics when metrics.listen is configured
        self.loop_beat = time.monotonic()  # the reconcile loop's latest sign of progress
        self.action_deadline: float | None = None  # while an action runs: when it must be over
        self.state_unsaved = ""  # why the latest state write failed ("" = the file is current)
        self.peer_reported: NodeState | None = None  # the peer's latest well-formed report
        self.internal_errors = 0  # rounds that raised (a bug): alerted, retried, never fatal
        self.link_down: dict[str, str] = {}  # VIP resource -> why its interface cannot carry it now
        self.reported: set[str] = set()  # one-off alerts already raised (bad_payload)
        self.peer_held: set[str] = set()  # groups the peer claimed last (a claim here is then a failover)  # ring -> last socket error alerted  # standing-condition alerts already raised (planner's keys)

    # ------------------------------------------------------------ start-up

    async def start(self) -> None:
        warning = self.store.load()
        if warning:
            self.alerter.emit("state_corrupt", "warning", warning)
        self.claims = dict(self.store.state.claims_of(self.local))
        for w in self.cfg.warnings:
            self.alerter.emit("config_warning", "warning", w)
        if self.cfg.drbd.resources and self.cfg.drbd.load_module:
            res = await drbdmod.ensure_module(self.cfg.drbd)
            if not res.ok:
                self.alerter.emit("drbd_module", "critical", res.message)
        for name, drv in self.drbd.items():
            res = await drv.up()
            if not res.ok:
                self.alerter.emit("drbd_up_failed", "critical", res.message, resource=name)
            self.drbd_status[name] = await drv.status()
            if split_brain_unresolved(self.history.read(), name, self.drbd_status[name]):
                # a restart during a split brain: DRBD's StandAlone does not say why; the history does
                self.drbd_status[name] = drv.remember_split_brain()
        # the initial probe: adopt what runs (a daemon restart disturbs nothing)
        for name in self.drivers:
            self.resources[name] = await self.probe(name)
        self.settled = True
        self.history.record("start", reason=f"hasupd started on {self.local}",
                            resources={n: s.state.value for n, s in self.resources.items()})
        await self.heartbeat.start()
        self.publish()
        self.tasks.append(asyncio.create_task(self._membership_loop(), name="membership"))
        for name, drv in self.drivers.items():
            self.tasks.append(asyncio.create_task(self._watch_loop(name, drv), name=f"watch-{name}"))
            if self.group_of[name].resource(name).type != "ocf":  # an OCF watch is its periodic monitor
                self.tasks.append(asyncio.create_task(self._monitor_loop(name, drv), name=f"monitor-{name}"))
        for name, drv in self.drbd.items():
            self.tasks.append(asyncio.create_task(self._drbd_loop(name, drv), name=f"drbd-{name}"))
        for name, drv in self.drivers.items():
            if hasattr(drv, "link_trouble"):
                self.tasks.append(asyncio.create_task(self._link_loop(name, drv), name=f"link-{name}"))
        if self.guard is not None:
            self.tasks.append(asyncio.create_task(self._guard_loop(), name="guard"))

    # ------------------------------------------------------------ the view

    def local_state(self) -> NodeState:
        peer = self.heartbeat.peer()
        return NodeState(
            name=self.local, alive=True, rings=tuple(peer.rings), incarnation=self.heartbeat.incarnation,
            standby=self.store.state.standby.get(self.local, False), drbd=dict(self.drbd_status),
            resources=dict(self.resources), claims=dict(self.claims), settled=self.settled,
            config_digest=self.digest,
            tiebreaker=self.guard.reachable if self.guard is not None else None,
            link_down=dict(self.link_down),
        )

    def peer_state(self) -> NodeState:
        peer = self.heartbeat.peer()
        ns = self.peer_reported or NodeState(self.peer_name)
        self.peer_held.update(ns.claims)
        return replace(ns, name=self.peer_name, alive=peer.alive, rings=tuple(peer.rings),
                       standby=self.store.state.standby.get(self.peer_name, False))

    def view(self) -> ClusterView:
        now = time.monotonic()
        self.store.expire(time.time(), self.cfg)
        me, them = self.local_state(), self.peer_state()
        # every claim seen raises the persisted floor: a new claim goes above all of them
        floor_raised = self.store.raise_claim_floor(max((*me.claims.values(), *them.claims.values()), default=0))
        if self.observe_copies(me, them) or floor_raised:
            self.save_state()
        st = self.store.state
        peer = self.heartbeat.peer()
        return ClusterView(
            local=self.local, now=now, started_at=self.started_at,
            nodes={self.local: me, self.peer_name: them},
            peer_ever_seen=self.peer_ever_seen,
            peer_lost_at=peer.lost_at if not peer.alive else None,
            wall=time.time(),
            fail_counts=st.fail_counts_view(), bans=st.bans_view(), moves=st.moves_view(),
            target_roles=dict(st.target_roles), maintenance=st.maintenance,
            forced_promotions=frozenset(st.forced_promotions),
            tiebreaker=self.guard.reachable if self.guard is not None else None,
            fencing=self.fencing, blocked=dict(st.blocked), alerted=frozenset(self.alerted),
            epoch_floor=st.claim_floor,
            fence=replace(self.fence_facts, drbd_lost_at=max(self.drbd_lost.values(), default=None)),
            outdate_requested=frozenset(self.peer_outdate_requests()),
            peer_epochs=dict(st.peer_epochs), synced_epochs=dict(st.synced_epochs),
        )

    def observe_copies(self, me: NodeState, them: NodeState) -> bool:
        """Per group with DRBD: the peer's claim seen, and whether this copy is in sync with the
        owner now (State.observe_copy says why this is the definition).  True: it changed."""
        changed = False
        for g in self.cfg.groups:
            d = me.drbd.get(g.drbd) if g.drbd else None
            if d is None:
                continue
            in_sync = d.connected and d.disk == "UpToDate" and d.peer_disk == "UpToDate"
            changed |= self.store.observe_copy(g.name, me.claims.get(g.name, 0), them.claims.get(g.name, 0),
                                               in_sync)
        return changed

    def publish(self) -> None:
        """Send our state to the peer now (after any change)."""
        node = to_dict(self.local_state())
        state = self.store.state.to_wire()
        try:
            self.heartbeat.set_payload({"node": node, "state": state, "outdate": sorted(self.outdate_requests)})
        except ValueError:
            # too large for one packet: the human details go first, the facts stay
            for r in node.get("resources", {}).values():
                r["detail"] = ""
            try:
                self.heartbeat.set_payload({"node": node, "state": state})
            except ValueError as e:
                if "payload_too_large" not in self.alerted:
                    self.alerted.add("payload_too_large")
                    self.alerter.emit("config_too_large", "critical",
                                      f"the state of this node does not fit in one heartbeat packet ({e}): "
                                      "the peer sees an old state; use fewer resources per cluster")
        self.heartbeat.send_now()

    def changed(self) -> None:
        self.publish()
        self.wake.set()

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        watchdog = asyncio.create_task(self._watchdog_loop(), name="watchdog")
        self.action_deadline = time.monotonic() + STARTUP_LIMIT
        try:
            await self.start()
        finally:
            self.action_deadline = None
        self.notify(ready=True, status=self.status_line())
        try:
            while not self.stopping.is_set():
                self.loop_beat = time.monotonic()
                try:
                    await asyncio.wait_for(self.wake.wait(), TICK)
                except asyncio.TimeoutError:
                    pass
                self.wake.clear()
                if self.stopping.is_set():
                    break
                if self.state_unsaved:
                    self.save_state()  # the disk was full: try again
                try:
                    await self.reconcile()
                except Exception as e:  # a bug in a round must not end the daemon: alert, back off, retry
                    self.internal_error("reconcile", e)
                    await asyncio.sleep(RETRY_BACKOFF)
                self.notify(status=self.status_line())
            await self.shutdown()
        finally:
            watchdog.cancel()

    def internal_error(self, where: str, e: BaseException) -> None:
        self.internal_errors += 1
        self.history.record("internal-error", where=where, reason=f"{type(e).__name__}: {e}")
        self.alerter.emit("internal_error", "critical", f"hasupd hit an unexpected error in {where} and goes on: "
                          f"{type(e).__name__}: {e}")

    def loop_alive(self) -> bool:
        """The reconcile loop makes progress (see STALL_LIMIT)."""
        now = time.monotonic()
        if self.action_deadline is not None:
            return now < self.action_deadline
        return now - self.loop_beat < STALL_LIMIT

    async def _watchdog_loop(self) -> None:
        interval = getattr(self.notify, "watchdog_interval", None)  # half of WatchdogSec
        if not interval:
            return
        while True:
            if self.loop_alive():
                self.notify(watchdog=True)
            await asyncio.sleep(interval / 2)

    async def reconcile(self) -> None:
        view = self.view()
        actions = planner.decide(self.cfg, view)
        if not actions:
            return
        key = tuple((a.kind, a.group, a.resource, a.key) for a in actions)
        if self.last_failed_round and self.last_failed_round[0] == key \
                and time.monotonic() - self.last_failed_round[1] < RETRY_BACKOFF:
            return  # the same plan just failed: let the timer retry
        if self.last_round and self.last_round[0] == key and time.monotonic() - self.last_round[1] < TICK:
            return  # the same plan just ran and changed nothing visible: no busy loop
        self.last_round = (key, time.monotonic())
        self.history.record("decision", actions=[f"{a.kind.value} {a.resource or a.group or ''}".strip()
                                                 for a in actions],
                            reason="; ".join(dict.fromkeys(a.reason for a in actions if a.reason)))
        for action in actions:
            if self.stopping.is_set():
                return
            if action.kind == ActionKind.CLAIM and action.group not in self.takeovers \
                    and not self.primary_here(action.group):  # a Primary's new epoch (rule 13) is no takeover
                self.takeover_started(action)
            ok = await self.execute(action)
            if not ok:
                self.last_failed_round = (key, time.monotonic())
                self.wake.set()
                return
        self.last_failed_round = None
        self.wake.set()  # look again: success is confirmed by the next view

    # ------------------------------------------------------------ actions

    def _timeout(self, action: Action, what: str) -> float:
        group = self.cfg.group(action.group) if action.group else None
        if group and action.resource and group.resource(action.resource):
            t = group.resource(action.resource).timeouts
            return {"start": t.start, "stop": t.stop, "monitor": t.monitor}[what]
        return 240.0

    def _bound(self, action: Action) -> float:
        """How long the action may take before the loop counts as stuck (the watchdog)."""
        what = {ActionKind.STOP: "stop", ActionKind.MONITOR: "monitor"}.get(action.kind, "start")
        limit = self._timeout(action, what)
        if action.kind == ActionKind.FENCE and self.fencer is not None:
            limit = max(limit, self.fencer.longest(self.peer_name))
        return limit + ACTION_GRACE

    async def execute(self, action: Action) -> bool:
        kind = action.kind
        started = time.monotonic()
        self.acting = action
        self.action_deadline = started + self._bound(action)
        self.history.record("action-start", action=kind.value, group=action.group,
                            resource=action.resource, reason=action.reason)
        try:
            result = await self._execute(action)
        except Exception as e:  # a bug in a driver or here: a failed action, never the daemon's end
            result = Result(False, f"unexpected error: {type(e).__name__}: {e}")
            self.action_raised(action, result)
        finally:
            self.acting = None
            self.action_deadline = None
            self.loop_beat = time.monotonic()
        duration = time.monotonic() - started
        if self.metrics is not None:
            self.metrics.action_done(action, duration)
        self.history.record("action-done", action=kind.value, group=action.group, resource=action.resource,
                            ok=result.ok, message=result.message, duration=round(duration, 4))
        if not result.ok:
            self.alerter.emit("action_failed", "warning",
                              f"{kind.value} {action.resource or action.group} failed: {result.message}",
                              group=action.group, resource=action.resource, task=kind.value, rc=1)
        self.changed()
        return result.ok

    async def _execute(self, action: Action) -> Result:
        kind, group, res = action.kind, action.group, action.resource
        st = self.store
        if kind == ActionKind.ALERT:
            self.alerter.emit(action.event or "planner", action.severity, action.reason, group=group, resource=res)
            if action.key:
                self.alerted.add(action.key)
            return Result(True)
        if kind == ActionKind.FORGET_ALERT:
            self.alerted.discard(action.key)
            return Result(True)
        if kind == ActionKind.FORGET_FORCE:
            st.force_promotion(res, False)
            self.save_state()
            return Result(True)
        if kind == ActionKind.CLAIM:
            self.claims[group] = action.epoch
            st.record_claim(self.local, group, action.epoch)
            self.save_state()
            return Result(True)
        if kind == ActionKind.RELEASE:
            self.claims.pop(group, None)
            st.record_claim(self.local, group, None)
            self.save_state()
            return Result(True)
        if kind == ActionKind.BAN:
            st.ban(group, self.local)
            self.save_state()
            self.alerter.emit("group_banned", "warning", action.reason, group=group)
            return Result(True)
        if kind == ActionKind.BLOCK:
            st.block(group, action.reason)
            self.save_state()
            self.alerter.emit("group_blocked", "critical", action.reason, group=group)
            return Result(True)
        if kind == ActionKind.REBOOT:
            self.alerter.emit("self_fence", "critical", action.reason, group=group)
            await asyncio.sleep(0.5)
            return self_fence()
        if kind == ActionKind.FENCE:
            outcome = await self.fence_peer(action.reason)
            return Result(outcome.ok, outcome.message)
        if kind in (ActionKind.DRBD_DISCONNECT, ActionKind.DRBD_OUTDATE):
            return await self.drbd_fence_step(action)
        if kind == ActionKind.FORGET_MOVE:
            st.forget_move(group)
            self.save_state()
            return Result(True)
        if kind in (ActionKind.DRBD_UP, ActionKind.PROMOTE, ActionKind.DEMOTE):
            drv = self.drbd[res]
            if kind == ActionKind.DRBD_UP:
                result = await drv.up()
                self.drbd_status[res] = await drv.status()
                return result
            if kind == ActionKind.PROMOTE:
                result = await drv.promote(force=action.force)
                role = "Primary"
            else:
                result = await drv.demote()
                role = "Secondary"
            if result.ok:  # DRBD said so; its event stream confirms it right after
                self.drbd_status[res] = replace(self.drbd_status[res], role=role)
            else:
                self.drbd_status[res] = await drv.status()
            return result
        drv = self.drivers[res]
        grp = self.group_of[res]
        if kind == ActionKind.START:
            self.resources[res] = ResourceStatus(ResState.UNKNOWN, "starting", time.monotonic())
            result = await bounded(drv.start(), self._timeout(action, "start"))
            if result.ok:
                self.resources[res] = ResourceStatus(ResState.STARTED, result.message, time.monotonic())
                self.takeover_progress(grp)
            else:
                self.resources[res] = ResourceStatus(ResState.FAILED, result.message, time.monotonic())
                # a failed start is fatal on this node, like Pacemaker's start-failure-is-fatal
                st.record_failure(self.local, grp.name, res, time.time(), at_least=grp.migration_threshold)
                self.save_state()
            return result
        if kind == ActionKind.STOP:
            self.resources[res] = replace(self.resources[res], detail="stopping")
            result = await bounded(drv.stop(), self._timeout(action, "stop"))
            self.resources[res] = ResourceStatus(ResState.STOPPED if result.ok else ResState.STOP_FAILED,
                                                 result.message, time.monotonic())
            return result
        if kind == ActionKind.ANNOUNCE:
            return await bounded(drv.announce(), self._timeout(action, "start"))
        if kind == ActionKind.MONITOR:
            self.resources[res] = await drv.probe()  # a raise here is caught by execute()
            return Result(True)
        return Result(False, f"the engine does not know action {kind.value}")

    def action_raised(self, action: Action, result: Result) -> None:
        """An action ended in an exception: record it in the resource's state as a failure of
        that kind would be, so the policy handles it (a start counts as a failed start)."""
        res = action.resource
        if res not in self.resources:
            return
        if action.kind == ActionKind.START:
            grp = self.group_of[res]
            self.resources[res] = ResourceStatus(ResState.FAILED, result.message, time.monotonic())
            self.store.record_failure(self.local, grp.name, res, time.time(), at_least=grp.migration_threshold)
            self.save_state()
        elif action.kind == ActionKind.STOP:
            self.resources[res] = ResourceStatus(ResState.STOP_FAILED, result.message, time.monotonic())
        elif action.kind == ActionKind.MONITOR:
            self.resources[res] = ResourceStatus(ResState.UNKNOWN, result.message, time.monotonic())

    # ------------------------------------------------------------ failover records

    def primary_here(self, group: str) -> bool:
        g = self.cfg.group(group)
        return g is not None and g.drbd is not None and self.drbd_status.get(g.drbd, DrbdStatus(g.drbd)).role == "Primary"

    def takeover_started(self, action: Action) -> None:
        """This node claims a group: a failover when the peer had it last (the
        alert and the history say so at once), else a first start."""
        self.takeovers[action.group] = time.monotonic()
        if action.group not in self.peer_held:
            return
        self.peer_held.discard(action.group)
        if self.metrics is not None:
            self.metrics.failover_started(action.group)
        self.history.record("observation", group=action.group, state="takeover", reason=action.reason)
        self.alerter.emit("failover_started", "warning", f"{action.group}: taking over on {self.local}: "
                          f"{action.reason}", group=action.group, task="start")

    def takeover_progress(self, group: Group) -> None:
        began = self.takeovers.get(group.name)
        if began is None or any(self.resources[r.name].state != ResState.STARTED for r in group.resources):
            return
        del self.takeovers[group.name]
        if self.metrics is not None:
            self.metrics.failover_finished(group.name, time.monotonic() - began)
        self.alerter.emit("failover_finished", "info", f"{group.name} started on {self.local} "
                          f"{time.monotonic() - began:.2f}s after the takeover began",
                          group=group.name, task="start", rc=0)

    # ------------------------------------------------------------ observations

    def observe(self, name: str, state: ResState, detail: str) -> None:
        old = self.resources.get(name, ResourceStatus())
        if state == ResState.FAILED and old.state == ResState.STARTED:
            grp = self.group_of[name]
            self.store.record_failure(self.local, grp.name, name, time.time())
            self.save_state()
            self.history.record("observation", group=grp.name, resource=name, state="failed", reason=detail)
            self.alerter.emit("resource_failed", "warning", f"{name} failed: {detail}", group=grp.name,
                              resource=name, task="monitor", rc=7)
        if state == old.state and detail == old.detail:
            return
        if old.state == ResState.STOP_FAILED and state != ResState.STOPPED:
            return  # only a successful stop (or cleanup) clears a stop failure
        self.resources[name] = ResourceStatus(state, detail, time.monotonic())
        self.changed()

    async def _watch_loop(self, name: str, drv) -> None:
        while True:
            try:
                async for obs in drv.watch():
                    if self.resources[name].state == ResState.STARTED or obs.state != ResState.FAILED:
                        self.observe(name, obs.state, obs.detail)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a broken watch must not kill the daemon: probes back it up
                self.alerter.emit("watch_error", "warning", f"watch of {name} failed: {e!r}", resource=name)
            await asyncio.sleep(1.0)

    async def _monitor_loop(self, name: str, drv) -> None:
        grp = self.group_of[name]
        res_cfg = grp.resource(name)
        while True:
            await asyncio.sleep(res_cfg.monitor_interval)
            if self.resources[name].state != ResState.STARTED or self.acting is not None:
                continue
            result = await bounded(drv.monitor(), res_cfg.timeouts.monitor)
            if not result.ok and self.resources[name].state == ResState.STARTED and self.acting is None:
                self.observe(name, ResState.FAILED, result.message)

    async def _drbd_loop(self, name: str, drv) -> None:
        while True:
            try:
                async for status in drv.watch():
                    if status != self.drbd_status.get(name):
                        self.note_drbd_connection(name, status)
                        self.drbd_status[name] = status  # the planner alerts a split brain
                        self.changed()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.alerter.emit("watch_error", "warning", f"DRBD watch of {name} failed: {e!r}", resource=name)
            await asyncio.sleep(1.0)

    async def _link_loop(self, name: str, drv) -> None:
        """A VIP's interface without carrier: this node cannot serve now.  Published, not counted
        as a failure; the planner moves the group or waits for the link (issue 16)."""
        while True:
            try:
                why = await drv.link_trouble()
            except asyncio.CancelledError:
                raise
            except Exception:  # netlink hiccup: keep what we knew, ask again
                why = self.link_down.get(name)
            if why != self.link_down.get(name):
                if why:
                    self.link_down[name] = why
                    self.alerter.emit("link_down", "warning", f"{name}: {why}; {self.local} cannot serve it now",
                                      resource=name)
                else:
                    self.link_down.pop(name, None)
                    self.alerter.emit("link_up", "info", f"{name}: its link is up again", resource=name)
                self.changed()
            await asyncio.sleep(LINK_POLL)

    async def _guard_loop(self) -> None:
        last = None
        async for reachable in self.guard.run():
            if reachable != last:
                self.alerter.emit("tiebreaker", "info" if reachable else "warning",
                                  f"tie-breaker {'reachable' if reachable else 'unreachable'} from {self.local}")
                last = reachable
                self.changed()

    async def _membership_loop(self) -> None:
        q = self.heartbeat.events
        while True:
            ev = await q.get()
            name = type(ev).__name__
            if name == "PeerAlive":
                self.peer_ever_seen = True
                self.peer_back(ev.incarnation)
                self.alerter.emit("peer_back" if not ev.restarted else "peer_restarted", "info",
                                  f"peer {self.peer_name} is alive" + (" (restarted)" if ev.restarted else ""),
                                  node=self.peer_name)
                self.history.record("observation", state="peer_alive", reason=f"peer {self.peer_name} alive")
            elif name == "PeerDead":
                self.alerter.emit("peer_lost", "critical",
                                  f"peer {self.peer_name} silent on every ring for "
                                  f"{self.cfg.heartbeat.deadtime:g}s", node=self.peer_name)
                self.history.record("observation", state="peer_dead", reason=f"peer {self.peer_name} lost")
                self.peer_lost()
            elif name == "RingDown":
                self.alerter.emit("ring_degraded", "warning",
                                  f"heartbeat ring {ev.ring} is silent; redundancy degraded", node=self.peer_name)
            elif name == "RingError":
                if self.ring_errors.get(ev.ring) != ev.message:
                    self.ring_errors[ev.ring] = ev.message
                    self.alerter.emit("ring_error", "warning",
                                      f"heartbeat ring {ev.ring} cannot be used (retrying): {ev.message}")
            elif name == "RingUp":
                self.ring_errors.pop(ev.ring, None)
                self.alerter.emit("ring_healthy", "info", f"heartbeat ring {ev.ring} is healthy again")
            elif name == "ConfigMismatch":
                self.alerter.emit("config_mismatch", "warning",
                                  f"the peer's configuration differs (digest {ev.peer_digest} vs "
                                  f"{ev.local_digest}): fix it before trusting a failover")
            elif name == "ClockSkew":
                self.alerter.emit("clock_skew", "critical" if ev.dropped else "warning",
                                  f"{self.peer_name}'s clock is {ev.offset:+.1f}s from ours (tolerated "
                                  f"±{ev.tolerated:g}s): " + ("its heartbeats are refused; fix NTP" if ev.dropped
                                                              else "fix NTP before its heartbeats are refused"),
                                  node=self.peer_name)
            elif name == "PeerPayload":
                self.peer_ever_seen = True
                self.take_peer_payload(ev.payload)
            self.wake.set()

    # ------------------------------------------------------------ fencing (issue 17)

    def peer_lost(self) -> None:
        """A new loss of the peer: fresh fence facts, the random delay of this loss drawn, the devices
        asked at once whether the peer is powered off (then it is fenced already), and a wake-up when
        this node's fence delay runs out."""
        self.fence_gen += 1
        self.fencing = FenceState.NONE
        delay = random.uniform(0.0, self.fence_policy.random_delay) if self.fence_policy.random_delay else 0.0
        self.fence_facts = replace(self.fence_policy, random_delay=round(delay, 3))
        if self.fencer is None:
            return
        loop = asyncio.get_running_loop()
        for wait in (delay, delay + self.fence_policy.owner_head_start):
            loop.call_later(wait + 0.01, self.wake.set)
        self.tasks = [t for t in self.tasks if not t.done()]
        self.tasks.append(asyncio.create_task(self._ask_peer_power(self.fence_gen), name="fence-power"))

    def peer_back(self, incarnation: str) -> None:
        """The peer is heard again: whatever was known about fencing it belonged to its loss."""
        if self.fencing == FenceState.SUCCEEDED and incarnation == self.fenced_incarnation:
            self.alerter.emit("fence_lied", "critical",
                              f"{self.peer_name} was reported fenced (off) but is heard again without having "
                              "restarted: its fence device does not power it off; check the device and its plug",
                              node=self.peer_name)
        self.fence_gen += 1
        self.fencing = FenceState.NONE
        self.fence_facts = replace(self.fence_policy, random_delay=0.0)

    async def _ask_peer_power(self, gen: int) -> None:
        try:
            power = await self.fencer.power_status(self.peer_name)
        except Exception as e:  # the fencer reports its own failures; this one must not end the daemon
            power = "unknown"
            self.alerter.emit("fence_status_error", "warning",  # its text may hold what a device said: not copied
                              f"power status of {self.peer_name}: the fencer raised {type(e).__name__}")
        if gen != self.fence_gen:
            return
        self.fence_facts = replace(self.fence_facts, peer_power=power)
        self.history.record("observation", state="peer_power", target=self.peer_name,
                            reason=f"the fence devices report {self.peer_name} powered {power}")
        self.changed()

    def note_drbd_connection(self, res: str, status: DrbdStatus) -> None:
        if status.connected:
            self.drbd_lost.pop(res, None)
        elif res not in self.drbd_lost:
            self.drbd_lost[res] = time.monotonic()
            if self.fencer is not None:  # the fence race's delays may count from now: look again then
                wait = self.fence_facts.random_delay + self.fence_policy.owner_head_start
                asyncio.get_running_loop().call_later(wait + 0.01, self.wake.set)

    async def fence_peer(self, reason: str):
        """Fence the peer once (a fence already running is joined, not doubled): the planner's FENCE
        and DRBD's fence-peer handler both come here.  Returns the fencer's FenceOutcome."""
        if self.fence_task is None or self.fence_task.done():
            self.fence_task = asyncio.create_task(self._fence(reason), name="fence")
        return await asyncio.shield(self.fence_task)

    async def _fence(self, reason: str):
        gen, peer = self.fence_gen, self.peer_name
        self.fencing = FenceState.PENDING
        self.fenced_incarnation = self.heartbeat.peer().incarnation
        self.history.record("fence-start", target=peer, reason=reason)
        try:
            if self.fencer is None:
                outcome = FenceOutcome(False, False, None, None, f"no fence device can fence {peer}", 0.0)
            else:
                outcome = await self.fencer.fence(peer)
        except Exception as e:  # a broken fencer is a failed fence, never a dead daemon
            outcome = FenceOutcome(False, False, None, None, f"the fencer raised {type(e).__name__}", 0.0)
        # only the outcome's own fields are recorded: the fencer redacts its message, and options
        # and secrets never leave it
        self.history.record("fence", target=peer, ok=outcome.ok, already_off=outcome.already_off,
                            device=outcome.device, level=outcome.level, message=outcome.message,
                            duration=round(outcome.duration, 3))
        if self.metrics is not None:
            self.metrics.fence_done(outcome.ok)
        self.alerter.emit("fence_result", "warning" if outcome.ok else "critical",
                          f"fencing {peer}: " + ("it was off already" if outcome.already_off else
                                                 "succeeded" if outcome.ok else "failed")
                          + f" ({outcome.message})", node=peer)
        if gen == self.fence_gen:  # still the same loss of the peer
            if outcome.ok:
                self.fencing = FenceState.SUCCEEDED
            else:
                self.fencing = FenceState.FAILED
                self.fence_facts = replace(self.fence_facts, attempts=self.fence_facts.attempts + 1,
                                           last_attempt_at=time.monotonic(), last_message=outcome.message)
        self.changed()
        return outcome

    async def drbd_fence_step(self, action: Action) -> Result:
        """DRBD_DISCONNECT: the peer is fenced, DRBD has not noticed yet: drop the connection now and
        listen for the peer again (it is off: this is the state DRBD reaches itself after its ping
        timeout).  DRBD_OUTDATE: the live peer asked for it (its fence-peer handler)."""
        drv = self.drbd[action.resource]
        if action.kind == ActionKind.DRBD_DISCONNECT:
            result = await drv.disconnect(force=True)  # the peer is off: no handshake to wait for
            if result.ok:
                result = await drv.connect()
        else:
            result = await drv.outdate()
        status = await drv.status()
        self.note_drbd_connection(action.resource, status)
        self.drbd_status[action.resource] = status
        return result

    def peer_outdate_requests(self) -> list[str]:
        """The DRBD resources the live peer asks this node to outdate (its heartbeat payload)."""
        peer = self.heartbeat.peer()
        asked = (peer.payload or {}).get("outdate") if peer.alive else None
        if not isinstance(asked, list):
            return []
        return [r for r in asked if isinstance(r, str) and r in self.drbd]

    def take_peer_payload(self, payload) -> None:
        """The peer's report and operator state.  Anything malformed (``drbd: []``, ``1e999``)
        is a dropped, counted packet: the last good report stays."""
        try:
            if not isinstance(payload, dict):
                raise TypeError("the payload is not a mapping")
            ns = self.peer_reported
            if "node" in payload:
                ns = node_state_from_dict(payload["node"])
                for d in ns.drbd.values():
                    _check_types(d)
            state = payload.get("state")
            merged = merge_state(self.store.state, state) if state is not None else None
        except Exception as e:  # hostile or broken input from the peer: drop and count it
            self.heartbeat.counters["bad_payload"] += 1
            if "bad_payload" not in self.reported:
                self.reported.add("bad_payload")
                self.alerter.emit("bad_payload", "warning", f"dropped a malformed report of {self.peer_name}: "
                                  f"{type(e).__name__}: {str(e)[:200]}", node=self.peer_name)
            return
        self.peer_reported = ns
        if merged is not None and merged != self.store.state:
            self.store.state = merged
            self.save_state()

    def save_state(self) -> None:
        """Write the state file.  A full or failing disk does not stop the daemon: it goes on
        from memory, alerts once, and every round retries the write until it works."""
        try:
            self.store.save()
        except OSError as e:
            why = f"cannot write the state file {self.store.path}: {e.strerror or e}"
            if why != self.state_unsaved:
                self.alerter.emit("state_write_failed", "critical", f"{why}; hasupd goes on from memory and "
                                  "retries (fail counts, bans and claims are lost if it restarts before)")
            self.state_unsaved = why
            return
        if self.state_unsaved:
            self.state_unsaved = ""
            self.alerter.emit("state_write_ok", "info", f"the state file {self.store.path} is written again")

    def runtime_warnings(self) -> list[str]:
        """Conditions of the daemon itself, for the status."""
        return [self.state_unsaved] if self.state_unsaved else []

    # ------------------------------------------------------------ shutdown

    async def shutdown(self) -> None:
        if self.stop_resources_on_exit:
            for group in self.cfg.groups:
                await self.stop_group_here(group, "hasupd is stopping with --stop-resources-on-exit")
            self.publish()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.history.record("stop", reason=f"hasupd stopped on {self.local}")
        await self.heartbeat.close()
        await self.alerter.close()

    async def stop_group_here(self, group: Group, reason: str) -> None:
        for r in reversed(group.resources):
            if self.resources[r.name].state in (ResState.STARTED, ResState.FAILED, ResState.UNKNOWN):
                await self.execute(Action(ActionKind.STOP, group.name, r.name, reason))
        if group.drbd and self.drbd_status[group.drbd].role == "Primary":
            await self.execute(Action(ActionKind.DEMOTE, group.name, group.drbd, reason))
        self.claims.pop(group.name, None)

    def request_stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    # ------------------------------------------------------------ control socket

    async def handle(self, cmd: str, args: dict, peer=None) -> dict:
        """One hasupctl request (permissions are checked by the server)."""
        commands = {
            "status": self.cmd_status,
            "explain": lambda a: {"explain": planner.explain(self.cfg, self.view())},
            "history": self.cmd_history,
            "move": self.cmd_move,
            "clear": lambda a: self.intent(self.store.clear(self.group_arg(a)), "clear", a),
            "cleanup": self.cmd_cleanup,
            "standby": lambda a: self.intent(self.store.standby(self.node_arg(a), True), "standby", a),
            "unstandby": lambda a: self.intent(self.store.standby(self.node_arg(a), False), "unstandby", a),
            "maintenance": lambda a: self.intent(self.store.maintenance(bool(a.get("on"))), "maintenance", a),
            "start": lambda a: self.intent(self.store.start_group(self.group_arg(a)), "start", a),
            "stop": lambda a: self.intent(self.store.stop_group(self.group_arg(a)), "stop", a),
            "drbd-status": lambda a: {"drbd": {n: to_dict(s) for n, s in self.drbd_status.items()}},
            "drbd-fence-peer": self.cmd_fence_peer,
            "drbd-unfence-peer": lambda a: {},
            "alert": self.cmd_alert,
            "drbd-init": self.cmd_drbd_init,
            "fence-test": self.cmd_fence_test,
            "fence": self.cmd_fence,
            "promote-force": self.cmd_promote_force,
        }
        fn = commands.get(cmd)
        if self.metrics is not None:
            self.metrics.control_request(cmd if fn is not None else "unknown")
        if fn is None:
            return {"ok": False, "error": f"unknown command {cmd!r}"}
        try:
            out = fn(args)
            if asyncio.iscoroutine(out):
                out = await out
        except ControlError as e:
            return {"ok": False, "error": str(e)}
        return {"ok": True, **(out or {})}

    def group_arg(self, args: dict) -> str:
        name = args.get("group")
        if not name and len(self.cfg.groups) == 1:
            return self.cfg.groups[0].name
        if self.cfg.group(name or "") is None:
            raise ControlError(f"no group {name!r} (groups: {', '.join(g.name for g in self.cfg.groups)})")
        return name

    def cmd_promote_force(self, args: dict) -> dict:
        """An operator forces (or, with on false, withdraws) the promotion of a DRBD resource whose
        data the planner refuses (not UpToDate, or a stale copy): used up once it is Primary."""
        res = args.get("resource")
        if res not in self.drbd:
            raise ControlError(f"no DRBD resource {res!r} (resources: {', '.join(sorted(self.drbd))})")
        on = args.get("on", True) is not False
        return self.intent(self.store.force_promotion(res, on), "promote-force", args)

    def node_arg(self, args: dict) -> str:
        node = args.get("node") or self.local
        if node not in self.cfg.node_names():
            raise ControlError(f"no node {node!r} (nodes: {', '.join(self.cfg.node_names())})")
        return node

    def intent(self, changed: bool, what: str, args: dict) -> dict:
        if changed:
            self.save_state()
            self.history.record("intent", action=what, reason=f"operator: {what} "
                                + " ".join(f"{k}={v}" for k, v in sorted(args.items()) if k != "cmd"))
            self.changed()
        return {"changed": changed}

    def owner_of(self, group: str) -> str | None:
        """Where the group runs now, by the claims both nodes publish."""
        view = self.view()
        best = None
        for name, node in view.nodes.items():
            epoch = node.claims.get(group)
            if epoch is not None and (name == self.local or node.alive):
                if best is None or epoch > best[0]:
                    best = (epoch, name)
        return best[1] if best else None

    def cmd_move(self, args: dict) -> dict:
        group = self.group_arg(args)
        node = args.get("node")
        if not node:
            owner = self.owner_of(group)
            if owner is None:
                raise ControlError(f"{group} runs nowhere: say where to move it (hasupctl move {group} NODE)")
            node = self.cfg.peer_of(owner)
        node = self.node_arg({"node": node})
        if args.get("dry_run"):
            st = self.store.state.move(group, node, bool(args.get("pin")))
            view = replace(self.view(), moves=st.moves_view())
            steps = [{"action": a.kind.value, "resource": a.resource, "reason": a.reason}
                     for a in planner.decide(self.cfg, view)]
            return {"dry_run": True, "node": node, "steps_here": steps}
        out = self.intent(self.store.move(group, node, bool(args.get("pin"))), "move", {**args, "node": node})
        return {**out, "node": node}

    def cmd_cleanup(self, args: dict) -> dict:
        group = self.group_arg(args) if args.get("group") else None
        node = self.node_arg(args) if args.get("node") else None
        out = self.intent(self.store.cleanup(group, node), "cleanup", args)
        for g in self.cfg.groups:
            if group in (None, g.name):
                for r in g.resources:
                    if self.resources[r.name].state in (ResState.FAILED, ResState.STOP_FAILED):
                        self.resources[r.name] = ResourceStatus(ResState.UNKNOWN, "cleaned up: probing")
                        asyncio.get_running_loop().create_task(self._reprobe(r.name))
        return out

    async def _reprobe(self, name: str) -> None:
        self.resources[name] = await self.probe(name)
        self.changed()

    async def probe(self, name: str) -> ResourceStatus:
        """A driver's probe; one that raises (a bug, input it cannot run) leaves the resource unknown."""
        try:
            return await self.drivers[name].probe()
        except Exception as e:
            self.internal_error(f"the probe of {name}", e)
            return ResourceStatus(ResState.UNKNOWN, f"probe failed: {type(e).__name__}: {e}", time.monotonic())

    async def cmd_history(self, args: dict) -> dict:
        return await self.history.report(args.get("since"), int(args.get("limit", 2000)))

    async def cmd_fence_peer(self, args: dict) -> dict:
        """DRBD's fence-peer handler (guard drbd): decided by fence_peer_verdict, step by step: ask
        the live peer to outdate itself and wait for its heartbeat to show it, or fence the silent
        peer with the devices; every doubt answers "unknown" (exit 1: no promotion, I/O frozen)."""
        from hasupd.resources.drbd_handler import FenceVerdict, fence_peer_verdict
        res = args.get("resource") or ""
        if res not in self.drbd:
            raise ControlError(f"no DRBD resource {res!r} in the configuration")
        deadline = time.monotonic() + OUTDATE_WAIT
        fenced_once = False
        try:
            while True:
                peer = self.peer_state()
                view = self.view()
                v = fence_peer_verdict(peer.alive, peer.drbd.get(res), self.cfg.split_brain_guard.mode,
                                       view.fencing, tiebreaker=view.tiebreaker, resource=res,
                                       devices=view.fence.devices, peer_power=view.fence.peer_power)
                if v.fence_peer and not fenced_once:
                    fenced_once = True
                    await self.fence_peer(f"DRBD's fence-peer handler for {res}: {v.detail}")
                    continue
                if v.fence_peer:
                    v = FenceVerdict("unknown", f"{v.detail}, but fencing it failed")
                elif v.ask_peer_to_outdate and time.monotonic() < deadline:
                    if res not in self.outdate_requests:
                        self.outdate_requests.add(res)
                        self.publish()
                    await asyncio.sleep(0.1)  # its answer is its next heartbeat (its disk Outdated)
                    continue
                elif v.ask_peer_to_outdate:
                    v = FenceVerdict("unknown", f"{v.detail}, and it did not within {OUTDATE_WAIT:g}s")
                break
        finally:
            if res in self.outdate_requests:
                self.outdate_requests.discard(res)
                self.publish()
        self.history.record("observation", state="fence_peer", resource=res, reason=f"{v.verdict}: {v.detail}")
        return {"verdict": v.verdict, "detail": v.detail}

    def cmd_alert(self, args: dict) -> dict:
        self.alerter.emit(args.get("event") or "external", args.get("severity") or "warning",
                          args.get("reason") or args.get("message") or "", resource=args.get("resource"))
        return {}

    async def cmd_fence_test(self, args: dict) -> dict:
        if self.fencer is None:
            raise ControlError("no fencing configured (a 'fencing:' section with devices)")
        node = self.node_arg(args) if args.get("node") else None
        return {"tests": await self.fencer.test(node)}

    async def cmd_fence(self, args: dict) -> dict:
        """Fence a node by hand (hasupctl fence NODE --yes-really)."""
        if self.fencer is None:
            raise ControlError("no fencing configured (a 'fencing:' section with devices)")
        node = self.node_arg(args)
        if node == self.local:
            raise ControlError(f"{node} is this node: fence it from {self.peer_name}")
        self.history.record("intent", action="fence", reason=f"operator: fence {node}")
        outcome = await self.fencer.fence(node)
        self.alerter.emit("fence_result", "warning" if outcome.ok else "critical",
                          f"operator fence: {outcome.message}")
        return {"fence": {"ok": outcome.ok, "already_off": outcome.already_off, "device": outcome.device,
                          "level": outcome.level, "message": outcome.message,
                          "duration": round(outcome.duration, 3)}}

    async def cmd_drbd_init(self, args: dict) -> dict:
        raise ControlError("drbd init is not wired yet")

    async def cmd_status(self, args: dict) -> dict:
        from hasupd.status import build_status
        last_failovers = await self.history.last_failovers([g.name for g in self.cfg.groups])
        view = self.view()
        peer = self.heartbeat.peer()
        rings = [{"peer_heard": up, "rtt_ms": round(rtt * 1000, 2) if rtt is not None else None,
                  "loss_pct": round(loss * 100, 1)}
                 for up, rtt, loss in zip(peer.rings, peer.rtt, peer.loss)]
        acting = self.acting
        return redact.value({"status": build_status(
            self.cfg, view, explains=planner.explain(self.cfg, view), rings=rings,
            last_failovers=last_failovers,
            acting=acting, alerter=self.alerter, warnings=list(self.cfg.warnings) + self.runtime_warnings(), fencer=self.fencer,
            daemon={"pid": os.getpid(), "started_wall": time.time() - (time.monotonic() - self.started_at),
                    "incarnation": self.heartbeat.incarnation})})

    # ------------------------------------------------------------ status

    def status_line(self) -> str:
        parts = []
        for g in self.cfg.groups:
            running = all(self.resources[r.name].state == ResState.STARTED for r in g.resources)
            parts.append(f"{g.name} {'started here' if running else 'not here'}")
        peer = self.heartbeat.peer()
        parts.append(f"peer {self.peer_name} {'alive' if peer.alive else 'not seen'}")
        return "; ".join(parts)


def _check_types(obj) -> None:
    """TypeError unless every field of a model dataclass has the type of its default (or None)."""
    for f in dataclasses.fields(obj):
        value, default = getattr(obj, f.name), f.default
        if value is None or default is None or default is dataclasses.MISSING:
            continue
        if type(value) is not type(default) and not (type(default) is float and type(value) is int):
            raise TypeError(f"{type(obj).__name__}.{f.name} is {type(value).__name__}, not {type(default).__name__}")


async def bounded(coro, timeout: float) -> Result:
    """A driver call with the engine's own safety bound on top of the driver's."""
    try:
        return await asyncio.wait_for(coro, timeout + 5.0)
    except asyncio.TimeoutError:
        return Result(False, f"no answer within {timeout:g}s", timed_out=True)


def self_fence() -> Result:
    """on_stop_failure: reboot — the node removes itself (sysrq b)."""
    try:
        with open("/proc/sysrq-trigger", "w") as f:
            f.write("b")
    except OSError as e:
        return Result(False, f"self-fence failed: {e.strerror}")
    return Result(True)


def local_node_name(cfg: Config, explicit: str | None) -> str:
    """--node, else $HASUPD_NODE, else the host name (short or full)."""
    names = cfg.node_names()
    for cand in (explicit, os.environ.get("HASUPD_NODE"), socket.gethostname(),
                 socket.gethostname().split(".")[0]):
        if cand and cand in names:
            return cand
    raise LookupError(f"this host ({socket.gethostname()}) is neither {names[0]} nor {names[1]} "
                      "in the configuration; use --node NAME")

