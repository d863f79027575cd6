"""Intake: the event sources turned into the engine's observed state.

Resource watches and periodic monitors, DRBD events, link (carrier) polls, the split-brain
guard's tie-breaker and the heartbeat's events (dispatched by their type) each update the
engine's observations and wake the reconcile loop; none of them decides anything.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from hasupd import planner
from hasupd.executor import bounded
from hasupd.history import split_brain_unresolved
from hasupd.membership import heartbeat as hb
from hasupd.membership import report
from hasupd.model import DrbdStatus, ResourceStatus, ResState, node_state_from_dict
from hasupd.resources import drbd as drbdmod
from hasupd.state import merge as merge_state

LINK_POLL = 0.5  # how often a VIP's interface is checked for carrier
WATCH_RESTART = 1.0  # a watch that ended or broke is restarted after this


@dataclass(frozen=True)
class ResourceSeen:
    """A resource's watch or monitor: its state now."""
    name: str
    state: ResState
    detail: str


@dataclass(frozen=True)
class DrbdSeen:
    """DRBD's event stream: the resource's status now."""
    name: str
    status: DrbdStatus


@dataclass(frozen=True)
class LinkSeen:
    """A VIP's interface: why it cannot carry the address now ("" when its link is up)."""
    name: str
    trouble: str


@dataclass(frozen=True)
class TiebreakerSeen:
    """The split-brain guard's ping: whether the tie-breaker answers."""
    reachable: bool


def _check_types(obj) -> None:
    """TypeError unless every field of a model dataclass has the type of its default (or None)."""
    for f in dataclasses.fields(obj):
        value, default = getattr(obj, f.name), f.default
        if value is None or default is None or default is dataclasses.MISSING:
            continue
        if type(value) is not type(default) and not (type(default) is float and type(value) is int):
            raise TypeError(f"{type(obj).__name__}.{f.name} is {type(value).__name__}, not {type(default).__name__}")


