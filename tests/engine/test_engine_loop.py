"""The engine's own contract over fakes: adoption after a restart (state.json and the probes),
reading the view changes nothing, a round that raises never ends the engine, a plan that just
failed is retried only after the back-off, the peer's loss leads to the takeover plan, and
--stop-resources-on-exit stops in the planner's order."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

from engine_fakes import GROUP, LOCAL, PEER, RESOURCES, make_engine, records

from hasupd import engine as enginemod
from hasupd import planner
from hasupd.control.commands import Commands
from hasupd.membership import report
from hasupd.model import Action, ActionKind, ResourceStatus, ResState
from hasupd.resources.base import Result
from hasupd.state import StateStore


def run(coro):
    return asyncio.run(coro)


def write_state(tmp_path, **changes) -> str:
    """A state.json as a node that ran rg_web (claim 4) left it."""
    path = str(tmp_path / "state" / "state.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    store = StateStore(path)
    store.load()
    store.record_claim(LOCAL, GROUP, 4)
    for what, args in changes.items():
        getattr(store, what)(*args)
    store.save()
    return path


def peer_gone(eng, ago: float, claims=None) -> None:
    """The peer silent for `ago` seconds (its last report: it held `claims`)."""
    hb = eng.heartbeat
    hb.view = replace(hb.view, alive=False, rings=(False,), lost_at=eng.clock.monotonic() - ago)
    if claims is not None:
        eng.intake.take_peer_payload({"node": {"name": PEER, "settled": True, "claims": claims, "resources": {
            r: {"state": "started"} for r in RESOURCES}}})


def test_adoption_after_a_restart_disturbs_nothing(tmp_path):
    """What runs is adopted: the claim from state.json, the resources from their probes, DRBD's role
    from its status; the first rounds start or stop nothing."""
    write_state(tmp_path)

    async def main():
        eng = make_engine(tmp_path, role="Primary", probed=ResState.STARTED)
        eng.started_at -= 1000  # past initdead
        await eng.start()
        for t in eng.tasks:
            t.cancel()
        await eng.reconcile()
        eng.clock.advance(2)
        await eng.reconcile()
        return eng

    eng = run(main())
    assert eng.claims == {GROUP: 4}
    assert all(eng.resources[r].state == ResState.STARTED for r in RESOURCES)
    assert eng.log == ["up r0", *(f"probe {r}" for r in RESOURCES)]  # no start, no stop, no promote
    assert records(eng, "start")[0]["resources"] == {r: "started" for r in RESOURCES}
    assert eng.heartbeat.started and report.unpack(eng.heartbeat.payloads[-1]["N"]).claims == {GROUP: 4}


def test_adoption_keeps_fail_counts_and_bans_from_state_json(tmp_path):
    write_state(tmp_path, record_failure=(PEER, GROUP, "res_httpd", 1_800_009_900.0), ban=(GROUP, PEER))

    async def main():
        eng = make_engine(tmp_path)
        await eng.start()
        for t in eng.tasks:
            t.cancel()
        return eng.view()

    view = run(main())
    assert view.fail_counts[(PEER, GROUP, "res_httpd")].count == 1
    assert (GROUP, PEER) in view.bans


def test_a_probe_that_raises_leaves_the_resource_unknown(tmp_path):
    async def main():
        eng = make_engine(tmp_path)
        eng.drivers["res_httpd"].script.raises = {"probe": ValueError("NUL in a parameter")}
        await eng.start()
        for t in eng.tasks:
            t.cancel()
        return eng

    eng = run(main())
    assert eng.resources["res_httpd"].state == ResState.UNKNOWN
    assert eng.internal_errors == 1 and "internal_error" in eng.alerter.events()


def test_reading_the_view_and_the_status_leaves_state_json_untouched(tmp_path):
    """view() used to expire fail counts and raise the claim floor and write state.json, so
    `hasupctl status` could rewrite the file: now a read is only a read."""
    path = write_state(tmp_path, record_failure=(LOCAL, GROUP, "res_httpd", 1_000.0))  # long expired
    os.utime(path, (1_000_000_000, 1_000_000_000))
    before = open(path, "rb").read()

    async def main():
        eng = make_engine(tmp_path)
        eng.store.load()
        eng.claims = {GROUP: 9}  # above the persisted floor
        view = eng.view()
        cmds = Commands(eng)
        await cmds.handle("status", {})
        await cmds.handle("explain", {})
        await cmds.handle("move", {"group": GROUP, "node": PEER, "dry_run": True})
        return eng, view

    eng, view = run(main())
    assert view.fail_counts == {} and view.epoch_floor >= 9  # the view shows it as it will be
    assert open(path, "rb").read() == before
    assert os.stat(path).st_mtime == 1_000_000_000


def test_a_round_persists_what_the_view_only_showed(tmp_path):
    path = write_state(tmp_path, record_failure=(LOCAL, GROUP, "res_httpd", 1_000.0))

    async def main():
        eng = make_engine(tmp_path)
        eng.store.load()
        eng.claims = {GROUP: 9}
        await eng.reconcile()
        return eng

    run(main())
    saved = StateStore(path)
    saved.load()
    assert saved.state.claim_floor >= 9
    assert saved.state.fail_counts_view() == {}


def test_an_exception_in_a_round_never_ends_the_engine(tmp_path, monkeypatch):
    monkeypatch.setattr(enginemod, "RETRY_BACKOFF", 0.01)
    monkeypatch.setattr(enginemod, "TICK", 0.01)
    calls = []
    real = planner.decide

    def decide(cfg, view):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("a planner bug")
        return real(cfg, view)

    monkeypatch.setattr(planner, "decide", decide)

    async def main():
        eng = make_engine(tmp_path)
        for _ in range(3):
            await eng.one_round()
        return eng

    eng = run(main())
    assert len(calls) == 3  # the rounds after the bug ran
    assert eng.internal_errors == 1
    assert records(eng, "internal-error")[0]["reason"] == "KeyError: 'a planner bug'"
    assert "internal_error" in eng.alerter.events()


def test_a_plan_that_just_failed_waits_for_the_back_off(tmp_path, monkeypatch):
    """The same failing plan is not hammered: the next identical round runs only after
    RETRY_BACKOFF on the engine's clock."""
    plan = [Action(ActionKind.START, GROUP, "res_vip", "test")]
    monkeypatch.setattr(planner, "decide", lambda cfg, view: plan)

    async def main():
        eng = make_engine(tmp_path)
        eng.drivers["res_vip"].script.start = Result(False, "address in use")
        ran = []
        for dt in (0.0, 0.5, enginemod.RETRY_BACKOFF):
            eng.clock.advance(dt)
            n = len(eng.log)
            await eng.reconcile()
            ran.append(eng.log[n:])
        return ran

    assert run(main()) == [["start res_vip"], [], ["start res_vip"]]


