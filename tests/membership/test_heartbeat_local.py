"""The Heartbeat API in one process: two instances over loopback unicast
(127.0.0.x, a random port), driven by one asyncio loop."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import sys
import time

import pytest

from hasupd import config
from hasupd.membership import heartbeat as hbmod
from hasupd.membership import wire

KEY = os.urandom(64)


def make_config(port: int, deadtime: str = "600ms", ring1: tuple[str, str] | None = None):
    addrs = {"n1": ["127.0.0.11"], "n2": ["127.0.0.12"]}
    rings = [f"    - {{bind_network: 127.0.0.0/8, port: {port}}}"]
    if ring1:
        addrs["n1"].append(ring1[0])
        addrs["n2"].append(ring1[1])
        rings.append(f"    - {{bind_network: 10.77.0.0/24, port: {port}}}")
    nodes = "\n".join(f"  - {{name: {n}, addresses: [{', '.join(a)}]}}" for n, a in addrs.items())
    return config.loads(
        f"cluster: local\nnodes:\n{nodes}\nheartbeat:\n  transport: unicast\n  rings:\n"
        + "\n".join(rings) + f"\n  interval: 100ms\n  deadtime: {deadtime}\ngroups: []\n")


async def next_event(hb, kind, timeout=3.0):
    async def find():
        while True:
            ev = await hb.events.get()
            if isinstance(ev, kind):
                return ev
    return await asyncio.wait_for(find(), timeout)


def drain(hb) -> list:
    out = []
    while not hb.events.empty():
        out.append(hb.events.get_nowait())
    return out


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_api_payload_digest_and_death():
    port = random.randint(20000, 60000)

    async def main():
        a = hbmod.Heartbeat(make_config(port), "n1", KEY)
        b = hbmod.Heartbeat(make_config(port, deadtime="700ms"), "n2", KEY)  # another digest
        assert a.peer() == hbmod.PeerView("n2", False, (False,), "", None, None, None, (None,), (0.0,),
                                          "", False, (None,))
        await a.start()
        await b.start()
        try:
            alive = await next_event(a, hbmod.PeerAlive)
            assert alive.incarnation == b.incarnation and not alive.restarted
            mismatch = await next_event(a, hbmod.ConfigMismatch)
            assert (mismatch.peer_digest, mismatch.local_digest) == (b.digest, a.digest)
            first = await next_event(a, hbmod.PeerPayload)
            assert first.payload == {"wire": 2}  # no report yet, only the version it reads (rolling upgrade)
            # a payload pushed with send_now arrives before the next tick
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            b.set_payload({"node": {"name": "n2", "claims": {"g": 3}}})
            b.send_now()
            b.send_now()  # coalesced with the first
            got = await next_event(a, hbmod.PeerPayload)
            assert got.payload == {"node": {"name": "n2", "claims": {"g": 3}}}
            assert loop.time() - t0 < 0.09
            await asyncio.sleep(0.35)
            assert not [e for e in drain(a) if isinstance(e, (hbmod.ConfigMismatch, hbmod.PeerPayload))]
            view = a.peer()
            assert view.alive and view.rings == (True,) and view.ever_seen
            assert view.incarnation == b.incarnation and view.config_digest == b.digest
            assert view.payload == {"node": {"name": "n2", "claims": {"g": 3}}}
            assert view.rtt[0] is not None and view.rtt[0] < 0.05
            assert view.ring_last_seen[0] == view.last_seen
            assert a.counters["received"] >= 3 and b.counters["sent"] >= 4
            with pytest.raises(ValueError, match="too large"):
                b.set_payload({"x": os.urandom(2000).hex()})
            # b stops: dead after deadtime (0.6 s) from its last packet
            await b.close()
            dead = await next_event(a, hbmod.PeerDead, timeout=2.0)
            assert 0.6 <= dead.at - dead.last_seen < 0.7
            view = a.peer()
            assert not view.alive and view.lost_at == dead.at and view.rings == (False,)
            # a restart: new incarnation, restarted=True
            b2 = hbmod.Heartbeat(make_config(port, deadtime="700ms"), "n2", KEY)
            await b2.start()
            back = await next_event(a, hbmod.PeerAlive)
            assert back.restarted and back.incarnation == b2.incarnation != b.incarnation
            await b2.close()
        finally:
            await a.close()
            await b.close()

    run(main())


def test_a_faltering_peer_is_suspected_once_before_it_is_dead():
    """PeerSuspect after suspect_after (2.5 intervals, at most half the deadtime) of silence, once
    per silence, before PeerDead; never while packets flow."""
    port = random.randint(20000, 60000)

    async def main():
        cfg = make_config(port, deadtime="2s")
        a = hbmod.Heartbeat(cfg, "n1", KEY)
        b = hbmod.Heartbeat(cfg, "n2", KEY)
        a.interval = b.interval = 0.2  # the default profile's (make_config says 100 ms)
        assert a.suspect_after == 0.5
        await a.start()
        await b.start()
        try:
            await next_event(a, hbmod.PeerAlive)
            await asyncio.sleep(1.2)
            assert not [e for e in drain(a) if isinstance(e, hbmod.PeerSuspect)]
            await b.close()
            suspect = await next_event(a, hbmod.PeerSuspect, timeout=2.0)
            assert 0.5 <= suspect.at - suspect.last_seen < 0.8
            dead = await next_event(a, hbmod.PeerDead, timeout=3.0)
            assert dead.last_seen == suspect.last_seen
            assert not [e for e in drain(a) if isinstance(e, hbmod.PeerSuspect)]  # once per silence
        finally:
            await a.close()
            await b.close()

    run(main())


def test_a_ring_that_cannot_open_does_not_stop_the_other():
    port = random.randint(20000, 60000)

    async def main():
        # ring 1's addresses exist nowhere here: it cannot open, nothing is sent on it
        cfg = make_config(port, ring1=("10.77.0.1", "10.77.0.2"))
        a = hbmod.Heartbeat(cfg, "n1", KEY)
        b = hbmod.Heartbeat(cfg, "n2", KEY)
        await a.start()
        await b.start()
        try:
            err = await next_event(a, hbmod.RingError)
            assert err.ring == 1 and "10.77.0.1" in err.message
            await next_event(a, hbmod.PeerAlive)
            down = await next_event(a, hbmod.RingDown, timeout=2.0)
            assert down.ring == 1
            await asyncio.sleep(0.5)
            assert a.peer().alive and a.peer().rings == (True, False)
            assert not [e for e in drain(a) if isinstance(e, hbmod.PeerDead)]
            assert a.counters["open_error"] >= 1 and a.counters["send_error"] == 0
        finally:
            await a.close()
            await b.close()

    run(main())


def test_bad_incarnation_refused():
    async def main():  # made on the loop that runs it, as the engine does (Python 3.9's Queue binds a loop)
        with pytest.raises(ValueError):
            hbmod.Heartbeat(make_config(5405), "n1", KEY, incarnation="nope")
        inc = wire.new_incarnation()
        assert hbmod.Heartbeat(make_config(5405), "n1", KEY, incarnation=inc).incarnation == inc

    run(main())


def test_standalone_refuses_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: [x]\n")
    assert hbmod.main(["--config", str(bad), "--node", "n1"]) == config.EX_CONFIG
    assert "bad.yaml:1:" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text(
        "cluster: c\nnodes:\n  - {name: n1, addresses: [127.0.0.11]}\n  - {name: n2, addresses: [127.0.0.12]}\n"
        "heartbeat:\n  transport: unicast\n  rings: [{bind_network: 127.0.0.0/8}]\n"
        f"  authkey: {tmp_path}/authkey\ngroups: []\n")
    assert hbmod.main(["--config", str(good), "--node", "n3"]) == config.EX_CONFIG
    assert "no node 'n3'" in capsys.readouterr().err
    assert hbmod.main(["--config", str(good), "--node", "n1"]) == config.EX_CONFIG
    assert "authkey" in capsys.readouterr().err


# what a thief of another uid tries, in order: each socket option that could
# share a bound UDP port, and the wildcard address
THIEF = r"""
import json, os, socket, sys, time
addr, port = sys.argv[1], int(sys.argv[2])
os.setgroups([]); os.setgid(65534); os.setuid(65534)
assert os.geteuid() == 65534
tries = [("SO_REUSEADDR", addr), ("SO_REUSEPORT", addr), ("SO_REUSEADDR+SO_REUSEPORT", addr),
         ("SO_REUSEADDR+SO_REUSEPORT", "0.0.0.0")]
