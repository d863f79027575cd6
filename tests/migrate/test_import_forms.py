"""One cluster written in every form Pacemaker users have (crm, pcs commands, `pcs config`
output, CIB XML) imports to the same meaning; and the constructs found in the wild, each
with a small input of its own."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from imported import load

from hasupd.migrate import DataError, Refused, drbdconf, export_config, import_config
from hasupd.migrate import corosync as corosyncmod
from hasupd.migrate import crm as crmmod

ROOT = Path(__file__).resolve().parents[2]

COROSYNC = """totem {
    version: 2
    cluster_name: shop
    transport: udpu
    interface: {
        ringnumber: 0
        bindnetaddr: 10.99.76.0
        mcastport: 5405
    }
}
nodelist {
    node {
        ring0_addr: 10.99.76.1
        name: shop-1
        nodeid: 1
    }
    node {
        ring0_addr: 10.99.76.2
        name: shop-2
        nodeid: 2
    }
}
"""

DRBD = """resource shopdata {
    net { protocol C; fencing resource-only; }
    on shop-1 { device /dev/drbd3; disk /dev/vg1/shop; address 10.99.77.1:7790; meta-disk internal; }
    on shop-2 { device /dev/drbd3; disk /dev/vg2/shop; address 10.99.77.2:7790; meta-disk internal; }
}
"""

CRM = """node 1: shop-1
node 2: shop-2
primitive p_drbd ocf:linbit:drbd params drbd_resource=shopdata \\
    op monitor interval=29s role=Promoted op monitor interval=31s role=Unpromoted
clone c_drbd p_drbd meta promotable=true promoted-max=1 promoted-node-max=1 clone-max=2 notify=true
primitive p_fs ocf:heartbeat:Filesystem params device=/dev/drbd3 directory=/srv/shop fstype=ext4 \\
    op monitor interval=20s timeout=40s
primitive p_ip ocf:heartbeat:IPaddr2 params ip=10.99.76.80 cidr_netmask=24 op monitor interval=10s
primitive p_app systemd:shop op monitor interval=30s
primitive st_1 stonith:fence_ipmilan params ip=10.99.78.1 username=root password=pw1 pcmk_host_list=shop-1 \\
    op monitor interval=60s
primitive st_2 stonith:fence_ipmilan params ip=10.99.78.2 username=root password=pw2 pcmk_host_list=shop-2 \\
    op monitor interval=60s
group g_shop p_fs p_ip p_app
colocation col_shop inf: g_shop c_drbd:Promoted
order ord_shop Mandatory: c_drbd:promote g_shop:start
location loc_shop g_shop 100: shop-2
fencing_topology shop-1: st_1 shop-2: st_2
property cluster-name=shop stonith-enabled=true priority-fencing-delay=5s
rsc_defaults resource-stickiness=100 migration-threshold=3
"""

PCS_SCRIPT = """#!/bin/sh
pcs host auth shop-1 shop-2 -u hacluster -p secret
pcs cluster setup shop shop-1 addr=10.99.76.1 shop-2 addr=10.99.76.2
pcs cluster start --all
pcs cluster cib shop.xml
pcs -f shop.xml property set stonith-enabled=true priority-fencing-delay=5s
pcs -f shop.xml resource defaults update resource-stickiness=100 migration-threshold=3
pcs -f shop.xml resource create p_drbd ocf:linbit:drbd drbd_resource=shopdata \\
    op monitor interval=29s role=Promoted monitor interval=31s role=Unpromoted \\
    promotable promoted-max=1 promoted-node-max=1 clone-max=2 notify=true
pcs -f shop.xml resource create p_fs Filesystem device=/dev/drbd3 directory=/srv/shop fstype=ext4 \\
    op monitor interval=20s timeout=40s --group g_shop
pcs -f shop.xml resource create p_ip ocf:heartbeat:IPaddr2 ip=10.99.76.80 cidr_netmask=24 \\
    op monitor interval=10s --group g_shop
