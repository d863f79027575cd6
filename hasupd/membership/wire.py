"""Heartbeat packets: encode/decode with HMAC-SHA256.  Pure (no I/O) except
``load_key``/``write_key``.

Layout (network byte order), version 2::

    magic    4s   b"HSUP"
    version  B    2 (1 is read too: the same layout, its payload carries the
                  node report as ``"node"``; 2 carries the compact ``"N"`` of
                  membership/report.py; a node of version 1 drops version 2
                  packets as "version", so a node speaks version 1 to a peer
                  that does: see heartbeat.py "Rolling upgrade")
    flags    B    bit 0: payload is zlib-compressed
    ring     B    the ring the packet was sent on (authenticated, so a packet
                  cannot be moved to another ring)
    clen     B    length of the cluster name
    nlen     B    length of the node name
    inc_time Q    incarnation: start time of the sender's daemon (us, Unix)
    inc_rand Q    incarnation: 64 random bits
    seq      Q    sequence number, +1 per packet (one counter for all rings)
    sent     d    send time (Unix seconds, the sender's clock)
    echo     d    the peer's ``sent`` last received on this ring (0: none) ...
    hold     f    ... and how long ago it was received (round-trip estimate)
    digest   8s   digest of the shared configuration (Config.digest())
    plen     H    payload length
    cluster, node, payload (JSON object, compact; zlib when that is smaller)
    mac      32s  HMAC-SHA256(key, everything before it)

``decode`` raises ``BadPacket`` and nothing else.  Its ``reason`` is a
short stable name, used as a drop counter: truncated, oversized, malformed,
version, cluster, mac, ring, node, replay.  Checks run cheapest first and
the replay guard is updated only for a packet that passed every check.

Incarnation: ``"%016x%016x" % (start_us, random64)``.  A restart is newer
because it starts later; an older incarnation of a node after a newer one
was seen is rejected as a replay.  (If a node's clock is stepped back by
more than the uptime of its daemon, its new incarnation looks older and is
rejected until the receiver restarts: keep clocks synchronised.)
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
import stat
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any

MAGIC = b"HSUP"
VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_PACKET = 1472  # one unfragmented UDP datagram on a 1500-byte MTU
DETAIL_BUDGET = 1200  # a packet whose report carries the human details stays below this (the facts alone: MAX_PACKET)
MAX_PAYLOAD_JSON = 64 * 1024  # bound on a decompressed payload
MAC_LEN = 32
MIN_KEY = 32
FLAG_ZLIB = 0x01

_HEAD = struct.Struct("!4sBBBBBQQQddf8sH")
HEADER_LEN = _HEAD.size
REASONS = ("truncated", "oversized", "malformed", "version", "cluster", "mac", "ring", "node", "replay",
           "clock")


class BadPacket(Exception):
    """A packet that must be dropped; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, detail: str = "", offset: float | None = None):
        self.reason = reason
        self.detail = detail
        self.offset = offset  # "clock": how far the send time was from ours
        super().__init__(f"{reason}: {detail}" if detail else reason)


class KeyFileError(Exception):
    """The authentication key file is missing, unsafe or too short."""


@dataclass(frozen=True)
class Packet:
    cluster: str
    node: str
    incarnation: str
    seq: int
    sent: float
    ring: int
    digest: str  # 16 hex characters
    echo: float  # our own send time the peer echoes (0.0: none)
    hold: float
    body: bytes  # the payload as sent (compressed or not): compare to detect changes
    compressed: bool
    payload: dict | None  # parsed body (None when decoded with parse=False)
    version: int = VERSION  # the header's wire version (1: the payload's report is "node")


# ---------------------------------------------------------------- incarnations


def new_incarnation(now: float | None = None) -> str:
    start_us = int((time.time() if now is None else now) * 1_000_000)
    return f"{start_us:016x}{secrets.randbits(64):016x}"


def incarnation_key(incarnation: str) -> tuple[int, int]:
    """(start_us, random) from the text form; ValueError if it is not one."""
    if len(incarnation) != 32:
        raise ValueError(f"incarnation {incarnation!r} is not 32 hex digits")
    return int(incarnation[:16], 16), int(incarnation[16:], 16)


# ---------------------------------------------------------------- payload


@dataclass(frozen=True)
class Payload:
    """An encoded payload, made once per state change and sent many times."""

    body: bytes
    compressed: bool

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> Payload:
        raw = json.dumps(data if data is not None else {}, separators=(",", ":"),
                         sort_keys=True, default=str).encode()
        packed = zlib.compress(raw, 9)
        if len(packed) < len(raw):
            return cls(packed, True)
        return cls(raw, False)


EMPTY = Payload.of({})


