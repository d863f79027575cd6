"""The engine's fencing with small hand-written fakes (no namespaces, no patching): the FENCE
action runs the fencer and records its outcome, a failed fence blocks the takeover, a peer its
devices report off is taken over at once (DRBD disconnected, no wait for DRBD's ping timeout),
DRBD's fence-peer handler outdates a live peer or fences a silent one, and a peer that comes
back clears the fence state."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from hasupd import config as configmod
from hasupd import planner
from hasupd.control.commands import Commands
from hasupd.daemon import build_engine
from hasupd.engine import Engine
from hasupd.membership import report, wire
from hasupd.membership.heartbeat import PeerView
from hasupd.model import Action, ActionKind, DrbdStatus, FenceState, ResourceStatus, ResState, to_dict
from hasupd.resources.base import Result

ROOT = Path(__file__).resolve().parents[1]
K = ActionKind
LOCAL, PEER = "secondarycentos", "primarycentos"
CANARY = "canary-S3cr3t-pw"


def make_config(tmp_path, guard: dict):
    data = yaml.safe_load((ROOT / "conf" / "hasupd.yaml").read_text())
    data["split_brain_guard"] = guard
    data["state_dir"] = str(tmp_path / "state")
    data["drbd"]["peer_dead_wait"] = "11s"
    (tmp_path / "state").mkdir(exist_ok=True)
    return configmod.loads(yaml.safe_dump(data), "<engine fencing test>")


# ---------------------------------------------------------------- fakes


@dataclass(frozen=True)
class Outcome:  # fence-schema.md's FenceOutcome
    ok: bool
    already_off: bool = False
    device: str | None = "bmc-n1"
    level: int | None = 1
    message: str = "bmc-n1: off, confirmed by status"
    duration: float = 0.25


class FakeFencer:
    """Holds a secret the way a real fencer holds its devices' passwords: the engine must never
    copy it anywhere."""

    def __init__(self, outcomes=(), power="unknown", delay=0.0):
        self.outcomes = list(outcomes)
        self.power = power
        self.delay = delay
        self.calls: list[str] = []
        self.options = {"ip": "10.77.0.11", "password": CANARY}

    async def fence(self, node):
        self.calls.append(node)
        await asyncio.sleep(self.delay)
        return self.outcomes.pop(0)

    async def power_status(self, node):
        return self.power

    def longest(self, node):
        return self.delay + 20.0


class RaisingFencer(FakeFencer):
    async def fence(self, node):
        self.calls.append(node)
        raise RuntimeError(f"device said {CANARY}")

    async def power_status(self, node):
        raise RuntimeError(f"device said {CANARY}")


class FakeHeartbeat:
    def __init__(self):
        self.incarnation = "inc-local"
        self.payload = None
        self.peer_view = PeerView(PEER, False, (False, False), "", None, None, None, (None, None), (0.0, 0.0),
                                  "", False)
        self.events = asyncio.Queue()
        self.deliver = None  # the engine's intake of a peer payload (the real heartbeat's PeerPayload event)

    def _delivered(self):
        if self.deliver is not None and self.peer_view.payload is not None:
            self.deliver(self.peer_view.payload)

    def peer(self):
        return self.peer_view

    speak_version = wire.VERSION
    peer_version_known = True

    def set_payload(self, payload, limit=wire.MAX_PACKET, version=wire.VERSION):
        size = len(wire.encode(b"k" * 32, "c", LOCAL, "0" * 32, 1, "0" * 16, payload,
                               version=version))  # ValueError past MAX_PACKET
        if size > limit:
            raise ValueError(f"{size} > {limit}")
        self.payload = json.loads(json.dumps(payload))

    def send_now(self):
        pass

    def lose_peer(self, ago: float, incarnation="inc-peer-1", node=None):
        self.peer_view = replace(self.peer_view, alive=False, lost_at=time.monotonic() - ago,
                                 incarnation=incarnation, ever_seen=True,
                                 payload={"node": node} if node else self.peer_view.payload)
        self._delivered()

    def peer_alive(self, node: dict, incarnation="inc-peer-1", outdate=()):
        self.peer_view = replace(self.peer_view, alive=True, lost_at=None, incarnation=incarnation,
                                 ever_seen=True, payload={"node": node, "outdate": list(outdate)})
        self._delivered()


class FakeDrbd:
    def __init__(self, status: DrbdStatus):
        self.st = status
        self.calls: list[str] = []

    async def status(self):
        return self.st

    async def disconnect(self, force=False):
        self.calls.append("disconnect --force" if force else "disconnect")
        self.st = replace(self.st, connection="StandAlone", peer_role="Unknown", peer_disk="DUnknown")
        return Result(True)

    async def connect(self):
        self.calls.append("connect")
        self.st = replace(self.st, connection="Connecting")
        return Result(True)

    async def promote(self, force=False):
        self.calls.append("promote")
        self.st = replace(self.st, role="Primary")
        return Result(True)

    async def outdate(self):
        self.calls.append("outdate")
        self.st = replace(self.st, disk="Outdated")
        return Result(True)

    async def up(self):
        self.calls.append("up")
        return Result(True)


class FakeResource:
    def __init__(self, name, log):
        self.name, self.log = name, log

    async def start(self):
        self.log.append(f"start {self.name}")
        return Result(True)

    async def stop(self):
        self.log.append(f"stop {self.name}")
        return Result(True)

    async def probe(self):
        return ResourceStatus(ResState.STOPPED)


def make_engine(tmp_path, fencer, guard=None, drbd: DrbdStatus | None = None):
    cfg = make_config(tmp_path, guard or {"mode": "fence", "fence": {"command": ["/bin/false"]}})
    eng = build_engine(cfg, LOCAL, b"k" * 32, foreground=False, fencer=fencer)
    eng.heartbeat = FakeHeartbeat()
    eng.heartbeat.deliver = eng.intake.take_peer_payload
    eng.started_at = time.monotonic() - 1000
    eng.settled = True
    eng.peer_ever_seen = True
    log: list[str] = []
    eng.drivers = {n: FakeResource(n, log) for n in eng.drivers}
    eng.resources = {n: ResourceStatus(ResState.STOPPED) for n in eng.drivers}
    st = drbd or DrbdStatus("r0", up=True, role="Secondary", disk="UpToDate", connection="Connecting")
    eng.drbd = {"r0": FakeDrbd(st)}
    eng.drbd_status = {"r0": st}
    # the owner's claim 1 (owner_report) was seen while DRBD was in sync: this copy is not stale (rule 13)
    eng.store.observe_copy("rg_web", 0, 1, True)
    eng.log = log
    return eng


def owner_report(drbd: DrbdStatus | None = None) -> dict:
    """What the owner last published: the group started, claim 1."""
    node = {"name": PEER, "settled": True, "claims": {"rg_web": 1},
            "resources": {r: {"state": "started"} for r in ("res_vip", "res_filesystem", "res_httpd")}}
    if drbd is not None:
        node["drbd"] = {"r0": to_dict(drbd)}
    return node


def everything_written(eng: Engine) -> str:
    history = Path(eng.history.path).read_text()
    return history + json.dumps(list(eng.alerter.recent), default=str) + json.dumps(eng.heartbeat.payload)


def run(coro):
    return asyncio.run(coro)


# ---------------------------------------------------------------- FENCE


def test_fence_action_runs_the_fencer_and_records_the_outcome_without_secrets(tmp_path):
    fencer = FakeFencer([Outcome(True)])

    async def main():
        eng = make_engine(tmp_path, fencer)
        eng.heartbeat.lose_peer(8, node=owner_report())
        ok = await eng.executor.execute(Action(K.FENCE, None, PEER, "test: fence it"))
        return eng, ok

    eng, ok = run(main())
    assert ok and fencer.calls == [PEER]
    assert eng.view().fencing == FenceState.SUCCEEDED
    records = [json.loads(line) for line in Path(eng.history.path).read_text().splitlines()]
    fence = [r for r in records if r["kind"] == "fence"]
    assert len(fence) == 1
    assert {k: fence[0][k] for k in ("node", "target", "ok", "already_off", "device", "level", "message", "duration")} == {
        "node": LOCAL, "target": PEER, "ok": True, "already_off": False, "device": "bmc-n1", "level": 1,
        "message": "bmc-n1: off, confirmed by status", "duration": 0.25}
    assert CANARY not in everything_written(eng)


def test_a_fencer_that_raises_is_a_failed_fence_and_its_text_is_not_copied(tmp_path):
    async def main():
        eng = make_engine(tmp_path, RaisingFencer())
        eng.heartbeat.lose_peer(8, node=owner_report())
        eng.peer_fencing.peer_lost()  # asks the devices for the peer's power: the fencer raises there too
        await asyncio.sleep(0.05)
        ok = await eng.executor.execute(Action(K.FENCE, None, PEER, "test"))
        return eng, ok

    eng, ok = run(main())
    assert not ok
    assert [a["event"] for a in eng.alerter.recent if a["event"] == "fence_status_error"] == ["fence_status_error"]
    view = eng.view()
    assert view.fence.peer_power == "unknown"
    assert view.fencing == FenceState.FAILED and view.fence.attempts == 1
    assert "RuntimeError" in view.fence.last_message
    assert CANARY not in everything_written(eng)


def test_two_fence_requests_at_once_run_one_fence(tmp_path):
    fencer = FakeFencer([Outcome(True)], delay=0.2)

    async def main():
        eng = make_engine(tmp_path, fencer)
        eng.heartbeat.lose_peer(8, node=owner_report())
        return await asyncio.gather(eng.peer_fencing.fence_peer("planner"), eng.peer_fencing.fence_peer("drbd handler"))

    a, b = run(main())
    assert a is b and fencer.calls == [PEER]


def test_failed_fence_blocks_takeover_and_retries_after_a_backoff(tmp_path):
    fail = Outcome(False, device=None, level=None, message="bmc-n1: no answer within 20s")
    fencer = FakeFencer([fail, fail])

    async def main():
        eng = make_engine(tmp_path, fencer)
        eng.heartbeat.lose_peer(30, node=owner_report())
        await eng.reconcile()
        first = planner.decide(eng.cfg, eng.view())
        return eng, first

    eng, after_failure = run(main())
    assert fencer.calls == [PEER]
    assert eng.log == [] and eng.drbd["r0"].calls == []  # nothing started, nothing promoted
    kinds = [a.kind for a in after_failure]
    assert K.FENCE not in kinds  # the backoff (2 s after the first failure) runs
    assert not {K.CLAIM, K.PROMOTE, K.START} & set(kinds)
    assert any(a.kind == K.ALERT and a.key == f"fence_failed:{PEER}" for a in after_failure)
    assert "no takeover" in planner.explain(eng.cfg, eng.view())["rg_web"]
    # once the backoff is over: fence again, still no takeover
    eng.peer_fencing.facts = replace(eng.peer_fencing.facts, last_attempt_at=time.monotonic() - 2.5)
    again = planner.decide(eng.cfg, eng.view())
    assert K.FENCE in [a.kind for a in again] and not {K.CLAIM, K.PROMOTE, K.START} & {a.kind for a in again}


def test_fenced_peer_is_taken_over(tmp_path):
    fencer = FakeFencer([Outcome(True)])

    async def main():
        eng = make_engine(tmp_path, fencer)
        eng.heartbeat.lose_peer(30, node=owner_report())
        for _ in range(3):
            await eng.reconcile()
        return eng

    assert_fenced_and_took_over(run(main()), fencer)


def assert_fenced_and_took_over(eng, fencer) -> None:
    assert fencer.calls == [PEER]
    assert eng.drbd["r0"].calls == ["promote"]
    assert eng.log == ["start res_vip", "start res_filesystem", "start res_httpd"]


# DRBD still Connected to a Primary peer: its ping timeout has not run out yet (a power cut)
CONNECTED_TO_PRIMARY = DrbdStatus("r0", up=True, role="Secondary", peer_role="Primary", disk="UpToDate",
                                  peer_disk="UpToDate", connection="Connected", replication="Established")


async def lose_powered_off_peer(eng) -> None:
    """The heartbeat loses the peer; wait (up to 0.5 s) for the devices' power answer, then three rounds."""
    eng.peer_fencing.peer_lost()
    for _ in range(50):
        await asyncio.sleep(0.01)
        if eng.peer_fencing.facts.peer_power:
            break
    for _ in range(3):
        await eng.reconcile()


