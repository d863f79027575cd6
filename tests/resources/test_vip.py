"""The VIP driver in network namespaces joined by a bridge: n1 (the driver),
n2 (another host) and client (a neighbour), all in 10.77.3.0/24."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import time

import pytest

from hasupd.resources.vip import (
    ARP_REPLY,
    ARP_REQUEST,
    RTM_DELADDR,
    RTM_NEWLINK,
    AddrEvent,
    LinkEvent,
    conflict,
    dad_probe,
    full_label,
    gratuitous_arp,
    parse_arp,
    parse_rtnl,
)

try:
    from . import conftest_fv as fv
except ImportError:
    import conftest_fv as fv

VIP = "10.77.3.20"
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
VIP_B = socket.inet_aton(VIP)


# ---------------------------------------------------------------- pure parts


def _rta(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _nlmsg(kind: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_parse_rtnl_address_and_link_events():
    deladdr = _nlmsg(RTM_DELADDR, struct.pack("=BBBBI", socket.AF_INET, 24, 0, 0, 7)
                     + _rta(1, VIP_B) + _rta(2, VIP_B) + _rta(3, b"eth0:web\0"))
    newlink = _nlmsg(RTM_NEWLINK, struct.pack("=BxHiII", 0, 1, 7, 0x1003, 0) + _rta(3, b"eth0\0"))
    ipv6 = _nlmsg(RTM_DELADDR, struct.pack("=BBBBI", socket.AF_INET6, 64, 0, 0, 7) + _rta(1, b"\0" * 16))
    events = parse_rtnl(deladdr + ipv6 + newlink + b"\x01\x02")  # trailing junk is ignored
    assert events == [AddrEvent(True, 7, VIP, 24, "eth0:web"), LinkEvent(False, 7, "eth0", 0x1003)]
    assert parse_rtnl(b"") == [] and parse_rtnl(b"\xff" * 20) == []


def test_arp_frames_and_conflicts():
    probe = parse_arp(dad_probe(MAC_A, VIP_B))
    assert probe.op == ARP_REQUEST and probe.spa == b"\0\0\0\0" and probe.tpa == VIP_B
    garp = parse_arp(gratuitous_arp(MAC_A, VIP_B))
    assert garp.spa == garp.tpa == VIP_B and garp.sha == MAC_A
    assert len(gratuitous_arp(MAC_A, VIP_B)) == 60
    assert parse_arp(b"\0" * 10) is None
    # a reply from another host names its MAC; our own frames and other addresses do not count
    from hasupd.resources.vip import Arp
    assert conflict(Arp(ARP_REPLY, MAC_B, VIP_B, MAC_A, b"\0" * 4), VIP_B, MAC_A) == "02:00:00:00:00:02 answered for it"
    assert "announces" in conflict(garp.__class__(ARP_REQUEST, MAC_B, VIP_B, b"\0" * 6, VIP_B), VIP_B, MAC_A)
    assert "probing" in conflict(Arp(ARP_REQUEST, MAC_B, b"\0" * 4, b"\0" * 6, VIP_B), VIP_B, MAC_A)
    assert conflict(garp, VIP_B, MAC_A) is None
    assert conflict(Arp(ARP_REPLY, MAC_B, socket.inet_aton("10.77.3.1"), MAC_A, b"\0" * 4), VIP_B, MAC_A) is None


N2_INC = "0" * 31 + "1"


def peer_report(vip_state: str, incarnation: str = N2_INC):
    from hasupd.model import NodeState, ResourceStatus, ResState

    return NodeState("n2", alive=True, incarnation=incarnation,
                     resources={"vip": ResourceStatus(ResState(vip_state)), "web": ResourceStatus(ResState.STARTED)})


def test_a_release_counts_only_after_the_same_incarnation_held_the_address():
    from hasupd.resources.vip import RELEASE_FRESH, PeerReleases

    releases = PeerReleases(["vip"])
    # a peer that never said it held the address has released nothing (a stranger may hold it)
    releases.observe(peer_report("stopped"), 10.0)
    assert releases.recent("vip", True, N2_INC, 10.1) is None
    # held, then stopped: a release, fresh for RELEASE_FRESH seconds, of that incarnation only
    releases.observe(peer_report("started"), 11.0)
    assert releases.recent("vip", True, N2_INC, 11.0) is None
    releases.observe(peer_report("stopped"), 12.0)
    r = releases.recent("vip", True, N2_INC, 12.05)
    assert r is not None and r.why(12.05) == "n2 (incarnation 00000000) reported it released 0.05s ago"
    assert releases.recent("vip", False, N2_INC, 12.05) is None  # the peer is not alive now
    assert releases.recent("vip", True, "f" * 32, 12.05) is None  # another incarnation is alive now
    assert releases.recent("vip", True, N2_INC, 12.0 + RELEASE_FRESH + 0.01) is None  # too old
    assert releases.recent("web", True, N2_INC, 12.05) is None  # not a VIP
    # later reports of the same state keep the release; holding it again ends it
    releases.observe(peer_report("stopped"), 12.5)
    assert releases.recent("vip", True, N2_INC, 12.6).at == 12.0
    releases.observe(peer_report("started"), 13.0)
    assert releases.recent("vip", True, N2_INC, 13.1) is None


def test_a_restarted_peer_reporting_stopped_is_no_release():
    from hasupd.resources.vip import PeerReleases

    releases = PeerReleases(["vip"])
    releases.observe(peer_report("started"), 1.0)
    # the daemon restarted (new incarnation) and reports the address stopped: it never let go of it
    releases.observe(peer_report("stopped", "f" * 32), 1.5)
    assert releases.recent("vip", True, "f" * 32, 1.6) is None
    # a release, then a report of another incarnation: the release is forgotten
    releases.observe(peer_report("started"), 2.0)
    releases.observe(peer_report("stopped"), 2.1)
    releases.observe(peer_report("unknown", "f" * 32), 2.2)
    assert releases.recent("vip", True, N2_INC, 2.3) is None


def test_label_is_nic_colon_label():
    assert full_label("eth0", None) is None
    assert full_label("eth0", "web") == "eth0:web"
    assert full_label("eth0", "eth0:web") == "eth0:web"


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def lab():
    with fv.lan_lab() as lan:
        yield lan


@pytest.fixture
def make_vip(lab):
    """make_vip(role="n1", **params) -> a VipDriver in that node's network namespace."""
    with contextlib.ExitStack() as stack:
        def make(role="n1", **over):
            params = fv.vip_params(**{"ip": VIP, **over})
            return stack.enter_context(fv.driver_in("vip", params, lab.enter(role)))
        yield make


