"""State: operator changes, merge semantics, persistence."""

import json
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hasupd.model import FailCount, MoveIntent
from hasupd.state import State, StateStore, merge

A, B = "primarycentos", "secondarycentos"
G = "rg_web"


def wire(s: State) -> dict:
    return json.loads(json.dumps(s.to_wire()))


def sync(a: State, b: State) -> tuple[State, State]:
    """Both nodes exchange heartbeats."""
    return merge(a, wire(b)), merge(b, wire(a))


# ---------------------------------------------------------------- operator changes


def test_fresh_state_is_empty():
    s = State()
    assert s.epoch == 0 and s.fail_counts_view() == {} and s.bans_view() == frozenset()
    assert s.moves_view() == {} and s.target_roles == {} and s.standby == {} and not s.maintenance


def test_every_operator_change_takes_the_next_epoch():
    s = State().move(G, B)
    assert s.epoch == 1 and s.moves_view() == {G: MoveIntent(B, 1, False)}
    s = s.pin(G, A)
    assert s.moves_view() == {G: MoveIntent(A, 2, True)}
    s = s.clear(G)
    assert s.epoch == 3 and s.moves_view() == {}
    s = s.stop_group(G).set_standby(B).set_maintenance(True).force_promotion("r0")
    assert s.epoch == 7
    assert s.target_roles == {G: "stopped"} and s.standby == {B: True} and s.maintenance
    assert s.forced_promotions == {"r0"}
    s = s.start_group(G).unstandby(B).set_maintenance(False).force_promotion("r0", False)
    assert s.target_roles == {G: "started"} and s.standby == {B: False} and not s.maintenance
    assert s.forced_promotions == frozenset()


def test_an_intent_that_is_already_so_changes_nothing(tmp_path):
    """`hasupctl unstandby` of a node never in standby must say "nothing changed", not bump the epoch."""
    store = StateStore(str(tmp_path / "state.json"))
    assert not store.standby(B, False) and not store.maintenance(False) and not store.start_group(G)
    assert not store.clear(G) and not store.force_promotion("r0", False)
    assert store.state.epoch == 0
    assert store.standby(B) and not store.standby(B)
    assert store.maintenance(True) and not store.maintenance(True)
    assert store.stop_group(G) and not store.stop_group(G)
    assert store.move(G, A) and not store.move(G, A) and store.move(G, A, pin=True)
    assert store.force_promotion("r0") and not store.force_promotion("r0")
    assert store.state.epoch == 6


def test_bad_target_role_is_refused():
    with pytest.raises(ValueError):
        State().set_target_role(G, "promoted")


def test_failures_bans_blocked_and_cleanup():
    s = State().record_failure(A, G, "res_httpd", 1000).record_failure(A, G, "res_httpd", 1010)
    assert s.fail_counts_view() == {(A, G, "res_httpd"): FailCount(2, 1010.0)}
    s = s.record_failure(B, G, "res_vip", 1020, at_least=3)
    assert s.fail_counts_view()[(B, G, "res_vip")].count == 3
    s = s.ban(G, A).block(G, "res_filesystem would not stop")
    assert s.bans_view() == {(G, A)} and s.blocked == {G: "res_filesystem would not stop"}
    only_a = s.cleanup(G, A)
    assert set(only_a.fail_counts_view()) == {(B, G, "res_vip")}
    assert only_a.bans_view() == frozenset() and only_a.blocked == {}
    everything = s.cleanup()
    assert everything.fail_counts_view() == {} and everything.bans_view() == frozenset()
    other_group = s.cleanup("rg_other")
    assert other_group.fail_counts_view() == s.fail_counts_view() and other_group.blocked == s.blocked


def test_failure_after_cleanup_is_kept():
    s = State().record_failure(A, G, "res_httpd", 1000).cleanup(G)
    s = s.record_failure(A, G, "res_httpd", 1100)
    assert s.fail_counts_view() == {(A, G, "res_httpd"): FailCount(1, 1100.0)}


def test_expire_drops_old_fail_counts_only():
    s = State().record_failure(A, G, "res_httpd", 1000).record_failure(A, "g2", "x", 1000)
    s = s.record_failure(B, G, "res_vip", 1500)
    e = s.expire(1700, {G: 600, "g2": 0})
    assert set(e.fail_counts_view()) == {(A, "g2", "x"), (B, G, "res_vip")}
    assert s.expire(1100, {G: 600}) is s
    from hasupd import config as configmod

    cfg = configmod.load(os.path.join(os.path.dirname(__file__), "..", "conf", "hasupd.yaml"))  # 10m
    assert set(s.expire(1700, cfg).fail_counts_view()) == {(A, "g2", "x"), (B, G, "res_vip")}
    store = StateStore("/nonexistent/state.json")
    store.state = s
    assert store.expire(1550, cfg) is False and store.expire(1601, cfg) is True


