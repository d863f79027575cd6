"""Inputs of the split-brain guard (DESIGN.md rule 6).  They only observe and
report; the planner decides what a result means.

* ``ping`` -> ``PingGuard``: probes the tie-breaker addresses every
  ``interval`` (ICMP echo, or a TCP connect when ``tcp_port`` is set), and
  reports ``reachable`` with hysteresis: True after ``rise`` good rounds in a
  row, False after ``fall`` bad ones, None until then.  A round is good when
  ANY target answers (a tie-breaker such as the default gateway proves this
  node is still on the network).  ICMP uses an unprivileged ping socket when
  net.ipv4.ping_group_range allows it, else a raw socket (root), else the
  ``ping`` program.  A TCP round is good only on an established connection.
* ``fence``: fencing with fence devices is hasupd.fencing's (``Fencer``).
* ``drbd``: DRBD resource-level fencing; hasupd is DRBD's fence-peer handler
  (hasupd.resources.drbd_handler) and outdates the peer.  Nothing runs here.
* ``none``: always agrees.  The configuration loader puts a warning into
  ``Config.warnings`` and the engine logs it at every start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import time
from typing import AsyncIterator, Callable

from hasupd.config import PingGuard as PingGuardConfig
from hasupd.resources.base import run
from hasupd.timeouts import Timeout, within

log = logging.getLogger("hasupd.membership")

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _icmp_socket() -> tuple[socket.socket | None, bool]:
    """(socket, raw): a ping socket, else a raw one, else (None, False)."""
    try:
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP), False
    except PermissionError:
        pass
    try:
        return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), True
    except PermissionError:
        return None, False


async def icmp_echo(target: str, timeout: float, seq: int = 1) -> bool:
    """One ICMP echo to ``target``: True if it answered within ``timeout``."""
    sock, raw = _icmp_socket()
    if sock is None:
        res = await run(["ping", "-n", "-q", "-c", "1", "-W", str(max(1, round(timeout))), target],
                        timeout + 1.0)
        return res.ok
    loop = asyncio.get_running_loop()
    ident = os.getpid() & 0xFFFF
    seq &= 0xFFFF
    body = struct.pack("!d", time.time())
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq)
    packet = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, _checksum(header + body), ident, seq) + body
    deadline = time.monotonic() + timeout
    with sock:
        sock.setblocking(False)
        try:
            sock.connect((target, 0))
            await loop.sock_sendall(sock, packet)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                data = await within(loop.sock_recv(sock, 2048), remaining)
                if raw:  # a raw socket sees every ICMP packet, IP header included
                    data = data[(data[0] & 0x0F) * 4:] if data else b""
                if len(data) < 8:
                    continue
                kind, _, _, rid, rseq = struct.unpack_from("!BBHHH", data)
                # a ping socket gets only its own replies (the kernel sets the id)
                if kind == ICMP_ECHO_REPLY and rseq == seq and (not raw or rid == ident):
                    return True
        except (Timeout, OSError):
            return False


async def tcp_connect(target: str, port: int, timeout: float) -> bool:
    """True if a TCP connection to target:port is established within timeout."""
    try:
        _, writer = await within(asyncio.open_connection(target, port), timeout)
    except (Timeout, OSError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


class PingGuard:
    """Reachability of the tie-breaker addresses, with rise/fall hysteresis.

    ``async for reachable in guard.run(): ...`` yields each change of
    ``reachable`` (the first one once it is known); ``on_change`` is also
    called with it."""

    def __init__(self, cfg: PingGuardConfig, on_change: Callable[[bool], None] | None = None):
        self.cfg = cfg
        self.on_change = on_change
        self.reachable: bool | None = None
        self.good_in_row = 0
        self.bad_in_row = 0
        self.last_round: float | None = None  # monotonic time of the latest round
        self._seq = 0

    async def probe_once(self) -> bool:
        """One round: True if any target answers."""
        self._seq += 1
        if self.cfg.tcp_port is not None:
            probes = [tcp_connect(t, self.cfg.tcp_port, self.cfg.timeout) for t in self.cfg.targets]
        else:
            probes = [icmp_echo(t, self.cfg.timeout, self._seq) for t in self.cfg.targets]
        return any(await asyncio.gather(*probes))

    def record(self, good: bool) -> bool:
        """Count one round; True if ``reachable`` changed."""
        if good:
            self.good_in_row, self.bad_in_row = self.good_in_row + 1, 0
            new = True if self.good_in_row >= self.cfg.rise else self.reachable
        else:
            self.good_in_row, self.bad_in_row = 0, self.bad_in_row + 1
            new = False if self.bad_in_row >= self.cfg.fall else self.reachable
        if new == self.reachable:
            return False
        self.reachable = new
        return True

    async def run(self) -> AsyncIterator[bool]:
        while True:
            started = time.monotonic()
            good = await self.probe_once()
            self.last_round = time.monotonic()
            if self.record(good):
                log.log(logging.INFO if self.reachable else logging.WARNING,
                        "tie-breaker %s %s", ", ".join(self.cfg.targets),
                        "reachable" if self.reachable else "unreachable")
                if self.on_change is not None:
                    self.on_change(self.reachable)
                yield self.reachable
            await asyncio.sleep(max(0.0, self.cfg.interval - (time.monotonic() - started)))