def addrs(lab, role: str, ifname: str = "eth0") -> dict[str, dict]:
    out = json.loads(lab.ip(role, "-j", "addr", "show", "dev", ifname).stdout)
    return {a["local"]: a for a in out[0]["addr_info"] if a["family"] == "inet"}


def neighbour_mac(lab, role: str, ip: str) -> str | None:
    out = json.loads(lab.ip(role, "-j", "neigh", "show", ip, "dev", "eth0").stdout)
    return out[0].get("lladdr") if out else None


def wait_obs(d, state: str, timeout: float) -> dict | None:
    """The next observation in ``state`` (skipping others), or None."""
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        o = d.next_obs(left)
        if o is None or o["state"] == state:
            return o
    return None


# ---------------------------------------------------------------- start / stop / probe / monitor


@pytest.mark.lab
def test_add_and_remove_with_label(lab, make_vip):
    d = make_vip(nic="eth0", label="web", arp_count=1, arp_repeat_after=0)
    assert d.call("probe")["state"] == "stopped"
    r = d.call("start")
    assert r["ok"], r
    assert r["message"] == f"added {VIP}/24 on eth0 (eth0:web); gratuitous ARP sent (1 in all)"
    a = addrs(lab, "n1")[VIP]
    assert a["prefixlen"] == 24 and a["label"] == "eth0:web" and a["broadcast"] == "10.77.3.255"
    st = d.call("probe")
    assert st["state"] == "started" and st["detail"] == f"{VIP}/24 on eth0 (eth0:web)"
    m = d.call("monitor")
    assert m["ok"], m
    again = d.call("start")
    assert again["ok"] and "already" in again["message"]

    r = d.call("stop")
    assert r["ok"] and r["message"] == f"removed {VIP}/24 from eth0"
    assert VIP not in addrs(lab, "n1") and "10.77.3.11" in addrs(lab, "n1")
    assert d.call("probe")["state"] == "stopped"
    r = d.call("stop")
    assert r["ok"] and "already absent" in r["message"]
    m = d.call("monitor")
    assert not m["ok"] and m["message"] == f"{VIP} is not on eth0"


