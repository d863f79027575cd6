"""Rule 13, the stale copy after a fence (issues 17/23): the facts the engine folds and persists
(the peer's highest claim seen, this copy's last in-sync epoch), the engine refusing to fence or
promote a stale copy on the peer's loss, resync lifting the refusal, and the operator's forced
promotion through hasupctl."""

from __future__ import annotations

import asyncio
import json

from test_engine_fencing import (
    PEER,
    FakeFencer,
    Outcome,
    assert_fenced_and_took_over,
    make_engine,
    owner_report,
)

from hasupd.control import cli
from hasupd.control.commands import Commands
from hasupd.model import DrbdStatus, ResourceStatus, ResState
from hasupd.state import State, StateStore

G = "rg_web"
IN_SYNC = DrbdStatus("r0", up=True, role="Secondary", peer_role="Primary", disk="UpToDate", peer_disk="UpToDate",
                     connection="Connected", replication="Established")
APART = DrbdStatus("r0", up=True, role="Secondary", disk="UpToDate", connection="Connecting")


def test_observe_copy_folds_claims_and_sync():
    st = State().observe_copy(G, 0, 4, True)  # the owner held 4 while in sync
    assert (st.peer_epochs[G], st.synced_epochs[G]) == (4, 4)
    st = st.observe_copy(G, 0, 5, False)  # the peer took it at 5 while this copy was apart
    assert (st.peer_epochs[G], st.synced_epochs[G]) == (5, 4)
    st = st.observe_copy(G, 0, 0, False)  # its claim no longer in view: what was seen stays
    assert (st.peer_epochs[G], st.synced_epochs[G]) == (5, 4)
    st = st.observe_copy(G, 0, 0, True)  # resynced: in sync with everything the peer held
    assert (st.peer_epochs[G], st.synced_epochs[G]) == (5, 5)
    st = st.observe_copy(G, 7, 0, False)  # this node's own claim alone says nothing about the peer's copy
    assert st.synced_epochs[G] == 5
    st = st.observe_copy(G, 7, 0, True)  # in sync under its own claim
    assert (st.peer_epochs[G], st.synced_epochs[G]) == (5, 7)
    assert st.observe_copy(G, 7, 0, True) is st  # nothing new: the same state (no write)


def test_facts_survive_a_restart_and_a_peer_cannot_set_them(tmp_path):
    store = StateStore(str(tmp_path / "state.json"))
    store.observe_copy(G, 4, 0, True)
    store.observe_copy(G, 0, 5, False)
    store.save()
    again = StateStore(str(tmp_path / "state.json"))
    assert again.load() is None
    assert (again.state.peer_epochs, again.state.synced_epochs) == ({G: 5}, {G: 4})
    # they are this node's own observations: never sent, and a peer's wire state cannot change them
    assert "pe" not in again.state.to_wire() and "se" not in again.state.to_wire()
    from hasupd.state import merge
    hostile = {**State().to_wire(), "pe": {G: 0}, "se": {G: 99}}
    merged = merge(again.state, hostile)
    assert (merged.peer_epochs, merged.synced_epochs) == ({G: 5}, {G: 4})


def stale_engine(tmp_path, fencer):
    """secondarycentos, its copy last in sync at epoch 1 (make_engine), hears primarycentos hold
    the group at epoch 5 while DRBD is apart (it was fenced, booted, not resynced yet)."""
    eng = make_engine(tmp_path, fencer, drbd=APART)
    eng.heartbeat.peer_alive({**owner_report(), "claims": {G: 5}})
    eng.refresh_state()
    return eng


def test_view_shows_the_copies_seen_and_only_refresh_state_persists_them(tmp_path):
    eng = make_engine(tmp_path, FakeFencer([]), drbd=APART)
    eng.heartbeat.peer_alive({**owner_report(), "claims": {G: 5}})
    view = eng.view()
    assert (view.peer_epochs[G], view.synced_epochs[G]) == (5, 1)
    assert eng.store.state.peer_epochs[G] == 1  # view() reads only
    eng.refresh_state()
    assert (eng.store.state.peer_epochs[G], eng.store.state.synced_epochs[G]) == (5, 1)
    saved = json.loads((tmp_path / "state" / "state.json").read_text())
    assert (saved["pe"], saved["se"]) == ({G: 5}, {G: 1})


