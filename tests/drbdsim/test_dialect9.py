"""The simulator's DRBD 9 dialect (``--drbd-version 9``) against the real DRBD 9
outputs in ../shared/realworld/drbdout/ (guide and drbd-utils test captures)
and hasupd's own parsers/classifier."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from hasupd.resources.drbd_parse import (
    FailureKind,
    classify,
    join_wrapped,
    parse_events2,
    parse_status,
    parse_status_json,
)

from .conftest import PrivateMount, connected_uptodate, ok, run, wait

ROOT = Path(__file__).resolve().parents[2]


def _drbdout() -> Path:
    for base in (ROOT.parent / "shared", ROOT.parent.parent / "shared"):
        if (base / "realworld" / "drbdout").is_dir():
            return base / "realworld" / "drbdout"
    pytest.fail("../shared/realworld/drbdout is missing")


def capture(name: str) -> str:
    return (_drbdout() / name).read_text()


@pytest.fixture
def sc9(make_cluster):
    return make_cluster(drbd_version="9", fencing="resource-only")


def _plain_status(sc, node) -> str:
    return ok(sc, node, "drbdadm", "--color=never", "status", "r0")


def _keys(line: str) -> list[str]:
    return [w.split(":", 1)[0] for w in line.split()[2:] if ":" in w]


def test_version_and_proc_drbd_say_9(sc9):
    out = ok(sc9, "n1", "drbdadm", "--version")
    assert "DRBD_KERNEL_VERSION_CODE=0x09020c" in out
    ok(sc9, "n1", "modprobe", "drbd")
    assert Path(sc9.status_path("n1")).read_text().startswith("version: 9.2.12 (api:2/proto:86-122)\n")


def test_status_and_events2_like_the_captures(sc9):
    connected_uptodate(sc9)
    # the Clusters from Scratch capture of a connected, UpToDate Secondary (the guide's
    # DRBD predates `open:`); names are the capture's
    mine = _plain_status(sc9, "n2").replace(" open:no", "").replace("r0 ", "wwwdata ").replace(" n1 ", " pcmk-1 ")
    assert mine == capture("drbdadm-status-9-cfs-secondary-uptodate.txt")
    # events2 --now: every object and key of the user guide's DRBD 9 output, in its order
    # (the simulator's newer module adds force-io-failures, may_promote, backing_dev ... between)
    real = [x for x in join_wrapped(capture("events2-ug9-now-wrapped.txt")) if x.strip()]
    sim = ok(sc9, "n2", "drbdsetup", "events2", "--now", "r0").splitlines()
    for line in real:
        verb_obj = line.split()[:2]
        same = [s for s in sim if s.split()[:2] == verb_obj]
        assert same, line
        keys = _keys(same[0])
        want = [k for k in _keys(line) if k not in ("minor",) or "minor" in keys]
        assert [k for k in keys if k in want] == want, (line, same[0])
    st = parse_events2("\n".join(sim))["r0"]
    assert (st.role, st.peer_role, st.disk, st.peer_disk, st.connection) == (
        "Secondary", "Primary", "UpToDate", "UpToDate", "Connected")
    # drbd-utils: no promotion while a peer is Primary; score = disk 10000 + UpToDate 100 + replicas
    assert (st.may_promote, st.promotion_score, st.quorum, st.peer_client) == (False, 10102, True, False)
    primary = parse_events2(ok(sc9, "n1", "drbdsetup", "events2", "--now", "r0"))["r0"]
    assert (primary.may_promote, primary.promotion_score) == (False, 10102)
    ok(sc9, "n1", "drbdadm", "secondary", "r0")
    both = parse_events2(ok(sc9, "n2", "drbdsetup", "events2", "--now", "r0"))["r0"]
    assert (both.may_promote, both.promotion_score) == (True, 10102)


def test_connecting_like_the_capture(sc9):
    ok(sc9, "n1", "drbdadm", "create-md", "--force", "r0")
    ok(sc9, "n1", "drbdadm", "up", "r0")
    mine = _plain_status(sc9, "n1").replace(" open:no", "").replace("r0 ", "wwwdata ").replace(" n2 ", " pcmk-2 ")
    assert mine == capture("drbdadm-status-9-cfs-connecting.txt")
    st = parse_status(_plain_status(sc9, "n1"))["r0"]
    assert (st.connection, st.disk, st.may_promote) == ("Connecting", "Inconsistent", None)


def test_events2_stream_keys_like_drbd_utils(sc9):
    """The create/change lines carry the keys of drbd-utils' own events2 test output."""
    real = {tuple(x.split()[:2]): _keys(x) for x in capture("events2-drbdutils-all-create-change.txt").splitlines()
            if len(x.split()) > 2}
    ok(sc9, "n1", "drbdadm", "create-md", "--force", "r0")
    ok(sc9, "n1", "modprobe", "drbd")
    p = subprocess.Popen(["nsenter", f"--net=/run/netns/{sc9.nodes['n1'][0]}", "--", "drbdsetup", "events2",
                          "all"], env=sc9.env("n1"), stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        lines = [p.stdout.readline()]
        assert lines == ["exists -\n"]
        ok(sc9, "n1", "drbdadm", "up", "r0")
        while not lines[-1].startswith("create path"):
            lines.append(p.stdout.readline())
    finally:
        os.killpg(p.pid, 9)
        p.wait()
    for line in lines:
        verb, obj = line.split()[:2]
        if verb == "create" and ("create", obj) in real:
            assert _keys(line) == real[("create", obj)], line


def test_refusals_name_drbdsetup_9_commands(sc9):
    connected_uptodate(sc9)
    r = run(sc9, "n2", "drbdadm", "primary", "r0")
    assert r.returncode == 11
    assert r.stderr == ("r0: State change failed: (-1) Multiple primaries not allowed by config\n"
                        "Command 'drbdsetup primary r0' terminated with exit code 11\n")
    assert classify(r.stderr, r.returncode).kind is FailureKind.MULTIPLE_PRIMARIES
    ok(sc9, "n1", "drbdadm", "down", "r0")
    r = run(sc9, "n1", "drbdadm", "primary", "r0")
    assert "(158) Unknown resource" in r.stderr and "drbdsetup primary r0" in r.stderr
    assert classify(r.stderr, r.returncode).kind is FailureKind.NOT_UP


def test_secondary_force_while_held_open(sc9):
    connected_uptodate(sc9, mkfs=True)
    m = PrivateMount(sc9.device("n1"), f"{sc9.workdir}/mnt")
    try:
        r = run(sc9, "n1", "drbdadm", "secondary", "r0")
        assert r.returncode == 11 and "(-12) Device is held open by someone" in r.stderr
        assert "drbdsetup secondary r0" in r.stderr
        ok(sc9, "n1", "drbdadm", "secondary", "--force", "r0")
        st = parse_status(_plain_status(sc9, "n1"))["r0"]
        assert st.role == "Secondary"
        assert "force-io-failures:yes" in _plain_status(sc9, "n1")
        ev = ok(sc9, "n1", "drbdsetup", "events2", "--now", "r0")
        assert "force-io-failures:yes" in ev and parse_events2(ev)["r0"].may_promote is False
        ok(sc9, "n2", "drbdadm", "primary", "r0")  # the peer may take over at once
    finally:
        m.umount()
    wait(lambda: "force-io-failures:yes" not in _plain_status(sc9, "n1"), what="I/O failures end")


def test_84_has_no_secondary_force(make_cluster):
    sc = make_cluster()
    connected_uptodate(sc)
    r = run(sc, "n1", "drbdadm", "secondary", "--force", "r0")
    assert r.returncode == 20 and "unrecognized option '--force'" in r.stderr


def test_status_json(sc9):
    connected_uptodate(sc9)
    out = ok(sc9, "n1", "drbdsetup", "status", "--json", "r0")
    data = json.loads(out)
    assert data[0]["connections"][0]["name"] == "n2"
    st = parse_status_json(out)["r0"]
    assert (st.role, st.peer_role, st.disk, st.peer_disk, st.replication) == (
        "Primary", "Secondary", "UpToDate", "UpToDate", "Established")


def test_sync_progress_in_mib_per_second(make_cluster):
    sc = make_cluster(drbd_version="9", resync_rate_kib=4096, resync_min_s=4.0)
    for n in ("n1", "n2"):
        ok(sc, n, "drbdadm", "create-md", "--force", "r0")
        ok(sc, n, "drbdadm", "up", "r0")
    sc.wait_for("n1", lambda s: s["conn"] == "Connected")
    ok(sc, "n1", "drbdadm", "primary", "--force", "r0")
    text = wait(lambda: (lambda t: t if "dbdt1:" in t else None)(
        ok(sc, "n1", "drbdsetup", "events2", "--now", "--statistics", "r0")), what="sync statistics")
    speed = float(re.search(r"dbdt1:([\d.]+)", text).group(1))
    st = parse_events2(text)["r0"]
    assert st.replication == "SyncSource"
    assert st.sync_speed_kib == pytest.approx(speed * 1024) and 1 <= speed <= 64
