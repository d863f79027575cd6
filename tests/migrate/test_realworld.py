"""Every configuration in ../shared/realworld imports with the meaning it had, or is refused
with a reason.

The samples are other people's text (README there): they are read in place, never
copied here.  The folder sits beside the clone (../shared/realworld from the repository
root; HASUPD_REALWORLD overrides it); the test FAILS when it is missing.

TABLE says, per sample (or per DRBD resource of a sample file), what the import must
give: ``ok`` with the groups, their members in start order, the DRBD each group runs
on, the nodes and addresses, mount points, backing disks per node, the split-brain
guard and preferences; ``refused`` (hasupd does not run this: 3+ nodes, active/active,
dual-primary, stacked DRBD) or ``error`` (the input itself is broken or incomplete) with
the words the message must contain.  A sample with no corosync.conf of its own is
imported with SOURCES.md's generic two-node one (GENERIC); corosync.conf samples are
imported with the small web group in tests/fixtures/migrate/web-group.crm; a DRBD
sample with a crm configuration written here that runs a group on that resource.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from imported import load

from hasupd import config as configmod
from hasupd.migrate import DataError, Refused, drbdconf, import_config

ROOT = Path(__file__).resolve().parents[2]
REALWORLD = Path(os.environ.get("HASUPD_REALWORLD") or ROOT / ".." / "shared" / "realworld").resolve()
WEB_GROUP = ROOT / "tests" / "fixtures" / "migrate" / "web-group.crm"
GENERIC = "corosync/rozofs-corosync2-udpu-2rings.conf"

# DRBD status outputs are read by the DRBD parsers (hasupd/resources), not imported
STATUS_OUTPUTS = "drbdout/"


@dataclass
class Case:
    samples: tuple[str, ...]  # the files of the folder this row stands for
    outcome: str  # ok | refused | error
    expect: dict | tuple[str, ...]  # ok: the meaning; refused/error: words of the message
    crm: tuple[str, ...] = ()
    pcs: tuple[str, ...] = ()
    cib: str | None = None
    corosync: str | None = None
    drbd: str | None = None
    hosts: str | None = None  # /etc/hosts text written for the test (names -> addresses)
    drbd_resource: str | None = None  # import DRBD with a crm group written here for this resource
    extra: dict = field(default_factory=dict)


TABLE: dict[str, Case] = {
    # ------------------------------------------------------------------ crm
    "crm/azure-sap-nfs-sudo-crm-configure.crm": Case(
        ("crm/azure-sap-nfs-sudo-crm-configure.crm",), "ok", {
            "groups": {"g-NW1_nfs": ["fs_NW1_sapmnt", "exportfs_NW1", "nc_NW1_nfs", "vip_NW1_nfs"],
                       "g-NW2_nfs": ["fs_NW2_sapmnt", "exportfs_NW2", "nc_NW2_nfs", "vip_NW2_nfs"]},
            "drbd": {"g-NW1_nfs": "NW1-nfs", "g-NW2_nfs": "NW2-nfs"},
            "nodes": {"prod-nfs-0": ["10.0.0.6"], "prod-nfs-1": ["10.0.0.7"]},
            "mounts": {"/srv/nfs/NW1": "/dev/drbd0", "/srv/nfs/NW2": "/dev/drbd1"},
            "disks": {"NW1-nfs": "/dev/vg-NW1-NFS/NW1", "NW2-nfs": "/dev/vg-NW2-NFS/NW2"},
            "params": {"nc_NW1_nfs": {"port": "61000"}},
            "guard": "drbd"},
        crm=("crm/azure-sap-nfs-sudo-crm-configure.crm",), drbd="drbdconf/azure-sap-nfs-drbd.d"),
    "crm/clusterlabs-cfs-1.1.7-active-active-show.crm": Case(
        ("crm/clusterlabs-cfs-1.1.7-active-active-show.crm",), "refused",
        ("active/active", "WebFSClone", "dual-primary", "Stay on Pacemaker"),
        crm=("crm/clusterlabs-cfs-1.1.7-active-active-show.crm",),
        corosync="corosync/clusterlabs-cfs-1.1.7-openais.conf", drbd="drbdconf/clusterlabs-cfs-1.1.7-drbd.conf"),
    "crm/icicimov-gfs2-dual-primary-show.crm": Case(
        ("crm/icicimov-gfs2-dual-primary-show.crm",), "refused",
        ("active/active", "cl_fs_gfs2", "dual-primary DRBD: ms_drbd has master-max=2", "Stay on Pacemaker"),
        crm=("crm/icicimov-gfs2-dual-primary-show.crm",),
        corosync="corosync/icicimov-gfs2-corosync2-udpu-nonames.conf", drbd="drbdconf/icicimov-gfs2-drbd.d"),
    "crm/linbit-ug84-mysql-session.crm": Case(
        ("crm/linbit-ug84-mysql-session.crm",), "ok", {
            "groups": {"mysql": ["fs_mysql", "ip_mysql", "mysqld"]}, "drbd": {"mysql": "mysql"},
            "mounts": {"/var/lib/mysql": "/dev/drbd/by-res/mysql"}},
        crm=("crm/linbit-ug84-mysql-session.crm",), corosync=GENERIC),
    "crm/linbit-ug84-stacked-3node.crm": Case(
        ("crm/linbit-ug84-stacked-3node.crm",), "refused", ("stacked DRBD", "r0-U", "Stay on Pacemaker"),
        crm=("crm/linbit-ug84-stacked-3node.crm",), corosync=GENERIC,
        drbd="drbdconf/suse-sleha-ha_drbd-stacked.res"),
    "crm/linbit-ug9-autopromote-session.crm": Case(
        ("crm/linbit-ug9-autopromote-session.crm",), "ok", {
            "groups": {"mysql": ["fs_mysql", "ip_mysql", "mysqld"]}, "drbd": {"mysql": "mysql"},
            "mounts": {"/var/lib/mysql": "/dev/drbd/by-res/mysql/0"}},
        crm=("crm/linbit-ug9-autopromote-session.crm",), corosync=GENERIC),
    "crm/rozofs-crm.conf": Case(
        ("crm/rozofs-crm.conf",), "ok", {
            "groups": {"grp-exportd": ["p-fs-exportd", "exportd-rozofs"]}, "drbd": {"grp-exportd": "r0"},
            "mounts": {"/srv/rozofs/exports": "/dev/drbd0"}, "guard": "ping",
            "nodes": {"node-1": ["192.168.1.1", "192.168.2.1"], "node-2": ["192.168.1.2", "192.168.2.2"]},
            "notes": ["needed 2 of the 4 ping targets"]},
        crm=("crm/rozofs-crm.conf",), corosync=GENERIC),
    "crm/rozofs-old-dollar-configure-session.crm": Case(
        ("crm/rozofs-old-dollar-configure-session.crm",), "ok", {
            "groups": {"grp_exportd": ["p_fs_exportd", "p_vip_exportd", "exportd_rozofs"]},
            "drbd": {"grp_exportd": "r0"}, "guard": "ping", "mounts": {"/srv/rozofs/exports": "/dev/drbd0"}},
        crm=("crm/rozofs-old-dollar-configure-session.crm",), corosync=GENERIC),
    "crm/suse-sleha-nfs-quick-modgroup.crm": Case(
        ("crm/suse-sleha-nfs-quick-modgroup.crm",), "ok", {
            "groups": {"g-nfs": ["fs-nfs-state", "fs-nfs-share", "nfsserver", "exportfs-nfs", "vip-nfs"]},
            "drbd": {"g-nfs": "nfs"}, "nodes": {"alice": ["192.168.1.1"], "bob": ["192.168.1.2"]},
            "mounts": {"/var/lib/nfs": "/dev/drbd0", "/srv/nfs/share": "/dev/drbd1"}, "guard": "drbd"},
        crm=("crm/suse-sleha-nfs-quick-modgroup.crm",), drbd="drbdconf/suse-sleha-nfs-drbd9-2vol.res"),
    # ------------------------------------------------------------------ pcs / CIB
    "pcs/cib-pacemaker-cts-bug-lf-2153.xml": Case(
        ("pcs/cib-pacemaker-cts-bug-lf-2153.xml",), "ok", {
            "groups": {"rg_iscsivg01": ["res_portblock_iscsivg01_block", "res_lvm_iscsivg01",
                                        "res_target_iscsivg01", "res_lu_iscsivg01_lun1", "res_lu_iscsivg01_lun2",
                                        "res_ip_alicebob01", "res_portblock_iscsivg01_unblock"]},
            "drbd": {"rg_iscsivg01": "iscsivg01"}, "preferred": {"rg_iscsivg01": "alice"}, "guard": "none",
            "nodes": {"alice": ["10.9.9.11"], "bob": ["10.9.9.12"]}},
        cib="pcs/cib-pacemaker-cts-bug-lf-2153.xml", hosts="10.9.9.11 alice\n10.9.9.12 bob\n"),
    "pcs/cib-pacemaker-cts-promoted-move.xml": Case(
        ("pcs/cib-pacemaker-cts-promoted-move.xml",), "ok", {
            "groups": {"grpDRBD": ["dummy01", "dummy02", "dummy03"]}, "drbd": {"grpDRBD": "r0"},
            "preferred": {"grpDRBD": "bl460g1n13"}, "stickiness": {"grpDRBD": "inf"}},
        cib="pcs/cib-pacemaker-cts-promoted-move.xml", hosts="10.9.8.13 bl460g1n13\n10.9.8.14 bl460g1n14\n"),
    "pcs/clusterlabs-cfs-2.1-pcs-config-active-active.txt": Case(
        ("pcs/clusterlabs-cfs-2.1-pcs-config-active-active.txt",), "refused",
        ("active/active", "WebFS-clone", "dual-primary", "promoted-max=2", "Stay on Pacemaker"),
        pcs=("pcs/clusterlabs-cfs-2.1-pcs-config-active-active.txt",),
        corosync="corosync/clusterlabs-cfs-2.1-pcs-knet.conf", drbd="drbdconf/clusterlabs-cfs-2.1-wwwdata-drbd9.res",
        hosts="192.168.122.101 pcmk-1\n192.168.122.102 pcmk-2\n"),
    "pcs/clusterlabs-cfs-2.1-pcs-constraint-output.txt": Case(
        ("pcs/clusterlabs-cfs-2.1-pcs-constraint-output.txt",), "error",
        ("constraints only", "pcs config", "CIB"),
        pcs=("pcs/clusterlabs-cfs-2.1-pcs-constraint-output.txt",), corosync=GENERIC),
    "pcs/josedom24 init + update": Case(
        ("pcs/josedom24-init_cluster-pcs.sh", "pcs/josedom24-update_cluster-pcs.sh"), "ok", {
            "cluster": "mycluster", "groups": {"g_VirtualIP": ["VirtualIP", "WebFS", "WebSite"]},
            "drbd": {"g_VirtualIP": "wwwdata"}, "nodes": {"nodo1": ["10.1.1.101"], "nodo2": ["10.1.1.102"]},
            "mounts": {"/var/www/html": "/dev/drbd1"}, "guard": "none"},
        pcs=("pcs/josedom24-init_cluster-pcs.sh", "pcs/josedom24-update_cluster-pcs.sh"),
        drbd="drbdconf/josedom24-wwwdata-8.4.res"),
    "pcs/josedom24-init_cluster-pcs.sh alone": Case(
        ("pcs/josedom24-init_cluster-pcs.sh",), "ok", {
            "groups": {"g_VirtualIP": ["VirtualIP", "WebSite"]}, "drbd": {"g_VirtualIP": None},
            "nodes": {"nodo1": ["10.1.1.101"], "nodo2": ["10.1.1.102"]}},
        pcs=("pcs/josedom24-init_cluster-pcs.sh",), hosts="10.1.1.101 nodo1\n10.1.1.102 nodo2\n"),
    # ------------------------------------------------------------------ corosync.conf
    "corosync/clusterlabs-cfs-1.1.7-openais.conf": Case(
        ("corosync/clusterlabs-cfs-1.1.7-openais.conf",), "ok", {
            "nodes": {"pcmk-1": ["192.168.122.101"], "pcmk-2": ["192.168.122.102"]},
            "transport": "multicast", "rings": [("192.168.122.0/24", "226.94.1.1", 4000)]},
        crm=(str(WEB_GROUP),), corosync="corosync/clusterlabs-cfs-1.1.7-openais.conf",
        hosts="192.168.122.101 pcmk-1\n192.168.122.102 pcmk-2\n"),
    "corosync/clusterlabs-cfs-2.1-pcs-knet.conf": Case(
        ("corosync/clusterlabs-cfs-2.1-pcs-knet.conf",), "ok", {
            "cluster": "mycluster", "nodes": {"pcmk-1": ["192.168.122.101"], "pcmk-2": ["192.168.122.102"]},
            "transport": "unicast"},
        crm=(str(WEB_GROUP),), corosync="corosync/clusterlabs-cfs-2.1-pcs-knet.conf",
        hosts="192.168.122.101 pcmk-1\n192.168.122.102 pcmk-2\n"),
    "corosync/corosync-2.4.5-upstream-example.udpu.conf": Case(
        ("corosync/corosync-2.4.5-upstream-example.udpu.conf",), "refused", ("5 nodes", "two nodes"),
        crm=(str(WEB_GROUP),), corosync="corosync/corosync-2.4.5-upstream-example.udpu.conf"),
    "corosync/corosync-3-upstream-example.conf without --hosts": Case(
        ("corosync/corosync-3-upstream-example.conf",), "error", ("node node1 has no ring0_addr", "--hosts"),
        crm=(str(WEB_GROUP),), corosync="corosync/corosync-3-upstream-example.conf"),
    "corosync/corosync-3-upstream-example.conf with --hosts": Case(
        ("corosync/corosync-3-upstream-example.conf",), "ok", {
            "cluster": "ExampleCluster", "nodes": {"node1": ["10.99.72.1"], "node2": ["10.99.72.2"]}},
        crm=(str(WEB_GROUP),), corosync="corosync/corosync-3-upstream-example.conf",
        hosts="10.99.72.1 node1\n10.99.72.2 node2\n"),
    "corosync/crmsh-unittest-sles-qdevice.conf": Case(
        ("corosync/crmsh-unittest-sles-qdevice.conf",), "error", ("names one node", "both nodes"),
        crm=(str(WEB_GROUP),), corosync="corosync/crmsh-unittest-sles-qdevice.conf"),
    "corosync/icicimov-gfs2-corosync2-udpu-nonames.conf": Case(
        ("corosync/icicimov-gfs2-corosync2-udpu-nonames.conf",), "ok", {
            "cluster": "slcluster", "nodes": {"server01": ["10.10.10.91"], "server02": ["10.10.10.26"]}},
        crm=(str(WEB_GROUP),), corosync="corosync/icicimov-gfs2-corosync2-udpu-nonames.conf",
        hosts="10.10.10.91 server01\n10.10.10.26 server02\n"),
    "corosync/icicimov-scst-corosync1-udpu-member-rrp.conf": Case(
        ("corosync/icicimov-scst-corosync1-udpu-member-rrp.conf",), "ok", {
            "nodes": {"centos01": ["10.20.1.17", "192.168.0.178"], "centos02": ["10.20.1.11", "192.168.0.179"]},
            "transport": "unicast"},
        crm=(str(WEB_GROUP),), corosync="corosync/icicimov-scst-corosync1-udpu-member-rrp.conf",
        hosts="10.20.1.17 centos01\n10.20.1.11 centos02\n"),
    "corosync/nuurek-2node-udpu-interface-colon.conf": Case(
        ("corosync/nuurek-2node-udpu-interface-colon.conf",), "ok", {
            "cluster": "swn_cluster", "nodes": {"node-0": ["172.17.0.2"], "node-1": ["172.17.0.3"]}},
        crm=(str(WEB_GROUP),), corosync="corosync/nuurek-2node-udpu-interface-colon.conf"),
    "corosync/pcs-test-corosync-udpu-hostnames.conf": Case(
        ("corosync/pcs-test-corosync-udpu-hostnames.conf",), "ok", {
            "cluster": "test99", "nodes": {"rh7-1": ["10.99.73.1"], "rh7-2": ["10.99.73.2"]}},
        crm=(str(WEB_GROUP),), corosync="corosync/pcs-test-corosync-udpu-hostnames.conf",
        hosts="10.99.73.1 rh7-1\n10.99.73.2 rh7-2\n"),
    "corosync/rozofs-corosync2-udpu-2rings.conf": Case(
        ("corosync/rozofs-corosync2-udpu-2rings.conf",), "ok", {
            "nodes": {"node-1": ["192.168.1.1", "192.168.2.1"], "node-2": ["192.168.1.2", "192.168.2.2"]},
            "transport": "unicast"},
        crm=(str(WEB_GROUP),), corosync=GENERIC),
    # ------------------------------------------------------------------ DRBD configuration
    "drbdconf/azure-sap-nfs-drbd.d NW1-nfs": Case(
        ("drbdconf/azure-sap-nfs-drbd.d/NW1-nfs.res", "drbdconf/azure-sap-nfs-drbd.d/global_common.conf"), "ok", {
            "nodes": {"prod-nfs-0": ["10.0.0.6"], "prod-nfs-1": ["10.0.0.7"]}, "disks": {"NW1-nfs": "/dev/vg-NW1-NFS/NW1"},
            "ports": {"NW1-nfs": 7790}, "guard": "drbd"},
        drbd="drbdconf/azure-sap-nfs-drbd.d", drbd_resource="NW1-nfs"),
    "drbdconf/azure-sap-nfs-drbd.d NW2-nfs": Case(
        ("drbdconf/azure-sap-nfs-drbd.d/NW2-nfs.res",), "ok", {
            "devices": {"NW2-nfs": "/dev/drbd1"}, "ports": {"NW2-nfs": 7791}},
        drbd="drbdconf/azure-sap-nfs-drbd.d", drbd_resource="NW2-nfs"),
    "drbdconf/clusterlabs-cfs-1.1.7-drbd.conf": Case(
        ("drbdconf/clusterlabs-cfs-1.1.7-drbd.conf",), "ok", {
            "nodes": {"pcmk-1": ["192.168.122.101"], "pcmk-2": ["192.168.122.102"]},
            "disks": {"wwwdata": "/dev/mapper/VolGroup-drbd--demo"}, "devices": {"wwwdata": "/dev/drbd1"}},
        drbd="drbdconf/clusterlabs-cfs-1.1.7-drbd.conf", drbd_resource="wwwdata"),
    "drbdconf/clusterlabs-cfs-2.1-wwwdata-drbd9.res": Case(
        ("drbdconf/clusterlabs-cfs-2.1-wwwdata-drbd9.res",), "ok", {
            "nodes": {"pcmk-1": ["192.168.122.101"], "pcmk-2": ["192.168.122.102"]},
            "disks": {"wwwdata": {"pcmk-1": "/dev/almalinux_pcmk-1/drbd-demo",
                                  "pcmk-2": "/dev/almalinux_pcmk-2/drbd-demo"}},
            "devices": {"wwwdata": "/dev/drbd1"}},
        drbd="drbdconf/clusterlabs-cfs-2.1-wwwdata-drbd9.res", drbd_resource="wwwdata"),
    "drbdconf/drbd-utils-drbd.conf.example example": Case(
        ("drbdconf/drbd-utils-drbd.conf.example",), "ok", {
            "nodes": {"wurzel": ["192.168.47.1"], "sepp": ["192.168.47.2"]},
            "disks": {"example": {"wurzel": "/dev/vg_wurzel/lg_example", "sepp": "/dev/vg_sepp/lg_example"}},
            "devices": {"example": "/dev/drbd0"}, "notes": ["has 2 volumes"]},
        drbd="drbdconf/drbd-utils-drbd.conf.example", drbd_resource="example"),
    "drbdconf/drbd-utils-drbd.conf.example ipv6_example_res": Case(
        ("drbdconf/drbd-utils-drbd.conf.example",), "error", ("runs over IPv4", "--corosync"),
        drbd="drbdconf/drbd-utils-drbd.conf.example", drbd_resource="ipv6_example_res"),
    "drbdconf/drbd-utils-drbd.conf.example alpha-bravo": Case(
        ("drbdconf/drbd-utils-drbd.conf.example",), "ok", {
            "nodes": {"alpha": ["192.168.23.21"], "bravo": ["192.168.23.22"]}, "disks": {"alpha-bravo": "/dev/foo"},
            "devices": {"alpha-bravo": "/dev/drbd0"}, "ports": {"alpha-bravo": 7780}},
        drbd="drbdconf/drbd-utils-drbd.conf.example", drbd_resource="alpha-bravo"),
    "drbdconf/drbd-utils-drbd.conf.example stacked_multi_volume": Case(
        ("drbdconf/drbd-utils-drbd.conf.example",), "refused", ("stacked DRBD", "stacked-on-top-of alpha-bravo"),
        drbd="drbdconf/drbd-utils-drbd.conf.example", drbd_resource="stacked_multi_volume"),
    "drbdconf/drbd-utils-drbd.conf.example drbd_9_two_connection": Case(
        ("drbdconf/drbd-utils-drbd.conf.example",), "refused", ("3 nodes", "alpha, bravo, charlie"),
        drbd="drbdconf/drbd-utils-drbd.conf.example", drbd_resource="drbd_9_two_connection"),
    "drbdconf/drbd-utils-drbd.conf.example drbd_9_mesh": Case(
        ("drbdconf/drbd-utils-drbd.conf.example",), "refused", ("3 nodes", "two nodes"),
        drbd="drbdconf/drbd-utils-drbd.conf.example", drbd_resource="drbd_9_mesh"),
    "drbdconf/drbd-utils-drbd.conf.example drbd_9_multi_path": Case(
        ("drbdconf/drbd-utils-drbd.conf.example",), "ok", {
            "nodes": {"alpha": ["192.168.41.1"], "bravo": ["192.168.41.2"]}, "devices": {"drbd_9_multi_path": "/dev/drbd12"}},
        drbd="drbdconf/drbd-utils-drbd.conf.example", drbd_resource="drbd_9_multi_path"),
    "drbdconf/drbd-utils-drbd.conf.example dless": Case(
        ("drbdconf/drbd-utils-drbd.conf.example",), "refused", ("other is diskless",),
        drbd="drbdconf/drbd-utils-drbd.conf.example", drbd_resource="dless"),
    "drbdconf/drbd-utils-drbd.conf.example nat-ed-addresses": Case(
        ("drbdconf/drbd-utils-drbd.conf.example",), "ok", {
            "nodes": {"alfa": ["10.43.10.50"], "bravo": ["10.43.10.51"]}},
        drbd="drbdconf/drbd-utils-drbd.conf.example", drbd_resource="nat-ed-addresses"),
    "drbdconf/drbd-utils-global_common.conf": Case(
        ("drbdconf/drbd-utils-global_common.conf",), "ok", {"fragment": True},
        drbd="drbdconf/drbd-utils-global_common.conf"),
    "drbdconf/drbd-utils-test-v84-man.res": Case(
        ("drbdconf/drbd-utils-test-v84-man.res",), "ok", {
            "nodes": {"undertest": ["10.1.1.31"], "bob": ["10.1.1.32"]}, "disks": {"r0": "/dev/sda7"},
            "devices": {"r0": "/dev/drbd1"}},
        drbd="drbdconf/drbd-utils-test-v84-man.res", drbd_resource="r0"),
    "drbdconf/drbd-utils-test-v9-drbd_8.4.res": Case(
        ("drbdconf/drbd-utils-test-v9-drbd_8.4.res",), "ok", {
            "nodes": {"undertest": ["172.16.6.211"], "peer-host": ["172.16.0.249"]},
            "disks": {"dbdata_resource": "/dev/dbdata01/lvdbdata01"}, "ports": {"dbdata_resource": 1120}},
        drbd="drbdconf/drbd-utils-test-v9-drbd_8.4.res", drbd_resource="dbdata_resource"),
    "drbdconf/drbd-utils-test-v9-floating-ipv4.res": Case(
        ("drbdconf/drbd-utils-test-v9-floating-ipv4.res",), "error", ("floating", "on HOST"),
        drbd="drbdconf/drbd-utils-test-v9-floating-ipv4.res", drbd_resource="r0"),
    "drbdconf/icicimov-gfs2-drbd.d/r0.res": Case(
        ("drbdconf/icicimov-gfs2-drbd.d/r0.res",), "ok", {
            "nodes": {"server01": ["10.10.10.91"], "server02": ["10.10.10.26"]},
            "disks": {"r0": "/dev/mapper/vg_drbd0-lv_drbd0"}, "devices": {"r0": "/dev/drbd0"}},
        drbd="drbdconf/icicimov-gfs2-drbd.d", drbd_resource="r0"),
    "drbdconf/icicimov-scst-drbd.d/vg1.res": Case(
        ("drbdconf/icicimov-scst-drbd.d/vg1.res",), "error", ("vg1.res:1:", "never closed"),
        drbd="drbdconf/icicimov-scst-drbd.d", drbd_resource="vg1"),
    "drbdconf/josedom24-wwwdata-8.4.res": Case(
        ("drbdconf/josedom24-wwwdata-8.4.res",), "ok", {
            "nodes": {"nodo1": ["10.1.1.101"], "nodo2": ["10.1.1.102"]}, "disks": {"wwwdata": "/dev/vdb"},
            "devices": {"wwwdata": "/dev/drbd1"}, "notes": ["allow-two-primaries"]},
        drbd="drbdconf/josedom24-wwwdata-8.4.res", drbd_resource="wwwdata"),
    "drbdconf/rozofs-drbd.d": Case(
        ("drbdconf/rozofs-drbd.d/global_common.conf", "drbdconf/rozofs-drbd.d/r0.res"), "error",
        ("global_common.conf:9", "continues onto the next line", "drbdadm rejects"),
        drbd="drbdconf/rozofs-drbd.d", drbd_resource="r0"),
    "drbdconf/suse-sleha-ha_drbd-stacked.res r0": Case(
        ("drbdconf/suse-sleha-ha_drbd-stacked.res",), "ok", {
            "nodes": {"amsterdam-alice": ["192.168.1.1"], "amsterdam-bob": ["192.168.1.2"]},
            "disks": {"r0": "/dev/disk/by-id/example-disk1"}, "ports": {"r0": 7900}},
        drbd="drbdconf/suse-sleha-ha_drbd-stacked.res", drbd_resource="r0"),
    "drbdconf/suse-sleha-ha_drbd-stacked.res r0-U": Case(
        ("drbdconf/suse-sleha-ha_drbd-stacked.res",), "refused", ("stacked DRBD", "r0-U is stacked-on-top-of r0"),
        drbd="drbdconf/suse-sleha-ha_drbd-stacked.res", drbd_resource="r0-U"),
    "drbdconf/suse-sleha-nfs-drbd9-2vol.res": Case(
        ("drbdconf/suse-sleha-nfs-drbd9-2vol.res",), "ok", {
            "nodes": {"alice": ["192.168.1.1"], "bob": ["192.168.1.2"]}, "disks": {"nfs": "/dev/nfs/state"},
            "devices": {"nfs": "/dev/drbd0"}, "notes": ["has 2 volumes"]},
        drbd="drbdconf/suse-sleha-nfs-drbd9-2vol.res", drbd_resource="nfs"),
}


def _group_for(resource: str) -> str:
    """A group that runs on DRBD RESOURCE, as a Pacemaker user would write it."""
    return f"""primitive p_drbd ocf:linbit:drbd params drbd_resource={resource} \\
  op monitor interval=29s role=Promoted op monitor interval=31s role=Unpromoted
