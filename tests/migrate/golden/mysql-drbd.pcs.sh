#!/bin/sh
# pcs commands for cluster dbcluster, written by `hasupctl export` from hasupd.yaml
# Set up corosync first (the corosync.conf written beside this script, or
#   pcs cluster setup dbcluster db1 db2 ; pcs cluster start --all)
# then run this on one node. It edits a copy of the CIB and pushes it once.
# pcs 0.10/0.11 (Pacemaker 2) syntax.
set -e
CIB="${CIB:-hasupd-export-cib.xml}"
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib "$CIB"; fi
PCS="pcs -f $CIB"
$PCS property set stonith-enabled=true
$PCS resource defaults update resource-stickiness=INFINITY migration-threshold=2 failure-timeout=300s
$PCS resource op defaults update timeout=120s
$PCS stonith create st_db1 fence_ipmilan ipaddr=10.99.20.201 lanplus=1 login=admin pcmk_host_list=db1 pcmk_off_timeout=90s op monitor interval=60s
$PCS stonith create st_db2 fence_ipmilan ipaddr=10.99.20.202 lanplus=1 login=admin pcmk_host_list=db2 pcmk_off_timeout=90s op monitor interval=60s
$PCS resource create drbd_mysql ocf:linbit:drbd drbd_resource=mysql op monitor interval=29s role=Promoted timeout=20s op monitor interval=31s role=Unpromoted timeout=20s op start timeout=240s interval=0s op stop timeout=100s interval=0s op promote timeout=90s interval=0s op demote timeout=90s interval=0s op notify timeout=90s interval=0s promotable promoted-max=1 promoted-node-max=1 clone-max=2 clone-node-max=1 notify=true --no-default-ops
$PCS resource create p_fs_mysql ocf:heartbeat:Filesystem device=/dev/drbd/by-res/mysql directory=/var/lib/mysql fstype=xfs options=noatime,nodiratime op monitor interval=20s timeout=40s --group g_mysql --no-default-ops
$PCS resource create p_ip_mysql ocf:heartbeat:IPaddr2 ip=10.99.20.100 cidr_netmask=24 op monitor interval=10s --group g_mysql --no-default-ops
$PCS resource create p_mysql ocf:heartbeat:mysql additional_parameters=--bind-address=10.99.20.100 binary=/usr/sbin/mysqld config=/etc/mysql/my.cnf datadir=/var/lib/mysql pid=/var/run/mysqld/mysqld.pid socket=/var/run/mysqld/mysqld.sock op start timeout=180s interval=0s op stop timeout=240s interval=0s op monitor interval=20s timeout=30s --group g_mysql --no-default-ops
# pcs names the clone of drbd_mysql drbd_mysql-clone (the crm export calls it ms_drbd_mysql)
$PCS constraint colocation add g_mysql with Promoted drbd_mysql-clone INFINITY
$PCS constraint order promote drbd_mysql-clone then start g_mysql
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib-push "$CIB" --config; fi
