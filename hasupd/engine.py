"""The engine: the observed state of this node and the reconcile loop.

observations (hasupd/intake.py: heartbeat, watches, probes, timers; the control socket)
    -> ClusterView -> planner.decide() -> actions, one at a time, in order (hasupd/executor.py)
    -> observations again.

Nothing here decides policy: every "what next" is the planner's.  The
collaborators (drivers, heartbeat, fencer, history, alerter, state store,
clock) are built by ``hasupd.daemon.build_engine`` and handed in, so tests
hand in fakes (tests/engine/).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from hasupd import planner
from hasupd.config import Config, Group
from hasupd.executor import Executor
from hasupd.intake import Intake
from hasupd.membership import report, wire
from hasupd.model import ClusterView, DrbdStatus, NodeState, ResourceStatus, ResState
from hasupd.peerfence import PeerFencing
from hasupd.state import State
from hasupd.timeouts import Timeout, within

TICK = 1.0  # the reconcile loop runs at least this often (timers: initdead, expiry)
RETRY_BACKOFF = 2.0  # after a failed round, wait before trying the same thing again
# The systemd watchdog proves the loop is alive, not that no action runs (issue 16): it is
# pinged from a task of its own while the reconcile loop makes progress: a round ends at
# least every STALL_LIMIT seconds, or the action running now is still within its own bound
# (its timeout + executor.ACTION_GRACE).  A loop stuck past that, or a blocked event loop, stops the pings.
STALL_LIMIT = 30.0
STARTUP_LIMIT = 600.0  # start-up: DRBD up and the initial probes, each bounded on its own


class Clock:
    """Time as the engine reads it: monotonic for timers, wall for fail counts and expiry."""

    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)


class Engine:
    def __init__(self, cfg: Config, local: str, *, heartbeat, drivers: dict, drbd: dict, history, alerter,
                 store, fencer=None, guard=None, clock=None, notify=None, stop_resources_on_exit=False):
        self.cfg, self.local, self.peer_name = cfg, local, cfg.peer_of(local)
        self.heartbeat, self.drivers, self.drbd, self.history, self.alerter, self.store = \
            heartbeat, drivers, drbd, history, alerter, store
        self.fencer, self.guard = fencer, guard  # fence-schema.md's Fencer; the ping guard / tie-breaker
        self.clock = clock or Clock()
        self.notify = notify or (lambda *a, **k: None)
        self.stop_resources_on_exit = stop_resources_on_exit
        self.digest = cfg.digest()
        self.started_at = self.clock.monotonic()
        self.group_of = {r.name: g for g in cfg.groups for r in g.resources}
        self.resources: dict[str, ResourceStatus] = {n: ResourceStatus() for n in drivers}
        self.drbd_status: dict[str, DrbdStatus] = {n: DrbdStatus(n) for n in drbd}
        self.claims: dict[str, int] = {}
        self.settled = self.peer_ever_seen = False
        self.peer_reported: NodeState | None = None  # the peer's latest well-formed report
        self.link_down: dict[str, str] = {}  # VIP resource -> why its interface cannot carry it now
        self.alerted: set[str] = set()  # standing-condition alerts already raised (planner's keys)
        self.acting = None  # the Action running now (for status)
        self.loop_beat = self.clock.monotonic()  # the reconcile loop's latest sign of progress
        self.action_deadline: float | None = None  # while an action runs: when it must be over
        self.state_unsaved = ""  # why the latest state write failed ("" = the file is current)
        self.internal_errors = 0  # rounds that raised (a bug): alerted, retried, never fatal
        self.last_round: tuple[tuple, float] | None = None  # (the plan's key, when): no busy loop
        self.last_failed_round: tuple[tuple, float] | None = None  # (the plan's key, when): back off
        self.metrics = None  # hasupd.metrics.Metrics when metrics.listen is configured
        self.wake, self.stopping = asyncio.Event(), asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.peer_fencing = PeerFencing(self)
        self.executor = Executor(self)
        self.intake = Intake(self)

    # ------------------------------------------------------------ start-up

    async def start(self) -> None:
        warning = self.store.load()
        if warning:
            self.alerter.emit("state_corrupt", "warning", warning)
        self.claims = dict(self.store.state.claims_of(self.local))
        for w in self.cfg.warnings:
            self.alerter.emit("config_warning", "warning", w)
        await self.intake.initial_observations()  # DRBD up, then adopt what runs (a restart disturbs nothing)
        self.settled = True
        self.history.record("start", reason=f"hasupd started on {self.local}",
                            resources={n: s.state.value for n, s in self.resources.items()})
        await self.heartbeat.start()
        self.publish()
        self.tasks.extend(self.intake.start_tasks())

    # ------------------------------------------------------------ the view (reading it changes nothing)

    def local_state(self) -> NodeState:
        peer = self.heartbeat.peer()
        return NodeState(
            name=self.local, alive=True, rings=tuple(peer.rings), incarnation=self.heartbeat.incarnation,
            standby=self.store.state.standby.get(self.local, False), drbd=dict(self.drbd_status),
            resources=dict(self.resources), claims=dict(self.claims), settled=self.settled,
            config_digest=self.digest, tiebreaker=self.guard.reachable if self.guard is not None else None,
            link_down=dict(self.link_down))

    def peer_state(self) -> NodeState:
        peer = self.heartbeat.peer()
        ns = self.peer_reported or NodeState(self.peer_name)
        return replace(ns, name=self.peer_name, alive=peer.alive, rings=tuple(peer.rings),
                       standby=self.store.state.standby.get(self.peer_name, False))

    def view(self) -> ClusterView:
        me, them = self.local_state(), self.peer_state()
        st = self.refreshed(me, them)  # what refresh_state() persists, computed without writing
        peer = self.heartbeat.peer()
        pf = self.peer_fencing
        return ClusterView(
            local=self.local, now=self.clock.monotonic(), started_at=self.started_at,
            nodes={self.local: me, self.peer_name: them}, peer_ever_seen=self.peer_ever_seen,
            peer_lost_at=peer.lost_at if not peer.alive else None, wall=self.clock.wall(),
            fail_counts=st.fail_counts_view(), bans=st.bans_view(), moves=st.moves_view(),
            target_roles=dict(st.target_roles), maintenance=st.maintenance,
            forced_promotions=frozenset(st.forced_promotions),
            tiebreaker=self.guard.reachable if self.guard is not None else None,
            fencing=pf.state, blocked=dict(st.blocked), alerted=frozenset(self.alerted),
            epoch_floor=st.claim_floor,
            fence=replace(pf.facts, drbd_lost_at=max(pf.drbd_lost.values(), default=None)),
            outdate_requested=frozenset(pf.peer_outdate_requests()),
            peer_epochs=dict(st.peer_epochs), synced_epochs=dict(st.synced_epochs))

    def refreshed(self, me: NodeState, them: NodeState) -> State:
        """The persisted state as of now: expired fail counts dropped, the claim floor raised to every
        claim seen (a new claim goes above all of them), the copies seen folded in (rule 13)."""
        st = self.store.state.expire(self.clock.wall(), self.cfg)
        st = st.raise_claim_floor(max((*me.claims.values(), *them.claims.values()), default=0))
        for seen in copies_seen(self.cfg, me, them):
            st = st.observe_copy(*seen)
        return st

    def refresh_state(self) -> None:
        """Before a round: persist refreshed(), and note the groups the peer claims."""
        if self.store.update(self.refreshed(self.local_state(), self.peer_state())):
            self.save_state()
        if self.peer_reported is not None:
            self.executor.peer_held.update(self.peer_reported.claims)

    def publish(self) -> None:
        """Send our state to the peer now (after any change)."""
        forms = payload_forms(self.heartbeat, self.local_state(), self.store.state.to_wire(),
                              sorted(self.peer_fencing.outdate_requests))
        for i, (version, payload, limit) in enumerate(forms):
            try:
                self.heartbeat.set_payload(payload, limit=limit, version=version)
                break
            except ValueError as e:
                if i + 1 == len(forms) and "payload_too_large" not in self.alerted:
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
        self.action_deadline = self.clock.monotonic() + STARTUP_LIMIT
        try:
            await self.start()
        finally:
            self.action_deadline = None
        self.notify(ready=True, status=self.status_line())
        try:
            while not self.stopping.is_set():
                await self.one_round()
            await self.shutdown()
        finally:
            watchdog.cancel()

    async def one_round(self) -> None:
        """Wait for a change or the tick, then reconcile; a round that raises (a bug) is alerted and
        retried after a back-off, never the end of the loop."""
        self.loop_beat = self.clock.monotonic()
        try:
            await within(self.wake.wait(), TICK)
        except Timeout:
            pass
        self.wake.clear()
        if self.stopping.is_set():
            return
        if self.state_unsaved:
            self.save_state()  # the disk was full: try again
        try:
            await self.reconcile()
        except Exception as e:
            self.internal_error("reconcile", e)
            await asyncio.sleep(RETRY_BACKOFF)
        self.notify(status=self.status_line())

    def internal_error(self, where: str, e: BaseException) -> None:
        self.internal_errors += 1
        self.history.record("internal-error", where=where, reason=f"{type(e).__name__}: {e}")
        self.alerter.emit("internal_error", "critical", f"hasupd hit an unexpected error in {where} and goes on: "
                          f"{type(e).__name__}: {e}")

    def loop_alive(self) -> bool:
        """The reconcile loop makes progress (see STALL_LIMIT)."""
        now = self.clock.monotonic()
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
        self.refresh_state()
        actions = planner.decide(self.cfg, self.view())
        if not actions:
            return
        key = tuple((a.kind, a.group, a.resource, a.key) for a in actions)
        now = self.clock.monotonic()
        if self.last_failed_round and self.last_failed_round[0] == key and now - self.last_failed_round[1] < RETRY_BACKOFF:
            return  # the same plan just failed: let the timer retry
        if self.last_round and self.last_round[0] == key and now - self.last_round[1] < TICK:
            return  # the same plan just ran and changed nothing visible: no busy loop
        self.last_round = (key, now)
        ok = await self.executor.run_round(actions)
        self.last_failed_round = None if ok else (key, self.clock.monotonic())
        self.wake.set()  # look again: success is confirmed by the next view

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
        for action in planner.stop_on_exit(group, self.view(), reason):  # the planner's order
            await self.executor.execute(action)
        self.claims.pop(group.name, None)

    def request_stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def status_line(self) -> str:
        parts = []
        for g in self.cfg.groups:
            running = all(self.resources[r.name].state == ResState.STARTED for r in g.resources)
            parts.append(f"{g.name} {'started here' if running else 'not here'}")
        peer = self.heartbeat.peer()
        parts.append(f"peer {self.peer_name} {'alive' if peer.alive else 'not seen'}")
        return "; ".join(parts)


def copies_seen(cfg: Config, me: NodeState, them: NodeState) -> list[tuple[str, int, int, bool]]:
    """Per group with DRBD, what State.observe_copy folds in (it says why this is the definition):
    (group, this node's claim, the peer's claim, this copy in sync with the owner now)."""
    out = []
    for g in cfg.groups:
        d = me.drbd.get(g.drbd) if g.drbd else None
        if d is not None:
            in_sync = d.connected and d.disk == "UpToDate" and d.peer_disk == "UpToDate"
            out.append((g.name, me.claims.get(g.name, 0), them.claims.get(g.name, 0), in_sync))
    return out


def payload_forms(hb, me: NodeState, state: dict, outdate: list[str]) -> list[tuple[int, dict, int]]:
    """(wire version, payload, size limit) to try in order: the wire version the peer reads
    (membership/heartbeat.py "Rolling upgrade"); before it is heard version 1, or version 2 when the
    version 1 form does not fit (a peer of version 1 could not have been sent this state anyway); in
    each, the human details first and, above their budget, the facts and requests alone."""
    versions = (hb.speak_version,) if hb.peer_version_known else (1, wire.VERSION)
    return [(v, {**report.form(me, v, details), "state": state, "outdate": outdate}, limit)
            for v in versions for details, limit in ((True, wire.DETAIL_BUDGET), (False, wire.MAX_PACKET))]