def test_stale_copy_is_neither_fenced_for_nor_promoted_on_the_peers_loss(tmp_path):
    fencer = FakeFencer([Outcome(True)], power="off")

    async def main():
        eng = stale_engine(tmp_path, fencer)
        eng.heartbeat.lose_peer(30)
        for _ in range(3):
            await eng.reconcile()
        return eng

    eng = run(main())
    assert fencer.calls == []
    assert eng.drbd["r0"].calls == []
    assert eng.log == []
    assert "no_takeover:rg_web" in eng.alerted
    alert = [a for a in eng.alerter.recent if "no_takeover" in json.dumps(a, default=str)]
    assert alert and "hasupctl promote --force r0" in json.dumps(alert, default=str)
    saved = json.loads((tmp_path / "state" / "state.json").read_text())
    assert (saved["pe"], saved["se"]) == ({G: 5}, {G: 1})


def test_resync_lifts_the_refusal(tmp_path):
    fencer = FakeFencer([Outcome(True)])

    async def main():
        eng = stale_engine(tmp_path, fencer)
        eng.drbd_status["r0"] = IN_SYNC  # DRBD connected and resynced
        eng.heartbeat.peer_alive({**owner_report(IN_SYNC), "claims": {G: 5}})
        eng.refresh_state()
        assert eng.store.state.synced_epochs[G] == 5
        eng.drbd_status["r0"] = eng.drbd["r0"].st = APART  # then the owner dies
        eng.heartbeat.lose_peer(30)
        for _ in range(3):
            await eng.reconcile()
        return eng

    assert_fenced_and_took_over(run(main()), fencer)


def test_operator_forced_promotion_overrides_it(tmp_path):
    fencer = FakeFencer([Outcome(True)])

    async def main():
        eng = stale_engine(tmp_path, fencer)
        eng.heartbeat.lose_peer(30)
        await eng.reconcile()
        assert eng.log == []
        cmds = Commands(eng)
        refused = await cmds.handle("promote-force", {"resource": "nope"})
        forced = await cmds.handle("promote-force", {"resource": "r0"})
        for _ in range(3):
            await eng.reconcile()
        return eng, refused, forced

    eng, refused, forced = run(main())
    assert not refused["ok"] and "no DRBD resource 'nope'" in refused["error"]
    assert forced == {"ok": True, "changed": True}
    assert_fenced_and_took_over(eng, fencer)
    assert "r0" not in eng.store.state.forced_promotions  # used up once Primary


def test_hasupctl_promote_needs_force_or_cancel():
    parser = cli.build_parser()
    args = parser.parse_args(["promote", "--force", "r0"])
    assert (args.resource, args.force, args.cancel) == ("r0", True, False)
    try:
        parser.parse_args(["promote", "r0"])
    except SystemExit as e:
        assert e.code == 2
    else:
        raise AssertionError("promote without --force or --cancel was accepted")


def run(coro):
    return asyncio.run(coro)


def test_an_owner_cut_off_claims_a_new_epoch_once_and_it_is_no_failover(tmp_path):
    """Rule 13's owner half in the engine: DRBD lost the peer while this node runs the group (its
    copies were in sync at epoch 1): one new claim, persisted, no failover_started alert."""
    primary = DrbdStatus("r0", up=True, role="Primary", disk="UpToDate", connection="Connecting")

    async def main():
        eng = make_engine(tmp_path, FakeFencer([Outcome(True)]), drbd=primary)
        eng.resources = {n: ResourceStatus(ResState.STARTED) for n in eng.drivers}
        eng.claims = {G: 1}
        eng.executor.peer_held.add(G)  # the peer ran it before this node took it over
        eng.heartbeat.peer_alive({"name": PEER, "settled": True})
        for _ in range(3):
            await eng.reconcile()
        return eng

    eng = run(main())
    assert eng.claims == {G: 2}
    assert json.loads((tmp_path / "state" / "state.json").read_text())["claims"]["secondarycentos"] == {G: 2}
    assert not [a for a in eng.alerter.recent if "failover_started" in json.dumps(a, default=str)]
