"""DRBD 9 facts the shared captures do not show: written here in drbdsetup's
formats (drbd-utils user/v9/drbdsetup.c: print_peer_device_statistics,
device_status, connection_status, *_status_json; drbdsetup_events2.c)."""

from __future__ import annotations

import json

import pytest

from hasupd.resources.drbd_parse import format_progress, parse_events2, parse_status, parse_status_json

TIEBREAKER = """\
exists resource name:r0 role:Secondary suspended:no force-io-failures:no may_promote:yes promotion_score:10102
exists connection name:r0 peer-node-id:1 conn-name:alpha connection:Connected role:Secondary
exists connection name:r0 peer-node-id:2 conn-name:tiebreak connection:Connected role:Secondary
exists device name:r0 volume:0 minor:1 backing_dev:/dev/vdb disk:UpToDate client:no open:no quorum:yes
exists peer-device name:r0 peer-node-id:2 conn-name:tiebreak volume:0 replication:Established peer-disk:Diskless peer-client:yes resync-suspended:no
exists peer-device name:r0 peer-node-id:1 conn-name:alpha volume:0 replication:Established peer-disk:UpToDate peer-client:no resync-suspended:no
exists -
"""


def test_a_peer_client_is_never_the_data_peer():
    st = parse_events2(TIEBREAKER)["r0"]
    assert (st.peer_disk, st.peer_client, st.may_promote, st.promotion_score) == ("UpToDate", False, True, 10102)
    # the data peer gone: the diskless tie-breaker remains, and it is no copy of the data
    alone = TIEBREAKER.replace("conn-name:alpha connection:Connected role:Secondary",
                               "conn-name:alpha connection:Connecting role:Unknown")
    alone = alone.replace("conn-name:alpha volume:0 replication:Established peer-disk:UpToDate",
                          "conn-name:alpha volume:0 replication:Off peer-disk:DUnknown")
    st = parse_events2(alone)["r0"]
    assert (st.connection, st.peer_disk, st.peer_client) == ("Connecting", "DUnknown", False)
    only_client = "\n".join(x for x in TIEBREAKER.splitlines() if "alpha" not in x) + "\n"
    st = parse_events2(only_client)["r0"]
    assert (st.peer_disk, st.peer_client) == ("Diskless", True)


def test_quorum_lost_and_io_suspended_for_it():
    text = TIEBREAKER.replace("suspended:no force", "suspended:quorum force").replace(
        "quorum:yes", "quorum:no").replace("may_promote:yes", "may_promote:no")
    st = parse_events2(text)["r0"]
    assert (st.quorum, st.suspended, st.suspended_reason, st.quorum_lost) == (False, True, "quorum", True)
    assert st.may_promote is False
    assert not parse_events2(TIEBREAKER)["r0"].quorum_lost


def test_dbdt1_is_mib_per_second():
    # drbd-utils' own sync test prints `dbdt1:0.24 eta:10` for 2500 KiB out of sync: ~246 KiB/s
    text = """\
exists -
create resource name:r0 role:Secondary suspended:no force-io-failures:no may_promote:no promotion_score:0
create device name:r0 volume:0 minor:1 backing_dev:/dev/vdb disk:UpToDate client:no open:no quorum:yes
create connection name:r0 peer-node-id:1 conn-name:b connection:Connected role:Secondary
create peer-device name:r0 peer-node-id:1 conn-name:b volume:0 replication:SyncSource peer-disk:Inconsistent peer-client:no done:37.50 received:5 sent:10 out-of-sync:2500 pending:30 unacked:40 dbdt1:0.24 eta:10
"""
    st = parse_events2(text)["r0"]
    assert st.sync_speed_kib == pytest.approx(245.76)
    assert (st.sync_percent, st.sync_eta_s, st.out_of_sync_kib) == (37.5, 10, 2500)
    assert format_progress(st) == "r0: Secondary/Secondary UpToDate/Inconsistent Connected SyncSource 37.5% 246 KiB/s ETA 0:00:10"


def test_events2_diff_values_keep_the_new_state():
    text = ("exists -\ncreate resource name:r0 role:Unknown->Secondary suspended:unknown->no "
            "may_promote:unknown->yes promotion_score:0->10101\n")
    st = parse_events2(text)["r0"]
    assert (st.role, st.may_promote, st.promotion_score) == ("Secondary", True, 10101)


def test_rename_moves_the_resource():
    text = TIEBREAKER + "rename resource name:r0 new_name:web\n"
    assert set(parse_events2(text)) == {"web"}