def test_forget_move_keeps_a_newer_move():
    s = State().move(G, B)
    assert s.forget_move(G).moves_view() == {}
    a, b = s, s
    b = b.forget_move(G)  # b finished the move at epoch 1
    a = a.move(G, A)  # meanwhile an operator moved it back at epoch 2
    a, b = sync(a, b)
    assert a.moves_view() == b.moves_view() == {G: MoveIntent(A, 2, False)}


def test_forgotten_move_stays_forgotten_on_both_nodes():
    a = State().move(G, B)
    a, b = sync(a, State())
    b = b.forget_move(G)  # same epoch as the intent: the cleared value wins the tie
    a, b = sync(a, b)
    assert a.moves_view() == b.moves_view() == {}
    assert merge(b, wire(a)).moves_view() == merge(a, wire(b)).moves_view() == {}


def test_claims_are_local():
    s = State().record_claim(A, G, 4)
    assert s.claims_of(A) == {G: 4} and "claims" not in s.to_wire()
    assert s.record_claim(A, G, None).claims_of(A) == {}
    assert merge(State(), s.to_wire()).claims_of(A) == {}


# ---------------------------------------------------------------- merge


def test_cleanup_on_one_node_clears_the_other_nodes_fail_count():
    a, b = State(), State()
    a = a.record_failure(A, G, "res_httpd", 1000).ban(G, A)
    a, b = sync(a, b)
    assert (A, G, "res_httpd") in b.fail_counts_view()
    b = b.cleanup(G)  # operator on the other node
    a, b = sync(a, b)
    assert a.fail_counts_view() == {} and b.fail_counts_view() == {}
    assert a.bans_view() == frozenset() == b.bans_view()
    # a later failure on A is counted again and reaches B
    a = a.record_failure(A, G, "res_httpd", 2000)
    a, b = sync(a, b)
    assert b.fail_counts_view() == {(A, G, "res_httpd"): FailCount(1, 2000.0)}


def test_cleanup_while_apart_clears_concurrent_failure():
    a, b = sync(State().move(G, A), State())
    a = a.record_failure(A, G, "res_httpd", 1000)  # not yet seen by b
    b = b.cleanup(G, A)
    a, b = sync(a, b)
    assert a.fail_counts_view() == b.fail_counts_view() == {}


def test_latest_intent_wins_and_peer_epoch_is_taken():
    a, b = State(), State()
    a = a.move(G, B).move(G, A).move(G, B)  # epoch 3
    a, b = sync(a, b)
    assert b.epoch == 3
    b = b.clear(G)  # epoch 4: max(local, peer) + 1
    assert b.epoch == 4
    a, b = sync(a, b)
    assert a.moves_view() == b.moves_view() == {}


def test_concurrent_equal_epochs_converge():
    a, b = State().move(G, A), State().move(G, B)
    a2, b2 = sync(a, b)
    assert a2.moves_view() == b2.moves_view()
    a, b = State().set_standby(A), State().set_standby(A, False)
    a2, b2 = sync(a, b)
    assert a2.standby == b2.standby


def test_malformed_peer_state_is_refused():
    store = StateStore("/nonexistent/state.json")
    before = store.state
    for bad in ({"e": "x"}, {"f": [[1, 2]]}, {"m": [[G, 1, 5, 1]]}, {"r": [[5, 1, 1]], "n": ["a"]}, {"n": 3}, [], None):
        assert store.merge_peer(bad) is False
    assert store.state == before


def test_wire_is_small_for_the_reference_setup():
    s = State()
    for _ in range(6):
        s = s.move(G, B, pin=True).stop_group(G).start_group(G)
    s = s.set_standby(A).set_standby(B, False).set_maintenance(True).cleanup(G, A).cleanup()
    s = s.record_failure(A, G, "res_httpd", time.time()).record_failure(A, G, "res_filesystem", time.time())
    s = s.record_failure(B, G, "res_vip", time.time()).ban(G, A).ban(G, B)
    s = s.block(G, "res_filesystem did not stop within 240s: umount: /mnt/data: target is busy, held by pid 4242")
    size = len(json.dumps(s.to_wire(), separators=(",", ":")))
    print(f"state on the wire: {size} bytes")
    assert size < 400
    assert State.from_wire(s.to_wire()).to_wire() == s.to_wire()


# property tests: merge is a join (commutative, associative, idempotent)

