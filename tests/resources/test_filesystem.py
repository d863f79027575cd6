"""The filesystem driver against a real ext4 on a loop device, run in a
private mount namespace (a child process under ``unshare --mount``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from hasupd.resources.filesystem import fsck_meaning, top_mount
from hasupd.resources.procfs import parse_mountinfo

try:
    from . import conftest_fv as fv
except ImportError:
    import conftest_fv as fv

PRIVATE_MOUNT_NS = ["unshare", "--mount", "--propagation", "private"]


# ---------------------------------------------------------------- pure parts


def test_parse_mountinfo_unescapes_and_splits_optional_fields():
    text = (
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
        "97 22 7:3 / /mnt/my\\040data ro,nosuid master:2 shared:9 - ext4 /dev/loop3 ro\n"
        "garbage line\n"
        "98 22 0:51 / /mnt/my\\040data rw - tmpfs tmpfs rw,size=1k\n"
    )
    entries = parse_mountinfo(text)
    assert [e.mount_id for e in entries] == [22, 97, 98]
    assert entries[1].mountpoint == "/mnt/my data"
    assert entries[1].dev == (7, 3) and entries[1].fstype == "ext4" and entries[1].source == "/dev/loop3"
    assert entries[1].read_only and not entries[0].read_only
    # the last mount stacked on a directory is the visible one
    assert top_mount(entries, "/mnt/my data").fstype == "tmpfs"
    assert top_mount(entries, "/mnt/other") is None


def test_fsck_exit_codes_explained():
    assert fsck_meaning(0) == "no errors"
    assert fsck_meaning(1) == "errors corrected"
    assert fsck_meaning(4) == "errors left uncorrected"
    assert fsck_meaning(12) == "errors left uncorrected, operational error"


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def disk(tmp_path):
    with fv.loop_ext4(tmp_path) as dev:
        yield dev


@pytest.fixture
def make_fs(tmp_path):
    """make_fs(**params) -> a FilesystemDriver in a child with its own mount namespace."""
    with contextlib.ExitStack() as stack:
        def make(**over):
            params = fv.fs_params(**over)
            return stack.enter_context(fv.driver_in("filesystem", params, PRIVATE_MOUNT_NS))
        yield make


def in_ns(d, *argv, check=True):
    """A command in the driver's mount namespace."""
    return fv.sh("nsenter", f"--target={d.pid}", "--mount", "--", *argv, check=check)


@contextlib.contextmanager
def holder(d, code: str):
    """A process in the driver's mount namespace running ``code``; it prints
    'ready' when it holds the filesystem.  Killed by PID in any case."""
    p = subprocess.Popen(["nsenter", f"--target={d.pid}", "--mount", "--", sys.executable, "-c", code],
                         stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        yield p
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)


def hold_open(path: str, ignore_term: bool = False) -> str:
    return ("import signal, time\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_term else "")
            + f"f = open({path!r}, 'w')\nprint('ready', flush=True)\ntime.sleep(600)\n")


def hold_cwd(path: str) -> str:
    return f"import os, time\nos.chdir({path!r})\nprint('ready', flush=True)\ntime.sleep(600)\n"


# ---------------------------------------------------------------- start / stop / probe / monitor


def test_mount_probe_monitor_unmount(disk, make_fs, tmp_path):
    link = tmp_path / "fv-dev-link"  # the lab's device may be a symlink to the loop device
    link.symlink_to(disk)
    mnt = tmp_path / "data"  # missing: start creates it
    d = make_fs(device=str(link), directory=str(mnt))

    assert d.call("probe")["state"] == "stopped"
    r = d.call("start")
    assert r["ok"], r
    st = d.call("probe")
    assert st["state"] == "started", st
    assert disk in st["detail"]
    assert in_ns(d, "findmnt", "-n", "-o", "SOURCE", str(mnt)).stdout.strip() == disk
    assert fv.sh("findmnt", str(mnt), check=False).returncode != 0  # not seen outside its namespace

    m = d.call("monitor")
    assert m["ok"], m
    assert "probe file ok" in m["message"]
    # the probe file is gone again
    assert in_ns(d, "ls", "-A", str(mnt)).stdout.split() == ["lost+found"]

    again = d.call("start")
    assert again["ok"] and "already mounted" in again["message"]

    r = d.call("stop")
    assert r["ok"], r
    assert r["message"] == f"unmounted {mnt}"
    assert d.call("probe")["state"] == "stopped"
    assert in_ns(d, "findmnt", str(mnt), check=False).returncode != 0
    r = d.call("stop")
    assert r["ok"] and "not mounted" in r["message"]
    m = d.call("monitor")
    assert not m["ok"] and "not mounted" in m["message"]


