"""Wire format: round trip, every rejection reason, key files, fuzzing."""

from __future__ import annotations

import os
import random
import stat
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hasupd import config
from hasupd.membership import report, wire
from hasupd.model import DrbdStatus, NodeState, ResourceStatus, ResState

KEY = bytes(range(64))
OTHER_KEY = bytes(range(1, 65))
DIGEST = "0123456789abcdef"
INC = "00000000000000010000000000000002"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def packet(seq=1, node="n2", cluster="web", inc=INC, key=KEY, payload=None, ring=0, **kw) -> bytes:
    return wire.encode(key, cluster, node, inc, seq, DIGEST, payload or {"x": 1}, ring=ring, **kw)


def reason(data, guard=None, key=KEY, **kw) -> str:
    with pytest.raises(wire.BadPacket) as e:
        wire.decode(data, key, "web", guard, **kw)
    return e.value.reason


def test_round_trip():
    g = wire.ReplayGuard()
    data = packet(seq=7, payload={"a": [1, 2], "b": "c"}, ring=1, sent=123.5, echo=99.25, hold=0.5)
    p = wire.decode(data, KEY, "web", g)
    assert (p.node, p.cluster, p.incarnation, p.seq, p.ring, p.digest) == ("n2", "web", INC, 7, 1, DIGEST)
    assert (p.sent, p.echo, p.hold) == (123.5, 99.25, 0.5)
    assert p.payload == {"a": [1, 2], "b": "c"}
    assert wire.parse_body(p.body, p.compressed) == p.payload
    q = wire.decode(data, KEY, "web", None, parse=False)
    assert q.payload is None and q.body == p.body


def reference_payload() -> dict:
    """What the engine sends for the reference setup (one group, DRBD r0,
    vip + filesystem + httpd), with busy values everywhere."""
    cfg = config.load(os.path.join(REPO, "conf", "hasupd.yaml"))
    node = NodeState(
        name="secondarycentos", alive=True, rings=(True,), incarnation=wire.new_incarnation(),
        drbd={"r0": DrbdStatus("r0", up=True, role="Primary", peer_role="Secondary", disk="UpToDate",
                               peer_disk="Inconsistent", connection="Connected", replication="SyncSource",
                               sync_percent=45.3, sync_eta_s=1234.0, sync_speed_kib=102400.0,
                               out_of_sync_kib=9876543, minor=1)},
        resources={
            "res_vip": ResourceStatus(ResState.STARTED, "192.168.0.20/24 on eth0", time.monotonic()),
            "res_filesystem": ResourceStatus(ResState.STARTED, "/dev/drbd1 on /mnt/data (ext4)", time.monotonic()),
            "res_httpd": ResourceStatus(ResState.STARTED, "pid 123456, server-status ok in 3 ms", time.monotonic()),
        },
        claims={"rg_web": 12}, settled=True, config_digest=cfg.digest(),
    )
    state = {"e": 42, "n": ["primarycentos", "rg_web", "res_httpd", "secondarycentos"],
             "f": [[0, 1, 2, 1, time.time(), 41]], "b": [[1, 0, 40]], "c": [[1, 0, 39]],
             "m": [[1, 38, 3, 0]], "r": [[1, 37, 1]], "s": [[3, 0, 36]]}
    return {"N": report.pack(node), "state": state}


def test_reference_packet_is_small():
    data = wire.encode(KEY, "web", "secondarycentos", wire.new_incarnation(), 2**40, DIGEST,
                       reference_payload())
    assert len(data) < 1200
    assert report.unpack(wire.decode(data, KEY, "web", wire.ReplayGuard()).payload["N"]).claims == {"rg_web": 12}


def test_a_version_1_packet_is_still_read():
    """Same layout; only the payload schema changed (the engine reads both "node" and "N")."""
    data = bytearray(packet(payload={"node": {"name": "n2"}}))
    data[4] = 1
    end = len(data) - wire.MAC_LEN
    data[end:] = wire._mac(KEY, bytes(data[:end]))
    assert wire.decode(bytes(data), KEY, "web").payload == {"node": {"name": "n2"}}


def test_too_large_payload_refused_at_encode():
    with pytest.raises(ValueError, match="exceeds"):
        wire.encode(KEY, "web", "n1", INC, 1, DIGEST, {"x": os.urandom(2000).hex()})


