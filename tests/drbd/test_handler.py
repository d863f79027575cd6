"""The fence-peer decision (every branch, as scenarios) and the handler
program itself, run the way DRBD runs it: no arguments, DRBD_* in the
environment, talking to a real UNIX socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from hasupd.model import DrbdStatus, FenceState
from hasupd.resources.drbd_handler import EXIT_CODES, FenceVerdict, fence_peer_verdict

from .conftest import fixture_text
from .test_errors import status_of

NONE = FenceState.NONE

# a peer as its heartbeat reports it
SECONDARY_UPTODATE = status_of("events2-now-uptodate-secondary.txt")
SECONDARY_LINK_LOST = status_of("events2-now-fencing-secondary-link-loss.txt")
PRIMARY = status_of("events2-now-link-down-primary-wfconnection.txt")
OUTDATED = status_of("events2-now-outdated-secondary.txt")
SB_VICTIM = status_of("events2-now-split-brain-standalone-node2.txt")
INCONSISTENT = status_of("events2-now-alone-fresh-md.txt")
CONSISTENT = status_of("events2-now-alone-old-data-fencing.txt")
DISKLESS = DrbdStatus("r0", up=True, role="Secondary", disk="Diskless", connection="Connecting")
DOWN = DrbdStatus("r0", up=False)


# (name, peer_alive, peer_drbd, guard, fencing, tiebreaker, devices/power) -> verdict, exit code,
# ask_peer_to_outdate, fence_peer
DEV = {"devices": True}
OFF = {"peer_power": "off"}
SCENARIOS = [
    # the peer answers on the heartbeat
    ("peer alive Primary: outdate myself", True, PRIMARY, "drbd", NONE, None, {}, "peer-primary", 6, False, False),
    ("peer alive Primary, guard none", True, PRIMARY, "none", NONE, None, {}, "peer-primary", 6, False, False),
    ("peer alive Primary though fenced state is stale", True, PRIMARY, "fence", FenceState.SUCCEEDED,
     None, DEV, "peer-primary", 6, False, False),
    ("peer alive Secondary UpToDate: ask it to outdate", True, SECONDARY_UPTODATE, "drbd", NONE, None, {},
     "unknown", 1, True, False),
    ("peer alive Secondary UpToDate, devices: ask, never fence a live peer", True, SECONDARY_UPTODATE, "drbd",
     NONE, None, DEV, "unknown", 1, True, False),
    ("peer alive Secondary link lost, UpToDate", True, SECONDARY_LINK_LOST, "drbd", NONE, None, {},
     "unknown", 1, True, False),
    ("peer alive Secondary Consistent: ask it too", True, CONSISTENT, "drbd", NONE, None, {},
     "unknown", 1, True, False),
    ("peer alive and already Outdated", True, OUTDATED, "drbd", NONE, None, {}, "outdated", 4, False, False),
    ("peer alive Inconsistent", True, INCONSISTENT, "none", NONE, None, {}, "outdated", 4, False, False),
    ("peer alive Diskless", True, DISKLESS, "ping", NONE, True, {}, "outdated", 4, False, False),
    ("peer alive, resource down there", True, DOWN, "drbd", NONE, None, {}, "down", 5, False, False),
    ("peer alive, split-brain victim Secondary UpToDate", True, SB_VICTIM, "drbd", NONE, None, {},
     "unknown", 1, True, False),
    ("peer alive but never reported the resource", True, None, "drbd", NONE, None, {}, "unknown", 1, False, False),
    # the peer is silent on every ring
    ("peer dead + fenced", False, None, "fence", FenceState.SUCCEEDED, None, DEV, "fenced", 7, False, False),
    ("peer dead + fenced, last seen Primary", False, PRIMARY, "fence", FenceState.SUCCEEDED, None, DEV,
     "fenced", 7, False, False),
    ("peer dead, devices report it off", False, PRIMARY, "drbd", NONE, None, {**DEV, **OFF},
     "fenced", 7, False, False),
    ("peer dead, fencing failed", False, None, "fence", FenceState.FAILED, None, DEV, "unknown", 1, False, False),
    ("peer dead, fencing pending: join it", False, None, "fence", FenceState.PENDING, None, DEV,
     "unknown", 1, False, True),
    ("peer dead, fence guard, not fenced yet: fence it", False, SECONDARY_UPTODATE, "fence", NONE, None, DEV,
     "unknown", 1, False, True),
    ("peer dead, guard drbd with devices: fence it", False, SECONDARY_UPTODATE, "drbd", NONE, None, DEV,
     "unknown", 1, False, True),
    ("peer dead, guard drbd with devices, fencing failed", False, SECONDARY_UPTODATE, "drbd", FenceState.FAILED,
     None, DEV, "unknown", 1, False, False),
    ("peer dead, guard drbd without devices: never down on silence", False, SECONDARY_UPTODATE, "drbd", NONE,
     None, {}, "unknown", 1, False, False),
    ("peer dead, guard drbd with devices, tie-breaker unreachable: no fence", False, None, "drbd", NONE,
     False, DEV, "unknown", 1, False, False),
    ("peer dead, guard none: down (by choice)", False, None, "none", NONE, None, {}, "down", 5, False, False),
    ("peer dead, ping guard reaches tie-breaker", False, None, "ping", NONE, True, {}, "down", 5, False, False),
    ("peer dead, ping guard isolated", False, None, "ping", NONE, False, {}, "unknown", 1, False, False),
    ("peer dead, ping guard not yet known", False, None, "ping", NONE, None, {}, "unknown", 1, False, False),
    ("peer dead, fenced under ping guard", False, None, "ping", FenceState.SUCCEEDED, False, {},
     "fenced", 7, False, False),
    ("unknown guard mode", False, None, "bogus", NONE, None, DEV, "unknown", 1, False, False),
]


@pytest.mark.parametrize("name,alive,peer,guard,fencing,tb,extra,verdict,code,ask,fence", SCENARIOS,
                         ids=[s[0] for s in SCENARIOS])
def test_fence_peer_verdict(name, alive, peer, guard, fencing, tb, extra, verdict, code, ask, fence):
    v = fence_peer_verdict(alive, peer, guard, fencing, tiebreaker=tb, resource="r0", **extra)
    assert isinstance(v, FenceVerdict)
    assert (v.verdict, v.exit_code, v.ask_peer_to_outdate, v.fence_peer) == (verdict, code, ask, fence)
    assert v.detail and "\n" not in v.detail


def test_silence_alone_is_never_a_yes_under_guard_drbd():
    """Issue 17: with guard drbd a silent peer that nothing fenced never lets this node promote."""
    for peer in (None, SECONDARY_UPTODATE, PRIMARY, OUTDATED):
        for fencing in (NONE, FenceState.PENDING, FenceState.FAILED):
            for tb in (None, True, False):
                for devices in (False, True):
                    v = fence_peer_verdict(False, peer, "drbd", fencing, tiebreaker=tb, devices=devices)
                    assert v.exit_code == 1, (peer, fencing, tb, devices, v)


def test_a_primary_peer_is_never_answered_with_a_yes():
    """Whatever else is true, a live Primary peer never lets this node promote."""
    for guard in ("ping", "fence", "drbd", "none"):
        for fencing in FenceState:
            for tb in (None, True, False):
                v = fence_peer_verdict(True, PRIMARY, guard, fencing, tiebreaker=tb)
                assert v.exit_code == 6


def test_a_live_uptodate_secondary_is_never_reported_outdated():
    for guard in ("ping", "fence", "drbd", "none"):
        for fencing in FenceState:
            v = fence_peer_verdict(True, SECONDARY_UPTODATE, guard, fencing, tiebreaker=True)
            assert v.exit_code not in (4, 5, 7)


def test_exit_codes_are_drbds():
    assert EXIT_CODES == {"outdated": 4, "down": 5, "peer-primary": 6, "fenced": 7}


# ---------------------------------------------------------------- the program


class FakeDaemon:
    """A real UNIX socket server answering one JSON line per connection."""

    def __init__(self, path: str, answer, delay: float = 0.0):
        self.path, self.answer, self.delay = path, answer, delay
        self.requests: list[dict] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                buf = b""
                while b"\n" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                req = json.loads(buf)
                self.requests.append(req)
                time.sleep(self.delay)
                ans = self.answer(req) if callable(self.answer) else self.answer
                try:
                    conn.sendall(ans if isinstance(ans, bytes) else json.dumps(ans).encode() + b"\n")
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def sockdir():
    with tempfile.TemporaryDirectory(prefix="dd-handler-") as d:
        yield Path(d)


def run_handler(which: str, sock: Path, extra_env: dict | None = None, timeout: float = 30):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRBD_", "HASUPD_"))}
    env.update({
        # what DRBD 8.4.11 put in the environment (fixtures/fence-log-*.txt)
        "DRBD_CONF": "/etc/drbd.conf", "DRBD_MINOR": "1", "DRBD_PEER": "node2", "DRBD_PEERS": "node2",
        "DRBD_PEER_ADDRESS": "10.99.0.2", "DRBD_PEER_AF": "ipv4", "DRBD_RESOURCE": "r0",
        "HASUPD_SOCKET": str(sock),
    })
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "hasupd.resources.drbd_handler", which],
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_the_environment_used_is_the_one_drbd_gives():
    log = fixture_text("fence-log-primary-link-loss.txt")
    for var in ("DRBD_RESOURCE=r0", "DRBD_PEER=node2", "DRBD_PEER_ADDRESS=10.99.0.2", "args (0)"):
        assert var in log


@pytest.mark.parametrize("verdict,code", [("outdated", 4), ("down", 5), ("peer-primary", 6),
                                          ("fenced", 7), ("unknown", 1)])
def test_fence_peer_maps_the_daemons_verdict(sockdir, verdict, code):
    sock = sockdir / "hasupd.sock"
    d = FakeDaemon(str(sock), {"ok": True, "verdict": verdict, "detail": f"because {verdict}"})
    try:
        p = run_handler("fence-peer", sock)
    finally:
        d.close()
    assert p.returncode == code, p.stderr
    assert d.requests == [{"cmd": "drbd-fence-peer", "resource": "r0", "peer": "node2",
                           "peer_address": "10.99.0.2", "minor": "1"}]
    assert f"because {verdict}" in p.stderr


def test_fence_peer_daemon_unreachable_fails(sockdir):
    p = run_handler("fence-peer", sockdir / "nobody.sock")
    assert p.returncode == 1
    assert "cannot ask the hasupd daemon" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("answer", [
    {"ok": False, "error": "no such resource"},
    {"ok": True, "verdict": "maybe"},
    b"not json\n",
    b"",
    b"[1, 2]\n",
])
def test_fence_peer_bad_answers_fail(sockdir, answer):
    sock = sockdir / "hasupd.sock"
    d = FakeDaemon(str(sock), answer)
    try:
        p = run_handler("fence-peer", sock)
    finally:
        d.close()
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr


def test_fence_peer_timeout_fails(sockdir):
    sock = sockdir / "hasupd.sock"
    d = FakeDaemon(str(sock), {"ok": True, "verdict": "fenced"}, delay=3)
    try:
        started = time.monotonic()
        p = run_handler("fence-peer", sock, {"HASUPD_HANDLER_TIMEOUT": "0.5"})
        took = time.monotonic() - started
    finally:
        d.close()
    assert p.returncode == 1 and took < 3, p.stderr


def test_fence_peer_without_drbd_env_fails(sockdir):
    p = run_handler("fence-peer", sockdir / "x.sock", {"DRBD_RESOURCE": ""})
    assert p.returncode == 1 and "DRBD_RESOURCE" in p.stderr


def test_unfence_peer_tells_the_daemon_and_exits_0(sockdir):
    sock = sockdir / "hasupd.sock"
    d = FakeDaemon(str(sock), {"ok": True})
    try:
        p = run_handler("unfence-peer", sock)
    finally:
        d.close()
    assert p.returncode == 0
    assert d.requests == [{"cmd": "drbd-unfence-peer", "resource": "r0", "peer": "node2"}]


def test_unfence_peer_without_daemon_still_exits_0(sockdir):
    assert run_handler("unfence-peer", sockdir / "nobody.sock").returncode == 0


def test_split_brain_alerts_and_logs_the_recovery(sockdir):
    sock = sockdir / "hasupd.sock"
    d = FakeDaemon(str(sock), {"ok": True})
    try:
        p = run_handler("split-brain", sock)
    finally:
        d.close()
    assert p.returncode == 0
    [req] = d.requests
    assert (req["cmd"], req["severity"], req["resource"]) == ("alert", "critical", "r0")
    steps = ("drbdadm secondary r0; drbdadm connect --discard-my-data r0", "drbdadm connect r0")
    for text in (req["reason"], p.stderr):
        for s in steps:
            assert s in text


def test_split_brain_without_daemon_still_logs_and_exits_0(sockdir):
    p = run_handler("split-brain", sockdir / "nobody.sock")
    assert p.returncode == 0
    assert "drbdadm connect --discard-my-data r0" in p.stderr


def test_usage_errors_never_say_yes():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRBD_")}
    for args in ([], ["fence"], ["fence-peer", "extra"]):
        p = subprocess.run([sys.executable, "-m", "hasupd.resources.drbd_handler", *args],
                           env=env, capture_output=True, text=True, timeout=30)
        assert p.returncode not in (3, 4, 5, 6, 7, 0)
        assert "usage" in p.stderr


def test_drbd9_environment_names_the_peer_by_node_id(sockdir):
    sock = sockdir / "hasupd.sock"
    d = FakeDaemon(str(sock), {"ok": True, "verdict": "outdated", "detail": "x"})
    try:
        p = run_handler("fence-peer", sock, {"DRBD_PEER": "", "DRBD_PEERS": "", "DRBD_PEER_NODE_ID": "1",
                                             "DRBD_NODE_ID_0": "node1", "DRBD_NODE_ID_1": "node2"})
    finally:
        d.close()
    assert p.returncode == 4 and d.requests[0]["peer"] == "node2"


def test_drbd9_connection_helper_environment(sockdir):
    # DRBD 9 runs fence-peer per connection: no DRBD_MINOR, but DRBD_MINORS; the host's `on`
    # names may be several (space separated): the first is the node
    sock = sockdir / "hasupd.sock"
    d = FakeDaemon(str(sock), {"ok": True, "verdict": "outdated", "detail": "x"})
    try:
        p = run_handler("fence-peer", sock, {"DRBD_PEER": "", "DRBD_PEERS": "", "DRBD_MINOR": "",
                                             "DRBD_PEER_NODE_ID": "0", "DRBD_MY_NODE_ID": "1",
                                             "DRBD_NODE_ID_0": "node1 node1-alias", "DRBD_NODE_ID_1": "node2",
                                             "DRBD_MINORS": "1 2", "DRBD_VOLUMES": "0 1"})
    finally:
        d.close()
    assert p.returncode == 4
    assert (d.requests[0]["peer"], d.requests[0]["minor"]) == ("node1", "1")
