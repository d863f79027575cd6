"""Safety invariants of the planner over random two-node worlds (hypothesis).

A "world" is the truth about both nodes (alive, resources, DRBD, operator
state, links).  Each live node's view is derived from it the way the engine
builds it: its own part observed, the peer's part as the heartbeat shows it
(accurate while the heartbeat link works, else a stale last report or
nothing: the peer is then seen dead although it may be alive = partition).
Both nodes decide; the invariants are checked on both action lists at once.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hasupd import config as configmod
from hasupd import planner
from hasupd.model import (
    ActionKind,
    ClusterView,
    DrbdStatus,
    FailCount,
    FenceFacts,
    FenceState,
    MoveIntent,
    NodeState,
    ResourceStatus,
    ResState,
)

K = ActionKind
ROOT = Path(__file__).resolve().parents[1]
A, B = "primarycentos", "secondarycentos"
GROUP, DRBD = "rg_web", "r0"
RESOURCES = ("res_vip", "res_filesystem", "res_httpd")
NOW, WALL = 1000.0, 1_000_000.0


@functools.lru_cache(maxsize=None)
def make_config(guard: str, threshold: int, on_stop_failure: str, preferred: str | None, sticky: bool):
    data = yaml.safe_load((ROOT / "conf" / "hasupd.yaml").read_text())
    data["split_brain_guard"] = {
        "ping": {"mode": "ping", "ping": {"targets": ["192.168.0.1"]}},
        "fence": {"mode": "fence", "fence": {"command": ["/bin/true"]}},
        "drbd": {"mode": "drbd"},
        "none": {"mode": "none"},
    }[guard]
    g = data["groups"][0]
    g.update(migration_threshold=threshold, on_stop_failure=on_stop_failure,
             stickiness="infinity" if sticky else 0)
    if preferred:
        g["preferred_node"] = preferred
    return configmod.loads(yaml.safe_dump(data), "<property config>")


configs = st.builds(
    make_config,
    st.sampled_from(["none", "ping", "fence", "drbd"]), st.sampled_from([1, 3]),
    st.sampled_from(["block", "reboot"]), st.sampled_from([None, A, B]), st.booleans())

res_state = st.sampled_from([ResState.STOPPED] * 4 + [ResState.STARTED] * 4 + [
    ResState.FAILED, ResState.STOP_FAILED, ResState.UNKNOWN])
disk = st.sampled_from(["UpToDate"] * 6 + ["Consistent", "Outdated", "Inconsistent", "Diskless"])


def rarely(draw, one_in: int = 10) -> bool:
    return draw(st.integers(0, one_in - 1)) == 0


@st.composite
def node_truth(draw, name, pattern):
    """One node's truth; pattern idle/running biases towards the states that matter."""
    if pattern == "random":
        pattern = draw(st.sampled_from(["idle", "running", "mixed"]))
    if pattern == "idle":
        states = [ResState.STOPPED] * 3
        role = "Primary" if rarely(draw) else "Secondary"
    elif pattern == "running":
        states = [ResState.STARTED] * 3
        if rarely(draw, 3):
            states[draw(st.integers(0, 2))] = draw(res_state)
        elif rarely(draw, 6):  # a stop that failed half-way through a move or failover
            states = [ResState.STARTED, ResState.STOP_FAILED, ResState.STOPPED]
        role = "Secondary" if rarely(draw) else "Primary"
    else:
        states = [draw(res_state) for _ in RESOURCES]
        role = draw(st.sampled_from(["Primary", "Secondary"]))
    return {
        "name": name,
        "alive": not rarely(draw, 4),
        "states": states,
        "drbd_up": not rarely(draw),
        "role": role,
        "disk": draw(disk),
        "settled": not rarely(draw, 20),
        "standby": rarely(draw),
        "tiebreaker": draw(st.sampled_from([True, True, False, None])),
        "claim": draw(st.sampled_from([None, 1, 2, 3])),
        "split_brain": rarely(draw, 20),
    }