pcs -f shop.xml resource create p_app systemd:shop op monitor interval=30s --group g_shop
pcs -f shop.xml stonith create st_1 fence_ipmilan ip=10.99.78.1 username=root password=pw1 pcmk_host_list=shop-1
pcs -f shop.xml stonith create st_2 fence_ipmilan ip=10.99.78.2 username=root password=pw2 pcmk_host_list=shop-2
pcs -f shop.xml stonith level add 1 shop-1 st_1
pcs -f shop.xml stonith level add 1 shop-2 st_2
pcs -f shop.xml constraint colocation add g_shop with Promoted p_drbd-clone INFINITY
pcs -f shop.xml constraint order promote p_drbd-clone then start g_shop
pcs -f shop.xml constraint location g_shop prefers shop-2=100
pcs cluster cib-push shop.xml --config
"""

PCS_CONFIG = """Cluster Name: shop
Corosync Nodes:
 shop-1 shop-2
Pacemaker Nodes:
 shop-1 shop-2

Resources:
 Clone: p_drbd-clone
  Meta Attrs: clone-max=2 notify=true promotable=true promoted-max=1 promoted-node-max=1
  Resource: p_drbd (class=ocf provider=linbit type=drbd)
   Attributes: drbd_resource=shopdata
   Operations: monitor interval=29s role=Promoted (p_drbd-monitor-interval-29s)
               monitor interval=31s role=Unpromoted (p_drbd-monitor-interval-31s)
 Group: g_shop
  Resource: p_fs (class=ocf provider=heartbeat type=Filesystem)
   Attributes: p_fs-instance_attributes
     device=/dev/drbd3
     directory=/srv/shop
     fstype=ext4
   Operations: monitor interval=20s timeout=40s (p_fs-monitor-interval-20s)
  Resource: p_ip (class=ocf provider=heartbeat type=IPaddr2)
   Attributes: cidr_netmask=24 ip=10.99.76.80
   Operations: monitor interval=10s (p_ip-monitor-interval-10s)
  Resource: p_app (class=systemd type=shop)
   Operations: monitor interval=30s (p_app-monitor-interval-30s)

Stonith Devices:
 Resource: st_1 (class=stonith type=fence_ipmilan)
  Attributes: ip=10.99.78.1 password=pw1 pcmk_host_list=shop-1 username=root
 Resource: st_2 (class=stonith type=fence_ipmilan)
  Attributes: ip=10.99.78.2 password=pw2 pcmk_host_list=shop-2 username=root
Fencing Levels:
  Target: shop-1
    Level 1 - st_1
  Target: shop-2
    Level 1 - st_2

Location Constraints:
  Resource: g_shop
    Enabled on:
      Node: shop-2 (score:100) (id:location-g_shop-shop-2-100)
Ordering Constraints:
  promote p_drbd-clone then start g_shop (kind:Mandatory) (id:order-p_drbd-clone-g_shop-mandatory)
Colocation Constraints:
  g_shop with p_drbd-clone (score:INFINITY) (rsc-role:Started) (with-rsc-role:Promoted) (id:colocation-g_shop)

Resources Defaults:
  Meta Attrs: build-resource-defaults
    migration-threshold=3
    resource-stickiness=100

Cluster Properties:
 cluster-name: shop
 priority-fencing-delay: 5s
 stonith-enabled: true
"""

# pcs 0.11.5 and later: every attribute and operation option on a line of its own
PCS_CONFIG_NEW = """Cluster Name: shop
Corosync Nodes:
 shop-1 shop-2
Pacemaker Nodes:
 shop-1 shop-2

Resources:
  Clone: p_drbd-clone
    Meta Attributes: p_drbd-clone-meta_attributes
      clone-max=2
      notify=true
      promotable=true
      promoted-max=1
      promoted-node-max=1
    Resource: p_drbd (class=ocf provider=linbit type=drbd)
      Attributes: p_drbd-instance_attributes
        drbd_resource=shopdata
      Operations:
        monitor: p_drbd-monitor-interval-29s
          interval=29s
          role=Promoted
        monitor: p_drbd-monitor-interval-31s
          interval=31s
          role=Unpromoted
  Group: g_shop
    Resource: p_fs (class=ocf provider=heartbeat type=Filesystem)
      Attributes: p_fs-instance_attributes
        device=/dev/drbd3
        directory=/srv/shop
        fstype=ext4
      Operations:
        monitor: p_fs-monitor-interval-20s
          interval=20s
          timeout=40s
    Resource: p_ip (class=ocf provider=heartbeat type=IPaddr2)
      Attributes: p_ip-instance_attributes
        cidr_netmask=24
        ip=10.99.76.80
      Operations:
        monitor: p_ip-monitor-interval-10s
          interval=10s
    Resource: p_app (class=systemd type=shop)
      Operations:
        monitor: p_app-monitor-interval-30s
          interval=30s

