"""The heartbeat: signed state packets on every ring, peer liveness from them.

    hb = Heartbeat(cfg, "n1", key)
    await hb.start()          # one UDP socket per ring; sends at once, then every interval
    hb.set_payload({...}, version=hb.speak_version)  # the state summary (in that version's form)
    hb.send_now()             # push it at once (coalesced within one loop turn)
    hb.peer()                 # PeerView: alive, rings, incarnation, payload, ...
    await hb.events.get()     # PeerAlive PeerSuspect PeerDead RingDown RingUp PeerPayload
                              # ConfigMismatch RingError PeerVersion
    hb.counters               # sent, received, send_error, dropped_<reason>, ...
    await hb.close()

Transport.  Multicast: each ring's socket binds the group and port, joins
the group on the ring's local address (the local node's configured address
on that ring; ``ring.interface`` or the interface holding that address
becomes SO_BINDTODEVICE), sends with IP_MULTICAST_IF = that address,
loopback off, the ring's TTL; IP_MULTICAST_ALL is off so two rings on the
same group and port never see each other's packets.  Unicast: the socket
binds the local address and port and sends to the peer's address on that
ring.

Liveness.  The peer is alive from its first valid packet on any ring, and
dead when it has been silent on every ring for ``deadtime`` (a timer armed
for the exact deadline, so detection is deadtime after the last packet, not
rounded to a tick).  A ring silent for ``deadtime`` while the peer is heard
on another is RingDown (degraded redundancy), never a death; RingUp follows
its first packet again.  A new incarnation is a restart (PeerAlive with
restarted=True, even if the peer was never declared dead).

Replay.  Within an incarnation, sequences only grow (wire.ReplayGuard).
Across a restart of this daemon the peer's newest incarnation is kept in
``replay_state`` (older ones stay refused), and every packet's send time
must be within SKEW_DEADTIMES x deadtime of our wall clock: a captured
stream replayed later is dropped ("clock").  So the two nodes' clocks must
agree within that (NTP); ClockSkew warns at half of it, and again when
packets are refused.

Robustness.  A ring whose socket cannot be opened (address missing,
interface down) is retried every few seconds, and a ring silent for a while
gets a fresh socket (a recreated interface loses its group membership).
Send errors such as ENETUNREACH are counted and never stop the other rings.
The receive path is one non-blocking ``recvfrom`` per datagram through
``add_reader``; the payload is parsed only when its bytes changed.

Rolling upgrade.  A node of wire version 1 (0.1.0) drops version 2 packets,
so it would see an upgraded peer as silent and take over or fence it.  A
node therefore sends the version its peer reads (``speak_version``): the
header's version of the peer's newest packet of its current incarnation,
or, in a version 1 packet, the ``"wire"`` key of its payload, which a node
of version 2 adds to say it reads version 2 (a version 1 node ignores the
key).  Until the peer is heard it sends version 1: the first node restarted
into version 2 is then never silent to its old peer (version 2 from the
first packet would be dropped until the peer's first packet came, one more
interval of silence in the middle of a restart), while a fresh version 2
cluster sends version 1 for one interval and switches on the advertisement
(no state file to trust: the one the old daemon wrote says nothing).  Each
change of the peer's version is a PeerVersion event: the engine publishes
its report again in that version's form.  Only a packet that passed the MAC
moves the version, so nobody without the key can force one; a peer with
the key could only ask for version 1, which says the same facts.

Standalone (tests, bench)::

    python -m hasupd.membership.heartbeat --config C --node N [--key PATH]

prints one JSON object per line (events, ``ready``, and ``status`` when
"status" is written to its stdin; "payload {json}" sets the payload; "quit"
or SIGTERM ends it, printing the counters).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import fcntl
import json
import logging
import math
import os
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

from hasupd import config as configmod
from hasupd.config import Config, Ring
from hasupd.membership import wire

log = logging.getLogger("hasupd.membership")

ADVERTISE_KEY = "wire"  # in a version 1 payload: the newest version its sender reads
IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)
SIOCGIFADDR = 0x8915
RECV_BUF = 2048  # > wire.MAX_PACKET, so an oversized datagram is seen as such
MAX_DRAIN = 64  # datagrams read per readiness callback (fairness under a flood)
REOPEN_AFTER = 5.0  # seconds: retry a failed ring / refresh a silent ring's socket
LOSS_ALPHA = 0.05  # weight of one packet in the loss estimate
SKEW_DEADTIMES = 5  # tolerated clock difference between the nodes, in deadtimes
RTT_ALPHA = 0.125  # like TCP's SRTT
SUSPECT_INTERVALS = 2.5  # silent this many intervals (at most half the deadtime): PeerSuspect


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class PeerAlive:
    incarnation: str
    restarted: bool  # a new incarnation: the peer's daemon restarted
    at: float = 0.0


@dataclass(frozen=True)
class PeerSuspect:
    """The peer has missed a few packets (silent for ``suspect_after``, well before deadtime): not a
    death, only a hint to prepare (the engine asks the fence devices for its power, status only)."""

    at: float  # monotonic
    last_seen: float


@dataclass(frozen=True)
class PeerDead:
    at: float  # monotonic time it was declared dead
    last_seen: float = 0.0


@dataclass(frozen=True)
class RingDown:
    ring: int
    at: float = 0.0


@dataclass(frozen=True)
class RingUp:
    ring: int
    at: float = 0.0


@dataclass(frozen=True)
class PeerPayload:
    payload: dict


@dataclass(frozen=True)
class PeerVersion:
    """The wire version the peer reads changed: packets go out in ``version`` (the engine publishes
    its report again in that form).  ``announce``: it differs from what was last said (an alert)."""

    version: int
    announce: bool


@dataclass(frozen=True)
class ConfigMismatch:
    peer_digest: str
    local_digest: str


@dataclass(frozen=True)
class ClockSkew:
    offset: float  # the peer's send time minus our clock, seconds
    dropped: bool  # beyond the tolerance: its packets are refused
    tolerated: float


@dataclass(frozen=True)
class RingError:
    ring: int
    message: str  # why the ring's socket cannot be opened (retried)


@dataclass(frozen=True)
class PeerView:
    name: str
    alive: bool
    rings: tuple[bool, ...]  # per ring: heard within deadtime
    incarnation: str  # "" until first heard
    payload: dict | None  # the latest valid payload
    last_seen: float | None  # monotonic
    lost_at: float | None  # monotonic time it was declared dead (None while alive)
    rtt: tuple[float | None, ...]  # per ring, seconds
    loss: tuple[float, ...]  # per ring, estimated share of packets lost
    config_digest: str
    ever_seen: bool
    ring_last_seen: tuple[float | None, ...] = ()  # per ring, monotonic


# ---------------------------------------------------------------- rings


class _Ring:
    __slots__ = ("cfg", "index", "local", "dest", "ifname", "sock", "up", "reported_down",
                 "last_seen", "silent_since", "echo_sent", "echo_at", "last_seq", "loss", "rtt",
                 "next_open", "opened_at", "error", "send_errno", "received", "dropped")

    def __init__(self, cfg: Ring, local: str, dest: tuple[str, int]):
        self.cfg = cfg
        self.index = cfg.index
        self.local = local
        self.dest = dest
        self.ifname: str | None = cfg.interface
        self.sock: socket.socket | None = None
        self.up = False
        self.reported_down = False
        self.last_seen: float | None = None
        self.silent_since = 0.0
        self.echo_sent = 0.0
        self.echo_at = 0.0
        self.last_seq: int | None = None
        self.loss = 0.0
        self.rtt: float | None = None
        self.next_open = 0.0
        self.opened_at = 0.0
        self.error = ""
        self.send_errno = 0
        self.received = 0  # valid packets (for metrics)
        self.dropped: dict[str, int] = {}  # reason -> packets dropped on this ring


def interface_of(address: str) -> str | None:
    """The interface whose (primary) IPv4 address is ``address``."""
    want = socket.inet_aton(address)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            if res[20:24] == want:
                return name
    return None


def _open_socket(ring: _Ring, multicast: bool) -> socket.socket:
    # the device: named, or the one whose primary address is ours; a secondary
    # address is not found that way, and then the address alone selects it
    ifname = ring.cfg.interface or interface_of(ring.local)
    ring.ifname = ifname
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if multicast:  # every member of a group gets its own copy: sharing steals nothing
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # unicast: no SO_REUSEADDR/SO_REUSEPORT, so no socket of another user
        # can bind our address and port and take the peer's datagrams
        if ifname is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        if multicast:
            group, port = ring.dest
            s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            s.bind((group, port))
            mreqn = struct.pack("=4s4si", socket.inet_aton(group), socket.inet_aton(ring.local),
                                socket.if_nametoindex(ifname) if ifname else 0)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ring.local))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ring.cfg.ttl)
        else:
            s.bind((ring.local, ring.cfg.port))
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


# ---------------------------------------------------------------- the heartbeat


class Heartbeat:
    def __init__(self, config: Config, local: str, key: bytes, incarnation: str | None = None,
                 replay_state: str | None = None):
        self.cfg = config
        self.local = local
        self.peer_name = config.peer_of(local)
        self.key = bytes(key)
        self.incarnation = incarnation or wire.new_incarnation()
        wire.incarnation_key(self.incarnation)  # ValueError if malformed
        hb = config.heartbeat
        self.interval = hb.interval
        self.deadtime = hb.deadtime
        self.multicast = hb.transport == "multicast"
        self.digest = config.digest()
        self.events: asyncio.Queue = asyncio.Queue()
        self.counters: dict[str, int] = {"sent": 0, "received": 0, "send_error": 0, "recv_error": 0,
                                         "open_error": 0, "bad_payload": 0}
        self.counters.update({f"dropped_{r}": 0 for r in wire.REASONS})
        me, peer = config.node(local), config.node(self.peer_name)
        self._rings = [
            _Ring(r, me.addresses[r.index],
                  (r.group, r.port) if self.multicast else (peer.addresses[r.index], r.port))
            for r in hb.rings
        ]
        self._guard = wire.ReplayGuard()
        self.max_skew = SKEW_DEADTIMES * self.deadtime
        self._skew_reported = ""  # "", "warned", "refused": what was last said about the peer's clock
        self._skew_pending: tuple[str, float] | None = None  # a level seen since (monotonic), not said yet
        self.replay_state = replay_state  # file keeping the peer's newest incarnation across restarts
        self._guard.restore(_load_newest(replay_state) if replay_state else {})
        # until the first publish: no report, but the advertisement (see "Rolling upgrade")
        self._payload = wire.Payload.of({ADVERTISE_KEY: wire.VERSION})
        self._payload_version: int | None = None  # the payload's form (None: either; sent in speak_version)
        self._peer_reads: int | None = None  # the newest wire version the peer reads (None: not heard)
        self._peer_advertised = 1  # "wire" of the peer's last version 1 payload (this incarnation)
        self._announced_version = wire.VERSION
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._death_handle: asyncio.TimerHandle | None = None
        self._suspect_handle: asyncio.TimerHandle | None = None
        self._suspected = 0.0  # the last_seen a PeerSuspect was given for (one per silence)
        self._send_soon: asyncio.Handle | None = None
        self._next_tick = 0.0
        # the peer
        self._alive = False
        self._ever_seen = False
        self._peer_inc = ""
        self._last_seen: float | None = None
        self._lost_at: float | None = None
        self._peer_body: bytes | None = None
        self._peer_payload: dict | None = None
        self._peer_digest = ""
        self._reported_digest = ""

    # ------------------------------------------------------------ public

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        now = time.monotonic()
        for r in self._rings:
            self._open(r, now)
        self._next_tick = now
        self._tick()

    @property
    def speak_version(self) -> int:
        """The wire version packets go out in: what the peer reads; 1 until it is heard."""
        return 1 if self._peer_reads is None else min(self._peer_reads, wire.VERSION)

    @property
    def payload_version(self) -> int:
        """The wire version the packets go out in now (the current payload's form)."""
        return self._payload_version or self.speak_version

    @property
    def peer_version_known(self) -> bool:
        return self._peer_reads is not None

    def set_payload(self, payload: dict[str, Any], limit: int = wire.MAX_PACKET,
                    version: int = wire.VERSION) -> None:
        """The state summary sent from the next packet on, in packets of
        ``version`` (the form of ``payload``; version 1 gets the advertisement
        added).  ValueError if it cannot fit in one packet of ``limit`` bytes."""
        if version not in wire.READABLE_VERSIONS:
            raise ValueError(f"wire version {version} is not one of {wire.READABLE_VERSIONS}")
        if version == 1:
            payload = dict(payload, **{ADVERTISE_KEY: wire.VERSION})
        encoded = wire.Payload.of(payload)
        size = wire.HEADER_LEN + len(self.cfg.cluster.encode()) + len(self.local.encode()) \
            + len(encoded.body) + wire.MAC_LEN
        if size > min(limit, wire.MAX_PACKET):
            raise ValueError(f"heartbeat payload too large: a {size}-byte packet exceeds {min(limit, wire.MAX_PACKET)}")
        self._payload = encoded
        self._payload_version = version

    def send_now(self) -> None:
        """Send on every ring at once (several calls in one loop turn: one packet)."""
        if self._loop is None or self._send_soon is not None:
            return
        self._send_soon = self._loop.call_soon(self._send_now_cb)

    def peer(self) -> PeerView:
        return PeerView(
            name=self.peer_name, alive=self._alive, rings=tuple(r.up for r in self._rings),
            incarnation=self._peer_inc, payload=self._peer_payload, last_seen=self._last_seen,
            lost_at=self._lost_at, rtt=tuple(r.rtt for r in self._rings),
            loss=tuple(round(r.loss, 4) for r in self._rings), config_digest=self._peer_digest,
            ever_seen=self._ever_seen, ring_last_seen=tuple(r.last_seen for r in self._rings),
        )

    def ring_stats(self) -> list[dict[str, Any]]:
        """Per ring: packets received, dropped by reason, last seen (monotonic)."""
        return [{"received": r.received, "dropped": dict(r.dropped), "last_seen": r.last_seen}
                for r in self._rings]

    def payload_bytes(self) -> int:
        return len(self._payload.body)

    async def close(self) -> None:
        for h in (self._tick_handle, self._death_handle, self._suspect_handle, self._send_soon):
            if h is not None:
                h.cancel()
        self._tick_handle = self._death_handle = self._suspect_handle = self._send_soon = None
        for r in self._rings:
            self._close_ring(r)
        self._loop = None

    # ------------------------------------------------------------ sockets

    def _open(self, r: _Ring, now: float) -> None:
        self._close_ring(r)
        r.next_open = now + REOPEN_AFTER
        try:
            r.sock = _open_socket(r, self.multicast)
        except OSError as e:
            self.counters["open_error"] += 1
            message = f"ring {r.index} ({r.local}): {e.strerror or e}"
            if message != r.error:
                r.error = message
                log.warning("cannot open heartbeat %s; retrying every %gs", message, REOPEN_AFTER)
                self.events.put_nowait(RingError(r.index, message))
            return
        if r.error:
            log.info("heartbeat ring %d open again", r.index)
        r.error = ""
        r.opened_at = now
        self._loop.add_reader(r.sock.fileno(), self._on_readable, r)

    def _close_ring(self, r: _Ring) -> None:
        if r.sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(r.sock.fileno())
            r.sock.close()
            r.sock = None

    # ------------------------------------------------------------ sending

    def _tick(self) -> None:
        now = time.monotonic()
        try:
            self._send(now)
            self._check_rings(now)
        finally:  # whatever went wrong (the loop logs it), the heartbeat goes on
            self._next_tick += self.interval
            if self._next_tick <= now:  # we were late (a busy machine): do not burst to catch up
                self._next_tick = now + self.interval
            self._tick_handle = self._loop.call_later(self._next_tick - now, self._tick)

    def _send_now_cb(self) -> None:
        self._send_soon = None
        self._send(time.monotonic())

    def _send(self, now: float) -> None:
        self._seq += 1
        sent = time.time()
        version = self.payload_version
        for r in self._rings:
            if r.sock is None:
                continue
            hold = now - r.echo_at if r.echo_sent else 0.0
            pkt = wire.encode(self.key, self.cfg.cluster, self.local, self.incarnation, self._seq,
                              self.digest, self._payload, ring=r.index, sent=sent,
                              echo=r.echo_sent, hold=hold, version=version)
            try:
                r.sock.sendto(pkt, r.dest)
            except OSError as e:  # ENETUNREACH (cable cut node side), ENOBUFS, EPERM (filter) ...
                self.counters["send_error"] += 1
                if e.errno != r.send_errno:
                    r.send_errno = e.errno
                    log.warning("heartbeat ring %d: send failed: %s", r.index, e.strerror)
                continue
            if r.send_errno:
                r.send_errno = 0
                log.info("heartbeat ring %d: sending again", r.index)
            self.counters["sent"] += 1

    # ------------------------------------------------------------ receiving

    def _on_readable(self, r: _Ring) -> None:
        sock = r.sock
        if sock is None:
            return
        for _ in range(MAX_DRAIN):
            try:
                data = sock.recv(RECV_BUF)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.counters["recv_error"] += 1
                return
            self._on_packet(r, data)

    def _on_packet(self, r: _Ring, data: bytes) -> None:
        wall = time.time()
        try:
            p = wire.decode(data, self.key, self.cfg.cluster, self._guard, ring=r.index,
                            sender=self.peer_name, parse=False, now=wall, max_skew=self.max_skew)
        except wire.BadPacket as e:
            self.counters["dropped_" + e.reason] += 1
            r.dropped[e.reason] = r.dropped.get(e.reason, 0) + 1
            if e.reason == "clock":
                self._report_skew(e.offset, True)
            return
        self._report_skew(p.sent - wall, False)
        now = time.monotonic()
        self.counters["received"] += 1
        r.received += 1
        new_incarnation = p.incarnation != self._peer_inc
        if new_incarnation and self.replay_state:
            _save_newest(self.replay_state, self._guard.newest())
        # ring statistics
        if r.last_seq is not None and not new_incarnation:
            gap = min(p.seq - r.last_seq - 1, 1000)
            for _ in range(gap):
                r.loss += LOSS_ALPHA * (1.0 - r.loss)
        r.loss -= LOSS_ALPHA * r.loss
        r.last_seq = p.seq
        if p.echo:
            sample = time.time() - p.echo - p.hold
            if 0.0 <= sample < self.deadtime:
                r.rtt = sample if r.rtt is None else r.rtt + RTT_ALPHA * (sample - r.rtt)
        r.echo_sent, r.echo_at = p.sent, now
        r.last_seen = now
        self._last_seen = now
        # liveness
        if not self._alive or new_incarnation:
            restarted = new_incarnation and bool(self._peer_inc)
            if new_incarnation:
                self._peer_inc = p.incarnation
                self._peer_body = None
                self._peer_advertised = 1
                for other in self._rings:
                    if other is not r:
                        other.last_seq = None
                        other.rtt = None
                        other.echo_sent = 0.0
            was_alive = self._alive
            self._alive = True
            self._ever_seen = True
            self._lost_at = None
            for other in self._rings:
                if not other.up:
                    other.silent_since = now
            r.up = True
            self.events.put_nowait(PeerAlive(p.incarnation, restarted, now))
            if not was_alive:
                self._arm_death(now)
        if not r.up:
            r.up = True
            if r.reported_down:
                r.reported_down = False
                self.events.put_nowait(RingUp(r.index, now))
        # configuration digest: report each new mismatch once
        self._peer_digest = p.digest
        if p.digest != self.digest:
            if p.digest != self._reported_digest:
                self._reported_digest = p.digest
                self.events.put_nowait(ConfigMismatch(p.digest, self.digest))
        else:
            self._reported_digest = ""
        # payload: parsed only when its bytes changed
        if p.body != self._peer_body:
            self._peer_body = p.body
            try:
                payload = wire.parse_body(p.body, p.compressed)
            except wire.BadPacket:
                self.counters["bad_payload"] += 1
                payload = None
            if payload is not None:
                advertised = payload.get(ADVERTISE_KEY)
                self._peer_advertised = advertised if advertised in wire.READABLE_VERSIONS else 1
                self._peer_payload = payload
                self.events.put_nowait(PeerPayload(payload))
        self._note_version(p.version)

    def _note_version(self, header_version: int) -> None:
        """The version the peer reads, from its packet (see "Rolling upgrade")."""
        reads = header_version if header_version >= 2 else self._peer_advertised
        before = self.speak_version
        self._peer_reads = reads
        announce = reads != self._announced_version
        if announce:
            self._announced_version = reads
            log.info("%s", version_message(self.peer_name, reads))
        if announce or self.speak_version != before:
            self.events.put_nowait(PeerVersion(self.speak_version, announce))

    def _report_skew(self, offset: float, dropped: bool) -> None:
        """ClockSkew once when the peer's clock stays past half the tolerance,
        and once when its packets keep being refused, each for a deadtime (a
        node waking from a freeze reads a few stale packets: no alarm); calm
        again below a quarter."""
        level = "refused" if dropped else "warned" if abs(offset) > self.max_skew / 2 else \
            "" if abs(offset) < self.max_skew / 4 else self._skew_reported
        now = time.monotonic()
        if level == self._skew_reported:
            self._skew_pending = None
            return
        if self._skew_pending is None or self._skew_pending[0] != level:
            self._skew_pending = (level, now)
        if level and now - self._skew_pending[1] < self.deadtime:
            return
        self._skew_reported, self._skew_pending = level, None
        if level:
            log.warning("peer %s's clock is %+.1fs from ours (tolerated ±%gs)%s", self.peer_name, offset,
                        self.max_skew, ": its packets are refused" if dropped else "")
            self.events.put_nowait(ClockSkew(offset, dropped, self.max_skew))

    # ------------------------------------------------------------ liveness

    @property
    def suspect_after(self) -> float:
        return min(SUSPECT_INTERVALS * self.interval, self.deadtime / 2)

    def _arm_death(self, now: float) -> None:
        if self._death_handle is None:
            self._death_handle = self._loop.call_later(self.deadtime, self._death_check)
        if self._suspect_handle is None:
            self._suspect_handle = self._loop.call_later(self.suspect_after, self._suspect_check)

    def _suspect_check(self) -> None:
        """PeerSuspect once per silence longer than suspect_after; re-armed while the peer is alive."""
        self._suspect_handle = None
        if not self._alive or self._last_seen is None:
            return
        now = time.monotonic()
        due = self._last_seen + self.suspect_after
        if now >= due and self._suspected != self._last_seen:
            self._suspected = self._last_seen
            self.events.put_nowait(PeerSuspect(now, self._last_seen))
        wait = due - now if now < due else self.suspect_after
        self._suspect_handle = self._loop.call_later(max(wait, 0.001), self._suspect_check)

    def _death_check(self) -> None:
        self._death_handle = None
        if not self._alive or self._last_seen is None:
            return
        now = time.monotonic()
        due = self._last_seen + self.deadtime
        if now < due:  # heard since the timer was armed: wait for the new deadline
            self._death_handle = self._loop.call_later(max(due - now, 0.001), self._death_check)
            return
        self._alive = False
        self._lost_at = now
        for r in self._rings:
            r.up = False
            r.reported_down = False  # a dead peer is one event, not one per ring
        log.warning("peer %s silent on every ring for %gs", self.peer_name, self.deadtime)
        self.events.put_nowait(PeerDead(now, self._last_seen))

    def _check_rings(self, now: float) -> None:
        peer_heard = self._alive and self._last_seen is not None \
            and now - self._last_seen <= self.deadtime / 2
        for r in self._rings:
            if peer_heard and not r.reported_down:
                silent_for = now - r.last_seen if r.up else now - r.silent_since
                if silent_for >= self.deadtime:
                    r.up = False
                    r.reported_down = True
                    log.warning("heartbeat ring %d silent for %gs; peer still heard on another ring",
                                r.index, self.deadtime)
                    self.events.put_nowait(RingDown(r.index, now))
            # a ring unheard for long gets a fresh socket (or a retry if it never opened)
            heard = max(r.last_seen or 0.0, r.opened_at)
            if now >= r.next_open and (r.sock is None or now - heard >= REOPEN_AFTER):
                self._open(r, now)


def version_message(peer: str, version: int) -> str:
    if version < wire.VERSION:
        return (f"{peer} speaks wire version {version}: this node sends version {version} "
                "until it is upgraded")
    return f"{peer} speaks wire version {version} again: this node sends version {version}"


# ---------------------------------------------------------------- replay state


def _load_newest(path: str) -> dict[str, tuple[int, int]]:
    try:
        with open(path) as f:
            raw = json.load(f)
        return {str(node): wire.incarnation_key(inc) for node, inc in raw.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError, TypeError) as e:
        log.warning("ignoring %s: %s", path, e)
        return {}


def _save_newest(path: str, newest: dict[str, tuple[int, int]]) -> None:
    """Written atomically: a torn file would forget the guard."""
    text = json.dumps({node: f"{t:016x}{r:016x}" for node, (t, r) in newest.items()})
    tmp = f"{path}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        log.warning("cannot keep the peer's incarnation in %s: %s", path, e.strerror)


# ---------------------------------------------------------------- standalone


def _event_json(ev: Any) -> str:
    d = {"event": type(ev).__name__, "wall": time.time(), "mono": time.monotonic()}
    d.update(dataclasses.asdict(ev))
    return json.dumps(d, default=str)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


async def _standalone(cfg: Config, node: str, key: bytes) -> int:
    hb = Heartbeat(cfg, node, key)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    out = sys.stdout

    def emit(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    def status() -> None:
        view = dataclasses.asdict(hb.peer())
        emit(json.dumps({"event": "status", "wall": time.time(), "mono": time.monotonic(),
                         "incarnation": hb.incarnation, "peer": view, "counters": hb.counters},
                        default=_jsonable))

    def on_stdin() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(sys.stdin.fileno())
            return
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "status":
            status()
        elif cmd == "payload":
            try:
                hb.set_payload(json.loads(arg))
                hb.send_now()
            except ValueError as e:
                emit(json.dumps({"event": "error", "message": str(e)}))
        elif cmd == "quit":
            done.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await hb.start()
    emit(json.dumps({"event": "ready", "wall": time.time(), "mono": time.monotonic(), "node": node,
                     "pid": os.getpid(), "incarnation": hb.incarnation}))
    if not sys.stdin.closed:
        try:
            loop.add_reader(sys.stdin.fileno(), on_stdin)
        except (OSError, ValueError):
            pass

    async def pump() -> None:
        while True:
            emit(_event_json(await hb.events.get()))

    pumping = asyncio.create_task(pump())
    await done.wait()
    pumping.cancel()
    while not hb.events.empty():
        emit(_event_json(hb.events.get_nowait()))
    status()
    await hb.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hasupd.membership.heartbeat",
                                description="Run only the heartbeat of a node; print events as JSON lines.")
    p.add_argument("--config", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--key", help="authkey file (default: heartbeat.authkey of the config)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
    try:
        cfg = configmod.load(args.config)
        cfg.node(args.node)
    except configmod.ConfigError as e:
        print(f"heartbeat: {e}", file=sys.stderr)
        return configmod.EX_CONFIG
    except KeyError:
        print(f"heartbeat: no node {args.node!r} in {args.config}", file=sys.stderr)
        return configmod.EX_CONFIG
    try:
        key = wire.load_key(args.key or cfg.heartbeat.authkey)
    except wire.KeyFileError as e:
        print(f"heartbeat: {e}", file=sys.stderr)
        return configmod.EX_CONFIG
    return asyncio.run(_standalone(cfg, args.node, key))


if __name__ == "__main__":
    sys.exit(main())
