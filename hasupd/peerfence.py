"""The engine's side of fencing the peer (issue 17): the facts about the current loss of the peer
(its random delay, the devices' word on its power, the fence attempts), the one fence run at a
time, and DRBD's fence steps.  Whether and when to fence is the planner's (view.fence, view.fencing).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

from hasupd import planner
from hasupd.fencing import EarlyPowerStatus, FenceOutcome
from hasupd.model import Action, ActionKind, DrbdStatus, FenceState
from hasupd.resources.base import Result


class PeerFencing:
    def __init__(self, engine):
        self.eng = engine
        self.state = FenceState.NONE
        self.policy = replace(planner.fence_policy(engine.cfg), devices=engine.fencer is not None)
        self.facts = replace(self.policy, random_delay=0.0)  # about the current loss of the peer
        self.gen = 0  # +1 at each loss / return of the peer: older fence results are dropped
        self.task: asyncio.Task | None = None
        self.fenced_incarnation = ""
        self.drbd_lost: dict[str, float] = {}  # DRBD resource -> when it stopped being Connected
        self.outdate_requests: set[str] = set()  # DRBD resources the peer is asked to outdate (fence-peer)
        # the peer's power asked when its heartbeat falters, ready at the loss (issue 22)
        self.early_power = EarlyPowerStatus(engine.fencer, engine.peer_name) if engine.fencer is not None else None

    def peer_suspect(self, at: float) -> None:
        """The peer's heartbeat falters: ask its power now (status only), for a loss that may follow."""
        if self.early_power is not None:
            self.early_power.suspect(at)

    def peer_lost(self, last_seen: float | None = None) -> None:
        """A new loss of the peer: fresh fence facts, the random delay of this loss drawn, the devices
        asked at once whether the peer is powered off (then it is fenced already), and a wake-up when
        this node's fence delay runs out."""
        eng = self.eng
        self.gen += 1
        self.state = FenceState.NONE
        delay = random.uniform(0.0, self.policy.random_delay) if self.policy.random_delay else 0.0
        self.facts = replace(self.policy, random_delay=round(delay, 3))
        if eng.fencer is None:
            return
        loop = asyncio.get_running_loop()
        for wait in (delay, delay + self.policy.owner_head_start):
            loop.call_later(wait + 0.01, eng.wake.set)
        eng.tasks = [t for t in eng.tasks if not t.done()]
        early = self.early_power.for_loss(last_seen) if last_seen is not None and self.early_power else None
        eng.tasks.append(asyncio.create_task(self._ask_peer_power(self.gen, early), name="fence-power"))

    def peer_back(self, incarnation: str) -> None:
        """The peer is heard again: whatever was known about fencing it belonged to its loss."""
        eng = self.eng
        if self.state == FenceState.SUCCEEDED and incarnation == self.fenced_incarnation:
            eng.alerter.emit("fence_lied", "critical",
                             f"{eng.peer_name} was reported fenced (off) but is heard again without having "
                             "restarted: its fence device does not power it off; check the device and its plug",
                             node=eng.peer_name)
        self.gen += 1
        self.state = FenceState.NONE
        self.facts = replace(self.policy, random_delay=0.0)

    async def _ask_peer_power(self, gen: int, early: asyncio.Future | None = None) -> None:
        """``early``: the query EarlyPowerStatus began after the peer's last packet (else one now)."""
        eng = self.eng
        try:
            power = await (early if early is not None else eng.fencer.power_status(eng.peer_name))
        except Exception as e:  # the fencer reports its own failures; this one must not end the daemon
            power = "unknown"
            eng.alerter.emit("fence_status_error", "warning",  # its text may hold what a device said: not copied
                             f"power status of {eng.peer_name}: the fencer raised {type(e).__name__}")
        if gen != self.gen:
            return
        self.facts = replace(self.facts, peer_power=power)
        eng.history.record("observation", state="peer_power", target=eng.peer_name,
                           reason=f"the fence devices report {eng.peer_name} powered {power}")
        eng.changed()

    def note_drbd_connection(self, res: str, status: DrbdStatus) -> None:
        if status.connected:
            self.drbd_lost.pop(res, None)
        elif res not in self.drbd_lost:
            self.drbd_lost[res] = self.eng.clock.monotonic()
            if self.eng.fencer is not None:  # the fence race's delays may count from now: look again then
                wait = self.facts.random_delay + self.policy.owner_head_start
                asyncio.get_running_loop().call_later(wait + 0.01, self.eng.wake.set)

    async def fence_peer(self, reason: str):
        """Fence the peer once (a fence already running is joined, not doubled): the planner's FENCE
        and DRBD's fence-peer handler both come here.  Returns the fencer's FenceOutcome."""
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._fence(reason), name="fence")
        return await asyncio.shield(self.task)

    async def _fence(self, reason: str):
        eng = self.eng
        gen, peer = self.gen, eng.peer_name
        self.state = FenceState.PENDING
        self.fenced_incarnation = eng.heartbeat.peer().incarnation
        eng.history.record("fence-start", target=peer, reason=reason)
        try:
            if eng.fencer is None:
                outcome = FenceOutcome(False, False, None, None, f"no fence device can fence {peer}", 0.0)
            else:
                outcome = await eng.fencer.fence(peer)
        except Exception as e:  # a broken fencer is a failed fence, never a dead daemon
            outcome = FenceOutcome(False, False, None, None, f"the fencer raised {type(e).__name__}", 0.0)
        self.record(outcome)
        if gen == self.gen:  # still the same loss of the peer
            if outcome.ok:
                self.state = FenceState.SUCCEEDED
            else:
                self.state = FenceState.FAILED
                self.facts = replace(self.facts, attempts=self.facts.attempts + 1,
                                     last_attempt_at=eng.clock.monotonic(), last_message=outcome.message)
        eng.changed()
        return outcome

    def record(self, outcome) -> None:
        """Only the outcome's own fields are recorded: the fencer redacts its message, and options
        and secrets never leave it."""
        eng, peer = self.eng, self.eng.peer_name
        eng.history.record("fence", target=peer, ok=outcome.ok, already_off=outcome.already_off,
                           device=outcome.device, level=outcome.level, message=outcome.message,
                           duration=round(outcome.duration, 3))
        if eng.metrics is not None:
            eng.metrics.fence_done(outcome.ok)
        eng.alerter.emit("fence_result", "warning" if outcome.ok else "critical",
                         f"fencing {peer}: " + ("it was off already" if outcome.already_off else
                                                "succeeded" if outcome.ok else "failed")
                         + f" ({outcome.message})", node=peer)

    async def drbd_fence_step(self, action: Action) -> Result:
        """DRBD_DISCONNECT: the peer is fenced, DRBD has not noticed yet: drop the connection now and
        listen for the peer again (it is off: this is the state DRBD reaches itself after its ping
        timeout).  DRBD_OUTDATE: the live peer asked for it (its fence-peer handler)."""
        drv = self.eng.drbd[action.resource]
        status = None
        if action.kind == ActionKind.DRBD_DISCONNECT:
            result = await drv.disconnect(force=True)  # the peer is off: no handshake to wait for
            if result.ok:
                result = await drv.connect()
            if result.ok:  # DRBD said so (its event stream confirms it): no third drbdadm before the promotion
                status = replace(self.eng.drbd_status[action.resource], connection="Connecting", replication="Off",
                                 peer_role="Unknown", peer_disk="DUnknown")
        else:
            result = await drv.outdate()
        status = status or await drv.status()
        self.note_drbd_connection(action.resource, status)
        self.eng.drbd_status[action.resource] = status
        return result

    def peer_outdate_requests(self) -> list[str]:
        """The DRBD resources the live peer asks this node to outdate (its heartbeat payload)."""
        peer = self.eng.heartbeat.peer()
        asked = (peer.payload or {}).get("outdate") if peer.alive else None
        if not isinstance(asked, list):
            return []
        return [r for r in asked if isinstance(r, str) and r in self.eng.drbd]