Stonith Devices:
  Resource: st_1 (class=stonith type=fence_ipmilan)
    Attributes: st_1-instance_attributes
      ip=10.99.78.1
      password=pw1
      pcmk_host_list=shop-1
      username=root
  Resource: st_2 (class=stonith type=fence_ipmilan)
    Attributes: st_2-instance_attributes
      ip=10.99.78.2
      password=pw2
      pcmk_host_list=shop-2
      username=root
Fencing Levels:
  Target: shop-1
    Level 1 - st_1
  Target: shop-2
    Level 1 - st_2

Location Constraints:
  Resource: g_shop
    Enabled on:
      Node: shop-2 (score:100) (id:location-g_shop-shop-2-100)
Ordering Constraints:
  promote p_drbd-clone then start g_shop (kind:Mandatory) (id:order-p_drbd-clone-g_shop-mandatory)
Colocation Constraints:
  g_shop with p_drbd-clone (score:INFINITY) (rsc-role:Started) (with-rsc-role:Promoted) (id:colocation-g_shop)

Resources Defaults:
  Meta Attrs: build-resource-defaults
    migration-threshold=3
    resource-stickiness=100

Cluster Properties: cib-bootstrap-options
  cluster-name=shop
  priority-fencing-delay=5s
  stonith-enabled=true
"""

CIB = """<cib validate-with="pacemaker-3.9" epoch="7" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="o1" name="cluster-name" value="shop"/>
        <nvpair id="o2" name="stonith-enabled" value="true"/>
        <nvpair id="o3" name="priority-fencing-delay" value="5s"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="shop-1"/>
      <node id="2" uname="shop-2"/>
    </nodes>
    <resources>
      <clone id="c_drbd">
        <meta_attributes id="c_drbd-meta">
          <nvpair id="c1" name="promotable" value="true"/>
          <nvpair id="c2" name="promoted-max" value="1"/>
        </meta_attributes>
        <primitive id="p_drbd" class="ocf" provider="linbit" type="drbd">
          <instance_attributes id="p_drbd-ia">
            <nvpair id="d1" name="drbd_resource" value="shopdata"/>
          </instance_attributes>
        </primitive>
      </clone>
      <group id="g_shop">
        <primitive id="p_fs" class="ocf" provider="heartbeat" type="Filesystem">
          <instance_attributes id="p_fs-ia">
            <nvpair id="f1" name="device" value="/dev/drbd3"/>
            <nvpair id="f2" name="directory" value="/srv/shop"/>
            <nvpair id="f3" name="fstype" value="ext4"/>
          </instance_attributes>
          <operations><op id="f-mon" name="monitor" interval="20s" timeout="40s"/></operations>
        </primitive>
        <primitive id="p_ip" class="ocf" provider="heartbeat" type="IPaddr2">
          <instance_attributes id="p_ip-ia">
            <nvpair id="i1" name="ip" value="10.99.76.80"/>
            <nvpair id="i2" name="cidr_netmask" value="24"/>
          </instance_attributes>
          <operations><op id="i-mon" name="monitor" interval="10s"/></operations>
        </primitive>
        <primitive id="p_app" class="systemd" type="shop">
          <operations><op id="a-mon" name="monitor" interval="30s"/></operations>
        </primitive>
      </group>
      <primitive id="st_1" class="stonith" type="fence_ipmilan">
        <instance_attributes id="st_1-ia">
          <nvpair id="s11" name="ip" value="10.99.78.1"/>
          <nvpair id="s12" name="username" value="root"/>
          <nvpair id="s13" name="password" value="pw1"/>
          <nvpair id="s14" name="pcmk_host_list" value="shop-1"/>
        </instance_attributes>
      </primitive>
      <primitive id="st_2" class="stonith" type="fence_ipmilan">
        <instance_attributes id="st_2-ia">
          <nvpair id="s21" name="ip" value="10.99.78.2"/>
          <nvpair id="s22" name="username" value="root"/>
          <nvpair id="s23" name="password" value="pw2"/>
          <nvpair id="s24" name="pcmk_host_list" value="shop-2"/>
        </instance_attributes>
      </primitive>
    </resources>
    <constraints>
      <rsc_colocation id="col_shop" rsc="g_shop" with-rsc="c_drbd" with-rsc-role="Promoted" score="INFINITY"/>
      <rsc_order id="ord_shop" first="c_drbd" first-action="promote" then="g_shop" then-action="start"/>
      <rsc_location id="loc_shop" rsc="g_shop">
        <rule id="loc_shop-rule" score="100">
          <expression id="loc_shop-e" attribute="#uname" operation="eq" value="shop-2"/>
        </rule>
      </rsc_location>
    </constraints>
    <fencing-topology>
      <fencing-level id="fl1" target="shop-1" index="1" devices="st_1"/>
      <fencing-level id="fl2" target="shop-2" index="1" devices="st_2"/>
    </fencing-topology>
    <rsc_defaults>
      <meta_attributes id="rsc-options">
        <nvpair id="r1" name="resource-stickiness" value="100"/>
        <nvpair id="r2" name="migration-threshold" value="3"/>
      </meta_attributes>
    </rsc_defaults>
  </configuration>
  <status><node_state id="1" uname="shop-1"/></status>
