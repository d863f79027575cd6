"""`hasupd-lab down` leaves no loop device behind, also where /run is a tmpfs of
its own (every Debian machine with systemd; not this workplace's machines, where
/run is a directory of /).  The simulator attaches its loop devices inside a
node's mount namespace, whose copy of that tmpfs is out of the host's reach, so
the kernel names their backing files from the tmpfs's root (/hasupd-lab/...),
not from / (/run/hasupd-lab/...): a cleanup that matched paths missed them all,
and a fresh machine kept ~40 loop devices per `make test`."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from hasupd_lab import cluster
from hasupd_lab.cluster import Lab


def loops_backed_by(device: int) -> list[str]:
    """Loop devices whose backing file lies on the filesystem `device` (st_dev)."""
    out = subprocess.run(["losetup", "--list", "--json", "--output", "NAME,BACK-MAJ:MIN"],
                         capture_output=True, text=True, check=True).stdout
    want = f"{os.major(device)}:{os.minor(device)}"
    loops = json.loads(out).get("loopdevices", []) if out.strip() else []
    return [d["name"] for d in loops if str(d.get("back-maj:min") or "").strip() == want]


def test_down_detaches_every_loop_device_when_the_lab_root_is_its_own_tmpfs(monkeypatch):
    # a short path: the simulator's sockets live below it (107 bytes at most)
    root = Path(tempfile.mkdtemp(prefix="hl-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(root)], check=True)
    try:
        device = os.stat(root).st_dev
        monkeypatch.setattr(cluster, "RUN_ROOT", root)
        monkeypatch.setenv("HASUPD_LAB_ROOT", str(root))
        lab = Lab(f"x{os.getpid() % 100000:05d}")  # its own prefix: not one of make_lab's
        try:
            lab.up()  # the daemons bring DRBD up: the simulator attaches its image in n1's namespace
            deadline = time.monotonic() + 60
            while len(loops_backed_by(device)) < 3 and time.monotonic() < deadline:
                time.sleep(0.2)
            # two backing disks (attached by the harness) and the DRBD image of the Primary
            assert len(loops_backed_by(device)) >= 3, "the simulator attached no image: nothing tested"
            # and an image that a rebooted simulator replaced: attached in n2's namespace, then deleted
            stale = lab.dir / "drbd" / "images" / "r0.n2.stale.img"
            with open(stale, "wb") as f:
                f.truncate(8 << 20)
            attached = lab.exec("n2", ["losetup", "--find", "--show", str(stale)], capture_output=True, text=True)
            assert attached.returncode == 0, attached.stderr
            stale.unlink()
        finally:
            lab.down()
        assert loops_backed_by(device) == []
    finally:
        for dev in loops_backed_by(os.stat(root).st_dev):  # what a failed cleanup left
            subprocess.run(["losetup", "-d", dev], check=False)
        subprocess.run(["umount", "-l", str(root)], check=False)
        root.rmdir()
