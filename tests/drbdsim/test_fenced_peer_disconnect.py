"""Issue 17, point 3: once a fence confirmed the peer off, the survivor does not wait for DRBD's
ping timeout: `drbdadm disconnect --force` (no handshake with the dead peer, so this Secondary is
not outdated on the way), `drbdadm connect` (listen for the peer again), promote.  Against the DRBD
simulator with a long ping-int, so that waiting for DRBD would show."""

import time

from .conftest import connected_uptodate, ok, run
from .test_fixtures import fence_handler, handler_dir


def test_forced_disconnect_from_a_dead_primary_keeps_the_data_and_promotes_at_once(make_cluster, net, tmp_path):
    d = handler_dir(tmp_path)  # the fence-peer handler answers 7 (fenced)
    sc = make_cluster(fencing="resource-only", handlers={"fence-peer": fence_handler(d)}, ping_int=10.0)
    connected_uptodate(sc, primary="n2")
    net.cut("n2")  # the owner is gone; DRBD on n1 notices only after ping-int 10 s
    began = time.monotonic()
    assert ok(sc, "n1", "drbdadm", "cstate", "r0").strip() == "Connected"
    ok(sc, "n1", "drbdadm", "disconnect", "--force", "r0")
    assert ok(sc, "n1", "drbdadm", "dstate", "r0").strip().startswith("UpToDate/")
    ok(sc, "n1", "drbdadm", "connect", "r0")
    r = run(sc, "n1", "drbdadm", "primary", "r0")
    took = time.monotonic() - began
    assert r.returncode == 0, r.stderr
    assert ok(sc, "n1", "drbdadm", "role", "r0").strip().startswith("Primary/")
    print(f"cut -> Primary on the survivor: {took:.2f}s")
    assert took < 5.0, took  # not the 10 s of DRBD's own detection
    assert "DRBD_RESOURCE=r0" in open(f"{d}/calls").read()  # promotion asked the fence-peer handler


def test_a_graceful_disconnect_from_a_primary_outdates_this_secondary(make_cluster, net, tmp_path):
    """Why the forced one: without --force DRBD 8.4 leaves the disconnecting Secondary Outdated."""
    sc = make_cluster(fencing="resource-only", handlers={"fence-peer": fence_handler(handler_dir(tmp_path))},
                      ping_int=10.0)
    connected_uptodate(sc, primary="n2")
    ok(sc, "n1", "drbdadm", "disconnect", "r0")
    assert ok(sc, "n1", "drbdadm", "dstate", "r0").strip().startswith("Outdated/")