def test_peer_reported_off_is_taken_over_at_once_without_waiting_for_drbd(tmp_path):
    """A power cut: DRBD still shows the peer Connected (its ping timeout runs), the devices report
    it off -> fenced already: disconnect DRBD, promote, start, well inside drbd.peer_dead_wait (11 s)."""
    connected = CONNECTED_TO_PRIMARY
    fencer = FakeFencer([], power="off")

    async def main():
        eng = make_engine(tmp_path, fencer, drbd=connected)
        eng.heartbeat.lose_peer(0.2, node=owner_report())
        began = time.monotonic()
        await lose_powered_off_peer(eng)
        return eng, time.monotonic() - began

    eng, took = run(main())
    assert eng.peer_fencing.facts.peer_power == "off"
    assert fencer.calls == []  # no `off` sent to a node that is off
    assert eng.drbd["r0"].calls == ["disconnect --force", "connect", "promote"]
    assert eng.log == ["start res_vip", "start res_filesystem", "start res_httpd"]
    assert took < 5.0, took  # nowhere near peer_dead_wait


class StatusFencer(FakeFencer):
    """Answers each power status query with the next of ``powers``, after ``status_delay``."""

    def __init__(self, powers, status_delay):
        super().__init__()
        self.powers, self.status_delay, self.status_calls = list(powers), status_delay, 0

    async def power_status(self, node):
        self.status_calls += 1
        answer = self.powers.pop(0)
        await asyncio.sleep(self.status_delay)
        return answer