class Intake:
    def __init__(self, engine):
        self.eng = engine
        self.ring_errors: dict[int, str] = {}  # ring -> last socket error alerted
        self.reported: set[str] = set()  # one-off alerts already raised (bad_payload)
        self.on_event = {
            hb.PeerAlive: self.peer_alive, hb.PeerSuspect: self.peer_suspect, hb.PeerDead: self.peer_dead, hb.RingDown: self.ring_down,
            hb.RingError: self.ring_error, hb.RingUp: self.ring_up, hb.ConfigMismatch: self.config_mismatch,
            hb.ClockSkew: self.clock_skew, hb.PeerPayload: self.peer_payload, hb.PeerVersion: self.peer_version,
        }
        self.tiebreaker_seen: bool | None = None
        self.on_observation = {ResourceSeen: self.resource_seen, DrbdSeen: self.drbd_seen, LinkSeen: self.link_seen,
                               TiebreakerSeen: self.tiebreaker}

    def take(self, obs) -> None:
        """One observation from an event source, applied to the engine's observed state."""
        self.on_observation[type(obs)](obs)

    def start_tasks(self) -> list[asyncio.Task]:
        eng, tasks = self.eng, [asyncio.create_task(self._membership_loop(), name="membership")]
        for name, drv in eng.drivers.items():
            tasks.append(asyncio.create_task(self._watch_loop(name, drv), name=f"watch-{name}"))
            if eng.group_of[name].resource(name).type != "ocf":  # an OCF watch is its periodic monitor
                tasks.append(asyncio.create_task(self._monitor_loop(name, drv), name=f"monitor-{name}"))
        for name, drv in eng.drbd.items():
            tasks.append(asyncio.create_task(self._drbd_loop(name, drv), name=f"drbd-{name}"))
        for name, drv in eng.drivers.items():
            if hasattr(drv, "link_trouble"):
                tasks.append(asyncio.create_task(self._link_loop(name, drv), name=f"link-{name}"))
        if eng.guard is not None:
            tasks.append(asyncio.create_task(self._guard_loop(), name="guard"))
        return tasks

    # ------------------------------------------------------------ start-up

    async def initial_observations(self) -> None:
        """DRBD up and its status, then the initial probe of every resource: what runs is adopted."""
        eng = self.eng
        if eng.cfg.drbd.resources and eng.cfg.drbd.load_module:
            res = await drbdmod.ensure_module(eng.cfg.drbd)
            if not res.ok:
                eng.alerter.emit("drbd_module", "critical", res.message)
        for name, drv in eng.drbd.items():
            res = await drv.up()
            if not res.ok:
                eng.alerter.emit("drbd_up_failed", "critical", res.message, resource=name)
            eng.drbd_status[name] = await drv.status()
            if split_brain_unresolved(eng.history.read(), name, eng.drbd_status[name]):
                # a restart during a split brain: DRBD's StandAlone does not say why; the history does
                eng.drbd_status[name] = drv.remember_split_brain()
        for name in eng.drivers:
            eng.resources[name] = await self.probe(name)

    async def probe(self, name: str) -> ResourceStatus:
        """A driver's probe; one that raises (a bug, input it cannot run) leaves the resource unknown."""
        try:
            return await self.eng.drivers[name].probe()
        except Exception as e:
            self.eng.internal_error(f"the probe of {name}", e)
            return ResourceStatus(ResState.UNKNOWN, f"probe failed: {type(e).__name__}: {e}",
                                  self.eng.clock.monotonic())

    # ------------------------------------------------------------ resources

    def resource_seen(self, obs: ResourceSeen) -> None:
        eng, name, state, detail = self.eng, obs.name, obs.state, obs.detail
        old = eng.resources.get(name, ResourceStatus())
        if state == ResState.FAILED and old.state == ResState.STARTED:
            grp = eng.group_of[name]
            eng.store.record_failure(eng.local, grp.name, name, eng.clock.wall())
            eng.save_state()
            eng.history.record("observation", group=grp.name, resource=name, state="failed", reason=detail)
            eng.alerter.emit("resource_failed", "warning", f"{name} failed: {detail}", group=grp.name,
                             resource=name, task="monitor", rc=7)
        if state == old.state and detail == old.detail:
            return
        if not planner.observation_replaces(old.state, state):
            return
        eng.resources[name] = ResourceStatus(state, detail, eng.clock.monotonic())
        eng.changed()

    async def _watch_loop(self, name: str, drv) -> None:
        while True:
            try:
                async for obs in drv.watch():
                    if self.eng.resources[name].state == ResState.STARTED or obs.state != ResState.FAILED:
                        self.take(ResourceSeen(name, obs.state, obs.detail))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a broken watch must not kill the daemon: probes back it up
                self.eng.alerter.emit("watch_error", "warning", f"watch of {name} failed: {e!r}", resource=name)
            await asyncio.sleep(WATCH_RESTART)

    async def _monitor_loop(self, name: str, drv) -> None:
        eng, res_cfg = self.eng, self.eng.group_of[name].resource(name)
        while True:
            await asyncio.sleep(res_cfg.monitor_interval)
            if eng.resources[name].state != ResState.STARTED or eng.acting is not None:
                continue
            result = await bounded(drv.monitor(), res_cfg.timeouts.monitor)
            if not result.ok and eng.resources[name].state == ResState.STARTED and eng.acting is None:
                self.take(ResourceSeen(name, ResState.FAILED, result.message))

    async def _drbd_loop(self, name: str, drv) -> None:
        eng = self.eng
        while True:
            try:
                async for status in drv.watch():
                    self.take(DrbdSeen(name, status))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                eng.alerter.emit("watch_error", "warning", f"DRBD watch of {name} failed: {e!r}", resource=name)
            await asyncio.sleep(WATCH_RESTART)

    async def _link_loop(self, name: str, drv) -> None:
        """A VIP's interface without carrier: this node cannot serve now.  Published, not counted
        as a failure; the planner moves the group or waits for the link (issue 16)."""
        while True:
            try:
                why = await drv.link_trouble()
            except asyncio.CancelledError:
                raise
            except Exception:  # netlink hiccup: keep what we knew, ask again
                why = self.eng.link_down.get(name)
            self.take(LinkSeen(name, why or ""))
            await asyncio.sleep(LINK_POLL)

    async def _guard_loop(self) -> None:
        async for reachable in self.eng.guard.run():
            self.take(TiebreakerSeen(reachable))

    def drbd_seen(self, obs: DrbdSeen) -> None:
        eng = self.eng
        if obs.status != eng.drbd_status.get(obs.name):
            eng.peer_fencing.note_drbd_connection(obs.name, obs.status)
            eng.drbd_status[obs.name] = obs.status  # the planner alerts a split brain
            eng.changed()

    def link_seen(self, obs: LinkSeen) -> None:
        eng, name = self.eng, obs.name
        if obs.trouble == eng.link_down.get(name, ""):
            return
        if obs.trouble:
            eng.link_down[name] = obs.trouble
            eng.alerter.emit("link_down", "warning", f"{name}: {obs.trouble}; {eng.local} cannot serve it now",
                             resource=name)
        else:
            eng.link_down.pop(name, None)
            eng.alerter.emit("link_up", "info", f"{name}: its link is up again", resource=name)
        eng.changed()

    def tiebreaker(self, obs: TiebreakerSeen) -> None:
        if obs.reachable != self.tiebreaker_seen:
            self.eng.alerter.emit("tiebreaker", "info" if obs.reachable else "warning",
                                  f"tie-breaker {'reachable' if obs.reachable else 'unreachable'} "
                                  f"from {self.eng.local}")
            self.tiebreaker_seen = obs.reachable
            self.eng.changed()

    # ------------------------------------------------------------ membership

    async def _membership_loop(self) -> None:
        q = self.eng.heartbeat.events
        while True:
            self.membership_event(await q.get())

    def membership_event(self, ev) -> None:
        handler = self.on_event.get(type(ev))
        if handler is not None:
            handler(ev)
        self.eng.wake.set()

    def peer_alive(self, ev: hb.PeerAlive) -> None:
        eng = self.eng
        eng.peer_ever_seen = True
        eng.peer_fencing.peer_back(ev.incarnation)
        eng.alerter.emit("peer_back" if not ev.restarted else "peer_restarted", "info",
                         f"peer {eng.peer_name} is alive" + (" (restarted)" if ev.restarted else ""),
                         node=eng.peer_name)
        eng.history.record("observation", state="peer_alive", reason=f"peer {eng.peer_name} alive")

    def peer_dead(self, ev: hb.PeerDead) -> None:
        eng = self.eng
        eng.alerter.emit("peer_lost", "critical", f"peer {eng.peer_name} silent on every ring for "
                         f"{eng.cfg.heartbeat.deadtime:g}s", node=eng.peer_name)
        eng.history.record("observation", state="peer_dead", reason=f"peer {eng.peer_name} lost")
        eng.peer_fencing.peer_lost(ev.last_seen)

    def peer_suspect(self, ev: hb.PeerSuspect) -> None:
        self.eng.peer_fencing.peer_suspect(ev.at)

    def ring_down(self, ev: hb.RingDown) -> None:
        self.eng.alerter.emit("ring_degraded", "warning", f"heartbeat ring {ev.ring} is silent; redundancy degraded",
                              node=self.eng.peer_name)

    def ring_error(self, ev: hb.RingError) -> None:
        if self.ring_errors.get(ev.ring) != ev.message:
            self.ring_errors[ev.ring] = ev.message
            self.eng.alerter.emit("ring_error", "warning",
                                  f"heartbeat ring {ev.ring} cannot be used (retrying): {ev.message}")

    def ring_up(self, ev: hb.RingUp) -> None:
        self.ring_errors.pop(ev.ring, None)
        self.eng.alerter.emit("ring_healthy", "info", f"heartbeat ring {ev.ring} is healthy again")

    def config_mismatch(self, ev: hb.ConfigMismatch) -> None:
        self.eng.alerter.emit("config_mismatch", "warning", f"the peer's configuration differs (digest "
                              f"{ev.peer_digest} vs {ev.local_digest}): fix it before trusting a failover")

    def clock_skew(self, ev: hb.ClockSkew) -> None:
        eng = self.eng
        eng.alerter.emit("clock_skew", "critical" if ev.dropped else "warning",
                         f"{eng.peer_name}'s clock is {ev.offset:+.1f}s from ours (tolerated "
                         f"±{ev.tolerated:g}s): " + ("its heartbeats are refused; fix NTP" if ev.dropped
                                                     else "fix NTP before its heartbeats are refused"),
                         node=eng.peer_name)

    def peer_version(self, ev: hb.PeerVersion) -> None:
        eng = self.eng
        if ev.announce:
            eng.alerter.emit("peer_version", "info", hb.version_message(eng.peer_name, ev.version),
                             node=eng.peer_name)
        eng.publish()  # the report again, in the form of that version

    def peer_payload(self, ev: hb.PeerPayload) -> None:
        self.eng.peer_ever_seen = True
        self.take_peer_payload(ev.payload)

    def take_peer_payload(self, payload) -> None:
        """The peer's report and operator state.  Anything malformed (``drbd: []``, ``1e999``)
        is a dropped, counted packet: the last good report stays."""
        eng = self.eng
        try:
            if not isinstance(payload, dict):
                raise TypeError("the payload is not a mapping")
            ns = eng.peer_reported
            if "N" in payload:  # the compact form (wire version 2)
                ns = report.unpack(payload["N"])
            elif "node" in payload:  # a peer of wire version 1
                ns = node_state_from_dict(payload["node"])
            if ns is not None:
                for d in ns.drbd.values():
                    _check_types(d)
            state = payload.get("state")
            merged = merge_state(eng.store.state, state) if state is not None else None
        except Exception as e:  # hostile or broken input from the peer: drop and count it
            eng.heartbeat.counters["bad_payload"] += 1
            if "bad_payload" not in self.reported:
                self.reported.add("bad_payload")
                eng.alerter.emit("bad_payload", "warning", f"dropped a malformed report of {eng.peer_name}: "
                                 f"{type(e).__name__}: {str(e)[:200]}", node=eng.peer_name)
            return
        eng.peer_reported = ns
        if ns is not None:
            eng.executor.peer_releases.observe(ns, eng.clock.monotonic())
        if merged is not None and merged != eng.store.state:
            eng.store.state = merged
            eng.save_state()
