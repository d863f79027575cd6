"""Loop devices, image files and device nodes for the simulator (root only)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from pathlib import Path

LOOP_MAJOR = 7


def attach_loop(image: str) -> str:
    r = subprocess.run(["losetup", "--find", "--show", image], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise OSError(f"losetup {image}: {r.stderr.strip()}")
    return r.stdout.strip()


def detach_loop(dev: str) -> None:
    subprocess.run(["losetup", "-d", dev], capture_output=True, text=True, timeout=30)


def loop_backing(dev: str) -> str | None:
    """The backing file of /dev/loopN, or None when it is detached (or not a loop)."""
    name = os.path.basename(dev)
    try:
        return Path(f"/sys/block/{name}/loop/backing_file").read_text().strip()
    except OSError:
        return None


def is_loop(path: str) -> bool:
    return path.startswith("/dev/") and os.path.basename(path).startswith("loop")


def disk_present(path: str, backing: str | None = None) -> bool:
    """A loop device counts as present while it is backed (by ``backing`` when given: a
    detached /dev/loopN is soon reused by someone else); other paths while they exist."""
    if is_loop(path):
        now = loop_backing(path)
        return now is not None and (backing is None or now == backing)
    return os.path.exists(path)


def loop_stat(dev: str) -> tuple[int, int]:
    """(KiB read, KiB written) since the loop device was set up."""
    try:
        f = Path(f"/sys/block/{os.path.basename(dev)}/stat").read_text().split()
        return int(f[2]) // 2, int(f[6]) // 2
    except (OSError, IndexError, ValueError):
        return 0, 0


def held_open(dev: str) -> bool:
    """Mounted (or opened exclusively) anywhere, in any mount namespace."""
    try:
        fd = os.open(dev, os.O_RDONLY | os.O_EXCL)
    except OSError as e:
        return e.errno == errno.EBUSY
    os.close(fd)
    return False


def publish_device(path: str, loopdev: str) -> None:
    """A block device node at ``path`` with the loop device's numbers."""
    st = os.stat(loopdev)
    unpublish_device(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    os.mknod(path, stat.S_IFBLK | 0o660, st.st_rdev)


def unpublish_device(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def create_image(path: str, size_mib: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)


def copy_image(src: str, dst: str) -> None:
    """Sparse copy (a 64 MiB image takes well under a second)."""
    tmp = dst + ".tmp"
    r = subprocess.run(["cp", "--sparse=always", "--reflink=auto", src, tmp],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        shutil.copyfile(src, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dst)