def test_read_only_mount_is_monitored_by_reading(disk, make_fs, tmp_path):
    d = make_fs(device=disk, directory=str(tmp_path / "ro"), options="ro,noatime")
    assert d.call("start")["ok"]
    opts = in_ns(d, "findmnt", "-n", "-o", "OPTIONS", str(tmp_path / "ro")).stdout.strip()
    assert "ro" in opts.split(",") and "noatime" in opts.split(",")
    m = d.call("monitor")
    assert m["ok"], m
    assert d.call("stop")["ok"]


def test_mount_errors_are_results_with_mounts_own_words(disk, make_fs, tmp_path):
    d = make_fs(device=disk, directory=str(tmp_path / "m"), options="fv_no_such_option")
    r = d.call("start")
    assert not r["ok"]
    assert r["command"][0] == "mount" and r["returncode"] == 32
    assert "bad option" in r["message"] and r["message"].startswith(f"mount {disk} on ")
    assert r["output"] in r["message"]  # the exact mount(8) text

    d2 = make_fs(device=str(tmp_path / "fv-missing-dev"), directory=str(tmp_path / "m"))
    r = d2.call("start")
    assert not r["ok"] and r["errno"] == 2 and "does not exist" in r["message"]
    st = d2.call("probe")
    assert st["state"] == "stopped"

    d3 = make_fs(device=str(tmp_path / "fv-disk.img"), directory=str(tmp_path / "m"))
    r = d3.call("start")
    assert not r["ok"] and "not a block device" in r["message"]


def test_refuses_device_mounted_elsewhere_and_occupied_directory(disk, make_fs, tmp_path):
    d = make_fs(device=disk, directory=str(tmp_path / "data"))
    other = tmp_path / "elsewhere"
    other.mkdir()
    in_ns(d, "mount", disk, str(other))
    r = d.call("start")
    assert not r["ok"]
    assert str(other) in r["message"] and "already mounted" in r["message"]
    assert r["errno"] == 16
    assert d.call("probe")["state"] == "stopped"
    in_ns(d, "umount", str(other))

    (tmp_path / "data").mkdir()
    in_ns(d, "mount", "-t", "tmpfs", "fv-tmpfs", str(tmp_path / "data"))
    r = d.call("start")
    assert not r["ok"] and "fv-tmpfs (tmpfs) mounted on it" in r["message"]
    in_ns(d, "umount", str(tmp_path / "data"))
    assert d.call("start")["ok"]


def test_fsck_before_mount(disk, make_fs, tmp_path):
    d = make_fs(device=disk, directory=str(tmp_path / "data"), fsck=True)
    r = d.call("start")
    assert r["ok"], r
    assert d.call("stop")["ok"]
    # wipe the primary superblock: fsck -p gives up (exit 8), start must refuse
    with open(disk, "r+b") as f:
        f.seek(1024)
        f.write(b"\0" * 1024)
        os.fsync(f.fileno())
    r = d.call("start")
    assert not r["ok"], r
    assert r["command"][:2] == ["fsck", "-p"]
    assert r["returncode"] >= 4
    assert "refusing to mount" in r["message"] and fsck_meaning(r["returncode"]) in r["message"]
    assert d.call("probe")["state"] == "stopped"


