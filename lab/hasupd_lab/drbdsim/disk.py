"""The local disk of a resource: its meta data (generation UUIDs, disk state,
the image it points at), the loop device published as /dev/drbdN, attach and
detach, and the I/O accounting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets

from hasupd_lab.drbdsim import storage
from hasupd_lab.drbdsim.output import CmdError
from hasupd_lab.drbdsim.render import SYNC_STATES
from hasupd_lab.drbdsim.states import CONSISTENT, DISKLESS, INCONSISTENT, OUTDATED, UPTODATE


class DiskMixin:
    """Part of resource.Res: meta data, backing disk and device."""

    def _load_md(self) -> dict | None:
        try:
            with open(self.md_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def save_md(self) -> None:
        if self.md is None:
            return
        tmp = self.md_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.md, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.md_path)

    def set_disk(self, disk: str) -> None:
        self.disk = disk
        if self.md is not None and disk in (UPTODATE, OUTDATED, INCONSISTENT):
            self.md["disk"] = disk
            self.save_md()

    def new_uuid(self) -> None:
        """A Primary without its peer starts a new data generation (DRBD's drbd_uuid_new_current).
        Callers start one only while the bitmap slot is empty, as 8.4 does: a node already apart
        from its peer keeps the generation it started when they parted."""
        if self.md["bitmap"] is None:
            self.md["bitmap"] = self.md["uuid"]
        self.md["uuid"] = secrets.token_hex(8).upper()
        self.save_md()
        hist = ":".join(h or "0000000000000000" for h in (self.md.get("history") or [None, None])[:2])
        self.log(f"new current UUID {self.md['uuid']}:{self.md['bitmap']}:{hist}", block=True)

    def clear_bitmap_uuid(self) -> None:
        """In sync with the peer again: the bitmap UUID moves into the history (drbd_uuid_set_bm(0))."""
        if self.md["bitmap"] is not None:
            hist = list(self.md.get("history") or [None, None])
            self.md["history"] = [self.md["bitmap"], hist[0]]
            self.md["bitmap"] = None

    def set_primary_indicator(self, primary: bool) -> None:
        """The metadata's "was Primary" flag: still set when a Primary crashed (MDF_PRIMARY_IND)."""
        if self.md is not None and bool(self.md.get("primary_ind")) != primary:
            self.md["primary_ind"] = primary
            self.save_md()

    def both_uptodate(self) -> None:
        """Both disks UpToDate: a crash of the Primary is behind us (8.4 clears CRASHED_PRIMARY)."""
        if self.md is not None and self.md.get("crashed_primary") and self.disk == UPTODATE \
                and self.peer_disk == UPTODATE:
            self.md["crashed_primary"] = False
            self.save_md()

    def fork_image(self) -> None:
        """Promotion away from a peer that may still hold the image: a copy of our own."""
        src = self.md["image"]
        n = self.md.get("forks", 0) + 1
        dst = os.path.join(self.node.cfg.image_dir, f"{self.name}.{self.node.name}.{n}.img")
        if os.path.exists(src):
            storage.copy_image(src, dst)
        else:
            storage.create_image(dst, self.rc.size_mib)
        self.md["forks"] = n
        self.md["image"] = dst
        self.save_md()

    def adopt_image(self, image: str) -> None:
        old = self.md["image"]
        if old == image:
            return
        self.md["image"] = image
        self.save_md()
        if self.loopdev is None and os.path.basename(old).startswith(f"{self.name}.{self.node.name}."):
            with contextlib.suppress(OSError):
                os.unlink(old)  # our own copy; the peer never points at it (it is on `image`)

    def attach_device(self) -> None:
        if self.loopdev is not None:
            return
        image = self.md["image"] if self.md else None
        if (image is None or self.disk != UPTODATE) and self.link is not None \
                and self.peer_disk == UPTODATE and self.peer_hello.get("image"):
            image = self.peer_hello["image"]  # no good local data: I/O goes to the peer's
        if image and not os.path.exists(image):
            storage.create_image(image, self.rc.size_mib)
        self.loopdev = storage.attach_loop(image)
        self.node.track_loop(self.loopdev, add=True)
        self.loop_base = storage.loop_stat(self.loopdev)
        storage.publish_device(self.me.device, self.loopdev)

    def detach_device(self) -> None:
        storage.unpublish_device(self.me.device)
        if self.loopdev is not None:
            self.poll_io()
            storage.detach_loop(self.loopdev)
            self.node.track_loop(self.loopdev, add=False)
            self.loopdev = None

    def held_open(self) -> bool:
        return self.loopdev is not None and storage.held_open(self.loopdev)

    def poll_io(self) -> None:
        """Account the Primary's I/O: counters, replication to the peer, out-of-sync while apart."""
        if self.loopdev is None:
            return
        rd, wr = storage.loop_stat(self.loopdev)
        drd, dwr = max(0, rd - self.loop_base[0]), max(0, wr - self.loop_base[1])
        self.loop_base = (rd, wr)
        if not (drd or dwr):
            return
        self.counters["dr"] += drd
        if dwr:
            self.counters["al"] += 1
            if self.disk != DISKLESS:
                self.counters["dw"] += dwr
            if self.link and self.repl == "Established":
                self.counters["ns"] += dwr
                self.link.send(t="write", kib=dwr)
            elif self.conn != "Connected":
                self.oos = min(self.size_kib, self.oos + dwr)
        self.node.write_status()

    def attach(self) -> None:
        if not self.disk_present():
            raise CmdError(*self.node.render.failure(str(self.minor), 104, "Can not open backing device.",
                                           self.attach_cmd()))
        if self.md is None:
            raise CmdError(f"{self.minor}: Failure: (119) No valid meta-data signature found.\n\n"
                           f"\t==> Use 'drbdadm create-md {self.name}' to initialize meta-data area. <==\n\n"
                           f"Command '{self.attach_cmd()}' terminated with exit code 10\n", 10)
        was_primary_diskless = self.role == "Primary"
        if self.md.get("primary_ind") and self.role != "Primary":
            # it went down as Primary without a demotion: a crash (8.4 sets CRASHED_PRIMARY)
            self.md["crashed_primary"] = True
            self.md["primary_ind"] = False
            self.save_md()
        self.disk = "Attaching"
        self.emit()
        d = self.md["disk"]
        if d == UPTODATE and self.rc.fencing != "dont-care" and not self.md.get("peer_outdated"):
            d = CONSISTENT
        if self.link is not None:
            d = INCONSISTENT if was_primary_diskless else d
        self.disk = d
        if self.md.get("peer_outdated") and self.conn != "Connected":
            self.peer_disk = OUTDATED
        if self.md["disk"] == INCONSISTENT:
            self.oos = self.size_kib
        self.emit()
        if self.link is not None:
            self.send_state()
            if self.peer_disk == UPTODATE and self.disk != UPTODATE:
                self.link.send(t="need_sync")

    def disk_present(self) -> bool:
        if self.disk_backing is None and storage.is_loop(self.me.disk):
            self.disk_backing = storage.loop_backing(self.me.disk)  # learnt while it is there
        return storage.disk_present(self.me.disk, self.disk_backing)

    def attach_cmd(self) -> str:
        fence = " --fencing=resource-only" if self.rc.fencing == "resource-only" else ""
        return f"drbdsetup-84 attach {self.minor} {self.me.disk} {self.me.disk} internal{fence}"

    async def cmd_detach(self, failed: bool = False) -> None:
        if self.disk == DISKLESS:
            return
        if not failed and self.role == "Primary" and not (self.conn == "Connected"
                                                           and self.peer_disk == UPTODATE):
            raise CmdError(*self.node.render.state_change_failed(str(self.minor), -2, "Need access to UpToDate data",
                                                                 f"drbdsetup-84 detach {self.minor}", 17))
        if self.sync_task:
            self.sync_task.cancel()
            self.sync_task = None
        if self.repl in SYNC_STATES:
            self.repl = "Established"
        self.disk = "Failed"
        self.emit()
        self.disk = DISKLESS  # the meta data keeps its disk state; a re-attach on a Primary resyncs
        self.emit()
        if self.link:
            self.send_state()

    async def io_watch(self) -> None:
        """Backing disk gone (loop detached) -> Diskless, like an I/O error; and I/O accounting."""
        while True:
            await asyncio.sleep(0.25)
            self.poll_io()
            if self.disk not in (DISKLESS, "Failed") and not self.disk_present():
                self.log(f"IO ERROR: {self.me.disk} is gone; detaching.", block=True)
                await self.cmd_detach(failed=True)
