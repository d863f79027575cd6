"""Stonith devices, fencing_topology and priority-fencing-delay -> the `fencing:` section
(fence-schema.md), and back to crm/pcs.

The loader in this branch does not know `fencing:` yet, so the imported section
is checked as data (the YAML the importer writes)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from hasupd.migrate import import_config

ROOT = Path(__file__).resolve().parents[2]
COROSYNC = """totem {
    version: 2
    transport: udpu
}
nodelist {
    node {
        ring0_addr: 10.99.70.1
        name: n1
        nodeid: 1
    }
    node {
        ring0_addr: 10.99.70.2
        name: n2
        nodeid: 2
    }
}
quorum {
    provider: corosync_votequorum
    two_node: 1
}
"""

GROUP = """primitive vip IPaddr2 params ip=10.99.70.50 cidr_netmask=24 op monitor interval=10s
group g_web vip
"""


def _import(tmp_path: Path, crm: str, **kw):
    (tmp_path / "c.crm").write_text(crm)
    (tmp_path / "corosync.conf").write_text(COROSYNC)
    return import_config(crm=str(tmp_path / "c.crm"), corosync=str(tmp_path / "corosync.conf"),
                         secrets_dir=str(tmp_path / "secrets"), **kw)


def test_a_host_list_with_shell_syntax_never_reaches_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    crm = GROUP + f"""primitive st1 stonith:fence_ipmilan params ip=10.99.70.201 username=admin \\
  password=pw pcmk_host_list="n1|$(touch${{IFS}}{marker})"
primitive st2 stonith:fence_ipmilan params ip=10.99.70.202 username=admin password=pw pcmk_host_list=n2
property stonith-enabled=true
"""
    out = _import(tmp_path, crm)
    doc = yaml.safe_load(out.text)
    # whatever the importer wrote for the guard: run every command it contains the way the
    # daemon would, for both peers; the marker must never appear
    for section in (doc.get("split_brain_guard", {}).get("fence") or {}, *(doc.get("fencing", {}) or {})
                    .get("devices", [])):
        argv = section.get("command") if isinstance(section, dict) else None
        if argv:
            for peer in ("n1", "n2", f"n1|$(touch${{IFS}}{marker})"):
                subprocess.run(argv, env={**os.environ, "HASUPD_PEER": peer}, capture_output=True, timeout=30)
    assert not marker.exists()
    assert "sh" not in str(doc.get("split_brain_guard"))
    # the hostile name is just a node name that is not in the cluster: reported, not run
    devices = {d["name"]: d for d in doc["fencing"]["devices"]}
    assert devices["st2"]["nodes"] == ["n2"]
    assert "st1" not in devices  # it fences no node of this cluster
    assert any("not one of the cluster's nodes" in n.message for n in out.notes)