def test_status9_quorum_no_and_suspended():
    text = ("r0 role:Secondary suspended:quorum\n  disk:UpToDate quorum:no open:no\n"
            "  alpha connection:Connecting\n  tiebreak role:Secondary\n    peer-disk:Diskless peer-client:yes\n")
    st = parse_status(text)["r0"]
    assert (st.quorum, st.suspended_reason, st.quorum_lost) == (False, "quorum", True)
    assert (st.connection, st.peer_disk) == ("Connecting", "DUnknown")  # the data peer, not the client


def test_status9_sync_and_volumes():
    text = ("r0 role:Primary\n  volume:0 disk:UpToDate\n  volume:1 disk:UpToDate\n"
            "  bob role:Secondary\n    volume:0 replication:SyncSource peer-disk:Inconsistent done:12.50\n"
            "    volume:1 peer-disk:UpToDate\n")
    st = parse_status(text)["r0"]
    assert (st.role, st.peer_role, st.replication, st.sync_percent) == ("Primary", "Secondary", "SyncSource", 12.5)


def _json(**over):
    res = {"name": "r0", "node-id": 0, "role": "Primary", "suspended": False, "suspended-user": False,
           "suspended-no-data": False, "suspended-fencing": False, "suspended-quorum": False,
           "force-io-failures": False, "write-ordering": "flush",
           "devices": [{"volume": 0, "minor": 1, "disk-state": "UpToDate", "client": False, "open": True,
                        "quorum": True, "size": 1048576, "read": 0, "written": 0, "al-writes": 0,
                        "bm-writes": 0, "upper-pending": 0, "lower-pending": 0}],
           "connections": [{"peer-node-id": 1, "name": "bob", "connection-state": "Connected",
                            "congested": False, "peer-role": "Secondary", "tls": False,
                            "ap-in-flight": 0, "rs-in-flight": 0,
                            "paths": [], "peer_devices": [{
                                "volume": 0, "replication-state": "SyncSource",
                                "peer-disk-state": "Inconsistent", "peer-client": False,
                                "resync-suspended": "no", "received": 0, "sent": 4096, "out-of-sync": 8192,
                                "pending": 0, "unacked": 0, "has-sync-details": True,
                                "has-online-verify-details": False, "percent-in-sync": 99.2,
                                "rs-total": 1048576, "db1/dt1 [MiB/s]": 10.0,
                                "estimated-seconds-to-finish": 1, "db/dt [MiB/s]": 9.5,
                                "percent-resync-done": 99.2}]}]}
    res.update(over)
    return json.dumps([res])


def test_status_json():
    st = parse_status_json(_json())["r0"]
    assert (st.role, st.peer_role, st.disk, st.peer_disk, st.replication) == (
        "Primary", "Secondary", "UpToDate", "Inconsistent", "SyncSource")
    assert (st.sync_percent, st.sync_speed_kib, st.out_of_sync_kib, st.quorum) == (99.2, 10240.0, 8192, True)
    st = parse_status_json(_json(**{"suspended": True, "suspended-quorum": True}))["r0"]
    assert st.quorum_lost and st.suspended_reason == "quorum"
    with pytest.raises(ValueError):
        parse_status_json("status: unrecognized option '--json'")


def test_versions_from_drbdadm_and_proc(fx):
    from hasupd.resources.drbd_parse import DrbdVersions, auto_promote, parse_drbdadm_version

    v = parse_drbdadm_version(fx("drbdadm-version.txt"))  # drbd-utils 9.22 on the 8.4.11 module
    assert v == DrbdVersions("8.4.11", "9.22.0") and v.major == 8 and not v.secondary_force
    nine = parse_drbdadm_version("DRBDADM_API_VERSION=2\nDRBD_KERNEL_VERSION_CODE=0x09010f\n"
                                 "DRBD_KERNEL_VERSION=9.1.15\nDRBDADM_VERSION_CODE=0x091c00\n"
                                 "DRBDADM_VERSION=9.28.0\n")
    assert nine == DrbdVersions("9.1.15", "9.28.0") and nine.secondary_force
    assert not DrbdVersions("9.1.6", "9.28.0").secondary_force
    assert not DrbdVersions("9.2.12", "9.20.2").secondary_force
    # the module not loaded: drbd-utils 9.22 says 0 (its --version run on a host without the module)
    assert parse_drbdadm_version("DRBDADM_API_VERSION=2\nDRBD_KERNEL_VERSION_CODE=0x000000\n"
                                 "DRBD_KERNEL_VERSION=0\nDRBDADM_VERSION_CODE=0x091600\n"
                                 "DRBDADM_VERSION=9.22.0\n") == DrbdVersions("", "9.22.0")
    dump = "# resource r0 on n1: not ignored, not stacked\nresource r0 {\n    options {\n"
    assert auto_promote(dump + "        auto-promote no;\n    }\n}\n") is False
    assert auto_promote(dump + "        quorum off;\n    }\n}\n") is True  # 9's default
    assert auto_promote("'r0' not defined in your config (for this host).\n") is None
