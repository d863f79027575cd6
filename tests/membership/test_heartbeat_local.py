"""The Heartbeat API in one process: two instances over loopback unicast
(127.0.0.x, a random port), driven by one asyncio loop."""

from __future__ import annotations

import asyncio
import os
import random

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
            assert first.payload == {}
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
