"""The simulator prints what real DRBD 8.4.11 printed in the same state
(captures in tests/fixtures/drbd/), volatile fields (counters, progress)
normalised."""

import os

import pytest

from .conftest import (
    PrivateMount,
    command_fixture,
    connected_uptodate,
    events_now,
    fixture,
    norm_proc,
    norm_status,
    ok,
    proc,
    rcd,
    run,
    status,
    wait,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def same_state(sc, node, name, *, proc_name=None, events=True, stat=True):
    """Compare /proc/drbd, events2 --now, role/cstate/dstate and status with the captures `*-name.txt`."""
    assert norm_proc(proc(sc, node)) == norm_proc(fixture(f"proc-drbd-8.4.11-{proc_name or name}.txt"))
    assert rcd(sc, node) == fixture(f"role-cstate-dstate-{name}.txt")
    if events:
        assert events_now(sc, node) == fixture(f"events2-now-{name}.txt")
    if stat:
        assert norm_status(status(sc, node)) == norm_status(fixture(f"status-{name}.txt"))


def same_output(r, name, norm=lambda s: s):
    text, code = command_fixture(name)
    assert r.returncode == code, r.stdout + r.stderr
    assert norm(r.stdout + r.stderr) == norm(text)


def handler_dir(tmp_path):
    d = str(tmp_path)
    with open(os.path.join(d, "rc"), "w") as f:
        f.write("7\n")
    return d


def fence_handler(d):
    return f"env | grep ^DRBD_ | sort >> {d}/calls; echo --- >> {d}/calls; exit $(cat {d}/rc)"


def test_no_module(make_cluster):
    sc = make_cluster(module="missing")
    r = run(sc, "n1", "modprobe", "drbd", "minor_count=1")
    assert r.returncode == 1
    assert r.stderr == f"modprobe: FATAL: Module drbd not found in directory /lib/modules/{os.uname().release}\n"
    r = run(sc, "n1", "drbdadm", "status", "r0")
    assert r.returncode == 20
    assert r.stderr == ("Failed to modprobe drbd (No such file or directory)\n"
                        "Command 'drbdsetup status r0' terminated with exit code 20\n")
    assert not os.path.exists(sc.status_path("n1"))
    # loading it makes the module-only /proc/drbd appear
    ok(sc, "n1", "drbdsim", "module", "available")
    ok(sc, "n1", "modprobe", "drbd", "minor_count=1")
    assert proc(sc, "n1") == fixture("proc-drbd-8.4.11-module-only.txt")


def test_attach_before_up_and_alone_fresh(make_cluster):
    sc = make_cluster(fencing="resource-only")
    ok(sc, "n1", "modprobe", "drbd", "minor_count=1")
    r = run(sc, "n1", "drbdadm", "attach", "r0")
    disk = sc.disk("n1")
    same_output(r, "attach-minor-not-allocated",
                lambda s: s.replace(disk, "DISK").replace("/dev/vdb", "DISK")
                .replace(" --c-min-rate=0 --resync-rate=200M --c-max-rate=200M", ""))
    ok(sc, "n1", "drbdadm", "create-md", "--force", "r0")
    same_output(run(sc, "n1", "drbdadm", "up", "r0"), "up-minor1-minor-count-1")
    same_state(sc, "n1", "alone-fresh-md")
    same_output(run(sc, "n1", "drbdadm", "primary", "r0"), "primary-refused-inconsistent-alone")


def test_connected_inconsistent_sync_and_uptodate(make_cluster):
    sc = make_cluster(resync_rate_kib=8192)  # 64 MiB at 8 MiB/s: an 8 s full sync
    for n in ("n1", "n2"):
        ok(sc, n, "drbdadm", "create-md", "--force", "r0")
        ok(sc, n, "drbdadm", "up", "r0")
    sc.wait_for("n1", lambda s: s["conn"] == "Connected")
    sc.wait_for("n2", lambda s: s["conn"] == "Connected")
    same_state(sc, "n1", "connected-inconsistent")
    assert events_now(sc, "n2") == fixture("events2-now-connected-inconsistent-node2.txt")
    assert norm_proc(proc(sc, "n2")) == norm_proc(fixture("proc-drbd-8.4.11-connected-inconsistent-node2.txt"))
    same_output(run(sc, "n1", "drbdadm", "primary", "r0"), "primary-refused-inconsistent-connected")

    same_output(run(sc, "n1", "drbdadm", "primary", "--force", "r0"), "primary-force-inconsistent")
    sc.wait_for("n2", lambda s: s["repl"] == "SyncTarget" and 0 < s["oos"] < 60000)
    same_state(sc, "n1", "sync-source")
    same_state(sc, "n2", "sync-target")
    # progress moves
    p1 = proc(sc, "n2")
    wait(lambda: proc(sc, "n2") != p1, 10, "progress")
    same_output(run(sc, "n1", "drbdadm", "pause-sync", "r0"), "pause-sync")
    sc.wait_for("n2", lambda s: s["repl"] == "PausedSyncT")
    assert norm_proc(proc(sc, "n1")) == norm_proc(fixture("proc-drbd-8.4.11-paused-sync-source.txt"))
    assert norm_proc(proc(sc, "n2")) == norm_proc(fixture("proc-drbd-8.4.11-paused-sync-target.txt"))
    assert events_now(sc, "n1") == fixture("events2-now-paused-sync-source.txt")
    assert events_now(sc, "n2") == fixture("events2-now-paused-sync-target.txt")
    same_output(run(sc, "n1", "drbdadm", "resume-sync", "r0"), "resume-sync")

    sc.wait_for("n2", lambda s: s["disk"] == "UpToDate", timeout=60)
    sc.wait_for("n1", lambda s: s["peer_disk"] == "UpToDate" and s["repl"] == "Established")
    same_state(sc, "n1", "uptodate-primary")
    same_state(sc, "n2", "uptodate-secondary")
    same_output(run(sc, "n2", "drbdadm", "primary", "r0"), "primary-refused-peer-primary")


def test_held_open_detach_and_peer_down(make_cluster, tmp_path):
    sc = make_cluster()
    connected_uptodate(sc, mkfs=True)
    m = PrivateMount(sc.device("n1"), str(tmp_path / "mnt"))
    try:
        same_output(run(sc, "n1", "drbdadm", "secondary", "r0"), "secondary-refused-mounted")
        same_output(run(sc, "n1", "drbdadm", "down", "r0"), "down-refused-mounted")
        assert rcd(sc, "n1") == fixture("role-cstate-dstate-after-failed-down-mounted.txt")
        same_output(run(sc, "n1", "drbdadm", "detach", "r0"), "detach-primary")
        same_state(sc, "n1", "detached-primary-diskless")
        sc.wait_for("n2", lambda s: s["peer_disk"] == "Diskless")
        same_state(sc, "n2", "peer-diskless-secondary")
        # the mount still works (I/O through the peer)
        m.sh(f"echo x > {m.mnt}/f && sync")
        r = run(sc, "n1", "drbdadm", "attach", "r0")
        assert r.returncode == 0 and "as out-of-sync based on AL." in r.stderr
        sc.wait_for("n1", lambda s: s["disk"] == "UpToDate", timeout=30)
    finally:
        m.umount()
    ok(sc, "n1", "drbdadm", "secondary", "r0")
    same_output(run(sc, "n2", "drbdadm", "down", "r0"), "down-secondary-connected")
    sc.wait_for("n1", lambda s: s["conn"] == "Connecting")
    same_state(sc, "n1", "peer-down-gracefully")


def test_link_loss_outdate_and_resync(make_cluster, net):
    sc = make_cluster()
    connected_uptodate(sc)
    net.cut("n2")
    sc.wait_for("n1", lambda s: s["conn"] == "Connecting", timeout=10)
    same_state(sc, "n1", "link-down-primary-wfconnection")
    sc.wait_for("n2", lambda s: s["conn"] == "Connecting", timeout=10)
    same_state(sc, "n2", "link-down-secondary-wfconnection")
    same_output(run(sc, "n2", "drbdadm", "outdate", "r0"), "outdate-disconnected-secondary")
    same_state(sc, "n2", "outdated-secondary")
    same_output(run(sc, "n2", "drbdadm", "primary", "r0"), "primary-refused-outdated")
    net.mend("n2")
    sc.wait_for("n2", lambda s: s["disk"] == "UpToDate" and s["repl"] == "Established", timeout=30)
    assert rcd(sc, "n2") == fixture("role-cstate-dstate-resynced-after-outdate-secondary.txt")
    assert norm_proc(proc(sc, "n2")) == norm_proc(
        fixture("proc-drbd-8.4.11-resynced-after-outdate-secondary.txt"))


def test_alone_old_data_nofencing(make_cluster):
    sc = make_cluster()
    connected_uptodate(sc)
    ok(sc, "n1", "drbdadm", "secondary", "r0")
    for n in ("n1", "n2"):
        ok(sc, n, "drbdadm", "down", "r0")
    ok(sc, "n2", "drbdadm", "up", "r0")
    same_state(sc, "n2", "alone-old-data-nofencing")
    same_output(run(sc, "n2", "drbdadm", "primary", "r0"), "primary-alone-nofencing")
    assert norm_proc(proc(sc, "n2")) == norm_proc(fixture("proc-drbd-8.4.11-alone-promoted-nofencing.txt"))
    assert rcd(sc, "n2") == fixture("role-cstate-dstate-alone-promoted-nofencing.txt")


def test_alone_old_data_fencing_handler_7_and_6(make_cluster, tmp_path):
    d = handler_dir(tmp_path)
    sc = make_cluster(fencing="resource-only", handlers={"fence-peer": fence_handler(d)})
    connected_uptodate(sc)
    ok(sc, "n1", "drbdadm", "secondary", "r0")
    for n in ("n1", "n2"):
        ok(sc, n, "drbdadm", "down", "r0")
    ok(sc, "n1", "drbdadm", "up", "r0")
    same_state(sc, "n1", "alone-old-data-fencing")
    same_output(run(sc, "n1", "drbdadm", "primary", "r0"), "primary-alone-consistent-fencing")
    assert norm_proc(proc(sc, "n1")) == norm_proc(fixture("proc-drbd-8.4.11-alone-promoted-fencing.txt"))
    assert rcd(sc, "n1") == fixture("role-cstate-dstate-alone-promoted-fencing.txt")
    calls = open(f"{d}/calls").read()
    for var in ("DRBD_RESOURCE=r0", "DRBD_MINOR=1", "DRBD_PEER=n2", "DRBD_PEERS=n2",
                f"DRBD_PEER_ADDRESS={sc.nodes['n2'][1]}", "DRBD_PEER_AF=ipv4", "DRBD_CONF="):
        assert var in calls
    # n2 comes up: n1 (Primary alone, new generation) resyncs it
    ok(sc, "n2", "drbdadm", "up", "r0")
    sc.wait_for("n2", lambda s: s["disk"] == "UpToDate" and s["peer_role"] == "Primary", timeout=30)


def test_fence_exit6_outdated_state(make_cluster, net, tmp_path):
    d = handler_dir(tmp_path)
    sc = make_cluster(fencing="resource-only", handlers={"fence-peer": fence_handler(d)})
    connected_uptodate(sc)
    net.cut("n2")
    sc.wait_for("n1", lambda s: s["peer_disk"] == "Outdated", timeout=15)  # n1 (Primary) fenced n2
    same_state(sc, "n1", "fenced-primary-link-loss")
    sc.wait_for("n2", lambda s: s["conn"] == "Connecting", timeout=10)
    same_state(sc, "n2", "fencing-secondary-link-loss")
    with open(f"{d}/rc", "w") as f:
        f.write("6\n")
    same_output(run(sc, "n2", "drbdadm", "primary", "r0"), "primary-refused-fence-peer-exit6")
    same_state(sc, "n2", "fence-exit6-outdated")


def test_split_brain_and_recovery(make_cluster, net, tmp_path):
    d = handler_dir(tmp_path)
    sc = make_cluster(handlers={"split-brain": f"echo $DRBD_RESOURCE >> {d}/sb"})
    connected_uptodate(sc)
    net.cut("n2")
    sc.wait_for("n2", lambda s: s["conn"] == "Connecting", timeout=10)
    same_output(run(sc, "n2", "drbdadm", "primary", "r0"), "primary-disconnected-uptodate-nofencing")
    same_state(sc, "n2", "both-primary-disconnected-node2")
    assert norm_proc(proc(sc, "n1")) == norm_proc(
        fixture("proc-drbd-8.4.11-both-primary-disconnected-node1.txt"))
    ok(sc, "n2", "drbdadm", "secondary", "r0")
    net.mend("n2")
    sc.wait_for("n1", lambda s: s["conn"] == "StandAlone", timeout=15)
    sc.wait_for("n2", lambda s: s["conn"] == "StandAlone", timeout=15)
    same_state(sc, "n1", "split-brain-standalone")
    same_state(sc, "n2", "split-brain-standalone-node2")
    for n in ("n1", "n2"):
        assert "Split-Brain detected but unresolved, dropping connection!" in open(sc.kern_log(n)).read()
    wait(lambda: os.path.exists(f"{d}/sb") and open(f"{d}/sb").read().count("r0") == 2, 10, "handlers")
    # recovery: victim n2, survivor n1
    same_output(run(sc, "n2", "drbdadm", "secondary", "r0"), "sb-victim-secondary")
    same_output(run(sc, "n2", "drbdadm", "connect", "--discard-my-data", "r0"), "connect-discard-my-data")
    assert rcd(sc, "n2") == fixture("role-cstate-dstate-sb-victim-wfconnection.txt")
    assert norm_proc(proc(sc, "n2")) == norm_proc(fixture("proc-drbd-8.4.11-sb-victim-wfconnection.txt"))
    same_output(run(sc, "n1", "drbdadm", "connect", "r0"), "connect-sb-survivor")
    sc.wait_for("n2", lambda s: s["disk"] == "UpToDate" and s["repl"] == "Established", timeout=30)
    sc.wait_for("n1", lambda s: s["peer_disk"] == "UpToDate" and s["repl"] == "Established", timeout=30)
    assert events_now(sc, "n1") == fixture("events2-now-sb-recovered.txt")
    assert rcd(sc, "n1") == fixture("role-cstate-dstate-sb-recovered.txt")
    assert norm_proc(proc(sc, "n1")) == norm_proc(fixture("proc-drbd-8.4.11-sb-recovered.txt"))
    assert norm_proc(proc(sc, "n2")) == norm_proc(fixture("proc-drbd-8.4.11-sb-recovered-node2.txt"))


def test_fencing_secondary_promotes_disconnected(make_cluster, net, tmp_path):
    d = handler_dir(tmp_path)
    sc = make_cluster(fencing="resource-only", handlers={"fence-peer": fence_handler(d)})
    connected_uptodate(sc, primary="n2")
    net.cut("n2")
    sc.wait_for("n1", lambda s: s["conn"] == "Connecting", timeout=15)
    same_state(sc, "n1", "fencing-secondary-disconnected")
    same_output(run(sc, "n1", "drbdadm", "primary", "r0"), "primary-disconnected-fencing-exit7")
    same_state(sc, "n1", "fencing-promoted-disconnected")
    # the peer stays known-Outdated across a restart of the resource
    ok(sc, "n1", "drbdadm", "secondary", "r0")
    ok(sc, "n1", "drbdadm", "down", "r0")
    ok(sc, "n1", "drbdadm", "up", "r0")
    assert norm_proc(proc(sc, "n1")) == norm_proc(fixture("proc-drbd-8.4.11-minor-count-1-up.txt"))
