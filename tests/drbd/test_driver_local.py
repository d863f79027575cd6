"""The driver on this machine as it is: no DRBD module, no drbd-utils on the
test PATH, real loop devices, real udev/kernel uevents."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from hasupd import config
from hasupd.resources import drbd

PREFIX = "dd"


def drbd_cfg(status_path: str, load_module: bool = True, drbdadm: str = "drbdadm",
             drbdsetup: str = "drbdsetup", disk: str = "/dev/null") -> tuple[config.Drbd, config.DrbdResource]:
    res = config.DrbdResource(name="r0", device="/dev/drbd1", minor=1, disk=disk, port=7789)
    return config.Drbd(load_module, 2, status_path, drbdadm, drbdsetup, 11.0, (res,)), res


@pytest.fixture
def empty_path_env():
    """A PATH with none of DRBD's tools: drbd-utils not installed."""
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}-nopath-") as d:
        yield {"PATH": d}


def test_missing_module_is_one_clear_error(tmp_path):
    # the real modprobe of this host: there is no drbd module for this kernel
    cfg, _ = drbd_cfg(str(tmp_path / "proc-drbd-absent"))
    r = asyncio.run(drbd.ensure_module(cfg))
    assert not r.ok
    assert r.command == ("modprobe", "drbd", "minor_count=2")
    assert "\n" not in r.message
    for w in ("drbd kernel module is missing", os.uname().release, "linux-image-", "kmod-drbd84",
              "kmod-drbd9x"):
        assert w in r.message, r.message
    assert "Module drbd not found" in r.output


def test_module_already_loaded_is_not_touched(tmp_path):
    status = tmp_path / "drbd"
    status.write_text("version: 8.4.11 (api:1/proto:86-101)\n")
    cfg, _ = drbd_cfg(str(status))
    r = asyncio.run(drbd.ensure_module(cfg))
    assert r.ok and r.command == ()


def test_module_absent_and_loading_disabled(tmp_path):
    cfg, _ = drbd_cfg(str(tmp_path / "absent"), load_module=False)
    r = asyncio.run(drbd.ensure_module(cfg))
    assert not r.ok and "load_module is false" in r.message and "minor_count=2" in r.message


def test_missing_drbd_utils_is_one_clear_error(tmp_path, empty_path_env):
    cfg, res = drbd_cfg(str(tmp_path / "absent"))
    d = drbd.DrbdDriver(cfg, res, env=empty_path_env, timeout=10)

    async def go():
        return await d.promote(), await d.up(), await d.status()

    promote, up, st = asyncio.run(go())
    for r in (promote, up):
        assert not r.ok
        assert "is not installed: install the drbd-utils package" in r.message, r.message
    assert st.up is False
    assert "drbd-utils" in d.last_error


# ---------------------------------------------------------------- loop devices


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout.strip()


@pytest.fixture
def loopdev():
    """A 16 MiB loop device on an image named with our prefix."""
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}-loop-") as d:
        img = Path(d) / f"{PREFIX}-disk.img"
        with open(img, "wb") as f:
            f.truncate(16 << 20)
        dev = sh("losetup", "-f", "--show", str(img))
        try:
            yield dev, img
        finally:
            subprocess.run(["losetup", "-d", dev], capture_output=True)


def test_find_holders_names_mount_and_process(loopdev):
    dev, _ = loopdev
    sh("mkfs.ext4", "-q", dev)
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}-mnt-") as mnt:
        sh("mount", dev, mnt)
        proc = None
        try:
            proc = subprocess.Popen(["sleep", "60"], cwd=mnt)
            holders = drbd.find_holders(dev)
            assert f"mounted on {mnt}" in holders
            assert f"pid {proc.pid} (sleep)" in holders
        finally:
            if proc:
                proc.kill()
                proc.wait()
            subprocess.run(["umount", mnt], capture_output=True)
    # (a mount namespace another process created meanwhile may keep a copy of the mount:
    # then that is named, see the next test)
    assert [h for h in drbd.find_holders(dev) if "mount namespace" not in h] == []