# ---------------------------------------------------------------- busy unmount


@pytest.mark.slow
def test_busy_unmount_terms_then_kills_holders(disk, make_fs, tmp_path):
    mnt = tmp_path / "data"
    d = make_fs(device=disk, directory=str(mnt), kill_grace=1.0)
    assert d.call("start")["ok"]
    with holder(d, hold_open(f"{mnt}/held")) as polite, \
            holder(d, hold_open(f"{mnt}/stubborn", ignore_term=True)) as stubborn, \
            holder(d, hold_cwd(str(mnt))) as in_dir:
        t0 = time.monotonic()
        r = d.call("stop")
        took = time.monotonic() - t0
        assert r["ok"], r
        assert polite.wait(timeout=10) == -signal.SIGTERM
        assert in_dir.wait(timeout=10) == -signal.SIGTERM
        assert stubborn.wait(timeout=10) == -signal.SIGKILL
        for p in (polite, stubborn, in_dir):
            assert f"pid {p.pid} " in r["message"]
        assert took >= 1.0  # the stubborn one had its grace before the KILL
        print(f"busy unmount with 3 holders (one ignoring TERM, kill_grace 1s): {took:.2f}s")
    assert d.call("probe")["state"] == "stopped"
    assert d.call("monitor")["ok"] is False


def test_busy_unmount_without_force_names_the_holder(disk, make_fs, tmp_path):
    mnt = tmp_path / "data"
    d = make_fs(device=disk, directory=str(mnt), force_unmount=False)
    assert d.call("start")["ok"]
    with holder(d, hold_open(f"{mnt}/held")) as h:
        r = d.call("stop")
        assert not r["ok"]
        assert r["errno"] == 16 and r["command"] == ["umount", str(mnt)]
        assert f"pid {h.pid} (python" in r["message"] and f"open file {mnt}/held" in r["message"]
        assert "force_unmount is off" in r["message"]
        assert h.poll() is None  # left alone
        assert d.call("probe")["state"] == "started"
    assert d.call("stop")["ok"]


# ---------------------------------------------------------------- watch


def test_watch_sees_external_lazy_umount_at_once(disk, make_fs, tmp_path):
    mnt = tmp_path / "data"
    d = make_fs(device=disk, directory=str(mnt))
    assert d.call("start")["ok"]
    d.watch()
    t0 = time.monotonic()
    in_ns(d, "umount", "-l", str(mnt))
    o = d.next_obs(timeout=5)
    assert o is not None, "no observation after umount -l"
    latency = o["at"] - t0
    print(f"external umount -l seen by watch after {latency * 1000:.1f} ms (incl. starting nsenter+umount)")
    assert o["state"] == "failed" and "unmounted behind our back" in o["detail"]
    assert latency < 1.0
    m = d.call("monitor")
    assert not m["ok"] and "not mounted" in m["message"]

    # mounted again (by us): started; our own stop: stopped, not a failure
    assert d.call("start")["ok"]
    o = d.next_obs(timeout=5)
    assert o is not None and o["state"] == "started"
    assert d.call("stop")["ok"]
    o = d.next_obs(timeout=5)
    assert o is not None and o["state"] == "stopped", o
    assert d.next_obs(timeout=0.3) is None


def test_watch_and_monitor_see_a_read_only_remount(disk, make_fs, tmp_path):
    mnt = tmp_path / "data"
    d = make_fs(device=disk, directory=str(mnt))
    assert d.call("start")["ok"]
    d.watch()
    in_ns(d, "mount", "-o", "remount,ro", str(mnt))  # what errors=remount-ro does to a failing disk
    o = d.next_obs(timeout=5)
    assert o is not None and o["state"] == "failed" and "read-only" in o["detail"]
    m = d.call("monitor")
    assert not m["ok"] and "read-only" in m["message"]
    assert d.call("probe")["state"] == "failed"
    assert d.call("stop")["ok"]