nodes = st.sampled_from([A, B])
groups = st.sampled_from([G, "g2"])
ops = st.one_of(
    st.tuples(st.just("move"), groups, nodes, st.booleans()),
    st.tuples(st.just("clear"), groups),
    st.tuples(st.just("forget"), groups),
    st.tuples(st.just("role"), groups, st.sampled_from(["started", "stopped"])),
    st.tuples(st.just("standby"), nodes, st.booleans()),
    st.tuples(st.just("maint"), st.booleans()),
    st.tuples(st.just("fail"), nodes, groups, st.sampled_from(["r1", "r2"]), st.integers(0, 100)),
    st.tuples(st.just("ban"), groups, nodes),
    st.tuples(st.just("block"), groups, st.sampled_from(["x", "y"])),
    st.tuples(st.just("cleanup"), st.one_of(st.none(), groups), st.one_of(st.none(), nodes)),
)


def apply(s: State, op) -> State:
    kind, *a = op
    return {
        "move": lambda: s.move(a[0], a[1], a[2]), "clear": lambda: s.clear(a[0]),
        "forget": lambda: s.forget_move(a[0]), "role": lambda: s.set_target_role(a[0], a[1]),
        "standby": lambda: s.set_standby(a[0], a[1]), "maint": lambda: s.set_maintenance(a[0]),
        "fail": lambda: s.record_failure(a[0], a[1], a[2], a[3]), "ban": lambda: s.ban(a[0], a[1]),
        "block": lambda: s.block(a[0], a[1]), "cleanup": lambda: s.cleanup(a[0], a[1], wall=0),
    }[kind]()


@st.composite
def histories(draw, n=3):
    """n node states that evolved with ops and occasional exchanges."""
    states = [State() for _ in range(n)]
    for _ in range(draw(st.integers(0, 14))):
        i = draw(st.integers(0, n - 1))
        if draw(st.integers(0, 3)) == 0:
            j = draw(st.integers(0, n - 1))
            states[i] = merge(states[i], wire(states[j]))
        else:
            states[i] = apply(states[i], draw(ops))
    return states


@settings(max_examples=300, deadline=None)
@given(histories())
def test_merge_is_commutative_associative_idempotent(states):
    a, b, c = states
    assert merge(a, b).to_wire() == merge(b, a).to_wire()
    assert merge(merge(a, b), c).to_wire() == merge(a, merge(b, c)).to_wire()
    assert merge(a, a).to_wire() == a.to_wire()
    assert State.from_wire(wire(a)).to_wire() == a.to_wire()


@settings(max_examples=100, deadline=None)
@given(histories(n=2), st.lists(ops, max_size=4))
def test_after_exchange_both_nodes_agree(states, more):
    a, b = states
    for op in more:
        a = apply(a, op)
    a, b = sync(a, b)
    a, b = sync(a, b)
    for view in ("fail_counts_view", "bans_view", "moves_view"):
        assert getattr(a, view)() == getattr(b, view)()
    assert (a.target_roles, a.standby, a.maintenance, a.blocked) == \
        (b.target_roles, b.standby, b.maintenance, b.blocked)


# ---------------------------------------------------------------- persistence


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "state.json"
    store = StateStore(str(path))
    assert store.load() is None and store.state == State()  # missing file: fresh, no warning
    store.move(G, B, pin=True)
    store.record_failure(A, G, "res_httpd", 1234)
    store.record_claim(A, G, 7)
    store.block(G, "a long reason " * 10)
    store.save()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = StateStore(str(path))
    assert again.load() is None
    assert again.state == store.state
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_save_is_atomic_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    store = StateStore(str(path))
    store.move(G, B)
    store.save()
    before = path.read_bytes()
    store.move(G, A)

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        store.save()
    monkeypatch.undo()
    assert path.read_bytes() == before
    fresh = StateStore(str(path))
    fresh.load()
    assert fresh.state.moves_view() == {G: MoveIntent(B, 1, False)}


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe garbage", b'{"e": "seven"}', b"[1, 2]",
                                     b'{"f": [["a", "b"]]}', b""])
def test_corrupt_file_is_moved_aside_with_a_warning(tmp_path, content):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    store = StateStore(str(path))
    warning = store.load()
    assert warning and "moved aside" in warning and str(path) in warning
    assert store.state == State()
    assert not path.exists()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("state.json.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == content
    store.move(G, A)
    store.save()  # and the daemon carries on with a fresh file
    assert StateStore(str(path)).load() is None


def test_unreadable_file_is_moved_aside(tmp_path):
    path = tmp_path / "state.json"
    path.mkdir()  # reading a directory fails with EISDIR
    store = StateStore(str(path))
    warning = store.load()
    assert warning and "cannot read" in warning and "moved aside" in warning
    assert not path.exists()