def test_find_holders_sees_other_mount_namespaces(loopdev):
    """A copy of the mount in another mount namespace (a PrivateTmp= service started while
    the filesystem was mounted) keeps the device busy: named with a process of it; a
    process whose cwd is on the filesystem there is found by its device number."""
    from tests.drbdsim.conftest import PrivateMount

    dev, _ = loopdev
    sh("mkfs.ext4", "-q", dev)
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}-mnt-") as mnt:
        m = PrivateMount(dev, mnt)
        proc = None
        try:
            proc = subprocess.Popen(["nsenter", "-t", str(m.holder), "-m", "sh", "-c", f"cd {mnt} && exec sleep 60"])
            deadline = time.monotonic() + 10
            while f"pid {proc.pid} (sleep)" not in drbd.find_holders(dev) and time.monotonic() < deadline:
                time.sleep(0.1)
            holders = drbd.find_holders(dev)
            assert f"pid {proc.pid} (sleep)" in holders, holders
            assert any(h.startswith(f"mounted on {mnt} in the mount namespace of pid ") for h in holders), holders
            assert f"mounted on {mnt}" not in holders  # not in this namespace
        finally:
            if proc:
                proc.kill()
                proc.wait()
            m.umount()


def test_backing_disk_present_follows_loop_detach(loopdev):
    dev, img = loopdev
    assert drbd.backing_disk_present(dev)
    sh("losetup", "-d", dev)
    try:
        assert not drbd.backing_disk_present(dev)
    finally:
        sh("losetup", dev, str(img))
    assert drbd.backing_disk_present(dev)
    assert not drbd.backing_disk_present(f"/dev/{PREFIX}-no-such-disk")


@pytest.mark.slow
def test_watch_sees_backing_disk_detach_through_uevents(loopdev, tmp_path, empty_path_env):
    """No DRBD at all here: only the uevent can deliver the change, the
    deep probe is set to 10 minutes."""
    dev, img = loopdev
    cfg, res = drbd_cfg(str(tmp_path / "absent"), disk=dev)
    d = drbd.DrbdDriver(cfg, res, env=empty_path_env, probe_interval=600)

    async def go():
        seen = []
        agen = d.watch()
        first = await asyncio.wait_for(agen.__anext__(), 30)
        seen.append(first)
        assert first.backing_disk_present
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await loop.run_in_executor(None, sh, "losetup", "-d", dev)
        while True:
            st = await asyncio.wait_for(agen.__anext__(), 30)
            seen.append(st)
            if not st.backing_disk_present:
                break
        detach_s = loop.time() - t0
        assert d.disk_events >= 1, "the change must come from the uevent"
        await loop.run_in_executor(None, sh, "losetup", dev, str(img))
        while True:
            st = await asyncio.wait_for(agen.__anext__(), 30)
            if st.backing_disk_present:
                break
        await agen.aclose()
        return detach_s

    detach_s = asyncio.run(go())
    assert d.udev_source in ("udev", "kernel")
    assert detach_s < 20  # seen through the event, not the 600 s probe
    print(f"backing disk detach seen after {detach_s * 1000:.0f} ms via source={d.udev_source}")


def test_the_one_holder_finder_has_a_device_mode_and_a_filesystem_mode(loopdev):
    """procfs.find_holders serves both drivers: a process with the block device
    node itself open keeps DRBD from demoting (device mode, what drbd.find_holders
    and stop_holder_processes use) but does not keep a filesystem on it busy
    (filesystem mode, what the filesystem driver kills before unmounting)."""
    from hasupd.resources import procfs

    dev, _ = loopdev
    rdev = os.stat(dev).st_rdev
    majmin = (os.major(rdev), os.minor(rdev))
    with open(dev, "rb") as f:
        proc = subprocess.Popen(["sleep", "60"], stdin=f)
    try:
        assert f"pid {proc.pid} (sleep)" in drbd.find_holders(dev)
        assert [(h.name, h.how) for h in procfs.find_holders(majmin, device=True) if h.pid == proc.pid] == [
            ("sleep", f"open device {dev}")]
        assert proc.pid not in [h.pid for h in procfs.find_holders(majmin)]
        assert drbd.stop_holder_processes(dev, grace=5.0) == [f"pid {proc.pid} (sleep)"]
        assert proc.wait(timeout=10) == -15
    finally:
        proc.kill()
        proc.wait()