@pytest.mark.lab
def test_nic_from_the_connected_route_and_clear_errors(lab, make_vip):
    # a second interface in n1 (10.77.4.0/24): the address picks its interface by route
    lab.ip("n1", "link", "add", "x0", "type", "veth", "peer", "name", "x1")
    lab.ip("n1", "addr", "add", "10.77.4.1/24", "dev", "x0")
    lab.ip("n1", "link", "set", "x0", "up")
    lab.ip("n1", "link", "set", "x1", "up")
    d = make_vip(ip="10.77.4.20", nic=None, arp_count=0)
    r = d.call("start")
    assert r["ok"], r
    assert "10.77.4.20" in addrs(lab, "n1", "x0")
    assert d.call("stop")["ok"]
    d = make_vip(nic=None, arp_count=0, label="web")
    r = d.call("start")
    assert r["ok"] and "on eth0 (eth0:web)" in r["message"], r
    assert d.call("stop")["ok"]

    r = make_vip(ip="10.77.9.20", nic=None).call("start")
    assert not r["ok"] and r["errno"] == 19
    assert r["message"] == "no interface has a connected route containing 10.77.9.20/24: set nic"
    d = make_vip(nic="eth9")
    r = d.call("start")
    assert not r["ok"] and r["message"] == "interface eth9 does not exist" and r["errno"] == 19
    assert d.call("probe")["state"] == "stopped"
    assert d.call("stop")["ok"]  # nothing to remove
    r = make_vip(nic="eth0", label="a-much-too-long-label").call("start")
    assert not r["ok"] and "eth0:a-much-too-long-label is 26 characters; the kernel allows 15" in r["message"]
    assert VIP not in addrs(lab, "n1")

    lab.ip("n1", "link", "set", "eth0", "down")
    r = make_vip(nic="eth0").call("start")
    assert not r["ok"] and r["message"] == f"cannot bring {VIP}/24 up: eth0 is down"


@pytest.mark.lab
def test_refuses_an_address_another_host_answers_for(lab, make_vip):
    lab.ip("n2", "addr", "add", f"{VIP}/24", "dev", "eth0")
    n2_mac = lab.mac("n2")
    d = make_vip(nic="eth0")
    t0 = time.monotonic()
    r = d.call("start")
    print(f"duplicate found by ARP probe in {time.monotonic() - t0:.2f}s")
    assert not r["ok"]
    assert r["errno"] == 98
    assert r["message"] == f"{VIP} is already in use on eth0's network: {n2_mac} answered for it (ARP probe); " \
                           f"refusing to add it"
    assert VIP not in addrs(lab, "n1")

    # the same with the check off: it is added (so the refusal above was the probe's doing)
    d = make_vip(nic="eth0", check_duplicate=False, arp_count=0)
    assert d.call("start")["ok"]
    assert VIP in addrs(lab, "n1")
    assert d.call("stop")["ok"]


@pytest.mark.lab
def test_the_probe_is_skipped_only_when_the_peer_reported_the_release(lab, make_vip):
    """With the peer's fresh release the start sends no probe and says why; without it the same
    start probes and finds the host holding the address (the case the skip must never cover is
    the engine's: PeerReleases gives no release for a peer that did not hold it)."""
    why = "n2 (incarnation 00000000) reported it released 0.03s ago"
    d = make_vip(nic="eth0", arp_count=0)
    with capture_arp(lab, "client") as frames:
        r = d.call("start", why)
    assert r["ok"], r
    assert r["message"] == f"added {VIP}/24 on eth0; duplicate-address probe skipped: {why}"
    assert VIP in addrs(lab, "n1")
    assert not probes(frames), frames
    assert d.call("stop")["ok"]

    with capture_arp(lab, "client") as frames:
        assert d.call("start")["ok"]
    assert probes(frames), frames  # the capture sees probes
    assert d.call("stop")["ok"]
    lab.ip("n2", "addr", "add", f"{VIP}/24", "dev", "eth0")
    r = d.call("start")
    assert not r["ok"] and r["errno"] == 98 and "(ARP probe)" in r["message"], r


def probes(frames: list[str]) -> list[str]:
    return [f for f in frames if f"who-has {VIP} tell 0.0.0.0" in f]