clone ms_drbd p_drbd meta promotable=true promoted-max=1 clone-max=2 notify=true
primitive p_fs Filesystem params device=/dev/drbd/by-res/{resource} directory=/srv/data fstype=ext4 \\
  op monitor interval=20s
group g_data p_fs
colocation c_data_on_drbd inf: g_data ms_drbd:Promoted
order o_drbd_first Mandatory: ms_drbd:promote g_data:start
property stonith-enabled=false no-quorum-policy=ignore
"""


def _run(case: Case, tmp_path: Path):
    def rw(p: str) -> str:
        return p if os.path.isabs(p) else str(REALWORLD / p)

    kw: dict = {"secrets_dir": str(tmp_path / "secrets")}
    if case.drbd_resource:
        crm = tmp_path / "group.crm"
        crm.write_text(_group_for(case.drbd_resource))
        kw["crm"] = str(crm)
    if case.crm:
        kw["crm"] = [rw(p) for p in case.crm]
    if case.pcs:
        kw["pcs"] = [rw(p) for p in case.pcs]
    if case.cib:
        kw["cib"] = rw(case.cib)
    for key in ("corosync", "drbd"):
        if getattr(case, key):
            kw[key] = rw(getattr(case, key))
    if case.hosts:
        (tmp_path / "hosts").write_text(case.hosts)
        kw["hosts"] = str(tmp_path / "hosts")
    return import_config(**kw)


def test_the_realworld_folder_is_there_and_every_sample_has_a_row():
    assert REALWORLD.is_dir(), f"{REALWORLD} is missing: the realworld samples sit beside the clone " \
                               "(../shared/realworld) or where HASUPD_REALWORLD says"
    files = {str(p.relative_to(REALWORLD)) for p in REALWORLD.rglob("*") if p.is_file()}
    files -= {"README.md", "SOURCES.md"}
    covered = {s for c in TABLE.values() for s in c.samples}
    status = {f for f in files if f.startswith(STATUS_OUTPUTS)}
    assert files - status - covered == set(), "samples without an expected outcome in TABLE"
    assert covered - files == set(), "TABLE names samples that are not in the folder"
    assert status, "the DRBD status outputs are gone: the folder is not the one this table was written for"


@pytest.mark.parametrize("name", list(TABLE))
def test_realworld_sample(name, tmp_path):
    case = TABLE[name]
    if case.expect == {"fragment": True}:
        # a configuration fragment without resources: read whole, nothing unknown in it
        stmts, notes = drbdconf.load(str(REALWORLD / case.drbd))
        info = drbdconf.interpret(stmts)
        assert info.resources == [] and [n for n in info.notes + notes if n.kind == "unknown"] == []
        return
    if case.outcome != "ok":
        with pytest.raises(DataError) as got:
            _run(case, tmp_path)
        message = str(got.value)
        assert isinstance(got.value, Refused) == (case.outcome == "refused"), message
        for words in case.expect:
            assert words in message, message
        return
    result = _run(case, tmp_path)
    cfg = load(result, name)  # raises when `hasupctl check` would refuse it
    e = case.expect
    groups = {g.name: g for g in cfg.groups}
    if "groups" in e:
        assert {n: [r.name for r in g.resources] for n, g in groups.items()} == e["groups"]
    for gname, dname in e.get("drbd", {}).items():
        assert groups[gname].drbd == dname
    for gname, node in e.get("preferred", {}).items():
        assert groups[gname].preferred_node == node
    for gname, value in e.get("stickiness", {}).items():
        assert str(groups[gname].stickiness) == value
    if "nodes" in e:
        assert {n.name: list(n.addresses) for n in cfg.nodes} == e["nodes"]
    mounts = {r.directory: r.device for g in cfg.groups for r in g.resources
              if isinstance(r, configmod.FilesystemResource)}
    for directory, device in e.get("mounts", {}).items():
        assert mounts[directory] == device
    drbd = {d.name: d for d in cfg.drbd.resources}
    for dname, disk in e.get("disks", {}).items():
        assert (dict(drbd[dname].disks) if isinstance(disk, dict) else drbd[dname].disk) == disk
        if isinstance(disk, dict):
            assert {n: drbd[dname].disk_of(n) for n in disk} == disk
    for dname, device in e.get("devices", {}).items():
        assert drbd[dname].device == device
    for dname, port in e.get("ports", {}).items():
        assert drbd[dname].port == port
    for rname, params in e.get("params", {}).items():
        res = next(r for g in cfg.groups for r in g.resources if r.name == rname)
        assert {k: v for k, v in res.params if k in params} == params
    if "guard" in e:
        assert cfg.split_brain_guard.mode == e["guard"]
    if "cluster" in e:
        assert cfg.cluster == e["cluster"]
    if "transport" in e:
        assert cfg.heartbeat.transport == e["transport"]
    for bind, group, port in e.get("rings", []):
        assert any(r.bind_network == bind and r.group == group and r.port == port for r in cfg.heartbeat.rings)
    for words in e.get("notes", []):
        assert any(words in n.message for n in result.notes), [n.render() for n in result.notes]


# The samples with stonith devices are active/active (refused as a whole): their stonith
# primitives, read from the sample in place, are imported with the small web group,
# end to end through `hasupctl import` and `hasupctl check`.
STONITH = {
    "crm/icicimov-gfs2-dual-primary-show.crm": ("corosync/icicimov-gfs2-corosync2-udpu-nonames.conf",
                                                "10.10.10.91 server01\n10.10.10.26 server02\n",
                                                {"p_fence_server01": ["server01"], "p_fence_server02": ["server02"]}),
    "crm/clusterlabs-cfs-1.1.7-active-active-show.crm": ("corosync/clusterlabs-cfs-1.1.7-openais.conf",
                                                         "192.168.122.101 pcmk-1\n192.168.122.102 pcmk-2\n",
                                                         {"ipmi-fencing": ["pcmk-1", "pcmk-2"]}),
}


def _stonith_primitives(text: str) -> str:
    out, on = [], False
    for line in text.splitlines():
        on = on or bool(re.match(r"^primitive \S+ stonith:", line))
        if on:
            out.append(line)
            on = line.rstrip().endswith("\\")
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("sample", list(STONITH))
def test_realworld_stonith_devices_import_and_pass_hasupctl_check(sample, tmp_path):
    from test_fencing_import import import_and_check
    corosync, hosts, nodes = STONITH[sample]
    crm = tmp_path / "c.crm"
    crm.write_text(WEB_GROUP.read_text().replace("stonith-enabled=false", "stonith-enabled=true")
                   + _stonith_primitives((REALWORLD / sample).read_text()))
    (tmp_path / "hosts").write_text(hosts)
    out, secrets, _ = import_and_check(tmp_path, "--crm", str(crm), "--corosync", str(REALWORLD / corosync),
                                            "--hosts", str(tmp_path / "hosts"), cwd=tmp_path)
    cfg = configmod.load(str(out))
    assert cfg.split_brain_guard.mode == "fence"
    assert {d.name: list(d.nodes) for d in cfg.fencing.devices} == nodes
    for d in cfg.fencing.devices:
        assert d.secrets == str(secrets / f"{d.name}.secret")
        assert "passwd=" in Path(d.secrets).read_text() and "passwd" not in dict(d.options)