@st.composite
def worlds(draw):
    cfg = draw(configs)
    situation = draw(st.sampled_from(["fresh", "running", "partition", "thaw", "alone", "reboot", "random"]))
    if situation in ("fresh", "alone"):  # both nodes idle: who starts it? / a node starts alone
        a, b = draw(node_truth(A, "idle")), draw(node_truth(B, "idle"))
        if situation == "alone":
            draw(st.sampled_from([a, b]))["alive"] = False
    elif situation == "thaw":  # both ran it while apart, the heartbeat is back (rule 12)
        a, b = draw(node_truth(A, "running")), draw(node_truth(B, "running"))
        a["alive"] = b["alive"] = True
    elif situation == "reboot":  # one runs it; the other came back from a crash with leftovers and a stale claim
        runner = draw(st.sampled_from([A, B]))
        a = draw(node_truth(A, "running" if runner == A else "idle"))
        b = draw(node_truth(B, "running" if runner == B else "idle"))
        back = b if runner == A else a
        back["alive"], back["role"] = True, "Secondary"
        back["states"] = [draw(st.sampled_from([ResState.STOPPED, ResState.STARTED])) for _ in RESOURCES]
    elif situation in ("running", "partition"):  # one runs it: failures, moves, peer death
        runner = draw(st.sampled_from([A, B]))
        a = draw(node_truth(A, "running" if runner == A else "idle"))
        b = draw(node_truth(B, "running" if runner == B else "idle"))
    else:
        a, b = draw(node_truth(A, "random")), draw(node_truth(B, "random"))
    if not a["alive"] and not b["alive"]:
        a["alive"] = True
    hb_link = situation != "partition" and not rarely(draw, 4)
    drbd_link = situation not in ("partition", "thaw") and not rarely(draw, 3) or rarely(draw, 3)
    connected = a["alive"] and b["alive"] and drbd_link and a["drbd_up"] and b["drbd_up"]
    if connected:
        a["split_brain"] = b["split_brain"] = False
        if a["role"] == "Primary" and b["role"] == "Primary":  # DRBD allows one Primary while connected
            b["role"] = "Secondary"
    for n in (a, b):
        if not n["drbd_up"]:
            n["role"], n["disk"] = "Secondary", "DUnknown"
    shared = {
        "fail_counts": {(n, GROUP, r): FailCount(draw(st.integers(1, 3)), WALL - draw(st.sampled_from([5, 900])))
                        for n in (A, B) for r in RESOURCES if rarely(draw, 8)},
        "bans": frozenset((GROUP, n) for n in (A, B) if rarely(draw)),
        "moves": ({GROUP: MoveIntent(draw(st.sampled_from([A, B])), 3, draw(st.booleans()))}
                  if rarely(draw, 4) else {}),
        "target_roles": {GROUP: "stopped"} if rarely(draw, 15) else {},
        "maintenance": rarely(draw, 15),
        "forced_promotions": frozenset([DRBD]) if rarely(draw, 6) else frozenset(),
        "blocked": {GROUP: "a stop failed"} if rarely(draw, 15) else {},
    }
    per_view = {n["name"]: {
        "stale_peer": draw(st.sampled_from(["report", "report", "nothing"])),
        "ever_seen": draw(st.booleans()),
        "lost_ago": draw(st.sampled_from([1.0, 5.0, 30.0])),
        "uptime": draw(st.sampled_from([3.0, 1000.0])),
        "fencing": draw(st.sampled_from(list(FenceState))),
        "floor": draw(st.sampled_from([0, 0, 2, 5])),
        # the fence facts (issue 17): devices (always with guard fence), the race's delays, the
        # retries, what the devices say about the peer's power, DRBD's own loss of the peer
        "fence": {
            "devices": cfg.split_brain_guard.mode == "fence" or draw(st.booleans()),
            "owner_head_start": draw(st.sampled_from([0.0, 5.0])),
            "random_delay": draw(st.sampled_from([0.0, 0.0, 1.5])),
            "drbd_lost_ago": draw(st.sampled_from([None, 0.5, 20.0])),
            "attempts": draw(st.sampled_from([0, 0, 1, 4])),
            "last_attempt_ago": draw(st.sampled_from([0.5, 100.0])),
            "peer_power": draw(st.sampled_from(["", "", "on", "off", "unknown"])),
        },
        "outdate_requested": rarely(draw, 4),
        # the stale-copy facts (rule 13): the peer's highest claim seen, this copy's last in-sync epoch
        "peer_epoch": draw(st.sampled_from([0, 3, 5, 6])),
        "synced_epoch": draw(st.sampled_from([0, 3, 5])),
    } for n in (a, b)}
    return cfg, {A: a, B: b}, hb_link, connected, shared, per_view


