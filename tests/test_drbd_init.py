"""`hasupctl drbd init` end to end on two simulated DRBD nodes (no daemon).

Node n2 prepares (metadata + up), n1 says its data wins: the full sync runs
and both end UpToDate, n1 Primary.  Started the other way round too: the
winner waits (bounded) for the peer instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml

from hasupd_lab.drbdsim.harness import SimCluster, TwoNodeNet

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def node_config(sc: SimCluster, net: TwoNodeNet, node: str, workdir: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "conf" / "hasupd.yaml").read_text())
    cfg["nodes"] = [{"name": n, "addresses": [net.addr[n]]} for n in ("n1", "n2")]
    cfg["heartbeat"]["rings"] = [{"bind_network": "10.77.9.0/24", "group": "226.94.1.1", "port": 5405}]
    cfg["drbd"].update(status_path=sc.status_path(node), load_module=True)
    cfg["drbd"]["resources"] = [{"name": "r0", "device": sc.device(node), "minor": 1,
                                 "disk": sc.disk(node), "port": 7789}]
    cfg["groups"][0]["resources"][1]["device"] = sc.device(node)
    path = workdir / f"{node}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def hasupctl(sc: SimCluster, node: str, cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*sc.exec_prefix[node], sys.executable, "-m", "hasupd.control.cli",
                           "--config", str(cfg), *args],
                          env=sc.env(node), capture_output=True, text=True, timeout=180)


@contextlib.contextmanager
def _sim(version: str):
    with tempfile.TemporaryDirectory(prefix="hasupd-init-") as tmp, \
            TwoNodeNet(f"di{os.getpid() % 1000}", subnet="10.77.9") as net, \
            SimCluster(Path(tmp) / "sim", net.nodes(), prefix="di", ping_int=1.0, drbd_version=version) as sc:
        yield sc, net, Path(tmp)


@pytest.fixture(params=["8.4", "9"])
def sim(request):
    with _sim(request.param) as s:
        yield s


def test_first_sync_from_this_node(sim):
    sc, net, tmp = sim
    c1, c2 = node_config(sc, net, "n1", tmp), node_config(sc, net, "n2", tmp)
    r = hasupctl(sc, "n2", c2, "drbd", "init", "r0", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "created DRBD metadata" in r.stdout and "--this-node-wins" in r.stdout
    r = hasupctl(sc, "n1", c1, "drbd", "init", "r0", "--this-node-wins", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "UpToDate/UpToDate" in r.stdout and "mkfs.ext4" in r.stdout
    kernel = {"8.4": "8.4.11", "9": "9.2.12"}[sc.drbd_version]
    assert f"DRBD kernel module {kernel}, drbd-utils 9.22.0" in r.stdout
    assert "warning" not in r.stdout  # the simulated resource has auto-promote no
    st1, st2 = sc.state("n1"), sc.state("n2")
    assert (st1["role"], st1["disk"]) == ("Primary", "UpToDate"), st1
    assert (st2["role"], st2["disk"]) == ("Secondary", "UpToDate"), st2
    # a second run changes nothing and says so
    r = hasupctl(sc, "n1", c1, "drbd", "init", "r0", "--this-node-wins", "--yes")
    assert r.returncode == 0 and "already in sync" in r.stdout


def test_winner_first_waits_for_the_peer_and_never_hangs(sim):
    sc, net, tmp = sim
    c1, c2 = node_config(sc, net, "n1", tmp), node_config(sc, net, "n2", tmp)
    # alone, with a short bound: a clear refusal, nothing overwritten
    t0 = time.monotonic()
    r = hasupctl(sc, "n1", c1, "drbd", "init", "r0", "--this-node-wins", "--yes", "--timeout", "3")
    assert r.returncode == 1 and "did not connect within 3s" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 60
    # the winner started first, the peer joins while it waits
    out: dict = {}
    t = threading.Thread(target=lambda: out.setdefault("r", hasupctl(
        sc, "n1", c1, "drbd", "init", "r0", "--this-node-wins", "--yes", "--timeout", "120")))
    t.start()
    time.sleep(2)
    r2 = hasupctl(sc, "n2", c2, "drbd", "init", "r0", "--yes")
    t.join(180)
    assert r2.returncode == 0, r2.stderr
    r = out["r"]
    assert r.returncode == 0, r.stdout + r.stderr
    assert "waiting up to 120s for the peer" in r.stdout
    assert sc.state("n2")["disk"] == "UpToDate"


def test_drbd9_auto_promote_on_is_warned():
    with _sim("9") as (sc, net, tmp):
        sc.reconfigure(auto_promote=True)
        c2 = node_config(sc, net, "n2", tmp)
        r = hasupctl(sc, "n2", c2, "drbd", "init", "r0", "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "warning: DRBD r0 has auto-promote on" in r.stdout
        r = hasupctl(sc, "n2", c2, "check")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "DRBD: kernel module 9.2.12, drbd-utils 9.22.0" in r.stdout, r.stdout
        assert "warning: DRBD r0 has auto-promote on" in r.stdout


@pytest.mark.parametrize("version", ["8.4", "9"])
def test_resource_file_for_each_version(version, tmp_path):
    r = subprocess.run([sys.executable, "-m", "hasupd.control.cli", "--config", str(ROOT / "conf" / "hasupd.yaml"),
                        "drbd", "init", "r0", "--resource-file", "--drbd-version", version],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    sections = {m: text.index(f"  {m} {{") for m in ("net", "handlers")}
    fencing = text.index("fencing resource-and-stonith;")  # I/O frozen while the handler decides
    assert '"/usr/bin/hasupd-drbd-handler fence-peer"' in text
    assert "address 192.168.0.21:7789" in text and "address 192.168.0.22:7789" in text
    if version == "9":
        # 9: fencing is a net option, node ids are needed, only hasupd promotes, two nodes: no quorum
        assert sections["net"] < fencing < sections["handlers"]
        assert "auto-promote no;" in text and "quorum off;" in text and "node-id 1;" in text
        assert "  disk {" not in text
    else:
        assert text.index("  disk {") < fencing < sections["handlers"]
        assert "quorum" not in text and "node-id" not in text and "auto-promote" not in text
