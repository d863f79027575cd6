"""Hand-written fakes for the engine's collaborators (the seam Supervisor gives its processes with
DummyOptions): drivers, DRBD, heartbeat, fencer, alerter and a clock that moves only when told.
History and the state store are the real ones, in a temporary directory."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import yaml

from hasupd import config as configmod
from hasupd.engine import Engine
from hasupd.fencing import FenceOutcome
from hasupd.history import History
from hasupd.membership.heartbeat import PeerView
from hasupd.model import DrbdStatus, ResourceStatus, ResState
from hasupd.resources.base import Result
from hasupd.state import StateStore

ROOT = Path(__file__).resolve().parents[2]
LOCAL, PEER = "primarycentos", "secondarycentos"
GROUP, RESOURCES = "rg_web", ("res_vip", "res_filesystem", "res_httpd")


class FakeClock:
    def __init__(self, t: float = 10_000.0):
        self.t = t

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_800_000_000.0 + self.t

    def advance(self, dt: float) -> None:
        self.t += dt


class FakeAlerter:
    def __init__(self):
        self.emitted: list[dict] = []
        self.recent: list[dict] = []
        self.dropped = self.agent_failures = self.agent_timeouts = 0

    def emit(self, event, severity, message, **kw):
        self.emitted.append({"event": event, "severity": severity, "message": message, **kw})

    def events(self) -> list[str]:
        return [a["event"] for a in self.emitted]

    async def close(self):
        pass


class FakeHeartbeat:
    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.incarnation = "inc-local"
        self.payloads: list[dict] = []
        self.events: asyncio.Queue = asyncio.Queue()
        self.counters = {"bad_payload": 0}
        self.started = self.closed = False
        self.view = PeerView(PEER, True, (True,), "inc-peer", None, clock.t, None, (0.001,), (0.0,), "", True)

    def peer(self) -> PeerView:
        return self.view

    speak_version = 2  # a peer of this release (the rolling upgrade: tests/membership/test_rolling_upgrade.py)
    peer_version_known = True

    def set_payload(self, payload, limit=None, version=2):  # the real one's ValueError past ``limit``: tests/test_engine_fencing.py
        self.payloads.append(payload)

    def send_now(self):
        pass

    async def start(self):
        self.started = True

    async def close(self):
        self.closed = True


class Script:
    """What a fake driver answers: per operation a Result, an exception to raise, or a delay."""

    def __init__(self):
        self.start = Result(True, "started")
        self.stop = Result(True, "stopped")
        self.raises: dict = {}
        self.delay = 0.0


class FakeDriver:
    def __init__(self, name: str, log: list, probed: ResState = ResState.STOPPED):
        self.name, self.log, self.probed = name, log, probed
        self.script = Script()
        self.seen_deadline = None  # the engine's action deadline while this driver ran

    async def _op(self, op: str) -> Result:
        self.log.append(f"{op} {self.name}")
        if op in self.script.raises:
            raise self.script.raises[op]
        await asyncio.sleep(self.script.delay)
        return getattr(self.script, op)

    async def start(self):
        return await self._op("start")

    async def stop(self):
        return await self._op("stop")

    async def probe(self):
        self.log.append(f"probe {self.name}")
        if "probe" in self.script.raises:
            raise self.script.raises["probe"]
        return ResourceStatus(self.probed, "probed")

    async def monitor(self):
        return Result(True)

    async def watch(self):
        await asyncio.Event().wait()  # no events: the tests drive observations themselves
        yield  # pragma: no cover


class FakeDrbd:
    def __init__(self, name: str, log: list, role="Secondary", connection="Connected"):
        self.log = log
        self.st = DrbdStatus(name, up=True, role=role, peer_role="Secondary" if role == "Primary" else "Primary",
                             disk="UpToDate", peer_disk="UpToDate", connection=connection,
                             replication="Established" if connection == "Connected" else "Off")

    async def status(self):
        return self.st

    async def up(self):
        self.log.append("up r0")
        return Result(True)

    async def promote(self, force=False):
        self.log.append("promote r0")
        return Result(True)

    async def demote(self):
        self.log.append("demote r0")
        return Result(True)

    async def watch(self):
        await asyncio.Event().wait()
        yield  # pragma: no cover


class FakeFencer:
    def __init__(self, outcomes=(), power="unknown"):
        self.outcomes, self.power, self.calls = list(outcomes), power, []

    async def fence(self, node):
        self.calls.append(node)
        return self.outcomes.pop(0)

    async def power_status(self, node):
        return self.power

    def longest(self, node):
        return 20.0


def outcome(ok: bool, message: str = "bmc-2: off, confirmed by status") -> FenceOutcome:
    """A fence outcome as the real Fencer returns it."""
    return FenceOutcome(ok, False, "bmc-2", 1, message, 0.5)


def make_config(tmp_path, **group):
    data = yaml.safe_load((ROOT / "conf" / "hasupd.yaml").read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["groups"][0].update(group)
    os.makedirs(tmp_path / "state", exist_ok=True)
    return configmod.loads(yaml.safe_dump(data), "<engine test>")


def make_engine(tmp_path, *, fencer=None, role="Secondary", connection="Connected", probed=ResState.STOPPED,
                stop_resources_on_exit=False, **group) -> Engine:
    """An Engine over fakes; call inside a running event loop (it makes asyncio Events)."""
    cfg = make_config(tmp_path, **group)
    clock = FakeClock()
    log: list[str] = []
    eng = Engine(cfg, LOCAL, heartbeat=FakeHeartbeat(clock),
                 drivers={n: FakeDriver(n, log, probed) for n in RESOURCES},
                 drbd={"r0": FakeDrbd("r0", log, role, connection)},
                 history=History(cfg.state_dir, node=LOCAL), alerter=FakeAlerter(),
                 store=StateStore(os.path.join(cfg.state_dir, "state.json")), fencer=fencer, clock=clock,
                 stop_resources_on_exit=stop_resources_on_exit)
    eng.log = log
    return eng


def records(eng: Engine, kind: str | None = None) -> list[dict]:
    return [r for r in eng.history.read() if kind is None or r["kind"] == kind]