def test_power_asked_when_the_heartbeat_falters_is_the_answer_at_the_loss(tmp_path):
    """PeerSuspect starts the status query; at the loss its "off" applies at once, no second query."""
    fencer = StatusFencer(["off"], status_delay=0.2)

    async def main():
        eng = make_engine(tmp_path, fencer)
        last_seen = time.monotonic()
        eng.peer_fencing.early_power.suspect(last_seen + 0.1)
        await asyncio.sleep(0.3)  # answered before the deadtime
        eng.heartbeat.lose_peer(0.0, node=owner_report())
        eng.peer_fencing.peer_lost(last_seen)
        await asyncio.sleep(0.02)  # a few loop turns, far less than a query
        return eng

    eng = run(main())
    assert eng.peer_fencing.facts.peer_power == "off" and fencer.status_calls == 1


def test_an_early_answer_from_before_the_last_packet_is_not_used(tmp_path):
    """The peer was heard after the early query began: its "off" says nothing about the peer after
    it went silent, so the loss asks again and takes that answer."""
    fencer = StatusFencer(["off", "on"], status_delay=0.05)

    async def main():
        eng = make_engine(tmp_path, fencer)
        asked = time.monotonic()
        eng.peer_fencing.early_power.suspect(asked)
        await asyncio.sleep(0.1)
        eng.heartbeat.lose_peer(0.0, node=owner_report())
        eng.peer_fencing.peer_lost(asked + 0.05)  # its last packet came after the query began
        await asyncio.sleep(0.2)
        return eng

    eng = run(main())
    assert eng.peer_fencing.facts.peer_power == "on" and fencer.status_calls == 2