def test_peer_loss_leads_to_the_takeover_plan_executed_in_order(tmp_path):
    async def main():
        eng = make_engine(tmp_path, connection="Connecting")
        eng.started_at -= 1000
        eng.settled = True
        eng.peer_ever_seen = True
        eng.resources = {r: ResourceStatus(ResState.STOPPED) for r in RESOURCES}  # probed
        eng.drbd_status["r0"] = eng.drbd["r0"].st
        eng.store.observe_copy(GROUP, 0, 3, True)  # the peer's claim 3 was seen in sync: no stale copy (rule 13)
        peer_gone(eng, 60, claims={GROUP: 3})
        await eng.reconcile()
        return eng

    eng = run(main())
    assert eng.log == ["promote r0", "start res_vip", "start res_filesystem", "start res_httpd"]
    assert eng.claims[GROUP] > 3
    events = eng.alerter.events()
    assert "failover_started" in events and "failover_finished" in events
    assert [r["state"] for r in records(eng, "observation")] == ["takeover"]


def test_stop_on_exit_stops_in_the_planners_order_and_drops_the_claim(tmp_path):
    async def main():
        eng = make_engine(tmp_path, role="Primary", probed=ResState.STARTED, stop_resources_on_exit=True)
        for r in RESOURCES:
            eng.resources[r] = replace(eng.resources[r], state=ResState.STARTED)
        eng.resources["res_filesystem"] = replace(eng.resources["res_filesystem"], state=ResState.UNKNOWN)
        eng.drbd_status["r0"] = await eng.drbd["r0"].status()
        eng.claims = {GROUP: 4}
        await eng.shutdown()
        return eng

    eng = run(main())
    assert eng.log == ["stop res_httpd", "stop res_filesystem", "stop res_vip", "demote r0"]
    assert eng.claims == {} and eng.heartbeat.closed
    assert records(eng, "stop")


def test_run_starts_and_a_stop_request_ends_it(tmp_path):
    async def main():
        eng = make_engine(tmp_path)
        task = asyncio.create_task(eng.run())
        for _ in range(200):
            if eng.settled:
                break
            await asyncio.sleep(0.01)
        eng.request_stop()
        await asyncio.wait_for(task, 30)
        return eng

    eng = run(main())
    kinds = [r["kind"] for r in records(eng)]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    assert all(t.done() for t in eng.tasks)
