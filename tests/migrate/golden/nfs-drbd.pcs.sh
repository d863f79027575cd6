#!/bin/sh
# pcs commands for cluster nfs, written by `hasupctl export` from hasupd.yaml
# Set up corosync first (the corosync.conf written beside this script, or
#   pcs cluster setup nfs nfs-a nfs-b ; pcs cluster start --all)
# then run this on one node. It edits a copy of the CIB and pushes it once.
# pcs 0.10/0.11 (Pacemaker 2) syntax.
set -e
CIB="${CIB:-hasupd-export-cib.xml}"
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib "$CIB"; fi
PCS="pcs -f $CIB"
$PCS property set stonith-enabled=false no-quorum-policy=ignore
$PCS resource defaults update resource-stickiness=100 migration-threshold=1000000 failure-timeout=0
$PCS resource op defaults update timeout=20s
$PCS resource create drbd_export ocf:linbit:drbd drbd_resource=export op monitor interval=29s role=Promoted timeout=20s op monitor interval=31s role=Unpromoted timeout=20s op start timeout=240s interval=0s op stop timeout=100s interval=0s op promote timeout=90s interval=0s op demote timeout=90s interval=0s op notify timeout=90s interval=0s promotable promoted-max=1 promoted-node-max=1 clone-max=2 clone-node-max=1 notify=true --no-default-ops
$PCS resource create p_fs_export ocf:heartbeat:Filesystem device=/dev/drbd0 directory=/srv/nfs/export fstype=ext4 options=noatime op start timeout=60s interval=0s op stop timeout=120s interval=0s op monitor interval=10s timeout=40s --group g_nfs --no-default-ops
$PCS resource create p_nfsserver ocf:heartbeat:nfsserver nfs_ip=10.99.10.50 nfs_shared_infodir=/srv/nfs/export/nfsinfo op monitor interval=30s --group g_nfs --no-default-ops
$PCS resource create p_exportfs_home ocf:heartbeat:exportfs clientspec=10.99.10.0/24 directory=/srv/nfs/export/home fsid=1 options=rw,no_root_squash,sync wait_for_leasetime_on_stop=true op monitor interval=30s --group g_nfs --no-default-ops
$PCS resource create p_ip_nfs ocf:heartbeat:IPaddr2 ip=10.99.10.50 cidr_netmask=24 nic=eth1 iflabel=nfs op monitor interval=10s --group g_nfs --no-default-ops
# pcs names the clone of drbd_export drbd_export-clone (the crm export calls it ms_drbd_export)
$PCS constraint colocation add g_nfs with Promoted drbd_export-clone INFINITY
$PCS constraint order promote drbd_export-clone then start g_nfs
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib-push "$CIB" --config; fi
