"""Claim epochs only go up: the floor the engine keeps (state.claim_floor) and how the planner uses it."""

from __future__ import annotations

from hasupd.state import State, StateStore, merge


def test_a_claim_raises_the_floor_and_a_release_keeps_it():
    st = State().record_claim("n1", "rg_web", 3)
    assert st.claim_floor == 3
    st = st.record_claim("n1", "rg_web", None)
    assert st.claims_of("n1") == {} and st.claim_floor == 3
    assert st.raise_claim_floor(2).claim_floor == 3  # never down
    assert st.raise_claim_floor(7).claim_floor == 7


def test_the_floor_survives_a_restart(tmp_path):
    path = str(tmp_path / "state.json")
    store = StateStore(path)
    store.record_claim("n1", "rg_web", 4)
    store.record_claim("n1", "rg_web", None)
    assert store.raise_claim_floor(6)
    assert not store.raise_claim_floor(5)  # nothing changed: nothing to save
    store.save()
    again = StateStore(path)
    assert again.load() is None
    assert again.state.claim_floor == 6 and again.state.claims_of("n1") == {}


def test_an_old_state_file_without_a_floor_loads_as_zero():
    assert State.from_wire({"e": 3, "v": 1}).claim_floor == 0


def test_the_floor_is_local_it_does_not_travel():
    mine = State().raise_claim_floor(4)
    assert "cf" not in mine.to_wire()  # not in the heartbeat form
    assert merge(mine, State().raise_claim_floor(9)).claim_floor == 4
