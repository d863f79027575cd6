"""The daemon's side of hasupctl: one handler per command, over the engine's state.

``Commands(engine).handle(cmd, args, peer)`` is what the ControlServer calls (it has
checked the caller's permission).  An operator intent changes the state store, is saved,
recorded and published at once; a read (status, explain, history) changes nothing.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

from hasupd import planner, redact
from hasupd.model import ResourceStatus, ResState, to_dict

OUTDATE_WAIT = 10.0  # s: a fence-peer request waits this long for the live peer to outdate itself


class ControlError(Exception):
    """A request that cannot be done; the message goes back to hasupctl."""


class Commands:
    def __init__(self, engine, pid: int | None = None):
        self.eng = engine
        self.pid = pid or os.getpid()  # the daemon's, in the status (a test daemon shows a fixed one)
        self.table = {
            "status": self.cmd_status,
            "explain": lambda a: {"explain": planner.explain(self.eng.cfg, self.eng.view())},
            "history": self.cmd_history,
            "move": self.cmd_move,
            "clear": lambda a: self.intent(self.eng.store.clear(self.group_arg(a)), "clear", a),
            "cleanup": self.cmd_cleanup,
            "standby": lambda a: self.intent(self.eng.store.standby(self.node_arg(a), True), "standby", a),
            "unstandby": lambda a: self.intent(self.eng.store.standby(self.node_arg(a), False), "unstandby", a),
            "maintenance": lambda a: self.intent(self.eng.store.maintenance(bool(a.get("on"))), "maintenance", a),
            "start": lambda a: self.intent(self.eng.store.start_group(self.group_arg(a)), "start", a),
            "stop": lambda a: self.intent(self.eng.store.stop_group(self.group_arg(a)), "stop", a),
            "drbd-status": lambda a: {"drbd": {n: to_dict(s) for n, s in self.eng.drbd_status.items()}},
            "drbd-fence-peer": self.cmd_fence_peer,
            "drbd-unfence-peer": lambda a: {},
            "alert": self.cmd_alert,
            "drbd-init": self.cmd_drbd_init,
            "fence-test": self.cmd_fence_test,
            "fence": self.cmd_fence,
            "promote-force": self.cmd_promote_force,
        }

    async def handle(self, cmd: str, args: dict, peer=None) -> dict:
        """One hasupctl request (permissions are checked by the server)."""
        fn = self.table.get(cmd)
        if self.eng.metrics is not None:
            self.eng.metrics.control_request(cmd if fn is not None else "unknown")
        if fn is None:
            return {"ok": False, "error": f"unknown command {cmd!r}"}
        try:
            out = fn(args)
            if asyncio.iscoroutine(out):
                out = await out
        except ControlError as e:
            return {"ok": False, "error": str(e)}
        return {"ok": True, **(out or {})}

    # ------------------------------------------------------------ arguments

    def group_arg(self, args: dict) -> str:
        cfg = self.eng.cfg
        name = args.get("group")
        if not name and len(cfg.groups) == 1:
            return cfg.groups[0].name
        if cfg.group(name or "") is None:
            raise ControlError(f"no group {name!r} (groups: {', '.join(g.name for g in cfg.groups)})")
        return name

    def node_arg(self, args: dict) -> str:
        cfg = self.eng.cfg
        node = args.get("node") or self.eng.local
        if node not in cfg.node_names():
            raise ControlError(f"no node {node!r} (nodes: {', '.join(cfg.node_names())})")
        return node

    # ------------------------------------------------------------ operator intents

    def intent(self, changed: bool, what: str, args: dict) -> dict:
        if changed:
            self.eng.save_state()
            self.eng.history.record("intent", action=what, reason=f"operator: {what} "
                                    + " ".join(f"{k}={v}" for k, v in sorted(args.items()) if k != "cmd"))
            self.eng.changed()
        return {"changed": changed}

    def owner_of(self, group: str) -> str | None:
        """Where the group runs now, by the claims both nodes publish."""
        best = None
        for name, node in self.eng.view().nodes.items():
            epoch = node.claims.get(group)
            if epoch is not None and (name == self.eng.local or node.alive):
                if best is None or epoch > best[0]:
                    best = (epoch, name)
        return best[1] if best else None

    def cmd_move(self, args: dict) -> dict:
        eng = self.eng
        group = self.group_arg(args)
        node = args.get("node")
        if not node:
            owner = self.owner_of(group)
            if owner is None:
                raise ControlError(f"{group} runs nowhere: say where to move it (hasupctl move {group} NODE)")
            node = eng.cfg.peer_of(owner)
        node = self.node_arg({"node": node})
        if args.get("dry_run"):
            st = eng.store.state.move(group, node, bool(args.get("pin")))
            view = replace(eng.view(), moves=st.moves_view())
            steps = [{"action": a.kind.value, "resource": a.resource, "reason": a.reason}
                     for a in planner.decide(eng.cfg, view)]
            return {"dry_run": True, "node": node, "steps_here": steps}
        out = self.intent(eng.store.move(group, node, bool(args.get("pin"))), "move", {**args, "node": node})
        return {**out, "node": node}

    def cmd_cleanup(self, args: dict) -> dict:
        eng = self.eng
        group = self.group_arg(args) if args.get("group") else None
        node = self.node_arg(args) if args.get("node") else None
        out = self.intent(eng.store.cleanup(group, node), "cleanup", args)
        for g in eng.cfg.groups:
            if group in (None, g.name):
                for r in g.resources:
                    if eng.resources[r.name].state in (ResState.FAILED, ResState.STOP_FAILED):
                        eng.resources[r.name] = ResourceStatus(ResState.UNKNOWN, "cleaned up: probing")
                        asyncio.get_running_loop().create_task(self._reprobe(r.name))
        return out

    async def _reprobe(self, name: str) -> None:
        self.eng.resources[name] = await self.eng.intake.probe(name)
        self.eng.changed()

    # ------------------------------------------------------------ reads

    async def cmd_history(self, args: dict) -> dict:
        return await self.eng.history.report(args.get("since"), int(args.get("limit", 2000)))

    async def cmd_status(self, args: dict) -> dict:
        from hasupd.status import build_status
        eng = self.eng
        last_failovers = await eng.history.last_failovers([g.name for g in eng.cfg.groups])
        view = eng.view()
        peer = eng.heartbeat.peer()
        rings = [{"peer_heard": up, "rtt_ms": round(rtt * 1000, 2) if rtt is not None else None,
                  "loss_pct": round(loss * 100, 1)}
                 for up, rtt, loss in zip(peer.rings, peer.rtt, peer.loss)]
        started_wall = eng.clock.wall() - (eng.clock.monotonic() - eng.started_at)
        return redact.value({"status": build_status(
            eng.cfg, view, explains=planner.explain(eng.cfg, view), rings=rings, last_failovers=last_failovers,
            acting=eng.acting, alerter=eng.alerter, fencer=eng.fencer,
            acting_waits_on=getattr(eng.drivers.get(eng.acting.resource or ""), "waits_on", "") if eng.acting else "",
            warnings=list(eng.cfg.warnings) + ([eng.state_unsaved] if eng.state_unsaved else []),  # the daemon's own
            daemon={"pid": self.pid, "started_wall": started_wall, "incarnation": eng.heartbeat.incarnation})})

    def cmd_promote_force(self, args: dict) -> dict:
        """An operator forces (or, with on false, withdraws) the promotion of a DRBD resource whose
        data the planner refuses (not UpToDate, or a stale copy): used up once it is Primary."""
        res = args.get("resource")
        if res not in self.eng.drbd:
            raise ControlError(f"no DRBD resource {res!r} (resources: {', '.join(sorted(self.eng.drbd))})")
        on = args.get("on", True) is not False
        return self.intent(self.eng.store.force_promotion(res, on), "promote-force", args)

    # ------------------------------------------------------------ alerts and fencing

    def cmd_alert(self, args: dict) -> dict:
        self.eng.alerter.emit(args.get("event") or "external", args.get("severity") or "warning",
                              args.get("reason") or args.get("message") or "", resource=args.get("resource"))
        return {}

    async def cmd_fence_peer(self, args: dict) -> dict:
        """DRBD's fence-peer handler (guard drbd): decided by fence_peer_verdict, step by step: ask
        the live peer to outdate itself and wait for its heartbeat to show it, or fence the silent
        peer with the devices; every doubt answers "unknown" (exit 1: no promotion, I/O frozen)."""
        from hasupd.resources.drbd_handler import FenceVerdict, fence_peer_verdict
        eng, pf = self.eng, self.eng.peer_fencing
        res = args.get("resource") or ""
        if res not in eng.drbd:
            raise ControlError(f"no DRBD resource {res!r} in the configuration")
        deadline = eng.clock.monotonic() + OUTDATE_WAIT
        fenced_once = False
        try:
            while True:
                peer = eng.peer_state()
                view = eng.view()
                v = fence_peer_verdict(peer.alive, peer.drbd.get(res), eng.cfg.split_brain_guard.mode,
                                       view.fencing, tiebreaker=view.tiebreaker, resource=res,
                                       devices=view.fence.devices, peer_power=view.fence.peer_power)
                if v.fence_peer and not fenced_once:
                    fenced_once = True
                    await pf.fence_peer(f"DRBD's fence-peer handler for {res}: {v.detail}")
                    continue
                if v.fence_peer:
                    v = FenceVerdict("unknown", f"{v.detail}, but fencing it failed")
                elif v.ask_peer_to_outdate and eng.clock.monotonic() < deadline:
                    if res not in pf.outdate_requests:
                        pf.outdate_requests.add(res)
                        eng.publish()
                    await asyncio.sleep(0.1)  # its answer is its next heartbeat (its disk Outdated)
                    continue
                elif v.ask_peer_to_outdate:
                    v = FenceVerdict("unknown", f"{v.detail}, and it did not within {OUTDATE_WAIT:g}s")
                break
        finally:
            if res in pf.outdate_requests:
                pf.outdate_requests.discard(res)
                eng.publish()
        eng.history.record("observation", state="fence_peer", resource=res, reason=f"{v.verdict}: {v.detail}")
        return {"verdict": v.verdict, "detail": v.detail}

    async def cmd_fence_test(self, args: dict) -> dict:
        if self.eng.fencer is None:
            raise ControlError("no fencing configured (a 'fencing:' section with devices)")
        node = self.node_arg(args) if args.get("node") else None
        return {"tests": await self.eng.fencer.test(node)}

    async def cmd_fence(self, args: dict) -> dict:
        """Fence a node by hand (hasupctl fence NODE --yes-really)."""
        eng = self.eng
        if eng.fencer is None:
            raise ControlError("no fencing configured (a 'fencing:' section with devices)")
        node = self.node_arg(args)
        if node == eng.local:
            raise ControlError(f"{node} is this node: fence it from {eng.peer_name}")
        eng.history.record("intent", action="fence", reason=f"operator: fence {node}")
        outcome = await eng.fencer.fence(node)
        eng.alerter.emit("fence_result", "warning" if outcome.ok else "critical", f"operator fence: {outcome.message}")
        return {"fence": {"ok": outcome.ok, "already_off": outcome.already_off, "device": outcome.device,
                          "level": outcome.level, "message": outcome.message,
                          "duration": round(outcome.duration, 3)}}

    async def cmd_drbd_init(self, args: dict) -> dict:
        raise ControlError("drbd init is not wired yet")