def drbd_status(me: dict, other: dict, connected: bool) -> DrbdStatus:
    return DrbdStatus(
        DRBD, up=me["drbd_up"], role=me["role"],
        peer_role=other["role"] if connected else "Unknown",
        disk=me["disk"], peer_disk=other["disk"] if connected else "DUnknown",
        connection="Connected" if connected else ("Connecting" if me["drbd_up"] else "StandAlone"),
        split_brain=me["split_brain"])


def node_state(t: dict, other: dict, connected: bool, alive: bool) -> NodeState:
    return NodeState(
        name=t["name"], alive=alive, standby=t["standby"], settled=t["settled"], tiebreaker=t["tiebreaker"],
        drbd={DRBD: drbd_status(t, other, connected)},
        resources={r: ResourceStatus(s) for r, s in zip(RESOURCES, t["states"])},
        claims={GROUP: t["claim"]} if t["claim"] is not None else {})


def view_of(world, local: str) -> ClusterView:
    cfg, truth, hb_link, connected, shared, per_view = world
    peer = cfg.peer_of(local)
    me, them = truth[local], truth[peer]
    pv = per_view[local]
    sees_peer = hb_link and them["alive"]
    if sees_peer:
        peer_state = node_state(them, me, connected, True)
    elif pv["stale_peer"] == "report":
        peer_state = node_state(them, me, connected, False)
    else:
        peer_state = NodeState(peer)
    ever_seen = sees_peer or pv["ever_seen"]
    fencing = pv["fencing"]
    if fencing == FenceState.SUCCEEDED and them["alive"]:
        fencing = FenceState.FAILED  # a fence that succeeded left the peer dead
    fx = pv["fence"]
    power = fx["peer_power"]
    if power == "off" and them["alive"]:
        power = "on"  # a device reports off only a node that is off
    fence = FenceFacts(
        devices=fx["devices"], owner_head_start=fx["owner_head_start"], random_delay=fx["random_delay"],
        drbd_lost_at=None if fx["drbd_lost_ago"] is None else NOW - fx["drbd_lost_ago"],
        attempts=fx["attempts"] if fencing == FenceState.FAILED else 0,
        last_attempt_at=NOW - fx["last_attempt_ago"] if fencing == FenceState.FAILED else None,
        last_message="bmc: no answer", peer_power="" if sees_peer else power)
    # the stale-copy facts as the engine folds them (State.observe_copy): the peer's claim in view
    # was seen; a copy in sync now (Connected, both UpToDate) is in sync at the latest claim
    mine = node_state(me, them, connected, True)
    seen = max(pv["peer_epoch"], peer_state.claims.get(GROUP, 0))
    in_sync = connected and me["disk"] == them["disk"] == "UpToDate"
    synced = max(pv["synced_epoch"], max(seen, mine.claims.get(GROUP, 0)) if in_sync else 0)
    return ClusterView(
        peer_epochs={GROUP: seen}, synced_epochs={GROUP: synced},
        fence=fence, outdate_requested=frozenset([DRBD]) if pv["outdate_requested"] and sees_peer else frozenset(),
        local=local, now=NOW, started_at=NOW - pv["uptime"],
        nodes={local: mine, peer: peer_state},
        peer_ever_seen=ever_seen,
        peer_lost_at=(NOW - pv["lost_ago"]) if (ever_seen and not sees_peer) else None,
        wall=WALL, tiebreaker=me["tiebreaker"], fencing=fencing, **shared,
        epoch_floor=max(pv["floor"], seen, synced))  # the engine's floor is above every claim it saw


# ---------------------------------------------------------------- invariants


def owns(actions) -> bool:
    """The list makes this node run the group (promote, claim or start)."""
    return any(a.group == GROUP and a.kind in (K.PROMOTE, K.CLAIM, K.START) for a in actions)


