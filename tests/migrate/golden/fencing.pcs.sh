#!/bin/sh
# pcs commands for cluster vault, written by `hasupctl export` from hasupd.yaml
# Set up corosync first (the corosync.conf written beside this script, or
#   pcs cluster setup vault vault-a vault-b ; pcs cluster start --all)
# then run this on one node. It edits a copy of the CIB and pushes it once.
# pcs 0.10/0.11 (Pacemaker 2) syntax.
set -e
CIB="${CIB:-hasupd-export-cib.xml}"
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib "$CIB"; fi
PCS="pcs -f $CIB"
$PCS property set stonith-enabled=true priority-fencing-delay=10s
$PCS resource defaults update resource-stickiness=0 migration-threshold=1000000 failure-timeout=0 priority=1
$PCS resource op defaults update timeout=20s
$PCS stonith create bmc-a fence_ipmilan ip=10.99.75.1 lanplus=1 username=admin pcmk_host_list=vault-a pcmk_delay_max=2s pcmk_off_timeout=30s op monitor interval=60s
$PCS stonith create bmc-b fence_ipmilan ip=10.99.75.2 lanplus=1 username=admin pcmk_host_list=vault-b pcmk_delay_max=2s pcmk_off_timeout=30s op monitor interval=60s
$PCS stonith create pdu-vault-a fence_apc_snmp ip=10.99.75.9 pcmk_host_map=vault-a:3 pcmk_host_list=vault-a pcmk_delay_base=5s pcmk_delay_max=2s pcmk_off_timeout=40s op monitor interval=60s
$PCS stonith create pdu-vault-b fence_apc_snmp ip=10.99.75.9 pcmk_host_map=vault-b:4 pcmk_host_list=vault-b pcmk_delay_max=2s pcmk_off_timeout=40s op monitor interval=60s
$PCS resource create vip ocf:heartbeat:IPaddr2 ip=10.99.74.10 cidr_netmask=24 op monitor interval=10s --group g_vault --no-default-ops
$PCS resource create vault systemd:vault op monitor interval=30s --group g_vault --no-default-ops
$PCS stonith level add 1 vault-a bmc-a
$PCS stonith level add 2 vault-a pdu-vault-a
$PCS stonith level add 1 vault-b bmc-b
$PCS stonith level add 2 vault-b pdu-vault-b
if [ -z "$PCS_NO_PUSH" ]; then pcs cluster cib-push "$CIB" --config; fi
