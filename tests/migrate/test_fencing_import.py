"""Stonith devices, fencing_topology and priority-fencing-delay -> the `fencing:` section
(fence-schema.md), and back to crm/pcs.

Imports load with the real loader and pass `hasupctl check`, the agents' metadata
included (fence-agents is installed here)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from hasupd import config as configmod
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


def _hasupctl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hasupd.control.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)})


def import_and_check(tmp_path: Path, *import_args: str, cwd: Path) -> tuple[Path, Path, str]:
    """`hasupctl import ... -o` then `hasupctl check` (the agents' metadata included) on
    what it wrote: (the YAML, the secrets directory, the import's stderr)."""
    out, secrets = tmp_path / "hasupd.yaml", tmp_path / "secrets"
    r = _hasupctl("import", *import_args, "--secrets-dir", str(secrets), "-o", str(out), cwd=cwd)
    assert r.returncode == 0, r.stderr
    for f in secrets.iterdir():
        st = f.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.getuid(), 0o600), f
    check = _hasupctl("check", "--config", str(out), cwd=cwd)
    assert check.returncode == 0, check.stderr
    assert f"{out}: valid" in check.stdout
    return out, secrets, r.stderr


def test_hasupctl_import_of_the_fencing_fixture_passes_hasupctl_check(tmp_path):
    fixture = ROOT / "tests" / "migrate" / "fixtures" / "fencing"
    out, secrets, _ = import_and_check(tmp_path, "--crm", "crm.txt", "--corosync", "corosync.conf", cwd=fixture)
    assert {f.name: f.read_text() for f in secrets.iterdir()} == {
        "bmc-a.secret": "password=s3cr3t a\n", "bmc-b.secret": "password=s3cr3t b\n", "pdu.secret": "community=private\n"}
    cfg = configmod.load(str(out))
    assert [[d.name for d in level] for level in cfg.fencing.levels_for("vault-a")] == [["bmc-a"], ["pdu-vault-a"]]
    assert cfg.fencing.device("bmc-a").secrets == str(secrets / "bmc-a.secret")
    assert "s3cr3t" not in out.read_text() and "private" not in out.read_text()


def test_pacemaker_params_and_options_the_agent_does_not_know_are_dropped_with_a_note(tmp_path):
    crm = GROUP + """primitive st1 stonith:fence_ipmilan params ip=10.99.70.201 username=admin password=pw \\
  pcmk_host_list=n1 pcmk_host_check=static-list pcmk_monitor_timeout=30s pcmk_host_argument=plug priority=10 \\
  frobnicate=1 nodename=n9 identity_file=/root/.ssh/id_bmc lanplus=1
primitive st2 stonith:fence_apc_snmp params ip=10.99.70.9 community=c0mm port=7 pcmk_host_list=n2
property stonith-enabled=true
"""
    out = _import(tmp_path, crm)
    devices = {d["name"]: d for d in yaml.safe_load(out.text)["fencing"]["devices"]}
    assert devices["st1"]["options"] == {"ip": "10.99.70.201", "lanplus": "1", "username": "admin"}
    assert devices["st2"]["plugs"] == {"n2": "7"} and "port" not in devices["st2"].get("options", {})
    notes = [n.message for n in out.notes]
    dropped = next(m for m in notes if "Pacemaker's own device settings" in m)
    for param in ("pcmk_host_check=static-list", "pcmk_monitor_timeout=30s", "pcmk_host_argument=plug",
                  "priority=10"):
        assert param in dropped
    assert any("fence_ipmilan does not know frobnicate, identity_file" in m for m in notes), notes
    assert any("nodename=n9" in m for m in notes)
    # the result loads with the real loader and passes the agents' metadata check
    from imported import load

    from hasupd.fencing import check_devices
    cfg = load(out)
    assert check_devices(cfg.fencing) == []
    assert out.secrets[str(tmp_path / "secrets" / "st1.secret")] == "password=pw\n"


def test_a_failed_check_takes_the_secrets_files_back(tmp_path):
    # an agent not installed here (no metadata to drop it by) with an option name the loader refuses
    crm = GROUP + ("primitive st stonith:fence_site_special params bad.key=1 password=new pcmk_host_list=n1\n"
                   "property stonith-enabled=true\n")
    (tmp_path / "c.crm").write_text(crm)
    (tmp_path / "corosync.conf").write_text(COROSYNC)
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "st.secret").write_text("password=before\n")
    (secrets / "st.secret").chmod(0o600)
    r = _hasupctl("import", "--crm", "c.crm", "--corosync", "corosync.conf", "--secrets-dir", str(secrets),
                  "-o", str(tmp_path / "hasupd.yaml"), cwd=tmp_path)
    assert r.returncode == 78, r.stderr
    assert "'bad.key' is not an option name" in r.stderr
    assert "fence_site_special is not installed here" in r.stderr
    assert (secrets / "st.secret").read_text() == "password=before\n"
    assert sorted(f.name for f in secrets.iterdir()) == ["st.secret"]
    assert not (tmp_path / "hasupd.yaml").exists() and (tmp_path / "hasupd.yaml.rejected").exists()


def test_an_agent_that_needs_a_plug_gets_the_node_names_as_pacemaker_sends_them(tmp_path):
    crm = GROUP + """primitive st_vm stonith:fence_virsh params ip=10.99.70.250 username=root \\
  identity_file=/root/.ssh/id_kvm pcmk_host_list="n1 n2"
primitive st_ipmi stonith:fence_ipmilan params ip=10.99.70.201 pcmk_host_list=n1
property stonith-enabled=true
"""
    out = _import(tmp_path, crm)
    devices = {d["name"]: d for d in yaml.safe_load(out.text)["fencing"]["devices"]}
    assert devices["st_vm"]["plugs"] == {"n1": "n1", "n2": "n2"}
    assert "plugs" not in devices["st_ipmi"]  # its plug is optional: Pacemaker's name would be ignored
    assert any("fence_virsh needs a plug" in n.message for n in out.notes)
    from imported import load

    from hasupd.fencing import check_devices, stdin_text
    cfg = load(out)
    assert check_devices(cfg.fencing) == []
    vm = cfg.fencing.device("st_vm")
    assert "plug=n2\n" in stdin_text(vm, "n2", "status", [])
    # the key file is the loader's secret: in the secrets file, not in options
    assert out.secrets[str(tmp_path / "secrets" / "st_vm.secret")] == "identity_file=/root/.ssh/id_kvm\n"