def test_early_status_queries_are_spaced(tmp_path):
    from hasupd.fencing import EarlyPowerStatus

    fencer = StatusFencer(["unknown"] * 3, status_delay=0.0)

    async def main():
        early = EarlyPowerStatus(fencer, PEER)
        early.suspect(100.0)
        await asyncio.sleep(0.01)
        early.suspect(100.0 + EarlyPowerStatus.MIN_GAP - 0.1)  # a lossy link: no second query yet
        await asyncio.sleep(0.01)
        assert fencer.status_calls == 1
        assert early.for_loss(99.0) is not None and early.for_loss(99.0) is None  # used once
        early.suspect(100.0 + EarlyPowerStatus.MIN_GAP)
        await asyncio.sleep(0.01)
        return fencer.status_calls

    assert run(main()) == 2


class StatusCountingDrbd(FakeDrbd):
    async def status(self):
        self.calls.append("status")
        return await super().status()


def test_after_the_fenced_disconnect_the_promotion_follows_without_another_drbd_status(tmp_path):
    """disconnect --force and connect succeeded: DRBD is Connecting without its peer, said by those
    two commands; the promotion needs no third drbdadm run in between (issue 22)."""
    connected = CONNECTED_TO_PRIMARY

    async def main():
        eng = make_engine(tmp_path, FakeFencer([], power="off"), drbd=connected)
        eng.drbd = {"r0": StatusCountingDrbd(connected)}
        eng.heartbeat.lose_peer(0.2, node=owner_report())
        await lose_powered_off_peer(eng)
        return eng

    eng = run(main())
    calls = eng.drbd["r0"].calls
    i = calls.index("disconnect --force")
    assert calls[i:i + 3] == ["disconnect --force", "connect", "promote"], calls
    assert eng.drbd_status["r0"].role == "Primary" and eng.drbd_status["r0"].connection == "Connecting"


