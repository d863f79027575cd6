"""The campaign's hasupd.yaml and r0.res (tests/vm/campaign.py), checked without VMs: hasupd's own
loader takes them, the fence race is decided (no "both nodes may be fenced" warning: the first
campaign run of issue 21's open points lost 28 acknowledged writes when the owner's fence outlasted
the peer's head start), and the drbd guard's resource freezes I/O while the handler runs."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from hasupd import config

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import campaign  # noqa: E402


def load(tmp_path: Path, guard: str) -> config.Config:
    secret = tmp_path / "bmc.secret"
    secret.write_text("password=x\n")
    secret.chmod(0o600)
    text = campaign.campaign_config(campaign.Network(tmp_path), guard).replace("/etc/hasupd/bmc.secret", str(secret))
    path = tmp_path / "hasupd.yaml"
    path.write_text(text)
    return config.load(path)


@pytest.mark.parametrize("guard", ["drbd", "fence"])
def test_the_campaign_configuration_loads_and_decides_the_fence_race(tmp_path, guard):
    cfg = load(tmp_path, guard)
    assert cfg.split_brain_guard.mode == guard
    assert sorted(n for d in cfg.fencing.devices for n in d.nodes) == ["node1", "node2"]
    race = [w for w in cfg.warnings if "both nodes may be fenced" in w]
    assert not race, race


def test_the_drbd_guard_resource_freezes_io_and_calls_hasupds_handler():
    text = campaign.campaign_resource("drbd")
    assert re.search(r"disk\s*\{\s*fencing resource-and-stonith;\s*\}", text)
    assert 'fence-peer "/usr/bin/hasupd-drbd-handler fence-peer";' in text
    assert text.count("{") == text.count("}")
    assert campaign.campaign_resource("fence") == (HERE / "guest" / "r0.res").read_text()
