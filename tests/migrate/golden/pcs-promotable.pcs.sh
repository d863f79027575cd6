#!/bin/sh
# pcs commands for cluster mycluster, written by `hasupctl export` from hasupd.yaml
# Set up corosync first (the corosync.conf written beside this script, or
#   pcs cluster setup mycluster pcmk-1 pcmk-2 ; pcs cluster start --all)
# then run this on one node. It edits a copy of the CIB and pushes it once.
# pcs 0.10/0.11 (Pacemaker 2) syntax.
set -e
CIB="${CIB:-hasupd-export-cib.xml}"
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib "$CIB"; fi
PCS="pcs -f $CIB"
$PCS property set stonith-enabled=true
$PCS resource defaults update resource-stickiness=1 migration-threshold=1 failure-timeout=0
$PCS resource op defaults update timeout=240s
$PCS stonith create fence_pcmk fence_ipmilan ip=10.99.50.250 lanplus=1 username=hacluster 'pcmk_host_map=pcmk-1:1;pcmk-2:2' 'pcmk_host_list=pcmk-1 pcmk-2' pcmk_off_timeout=60s op monitor interval=60s
$PCS resource create drbd_wwwdata ocf:linbit:drbd drbd_resource=wwwdata op monitor interval=29s role=Promoted timeout=20s op monitor interval=31s role=Unpromoted timeout=20s op start timeout=240s interval=0s op stop timeout=100s interval=0s op promote timeout=90s interval=0s op demote timeout=90s interval=0s op notify timeout=90s interval=0s promotable promoted-max=1 promoted-node-max=1 clone-max=2 clone-node-max=1 notify=true --no-default-ops
$PCS resource create ClusterIP ocf:heartbeat:IPaddr2 ip=10.99.50.100 cidr_netmask=24 op start timeout=20s interval=0s op stop timeout=20s interval=0s op monitor interval=30s --group g_ClusterIP --no-default-ops
$PCS resource create WebFS ocf:heartbeat:Filesystem device=/dev/drbd1 directory=/var/www/html fstype=xfs op start timeout=60s interval=0s op stop timeout=60s interval=0s op monitor interval=20s timeout=40s --group g_ClusterIP --no-default-ops
$PCS resource create WebSite ocf:heartbeat:apache configfile=/etc/httpd/conf/httpd.conf port=80 statusurl=http://localhost/server-status op start timeout=40s interval=0s op stop timeout=60s interval=0s op monitor interval=60s --group g_ClusterIP --no-default-ops
# pcs names the clone of drbd_wwwdata drbd_wwwdata-clone (the crm export calls it ms_drbd_wwwdata)
$PCS constraint colocation add g_ClusterIP with Promoted drbd_wwwdata-clone INFINITY
$PCS constraint order promote drbd_wwwdata-clone then start g_ClusterIP
$PCS alert create id=alert_1 path=/usr/share/pacemaker/alerts/alert_smtp.sh meta timeout=30s
$PCS alert recipient add alert_1 value=ops@example.lan
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib-push "$CIB" --config; fi