@pytest.mark.lab
def test_a_probe_prepared_during_the_promotion_stands_for_the_starts_own(lab, make_vip):
    """prepare() probes ahead; a start within PROBE_FRESH uses that probe (one probe in all), a later
    one probes again, and a host answering the prepared probe is refused all the same."""
    d = make_vip(nic="eth0", arp_count=0)
    with capture_arp(lab, "client") as frames:
        d.call("prepare")
        r = d.call("start")
    assert r["ok"], r
    assert r["message"].startswith(f"added {VIP}/24 on eth0; duplicate-address probe done "), r
    assert r["message"].endswith("s before (during the promotion)"), r
    assert len(probes(frames)) == 1, frames
    assert d.call("stop")["ok"]

    with capture_arp(lab, "client") as frames:
        d.call("prepare")
        time.sleep(1.3)  # older than PROBE_FRESH
        r = d.call("start")
    assert r["ok"] and "probe done" not in r["message"], r
    assert len(probes(frames)) == 2, frames
    assert d.call("stop")["ok"]

    lab.ip("n2", "addr", "add", f"{VIP}/24", "dev", "eth0")
    d.call("prepare")
    r = d.call("start")
    assert not r["ok"] and r["errno"] == 98 and "answered for it (ARP probe)" in r["message"], r
    assert VIP not in addrs(lab, "n1")


@contextlib.contextmanager
def capture_arp(lab, role: str):
    """tcpdump in ``role``'s namespace; yields a list filled with its ARP lines when the block ends."""
    ns = lab.nodes[role]
    p = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-l", "-n", "-tt", "-i", "eth0", "arp"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        for _ in range(5):  # tcpdump's banner, then "listening on ..." once it captures
            if "listening on" in p.stderr.readline():
                break
        else:
            raise AssertionError("tcpdump did not start")
        yield lines
    finally:
        time.sleep(0.2)
        os.killpg(p.pid, signal.SIGTERM)
        out, _ = p.communicate(timeout=10)
        lines += out.splitlines()


@contextlib.contextmanager
def capture_garp(lab, role: str):
    """Like capture_arp; yields a list filled with the arrival times of gratuitous ARPs for VIP."""
    seen: list[float] = []
    with capture_arp(lab, role) as lines:
        yield seen
    seen += [float(line.split()[0]) for line in lines if f"Request who-has {VIP} tell {VIP}" in line]


@pytest.mark.lab
def test_gratuitous_arp_updates_neighbours(lab, make_vip):
    bogus = "02:00:00:00:00:99"
    n1_mac = lab.mac("n1")
    lab.ip("client", "neigh", "replace", VIP, "lladdr", bogus, "dev", "eth0", "nud", "stale")

    # control: without gratuitous ARP the client keeps the stale owner
    quiet = make_vip(nic="eth0", arp_count=0)
    assert quiet.call("start")["ok"]
    time.sleep(1.0)
    assert neighbour_mac(lab, "client", VIP) == bogus
    assert quiet.call("stop")["ok"]

    d = make_vip(nic="eth0", arp_count=3, arp_interval=0.1, arp_repeat_after=1.5)
    with capture_garp(lab, "client") as seen:
        t0 = time.monotonic()
        r = d.call("start")
        took = time.monotonic() - t0
        returned_at = time.time()  # tcpdump -tt stamps are wall-clock
        assert r["ok"] and "gratuitous ARP sent (3 in all)" in r["message"], r
        assert fv.wait_for(lambda: neighbour_mac(lab, "client", VIP) == n1_mac, 5)
        time.sleep(0.6)  # the first burst (3 x 0.1 s) is over
        # a neighbour that missed the first burst learns from the repeat
        lab.ip("client", "neigh", "replace", VIP, "lladdr", bogus, "dev", "eth0", "nud", "stale")
        assert neighbour_mac(lab, "client", VIP) == bogus
        assert fv.wait_for(lambda: neighbour_mac(lab, "client", VIP) == n1_mac, 5)
        time.sleep(0.5)
    print(f"start took {took:.2f}s; GARPs seen by the client at (s): "
          + " ".join(f"{t - seen[0]:.2f}" for t in seen))
    assert len(seen) == 6
    assert returned_at < seen[1], "start() waited for the rest of the burst"
    assert seen[3] - seen[2] >= 1.3  # the second burst came arp_repeat_after later
    assert d.call("stop")["ok"]


# ---------------------------------------------------------------- watch


