"""The VIP driver: a floating IPv4 address, like Pacemaker's
``ocf:heartbeat:IPaddr2``.

* start: find the interface (``nic``, or the one whose connected route
  contains the address, like IPaddr2's findif), ARP-probe the address
  (duplicate address detection as ``arping -D`` does it: sender IP 0.0.0.0)
  and refuse, naming the MAC that answered; add ``ip/cidr_netmask`` with
  its label (``nic:label``); send ``arp_count`` gratuitous ARPs
  ``arp_interval`` apart, and the same burst once more ``arp_repeat_after``
  seconds later in the background, for a switch or neighbour that missed it.
  The probe is skipped only when the engine passes ``peer_released``: the
  peer's heartbeat, of its current incarnation, reported this very address
  released moments ago (``PeerReleases``), so the only host that held it has
  let go; the start's message says so.  Any other start probes (a stranger
  holding the address is still refused).  ``prepare()`` runs that probe
  ahead, while DRBD is being promoted (the engine calls it): a start within
  PROBE_FRESH seconds of a probe nobody answered uses it instead of probing
  again (RFC 5227 itself waits 2 s between the last probe and the claim).
* stop: remove the address (absent already = success).
* probe and monitor: the address is on the interface.  A lost carrier (or
  the interface down) is not a failure of the address, it is "this node
  cannot serve now": monitor stays ok and says so, ``link_trouble()``
  reports it, and the planner moves the group or waits for the link
  (issue 16: a flapping cable must not ban the node).
* watch: a netlink socket subscribed to address and link events on the
  loop: RTM_DELADDR of our address is a FAILED observation at once; a
  lost carrier a STARTED one whose detail says so.

Netlink requests go through pyroute2's synchronous ``IPRoute`` (the API
0.7.2 of Debian 12 and 0.9 share) in a worker thread, so the loop never
blocks.  The event stream and ARP use plain sockets on the loop (a tiny
parser below): nothing there depends on the pyroute2 version.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import ipaddress
import logging
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import AsyncIterator

from hasupd import config
from hasupd.model import NodeState, ResourceStatus, ResState
from hasupd.resources.base import Observation, Result, observation
from hasupd.timeouts import Timeout, within

log = logging.getLogger(__name__)

IFNAMSIZ = 16
IFF_UP = 0x1
IFF_NOARP = 0x80
IFF_LOWER_UP = 0x10000  # carrier
RT_SCOPE_LINK = 253
RT_TABLE_MAIN = 254

# ---------------------------------------------------------------- netlink events (pure)

RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR = 16, 17, 20, 21
RTMGRP_LINK, RTMGRP_IPV4_IFADDR = 0x1, 0x10
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL = 1, 2, 3
IFLA_IFNAME = 3
_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_RTATTR = struct.Struct("=HH")


@dataclass(frozen=True)
class AddrEvent:
    removed: bool
    index: int
    address: str
    prefixlen: int
    label: str | None


@dataclass(frozen=True)
class LinkEvent:
    removed: bool
    index: int
    name: str | None
    flags: int


def _attrs(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    out = {}
    while offset + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            break
        out[kind & 0x3FFF] = data[offset + _RTATTR.size:offset + length]
        offset += (length + 3) & ~3
    return out


def _cstr(b: bytes | None) -> str | None:
    return None if b is None else b.split(b"\0", 1)[0].decode(errors="replace")


def parse_rtnl(data: bytes) -> list[AddrEvent | LinkEvent]:
    """IPv4 address and link events from one rtnetlink datagram; other
    messages are skipped."""
    events: list[AddrEvent | LinkEvent] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        body = offset + _NLMSGHDR.size
        end = offset + length
        if kind in (RTM_NEWADDR, RTM_DELADDR) and body + _IFADDRMSG.size <= end:
            family, prefixlen, _, _, index = _IFADDRMSG.unpack_from(data, body)
            if family == socket.AF_INET:
                a = _attrs(data, body + _IFADDRMSG.size, end)
                raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
                if raw and len(raw) == 4:
                    events.append(AddrEvent(kind == RTM_DELADDR, index, socket.inet_ntoa(raw), prefixlen,
                                            _cstr(a.get(IFA_LABEL))))
        elif kind in (RTM_NEWLINK, RTM_DELLINK) and body + _IFINFOMSG.size <= end:
            _, _, index, flags, _ = _IFINFOMSG.unpack_from(data, body)
            a = _attrs(data, body + _IFINFOMSG.size, end)
            events.append(LinkEvent(kind == RTM_DELLINK, index, _cstr(a.get(IFLA_IFNAME)), flags))
        offset += (length + 3) & ~3
    return events


# ---------------------------------------------------------------- ARP frames (pure)

ETH_P_ARP = 0x0806
ARP_REQUEST, ARP_REPLY = 1, 2
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\0" * 6
ZERO_IP = b"\0" * 4
PACKET_OUTGOING = 4
_ARP = struct.Struct("!6s6sHHHBBH6s4s6s4s")


@dataclass(frozen=True)
class Arp:
    op: int
    sha: bytes
    spa: bytes
    tha: bytes
    tpa: bytes


def arp_frame(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes, dst: bytes = BROADCAST) -> bytes:
    frame = _ARP.pack(dst, sha, ETH_P_ARP, 1, 0x0800, 6, 4, op, sha, spa, tha, tpa)
    return frame.ljust(60, b"\0")  # the Ethernet minimum


def parse_arp(frame: bytes) -> Arp | None:
    if len(frame) < _ARP.size:
        return None
    _, _, etype, htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame)
    if etype != ETH_P_ARP or htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
        return None
    return Arp(op, sha, spa, tha, tpa)


def gratuitous_arp(mac: bytes, ip: bytes) -> bytes:
    """An unsolicited ARP request for our own address (``arping -U``)."""
    return arp_frame(ARP_REQUEST, mac, ip, ZERO_MAC, ip)


def dad_probe(mac: bytes, ip: bytes) -> bytes:
    """RFC 5227 probe: who has ip?  Sender address 0.0.0.0 (``arping -D``)."""
    return arp_frame(ARP_REQUEST, mac, ZERO_IP, ZERO_MAC, ip)


def conflict(pkt: Arp, ip: bytes, our_mac: bytes) -> str | None:
    """Why ``pkt`` says another host uses (or is claiming) ``ip``, or None."""
    if pkt.sha == our_mac:
        return None
    if pkt.spa == ip:
        return f"{mac_text(pkt.sha)} answered for it" if pkt.op == ARP_REPLY else f"{mac_text(pkt.sha)} announces it"
    if pkt.op == ARP_REQUEST and pkt.spa == ZERO_IP and pkt.tpa == ip:
        return f"{mac_text(pkt.sha)} is probing for it at the same moment"
    return None


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def full_label(nic: str, label: str | None) -> str | None:
    """IPaddr2's iflabel: ``nic:label``; a label already written that way is kept."""
    if not label:
        return None
    return label if label.startswith(f"{nic}:") else f"{nic}:{label}"