def holds(view: ClusterView) -> bool:
    me = view.me
    return (any(s.state in (ResState.STARTED, ResState.FAILED, ResState.STOP_FAILED)
                for s in me.resources.values()) or me.drbd[DRBD].role == "Primary")


def check_one(cfg, view: ClusterView, actions) -> None:
    me, d = view.me, view.me.drbd[DRBD]
    kinds = [a.kind for a in actions]
    assert all(a.reason for a in actions), actions
    if view.maintenance or not me.settled:
        assert set(kinds) <= {K.ALERT, K.FORGET_ALERT}, actions

    # never a START before the PROMOTE when DRBD is not already Primary
    promoted = d.role == "Primary"
    stopped: set[str] = set()
    for a in actions:
        if a.kind == K.PROMOTE:
            promoted = True
        if a.kind == K.START:
            assert promoted, f"start of {a.resource} before promotion: {actions}"
        if a.kind == K.STOP:
            stopped.add(a.resource)
        if a.kind == K.DEMOTE:
            # never a DEMOTE while a resource of the group is still up here
            for r in RESOURCES:
                s = me.resources[r].state
                assert s == ResState.STOPPED or r in stopped, f"demote with {r} {s.value}: {actions}"

    for a in actions:
        if a.kind == K.PROMOTE:
            # never promote data that is not good, without the operator's force
            good = d.disk == "UpToDate" or (d.disk == "Consistent" and d.peer_disk == "Outdated")
            assert good or (a.force and DRBD in view.forced_promotions), (d, actions)
            assert a.force == (not good)
            assert not d.split_brain, actions
            assert d.up or K.DRBD_UP in kinds[:kinds.index(K.PROMOTE)], actions
            assert not (d.connected and d.peer_role == "Primary"), actions
            # ... nor while the live peer reports itself Primary (single primary: it demotes first)
            pd = view.peer.drbd.get(DRBD)
            assert not (view.peer.alive and pd is not None and pd.role == "Primary"), actions
        if a.kind == K.CLAIM:
            # epochs only go up: above every claim in sight and every claim seen before
            assert a.epoch > max(view.epoch_floor, *(n.claims.get(GROUP, 0) for n in view.nodes.values())), actions
        if a.kind in (K.START, K.PROMOTE, K.CLAIM):
            # never start on a node that is banned, in standby, or where the group is blocked
            assert (GROUP, view.local) not in view.bans, actions
            assert not me.standby, actions
            assert GROUP not in view.blocked, actions
            # ... nor while the peer reports a stop failure (it may still hold the data), unless
            # it is gone and self-fenced (on_stop_failure reboot)
            peer = view.peer
            if peer.alive or cfg.group(GROUP).on_stop_failure == "block":
                assert all(s.state != ResState.STOP_FAILED for s in peer.resources.values()), actions
            assert view.target_roles.get(GROUP) != "stopped", actions
            move = view.moves.get(GROUP)
            assert not (move and move.pin and move.node != view.local), actions
    assert kinds.count(K.PROMOTE) <= 1 and not (K.PROMOTE in kinds and K.DEMOTE in kinds), actions

    # a node that sees its peer dead takes over only as the guard allows
    if not view.peer.alive and not holds(view) and owns(actions):
        assert not d.connected, f"takeover while DRBD is Connected: {actions}"
        if not view.peer_ever_seen:
            assert view.now - view.started_at >= cfg.heartbeat.initdead, actions
        mode = cfg.split_brain_guard.mode
        if mode == "ping":
            assert view.tiebreaker is True, actions
        if fence_first(cfg, view):
            assert fenced(view), actions
        if mode == "drbd" and not view.fence.devices:
            # never on silence alone: only when DRBD itself knows the peer's copy is Outdated
            assert fenced(view) or d.peer_disk == "Outdated", actions
    if cfg.split_brain_guard.mode == "ping" and view.tiebreaker is False:
        assert K.START not in kinds and K.PROMOTE not in kinds, actions
    # rule 13: the peer held the group at a newer epoch than this copy's last in-sync one: no
    # promotion unless an operator forced it (and no fencing for nothing on the peer's loss)
    if view.peer_epochs[GROUP] > view.synced_epochs[GROUP] and DRBD not in view.forced_promotions:
        assert K.PROMOTE not in kinds, actions
        assert view.peer.alive or K.FENCE not in kinds or holds(view), actions
    # ... and an owner whose DRBD lost its peer claims a new epoch once (fence-first guards only)
    if any(a.kind == K.CLAIM for a in actions) and holds(view) and d.role == "Primary":
        assert view.me.claims.get(GROUP) is None or (
            fence_first(cfg, view) and not d.connected and view.me.claims[GROUP] <= view.synced_epochs[GROUP]), actions
    check_fencing(cfg, view, actions)