</cib>
"""


def _files(tmp_path: Path, **texts: str) -> dict[str, str]:
    out = {}
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        out[name] = str(tmp_path / name)
    return out


def meaning(text: str) -> dict:
    """What a Pacemaker configuration means to hasupd, as data."""
    doc = yaml.safe_load(text)
    groups = {g["name"]: {"resources": [r["name"] for r in g["resources"]], "drbd": g.get("drbd"),
                          "preferred": g.get("preferred_node"), "stickiness": g["stickiness"],
                          "migration_threshold": g["migration_threshold"],
                          "mounts": {r["directory"]: r["device"] for r in g["resources"] if r["type"] == "filesystem"}}
              for g in doc["groups"]}
    fencing = doc.get("fencing")
    if fencing:
        for d in fencing["devices"]:
            d.pop("secrets", None)
    return {"groups": groups, "guard": doc["split_brain_guard"], "fencing": fencing,
            "drbd": doc.get("drbd", {}).get("resources"), "nodes": doc["nodes"]}


@pytest.fixture
def shop(tmp_path):
    return _files(tmp_path, **{"corosync.conf": COROSYNC, "shop.res": DRBD, "shop.crm": CRM,
                               "shop-pcs.sh": PCS_SCRIPT, "pcs-config.txt": PCS_CONFIG,
                               "pcs-config-0.11.txt": PCS_CONFIG_NEW, "cib.xml": CIB})


def _shop_import(shop, tmp_path, **source):
    return import_config(corosync=shop["corosync.conf"], drbd=shop["shop.res"],
                         secrets_dir=str(tmp_path / "secrets"), **source)


def test_crm_pcs_script_pcs_config_and_cib_mean_the_same(shop, tmp_path):
    crm = _shop_import(shop, tmp_path, crm=shop["shop.crm"])
    expected = meaning(crm.text)
    assert expected["groups"] == {"g_shop": {
        "resources": ["p_fs", "p_ip", "p_app"], "drbd": "shopdata", "preferred": "shop-2", "stickiness": 100,
        "migration_threshold": 3, "mounts": {"/srv/shop": "/dev/drbd3"}}}
    assert expected["fencing"]["owner_head_start"] == "5s"
    assert expected["fencing"]["levels"] == {"shop-1": [["st_1"]], "shop-2": [["st_2"]]}
    assert [d["nodes"] for d in expected["fencing"]["devices"]] == [["shop-1"], ["shop-2"]]
    # per-node backing disks are kept per node
    assert expected["drbd"][0]["disk"] == {"shop-1": "/dev/vg1/shop", "shop-2": "/dev/vg2/shop"}
    for source in ({"pcs": shop["shop-pcs.sh"]}, {"pcs": shop["pcs-config.txt"]},
                   {"pcs": shop["pcs-config-0.11.txt"]}, {"cib": shop["cib.xml"]},
                   {"crm": shop["cib.xml"]}, {"crm": shop["shop-pcs.sh"]}):
        got = _shop_import(shop, tmp_path, **source)
        assert meaning(got.text) == expected, source
        assert not [n for n in got.notes if n.kind == "unknown"], [n.render() for n in got.notes]


def test_passwords_go_to_root_only_files_never_to_the_yaml_or_stdout(shop, tmp_path):
    out = tmp_path / "hasupd.yaml"
    secrets = tmp_path / "fence"
    r = subprocess.run([sys.executable, "-m", "hasupd.migrate", "import", "--cib", shop["cib.xml"],
                        "--corosync", shop["corosync.conf"], "--drbd", shop["shop.res"],
                        "--secrets-dir", str(secrets), "-o", str(out)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    # the loader of this branch does not know `fencing:` yet: the check refuses it (78);
    # what matters here is where the passwords went
    assert r.returncode in (0, 78), r.stderr
    text = (out if r.returncode == 0 else Path(f"{out}.rejected")).read_text()
    for secret in ("pw1", "pw2"):
        assert secret not in text and secret not in r.stdout and secret not in r.stderr
    if r.returncode == 0:
        for dev, pw in (("st_1", "pw1"), ("st_2", "pw2")):
            f = secrets / f"{dev}.secret"
            assert f.read_text() == f"password={pw}\n"
            assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert f"{secrets}/st_1.secret" in text


def test_secrets_files_are_written_0600_from_the_start(tmp_path):
    from hasupd.migrate import write_secrets
    old = os.umask(0)
    try:
        write_secrets({str(tmp_path / "d" / "x.secret"): "password=a\n"})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d" / "x.secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700


def test_cluster_glue_plugins_are_not_fence_agents(tmp_path):
    f = _files(tmp_path, **{"c.crm": CRM.replace("stonith:fence_ipmilan params ip=10.99.78.1",
                                                 "stonith:external/libvirt params hostlist=shop-1 "
                                                 "hypervisor_uri=qemu+ssh://kvm/system ip=10.99.78.1"),
                            "corosync.conf": COROSYNC, "shop.res": DRBD})
    got = import_config(crm=f["c.crm"], corosync=f["corosync.conf"], drbd=f["shop.res"],
                        secrets_dir=str(tmp_path / "s"))
    doc = yaml.safe_load(got.text)
    assert [d["name"] for d in doc["fencing"]["devices"]] == ["st_2"]
    note = next(n for n in got.notes if "st_1" in n.message and "external/libvirt" in n.message)
    assert note.kind == "dropped" and "cluster-glue plugin" in note.message and "fence_virsh" in note.message
    # the level that named it is left out, not run with a missing device
    assert doc["fencing"]["levels"] == {"shop-2": [["st_2"]]}


def test_a_pcs_export_with_fencing_reads_back(shop, tmp_path):
    first = _shop_import(shop, tmp_path, crm=shop["shop.crm"])
    cfg = load(first)
    for fmt, key in (("crm", "crm"), ("pcs", "pcs")):
        out = export_config(cfg, fmt)
        (tmp_path / f"out.{fmt}").write_text(out.script)
        back = _shop_import(shop, tmp_path, **{key: str(tmp_path / f"out.{fmt}")})
        assert meaning(back.text)["fencing"] == meaning(first.text)["fencing"]
        assert "pw1" not in out.script and any("st_1.secret" in n for n in out.notes)


# ---------------------------------------------------------------- crm constructs


def test_dollar_prompt_sessions_modgroup_and_bare_params():
    text = """$ configure primitive a ocf:heartbeat:IPaddr2 ip=10.99.79.1 cidr_netmask=24
