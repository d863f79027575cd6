#!/bin/sh
# pcs commands for cluster duo, written by `hasupctl export` from hasupd.yaml
# Set up corosync first (the corosync.conf written beside this script, or
#   pcs cluster setup duo alpha beta ; pcs cluster start --all)
# then run this on one node. It edits a copy of the CIB and pushes it once.
# pcs 0.10/0.11 (Pacemaker 2) syntax.
set -e
CIB="${CIB:-hasupd-export-cib.xml}"
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib "$CIB"; fi
PCS="pcs -f $CIB"
$PCS property set stonith-enabled=false no-quorum-policy=ignore dc-deadtime=30s
$PCS resource op defaults update timeout=20s
$PCS resource create drbd_db ocf:linbit:drbd drbd_resource=db op monitor interval=29s role=Promoted timeout=20s op monitor interval=31s role=Unpromoted timeout=20s op start timeout=240s interval=0s op stop timeout=100s interval=0s op promote timeout=90s interval=0s op demote timeout=90s interval=0s op notify timeout=90s interval=0s promotable promoted-max=1 promoted-node-max=1 clone-max=2 clone-node-max=1 notify=true --no-default-ops
$PCS resource create drbd_web ocf:linbit:drbd drbd_resource=web op monitor interval=29s role=Promoted timeout=20s op monitor interval=31s role=Unpromoted timeout=20s op start timeout=240s interval=0s op stop timeout=100s interval=0s op promote timeout=90s interval=0s op demote timeout=90s interval=0s op notify timeout=90s interval=0s promotable promoted-max=1 promoted-node-max=1 clone-max=2 clone-node-max=1 notify=true --no-default-ops
$PCS resource create p_fs_db ocf:heartbeat:Filesystem device=/dev/drbd2 directory=/var/lib/postgresql fstype=ext4 op monitor interval=20s timeout=40s --group g_db --no-default-ops
$PCS resource create p_ip_db ocf:heartbeat:IPaddr2 ip=10.99.30.54 cidr_netmask=24 nic=eth0 op monitor interval=20s --group g_db --no-default-ops
$PCS resource create p_postgres systemd:postgresql op monitor interval=30s timeout=30s --group g_db --no-default-ops
$PCS resource create p_fs_web ocf:heartbeat:Filesystem device=/dev/drbd1 directory=/var/www fstype=ext4 op monitor interval=20s timeout=40s --group g_web --no-default-ops
$PCS resource create p_ip_web ocf:heartbeat:IPaddr2 ip=10.99.30.80 cidr_netmask=24 nic=eth0 arp_count=10 op monitor interval=20s --group g_web --no-default-ops
$PCS resource create p_apache ocf:heartbeat:apache configfile=/etc/apache2/apache2.conf httpd=/usr/sbin/apache2 port=80 statusurl=http://localhost/server-status op start timeout=40s interval=0s op stop timeout=60s interval=0s op monitor interval=20s --group g_web --no-default-ops
# pcs names the clone of drbd_db drbd_db-clone (the crm export calls it ms_drbd_db)
# pcs names the clone of drbd_web drbd_web-clone (the crm export calls it ms_drbd_web)
$PCS resource meta g_db resource-stickiness=INFINITY migration-threshold=3 failure-timeout=60s target-role=Stopped
$PCS resource meta g_web resource-stickiness=200 migration-threshold=3 failure-timeout=60s
$PCS constraint colocation add g_db with Promoted drbd_db-clone INFINITY
$PCS constraint colocation add g_web with Promoted drbd_web-clone INFINITY
$PCS constraint order promote drbd_db-clone then start g_db
$PCS constraint order promote drbd_web-clone then start g_web
$PCS constraint location g_db prefers beta=100
$PCS constraint location g_web prefers alpha=100
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib-push "$CIB" --config; fi