refused, got = [], None
for opts, host in tries:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for o in opts.split("+"):
        s.setsockopt(socket.SOL_SOCKET, getattr(socket, o), 1)
    try:
        s.bind((host, port))
    except OSError as e:
        refused.append(f"{opts} {host}: {e.strerror}")
        s.close()
        continue
    got = s
    break
received = 0
if got is not None:
    got.settimeout(0.1)
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        try:
            got.recv(4096)
            received += 1
        except socket.timeout:
            pass
print(json.dumps({"bound": None if got is None else f"{opts} {host}", "refused": refused,
                  "received": received}))
"""


def test_another_uid_cannot_take_over_the_unicast_heartbeat_port():
    """Issue 16 High 2: uid 65534 binds our address and port (with every
    sharing option) while hasupd runs; it must be refused, and hasupd keeps
    receiving every packet."""
    port = random.randint(20000, 60000)

    async def main():
        a = hbmod.Heartbeat(make_config(port), "n1", KEY)
        b = hbmod.Heartbeat(make_config(port), "n2", KEY)
        await a.start()
        await b.start()
        try:
            await next_event(a, hbmod.PeerAlive)
            before = a.counters["received"]
            thief = await asyncio.create_subprocess_exec(
                sys.executable, "-c", THIEF, "127.0.0.11", str(port), stdout=asyncio.subprocess.PIPE)
            out, _ = await thief.communicate()
            got = json.loads(out)
            assert got["bound"] is None, got
            assert len(got["refused"]) == 4 and got["received"] == 0
            await asyncio.sleep(1.0)
            assert a.counters["received"] - before >= 5  # 1 s at 100 ms: nothing went astray
            assert a.peer().alive
        finally:
            await a.close()
            await b.close()

    run(main())


# ---------------------------------------------------------------- replay after a restart


def forged_by_peer(cfg, incarnation: str, seq: int, sent: float) -> bytes:
    """A packet of n2 as it was captured on the wire (signed with the real key)."""
    return wire.encode(KEY, cfg.cluster, "n2", incarnation, seq, cfg.digest(), wire.EMPTY, ring=0, sent=sent)


def test_replay_after_the_receiver_restarts_is_dropped(tmp_path):
    """Issue 16 Medium 5: n2 ran, was heard by n1, and died.  n1's daemon
    restarts; an attacker replays captured n2 packets (of the last
    incarnation, 30 s old; of an older one, a day old and also one with a
    current send time).  None may make the dead peer look alive."""
    port = random.randint(20000, 60000)
    cfg = make_config(port)
    state = str(tmp_path / "peers.json")

    async def main():
        a = hbmod.Heartbeat(cfg, "n1", KEY, replay_state=state)
        b = hbmod.Heartbeat(cfg, "n2", KEY)
        await a.start()
        await b.start()
        await next_event(a, hbmod.PeerAlive)
        await b.close()  # n2 dies
        await a.close()  # n1's daemon restarts
        now = time.time()
        day_old = wire.new_incarnation(now - 86400)
        captured = [forged_by_peer(cfg, day_old, s, now - 86400 + s * 0.2) for s in range(1, 6)]
        captured += [forged_by_peer(cfg, b.incarnation, s, now - 30 + s * 0.2) for s in range(1, 6)]
        older = wire.new_incarnation(wire.incarnation_key(b.incarnation)[0] / 1e6 - 5)
        captured += [forged_by_peer(cfg, older, 100, now)]  # an older incarnation, sent "now"
        a2 = hbmod.Heartbeat(cfg, "n1", KEY, replay_state=state)
        await a2.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for pkt in captured:
                    s.sendto(pkt, ("127.0.0.11", port))
            await asyncio.sleep(0.5)
            events = drain(a2)
            return events, dict(a2.counters), a2.peer()
        finally:
            await a2.close()

    events, counters, peer = run(main())
    assert not [e for e in events if isinstance(e, (hbmod.PeerAlive, hbmod.PeerPayload))], events
    assert not peer.alive and counters["received"] == 0
    assert counters["dropped_clock"] == 10 and counters["dropped_replay"] == 1, counters


def test_clock_skew_is_alerted_then_refused():
    """A live peer whose clock runs ahead: within half the tolerance nothing
    is said; beyond it, for a deadtime, a ClockSkew warning while its packets
    are still taken; beyond the tolerance they are dropped (counted) and
    ClockSkew says so.  A single stale packet (read after a freeze) is
    dropped without an alarm."""
    port = random.randint(20000, 60000)
    cfg = make_config(port)
    tolerated = hbmod.SKEW_DEADTIMES * cfg.heartbeat.deadtime
    inc = wire.new_incarnation()

    async def main():
        a = hbmod.Heartbeat(cfg, "n1", KEY)
        await a.start()
        out = []
        seq = 0
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for offsets in ([0.1] * 5, [-1.5, 0.0, 0.0], [0.7] * 5, [1.5] * 5):
                    for off in offsets:
                        seq += 1
                        s.sendto(forged_by_peer(cfg, inc, seq, time.time() + off * tolerated), ("127.0.0.11", port))
                        await asyncio.sleep(0.2)
                    out.append(([e for e in drain(a) if isinstance(e, hbmod.ClockSkew)], dict(a.counters)))
        finally:
            await a.close()
        return out

    (calm, c1), (stale, c2), (warned, c3), (refused, c4) = run(main())
    assert calm == [] and c1["received"] == 5
    assert stale == [] and c2["dropped_clock"] == 1 and c2["received"] == 7
    assert len(warned) == 1 and not warned[0].dropped and warned[0].offset > 0.6 * tolerated
    assert c3["received"] == 12
    assert len(refused) == 1 and refused[0].dropped and c4["received"] == 12 and c4["dropped_clock"] == 6