def parse_body(body: bytes, compressed: bool) -> dict:
    """The payload dict of a body; BadPacket('malformed') if it is not one."""
    try:
        if compressed:
            d = zlib.decompressobj()
            raw = d.decompress(body, MAX_PAYLOAD_JSON)
            if d.unconsumed_tail or not d.eof:
                raise BadPacket("malformed", "payload too large or incomplete")
        else:
            raw = body
        value = json.loads(raw)
    except BadPacket:
        raise
    except (ValueError, zlib.error, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise BadPacket("malformed", f"payload: {type(e).__name__}") from None
    if not isinstance(value, dict):
        raise BadPacket("malformed", "payload is not an object")
    return value


# ---------------------------------------------------------------- encode / decode


@functools.lru_cache(maxsize=8)
def _mac_base(key: bytes) -> Any:
    return hmac.new(key, digestmod=hashlib.sha256)  # keyed once; .copy() per packet


def _mac(key: bytes, data: bytes | memoryview) -> bytes:
    h = _mac_base(key).copy()
    h.update(data)
    return h.digest()


def encode(key: bytes, cluster: str, node: str, incarnation: str, seq: int,
           digest: str, payload: Payload | dict | None = None, *, ring: int = 0,
           sent: float | None = None, echo: float = 0.0, hold: float = 0.0,
           version: int = VERSION) -> bytes:
    """One signed packet.  ValueError if a field is out of range or the
    packet would exceed MAX_PACKET (a payload too big for one datagram).
    ``version`` 1 is for a peer still of version 1 (the caller gives the
    payload in its form: the report as ``"node"``)."""
    if version not in READABLE_VERSIONS:
        raise ValueError(f"wire version {version} is not one of {READABLE_VERSIONS}")
    if not isinstance(payload, Payload):
        payload = Payload.of(payload)
    c, n = cluster.encode(), node.encode()
    if not (0 < len(c) < 256 and 0 < len(n) < 256):
        raise ValueError("cluster and node names must be 1 to 255 bytes")
    inc_time, inc_rand = incarnation_key(incarnation)
    try:
        digest_raw = bytes.fromhex(digest)
    except ValueError:
        raise ValueError(f"config digest {digest!r} is not hex") from None
    if len(digest_raw) != 8:
        raise ValueError(f"config digest {digest!r} is not 16 hex digits")
    size = HEADER_LEN + len(c) + len(n) + len(payload.body) + MAC_LEN
    if size > MAX_PACKET:
        raise ValueError(f"packet of {size} bytes exceeds {MAX_PACKET}: the state summary is too large")
    head = _HEAD.pack(MAGIC, version, FLAG_ZLIB if payload.compressed else 0, ring, len(c), len(n),
                      inc_time, inc_rand, seq, time.time() if sent is None else sent,
                      echo, hold, digest_raw, len(payload.body))
    data = b"".join((head, c, n, payload.body))
    return data + _mac(key, data)


class ReplayGuard:
    """Newest incarnation per node, and the highest sequence per (node, ring)
    within it.  Only ``decode`` updates it, after every other check passed."""

    def __init__(self) -> None:
        self._incarnation: dict[str, tuple[int, int]] = {}
        self._seq: dict[tuple[str, int], int] = {}

    def check(self, node: str, inc: tuple[int, int], ring: int, seq: int) -> str:
        """'' if acceptable, else why not."""
        newest = self._incarnation.get(node)
        if newest is not None:
            if inc < newest:
                return "from an older incarnation"
            if inc == newest and seq <= self._seq.get((node, ring), -1):
                return f"sequence {seq} already seen"
        return ""

    def newest(self) -> dict[str, tuple[int, int]]:
        """{node: its newest incarnation}: what outlives a restart (persisted by the caller)."""
        return dict(self._incarnation)

    def restore(self, newest: dict[str, tuple[int, int]]) -> None:
        for node, inc in newest.items():
            self._incarnation.setdefault(node, inc)

    def commit(self, node: str, inc: tuple[int, int], ring: int, seq: int) -> None:
        if self._incarnation.get(node) != inc:
            self._incarnation[node] = inc
            for k in [k for k in self._seq if k[0] == node]:
                del self._seq[k]
        self._seq[(node, ring)] = seq


def decode(data: bytes, key: bytes, cluster: str, replay_guard: ReplayGuard | None = None, *,
           ring: int | None = None, sender: str | None = None, parse: bool = True,
           now: float | None = None, max_skew: float | None = None) -> Packet:
    """Verify and unpack one datagram.  Raises BadPacket only.

    ``max_skew``: a packet whose send time differs from ``now`` (wall
    clock) by more than this is dropped ("clock"): a capture replayed later
    is refused even after the replay guard's memory of sequences is gone.

    ``ring``: the ring it arrived on (a packet signed for another ring is
    dropped); ``sender``: the only node name accepted; ``parse=False``
    leaves ``payload`` None (parse ``body`` with ``parse_body`` when it
    changed: the receive path then parses only on change)."""
    size = len(data)
    if size > MAX_PACKET:
        raise BadPacket("oversized", f"{size} bytes")
    if size < HEADER_LEN + MAC_LEN:
        raise BadPacket("truncated", f"{size} bytes")
    try:
        (magic, version, flags, pring, clen, nlen, inc_time, inc_rand, seq, sent, echo, hold,
         digest_raw, plen) = _HEAD.unpack_from(data)
    except struct.error:  # cannot happen after the size check; keeps the contract
        raise BadPacket("truncated") from None
    if magic != MAGIC:
        raise BadPacket("malformed", "not a hasupd packet")
    if version not in READABLE_VERSIONS:
        raise BadPacket("version", f"version {version}, expected one of {READABLE_VERSIONS}")
    end = HEADER_LEN + clen + nlen + plen
    if end + MAC_LEN > size:
        raise BadPacket("truncated", f"{size} bytes, header says {end + MAC_LEN}")
    if end + MAC_LEN < size:
        raise BadPacket("malformed", f"{size - end - MAC_LEN} bytes of trailing data")
    if flags & ~FLAG_ZLIB:
        raise BadPacket("malformed", f"unknown flags {flags:#x}")
    if data[HEADER_LEN:HEADER_LEN + clen] != cluster.encode():
        raise BadPacket("cluster", "packet of another cluster")
    if not hmac.compare_digest(_mac(key, memoryview(data)[:end]), data[end:]):
        raise BadPacket("mac", "bad signature")
    # authenticated from here on
    try:
        node = data[HEADER_LEN + clen:HEADER_LEN + clen + nlen].decode()
    except UnicodeDecodeError:
        raise BadPacket("malformed", "node name is not UTF-8") from None
    if ring is not None and pring != ring:
        raise BadPacket("ring", f"signed for ring {pring}, arrived on ring {ring}")
    if sender is not None and node != sender:
        raise BadPacket("node", f"from {node!r}, expected {sender!r}")
    if not (sent == sent and echo == echo and hold == hold):  # NaN
        raise BadPacket("malformed", "NaN time")
    if max_skew is not None:
        offset = sent - (time.time() if now is None else now)
        if not abs(offset) <= max_skew:
            raise BadPacket("clock", f"sent {offset:+.1f}s from our clock (tolerated ±{max_skew:g}s)", offset)
    body = bytes(data[HEADER_LEN + clen + nlen:end])
    compressed = bool(flags & FLAG_ZLIB)
    payload = parse_body(body, compressed) if parse else None
    inc = (inc_time, inc_rand)
    if replay_guard is not None:
        why = replay_guard.check(node, inc, pring, seq)
        if why:
            raise BadPacket("replay", why)
        replay_guard.commit(node, inc, pring, seq)
    return Packet(cluster, node, f"{inc_time:016x}{inc_rand:016x}", seq, sent, pring,
                  digest_raw.hex(), echo, hold, body, compressed, payload, version)


# ---------------------------------------------------------------- key files


def load_key(path: str) -> bytes:
    """The key in ``path``; KeyFileError (one clear line) if it is missing,
    not a regular file, owned by another user than ours, open to group or
    others (any of the 0o077 bits), or shorter than 32 bytes."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise KeyFileError(f"authkey {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"authkey {path}: not a regular file")
        if st.st_uid != os.geteuid():  # its owner could chmod it, read it and rewrite it
            raise KeyFileError(f"authkey {path}: owned by uid {st.st_uid}, not {os.geteuid()} "
                               f"(run `chown root:root {path}`)")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise KeyFileError(f"authkey {path}: mode {mode:04o} gives group or others access to it "
                               f"(run `chmod 400 {path}`)")
        key = os.read(fd, 4096)
    finally:
        os.close(fd)
    if len(key) < MIN_KEY:
        raise KeyFileError(f"authkey {path}: {len(key)} bytes, at least {MIN_KEY} needed "
                           "(make one with `hasupctl keygen`)")
    return key


def write_key(path: str, overwrite: bool = False) -> None:
    """Write 64 random bytes to ``path``, mode 0400, atomically.
    KeyFileError if it exists (unless ``overwrite``) or cannot be written."""
    if os.path.lexists(path) and not overwrite:
        raise KeyFileError(f"authkey {path} already exists (refusing to replace it)")
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        try:
            os.fchmod(fd, 0o400)  # whatever the umask
            os.write(fd, secrets.token_bytes(64))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise KeyFileError(f"authkey {path}: {e.strerror}") from None
