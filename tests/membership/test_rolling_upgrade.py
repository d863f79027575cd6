"""Rolling upgrade across the heartbeat's wire version: a node of version 2 speaks version 1 to a peer
still of version 1 (0.1.0), and version 2 again once the peer does.

"The old node" here is d516699 (0.1.0, wire version 1): a packet its encoder made
(tests/fixtures/wire/v1-d516699.json) and its decode rules (``v1_decode``, below), with which it
reads what this node sends."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import random
import socket
import struct
import zlib

import pytest

from hasupd import config
from hasupd.membership import heartbeat as hbmod
from hasupd.membership import report, wire
from hasupd.model import DrbdStatus, NodeState, ResourceStatus, ResState, node_state_from_dict, to_dict

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "wire", "v1-d516699.json")
KEY = os.urandom(64)

# d516699's wire.py: the same header as today's, and the version check that drops version 2
V1_HEAD = struct.Struct("!4sBBBBBQQQddf8sH")
V1_MAX_PACKET = 1472
V1_MAX_PAYLOAD_JSON = 64 * 1024


class V1Drop(Exception):
    pass


def v1_decode(data: bytes, key: bytes, cluster: str) -> tuple[str, dict]:
    """(sender, payload) as d516699's wire.decode accepts a packet, or V1Drop(its reason)."""
    if len(data) > V1_MAX_PACKET:
        raise V1Drop("oversized")
    if len(data) < V1_HEAD.size + 32:
        raise V1Drop("truncated")
    magic, version, flags, _ring, clen, nlen, *_, plen = V1_HEAD.unpack_from(data)
    if magic != b"HSUP":
        raise V1Drop("malformed")
    if version != 1:
        raise V1Drop("version")
    end = V1_HEAD.size + clen + nlen + plen
    if end + 32 != len(data) or flags & ~0x01:
        raise V1Drop("malformed")
    if data[V1_HEAD.size:V1_HEAD.size + clen] != cluster.encode():
        raise V1Drop("cluster")
    if not hmac.compare_digest(hmac.new(key, data[:end], hashlib.sha256).digest(), data[end:]):
        raise V1Drop("mac")
    body = data[V1_HEAD.size + clen + nlen:end]
    if flags & 0x01:
        d = zlib.decompressobj()
        body = d.decompress(body, V1_MAX_PAYLOAD_JSON)
        if d.unconsumed_tail or not d.eof:
            raise V1Drop("malformed")
    payload = json.loads(body)
    if not isinstance(payload, dict):
        raise V1Drop("malformed")
    # and its engine: payload["node"] through model.node_state_from_dict (unchanged since d516699)
    if "node" in payload:
        node_state_from_dict(payload["node"])
    return data[V1_HEAD.size + clen:V1_HEAD.size + clen + nlen].decode(), payload


def fixture() -> dict:
    with open(FIXTURE) as f:
        return json.load(f)


def sample_node(name: str = "n1") -> NodeState:
    return NodeState(name=name, alive=True, rings=(True,), incarnation=wire.new_incarnation(),
                     drbd={"r0": DrbdStatus("r0", up=True, role="Primary", disk="UpToDate")},
                     resources={"web-fs": ResourceStatus(ResState.STARTED, "mounted", 0.0),
                                "web-ip": ResourceStatus(ResState.STARTED, "", 0.0)},
                     claims={"web": 4}, settled=True, config_digest="0123456789abcdef")


# ---------------------------------------------------------------- the packets


def test_a_packet_of_the_released_version_1_is_read():
    fx = fixture()
    key, data = bytes.fromhex(fx["key_hex"]), bytes.fromhex(fx["packet_hex"])
    p = wire.decode(data, key, fx["cluster"])
    assert p.version == 1 and p.node == "n2" and p.seq == 7
    ns = node_state_from_dict(p.payload["node"])
    assert ns.claims == {"web": 3} and ns.drbd["r0"].role == "Primary"
    assert ns.resources["web-fs"].state is ResState.STARTED
    # today's encoder in version 1 makes the very same bytes: it is what the old node sends
    assert wire.encode(key, fx["cluster"], p.node, p.incarnation, p.seq, p.digest, p.payload,
                       ring=p.ring, sent=p.sent, echo=p.echo, hold=p.hold, version=1) == data


def test_a_version_1_packet_still_needs_the_mac():
    fx = fixture()
    data = bytearray(bytes.fromhex(fx["packet_hex"]))
    data[-40] ^= 1  # the payload's last byte
    with pytest.raises(wire.BadPacket) as e:
        wire.decode(bytes(data), bytes.fromhex(fx["key_hex"]), fx["cluster"])
    assert e.value.reason == "mac"
    with pytest.raises(wire.BadPacket) as e:
        wire.decode(bytes.fromhex(fx["packet_hex"]), KEY, fx["cluster"])
    assert e.value.reason == "mac"


def test_the_version_1_form_is_what_the_old_node_accepts():
    ns = sample_node()
    packet = wire.encode(KEY, "rolling", "n1", ns.incarnation, 1, "0123456789abcdef",
                         {**report.form(ns, 1), "state": {}, "outdate": []}, version=1)
    sender, payload = v1_decode(packet, KEY, "rolling")
    assert sender == "n1" and node_state_from_dict(payload["node"]) == node_state_from_dict(to_dict(ns))
    # the problem this solves: version 2 is dropped by the old node
    v2 = wire.encode(KEY, "rolling", "n1", ns.incarnation, 2, "0123456789abcdef", report.form(ns, 2))
    with pytest.raises(V1Drop, match="version"):
        v1_decode(v2, KEY, "rolling")
    with pytest.raises(ValueError):
        wire.encode(KEY, "rolling", "n1", ns.incarnation, 3, "0123456789abcdef", {}, version=3)