def fence_first(cfg, view: ClusterView) -> bool:
    mode = cfg.split_brain_guard.mode
    return mode == "fence" or (mode == "drbd" and view.fence.devices)


def fenced(view: ClusterView) -> bool:
    return view.fencing == FenceState.SUCCEEDED or view.fence.peer_power == "off"


def check_fencing(cfg, view: ClusterView, actions) -> None:
    """The fence race and its limits (issue 17)."""
    kinds = [a.kind for a in actions]
    assert kinds.count(K.FENCE) <= 1, actions
    if K.FENCE in kinds:
        f = view.fence
        assert fence_first(cfg, view) and f.devices, actions
        assert not view.peer.alive, actions  # never a peer that is heard
        assert view.tiebreaker is not False, actions  # an isolated node fences nobody
        assert view.fencing != FenceState.PENDING and not fenced(view), actions
        assert not any(d.connected for d in view.me.drbd.values()), actions  # DRBD sees it alive
        lost = view.peer_lost_at if view.peer_lost_at is not None else view.started_at + cfg.heartbeat.initdead
        if f.drbd_lost_at is not None:
            lost = max(lost, f.drbd_lost_at)
        # the owner fences after its random delay, the other after the head start too
        wait = f.random_delay + (0 if holds(view) else f.owner_head_start)
        assert view.now - lost >= wait, (wait, actions)
        if view.fencing == FenceState.FAILED and f.attempts:
            assert view.now - f.last_attempt_at >= planner.fence_retry_delay(f.attempts), actions
    if K.DRBD_DISCONNECT in kinds:
        assert fenced(view) and not view.peer.alive, actions
    if K.DRBD_OUTDATE in kinds:
        d = view.me.drbd[DRBD]
        assert view.peer.alive and d.role == "Secondary", actions
        assert not d.connected and DRBD in view.outdate_requested, actions
        assert K.PROMOTE not in kinds, actions


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_safety_invariants_on_both_nodes(world):
    cfg, truth, hb_link, connected, shared, per_view = world
    plans = {}
    for n in (A, B):
        if not truth[n]["alive"]:
            continue
        view = view_of(world, n)
        actions = planner.decide(cfg, view)
        assert actions == planner.decide(cfg, view)  # pure: same view, same plan
        explained = planner.explain(cfg, view)
        assert set(explained) == {GROUP} and explained[GROUP].endswith(".")
        check_one(cfg, view, actions)
        plans[n] = (view, actions)
    # under a fence-first guard, no node that does not hold the group starts it while the other
    # may be alive and unfenced (a partition: alive but not heard)
    for n, (view, actions) in plans.items():
        other = truth[cfg.peer_of(n)]
        if fence_first(cfg, view) and other["alive"] and not view.peer.alive and not holds(view):
            assert not owns(actions), (n, actions)
    # never both nodes told to own the group while they see each other
    if len(plans) == 2 and hb_link:
        assert not (owns(plans[A][1]) and owns(plans[B][1])), plans
        # rule 12: two owners that see each other -> one of them lets go at once
        views = [plans[n][0] for n in (A, B)]
        if all(holds(v) and v.me.settled for v in views) and not shared["maintenance"] \
                and GROUP not in shared["blocked"] and not any(
                    s.state in (ResState.STOP_FAILED, ResState.UNKNOWN)
                    for v in views for s in v.me.resources.values()):
            assert any(a.kind in (K.STOP, K.DEMOTE) for n in (A, B) for a in plans[n][1]), plans
            # the data decides: a node that is not DRBD Primary while the peer is holds leftovers and
            # stops them, whatever the claims say
            for n in (A, B):
                v, acts = plans[n]
                if v.me.drbd[DRBD].role != "Primary" and v.peer.drbd[DRBD].role == "Primary":
                    held = [r for r in RESOURCES if v.me.resources[r].state in (ResState.STARTED, ResState.FAILED)]
                    assert {a.resource for a in acts if a.kind == K.STOP} >= set(held), plans