def test_details_past_the_budget_are_dropped_but_not_the_outdate_requests(tmp_path):
    """A report whose details would make the packet pass wire.DETAIL_BUDGET (1,200 bytes) goes
    without them; the facts and the outdate requests (the fence-peer handler's) still go."""
    async def main():
        eng = make_engine(tmp_path, FakeFencer([]))
        eng.peer_fencing.outdate_requests.add("r0")
        for name in eng.resources:
            eng.resources[name] = ResourceStatus(ResState.STARTED, os.urandom(300).hex())
        eng.publish()
        with_details = {"N": report.pack(eng.local_state()), "state": eng.store.state.to_wire(), "outdate": ["r0"]}
        return eng.heartbeat.payload, len(wire.encode(b"k" * 32, "c", LOCAL, "0" * 32, 1, "0" * 16, with_details))

    payload, size_with_details = run(main())
    assert wire.DETAIL_BUDGET < size_with_details <= wire.MAX_PACKET  # the budget, not the datagram, decided
    assert "x" not in payload["N"] and payload["outdate"] == ["r0"]
    assert report.unpack(payload["N"]).resources["res_vip"].state is ResState.STARTED


def test_fence_outcome_already_off_skips_the_drbd_wait(tmp_path):
    connected = CONNECTED_TO_PRIMARY
    fencer = FakeFencer([Outcome(True, already_off=True, message="bmc-n1: off already")])

    async def main():
        eng = make_engine(tmp_path, fencer, drbd=connected)
        eng.heartbeat.lose_peer(0.2, node=owner_report())
        await eng.executor.execute(Action(K.FENCE, None, PEER, "test"))
        for _ in range(3):
            await eng.reconcile()
        return eng

    eng = run(main())
    assert eng.drbd["r0"].calls == ["disconnect --force", "connect", "promote"]
    rec = [json.loads(x) for x in Path(eng.history.path).read_text().splitlines()]
    assert [r["already_off"] for r in rec if r["kind"] == "fence"] == [True]


def test_peer_back_clears_the_fence_state(tmp_path):
    fencer = FakeFencer([Outcome(True), Outcome(True)])

    async def main():
        eng = make_engine(tmp_path, fencer)
        eng.heartbeat.lose_peer(8, incarnation="inc-1", node=owner_report())
        await eng.executor.execute(Action(K.FENCE, None, PEER, "test"))
        assert eng.view().fencing == FenceState.SUCCEEDED
        eng.peer_fencing.peer_back("inc-2")  # it booted again: a new incarnation
        cleared = eng.view()
        # the same incarnation heard after a "successful" fence: the device lied
        eng.heartbeat.lose_peer(8, incarnation="inc-2", node=owner_report())
        eng.peer_fencing.peer_lost()
        await eng.executor.execute(Action(K.FENCE, None, PEER, "test"))
        eng.peer_fencing.peer_back("inc-2")
        return eng, cleared

    eng, cleared = run(main())
    assert cleared.fencing == FenceState.NONE and cleared.fence.attempts == 0
    assert eng.peer_fencing.state == FenceState.NONE
    assert any(a["event"] == "fence_lied" and a["severity"] == "critical" for a in eng.alerter.recent)


# ---------------------------------------------------------------- DRBD's fence-peer handler


def test_fence_peer_asks_the_live_peer_to_outdate_and_answers_outdated(tmp_path):
    secondary = DrbdStatus("r0", up=True, role="Secondary", disk="UpToDate", connection="Connecting")

    async def main():
        eng = make_engine(tmp_path, None, guard={"mode": "drbd"})
        eng.heartbeat.peer_alive({"name": PEER, "settled": True, "drbd": {"r0": to_dict(secondary)}})
        task = asyncio.create_task(Commands(eng).handle("drbd-fence-peer", {"resource": "r0"}))
        for _ in range(100):  # the request travels in this node's heartbeat
            await asyncio.sleep(0.02)
            if (eng.heartbeat.payload or {}).get("outdate") == ["r0"]:
                break
        asked = eng.heartbeat.payload["outdate"]
        # the peer outdates itself; its next heartbeat says so
        eng.heartbeat.peer_alive({"name": PEER, "settled": True,
                                  "drbd": {"r0": to_dict(replace(secondary, disk="Outdated"))}})
        return eng, asked, await asyncio.wait_for(task, 5)

    eng, asked, answer = run(main())
    assert asked == ["r0"]
    assert answer["verdict"] == "outdated"
    assert eng.heartbeat.payload["outdate"] == []  # the request is withdrawn


