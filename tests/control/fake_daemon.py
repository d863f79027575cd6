"""A fake hasupd for the control tests: canned answers served through the
REAL ControlServer, status built by the REAL build_status from prepared views.

    python tests/control/fake_daemon.py --socket PATH --group G [--mode 0660]
        [--view healthy|degraded] [--log FILE] [--move-script started|fails]

Every request it accepts is appended to --log as a JSON line (cmd, args, uid).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from dataclasses import replace

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from hasupd import config as configmod  # noqa: E402
from hasupd.history import last_failover  # noqa: E402
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
    to_dict,
)
from hasupd.status import build_status  # noqa: E402

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


class FakeAlerter:
    recent = [{"wall": WALL - 3600, "event": "resource_failed", "severity": "warning",
               "message": "res_httpd failed: pid 3121 exited"},
              {"wall": WALL - 3598, "event": "failover_finished", "severity": "info",
               "message": "rg_web answers on primarycentos after 1.85s"}]
    dropped = 0
    agent_failures = 0


def status_for(view_name: str) -> dict:
    cfg = reference_config()
    view = healthy_view() if view_name == "healthy" else degraded_view()
    explains = {"rg_web": "rg_web stays on primarycentos: it runs there and stickiness is INFINITY"} \
        if view_name == "healthy" else \
        {"rg_web": "rg_web is blocked: res_filesystem did not stop; nothing moves until `hasupctl cleanup rg_web`"}
    rings = [{"peer_heard": True, "rtt_ms": 0.42, "loss_pct": 0.0}] if view_name == "healthy" else None
    acting = None if view_name == "healthy" else \
        Action(ActionKind.STOP, "rg_web", "res_filesystem", "rg_web must stop here: res_httpd failed")
    failovers = {g.name: last_failover(history_records(), g.name) for g in cfg.groups}
    return build_status(cfg, view, explains=explains, rings=rings, last_failovers=failovers, acting=acting,
                        alerter=FakeAlerter(), daemon={"pid": 4100, "started_wall": WALL - 7200,
                                                       "incarnation": "a1b2", "version": "0.1.0"})


async def serve(args) -> None:
    from hasupd.control.server import ControlServer

    status = status_for(args.view)

    def log(cmd, params, peer):
        if args.log:
            with open(args.log, "a") as f:
                f.write(json.dumps({"cmd": cmd, "args": params, "uid": peer.uid}) + "\n")

    moves = {"polls": 0}

    async def handler(cmd, params, peer):
        log(cmd, params, peer)
        if cmd == "status":
            if args.move_script and moves.get("requested"):
                moves["polls"] += 1
                return {"status": _moving(status, moves["polls"], args.move_script)}
            return {"status": status}
        if cmd == "history":
            return {"records": [r for r in history_records()
                                if params.get("since") is None or r["wall"] >= params["since"]]}
        if cmd == "move":
            if params.get("group") != "rg_web":
                return {"ok": False, "error": f"no group {params.get('group')!r}"}
            target = params.get("node") or S
            if params.get("dry_run"):  # the engine's answer: the planner's steps on this node
                return {"dry_run": True, "node": target,
                        "steps_here": [{"action": "stop", "resource": "res_httpd", "reason": "move"},
                                       {"action": "stop", "resource": "res_filesystem", "reason": "move"},
                                       {"action": "stop", "resource": "res_vip", "reason": "move"},
                                       {"action": "demote", "resource": "r0", "reason": "move"},
                                       {"action": "release", "resource": None, "reason": "move"}]}
            moves["requested"] = target
            return {"node": target, "message": f"rg_web: moving to {target}"}
        if cmd == "explain":
            return {"explain": {g["name"]: g["explain"] for g in status["groups"]}}
        if cmd == "drbd-status":
            d = to_dict(replace(healthy_view().me.drbd["r0"], replication="SyncSource", sync_percent=88.8,
                                sync_eta_s=60.0, peer_disk="Inconsistent"))
            return {"drbd": {"r0": d}}
        if cmd == "unstandby" and params.get("node") == "primarycentos":
            return {"changed": False}
        if cmd == "boom":
            raise RuntimeError("never reached: unknown commands are refused before the handler")
        if cmd == "cleanup" and params.get("group") == "explode":
            raise RuntimeError("handler bug")
        if cmd == "clear" and params.get("group") == "weird":
            return ["not", "a", "dict"]
        return {"message": f"{cmd} done"}

    server = ControlServer(args.socket, args.group, handler, mode=int(args.mode, 8))
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await server.close()


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
    p.add_argument("--view", default="healthy", choices=("healthy", "degraded"))
    p.add_argument("--log")
    p.add_argument("--move-script", choices=("started", "fails", "banned"))
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