# ---------------------------------------------------------------- convergence


def apply(view: ClusterView, actions) -> ClusterView:
    """The local effect of every action succeeding (the peer stays as it was)."""
    me = view.me
    res, drbd, claims = dict(me.resources), dict(me.drbd), dict(me.claims)
    bans, blocked, moves = set(view.bans), dict(view.blocked), dict(view.moves)
    forced, alerted, fencing = set(view.forced_promotions), set(view.alerted), view.fencing
    for a in actions:
        k = a.kind
        if k == K.START:
            res[a.resource] = ResourceStatus(ResState.STARTED)
        elif k in (K.STOP, K.MONITOR):
            res[a.resource] = ResourceStatus(ResState.STOPPED)
        elif k == K.PROMOTE:
            drbd[a.resource] = replace(drbd[a.resource], role="Primary", disk="UpToDate")
        elif k == K.DEMOTE:
            drbd[a.resource] = replace(drbd[a.resource], role="Secondary")
        elif k == K.DRBD_UP:
            drbd[a.resource] = replace(drbd[a.resource], up=True)
        elif k == K.DRBD_DISCONNECT:
            drbd[a.resource] = replace(drbd[a.resource], connection="Connecting", peer_role="Unknown",
                                       peer_disk="DUnknown")
        elif k == K.DRBD_OUTDATE:
            drbd[a.resource] = replace(drbd[a.resource], disk="Outdated")
        elif k == K.CLAIM:
            claims[a.group] = a.epoch
        elif k == K.RELEASE:
            claims.pop(a.group, None)
        elif k == K.BAN:
            bans.add((a.group, view.local))
        elif k == K.BLOCK:
            blocked[a.group] = a.reason
        elif k == K.FORGET_MOVE:
            moves.pop(a.group, None)
        elif k == K.FORGET_FORCE:
            forced.discard(a.resource)
        elif k == K.ALERT and a.key:
            alerted.add(a.key)
        elif k == K.FORGET_ALERT:
            alerted.discard(a.key)
        elif k == K.FENCE:
            fencing = FenceState.PENDING
        elif k == K.REBOOT:
            return view  # the node is gone
    me = replace(me, resources=res, drbd=drbd, claims=claims)
    return replace(view, nodes={**view.nodes, view.local: me}, bans=frozenset(bans), blocked=blocked,
                   moves=moves, forced_promotions=frozenset(forced), alerted=frozenset(alerted),
                   fencing=fencing)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_a_view_that_matches_the_goal_plans_nothing(world):
    """Executing a plan and deciding again settles within a few rounds (no flapping)."""
    cfg, truth = world[0], world[1]
    for n in (A, B):
        if not truth[n]["alive"]:
            continue
        view = view_of(world, n)
        history = []
        for _ in range(6):
            actions = planner.decide(cfg, view)
            if not actions or any(a.kind == K.REBOOT for a in actions):
                break
            history.append(actions)
            check_one(cfg, view, actions)
            view = apply(view, actions)
        else:
            raise AssertionError(f"no fixed point after 6 rounds: {history[-2:]}")


# ---------------------------------------------------------------- every decision has a rule


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_every_plan_is_decided_by_a_registered_rule(world):
    """The planner's trace names at least one rule for the (one) group of every view, and only
    registered ones, and it is pure like the plan."""
    cfg = world[0]
    for n in (A, B):
        if not world[1][n]["alive"]:
            continue
        view = view_of(world, n)
        fired = planner.rules_fired(cfg, view)
        assert fired, (n, planner.explain(cfg, view))
        assert set(fired) <= set(planner.RULES)
        assert fired == planner.rules_fired(cfg, view)