def test_the_peer_outdates_itself_on_request(tmp_path):
    async def main():
        eng = make_engine(tmp_path, None, guard={"mode": "drbd"})
        primary = DrbdStatus("r0", up=True, role="Primary", disk="UpToDate", connection="Connecting")
        eng.heartbeat.peer_alive(owner_report(primary), outdate=["r0"])
        await eng.reconcile()
        return eng

    eng = run(main())
    assert eng.drbd["r0"].calls == ["outdate"]
    assert eng.drbd_status["r0"].disk == "Outdated"


def test_fence_peer_silent_peer_is_fenced_with_the_devices(tmp_path):
    fencer = FakeFencer([Outcome(True)])

    async def main():
        eng = make_engine(tmp_path, fencer, guard={"mode": "drbd"})
        eng.heartbeat.lose_peer(3, node=owner_report())
        return eng, await Commands(eng).handle("drbd-fence-peer", {"resource": "r0"})

    eng, answer = run(main())
    assert answer["verdict"] == "fenced" and fencer.calls == [PEER]


@pytest.mark.parametrize("fencer", [None, FakeFencer([Outcome(False, message="bmc-n1: timed out")])],
                         ids=["no devices", "fence fails"])
def test_fence_peer_silent_peer_without_a_fence_is_never_down(tmp_path, fencer):
    async def main():
        eng = make_engine(tmp_path, fencer, guard={"mode": "drbd"})
        eng.heartbeat.lose_peer(3, node=owner_report())
        return await Commands(eng).handle("drbd-fence-peer", {"resource": "r0"})

    answer = run(main())
    assert answer["ok"] and answer["verdict"] == "unknown"  # the handler exits 1: no promotion


# ---------------------------------------------------------------- the policy from the configuration


class FencingSection:  # the shape of fence-schema.md's cfg.fencing, as far as the planner reads it
    devices = ("bmc-n1",)
    owner_head_start = 7.0
    random_delay_max = 2.0


def test_the_engine_draws_each_losses_random_delay_within_the_configured_maximum(tmp_path):
    async def main():
        eng = make_engine(tmp_path, FakeFencer([]))
        eng.cfg = replace(eng.cfg)
        object.__setattr__(eng.cfg, "fencing", FencingSection())  # cfg.fencing arrives with the fence branch
        policy = planner.fence_policy(eng.cfg)
        eng.peer_fencing.policy = replace(policy, devices=True)
        drawn = set()
        for _ in range(20):
            eng.heartbeat.lose_peer(1, node=owner_report())
            eng.peer_fencing.peer_lost()
            drawn.add(eng.view().fence.random_delay)
        return policy, drawn

    policy, drawn = run(main())
    assert (policy.devices, policy.owner_head_start, policy.random_delay) == (True, 7.0, 2.0)
    assert all(0.0 <= d <= 2.0 for d in drawn) and len(drawn) > 5


def test_the_watchdog_is_pinged_while_a_long_fence_runs(tmp_path):
    """Found by the VM campaign (issue 21): under software emulation a fence (three agent runs)
    took over 10 s; the watchdog was pinged only between reconcile rounds, so systemd killed the
    daemon mid-fence and its successor fenced the rebooting peer again.  A running action keeps
    the pings going (a frozen process or a blocked event loop still stops them)."""
    fencer = FakeFencer([Outcome(True)], delay=2.5)
    pings: list[float] = []

    async def main():
        eng = make_engine(tmp_path, fencer)

        class Notify:  # the daemon's notifier: WatchdogSec=1s, so a ping every 0.25 s
            watchdog_interval = 0.5

            def __call__(self, *a, watchdog=False, **k):
                if watchdog:
                    pings.append(time.monotonic())

        eng.notify = Notify()
        eng.loop_beat = time.monotonic() - 1000  # the loop's own beat is old: only the action counts
        watchdog = asyncio.create_task(eng._watchdog_loop())
        eng.heartbeat.lose_peer(8, node=owner_report())
        t0 = time.monotonic()
        ok = await eng.executor.execute(Action(K.FENCE, None, PEER, "test: a slow fence"))
        t1 = time.monotonic()
        watchdog.cancel()
        return ok, t0, t1

    ok, t0, t1 = run(main())
    assert ok
    inside = [t for t in pings if t0 < t < t1]
    assert len(inside) >= 2, f"watchdog pings during a 2.5 s fence: {len(inside)}"
