#!/bin/sh
# pcs commands for cluster webfarm, written by `hasupctl export` from hasupd.yaml
# Set up corosync first (the corosync.conf written beside this script, or
#   pcs cluster setup webfarm web-1 web-2 ; pcs cluster start --all)
# then run this on one node. It edits a copy of the CIB and pushes it once.
# pcs 0.10/0.11 (Pacemaker 2) syntax.
set -e
CIB="${CIB:-hasupd-export-cib.xml}"
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib "$CIB"; fi
PCS="pcs -f $CIB"
$PCS property set stonith-enabled=false no-quorum-policy=ignore
$PCS resource defaults update resource-stickiness=100 migration-threshold=1000000 failure-timeout=0
$PCS resource op defaults update timeout=20s
$PCS resource create p_ping ocf:pacemaker:ping 'host_list=10.99.40.1 10.99.40.2' multiplier=1000 timeout=3 op monitor interval=15s timeout=60s clone --no-default-ops
$PCS resource create ClusterIP ocf:heartbeat:IPaddr2 ip=10.99.40.10 cidr_netmask=24 op monitor interval=30s --group g_ClusterIP --no-default-ops
$PCS resource create WebSite ocf:heartbeat:apache configfile=/etc/apache2/apache2.conf port=80 statusurl=http://127.0.0.1/server-status 'testregex=Total Accesses' op start timeout=40s interval=0s op stop timeout=60s interval=0s op monitor interval=60s --group g_ClusterIP --no-default-ops
$PCS resource create Mailer systemd:postfix op monitor interval=60s --group g_ClusterIP --no-default-ops
# pcs names the clone of p_ping p_ping-clone (the crm export calls it cl_ping)
$PCS constraint location g_ClusterIP rule score=-INFINITY not_defined pingd or pingd lte 0
$PCS constraint location g_ClusterIP prefers web-1=100
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib-push "$CIB" --config; fi