$ configure primitive b ocf:heartbeat:azure-lb port=61000 \\
op monitor interval=10
$ configure primitive c systemd:x
$ configure primitive d systemd:y
$ configure group g a
$ configure modgroup g add c
$ configure modgroup g add b before c
$ configure modgroup g add d after a
$ configure modgroup g remove d
"""
    cfg = crmmod.parse(text, "s.crm")
    assert cfg.groups["g"].members == ["a", "b", "c"]
    assert cfg.primitives["a"].params == {"ip": "10.99.79.1", "cidr_netmask": "24"}
    assert cfg.primitives["b"].params == {"port": "61000"} and cfg.primitives["b"].ops[0].name == "monitor"
    assert not [n for n in cfg.notes if n.kind == "unknown"]
    with pytest.raises(DataError, match="s.crm:1: modgroup nope: no such group"):
        crmmod.parse("modgroup nope add a", "s.crm")


def test_the_drbd_a_group_is_placed_with_wins_over_other_colocations(tmp_path):
    text = """node n1
node n2
primitive d_low ocf:linbit:drbd params drbd_resource=low
primitive d_top ocf:linbit:drbd params drbd_resource=top
ms ms_low d_low meta master-max=1
ms ms_top d_top meta master-max=1
primitive ip IPaddr2 params ip=10.99.79.5
colocation c_top_with_ip inf: ms_top ip
colocation c_ip_on_low inf: ip ms_low:Master
property stonith-enabled=false
"""
    f = _files(tmp_path, **{"c.crm": text, "corosync.conf": COROSYNC.replace("shop-1", "n1").replace("shop-2", "n2")})
    got = import_config(crm=f["c.crm"], corosync=f["corosync.conf"])
    doc = yaml.safe_load(got.text)
    assert doc["groups"][0]["drbd"] == "low"
    assert not any("low is not tied" in n.message for n in got.notes)


@pytest.mark.parametrize("text, words", [
    ("node a\nnode b\nnode c\nprimitive ip IPaddr2 params ip=10.99.79.9\n", ("3 nodes", "a, b, c")),
    ("primitive fs Filesystem params device=/dev/drbd0 directory=/d fstype=ext4\nclone cl fs\n",
     ("active/active", "clone cl runs fs (Filesystem)")),
    ("primitive d ocf:linbit:drbd params drbd_resource=r\nms m d meta master-max=2\n"
     "primitive ip IPaddr2 params ip=10.99.79.9\ncolocation c inf: ip m:Master\n", ("dual-primary", "master-max=2")),
])
def test_refusals_say_what_was_found_and_point_back_to_pacemaker(text, words, tmp_path):
    f = _files(tmp_path, **{"c.crm": text})
    with pytest.raises(Refused) as got:
        import_config(crm=f["c.crm"])
    for w in words + ("not for hasupd", "Stay on Pacemaker"):
        assert w in str(got.value)


def test_a_vip_that_is_a_nodes_own_address_is_flagged(tmp_path):
    f = _files(tmp_path, **{"c.crm": "primitive ip IPaddr2 params ip=10.99.76.1\nproperty stonith-enabled=false\n",
                            "corosync.conf": COROSYNC})
    got = import_config(crm=f["c.crm"], corosync=f["corosync.conf"])
    assert any(n.kind == "warning" and "10.99.76.1 is node shop-1's own address" in n.message for n in got.notes)


# ---------------------------------------------------------------- corosync constructs


def test_corosync_interface_colon_and_member_lists():
    info = corosyncmod.parse("""totem {
    version: 2
    transport: udpu
    interface: {
        ringnumber: 0
        bindnetaddr: 10.99.80.0
        member {
            memberaddr: 10.99.80.1
        }
        member {
            memberaddr: 10.99.80.2
        }
    }
    interface {
        ringnumber: 1
        bindnetaddr: 10.99.81.0
        member {
            memberaddr: 10.99.81.1
        }
        member {
            memberaddr: 10.99.81.2
        }
    }
}
""", "c.conf")
    assert [n.addrs for n in info.nodes] == [{0: "10.99.80.1", 1: "10.99.81.1"}, {0: "10.99.80.2", 1: "10.99.81.2"}]
    assert not [n for n in info.notes if n.kind == "unknown"]


def test_corosync_names_without_addresses_ask_for_hosts(tmp_path):
    coro = "totem {\n version: 2\n}\nnodelist {\n node {\n  name: x1\n  nodeid: 1\n }\n node {\n  name: x2\n  nodeid: 2\n }\n}\n"
    f = _files(tmp_path, **{"c.crm": "primitive ip IPaddr2 params ip=10.99.82.9\n", "c.conf": coro,
                            "hosts": "10.99.82.1 x1\n10.99.82.2 x2\n"})
    with pytest.raises(DataError, match=r"c.conf:5: node x1 has no ring0_addr: .*give --hosts"):
        import_config(crm=f["c.crm"], corosync=f["c.conf"])
    got = import_config(crm=f["c.crm"], corosync=f["c.conf"], hosts=f["hosts"])
    assert [n["addresses"] for n in yaml.safe_load(got.text)["nodes"]] == [["10.99.82.1"], ["10.99.82.2"]]


# ---------------------------------------------------------------- DRBD constructs


def test_drbd_via_outside_address_and_volumes_counted_by_number():
    info = drbdconf.interpret(drbdconf.parse("""resource r {
    volume 1 { device minor 1; disk /dev/b; meta-disk internal; }
    on a { node-id 0; volume 0 { device minor 0; disk /dev/a0; meta-disk internal; } }
    on b { node-id 1; volume 0 { device minor 0; disk /dev/b0; meta-disk internal; } }
    connection {
        host a address 10.99.83.1:7000 via outside-address 192.0.2.1:7000;
        host b address 10.99.83.2:7000 via outside-address 192.0.2.2:7000;
    }
}
""", "r.res"))
    a, b = info.resources[0].hosts
    assert (a.address, a.port, b.address) == ("10.99.83.1", 7000, "10.99.83.2")
    assert (a.device, a.disk, a.volumes) == ("/dev/drbd0", "/dev/a0", 2)
    assert (b.disk, b.volumes) == ("/dev/b0", 2)


def test_a_handler_string_continued_with_backslash_is_refused():
    text = 'common {\n  handlers {\n    pri-lost "/a.sh; \\\n      /b.sh";\n  }\n}\n'
    with pytest.raises(DataError, match=r"g.conf:3: a quoted string continues onto the next line"):
        drbdconf.parse(text, "g.conf")


def test_per_node_disks_are_exported_per_node(shop, tmp_path):
    cfg = load(_shop_import(shop, tmp_path, crm=shop["shop.crm"]))
    d = cfg.drbd.resources[0]
    assert (d.disk_of("shop-1"), d.disk_of("shop-2")) == ("/dev/vg1/shop", "/dev/vg2/shop")
    res = export_config(cfg, "crm").drbd
    assert "on shop-1 {" in res and res.index("disk /dev/vg1/shop;") < res.index("on shop-2 {") \
        < res.index("disk /dev/vg2/shop;")


def test_data_errors_print_the_notes_gathered_before(tmp_path):
    f = _files(tmp_path, **{"c.crm": "frobnicate everything\nprimitive s stonith:fence_x params a=b\n",
                            "corosync.conf": COROSYNC})
    r = subprocess.run([sys.executable, "-m", "hasupd.migrate", "import", "--crm", f["c.crm"],
                        "--corosync", f["corosync.conf"]],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 65
    assert "unknown crm statement 'frobnicate'" in r.stderr and "no resources to run" in r.stderr


@pytest.mark.parametrize("device", ["/dev/drbd/by-res/shopdata", "/dev/drbd/by-res/shopdata/0", "/dev/vg-nfs/lv1"])
def test_filesystems_on_drbd_by_name_or_lvm_on_top_pass_the_check(device, shop, tmp_path):
    f = _files(tmp_path, **{"c.crm": CRM.replace("device=/dev/drbd3", f"device={device}")})
    for drbd in (None, shop["shop.res"]):
        got = import_config(crm=f["c.crm"], corosync=shop["corosync.conf"], drbd=drbd,
                            secrets_dir=str(tmp_path / "s"))
        cfg = load(got)
        assert cfg.groups[0].drbd == "shopdata" and cfg.groups[0].resources[0].device == device
        # with the DRBD configuration the real device; without it a placeholder that says so
        d = cfg.drbd.resources[0]
        assert (d.device, d.minor) == ("/dev/drbd3", 3) if drbd else d.device.startswith("/dev/drbd")
        if not drbd:
            assert "set the device" in got.text or "the filesystem's device" in got.text


def test_check_names_a_unicast_ring_once(shop, tmp_path):
    from hasupd import config as configmod
    cfg = load(_shop_import(shop, tmp_path, crm=shop["shop.crm"]))
    text = configmod.summary(cfg)
    assert "ring 0: unicast port 5405 on 10.99.76.0/24" in text and "unicast unicast" not in text


def test_a_ping_rule_that_wanted_several_answers_is_flagged(tmp_path):
    crm = """primitive ip IPaddr2 params ip=10.99.76.80
