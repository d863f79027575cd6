"""A fake hasupd for the control tests: the REAL command table (hasupd.control.commands) over a
fake engine state (prepared views, a real StateStore in a temporary directory), served through
the REAL ControlServer.

    python tests/control/fake_daemon.py --socket PATH --group G [--mode 0660]
        [--view healthy|degraded|movable] [--log FILE] [--move-script started|fails|banned]

Every request it accepts is appended to --log as a JSON line (cmd, args, uid).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import replace

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from hasupd import config as configmod  # noqa: E402
from hasupd.control.commands import Commands  # noqa: E402
from hasupd.history import last_failover, timelines  # noqa: E402
from hasupd.membership.heartbeat import PeerView  # noqa: E402
from hasupd.model import (  # noqa: E402
    Action,
    ActionKind,
    ClusterView,
    DrbdStatus,
    FailCount,
    FenceState,
    MoveIntent,
    NodeState,
    ResourceStatus,
    ResState,
)
from hasupd.state import StateStore  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
P, S = "primarycentos", "secondarycentos"
WALL = 1795545600.0  # 2026-11-24 18:40:00 UTC
NOW = 50_000.0  # monotonic


def reference_config():
    return configmod.load(os.path.join(ROOT, "conf", "hasupd.yaml"))


def _started(detail: str, since: float) -> ResourceStatus:
    return ResourceStatus(ResState.STARTED, detail, since)


def history_records() -> list[dict]:
    """A failover of rg_web an hour before: httpd died on secondarycentos."""
    t0, w0 = NOW - 3600, WALL - 3600
    steps = [("observation", 0.0, S, {"resource": "res_httpd", "state": "failed", "reason": "pid 3121 exited"}),
             ("action-done", 0.09, S, {"action": "stop", "resource": "res_httpd", "ok": True, "duration": 0.08}),
             ("action-done", 0.31, S, {"action": "stop", "resource": "res_filesystem", "ok": True, "duration": 0.2}),
             ("action-done", 0.35, S, {"action": "stop", "resource": "res_vip", "ok": True, "duration": 0.03}),
             ("action-done", 0.45, S, {"action": "demote", "resource": "r0", "ok": True, "duration": 0.1}),
             ("action-done", 0.71, P, {"action": "promote", "resource": "r0", "ok": True, "duration": 0.2}),
             ("action-done", 0.80, P, {"action": "start", "resource": "res_vip", "ok": True, "duration": 0.06}),
             ("action-done", 1.02, P, {"action": "start", "resource": "res_filesystem", "ok": True,
                                       "duration": 0.2}),
             ("action-done", 1.85, P, {"action": "start", "resource": "res_httpd", "ok": True, "duration": 0.8})]
    return [{"kind": kind, "mono": t0 + dt, "wall": w0 + dt, "node": node, "group": "rg_web", **extra}
            for kind, dt, node, extra in steps]


def healthy_view() -> ClusterView:
    drbd_p = DrbdStatus("r0", up=True, role="Primary", peer_role="Secondary", disk="UpToDate",
                        peer_disk="UpToDate", connection="Connected", replication="Established", minor=1)
    drbd_s = replace(drbd_p, role="Secondary", peer_role="Primary")
    since = NOW - 3600 + 1.85
    me = NodeState(P, alive=True, rings=(True,), incarnation="a1b2", drbd={"r0": drbd_p}, settled=True,
                   resources={"res_vip": _started("192.168.0.20/24 on eth0", since),
                              "res_filesystem": _started("/dev/drbd1 on /mnt/data (ext4)", since),
                              "res_httpd": _started("pid 4242, server-status ok 2s ago", since)},
                   claims={"rg_web": 3})
    peer = NodeState(S, alive=True, rings=(True,), incarnation="c3d4", drbd={"r0": drbd_s}, settled=True,
                     resources={"res_vip": ResourceStatus(ResState.STOPPED),
                                "res_filesystem": ResourceStatus(ResState.STOPPED),
                                "res_httpd": ResourceStatus(ResState.STOPPED)})
    return ClusterView(local=P, now=NOW, started_at=NOW - 7200, wall=WALL, nodes={P: me, S: peer},
                       peer_ever_seen=True,
                       fail_counts={(S, "rg_web", "res_httpd"): FailCount(1, WALL - 3600)},
                       bans=frozenset({("rg_web", S)}))


def degraded_view() -> ClusterView:
    """The peer is lost, httpd failed here, a resync runs, maintenance, a move pending."""
    v = healthy_view()
    me = v.me
    drbd = replace(me.drbd["r0"], connection="Connecting", peer_role="Unknown", peer_disk="DUnknown",
                   replication="Off")
    res = dict(me.resources)
    res["res_httpd"] = ResourceStatus(ResState.FAILED, "pid 4242 exited (killed by signal 9)", NOW - 5)
    me = replace(me, drbd={"r0": drbd}, resources=res, standby=True)
    peer = NodeState(S, alive=False, rings=(False,), config_digest="0123456789abcdef")
    return replace(v, nodes={P: me, S: peer}, peer_lost_at=NOW - 30, maintenance=True,
                   moves={"rg_web": MoveIntent(S, 9, True)}, target_roles={"rg_web": "stopped"},
                   blocked={"rg_web": "res_filesystem did not stop within 240s"},
                   fencing=FenceState.NONE)


def movable_view() -> ClusterView:
    """Healthy, and nothing keeps rg_web off secondarycentos: a move there has steps here."""
    return replace(healthy_view(), fail_counts={}, bans=frozenset())


VIEWS = {"healthy": healthy_view, "degraded": degraded_view, "movable": movable_view}


class FakeAlerter:
    recent = [{"wall": WALL - 3600, "event": "resource_failed", "severity": "warning",
               "message": "res_httpd failed: pid 3121 exited"},
              {"wall": WALL - 3598, "event": "failover_finished", "severity": "info",
               "message": "rg_web answers on primarycentos after 1.85s"}]
    dropped = 0
    agent_failures = 0

    def emit(self, event, severity, message, **kw):
        pass


class FakeHistory:
    """The failover of history_records(); intents are kept in memory."""

    def __init__(self):
        self.intents: list[dict] = []

    def record(self, kind, **fields):
        self.intents.append({"kind": kind, **fields})

    async def report(self, since_wall, limit):
        records = [r for r in history_records() if since_wall is None or r["wall"] >= since_wall]
        return {"records": records[-limit:], "timelines": timelines(records)}

    async def last_failovers(self, groups):
        return {g: last_failover(history_records(), g) for g in groups}


class FakeClock:
    monotonic = staticmethod(lambda: NOW)
    wall = staticmethod(lambda: WALL)


class FakeHeartbeat:
    def __init__(self, view: ClusterView):
        self.incarnation = view.me.incarnation
        peer = view.nodes[S]
        self.view = PeerView(S, peer.alive, peer.rings, peer.incarnation, None, None, view.peer_lost_at,
                             (0.00042,) if peer.alive else (None,), (0.0,), "", True)

    def peer(self) -> PeerView:
        return self.view


class FakeEngine:
    """The engine's state as the control commands read and change it: a prepared view, a real
    StateStore in a temporary directory, and no drivers."""

    def __init__(self, view_name: str, state_dir: str):
        self.cfg = reference_config()
        self.prepared = VIEWS[view_name]()
        self.local, self.peer_name = P, S
        self.clock, self.started_at = FakeClock(), self.prepared.started_at
        self.heartbeat, self.alerter, self.history = FakeHeartbeat(self.prepared), FakeAlerter(), FakeHistory()
        self.store = StateStore(os.path.join(state_dir, "state.json"))
        self.acting = None if view_name != "degraded" else \
            Action(ActionKind.STOP, "rg_web", "res_filesystem", "rg_web must stop here: res_httpd failed")
        self.fencer, self.metrics, self.state_unsaved = None, None, ""
        self.drivers: dict = {}  # no driver is acting: status shows no "waiting for" line
        self.resources = dict(self.prepared.me.resources)
        self.drbd_status = {"r0": replace(healthy_view().me.drbd["r0"], replication="SyncSource",
                                          sync_percent=88.8, sync_eta_s=60.0, peer_disk="Inconsistent")}
        self.drbd = dict(self.drbd_status)

    def view(self) -> ClusterView:
        return self.prepared

    def save_state(self):
        self.store.save()

    def changed(self):
        pass


def status_for(view_name: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="fake-hasupd-") as d:
        return asyncio.run(Commands(FakeEngine(view_name, d), pid=4100).handle("status", {}))["status"]


async def serve(args) -> None:
    from hasupd.control.server import ControlServer

    state_dir = tempfile.mkdtemp(prefix="fake-hasupd-")
    commands = Commands(FakeEngine(args.view, state_dir), pid=4100)
    real_status = commands.table["status"]
    moves = {"polls": 0}

    async def status_while_moving(params):  # the status a --wait poller sees: scripted after a move
        out = await real_status(params)
        if commands.eng.store.state.moves_view():
            moves["polls"] += 1
            return {"status": _moving(out["status"], moves["polls"], args.move_script)}
        return out

    if args.move_script:
        commands.table["status"] = status_while_moving

    async def handler(cmd, params, peer):
        if args.log:
            with open(args.log, "a") as f:
                f.write(json.dumps({"cmd": cmd, "args": params, "uid": peer.uid}) + "\n")
        return await commands.handle(cmd, params, peer)

    server = ControlServer(args.socket, args.group, handler, mode=int(args.mode, 8))
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await server.close()
    shutil.rmtree(state_dir, ignore_errors=True)


def _moving(status: dict, polls: int, script: str) -> dict:
    """The status a --wait poller sees while rg_web moves (or fails to)."""
    st = json.loads(json.dumps(status))
    g = st["groups"][0]
    if polls < 3:
        g.update(state="partial", pending_move={"node": S, "epoch": 10, "pin": False})
    elif script == "started":
        g.update(state="started", node=S, pending_move=None)
    elif script == "banned":  # the start failed on the target: fail count + ban, back on the first node
        g.update(state="started", node=P, pending_move={"node": S, "epoch": 10, "pin": False},
                 fail_counts=g["fail_counts"] + [{"node": S, "resource": "res_vip", "count": 1,
                                                  "last_failure_wall": WALL}],
                 explain="rg_web runs on primarycentos; secondarycentos could not start res_vip")
    else:
        g.update(state="stopped", node=None, pending_move=None,
                 explain="rg_web cannot run on secondarycentos: promotion of r0 failed (Need access to UpToDate data)")
    return st


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--socket", required=True)
    p.add_argument("--group", default="hasupd")
    p.add_argument("--mode", default="0660")
    p.add_argument("--view", default="healthy", choices=tuple(VIEWS))
    p.add_argument("--log")
    p.add_argument("--move-script", choices=("started", "fails", "banned"))
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