def test_unrelated_mount_changes_are_not_reported(disk, make_fs, tmp_path):
    mnt = tmp_path / "data"
    d = make_fs(device=disk, directory=str(mnt))
    assert d.call("start")["ok"]
    d.watch()
    (tmp_path / "other").mkdir()
    in_ns(d, "mount", "-t", "tmpfs", "fv-other", str(tmp_path / "other"))
    in_ns(d, "umount", str(tmp_path / "other"))
    assert d.next_obs(timeout=0.5) is None
    assert d.call("monitor")["ok"]


@pytest.mark.slow
def test_monitor_bounds_a_hung_probe_file(disk, make_fs, tmp_path):
    mnt = tmp_path / "data"
    d = make_fs(device=disk, directory=str(mnt), timeouts={"start": 30.0, "stop": 30.0, "monitor": 1.0})
    assert d.call("start")["ok"]
    in_ns(d, "fsfreeze", "--freeze", str(mnt))  # writes now block, like a hung disk
    try:
        t0 = time.monotonic()
        m = d.call("monitor")
        took = time.monotonic() - t0
        assert not m["ok"] and m["timed_out"], m
        assert "did not finish within 1s" in m["message"]
        assert took < 5
        m = d.call("monitor")  # the first probe is still stuck: no second one piled on it
        assert not m["ok"] and "still hung" in m["message"]
    finally:
        in_ns(d, "fsfreeze", "--unfreeze", str(mnt))
    assert fv.wait_for(lambda: d.call("monitor")["ok"], 10)
    assert in_ns(d, "ls", "-A", str(mnt)).stdout.split() == ["lost+found"]
    assert d.call("stop")["ok"]


def test_monitor_without_probe_file_checks_the_mount_only(disk, make_fs, tmp_path):
    mnt = tmp_path / "data"
    d = make_fs(device=disk, directory=str(mnt), probe_file=False)
    assert d.call("start")["ok"]
    in_ns(d, "fsfreeze", "--freeze", str(mnt))
    try:
        m = d.call("monitor")
        assert m["ok"] and "probe file" not in m["message"], m
    finally:
        in_ns(d, "fsfreeze", "--unfreeze", str(mnt))
    assert d.call("stop")["ok"]


# ---------------------------------------------------------------- a hostile user owning the mount root


def dropped_to(uid: int, code: str) -> str:
    """Python source that enters the directory argv[1] as root, drops to
    ``uid`` for good (setgroups/setgid/setuid) and runs ``code`` there: the
    user needs no access to the test's private parent directories."""
    return ("import os, sys\n"
            "os.chdir(sys.argv[1])\n"
            f"os.setgroups([]); os.setgid({uid}); os.setuid({uid})\n"
            "assert os.geteuid() != 0\n" + code)


def test_probe_file_never_follows_a_symlink_planted_by_the_mount_owner(disk, make_fs, tmp_path):
    """Issue 16 High 1: uid 33 owns the mount root and points the probe name
    at a root-owned file; the monitor (root) must not truncate or write it."""
    mnt = tmp_path / "data"
    victim = tmp_path / "victim"
    victim.write_text("root's secret\n")
    victim.chmod(0o600)
    d = make_fs(device=disk, directory=str(mnt))
    assert d.call("start")["ok"]
    in_ns(d, "chown", "33:33", str(mnt))  # www-data owns the document root, as on a web server
    probe_name = ".hasupd-probe-" + in_ns(d, "hostname").stdout.strip()
    code = dropped_to(33, f"os.symlink({str(victim)!r}, {probe_name!r})\n")
    in_ns(d, sys.executable, "-c", code, str(mnt))
    assert in_ns(d, "stat", "-c", "%U %F", str(mnt / probe_name)).stdout.split()[0] == "www-data"

    m = d.call("monitor")
    assert victim.read_text() == "root's secret\n", "the monitor wrote through the planted symlink"
    assert m["ok"], m
    assert victim.stat().st_mode & 0o777 == 0o600
    assert d.call("stop")["ok"]
