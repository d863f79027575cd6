"""Every real DRBD status output in the shared folders, read as DRBD reports it.

* ``shared/fixtures/drbd/``: DRBD 8.4.11 + drbd-utils 9.22 captured on two
  Debian VMs; the truth of each state is ``drbdadm role; cstate; dstate``
  captured at the same moment (role-cstate-dstate-STATE.txt).
* ``shared/realworld/drbdout/``: drbd-utils' own v9 test outputs (events2),
  LINBIT/SUSE/Clusters-from-Scratch guide outputs (drbdadm status 9, events2
  of the 8.4 and 9 user guides, /proc/drbd 8.3.6 .. 8.4.9); the truth is
  written below by reading each file.

The folders are found beside the repository (``../shared``; a worktree under
``wt/`` has it at ``../../shared``).  Missing folders fail the test: these
captures are what the parsers are judged against.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hasupd.resources.drbd_parse import (
    Events2Stream,
    map_cs,
    parse_events2,
    parse_legacy_event,
    parse_proc_drbd,
    parse_status,
    proc_drbd_version,
)

ROOT = Path(__file__).resolve().parents[2]


def _shared() -> Path:
    for base in (ROOT.parent / "shared", ROOT.parent.parent / "shared"):
        if (base / "fixtures" / "drbd").is_dir() and (base / "realworld" / "drbdout").is_dir():
            return base
    pytest.fail(f"the shared captures are missing: neither {ROOT.parent / 'shared'} nor "
                f"{ROOT.parent.parent / 'shared'} has fixtures/drbd and realworld/drbdout")


def _files(sub: str) -> list[Path]:
    try:
        return sorted(_shared().joinpath(sub).glob("*.txt"))
    except BaseException:  # pytest.fail while collecting: the test below reports it
        return []


FIXTURES_84 = _files("fixtures/drbd")
REALWORLD = _files("realworld/drbdout")


def test_the_shared_folders_are_there():
    base = _shared()
    assert len(list((base / "fixtures" / "drbd").glob("*.txt"))) >= 150
    assert len(list((base / "realworld" / "drbdout").glob("*.txt"))) >= 25


def summary(st) -> tuple[str, str, str, str, str, str]:
    return st.role, st.peer_role, st.disk, st.peer_disk, st.connection, st.replication


# ---------------------------------------------------------------- 8.4.11 captures


def _state(path: Path) -> str:
    for prefix in ("proc-drbd-8.4.11-", "events2-now-", "status-", "role-cstate-dstate-"):
        if path.name.startswith(prefix):
            return path.name[len(prefix):-4]
    return ""


def _truth(state: str) -> tuple[str, ...] | None:
    path = _shared() / "fixtures" / "drbd" / f"role-cstate-dstate-{state}.txt"
    if not path.exists():
        return None
    roles, cstate, dstates = path.read_text().split()
    role, peer_role = roles.split("/")
    disk, peer_disk = dstates.split("/")
    return (role, peer_role, disk, peer_disk, *map_cs(cstate))


STATUS_84 = [p for p in FIXTURES_84 if p.name.startswith(("proc-drbd-", "events2-", "status-", "events-"))
             and p.name != "status-json-unsupported.txt"]


@pytest.mark.parametrize("path", STATUS_84, ids=lambda p: p.name)
def test_every_84_status_capture_parses(path: Path):
    text = path.read_text()
    name = path.name
    if name.startswith("proc-drbd-"):
        assert proc_drbd_version(text) == "8.4.11"
        got = parse_proc_drbd(text, {1: "r0"})
        if name == "proc-drbd-8.4.11-module-only.txt":
            assert got == {}
            return
        st = next(iter(got.values()))
    elif name.startswith("events2-stream-"):
        stream = Events2Stream()  # a whole stream: every line read, the last status kept
        emitted = [s for line in text.splitlines() for s in stream.feed(line)]
        assert len(emitted) > 10
        st = emitted[-1]
    elif name.startswith("events2-"):
        st = parse_events2(text)["r0"]
    elif name.startswith("events-"):
        sts = [s for s in map(parse_legacy_event, text.splitlines()) if s is not None]
        assert sts, "no ST line read"
        st = sts[-1]
    else:
        st = parse_status(text)["r0"]
    assert st.up or name in ("proc-drbd-8.4.11-unconfigured-minor.txt",
                             "events2-stream-session-node1-1.txt", "events2-stream-session-node2-1.txt")
    # 8.4 reports none of DRBD 9's promotion facts
    assert (st.may_promote, st.promotion_score, st.quorum) == (None, None, None)
    truth = _truth(_state(path))
    if truth is None or not st.up:
        return
    mine = summary(st)
    if name.startswith("status-"):
        # drbdadm status shows no peer disk/role while not connected, and 8.4's shows
        # no Connecting peer at all when StandAlone: compare what it prints
        if st.connection != "Connected":
            mine, truth = mine[:3] + mine[4:], truth[:3] + truth[4:]
    assert mine == truth


def test_84_status_verbose_statistics_reads_every_line():
    st = parse_status((_shared() / "fixtures/drbd/status-verbose-statistics.txt").read_text())["r0"]
    assert summary(st) == ("Primary", "Secondary", "UpToDate", "UpToDate", "Connected", "Established")
    assert st.minor == 1 and st.out_of_sync_kib == 0 and st.resync_suspended == "no"


def test_84_status_sync_progress_from_done():
    st = parse_status((_shared() / "fixtures/drbd/status-sync-target.txt").read_text())["r0"]
    assert (st.replication, st.sync_percent) == ("SyncTarget", pytest.approx(4.93))


# ---------------------------------------------------------------- realworld: 8.3 .. 9


def _ev(role, peer_role, disk, peer_disk, conn, repl, **more):
    return (role, peer_role, disk, peer_disk, conn, repl), more


CONNECTED_SS_UU = ("Secondary", "Secondary", "UpToDate", "UpToDate", "Connected", "Established")

# file -> {resource: ((role, peer_role, disk, peer_disk, connection, replication), other fields)}
REALWORLD_TRUTH: dict[str, dict] = {
    "drbdadm-status-9-cfs-connecting.txt": {"wwwdata": _ev(
        "Secondary", "Unknown", "Inconsistent", "DUnknown", "Connecting", "Off")},
    "drbdadm-status-9-cfs-secondary-uptodate.txt": {"wwwdata": _ev(
        "Secondary", "Primary", "UpToDate", "UpToDate", "Connected", "Established")},
    # SUSE's guide lost the peer-disk line's indentation: still the peer's disk
    "drbdadm-status-9-suse-r0.txt": {"r0": _ev(
        "Primary", "Secondary", "UpToDate", "UpToDate", "Connected", "Established")},
    "events2-drbdutils-all-create-change-statistics.txt": {"some-resource": _ev(
        "Primary", "Secondary", "UpToDate", "UpToDate", "Connected", "Established",
        may_promote=False, promotion_score=10102, quorum=True, minor=1000, peer_client=False,
        out_of_sync_kib=0)},
    "events2-drbdutils-all-create-change.txt": {"some-resource": _ev(
        "Primary", "Secondary", "UpToDate", "UpToDate", "Connected", "Established",
        may_promote=False, promotion_score=10102, quorum=True, minor=1000)},
    "events2-drbdutils-all-create-destroy.txt": {},
    "events2-drbdutils-all-create-helper.txt": {"some-resource": _ev(
        "Secondary", "Unknown", "Diskless", "DUnknown", "StandAlone", "Off",
        may_promote=False, promotion_score=0, quorum=True)},
    "events2-drbdutils-out-of-order.txt": {"some-resource": _ev(
        "Secondary", "Unknown", "Diskless", "DUnknown", "StandAlone", "Off", minor=1000)},
    # only the resource line: no device yet
    "events2-drbdutils-resource-exists.txt": {"some-resource": _ev(
        "Secondary", "Unknown", "Diskless", "DUnknown", "StandAlone", "Off",
        may_promote=False, promotion_score=0, quorum=None)},
    "events2-drbdutils-sync.txt": {"some-resource": _ev(
        "Secondary", "Secondary", "UpToDate", "Inconsistent", "Connected", "SyncSource",
        may_promote=True, promotion_score=10101, sync_percent=37.5)},
    "events2-ug84-now-wrapped.txt": {"r0": (CONNECTED_SS_UU, {"minor": 7})},
    "events2-ug84-statistics-wrapped.txt": {"r0": (CONNECTED_SS_UU, {"minor": 7, "out_of_sync_kib": 0})},
    "events2-ug9-now-wrapped.txt": {"r0": (CONNECTED_SS_UU, {"minor": 7})},
}
# /proc/drbd: (version, minor, first block's six states)
PROC_TRUTH = {
    "proc-drbd-8.3.11-rozofs.txt": ("8.3.11", 0, ("Primary", "Secondary", "UpToDate", "UpToDate",
                                                  "Connected", "Established")),
    "proc-drbd-8.3.12-ug.txt": ("8.3.12", 0, ("Secondary", "Primary", "UpToDate", "UpToDate",
                                              "Connected", "Established")),
    "proc-drbd-8.3.6-cfs-connected-inconsistent.txt": ("8.3.6", 1, (
        "Secondary", "Secondary", "Inconsistent", "Inconsistent", "Connected", "Established")),
    "proc-drbd-8.3.6-cfs-connected-primary.txt": ("8.3.6", 1, (
        "Primary", "Secondary", "UpToDate", "UpToDate", "Connected", "Established")),
    "proc-drbd-8.3.6-cfs-syncsource.txt": ("8.3.6", 1, (
        "Primary", "Secondary", "UpToDate", "Inconsistent", "Connected", "SyncSource")),
    "proc-drbd-8.3.8-checkmk-stalled.txt": ("8.3.8", 0, (
        "Primary", "Secondary", "UpToDate", "Inconsistent", "Connected", "SyncSource")),
    "proc-drbd-8.3.8-checkmk-synced.txt": ("8.3.8", 0, (
        "Primary", "Secondary", "UpToDate", "UpToDate", "Connected", "Established")),
    "proc-drbd-8.4.0-ug-3minors.txt": ("8.4.0", 0, CONNECTED_SS_UU),
    "proc-drbd-8.4.1-ug-inconsistent.txt": ("8.4.1", 0, (
        "Secondary", "Secondary", "Inconsistent", "Inconsistent", "Connected", "Established")),
    "proc-drbd-8.4.3-rozofs.txt": ("8.4.3", 0, ("Primary", "Secondary", "UpToDate", "UpToDate",
                                                "Connected", "Established")),
    "proc-drbd-8.4.7-icicimov.txt": ("8.4.7-1", 0, ("Secondary", "Primary", "UpToDate", "UpToDate",
                                                    "Connected", "Established")),
    "proc-drbd-8.4.9-ug9-upgrade.txt": ("8.4.9-1", 0, CONNECTED_SS_UU),
}


def test_every_realworld_capture_has_a_truth():
    names = {p.name for p in REALWORLD}
    assert names == set(REALWORLD_TRUTH) | set(PROC_TRUTH)


@pytest.mark.parametrize("name", sorted(REALWORLD_TRUTH))
def test_realworld_status_and_events2(name: str):
    text = (_shared() / "realworld" / "drbdout" / name).read_text()
    got = parse_status(text) if name.startswith("drbdadm-status") else parse_events2(text)
    assert set(got) == set(REALWORLD_TRUTH[name])
    for res, (states, more) in REALWORLD_TRUTH[name].items():
        st = got[res]
        assert st.up and summary(st) == states
        for field, value in more.items():
            assert getattr(st, field) == (pytest.approx(value) if isinstance(value, float) else value), field


@pytest.mark.parametrize("name", sorted(PROC_TRUTH))
def test_realworld_proc_drbd(name: str):
    text = (_shared() / "realworld" / "drbdout" / name).read_text()
    version, minor, states = PROC_TRUTH[name]
    assert proc_drbd_version(text) == version
    got = parse_proc_drbd(text)
    st = got[f"minor-{minor}"]
    assert st.minor == minor and summary(st) == states


def test_realworld_three_minors_each_read():
    got = parse_proc_drbd((_shared() / "realworld/drbdout/proc-drbd-8.4.0-ug-3minors.txt").read_text())
    assert [got[f"minor-{m}"].role for m in (0, 1, 2)] == ["Secondary", "Primary", "Secondary"]
    assert got["minor-2"].peer_role == "Primary"


def test_realworld_sync_progress_83():
    st = parse_proc_drbd((_shared() / "realworld/drbdout/proc-drbd-8.3.6-cfs-syncsource.txt").read_text())[
        "minor-1"]
    assert st.sync_percent == pytest.approx(33.4) and st.sync_eta_s == 37 and st.sync_speed_kib == 240
    assert st.out_of_sync_kib == 10064