@pytest.mark.lab
def test_watch_sees_removed_address_and_lost_link_at_once(lab, make_vip):
    d = make_vip(nic="eth0", label="web", arp_count=1, arp_repeat_after=0)
    assert d.call("start")["ok"]
    d.watch()

    t0 = time.monotonic()
    lab.ip("n1", "addr", "del", f"{VIP}/24", "dev", "eth0")
    o = d.next_obs(5)
    assert o is not None, "external ip addr del not seen"
    latency = o["at"] - t0
    print(f"external 'ip addr del' seen after {latency * 1000:.1f} ms (incl. starting ip)")
    assert o["state"] == "failed" and o["detail"] == f"{VIP} was removed from eth0 behind our back"
    assert latency < 0.5
    assert not d.call("monitor")["ok"]

    assert d.call("start")["ok"]
    assert wait_obs(d, "started", 5) is not None

    # cable cut on the switch side: eth0 loses carrier.  Not a failure of the address
    # (issue 16): the node cannot serve now, which the planner handles without a fail count
    t0 = time.monotonic()
    lab.ip("lan", "link", "set", "n1-eth0", "down")
    o = wait_obs(d, "started", 5)
    assert o is not None and o["detail"] == f"{VIP} is on eth0 but eth0 has no carrier", o
    print(f"carrier loss seen after {(o['at'] - t0) * 1000:.1f} ms")
    m = d.call("monitor")
    assert m["ok"] and m["message"] == f"{VIP} is on eth0 but eth0 has no carrier"
    assert d.call("link_trouble") == "eth0 has no carrier"
    lab.ip("lan", "link", "set", "n1-eth0", "up")
    o = wait_obs(d, "started", 5)
    assert o is not None and o["detail"].endswith("link up"), o
    assert d.call("monitor")["message"].endswith("link up")
    assert d.call("link_trouble") is None

    # the node's own side taken down
    lab.ip("n1", "link", "set", "eth0", "down")
    o = wait_obs(d, "started", 5)
    assert o is not None and o["detail"] == f"{VIP} is on eth0 but eth0 is down", o
    lab.ip("n1", "link", "set", "eth0", "up")
    assert wait_obs(d, "started", 5) is not None

    # our own stop is no failure
    assert d.call("stop")["ok"]
    o = d.next_obs(5)
    assert o is not None and o["state"] == "stopped", o
    assert d.next_obs(0.3) is None


def test_the_single_link_query_of_a_vanished_index_is_none():
    """The kernel answers ENODEV for an index no link has: the poll then takes a snapshot again."""
    from hasupd.resources.vip import _link_at

    lo = socket.if_nametoindex("lo")
    assert _link_at(lo).name == "lo"
    unused = max(i for i, _ in socket.if_nameindex()) + 1000
    assert _link_at(unused) is None


@pytest.mark.lab
def test_link_trouble_follows_the_configured_name_when_its_link_is_renamed(lab, make_vip):
    """link_trouble asks for the one link of the last snapshot; when that index now has another
    name, the configured name is looked up again (a snapshot), not the old link's state."""
    d = make_vip(nic="eth0", arp_count=0)
    assert d.call("start")["ok"]
    assert d.call("link_trouble") is None
    lab.ip("n1", "link", "set", "eth0", "down")
    assert d.call("link_trouble") == "eth0 is down"  # the single-link query
    lab.ip("n1", "link", "set", "eth0", "name", "eth0old")
    lab.ip("n1", "link", "add", "name", "eth0", "type", "veth", "peer", "name", "eth0peer")
    lab.ip("n1", "link", "set", "dev", "eth0peer", "up")
    lab.ip("n1", "link", "set", "dev", "eth0", "up")
    try:
        assert d.call("link_trouble") is None  # the new eth0 (up), not eth0old (down)
    finally:
        lab.ip("n1", "link", "del", "dev", "eth0")  # and its peer
        lab.ip("n1", "link", "set", "dev", "eth0old", "name", "eth0")
        lab.ip("n1", "link", "set", "eth0", "up")
    assert d.call("link_trouble") is None
    assert d.call("stop")["ok"]


@pytest.mark.lab
def test_watch_ignores_other_addresses(lab, make_vip):
    d = make_vip(nic="eth0", arp_count=0)
    assert d.call("start")["ok"]
    d.watch()
    lab.ip("n1", "addr", "add", "10.77.3.21/24", "dev", "eth0")
    lab.ip("n1", "addr", "del", "10.77.3.21/24", "dev", "eth0")
    assert d.next_obs(0.5) is None
    assert d.call("monitor")["ok"]
