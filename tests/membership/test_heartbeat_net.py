"""Heartbeat over real sockets: two nodes in two namespaces, two rings (two
bridges), both transports.  n1 is the observer, n2 the peer we hurt."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow]

TRANSPORTS = ["multicast", "unicast"]
SLACK = 0.25  # scheduling on a loaded 2-core machine


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_peer_seen_alive_within_two_intervals(make_pair, transport):
    pair = make_pair(transport)
    a = pair.start("n1")
    b = pair.start("n2")
    seen_by_a = a.wait_for("PeerAlive", 5)
    seen_by_b = b.wait_for("PeerAlive", 5)
    assert seen_by_a and seen_by_b
    # both measured from the moment n2's sockets were open
    assert seen_by_a["wall"] - b.ready["wall"] <= 2 * pair.interval + SLACK
    assert seen_by_b["wall"] - b.ready["wall"] <= 2 * pair.interval + SLACK
    assert seen_by_a["incarnation"] == b.incarnation and not seen_by_a["restarted"]
    time.sleep(3 * pair.interval)
    st = a.status()
    assert st["peer"]["alive"] and st["peer"]["rings"] == [True, True]
    assert all(rtt is not None and 0 < rtt < 0.1 for rtt in st["peer"]["rtt"])
    assert st["counters"]["received"] >= 4 and st["counters"]["sent"] >= 4
    assert not any(v for k, v in st["counters"].items() if k.startswith("dropped_"))
    # a payload set on n2 reaches n1
    since = a.mark()
    b.set_payload({"node": {"name": "n2", "standby": True}})
    got = a.wait_for("PeerPayload", 2, since)
    assert got is not None and got["payload"] == {"node": {"name": "n2", "standby": True}}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_ring_cut_is_degraded_not_dead(make_pair, transport):
    pair = make_pair(transport)
    a, b = pair.start_both()
    since = a.mark()
    cut_at = time.time()
    pair.topo.cut_ring("n2", 1)
    down = a.wait_for("RingDown", pair.deadtime + 1.5, since)
    assert down is not None and down["ring"] == 1
    assert down["wall"] - cut_at >= pair.deadtime - pair.interval - 0.05
    assert b.wait_for("RingDown", 3, since=0, pred=lambda d: d["ring"] == 1) is not None
    time.sleep(1.0)
    st = a.status()
    assert st["peer"]["alive"] and st["peer"]["rings"] == [True, False]
    since_up = a.mark()
    pair.topo.heal_ring("n2", 1)
    up = a.wait_for("RingUp", 3, since_up)
    assert up is not None and up["ring"] == 1
    assert a.status()["peer"]["rings"] == [True, True]
    assert a.events("PeerDead") == [] and b.events("PeerDead") == []
    assert len(a.events("PeerAlive")) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_both_rings_cut_dead_then_back_with_same_incarnation(make_pair, transport):
    pair = make_pair(transport)
    a, b = pair.start_both()
    since = a.mark()
    cut_at = time.time()
    pair.topo.isolate("n2")
    dead = a.wait_for("PeerDead", pair.deadtime + 3, since)
    assert dead is not None
    took = dead["wall"] - cut_at
    # silent on every ring for deadtime: never before (the last packet left at most
    # one interval before the cut), and within deadtime + 1 s
    assert pair.deadtime - pair.interval - 0.05 <= took <= pair.deadtime + 1.0, took
    assert a.events("RingDown", since) == []  # one death, not one event per ring
    st = a.status()
    assert not st["peer"]["alive"] and st["peer"]["rings"] == [False, False]
    assert st["peer"]["lost_at"] is not None
    since = a.mark()
    pair.topo.restore("n2")
    back = a.wait_for("PeerAlive", 3, since)
    assert back is not None
    assert back["incarnation"] == b.incarnation and back["restarted"] is False
    time.sleep(3 * pair.interval)
    assert a.status()["peer"]["rings"] == [True, True]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_peer_restart_is_a_new_incarnation(make_pair, transport):
    pair = make_pair(transport)
    a, b = pair.start_both()
    old = b.incarnation
    final = b.stop()
    assert final is not None and final["counters"]["sent"] > 0
    since = a.mark()
    b2 = pair.start("n2")
    back = a.wait_for("PeerAlive", 5, since, pred=lambda d: d["incarnation"] == b2.incarnation)
    assert back is not None and back["restarted"] is True and b2.incarnation != old
    assert b2.wait_for("PeerAlive", 5) is not None
    st = a.status()
    assert st["peer"]["incarnation"] == b2.incarnation and st["peer"]["alive"]
    assert st["counters"]["dropped_replay"] == 0


def _loss_run(make_pair, transport: str, profile: str, seconds: float) -> dict:
    pair = make_pair(transport, profile)
    a, b = pair.start_both()
    pair.topo.loss("n2", 0, 30)
    time.sleep(seconds)
    st_a, st_b = a.status(), b.status()
    dropped = pair.topo.loss_dropped("n2", 0)
    pair.topo.clear_loss("n2", 0)
    return {"a": a, "b": b, "st_a": st_a, "st_b": st_b, "dropped": dropped, "pair": pair}


def test_thirty_percent_loss_on_one_ring_never_kills(make_pair):
    """30 s of 30% loss on ring 0, at the default (200ms/2s) and the tuned
    (50ms/300ms) profile, both transports: four labs side by side."""
    runs = [(t, p) for t in TRANSPORTS for p in ("default", "tuned")]
    with ThreadPoolExecutor(len(runs)) as pool:
        results = list(pool.map(lambda tp: _loss_run(make_pair, tp[0], tp[1], 30.0), runs))
    for (transport, profile), r in zip(runs, results):
        what = f"{transport}/{profile}"
        assert r["a"].events("PeerDead") == [], what
        assert r["b"].events("PeerDead") == [], what
        assert len(r["a"].events("PeerAlive")) == 1 and len(r["b"].events("PeerAlive")) == 1, what
        assert r["st_a"]["peer"]["alive"] and r["st_b"]["peer"]["alive"], what
        # the loss was real: nftables dropped packets and both ends measured it on ring 0 only
        interval = r["pair"].interval
        assert r["dropped"] > 0.15 * 2 * 30 / interval, (what, r["dropped"])
        for st in (r["st_a"], r["st_b"]):
            loss0, loss1 = st["peer"]["loss"]
            assert loss0 > 0.1 and loss1 < 0.1, (what, st["peer"]["loss"])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_forged_packets_are_dropped_and_change_nothing(make_pair, transport):
    pair = make_pair(transport)
    a = pair.start("n1")
    client = pair.topo.address("client", 0)
    # n2 is not running: forged "n2" packets (wrong key) must not make it alive
    out = pair.tool("client", "forge", "--dest", pair.dest("n1"), "--src", client,
                    "--count", "40", "--rate", "40")
    assert '"sent": 40' in out.stdout
    pair.tool("client", "forge", "--dest", pair.dest("n1"), "--src", client,
              "--count", "5", "--rate", "50", "--cluster", "another")
    time.sleep(0.3)
    st = a.status()
    assert st["counters"]["dropped_mac"] >= 38, st["counters"]
    assert st["counters"]["dropped_cluster"] >= 4, st["counters"]
    assert st["counters"]["received"] == 0
    assert a.events("PeerAlive") == [] and not st["peer"]["alive"]
    # with n2 alive then crashed, forgery going on does not keep it alive
    b = pair.start("n2")
    assert a.wait_for("PeerAlive", 5) is not None
    with ThreadPoolExecutor(1) as pool:
        forging = pool.submit(pair.tool, "client", "forge", "--dest", pair.dest("n1"), "--src", client,
                              "--count", "100", "--rate", "25")
        time.sleep(0.5)
        since = a.mark()
        killed_at = time.time()
        b.kill()
        dead = a.wait_for("PeerDead", pair.deadtime + 3, since)
        forging.result()
    assert dead is not None and dead["wall"] - killed_at <= pair.deadtime + 1.0
    assert a.events("PeerAlive", since) == []
    st = a.status()
    assert st["counters"]["dropped_mac"] >= 38 + 90, st["counters"]
    assert not st["peer"]["alive"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_replayed_packets_are_dropped(make_pair, transport, tmp_path):
    pair = make_pair(transport)
    a, b = pair.start_both()
    capture = tmp_path / f"captured-{transport}.hex"
    out = pair.tool("lan", "capture", "--iface", pair.topo.port("n2", 0),
                    "--src", pair.topo.address("n2", 0), "--seconds", "1.5", "--out", str(capture))
    n = int(out.stdout.split(":")[1].strip(" }\n"))
    assert n >= 5, out.stdout
    client = pair.topo.address("client", 0)
    # replayed while n2 is alive: every one is old
    pair.tool("client", "replay", "--file", str(capture), "--dest", pair.dest("n1"), "--src", client)
    time.sleep(0.3)
    assert a.status()["counters"]["dropped_replay"] >= n
    # n2 crashes; the captured packets replayed afterwards do not revive it
    since = a.mark()
    b.kill()
    assert a.wait_for("PeerDead", pair.deadtime + 3, since) is not None
    pair.tool("client", "replay", "--file", str(capture), "--dest", pair.dest("n1"), "--src", client)
    time.sleep(0.5)
    st = a.status()
    assert st["counters"]["dropped_replay"] >= 2 * n, (n, st["counters"])
    assert a.events("PeerAlive", since) == [] and not st["peer"]["alive"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_node_side_cut_send_errors_do_not_stall_the_other_ring(make_pair, transport):
    """Cable pulled on the node side: sendto() fails on that ring (ENETUNREACH);
    the other ring keeps the peer alive, and the ring recovers when plugged back."""
    pair = make_pair(transport)
    a, b = pair.start_both()
    since = a.mark()
    pair.topo.run("n2", ["ip", "link", "set", "eth1", "down"])
    down = a.wait_for("RingDown", pair.deadtime + 1.5, since)
    assert down is not None and down["ring"] == 1
    st_b = b.status()
    assert st_b["counters"]["send_error"] > 0, st_b["counters"]
    sent_before = st_b["counters"]["sent"]
    time.sleep(1.0)
    assert b.status()["counters"]["sent"] >= sent_before + 1.0 / pair.interval - 2  # ring 0 still sends
    assert a.status()["peer"]["alive"] and a.events("PeerDead") == []
    since = a.mark()
    pair.topo.run("n2", ["ip", "link", "set", "eth1", "up"])
    # the ring comes back (a fresh socket at the latest REOPEN_AFTER later)
    up = a.wait_for("RingUp", 8, since)
    assert up is not None and up["ring"] == 1
    up_b = b.wait_for("RingUp", 8, since=0)
    assert up_b is not None and up_b["ring"] == 1
    assert b.status()["peer"]["rings"] == [True, True]