def test_rejections():
    good = packet()
    assert reason(good[:10]) == "truncated"
    assert reason(good[:-1]) == "truncated"
    assert reason(good + b"\0") == "malformed"
    assert reason(b"\0" * (wire.MAX_PACKET + 1)) == "oversized"
    assert reason(b"XXXX" + good[4:]) == "malformed"
    assert reason(good[:4] + bytes([3]) + good[5:]) == "version"
    assert reason(good[:4] + bytes([0]) + good[5:]) == "version"
    assert reason(packet(cluster="other")) == "cluster"
    assert reason(good, key=OTHER_KEY) == "mac"
    flipped = bytearray(good)
    flipped[wire.HEADER_LEN + 5] ^= 1  # inside the node name
    assert reason(bytes(flipped)) == "mac"
    assert reason(good, ring=1) == "ring"
    assert reason(good, sender="n1") == "node"


def test_replays():
    g = wire.ReplayGuard()
    wire.decode(packet(seq=5), KEY, "web", g)
    assert reason(packet(seq=5), g) == "replay"
    assert reason(packet(seq=4), g) == "replay"
    wire.decode(packet(seq=5, ring=1), KEY, "web", g)  # same sequence on another ring is fine
    wire.decode(packet(seq=6), KEY, "web", g)
    newer = "00000000000000020000000000000000"
    wire.decode(packet(seq=1, inc=newer), KEY, "web", g)  # a restart starts again at 1
    assert reason(packet(seq=100, inc=INC), g) == "replay"  # the old incarnation is gone
    # a rejected packet does not move the guard
    assert reason(packet(seq=2, inc=newer, key=OTHER_KEY), g) == "mac"
    wire.decode(packet(seq=2, inc=newer), KEY, "web", g)


def test_incarnations_order_by_start_time():
    a = wire.new_incarnation(1000.0)
    b = wire.new_incarnation(1000.001)
    assert wire.incarnation_key(a) < wire.incarnation_key(b)
    assert len(a) == 32 and a != wire.new_incarnation(1000.0)
    with pytest.raises(ValueError):
        wire.incarnation_key("xyz")


def test_malformed_payload_after_valid_mac():
    import zlib

    def raw_packet(body: bytes, flags: int) -> bytes:
        c, n = b"web", b"n2"
        head = struct.pack("!4sBBBBBQQQddf8sH", wire.MAGIC, wire.VERSION, flags, 0, len(c), len(n),
                           1, 2, 1, 0.0, 0.0, 0.0, bytes.fromhex(DIGEST), len(body))
        data = head + c + n + body
        return data + wire._mac(KEY, data)

    assert reason(raw_packet(b"[1,2]", 0)) == "malformed"
    assert reason(raw_packet(b"{bad", 0)) == "malformed"
    assert reason(raw_packet(b"\xff\xfe", 0)) == "malformed"
    assert reason(raw_packet(b"not zlib", 1)) == "malformed"
    assert reason(raw_packet(zlib.compress(b"{" * 2000), 1)) == "malformed"
    assert reason(raw_packet(zlib.compress(b" " * (wire.MAX_PAYLOAD_JSON + 10) + b"{}"), 1)) == "malformed"
    assert reason(raw_packet(b"{}", 4)) == "malformed"
    assert reason(raw_packet(b"[" * 1300, 0)) == "malformed"
    assert wire.decode(raw_packet(b"{}", 0), KEY, "web").payload == {}


# ---------------------------------------------------------------- key files


def test_write_and_load_key(tmp_path):
    path = str(tmp_path / "authkey")
    wire.write_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o400
    key = wire.load_key(path)
    assert len(key) == 64
    with pytest.raises(wire.KeyFileError, match="already exists"):
        wire.write_key(path)
    wire.write_key(path, overwrite=True)
    assert wire.load_key(path) != key
    assert os.listdir(tmp_path) == ["authkey"]


