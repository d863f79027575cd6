"""Intake (heartbeat events by type, observations, peer reports), the control commands over the
engine's state, and the peer fencing's records, all over fakes."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from engine_fakes import GROUP, LOCAL, PEER, FakeFencer, make_engine, outcome, records

from hasupd.control.commands import Commands
from hasupd.intake import DrbdSeen, LinkSeen, ResourceSeen, TiebreakerSeen
from hasupd.membership import heartbeat as hb
from hasupd.model import Action, ActionKind, FenceState, ResourceStatus, ResState


def run(coro):
    return asyncio.run(coro)


# ---------------------------------------------------------------- intake


def test_heartbeat_events_are_dispatched_by_type(tmp_path):
    async def main():
        eng = make_engine(tmp_path)
        for ev in (hb.RingError(0, "bind: address not available"), hb.RingError(0, "bind: address not available"),
                   hb.RingUp(0), hb.PeerDead(1.0), object()):
            eng.intake.membership_event(ev)
        return eng

    eng = run(main())
    # the same socket error is alerted once; an unknown event type is ignored, never fatal
    assert eng.alerter.events() == ["ring_error", "ring_healthy", "peer_lost"]
    assert [r["state"] for r in records(eng, "observation")] == ["peer_dead"]
    assert eng.wake.is_set()


def test_peer_alive_marks_the_peer_seen_and_clears_the_fence_state(tmp_path):
    async def main():
        eng = make_engine(tmp_path)
        eng.peer_fencing.state = FenceState.FAILED
        eng.intake.membership_event(hb.PeerAlive("inc-2", True))
        return eng

    eng = run(main())
    assert eng.peer_ever_seen and eng.peer_fencing.state == FenceState.NONE
    assert eng.alerter.events() == ["peer_restarted"]


def test_a_malformed_peer_report_is_dropped_and_counted_once_alerted(tmp_path):
    async def main():
        eng = make_engine(tmp_path)
        eng.intake.take_peer_payload({"node": {"name": PEER, "claims": {GROUP: 2}}})
        for bad in ({"node": {"name": PEER, "drbd": []}}, ["not", "a", "dict"]):
            eng.intake.take_peer_payload(bad)
        return eng

    eng = run(main())
    assert eng.heartbeat.counters["bad_payload"] == 2
    assert eng.alerter.events() == ["bad_payload"]
    assert eng.peer_state().claims == {GROUP: 2}  # the last good report stays


def test_a_watched_failure_is_counted_recorded_and_alerted(tmp_path):
    async def main():
        eng = make_engine(tmp_path)
        eng.resources["res_httpd"] = ResourceStatus(ResState.STARTED, "pid 1")
        eng.intake.take(ResourceSeen("res_httpd", ResState.FAILED, "pid 1 exited"))
        return eng

    eng = run(main())
    assert eng.resources["res_httpd"].state == ResState.FAILED
    assert eng.store.state.fail_counts_view()[(LOCAL, GROUP, "res_httpd")].count == 1
    assert records(eng, "observation")[0]["reason"] == "pid 1 exited"
    assert eng.alerter.events() == ["resource_failed"]


def test_a_stop_failure_stays_until_a_successful_stop(tmp_path):
    async def main():
        eng = make_engine(tmp_path)
        eng.resources["res_filesystem"] = ResourceStatus(ResState.STOP_FAILED, "umount: target is busy")
        eng.intake.take(ResourceSeen("res_filesystem", ResState.STARTED, "mounted"))
        after_started = eng.resources["res_filesystem"].state
        eng.intake.take(ResourceSeen("res_filesystem", ResState.STOPPED, "not mounted"))
        return after_started, eng.resources["res_filesystem"].state

    assert run(main()) == (ResState.STOP_FAILED, ResState.STOPPED)


def test_drbd_link_and_tiebreaker_observations_change_the_view_once(tmp_path):
    async def main():
        eng = make_engine(tmp_path)
        lost = replace(eng.drbd["r0"].st, connection="Connecting", peer_role="Unknown", peer_disk="DUnknown")
        for obs in (DrbdSeen("r0", lost), DrbdSeen("r0", lost), LinkSeen("res_vip", "eth0 has no carrier"),
                    LinkSeen("res_vip", "eth0 has no carrier"), TiebreakerSeen(False), TiebreakerSeen(False)):
            eng.intake.take(obs)
        seen = (eng.view(), eng.peer_fencing.drbd_lost.get("r0"), list(eng.alerter.events()))
        eng.intake.take(LinkSeen("res_vip", ""))
        return eng, seen

    eng, (view, drbd_lost_at, events) = run(main())
    assert view.me.drbd["r0"].connection == "Connecting"
    assert drbd_lost_at == eng.clock.monotonic()  # when DRBD stopped being connected (the fence race)
    assert view.me.link_down == {"res_vip": "eth0 has no carrier"}
    assert events == ["link_down", "tiebreaker"]  # each change alerted once
    assert eng.link_down == {} and eng.alerter.events()[-1] == "link_up"


# ---------------------------------------------------------------- control commands


def test_an_intent_is_saved_recorded_and_published(tmp_path):
    async def main():
        eng = make_engine(tmp_path)
        eng.store.load()
        out = await Commands(eng).handle("move", {"group": GROUP, "node": PEER})
        return eng, out

    eng, out = run(main())
    assert out == {"ok": True, "changed": True, "node": PEER}
    assert eng.store.state.moves_view()[GROUP].node == PEER
    assert (tmp_path / "state" / "state.json").exists()
    assert records(eng, "intent")[0]["action"] == "move"
    assert eng.heartbeat.payloads and eng.wake.is_set()


def test_commands_refuse_what_they_cannot_do(tmp_path):
    async def main():
        eng = make_engine(tmp_path)
        cmds = Commands(eng)
        return [await cmds.handle("reboot-everything", {}), await cmds.handle("clear", {"group": "rg_nope"}),
                await cmds.handle("standby", {"node": "node9"}), await cmds.handle("fence", {"node": PEER})]

    unknown, group, node, fence = run(main())
    assert unknown == {"ok": False, "error": "unknown command 'reboot-everything'"}
    assert group == {"ok": False, "error": "no group 'rg_nope' (groups: rg_web)"}
    assert node["ok"] is False and "no node 'node9'" in node["error"]
    assert fence == {"ok": False, "error": "no fencing configured (a 'fencing:' section with devices)"}


def test_cleanup_reprobes_failed_resources(tmp_path):
    async def main():
        eng = make_engine(tmp_path)
        eng.resources["res_httpd"] = ResourceStatus(ResState.FAILED, "gone")
        out = await Commands(eng).handle("cleanup", {"group": GROUP})
        await asyncio.sleep(0.05)
        return eng, out

    eng, out = run(main())
    assert out["ok"]
    assert "probe res_httpd" in eng.log and eng.resources["res_httpd"].state == ResState.STOPPED


def test_status_is_built_from_the_engine_state(tmp_path):
    async def main():
        eng = make_engine(tmp_path)
        eng.state_unsaved = "cannot write the state file: No space left on device"
        return await Commands(eng).handle("status", {})

    out = run(main())
    st = out["status"]
    assert out["ok"] and st["local"] == LOCAL and st["hasupd"]["incarnation"] == "inc-local"
    assert "cannot write the state file: No space left on device" in st["warnings"]


# ---------------------------------------------------------------- fencing


def test_fence_results_are_recorded(tmp_path):
    fencer = FakeFencer([outcome(False, "bmc-2: timed out"), outcome(True)])

    async def main():
        eng = make_engine(tmp_path, fencer=fencer)
        eng.heartbeat.view = replace(eng.heartbeat.view, alive=False, lost_at=eng.clock.monotonic() - 30)
        first = await eng.executor.execute(Action(ActionKind.FENCE, None, PEER, "peer lost"))
        after_failure = (eng.view().fencing, eng.peer_fencing.facts.attempts)
        second = await eng.executor.execute(Action(ActionKind.FENCE, None, PEER, "peer lost"))
        return eng, first, second, after_failure

    eng, first, second, after_failure = run(main())
    assert (first, second) == (False, True)
    assert after_failure == (FenceState.FAILED, 1)
    assert eng.view().fencing == FenceState.SUCCEEDED and fencer.calls == [PEER, PEER]
    fences = records(eng, "fence")
    assert [(f["ok"], f["message"]) for f in fences] == [(False, "bmc-2: timed out"),
                                                         (True, "bmc-2: off, confirmed by status")]
    assert [a["severity"] for a in eng.alerter.emitted if a["event"] == "fence_result"] == ["critical", "warning"]
