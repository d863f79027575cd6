#!/bin/sh
# pcs commands for cluster web, written by `hasupctl export` from hasupd.yaml
# Set up corosync first (the corosync.conf written beside this script, or
#   pcs cluster setup web primarycentos secondarycentos ; pcs cluster start --all)
# then run this on one node. It edits a copy of the CIB and pushes it once.
# pcs 0.10/0.11 (Pacemaker 2) syntax.
set -e
CIB="${CIB:-hasupd-export-cib.xml}"
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib "$CIB"; fi
PCS="pcs -f $CIB"
$PCS property set stonith-enabled=false no-quorum-policy=ignore
$PCS resource defaults update resource-stickiness=INFINITY migration-threshold=1 failure-timeout=0
$PCS resource op defaults update timeout=240s
$PCS resource create drbd_r0 ocf:linbit:drbd drbd_resource=r0 op monitor interval=29s role=Promoted timeout=20s op monitor interval=31s role=Unpromoted timeout=20s op start timeout=240s interval=0s op stop timeout=100s interval=0s op promote timeout=90s interval=0s op demote timeout=90s interval=0s op notify timeout=90s interval=0s promotable promoted-max=1 promoted-node-max=1 clone-max=2 clone-node-max=1 notify=true --no-default-ops
$PCS resource create res_vip ocf:heartbeat:IPaddr2 ip=192.168.0.20 cidr_netmask=24 nic=eth0 op monitor interval=20s --group rg_web --no-default-ops
$PCS resource create res_filesystem ocf:heartbeat:Filesystem device=/dev/drbd1 directory=/mnt/data fstype=ext4 op monitor interval=20s --group rg_web --no-default-ops
$PCS resource create res_httpd ocf:heartbeat:apache configfile=/etc/httpd/conf/httpd.conf port=80 op monitor interval=20s --group rg_web --no-default-ops
# pcs names the clone of drbd_r0 drbd_r0-clone (the crm export calls it ms_drbd_r0)
$PCS constraint colocation add rg_web with Promoted drbd_r0-clone INFINITY
$PCS constraint order promote drbd_r0-clone then start rg_web
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib-push "$CIB" --config; fi
