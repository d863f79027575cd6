"""The executor: runs the planner's actions of one round, in order, each bounded by its timeout,
each recorded in the history (action-start, action-done) and alerted when it fails.

One handler per action kind (``Executor.handlers``); a round stops at the first failed action.
The handlers change the engine's observed state (resources, DRBD roles, claims) and the state
store; what a failure means is the planner's (see its "Rules the engine used to apply" section).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from hasupd import planner
from hasupd.config import ACTION_TIMEOUT, Group
from hasupd.model import Action, ActionKind, DrbdStatus, ResourceStatus, ResState
from hasupd.resources import vip
from hasupd.resources.base import Result
from hasupd.timeouts import Timeout, within

K = ActionKind
ACTION_GRACE = 30.0  # beyond an action's own timeout before the loop counts as stuck (the watchdog)
DEFAULT_TIMEOUT = ACTION_TIMEOUT  # an action without a resource of its own (fence, DRBD steps)
ENGINE_MARGIN = 5.0  # the engine's own bound on a driver call, on top of the driver's


async def bounded(coro, timeout: float) -> Result:
    """A driver call with the engine's own safety bound on top of the driver's."""
    try:
        return await within(coro, timeout + ENGINE_MARGIN)
    except Timeout:
        return Result(False, f"no answer within {timeout:g}s", timed_out=True)


def self_fence() -> Result:
    """on_stop_failure: reboot — the node removes itself (sysrq b)."""
    try:
        with open("/proc/sysrq-trigger", "w") as f:
            f.write("b")
    except OSError as e:
        return Result(False, f"self-fence failed: {e.strerror}")
    return Result(True)


class Executor:
    def __init__(self, engine):
        self.eng = engine
        self.takeovers: dict[str, float] = {}  # group -> when this node began taking it over
        self.peer_held: set[str] = set()  # groups the peer claimed last (a claim here is then a failover)
        self.reboot = self_fence  # on_stop_failure reboot; tests hand in their own
        # the VIPs the peer just let go of (intake observes its reports): their start needs no
        # duplicate-address probe (issue 22)
        self.peer_releases = vip.PeerReleases(r.name for g in engine.cfg.groups for r in g.resources if r.type == "vip")
        self.handlers = {
            K.ALERT: self._alert, K.FORGET_ALERT: self._forget_alert, K.FORGET_FORCE: self._forget_force,
            K.CLAIM: self._claim, K.RELEASE: self._release, K.BAN: self._ban, K.BLOCK: self._block,
            K.REBOOT: self._reboot, K.FENCE: self._fence, K.DRBD_DISCONNECT: self._drbd_fence_step,
            K.DRBD_OUTDATE: self._drbd_fence_step, K.FORGET_MOVE: self._forget_move, K.DRBD_UP: self._drbd_up,
            K.PROMOTE: self._promote, K.DEMOTE: self._demote, K.START: self._start, K.STOP: self._stop,
            K.ANNOUNCE: self._announce, K.MONITOR: self._monitor,
        }

    async def run_round(self, actions: list[Action]) -> bool:
        """The actions in order; False at the first that fails (the rest wait for the next round)."""
        self.eng.history.record("decision", actions=[f"{a.kind.value} {a.resource or a.group or ''}".strip()
                                                     for a in actions],
                                reason="; ".join(dict.fromkeys(a.reason for a in actions if a.reason)))
        for action in actions:
            if self.eng.stopping.is_set():
                return True
            if action.kind == K.CLAIM and action.group not in self.takeovers \
                    and not self.primary_here(action.group):  # a Primary's new epoch (rule 13) is no takeover
                self.takeover_started(action)
            if not await self.execute(action):
                return False
        return True

    def timeout(self, action: Action, what: str) -> float:
        group = self.eng.cfg.group(action.group) if action.group else None
        if group and action.resource and group.resource(action.resource):
            t = group.resource(action.resource).timeouts
            return {"start": t.start, "stop": t.stop, "monitor": t.monitor}[what]
        return DEFAULT_TIMEOUT

    def bound(self, action: Action) -> float:
        """How long the action may take before the loop counts as stuck (the watchdog)."""
        limit = self.timeout(action, {K.STOP: "stop", K.MONITOR: "monitor"}.get(action.kind, "start"))
        if action.kind == K.FENCE and self.eng.fencer is not None:
            limit = max(limit, self.eng.fencer.longest(self.eng.peer_name))
        return limit + ACTION_GRACE

    async def execute(self, action: Action) -> bool:
        eng, kind = self.eng, action.kind
        started = eng.clock.monotonic()
        eng.acting = action
        eng.action_deadline = started + self.bound(action)
        eng.history.record("action-start", action=kind.value, group=action.group,
                           resource=action.resource, reason=action.reason)
        try:
            handler = self.handlers.get(kind)
            result = await handler(action) if handler else Result(False, f"the engine does not know action {kind.value}")
        except Exception as e:  # a bug in a driver or here: a failed action, never the daemon's end
            result = Result(False, f"unexpected error: {type(e).__name__}: {e}")
            self.action_raised(action, result)
        finally:
            eng.acting = None
            eng.action_deadline = None
            eng.loop_beat = eng.clock.monotonic()
        duration = eng.clock.monotonic() - started
        if eng.metrics is not None:
            eng.metrics.action_done(action, duration)
        eng.history.record("action-done", action=kind.value, group=action.group, resource=action.resource,
                           ok=result.ok, message=result.message, duration=round(duration, 4))
        if not result.ok:
            eng.alerter.emit("action_failed", "warning",
                             f"{kind.value} {action.resource or action.group} failed: {result.message}",
                             group=action.group, resource=action.resource, task=kind.value, rc=1)
        eng.changed()
        return result.ok

    def action_raised(self, action: Action, result: Result) -> None:
        """An action ended in an exception: record it in the resource's state as a failure of
        that kind would be, so the policy handles it (a start counts as a failed start)."""
        res = action.resource
        if res not in self.eng.resources:
            return
        if action.kind == K.START:
            self.start_failed(res, result)
        elif action.kind == K.STOP:
            self.eng.resources[res] = ResourceStatus(ResState.STOP_FAILED, result.message, self.eng.clock.monotonic())
        elif action.kind == K.MONITOR:
            self.eng.resources[res] = ResourceStatus(ResState.UNKNOWN, result.message, self.eng.clock.monotonic())

    def start_failed(self, res: str, result: Result) -> None:
        """A failed start: the resource failed here, its fail count as the planner's rule says."""
        eng, grp = self.eng, self.eng.group_of[res]
        eng.resources[res] = ResourceStatus(ResState.FAILED, result.message, eng.clock.monotonic())
        eng.store.record_failure(eng.local, grp.name, res, eng.clock.wall(),
                                 at_least=planner.fail_count_after_failed_start(grp))
        eng.save_state()

    # ------------------------------------------------------------ state and alert actions

    async def _alert(self, a: Action) -> Result:
        self.eng.alerter.emit(a.event or "planner", a.severity, a.reason, group=a.group, resource=a.resource)
        if a.key:
            self.eng.alerted.add(a.key)
        return Result(True)

    async def _forget_alert(self, a: Action) -> Result:
        self.eng.alerted.discard(a.key)
        return Result(True)

    async def _stored(self, change) -> Result:
        change(self.eng.store)
        self.eng.save_state()
        return Result(True)

    async def _forget_force(self, a: Action) -> Result:
        return await self._stored(lambda st: st.force_promotion(a.resource, False))

    async def _forget_move(self, a: Action) -> Result:
        return await self._stored(lambda st: st.forget_move(a.group))

    async def _claim(self, a: Action) -> Result:
        self.eng.claims[a.group] = a.epoch
        return await self._stored(lambda st: st.record_claim(self.eng.local, a.group, a.epoch))

    async def _release(self, a: Action) -> Result:
        self.eng.claims.pop(a.group, None)
        return await self._stored(lambda st: st.record_claim(self.eng.local, a.group, None))

    async def _ban(self, a: Action) -> Result:
        result = await self._stored(lambda st: st.ban(a.group, self.eng.local))
        self.eng.alerter.emit("group_banned", "warning", a.reason, group=a.group)
        return result

    async def _block(self, a: Action) -> Result:
        result = await self._stored(lambda st: st.block(a.group, a.reason))
        self.eng.alerter.emit("group_blocked", "critical", a.reason, group=a.group)
        return result

    async def _reboot(self, a: Action) -> Result:
        self.eng.alerter.emit("self_fence", "critical", a.reason, group=a.group)
        await asyncio.sleep(0.5)
        return self.reboot()

    async def _fence(self, a: Action) -> Result:
        outcome = await self.eng.peer_fencing.fence_peer(a.reason)
        return Result(outcome.ok, outcome.message)

    async def _drbd_fence_step(self, a: Action) -> Result:
        return await self.eng.peer_fencing.drbd_fence_step(a)

    # ------------------------------------------------------------ DRBD

    async def _drbd_up(self, a: Action) -> Result:
        drv = self.eng.drbd[a.resource]
        result = await drv.up()
        self.eng.drbd_status[a.resource] = await drv.status()
        return result

    async def _promote(self, a: Action) -> Result:
        if not self.eng.heartbeat.peer().alive:
            # a takeover from a peer that is gone: the VIPs' duplicate-address probe runs while DRBD
            # promotes (issue 22).  Not with a live peer: its own probe for the address (a restarted
            # owner taking its group back) would meet ours and it would refuse its VIP; and a live
            # peer's release skips the probe anyway (PeerReleases)
            await self.prepare_vips(a.group)
        return await self._role(a, self.eng.drbd[a.resource].promote(force=a.force), "Primary")

    async def _demote(self, a: Action) -> Result:
        return await self._role(a, self.eng.drbd[a.resource].demote(), "Secondary")

    async def _role(self, a: Action, call, role: str) -> Result:
        result = await call
        if result.ok:  # DRBD said so; its event stream confirms it right after
            self.eng.drbd_status[a.resource] = replace(self.eng.drbd_status[a.resource], role=role)
        else:
            self.eng.drbd_status[a.resource] = await self.eng.drbd[a.resource].status()
        return result

    # ------------------------------------------------------------ resources

    async def _start(self, a: Action) -> Result:
        eng, res = self.eng, a.resource
        eng.resources[res] = ResourceStatus(ResState.UNKNOWN, "starting", eng.clock.monotonic())
        peer, now = eng.heartbeat.peer(), eng.clock.monotonic()
        release = self.peer_releases.recent(res, peer.alive, peer.incarnation, now)
        start = eng.drivers[res].start(release.why(now)) if release is not None else eng.drivers[res].start()
        result = await bounded(start, self.timeout(a, "start"))
        if result.ok:
            eng.resources[res] = ResourceStatus(ResState.STARTED, result.message, eng.clock.monotonic())
            self.takeover_progress(eng.group_of[res])
        else:
            self.start_failed(res, result)
        return result

    async def prepare_vips(self, group: str | None) -> None:
        """Let the group's stopped VIPs probe for their address now (VipDriver.prepare)."""
        eng = self.eng
        for name, drv in eng.drivers.items():
            if isinstance(drv, vip.VipDriver) and eng.group_of[name].name == group \
                    and eng.resources[name].state is not ResState.STARTED:
                await drv.prepare()  # returns at once: the probe runs on

    async def _stop(self, a: Action) -> Result:
        eng, res = self.eng, a.resource
        eng.resources[res] = replace(eng.resources[res], detail="stopping")
        result = await bounded(eng.drivers[res].stop(), self.timeout(a, "stop"))
        eng.resources[res] = ResourceStatus(ResState.STOPPED if result.ok else ResState.STOP_FAILED,
                                            result.message, eng.clock.monotonic())
        return result

    async def _announce(self, a: Action) -> Result:
        return await bounded(self.eng.drivers[a.resource].announce(), self.timeout(a, "start"))

    async def _monitor(self, a: Action) -> Result:
        self.eng.resources[a.resource] = await self.eng.drivers[a.resource].probe()  # a raise: action_raised
        return Result(True)

    # ------------------------------------------------------------ failover records

    def primary_here(self, group: str) -> bool:
        g = self.eng.cfg.group(group)
        return g is not None and g.drbd is not None and self.eng.drbd_status.get(
            g.drbd, DrbdStatus(g.drbd)).role == "Primary"

    def takeover_started(self, action: Action) -> None:
        """This node claims a group: a failover when the peer had it last (the
        alert and the history say so at once), else a first start."""
        eng = self.eng
        self.takeovers[action.group] = eng.clock.monotonic()
        if action.group not in self.peer_held:
            return
        self.peer_held.discard(action.group)
        if eng.metrics is not None:
            eng.metrics.failover_started(action.group)
        eng.history.record("observation", group=action.group, state="takeover", reason=action.reason)
        eng.alerter.emit("failover_started", "warning", f"{action.group}: taking over on {eng.local}: "
                         f"{action.reason}", group=action.group, task="start")

    def takeover_progress(self, group: Group) -> None:
        eng = self.eng
        began = self.takeovers.get(group.name)
        if began is None or any(eng.resources[r.name].state != ResState.STARTED for r in group.resources):
            return
        del self.takeovers[group.name]
        took = eng.clock.monotonic() - began
        if eng.metrics is not None:
            eng.metrics.failover_finished(group.name, took)
        eng.alerter.emit("failover_finished", "info", f"{group.name} started on {eng.local} "
                         f"{took:.2f}s after the takeover began", group=group.name, task="start", rc=0)