# ---------------------------------------------------------------- netlink requests (blocking, in a thread)


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    mac: bytes
    flags: int

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def carrier(self) -> bool:
        return bool(self.flags & IFF_LOWER_UP)

    @property
    def arp(self) -> bool:
        return not self.flags & IFF_NOARP and len(self.mac) == 6 and self.mac != ZERO_MAC

    def trouble(self) -> str | None:
        if not self.up:
            return f"{self.name} is down"
        if not self.carrier:
            return f"{self.name} has no carrier"
        return None


@dataclass(frozen=True)
class Snapshot:
    nic: Link | None  # where the address belongs
    error: str | None  # why nic is None
    present: tuple[tuple[int, int, str | None], ...]  # (index, prefixlen, label) holding the address
    links: dict[int, Link]

    def on_nic(self) -> tuple[int, int, str | None] | None:
        for p in self.present:
            if self.nic is not None and p[0] == self.nic.index:
                return p
        return None


def _link(msg) -> Link:
    mac = msg.get_attr("IFLA_ADDRESS") or "00:00:00:00:00:00"
    return Link(msg["index"], msg.get_attr("IFLA_IFNAME"), bytes.fromhex(mac.replace(":", "")), msg["flags"])


def _snapshot(ip: str, prefixlen: int, nic: str | None) -> Snapshot:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = {m["index"]: _link(m) for m in ipr.get_links()}
        present = tuple(
            (a["index"], a["prefixlen"], a.get_attr("IFA_LABEL"))
            for a in ipr.get_addr(family=socket.AF_INET)
            if (a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS")) == ip
        )
        if nic is not None:
            found = [lk for lk in links.values() if lk.name == nic]
            if not found:
                return Snapshot(None, f"interface {nic} does not exist", present, links)
            return Snapshot(found[0], None, present, links)
        # like IPaddr2's findif: the connected (scope link) route containing the address
        addr = ipaddress.IPv4Address(ip)
        best = None
        for r in ipr.get_routes(family=socket.AF_INET, table=RT_TABLE_MAIN):
            dst = r.get_attr("RTA_DST")
            if r["scope"] != RT_SCOPE_LINK or dst is None or r.get_attr("RTA_OIF") not in links:
                continue
            net = ipaddress.IPv4Network(f"{dst}/{r['dst_len']}", strict=False)
            if addr in net and (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, links[r.get_attr("RTA_OIF")])
        if best is not None:
            return Snapshot(best[1], None, present, links)
        if present:  # no route (e.g. a /32 VIP) but the address is there: that is its interface
            return Snapshot(links.get(present[0][0]), None, present, links)
        return Snapshot(None, f"no interface has a connected route containing {ip}/{prefixlen}: "
                              f"set nic", present, links)


def _link_at(index: int) -> Link | None:
    """The interface ``index`` now (one RTM_GETLINK, not a dump), or None if it is gone."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        try:
            found = ipr.get_links(index)
        except Exception as e:  # pyroute2's NetlinkError: ENODEV when the link is gone
            if _netlink_errno(e)[0] == errno.ENODEV:
                return None
            raise
    return _link(found[0]) if found else None


def _addr(cmd: str, index: int, ip: str, prefixlen: int, label: str | None = None) -> None:
    from pyroute2 import IPRoute

    kw = {}
    if cmd == "add":
        if label:
            kw["label"] = label
        if prefixlen < 31:
            kw["broadcast"] = str(ipaddress.IPv4Network(f"{ip}/{prefixlen}", strict=False).broadcast_address)
    with IPRoute() as ipr:
        ipr.addr(cmd, index=index, address=ip, prefixlen=prefixlen, **kw)


def _netlink_errno(e: Exception) -> tuple[int | None, str]:
    code = getattr(e, "code", None) or getattr(e, "errno", None)
    return code, (os.strerror(code) if isinstance(code, int) else str(e))


# ---------------------------------------------------------------- driver

DAD_PROBES = 1
DAD_INTERVAL = 0.05  # s between probes (a LAN answers ARP in well under a millisecond)
DAD_WAIT = 0.06  # s to listen after the last probe: DAD is on the failover's critical path
RELEASE_FRESH = 2.0  # s: how recent the peer's report of a release must be for the probe to be skipped
PROBE_FRESH = 1.0  # s: how recent a prepared probe nobody answered must be for start to use it


@dataclass(frozen=True)
class PeerRelease:
    peer: str
    incarnation: str
    at: float  # monotonic time the report arrived

    def why(self, now: float) -> str:
        return f"{self.peer} (incarnation {self.incarnation[:8]}) reported it released {now - self.at:.2f}s ago"


class PeerReleases:
    """Which VIPs the peer has just let go of, from its heartbeat reports (pure: times are passed in).

    A release is a report of the address STOPPED by the same peer incarnation that earlier reported
    it held (STARTED or FAILED); it is forgotten when a report says anything else, and it counts
    only while that incarnation is alive and for RELEASE_FRESH seconds."""

    def __init__(self, vips) -> None:
        self.vips = frozenset(vips)
        self._held: dict[str, str] = {}  # vip -> incarnation that reported holding it
        self._released: dict[str, PeerRelease] = {}

    def observe(self, peer: NodeState, now: float) -> None:
        for vip in self.vips:
            st = peer.resources.get(vip)
            state = st.state if st is not None else ResState.UNKNOWN
            if state in (ResState.STARTED, ResState.FAILED, ResState.STOP_FAILED):
                self._held[vip] = peer.incarnation
                self._released.pop(vip, None)
            elif state is ResState.STOPPED:
                if self._held.pop(vip, None) == peer.incarnation and peer.incarnation:
                    self._released[vip] = PeerRelease(peer.name, peer.incarnation, now)
                elif vip in self._released and self._released[vip].incarnation != peer.incarnation:
                    del self._released[vip]
            else:
                self._held.pop(vip, None)
                self._released.pop(vip, None)

    def recent(self, vip: str, alive: bool, incarnation: str, now: float) -> PeerRelease | None:
        """The peer's fresh release of ``vip`` if the peer is alive now in the same incarnation."""
        r = self._released.get(vip)
        if r is None or not alive or r.incarnation != incarnation or not 0 <= now - r.at <= RELEASE_FRESH:
            return None
        return r


class VipDriver:
    def __init__(self, res: config.VipResource, node: str | None = None):
        self.res = res
        self.name = res.name
        self.ip = res.ip
        self.ip_bytes = socket.inet_aton(res.ip)
        self.cidr = f"{res.ip}/{res.cidr_netmask}"
        self._stopping = False  # set by our own stop(): the address going away is then no failure
        self._prepared: asyncio.Future | None = None  # prepare()'s probe: (finished at, who answered)
        self._nic: Link | None = None  # the address's interface in the last snapshot
        self._repeat: asyncio.Task | None = None

    async def _snap(self) -> Snapshot:
        snap = await asyncio.to_thread(_snapshot, self.ip, self.res.cidr_netmask, self.res.nic)
        self._nic = snap.nic
        return snap

    # ------------------------------------------------------------ probe / monitor

    async def probe(self) -> ResourceStatus:
        try:
            snap = await self._snap()
        except Exception as e:  # netlink unavailable: a state, not a crash
            return ResourceStatus(ResState.UNKNOWN, f"netlink: {_netlink_errno(e)[1]}", time.monotonic())
        here = snap.on_nic()
        if here is None:
            return ResourceStatus(ResState.STOPPED, self._absent_text(snap), time.monotonic())
        return ResourceStatus(ResState.STARTED, self._present_text(snap, here), time.monotonic())

    def _present_text(self, snap: Snapshot, here: tuple[int, int, str | None]) -> str:
        text = f"{self.ip}/{here[1]} on {snap.nic.name}"
        return text + (f" ({here[2]})" if here[2] and here[2] != snap.nic.name else "")

    def _absent_text(self, snap: Snapshot) -> str:
        if snap.nic is None:
            return snap.error or f"{self.ip} is not configured"
        others = [snap.links[i].name for i, _, _ in snap.present if i in snap.links]
        if others:
            return f"{self.ip} is not on {snap.nic.name} but on {', '.join(others)}"
        return f"{self.ip} is not on {snap.nic.name}"

    async def monitor(self) -> Result:
        started = time.monotonic()
        try:
            snap = await within(self._snap(), self.res.timeouts.monitor)
        except Timeout:
            return Result(False, f"netlink did not answer within {self.res.timeouts.monitor:g}s", timed_out=True)
        except Exception as e:
            code, text = _netlink_errno(e)
            return Result(False, f"netlink: {text}", errno=code)
        here = snap.on_nic()
        if here is None:
            return Result(False, self._absent_text(snap), duration=time.monotonic() - started)
        trouble = snap.nic.trouble()
        if trouble:  # the address is fine; the node cannot serve now (link_trouble)
            return Result(True, f"{self.ip} is on {snap.nic.name} but {trouble}",
                          errno=errno.ENETDOWN, duration=time.monotonic() - started)
        return Result(True, self._present_text(snap, here) + ", link up", duration=time.monotonic() - started)

    async def announce(self) -> Result:
        """Send the gratuitous ARP burst again (another node held the address a moment ago)."""
        try:
            snap = await self._snap()
            if snap.on_nic() is None:
                return Result(False, f"{self.ip} is not on {snap.nic.name if snap.nic else 'its interface'}")
            if not snap.nic.arp or self.res.arp_count <= 0:
                return Result(True, f"{snap.nic.name} does not use ARP (or arp_count is 0): nothing to send")
            await self._send_garp(snap.nic)
        except OSError as e:
            return Result(False, f"gratuitous ARP for {self.ip} failed: {e.strerror or e}", errno=e.errno)
        return Result(True, f"sent {self.res.arp_count} gratuitous ARP for {self.ip} on {snap.nic.name}")

    async def link_trouble(self) -> str | None:
        """Why the interface of the address cannot carry it now ("eth0 has no carrier"), or None.
        Polled often (engine LINK_POLL): one link of the last snapshot is asked for, not the three
        dumps of a snapshot, unless that link is gone or renamed."""
        nic = self._nic
        if nic is not None:
            now = await asyncio.to_thread(_link_at, nic.index)
            if now is not None and now.name == nic.name:
                return now.trouble()
        snap = await self._snap()
        return snap.nic.trouble() if snap.nic is not None else None

    # ------------------------------------------------------------ start / stop

    async def start(self, peer_released: str = "") -> Result:
        """``peer_released``: why the duplicate-address probe is not needed (the peer's fresh
        report that it let go of the address, ``PeerRelease.why``); empty: probe."""
        self._stopping = False
        self._cancel_repeat()
        return await self._bounded(self._start(peer_released), self.res.timeouts.start, "start")

    async def prepare(self) -> None:
        """Start the duplicate-address probe now, for a start expected within PROBE_FRESH seconds
        (the engine calls it as the promotion begins).  Best effort: any trouble leaves start to probe."""
        if self._prepared is None or self._prepared.done():
            self._prepared = asyncio.ensure_future(self._probe_ahead())

    async def _probe_ahead(self) -> tuple[int, float, str | None] | None:
        """(interface index, when the probe ended, who answered), or None when there was nothing to probe."""
        try:
            snap = await self._snap()
            if snap.nic is None or not snap.nic.arp or snap.present or snap.nic.trouble():
                return None
            who = await self._probe_duplicate(snap.nic)
            return snap.nic.index, time.monotonic(), who
        except Exception as e:  # start probes itself
            log.info("%s: probing ahead failed: %s", self.name, e)
            return None

    async def _take_prepared(self, nic: Link) -> tuple[float, str | None] | None:
        """(its age, who answered) of the probe prepare() ran on ``nic`` (awaited if still running),
        if it is recent enough to stand for the start's own; else None."""
        prepared, self._prepared = self._prepared, None
        if prepared is None:
            return None
        ahead = await prepared
        if ahead is None or ahead[0] != nic.index:
            return None
        age = time.monotonic() - ahead[1]
        return (age, ahead[2]) if age <= PROBE_FRESH else None

    async def stop(self) -> Result:
        self._stopping = True
        self._prepared = None
        self._cancel_repeat()
        return await self._bounded(self._stop(), self.res.timeouts.stop, "stop")

    async def _bounded(self, coro, timeout: float, what: str) -> Result:
        started = time.monotonic()
        try:
            r = await within(coro, timeout)
        except Timeout:
            r = Result(False, f"{what} of {self.cidr} timed out after {timeout:g}s", timed_out=True)
        except OSError as e:
            r = Result(False, f"{what} of {self.cidr}: {e.strerror or e}", errno=e.errno)
        except Exception as e:  # pyroute2's NetlinkError and friends
            code, text = _netlink_errno(e)
            r = Result(False, f"{what} of {self.cidr}: {text}", errno=code)
        return dataclasses.replace(r, duration=time.monotonic() - started)

    async def _start(self, peer_released: str) -> Result:
        snap = await self._snap()
        nic = snap.nic
        if nic is None:
            return Result(False, snap.error or "no interface", errno=errno.ENODEV)
        label = full_label(nic.name, self.res.label)
        if label and len(label) >= IFNAMSIZ:
            return Result(False, f"label {label} is {len(label)} characters; the kernel allows "
                                 f"{IFNAMSIZ - 1}", errno=errno.EINVAL)
        here = snap.on_nic()
        if here is not None:
            return Result(True, f"{self._present_text(snap, here)} already")
        if snap.present:
            return Result(False, self._absent_text(snap) + ": refusing to add it twice", errno=errno.EADDRINUSE)
        trouble = nic.trouble()
        if trouble:
            return Result(False, f"cannot bring {self.cidr} up: {trouble}", errno=errno.ENETDOWN)
        skipped = ""
        if self.res.check_duplicate and nic.arp and peer_released:
            self._prepared = None
            skipped = f"; duplicate-address probe skipped: {peer_released}"
        elif self.res.check_duplicate and nic.arp:
            ahead = await self._take_prepared(nic)
            if ahead is not None:
                age, who = ahead
                skipped = f"; duplicate-address probe done {age:.2f}s before (during the promotion)"
            else:
                who = await self._probe_duplicate(nic)
            if who:
                return Result(False, f"{self.ip} is already in use on {nic.name}'s network: {who} "
                                     f"(ARP probe); refusing to add it", errno=errno.EADDRINUSE)
        try:
            await asyncio.to_thread(_addr, "add", nic.index, self.ip, self.res.cidr_netmask, label)
        except Exception as e:
            code, text = _netlink_errno(e)
            if code != errno.EEXIST:
                return Result(False, f"adding {self.cidr} to {nic.name} failed: {text}", errno=code)
        said = f"added {self.cidr} on {nic.name}" + (f" ({label})" if label else "") + skipped
        if self.res.arp_count > 0 and nic.arp:
            # the first gratuitous ARP now; the rest of the burst and the
            # repeat follow in the background (start returns at once)
            try:
                await self._send_garp(nic, 1)
                said += f"; gratuitous ARP sent ({self.res.arp_count} in all)"
            except OSError as e:  # the address is up; neighbours will learn it by asking
                said += f"; gratuitous ARP failed: {e.strerror}"
            self._repeat = asyncio.create_task(self._repeat_garp(nic))
        return Result(True, said)

    async def _stop(self) -> Result:
        snap = await self._snap()
        if snap.nic is not None:
            mine = [p for p in snap.present if p[0] == snap.nic.index]
        else:
            mine = [p for p in snap.present if self.res.nic is None]
        if not mine:
            return Result(True, f"{self.ip} already absent")
        for index, prefixlen, _ in mine:
            try:
                await asyncio.to_thread(_addr, "del", index, self.ip, prefixlen)
            except Exception as e:
                code, text = _netlink_errno(e)
                if code != errno.EADDRNOTAVAIL:
                    return Result(False, f"removing {self.cidr} failed: {text}", errno=code)
        name = snap.links[mine[0][0]].name if mine[0][0] in snap.links else "?"
        return Result(True, f"removed {self.ip}/{mine[0][1]} from {name}")

    # ------------------------------------------------------------ ARP

    def _packet_socket(self, nic: Link, listen: bool) -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP) if listen else 0)
        s.setblocking(False)
        s.bind((nic.name, ETH_P_ARP if listen else 0))
        return s

    async def _probe_duplicate(self, nic: Link) -> str | None:
        """Send DAD probes and listen; who answered, or None."""
        loop = asyncio.get_running_loop()
        probe = dad_probe(nic.mac, self.ip_bytes)
        with self._packet_socket(nic, listen=True) as s:
            now = time.monotonic()
            end = now + (DAD_PROBES - 1) * DAD_INTERVAL + DAD_WAIT
            sent, next_send = 0, now
            while now < end:
                if sent < DAD_PROBES and now >= next_send:
                    await loop.sock_sendall(s, probe)
                    sent += 1
                    next_send = now + DAD_INTERVAL
                wake = min(end, next_send) if sent < DAD_PROBES else end
                try:
                    data, addr = await within(recvfrom(s, 2048), max(0.0, wake - now))
                except Timeout:
                    data, addr = b"", None
                now = time.monotonic()
                if addr is None or addr[2] == PACKET_OUTGOING:
                    continue
                pkt = parse_arp(data)
                who = pkt and conflict(pkt, self.ip_bytes, nic.mac)
                if who:
                    return who
        return None

    async def _send_garp(self, nic: Link, count: int | None = None) -> None:
        loop = asyncio.get_running_loop()
        frame = gratuitous_arp(nic.mac, self.ip_bytes)
        with self._packet_socket(nic, listen=False) as s:
            for i in range(self.res.arp_count if count is None else count):
                if i:
                    await asyncio.sleep(self.res.arp_interval)
                await loop.sock_sendall(s, frame)

    async def _repeat_garp(self, nic: Link) -> None:
        """The rest of the first burst, then a second burst for whoever
        missed the first; only while we still hold the address."""
        try:
            for _ in range(self.res.arp_count - 1):
                await asyncio.sleep(self.res.arp_interval)
                await self._send_garp(nic, 1)
        except Exception as e:  # best effort: nobody waits for this result
            log.warning("%s: gratuitous ARP failed: %s", self.name, e)
        if self.res.arp_repeat_after <= 0:
            return
        await asyncio.sleep(self.res.arp_repeat_after)
        try:
            snap = await self._snap()
            if snap.on_nic() is not None and not self._stopping:
                await self._send_garp(snap.nic)
                log.info("%s: repeated %d gratuitous ARP on %s", self.name, self.res.arp_count, snap.nic.name)
        except Exception as e:  # best effort: nobody waits for this result
            log.warning("%s: repeated gratuitous ARP failed: %s", self.name, e)

    def _cancel_repeat(self) -> None:
        if self._repeat is not None and not self._repeat.done():
            self._repeat.cancel()
        self._repeat = None

    # ------------------------------------------------------------ watch

    async def watch(self) -> AsyncIterator[Observation]:
        """FAILED when our address is removed behind our back or the nic
        goes down / loses carrier; STARTED when it is whole again; STOPPED
        when our own stop removed it."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR))

            def on_readable() -> None:
                while True:
                    try:
                        data = sock.recv(65536)
                    except BlockingIOError:
                        return
                    except OSError as e:  # ENOBUFS: we missed events; re-read everything
                        if e.errno != errno.ENOBUFS:
                            log.warning("%s: netlink receive: %s", self.name, e)
                        events.put_nowait(None)
                        return
                    for ev in parse_rtnl(data):
                        events.put_nowait(ev)

            loop.add_reader(sock.fileno(), on_readable)
            try:
                async for o in self._follow(events):
                    yield o
            finally:
                loop.remove_reader(sock.fileno())
        finally:
            sock.close()

    async def _steady_snap(self) -> Snapshot:
        """A snapshot, retried: the watch must outlive a netlink hiccup."""
        while True:
            try:
                return await self._snap()
            except Exception as e:
                log.warning("%s: netlink dump failed (%s), retrying", self.name, _netlink_errno(e)[1])
                await asyncio.sleep(1.0)

    async def _follow(self, events: asyncio.Queue) -> AsyncIterator[Observation]:
        snap = await self._steady_snap()  # after subscribing: nothing falls between
        nic = snap.nic
        present = snap.on_nic() is not None
        last, last_why = self._judge(present, nic)
        while True:
            ev = await events.get()
            if ev is None:
                snap = await self._steady_snap()
                nic, present = snap.nic, snap.on_nic() is not None
            elif isinstance(ev, AddrEvent) and ev.address == self.ip:
                if nic is None:
                    if ev.removed:
                        continue
                    snap = await self._steady_snap()
                    nic = snap.nic
                if nic is not None and ev.index == nic.index:
                    present = not ev.removed
            elif isinstance(ev, LinkEvent) and nic is not None and ev.index == nic.index:
                nic = dataclasses.replace(nic, flags=0 if ev.removed else ev.flags, name=ev.name or nic.name)
            else:
                continue
            state, why = self._judge(present, nic)
            if state is last and (state is not ResState.STARTED or why == last_why):
                continue
            last, last_why = state, why
            if state is ResState.STOPPED:
                if self._stopping:
                    yield observation(self.name, ResState.STOPPED, f"{self.ip} removed")
                else:
                    where = nic.name if nic else "its interface"
                    yield observation(self.name, ResState.FAILED, f"{self.ip} was removed from {where} "
                                                                  f"behind our back")
            else:
                yield observation(self.name, state, why)

    def _judge(self, present: bool, nic: Link | None) -> tuple[ResState, str]:
        if not present or nic is None:
            return ResState.STOPPED, f"{self.ip} absent"
        trouble = nic.trouble()
        if trouble:
            return ResState.STARTED, f"{self.ip} is on {nic.name} but {trouble}"
        return ResState.STARTED, f"{self.cidr} on {nic.name}, link up"


async def recvfrom(sock: socket.socket, size: int) -> tuple[bytes, tuple]:
    """One datagram from a non-blocking socket, waiting on the loop (what
    loop.sock_recvfrom does from Python 3.11 on; hasupd runs on 3.9)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return sock.recvfrom(size)
        except (BlockingIOError, InterruptedError):
            pass
        ready = loop.create_future()
        loop.add_reader(sock.fileno(), _resolve, ready)
        try:
            await ready
        finally:
            loop.remove_reader(sock.fileno())


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