def test_load_key_refusals(tmp_path):
    path = tmp_path / "authkey"
    with pytest.raises(wire.KeyFileError, match="No such file"):
        wire.load_key(str(path))
    path.write_bytes(os.urandom(64))
    os.chmod(path, 0o644)
    with pytest.raises(wire.KeyFileError, match=r"mode 0644 gives group or others access"):
        wire.load_key(str(path))
    os.chmod(path, 0o440)
    with pytest.raises(wire.KeyFileError, match="mode 0440"):
        wire.load_key(str(path))
    os.chmod(path, 0o620)
    with pytest.raises(wire.KeyFileError, match="mode 0620"):
        wire.load_key(str(path))
    os.chmod(path, 0o600)
    assert len(wire.load_key(str(path))) == 64
    os.symlink(path, tmp_path / "link")  # the mode checked is the file's, not the link's
    assert len(wire.load_key(str(tmp_path / "link"))) == 64
    with pytest.raises(wire.KeyFileError, match="not a regular file"):
        wire.load_key(str(tmp_path))
    path.write_bytes(b"short")
    with pytest.raises(wire.KeyFileError, match="5 bytes, at least 32"):
        wire.load_key(str(path))


# ---------------------------------------------------------------- fuzzing


def check_decode(data: bytes, key: bytes = KEY) -> None:
    """decode raises only BadPacket, and accepts only a correctly signed packet."""
    try:
        p = wire.decode(data, key, "web", wire.ReplayGuard())
    except wire.BadPacket as e:
        assert e.reason in wire.REASONS
        return
    # accepted: the MAC must be the right one over everything before it
    assert wire._mac(key, data[:-32]) == data[-32:]
    assert p.cluster == "web"


VALID = [
    packet(),
    packet(seq=2**63, payload={"big": "y" * 300}),
    packet(payload=reference_payload(), node="secondarycentos"),
    packet(payload={"list": list(range(100))}, ring=3),
]


def mutations(data: bytes, rng: random.Random):
    for _ in range(40):  # bit flips
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        yield bytes(b)
    for n in range(0, len(data), max(1, len(data) // 30)):  # truncations
        yield data[:n]
    for _ in range(10):  # extensions
        yield data + os.urandom(rng.randint(1, 40))
    for _ in range(10):  # splices of another valid packet
        other = rng.choice(VALID)
        cut = rng.randrange(min(len(data), len(other)))
        yield data[:cut] + other[cut:]
    for i in (5, 6, 7, 8, 9, wire.HEADER_LEN - 2):  # flags, ring, lengths
        for v in (0, 1, 255):
            b = bytearray(data)
            b[i] = v
            yield bytes(b)


def test_mutated_corpus():
    rng = random.Random(8)
    count = 0
    for data in VALID:
        for bad in mutations(data, rng):
            check_decode(bad)
            if bad not in VALID:  # a splice may rebuild another valid packet
                with pytest.raises(wire.BadPacket):
                    wire.decode(bad, KEY, "web", wire.ReplayGuard())
            count += 1
    assert count > 400


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=1600))
def test_fuzz_random_bytes(data):
    check_decode(data)
    check_decode(wire.MAGIC + bytes([wire.VERSION]) + data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(VALID) - 1), st.binary(max_size=60), st.integers(0, 1500), st.integers(0, 255))
def test_fuzz_mutated_valid(which, junk, pos, value):
    data = bytearray(VALID[which])
    pos %= len(data)
    data[pos] = value
    check_decode(bytes(data))
    check_decode(bytes(data[:pos]) + junk)
    check_decode(VALID[which] + junk)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=8), c, max_size=5),
                    max_leaves=30))
def test_fuzz_payload_round_trip(value):
    payload = {"v": value}
    try:
        data = wire.encode(KEY, "web", "n2", INC, 1, DIGEST, payload)
    except ValueError:
        return  # too large for one packet: refused at encode
    assert wire.decode(data, KEY, "web").payload == payload
    assert reason(data, key=OTHER_KEY) == "mac"


def test_load_key_refuses_a_key_owned_by_another_user(tmp_path):
    """Issue 16 low: www-data owning /etc/hasupd/authkey (mode 0400) could
    read it, or chmod and rewrite it, and sign packets as the peer."""
    path = tmp_path / "authkey"
    wire.write_key(str(path))
    os.chown(path, 33, 33)
    with pytest.raises(wire.KeyFileError, match=r"owned by uid 33, not 0 \(run `chown root:root"):
        wire.load_key(str(path))
    os.chown(path, 0, 33)  # the group has no access bits: harmless
    assert len(wire.load_key(str(path))) == 64
