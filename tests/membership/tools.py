"""Helpers the membership tests run inside lab namespaces (a third party on
the LAN): forge packets, capture a node's packets, replay them, run a ping
guard, listen on a TCP port.  Output: JSON lines or files.

    python tests/membership/tools.py forge --dest D --src S --count N --rate R [--cluster C] [--as NODE]
    python tests/membership/tools.py capture --iface PORT --src ADDR --seconds S --out FILE
    python tests/membership/tools.py replay --file FILE --dest D --src S [--rate R]
    python tests/membership/tools.py ping-guard --targets A,B [--tcp-port P] --seconds S
    python tests/membership/tools.py listen --port P --seconds S
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import sys
import time

from hasupd.config import PingGuard as PingGuardConfig
from hasupd.config import Ring, default_of
from hasupd.membership import wire
from hasupd.membership.tiebreaker import PingGuard

PORT = default_of(Ring, "port")  # the rings of write_config use the default
ETH_P_IP = 0x0800
ETH_P_ALL = 0x0003


def sender(src: str, dest: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if socket.inet_aton(dest)[0] >= 224:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    s.bind((src, 0))
    return s


def forge(a) -> None:
    """Well-formed packets claiming to be ``a.as_node``, signed with a wrong key."""
    key = os.urandom(64)
    inc = wire.new_incarnation(time.time() + 3600)  # "newer" than anything real
    s = sender(a.src, a.dest)
    for seq in range(1, a.count + 1):
        s.sendto(wire.encode(key, a.cluster, a.as_node, inc, seq, "0" * 16, {"forged": True}),
                 (a.dest, PORT))
        time.sleep(1.0 / a.rate)
    print(json.dumps({"sent": a.count}))


def capture(a) -> None:
    """UDP payloads from ``a.src`` to port 5405 seen on a switch port."""
    # ETH_P_ALL: a bridge port consumes its frames before protocol-specific taps
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    s.bind((a.iface, ETH_P_ALL))  # (Python converts the protocol to network order here)
    s.settimeout(0.2)
    want = socket.inet_aton(a.src)
    found = []
    deadline = time.monotonic() + a.seconds
    while time.monotonic() < deadline:
        try:
            frame, addr = s.recvfrom(4096)
        except socket.timeout:
            continue
        if addr[1] != ETH_P_IP:
            continue
        ihl = (frame[0] & 0x0F) * 4
        if len(frame) < ihl + 8 or frame[9] != 17 or frame[12:16] != want:
            continue
        _, dport, length, _ = struct.unpack_from("!HHHH", frame, ihl)
        if dport == PORT:
            found.append(frame[ihl + 8:ihl + length].hex())
    with open(a.out, "w") as f:
        f.write("\n".join(found) + "\n")
    print(json.dumps({"captured": len(found)}))


def replay(a) -> None:
    packets = [bytes.fromhex(x) for x in open(a.file).read().split()]
    s = sender(a.src, a.dest)
    for p in packets:
        s.sendto(p, (a.dest, PORT))
        time.sleep(1.0 / a.rate)
    print(json.dumps({"replayed": len(packets)}))


async def ping_guard(a) -> None:
    cfg = PingGuardConfig(tuple(a.targets.split(",")), a.tcp_port, a.interval, a.timeout, a.rise, a.fall)
    guard = PingGuard(cfg)

    async def watch():
        async for reachable in guard.run():
            print(json.dumps({"reachable": reachable, "mono": time.monotonic()}), flush=True)

    print(json.dumps({"ready": True, "mono": time.monotonic()}), flush=True)
    try:
        await asyncio.wait_for(watch(), a.seconds)
    except asyncio.TimeoutError:
        pass


def listen(a) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", a.port))
    s.listen(16)
    s.settimeout(0.2)
    print(json.dumps({"listening": a.port}), flush=True)
    deadline = time.monotonic() + a.seconds
    while time.monotonic() < deadline:
        try:
            c, _ = s.accept()
            c.close()
        except socket.timeout:
            pass


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("forge")
    f.add_argument("--dest", required=True)
    f.add_argument("--src", required=True)
    f.add_argument("--count", type=int, default=50)
    f.add_argument("--rate", type=float, default=20)
    f.add_argument("--cluster", default="hbtest")
    f.add_argument("--as", dest="as_node", default="n2")
    c = sub.add_parser("capture")
    c.add_argument("--iface", required=True)
    c.add_argument("--src", required=True)
    c.add_argument("--seconds", type=float, default=2)
    c.add_argument("--out", required=True)
    r = sub.add_parser("replay")
    r.add_argument("--file", required=True)
    r.add_argument("--dest", required=True)
    r.add_argument("--src", required=True)
    r.add_argument("--rate", type=float, default=50)
    g = sub.add_parser("ping-guard")
    g.add_argument("--targets", required=True)
    g.add_argument("--tcp-port", type=int)
    g.add_argument("--interval", type=float, default=0.2)
    g.add_argument("--timeout", type=float, default=0.3)
    g.add_argument("--rise", type=int, default=2)
    g.add_argument("--fall", type=int, default=2)
    g.add_argument("--seconds", type=float, default=30)
    li = sub.add_parser("listen")
    li.add_argument("--port", type=int, required=True)
    li.add_argument("--seconds", type=float, default=30)
    a = p.parse_args()
    if a.cmd == "ping-guard":
        asyncio.run(ping_guard(a))
    else:
        {"forge": forge, "capture": capture, "replay": replay, "listen": listen}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