# ---------------------------------------------------------------- the heartbeat, over loopback sockets


def make_config(port: int):
    return config.loads(
        "cluster: rolling\nnodes:\n  - {name: n1, addresses: [127.0.0.11]}\n"
        "  - {name: n2, addresses: [127.0.0.12]}\nheartbeat:\n  transport: unicast\n  rings:\n"
        f"    - {{bind_network: 127.0.0.0/8, port: {port}}}\n  interval: 100ms\n  deadtime: 2s\ngroups: []\n")


async def received(sock: socket.socket, timeout: float = 5.0) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 2048), timeout)


async def newest_packet(sock: socket.socket) -> bytes:
    """The next packet after the ones already queued (sent before what the test just changed)."""
    while True:
        try:
            sock.recv(2048)
        except BlockingIOError:
            break
    return await received(sock)


async def version_event(hb) -> hbmod.PeerVersion:
    while True:
        ev = await asyncio.wait_for(hb.events.get(), 5.0)
        if isinstance(ev, hbmod.PeerVersion):
            return ev


def versions_queued(hb) -> list:
    out = []
    while not hb.events.empty():
        ev = hb.events.get_nowait()
        if isinstance(ev, hbmod.PeerVersion):
            out.append(ev)
    return out


def test_heartbeat_speaks_version_1_to_an_old_peer_and_version_2_after_its_upgrade():
    port = random.randint(20000, 60000)

    async def main():
        cfg = make_config(port)
        n1 = hbmod.Heartbeat(cfg, "n1", KEY)
        old = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # n2 of version 1
        old.bind(("127.0.0.12", port))
        old.setblocking(False)
        try:
            await n1.start()
            # before n2 is heard: version 1, so the old node never sees a silence
            _, first = v1_decode(await received(old), KEY, "rolling")
            assert first == {"wire": 2}  # no report yet; it says it reads version 2
            inc_v1 = wire.new_incarnation()
            n1_addr = ("127.0.0.11", port)
            hostile = wire.encode(os.urandom(64), "rolling", "n2", inc_v1, 1, cfg.digest(),
                                  {"node": to_dict(sample_node("n2"))}, version=1)
            old.sendto(hostile, n1_addr)  # without the key: dropped, no version learnt
            old.sendto(wire.encode(KEY, "rolling", "n2", inc_v1, 2, cfg.digest(),
                                   {"node": to_dict(sample_node("n2")), "state": {}}, version=1), n1_addr)
            ev = await version_event(n1)
            assert ev == hbmod.PeerVersion(1, True) and n1.speak_version == 1
            assert n1.counters["dropped_mac"] == 1
            assert hbmod.version_message("n2", 1) == \
                "n2 speaks wire version 1: this node sends version 1 until it is upgraded"
            me = sample_node()
            n1.set_payload({**report.form(me, n1.speak_version), "state": {}}, version=n1.speak_version)
            n1.send_now()
            _, payload = v1_decode(await newest_packet(old), KEY, "rolling")
            assert node_state_from_dict(payload["node"]).claims == {"web": 4} and payload["wire"] == 2
            # a version 1 packet cannot claim to read a version this node does not speak
            old.sendto(wire.encode(KEY, "rolling", "n2", inc_v1, 3, cfg.digest(), {"wire": 99}, version=1),
                       n1_addr)
            await asyncio.sleep(0.3)
            assert versions_queued(n1) == [] and n1.speak_version == 1
            # n2 upgraded: restarted (a new incarnation) into version 2
            inc_v2 = wire.new_incarnation()
            old.sendto(wire.encode(KEY, "rolling", "n2", inc_v2, 1, cfg.digest(),
                                   {"N": report.pack(sample_node("n2"))}), n1_addr)
            ev = await version_event(n1)
            assert ev == hbmod.PeerVersion(2, True) and n1.speak_version == 2
            n1.set_payload({**report.form(me, 2), "state": {}}, version=2)
            n1.send_now()
            p = wire.decode(await newest_packet(old), KEY, "rolling")
            assert p.version == 2 and report.unpack(p.payload["N"]).claims == {"web": 4}
            # the peer's key holder downgrading it again means a restart into version 1: it is followed
            inc_back = wire.new_incarnation()
            old.sendto(wire.encode(KEY, "rolling", "n2", inc_back, 1, cfg.digest(), {"state": {}}, version=1),
                       n1_addr)
            assert await version_event(n1) == hbmod.PeerVersion(1, True)
        finally:
            await n1.close()
            old.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_fresh_version_2_pair_switches_to_version_2_without_an_alert():
    port = random.randint(20000, 60000)

    async def main():
        cfg = make_config(port)
        n1, n2 = hbmod.Heartbeat(cfg, "n1", KEY), hbmod.Heartbeat(cfg, "n2", KEY)
        try:
            await n1.start()
            await n2.start()
            seen = [await version_event(n1), await version_event(n2)]
            await asyncio.sleep(0.5)
            seen += versions_queued(n1) + versions_queued(n2)
            assert seen == [hbmod.PeerVersion(2, False)] * 2
            assert n1.speak_version == n2.speak_version == 2
            assert n1.counters["dropped_version"] == n2.counters["dropped_version"] == 0
        finally:
            await n1.close()
            await n2.close()

    asyncio.run(asyncio.wait_for(main(), 30))