primitive p ocf:pacemaker:ping params host_list="10.99.76.251 10.99.76.252 10.99.76.253" multiplier=1000 \\
    op monitor interval=10s
clone cl p
location needs-net ip rule -inf: not_defined pingd or pingd lte 1000
property stonith-enabled=false
"""
    f = _files(tmp_path, **{"c.crm": crm, "corosync.conf": COROSYNC})
    got = import_config(crm=f["c.crm"], corosync=f["corosync.conf"])
    assert yaml.safe_load(got.text)["split_brain_guard"]["mode"] == "ping"
    assert any("needed 2 of the 3 ping targets" in n.message for n in got.notes)
    (tmp_path / "c.crm").write_text(crm.replace("pingd lte 1000", "pingd lte 0"))
    again = import_config(crm=f["c.crm"], corosync=f["corosync.conf"])
    assert not any("ping targets" in n.message for n in again.notes)


@pytest.mark.parametrize("disk, error", [
    ("{shop-1: /dev/vg1/shop}", "missing required key 'shop-2'"),
    ("{shop-1: /dev/a, shop-2: /dev/b, shop-3: /dev/c}", "unknown key 'shop-3'"),
])
def test_a_per_node_disk_names_both_nodes_and_only_them(disk, error, shop, tmp_path):
    from hasupd import config as configmod
    text = _shop_import(shop, tmp_path, crm=shop["shop.crm"]).text
    doc = yaml.safe_load(text)
    doc.pop("fencing")
    doc["split_brain_guard"] = {"mode": "none"}
    bad = yaml.safe_dump(doc).replace("disk:\n      shop-1: /dev/vg1/shop\n      shop-2: /dev/vg2/shop", f"disk: {disk}")
    assert f"disk: {disk}" in bad
    with pytest.raises(configmod.ConfigError, match=error):
        configmod.loads(bad, "x.yaml")


@pytest.mark.parametrize("xml, words", [
    ('<?xml version="1.0"?>\n<!DOCTYPE cib [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>\n<cib>&b;</cib>\n',
     "c.xml:2: a DOCTYPE is not allowed"),
    ("<html><body/></html>\n", "<html>: not a Pacemaker CIB"),
    ("<cib><configuration>\n<resources>\n</cib>\n", "c.xml:3: not well-formed XML"),
])
def test_cib_xml_that_is_hostile_or_not_a_cib_is_refused(xml, words, tmp_path):
    f = _files(tmp_path, **{"c.xml": xml})
    with pytest.raises(DataError) as got:
        import_config(cib=f["c.xml"])
    assert words in str(got.value)


@pytest.mark.parametrize("form", ["crm", "pcs script", "pcs config", "pcs config 0.11", "cib"])
def test_damaged_inputs_of_every_form_give_data_errors_never_tracebacks(form):
    """Lines dropped, words dropped, lines repeated: a clear error or a result, nothing else."""
    import random

    from hasupd.migrate import cib as cibmod
    from hasupd.migrate import importer
    from hasupd.migrate import pcs as pcsmod
    source, parse = {"crm": (CRM, crmmod.parse), "pcs script": (PCS_SCRIPT, pcsmod.parse),
                     "pcs config": (PCS_CONFIG, pcsmod.parse), "pcs config 0.11": (PCS_CONFIG_NEW, pcsmod.parse),
                     "cib": (CIB, cibmod.parse)}[form]
    coro = corosyncmod.parse(COROSYNC, "corosync.conf")
    rng = random.Random(form)
    lines = source.splitlines()
    outcomes = set()
    for _ in range(300):
        damaged = list(lines)
        for _ in range(rng.randint(1, 4)):
            k = rng.randrange(len(damaged))
            roll = rng.random()
            if roll < 0.4:
                del damaged[k]
            elif roll < 0.8:
                words = damaged[k].split(" ")
                if len(words) > 1:
                    del words[rng.randrange(len(words))]
                damaged[k] = " ".join(words)
            else:
                damaged.insert(k, damaged[rng.randrange(len(damaged))])
        try:
            importer.build(parse("\n".join(damaged) + "\n", "f"), coro, None, None)
            outcomes.add("imported")
        except DataError:
            outcomes.add("data error")
    assert outcomes == {"imported", "data error"}
