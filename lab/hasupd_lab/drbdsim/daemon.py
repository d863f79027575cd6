"""The simulated DRBD "kernel module" of one node: state machine, peer link,
command server.  ``python -m hasupd_lab.drbdsim.daemon --node n1 --config SIM.json``.

See the package docstring (lab/hasupd_lab/drbdsim/__init__.py) for the model.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import secrets
import signal
import sys
import time
import traceback

from hasupd_lab.drbdsim import config as simconfig
from hasupd_lab.drbdsim import dialect, generations, storage
from hasupd_lab.drbdsim.render import SYNC_STATES, View

UPTODATE, CONSISTENT, OUTDATED, INCONSISTENT, DISKLESS = (
    "UpToDate", "Consistent", "Outdated", "Inconsistent", "Diskless")
HANDLER_TIMEOUT = 60.0


class CmdError(Exception):
    """A refused command: the exact text DRBD prints (stderr) and its exit code."""

    def __init__(self, text: str, code: int):
        super().__init__(text)
        self.text, self.code = text, code


class Out:
    """What a command prints; events2 streams write straight to the client."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer

    def send(self, **msg) -> None:
        self.writer.write((json.dumps(msg) + "\n").encode())


# ====================================================================== resource


class Res:
    def __init__(self, node: Node, rc: simconfig.SimResource):
        self.node, self.rc = node, rc
        self.name, self.minor = rc.name, rc.minor
        self.up = False
        self.disk = DISKLESS
        self.role = "Secondary"
        self.conn = "StandAlone"
        self.conn_obj = False  # events2 connection/peer-device objects exist
        self.repl = "Off"
        self.peer_role, self.peer_disk = "Unknown", "DUnknown"
        self.user_isp = self.peer_isp = False
        self.counters = {"ns": 0, "nr": 0, "dw": 0, "dr": 0, "al": 0}
        self.oos = 0
        self.sync_total = 0
        self.speed = 0
        self.discard = False
        self.loopdev: str | None = None
        self.loop_base = (0, 0)
        self.link: Link | None = None
        self.peer_hello: dict = {}
        self.pending_promote = False
        self.promote_granted = False  # the peer said yes; not Primary yet
        self.peer_promoting = False  # we said yes to the peer; its state message is on its way
        self.new_uuid_after_fence = False  # resource-and-stonith: NEW_CUR_UUID, made once fence-peer succeeds
        self.tasks: list[asyncio.Task] = []
        self.sync_task: asyncio.Task | None = None
        self.server: asyncio.base_events.Server | None = None
        self.prev: dict = {}
        self.disk_backing: str | None = None  # the file behind a loop-device disk
        self.md_path = os.path.join(node.paths.state_dir, f"{self.name}.md.json")
        self.md = self._load_md()
        self.disk_present()  # learn which file backs the disk while it is there

    # ---------------------------------------------------------------- basics

    @property
    def me(self) -> simconfig.Host:
        return self.rc.me(self.node.name)

    @property
    def peer(self) -> simconfig.Host:
        return self.rc.peer(self.node.name)

    @property
    def initiator(self) -> bool:
        return self.node.name < self.peer.name

    @property
    def size_kib(self) -> int:
        return self.rc.size_mib << 10

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

    def log(self, msg: str, block: bool = False) -> None:
        self.node.log(f"block drbd{self.minor}: {msg}" if block else f"drbd {self.name}: {msg}")

    def view(self) -> View:
        return View(name=self.name, minor=self.minor, role=self.role, disk=self.disk, conn=self.conn,
                    repl=self.repl, peer_role=self.peer_role, peer_disk=self.peer_disk,
                    protocol=self.rc.protocol, user_isp=self.user_isp, peer_isp=self.peer_isp,
                    al_suspended=bool(self.md and self.md.get("fresh")) and self.conn != "Connected"
                    and self.disk == INCONSISTENT,
                    size_kib=self.size_kib if self.disk != DISKLESS else 0, counters=dict(self.counters),
                    oos_kib=self.oos, sync_total_kib=self.sync_total, speed_kib=self.speed,
                    want_kib=self.node.cfg.resync_rate_kib, **self.node.dialect_view(self))

    def emit(self) -> None:
        """Publish what changed since the last call as events2 lines."""
        v = self.view()
        objs = self.node.render.objects(v)
        exists = {"resource": self.up, "device": self.up,
                  "connection": self.up and self.conn_obj, "peer-device": self.up and self.conn_obj,
                  "path": self.up and self.conn_obj}  # path: DRBD 9 only
        events = []
        for obj in self.node.render.OBJECTS:
            keys, fields, stats = objs[obj]
            old = self.prev.get(obj)
            if exists[obj] and old is None:
                events.append(("create", obj, keys, fields, stats))
            elif exists[obj]:
                changed = [kv for kv in fields if dict(old).get(kv[0]) != kv[1]]
                if changed:
                    events.append(("change", obj, keys, changed, stats))
        for obj in reversed(self.node.render.OBJECTS):
            if not exists[obj] and self.prev.get(obj) is not None:
                keys = objs[obj][0]
                events.append(("destroy", obj, keys, [], None))
        self.prev = {obj: objs[obj][1] for obj in self.node.render.OBJECTS if exists[obj]}
        for ev in events:
            self.node.publish(self.name, *ev)
        self.node.write_status()

    def stats_tick(self) -> None:
        """Statistics-only change lines (resync progress) for --statistics streams."""
        objs = self.node.render.objects(self.view())
        keys, _fields, stats = objs["peer-device"]
        self.node.publish(self.name, "change", "peer-device", keys, [], stats, stats_only=True)
        self.node.write_status()

    def helper_event(self, verb: str, helper: str, status: int | None = None, volume: bool = True) -> None:
        keys = list(self.node.render.objects(self.view())["connection"][0])
        if volume:
            keys += [("volume", "0"), ("minor", str(self.minor))]
        fields = [("helper", helper)] + ([("status", str(status))] if status is not None else [])
        self.node.publish(self.name, verb, "helper", keys, fields, None)

    # ---------------------------------------------------------------- handlers

    async def run_handler(self, helper: str, volume: bool = False) -> int:
        """Run a configured handler like DRBD does (env, no arguments); its exit code."""
        cmd = self.rc.handlers.get(helper)
        what = f"/sbin/drbdadm {helper} " + (f"minor-{self.minor}" if volume else self.name)
        self.helper_event("call", helper, volume=volume)
        self.log(f"helper command: {what}", block=volume)
        code = 0
        if cmd:
            env = dict(os.environ, DRBD_RESOURCE=self.name, DRBD_MINOR=str(self.minor),
                       DRBD_PEER=self.peer.name, DRBD_PEERS=self.peer.name,
                       DRBD_PEER_ADDRESS=self.peer.address, DRBD_PEER_AF="ipv4",
                       DRBD_CONF=self.node.cfg.conf_path, DRBD_DONT_WARN_ON_VERSION_MISMATCH="1")
            env["DRBD_MINOR_0"] = str(self.minor)  # per-volume minor, volume 0
            env = dialect.handler_env(self, env, volume)
            try:
                proc = await asyncio.create_subprocess_shell(
                    cmd, env=env, stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
                try:
                    code = await asyncio.wait_for(proc.wait(), HANDLER_TIMEOUT)
                except asyncio.TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    await proc.wait()
                    code = 1
            except OSError:
                code = 1
            code = code if code >= 0 else 1
        self.log(f"helper command: {what} exit code {code} (0x{code << 8:x})", block=volume)
        self.helper_event("response", helper, code << 8, volume=volume)
        return code

    async def fence_peer(self) -> int:
        """fence-peer: 3/4/5/7 -> the peer's disk is marked so; 6 -> outdate myself."""
        code = await self.run_handler("fence-peer")
        if code in (3, 4, 5, 7):
            why = {3: "peer is inconsistent or worse", 4: "peer is outdated", 5: "peer is unreachable",
                   7: "peer was stonithed"}[code]
            self.log(f"fence-peer helper returned {code} ({why})")
            self.peer_disk = INCONSISTENT if code == 3 else OUTDATED
            self.md["peer_outdated"] = True
            self.md["fenced_peer"] = True
            self.save_md()
            if self.new_uuid_after_fence:  # I/O resumes: it was Primary when the link went
                self.new_uuid_after_fence = False
                self.new_uuid()
            self.emit()
        elif code == 6:
            self.log("fence-peer helper returned 6 (peer is primary)")
            self.set_disk(OUTDATED)
            self.emit()
        else:
            self.log(f"fence-peer helper broken, returned {code}")
        return code

    # ---------------------------------------------------------------- disk

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

    # ---------------------------------------------------------------- up/down

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

    def send_state(self) -> None:
        if self.link is not None:
            self.link.send(t="state", role=self.role, disk=self.disk,
                           image=self.md["image"] if self.md else None)

    def disk_present(self) -> bool:
        if self.disk_backing is None and storage.is_loop(self.me.disk):
            self.disk_backing = storage.loop_backing(self.me.disk)  # learnt while it is there
        return storage.disk_present(self.me.disk, self.disk_backing)

    def attach_cmd(self) -> str:
        fence = " --fencing=resource-only" if self.rc.fencing == "resource-only" else ""
        return f"drbdsetup-84 attach {self.minor} {self.me.disk} {self.me.disk} internal{fence}"

    async def cmd_up(self) -> None:
        if self.up:
            raise CmdError(*self.node.render.failure(self.name, 161, "Resource already exists",
                                           f"drbdsetup-84 new-resource {self.name}", 10))
        self.up = True
        self.role, self.disk = "Secondary", DISKLESS
        self.emit()
        self.attach()  # a failure leaves the resource up and Diskless, like drbdadm stops there
        self.start_connecting()

    def start_connecting(self) -> None:
        self.conn_obj = True
        self.conn = "StandAlone"
        self.emit()
        self.conn = "Unconnected"
        self.emit()
        self.conn = "Connecting"
        self.peer_role = "Unknown"
        self.peer_disk = OUTDATED if self.md and self.md.get("peer_outdated") else "DUnknown"
        self.emit()
        if not self.tasks:
            self.tasks = [self.node.spawn(self.listener()), self.node.spawn(self.io_watch())]
            if self.initiator:
                self.tasks.append(self.node.spawn(self.connector()))

    async def to_standalone(self, graceful: bool = True) -> None:
        if self.link is not None:
            link, self.link = self.link, None
            self.conn = "Disconnecting"
            self.emit()
            # with fencing, a graceful disconnect leaves the Secondary Outdated (8.4's conn_try_disconnect)
            fenced = graceful and self.rc.fencing != "dont-care"
            outdate_peer = fenced and self.role == "Primary" and self.peer_role == "Secondary"
            outdate_me = fenced and self.role == "Secondary" and self.peer_role == "Primary" \
                and self.disk in (UPTODATE, CONSISTENT)
            if outdate_me:
                self.set_disk(OUTDATED)
            link.send(t="bye", outdate_you=outdate_peer, outdated=outdate_me)
            await link.close()
            self.on_disconnected(outdate_peer=outdate_peer)
        elif self.conn != "StandAlone":
            self.conn = "Disconnecting"
            self.emit()
        self.conn, self.repl = "StandAlone", "Off"
        self.peer_role = "Unknown"
        self.emit()
        self.conn_obj = False
        self.emit()

    async def cmd_down(self) -> None:
        if not self.up:
            return
        if self.role == "Primary":
            if self.held_open():
                raise CmdError(*self.node.render.state_change_failed(
                    self.name, -12, "Device is held open by someone", f"drbdsetup-84 down {self.name}",
                    11, extra="failed to demote"))
            await self.demote()
        await self.to_standalone()
        await self.stop_tasks()
        if self.disk != DISKLESS:
            self.disk = "Failed"
            self.emit()
            self.disk = DISKLESS
            self.emit()
        self.up = False
        self.user_isp = self.peer_isp = False
        self.emit()

    async def stop_tasks(self) -> None:
        await cancel_all(self.tasks)
        self.tasks = []
        if self.server is not None:
            self.server.close()
            self.server = None

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

    # ---------------------------------------------------------------- roles

    def refuse(self, code: int, text: str, exit_code: int, cmd: str = "primary") -> CmdError:
        return CmdError(*self.node.render.state_change_failed(str(self.minor), code, text,
                                                    f"drbdsetup-84 {cmd} {self.minor}", exit_code))

    async def cmd_primary(self, force: bool) -> None:
        if self.role == "Primary":
            return
        need = self.refuse(-2, "Need access to UpToDate data", 17)
        if self.conn == "Connected" and self.link is not None:
            if self.peer_role == "Primary" or self.peer_promoting:
                raise self.refuse(-1, "Multiple primaries not allowed by config", 11)
            if self.disk != UPTODATE and self.peer_disk != UPTODATE and not force:
                raise need
            if self.disk == DISKLESS and self.peer_disk != UPTODATE:
                raise need
            self.pending_promote = True
            try:
                ok = await self.link.request(t="promote", timeout=5.0)
            finally:
                self.pending_promote = False
            if not ok or self.link is None:
                self.promote_granted = False
                raise self.refuse(-1, "Multiple primaries not allowed by config", 11)
            start_full_sync = False
            # --force only overrides a refusal: with an UpToDate peer the data is reachable anyway
            if force and self.disk in (INCONSISTENT, OUTDATED, CONSISTENT) and self.peer_disk != UPTODATE:
                self.md["uuid"] = secrets.token_hex(8).upper()
                self.md["bitmap"] = None
                self.md["fresh"] = False
                self.set_disk(UPTODATE)
                start_full_sync = self.peer_disk != UPTODATE
            try:
                self.attach_device()
                self.role = "Primary"
                self.set_primary_indicator(True)
            finally:
                self.promote_granted = False
            self.emit()
            self.send_state()
            if start_full_sync:
                self.start_sync_source(self.size_kib)
            return
        # not connected
        if self.disk == DISKLESS:
            raise need
        if force:
            self.md["fresh"] = False
            self.set_disk(UPTODATE)
        else:
            if self.disk in (INCONSISTENT, OUTDATED):
                raise need
            peer_ok = self.peer_disk in (OUTDATED, INCONSISTENT, DISKLESS)
            if self.rc.fencing != "dont-care" and not peer_ok:
                code = await self.fence_peer()
                if code == 6:
                    raise need
                if code not in (3, 4, 5, 7):
                    raise self.refuse(-7, "Refusing to be Primary while peer is not outdated", 11)
                if self.link is not None:  # the peer came back while the handler ran
                    return await self.cmd_primary(force)
            elif self.disk == CONSISTENT and not peer_ok:
                raise need
            if self.disk == CONSISTENT:
                self.disk = UPTODATE
        if self.md["bitmap"] is None or force:
            self.new_uuid()
        self.fork_image()
        self.attach_device()
        self.role = "Primary"
        self.set_primary_indicator(True)
        self.emit()

    async def demote(self) -> None:
        self.detach_device()
        self.role = "Secondary"
        self.set_primary_indicator(False)
        self.emit()
        if self.link:
            self.send_state()

    async def cmd_secondary(self) -> None:
        if self.role != "Primary":
            return
        if self.held_open():
            raise self.refuse(-12, "Device is held open by someone", 11, cmd="secondary")
        await self.demote()

    def cmd_outdate(self) -> None:
        if self.disk in (OUTDATED, INCONSISTENT, DISKLESS):
            return
        if self.conn == "Connected":
            raise self.refuse(-15, "Refusing to be Outdated while Connected", 17, cmd="outdate")
        if self.role == "Primary":
            raise self.refuse(-2, "Need access to UpToDate data", 17, cmd="outdate")
        self.set_disk(OUTDATED)
        self.log("disk( UpToDate -> Outdated ) ", block=True)
        self.emit()

    # ---------------------------------------------------------------- network

    async def listener(self) -> None:
        """Accept the peer's connection (the acceptor side) while up."""
        while self.server is None:
            try:
                self.server = await asyncio.start_server(self.on_accept, self.me.address, self.rc.port,
                                                         reuse_address=True)
            except OSError:
                await asyncio.sleep(1.0)
        await asyncio.Event().wait()

    async def on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.initiator or self.conn != "Connecting" or self.link is not None:
            writer.close()
            return
        await self.run_link(reader, writer)

    async def connector(self) -> None:
        while True:
            if self.conn == "Connecting" and self.link is None:
                try:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(
                        self.peer.address, self.rc.port, local_addr=(self.me.address, 0)),
                        max(1.0, self.rc.ping_timeout))
                except (OSError, asyncio.TimeoutError):
                    pass
                else:
                    await self.run_link(reader, writer)
            await asyncio.sleep(self.rc.connect_int)

    def hello(self) -> dict:
        md = self.md or {}
        return {"t": "hello", "node": self.node.name, "uuid": md.get("uuid"), "bitmap": md.get("bitmap"),
                "history": md.get("history"), "crashed": bool(md.get("crashed_primary")),
                "disk": self.disk, "role": self.role, "discard": self.discard, "image": md.get("image"),
                "oos": self.oos, "fresh": bool(md.get("fresh")), "attached": self.loopdev is not None}

    async def run_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._run_link(reader, writer)
        except Exception:  # a simulator bug: keep the connector alive
            self.node.internal_error("peer link")
            if self.link is not None and self.link.writer is writer:
                self.link = None
                self.conn = "Connecting"
                self.emit()
            writer.close()

    async def _run_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = Link(self, reader, writer)
        sent = self.hello()
        link.send(**sent)
        try:
            line = await asyncio.wait_for(reader.readline(), max(2.0, 2 * self.rc.ping_timeout))
            peer = json.loads(line)
            assert peer.get("t") == "hello"
        except (asyncio.TimeoutError, OSError, ValueError, AssertionError):
            await link.close()
            return
        if self.conn != "Connecting" or self.link is not None:
            await link.close()
            return
        self.link = link
        self.peer_hello = peer
        self.new_uuid_after_fence = False  # connected again while frozen: I/O resumes, nothing was written
        self.conn = "Connected"
        self.emit()
        self.log("Handshake successful: Agreed network protocol version 101")
        outcome = await self.handshake(sent, peer)
        if outcome is None:
            return
        link.start()
        reason = await link.wait_closed()
        if self.link is link:
            self.link = None
            await self.lost_connection(reason, outdate_me=link.bye_outdate,
                                       peer_outdated=link.bye_peer_outdated)

    async def handshake(self, mine: dict, peer: dict) -> str | None:
        # decided on exactly the two hellos exchanged: both sides reach the same verdict
        a, b = sorted([mine, peer], key=lambda h: h["node"])
        outcome, source, amount = decide(a, b)
        self.peer_role = peer["role"]
        self.peer_disk = peer["disk"]
        if outcome in ("split-brain", "unrelated", "target-primary"):
            await self.split_brain(outcome)
            return None
        self.discard = False
        if self.md:
            self.md["peer_outdated"] = False
            self.md["fresh"] = self.md.get("fresh") and peer.get("fresh")
            self.save_md()
        if outcome == "sync" and source == self.node.name:
            self.peer_disk = INCONSISTENT if self.peer_disk != DISKLESS else DISKLESS
            self.repl = "Established"
            self.emit()
            self.start_sync_source(amount)
        elif outcome == "sync":
            self.repl = "WFBitMapT"
            self.peer_disk = peer["disk"] if peer["disk"] != CONSISTENT else UPTODATE
            self.set_disk(INCONSISTENT)
            self.emit()
        else:
            self.repl = "Established"
            if self.disk == CONSISTENT and peer["disk"] in (UPTODATE, CONSISTENT):
                self.set_disk(UPTODATE)
            if self.peer_disk == CONSISTENT and self.disk in (UPTODATE, CONSISTENT):
                self.peer_disk = UPTODATE
            if self.md and self.disk == UPTODATE:
                self.clear_bitmap_uuid()
                self.oos = 0
                self.save_md()
            self.both_uptodate()
            self.emit()
            if self.md and self.md.get("fenced_peer") and self.peer_disk == UPTODATE:
                self.md["fenced_peer"] = False
                self.save_md()
                self.node.spawn(self.run_handler("unfence-peer"))
        return outcome

    async def split_brain(self, outcome: str) -> None:
        link, self.link = self.link, None
        if outcome == "split-brain":
            await self.run_handler("initial-split-brain", volume=True)
            self.log("Split-Brain detected but unresolved, dropping connection!", block=True)
            self.conn = "NetworkFailure"
            self.peer_role, self.peer_disk = "Unknown", "DUnknown"
            self.emit()
            await self.run_handler("split-brain", volume=True)
        elif outcome == "target-primary":
            self.log("I shall become SyncTarget, but I am primary!", block=True)
        else:
            self.log("Unrelated data, aborting!", block=True)
        if link:
            await link.close()
        self.conn = "Disconnecting"
        self.emit()
        self.conn, self.repl, self.peer_role, self.peer_disk = "StandAlone", "Off", "Unknown", "DUnknown"
        self.emit()
        self.conn_obj = False
        self.emit()

    def start_sync_source(self, amount: int) -> None:
        amount = max(0, min(amount, self.size_kib))
        self.oos = amount
        self.sync_total = amount
        self.link.send(t="sync_start", total=amount, uuid=self.md["uuid"], image=self.md["image"],
                       history=self.md.get("history"))
        self.peer_disk = INCONSISTENT
        self.repl = "SyncSource"
        self.emit()
        self.sync_task = self.node.spawn(self.sync_run())

    async def sync_run(self) -> None:
        cfg = self.node.cfg
        duration = max(cfg.resync_min_s, self.sync_total / max(cfg.resync_rate_kib, 1))
        rate = self.sync_total / duration
        self.speed = int(rate)
        last = time.monotonic()
        while self.oos > 0:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            if not (self.user_isp or self.peer_isp):
                self.oos = max(0, int(self.oos - rate * (now - last)))
            last = now
            if self.link is None:
                return
            self.link.send(t="sync", left=self.oos)
            self.stats_tick()
        self.clear_bitmap_uuid()
        self.save_md()
        self.link.send(t="sync_done", uuid=self.md["uuid"], history=self.md.get("history"))
        self.sync_done_source()

    def sync_done_source(self) -> None:
        self.sync_task = None
        self.repl, self.peer_disk, self.sync_total, self.speed = "Established", UPTODATE, 0, 0
        self.log("Resync done (total 1 sec; paused 0 sec; 0 K/sec)", block=True)
        self.both_uptodate()
        self.emit()
        if self.rc.fencing != "dont-care" and self.md.get("fenced_peer"):
            self.md["fenced_peer"] = False
            self.save_md()
            self.node.spawn(self.run_handler("unfence-peer"))

    def on_message(self, m: dict) -> None:
        t = m.get("t")
        if t == "state":
            self.peer_role, self.peer_disk = m["role"], m["disk"]
            self.peer_promoting = False
            if m.get("image"):
                self.peer_hello["image"] = m["image"]
            if m["disk"] == DISKLESS and self.repl in SYNC_STATES:  # resync aborted by the peer
                if self.sync_task:
                    self.sync_task.cancel()
                    self.sync_task = None
                self.repl, self.sync_total, self.speed = "Established", 0, 0
            self.emit()
        elif t == "write":
            self.counters["nr"] += m["kib"]
            if self.disk != DISKLESS:
                self.counters["dw"] += m["kib"]
            self.node.write_status()
        elif t == "sync_start":
            self.oos = self.sync_total = m["total"]
            self.speed = min(self.node.cfg.resync_rate_kib,
                             int(m["total"] / max(self.node.cfg.resync_min_s, 0.001)))
            if self.md is not None:
                self.md["uuid"], self.md["bitmap"] = m["uuid"], None
                self.md["history"] = m.get("history")
                if self.loopdev is None:
                    self.adopt_image(m["image"])
            self.set_disk(INCONSISTENT)
            self.repl = "SyncTarget" if not (self.user_isp or self.peer_isp) else "PausedSyncT"
            self.peer_disk = UPTODATE
            self.emit()
        elif t == "sync":
            self.counters["nr"] += max(0, self.oos - m["left"])
            self.counters["dw"] += max(0, self.oos - m["left"])
            self.oos = m["left"]
            self.stats_tick()
        elif t == "sync_done":
            self.oos, self.sync_total, self.speed = 0, 0, 0
            self.md["fresh"] = False
            self.md["history"] = m.get("history")
            self.set_disk(UPTODATE)
            self.repl = "Established"
            self.log("Resync done (total 1 sec; paused 0 sec; 0 K/sec)", block=True)
            self.both_uptodate()
            self.emit()
        elif t == "need_sync":
            if self.disk == UPTODATE and self.repl == "Established":
                self.start_sync_source(self.size_kib)
        elif t == "pause":
            self.peer_isp = m["on"]
            if self.repl in SYNC_STATES:
                src = self.repl in ("SyncSource", "PausedSyncS")
                paused = self.user_isp or self.peer_isp
                self.repl = ("PausedSyncS" if src else "PausedSyncT") if paused else (
                    "SyncSource" if src else "SyncTarget")
            self.emit()

    def on_request(self, m: dict) -> bool:
        """The peer asks to become Primary: single-primary is decided here, in the
        order the two requests cross (the node whose name sorts first wins a tie)."""
        if m.get("t") == "promote":
            if self.role == "Primary" or self.promote_granted:
                return False
            if self.pending_promote and self.node.name < self.peer.name:
                return False
            self.peer_promoting = True  # until its next state message
            return True
        return False

    def on_disconnected(self, outdate_peer: bool = False) -> None:
        """Common part of losing the peer: the Primary starts a new generation."""
        self.peer_promoting = False
        if self.sync_task:
            self.sync_task.cancel()
            self.sync_task = None
        self.speed = 0
        if self.role == "Primary" and self.md is not None and self.md["bitmap"] is None \
                and self.disk == UPTODATE:
            if self.rc.fencing == "resource-and-stonith" and not (outdate_peer or self.md.get("peer_outdated")):
                # DRBD 8.4 freezes I/O and defers the new current UUID until
                # fence-peer succeeds: a Primary fenced while frozen wrote nothing
                self.new_uuid_after_fence = True
            else:
                self.new_uuid()
        if outdate_peer and self.md is not None:
            self.md["peer_outdated"] = True
            self.save_md()

    async def lost_connection(self, reason: str, outdate_me: bool = False,
                              peer_outdated: bool = False) -> None:
        peer_was_primary = self.peer_role == "Primary"
        if reason == "ping":
            self.log("PingAck did not arrive in time.")
        self.conn = "TearDown" if reason == "bye" else "NetworkFailure"
        self.peer_role, self.peer_disk = "Unknown", "DUnknown"
        self.repl = "Off"
        self.emit()
        self.on_disconnected()
        if outdate_me and peer_was_primary and self.disk in (UPTODATE, CONSISTENT):
            self.set_disk(OUTDATED)
        if peer_outdated and self.md is not None:
            self.md["peer_outdated"] = True
            self.save_md()
        self.conn = "Unconnected"
        self.emit()
        self.conn = "Connecting"
        if self.md and self.md.get("peer_outdated"):
            self.peer_disk = OUTDATED
        self.emit()
        if self.role == "Primary" and self.rc.fencing != "dont-care" and self.peer_disk != OUTDATED \
                and self.disk == UPTODATE:
            # in its own task: reconnecting goes on while the handler runs
            self.node.spawn(self.fence_peer())

    async def cmd_connect(self, discard: bool) -> None:
        if self.conn != "StandAlone":
            raise CmdError(*self.node.render.failure(
                self.name, 102, "Local address(port) already in use.",
                f"drbdsetup-84 connect {self.name} ipv4:{self.me.address}:{self.rc.port} "
                f"ipv4:{self.peer.address}:{self.rc.port}", 10))
        self.discard = discard
        self.start_connecting()

    def set_pause(self, on: bool) -> None:
        self.user_isp = on
        if self.repl in SYNC_STATES:
            src = self.repl in ("SyncSource", "PausedSyncS")
            paused = self.user_isp or self.peer_isp
            self.repl = ("PausedSyncS" if src else "PausedSyncT") if paused else (
                "SyncSource" if src else "SyncTarget")
        if self.link:
            self.link.send(t="pause", on=on)
        self.emit()


async def cancel_all(tasks: list[asyncio.Task]) -> None:
    """Cancel and reap; re-cancel a task that swallowed its cancellation."""
    pending = [t for t in tasks if t is not asyncio.current_task()]
    for _ in range(5):
        pending = [t for t in pending if not t.done()]
        if not pending:
            return
        for t in pending:
            t.cancel()
        await asyncio.wait(pending, timeout=1.0)


def decide(a: dict, b: dict) -> tuple[str, str | None, int]:
    """The sync handshake (DRBD's uuid_compare, simplified), symmetric: both
    sides compute it from the two hellos sorted by node name.  Returns
    (outcome, source node, KiB to resync); outcome in
    none|sync|split-brain|unrelated|target-primary."""
    outcome, source, amount = _compare(a, b)
    if outcome == "sync":
        src, tgt = (a, b) if source == a["node"] else (b, a)
        if tgt.get("role") == "Primary" and tgt.get("image") != src.get("image"):
            return "target-primary", None, 0  # its mounted data cannot be replaced under it
    return outcome, source, amount


def _compare(a: dict, b: dict) -> tuple[str, str | None, int]:
    """DRBD 8.4's drbd_uuid_compare + drbd_sync_handshake (generations.py) from a's side."""
    full = 1 << 62
    if a["disk"] == DISKLESS or b["disk"] == DISKLESS:
        return "none", None, 0
    hg, _rule = generations.compare(
        generations.of_md(a), generations.of_md(b), me_crashed_primary=bool(a.get("crashed")),
        peer_flags=generations.FLAG_CRASHED_PRIMARY if b.get("crashed") else 0,
        me_primary=a.get("role") == "Primary", peer_primary=b.get("role") == "Primary")
    hg = generations.handshake(hg, a["disk"], b["disk"], bool(a["discard"]),
                               generations.FLAG_DISCARD_MY_DATA if b["discard"] else 0)
    if hg == 0:
        return "none", None, 0
    if generations.is_split_brain(hg):
        return "split-brain", None, 0
    if abs(hg) not in (1, 2):
        return "unrelated", None, 0
    src = a if hg > 0 else b
    # a bitmap-based resync copies what either side wrote while apart (both bitmaps are merged)
    return "sync", src["node"], full if abs(hg) == 2 else max(a.get("oos", 0), b.get("oos", 0), 4)


# ====================================================================== peer link


class Link:
    """One TCP connection to the peer: JSON lines, pings, requests."""

    def __init__(self, res: Res, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.res, self.reader, self.writer = res, reader, writer
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()
        self.tasks: list[asyncio.Task] = []
        self.waiting: dict[int, asyncio.Future] = {}
        self.seq = 0
        self.bye_outdate = self.bye_peer_outdated = False

    def send(self, **msg) -> None:
        if self.writer.is_closing():
            return
        with contextlib.suppress(Exception):
            self.writer.write((json.dumps(msg) + "\n").encode())

    def start(self) -> None:
        self.tasks = [self.res.node.spawn(self.pinger()), self.res.node.spawn(self.receiver())]

    def finish(self, reason: str) -> None:
        if not self.done.done():
            self.done.set_result(reason)

    async def wait_closed(self) -> str:
        reason = await self.done
        await self.close(cancel_self=False)
        return reason

    async def close(self, cancel_self: bool = True) -> None:
        self.finish("closed")
        me = asyncio.current_task()
        for t in self.tasks:
            if t is not me:
                t.cancel()
        for f in self.waiting.values():
            if not f.done():
                f.set_result(False)
        self.writer.close()  # not waited for: asyncio.wait_for may swallow a cancellation (3.11)

    async def pinger(self) -> None:
        while True:
            await asyncio.sleep(self.res.rc.ping_int)
            self.send(t="ping")

    async def request(self, timeout: float, **msg) -> bool:
        self.seq += 1
        fut = asyncio.get_running_loop().create_future()
        self.waiting[self.seq] = fut
        self.send(req=self.seq, **msg)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self.waiting.pop(self.seq, None)

    async def receiver(self) -> None:
        res = self.res
        limit = res.rc.ping_int + res.rc.ping_timeout
        loop = asyncio.get_running_loop()
        last_rx = loop.time()
        try:
            while True:
                line = await asyncio.wait_for(self.reader.readline(), limit)
                if not line:
                    # EOF without a goodbye: the peer's processes were killed, a crash.  A
                    # crashed machine sends no FIN, so notice it the way DRBD does: when
                    # the pings stop being answered.
                    await asyncio.sleep(max(0.0, last_rx + limit - loop.time()))
                    self.finish("ping")
                    return
                last_rx = loop.time()
                m = json.loads(line)
                t = m.get("t")
                if t == "ping":
                    self.send(t="pong")
                elif t == "pong":
                    pass
                elif t == "bye":
                    self.bye_outdate = bool(m.get("outdate_you"))
                    self.bye_peer_outdated = bool(m.get("outdated"))
                    self.finish("bye")
                    return
                elif "req" in m:
                    self.send(ans=m["req"], ok=res.on_request(m))
                elif "ans" in m:
                    f = self.waiting.get(m["ans"])
                    if f and not f.done():
                        if m["ok"] and res.pending_promote:
                            res.promote_granted = True  # before the next request is answered
                        f.set_result(bool(m["ok"]))
                else:
                    res.on_message(m)
        except asyncio.TimeoutError:
            self.finish("ping")
        except (OSError, ValueError):
            self.finish("eof")
        except Exception:  # a simulator bug: drop the link (it reconnects) and say why
            self.res.node.internal_error("peer link receiver")
            self.finish("eof")


# ====================================================================== node


class Node:
    def __init__(self, cfg: simconfig.SimConfig, name: str, module: str, minor_count: int = 32,
                 drbd_version: str = "8.4"):
        self.cfg, self.name = cfg, name
        self.drbd_version = drbd_version  # "8.4" | "9": what the node prints (render / render9)
        self.render = dialect.renderer(drbd_version, {r.minor: r.name for r in cfg.resources})
        self.paths = cfg.node(name)
        self.module = module  # missing | available | loaded
        self.minor_count = minor_count
        os.makedirs(self.paths.state_dir, exist_ok=True)
        os.makedirs(cfg.image_dir, exist_ok=True)
        self.resources = {r.name: Res(self, r) for r in cfg.resources if any(h.name == name for h in r.hosts)}
        self.subscribers: list[tuple[Out, str | None, bool, bool]] = []
        self.logf = open(os.path.join(self.paths.state_dir, "kern.log"), "a", buffering=1)
        self.t0 = time.monotonic()
        self.lock = asyncio.Lock()
        self.loops_path = os.path.join(self.paths.state_dir, "loops")
        self.background: set[asyncio.Task] = set()

    def dialect_view(self, r: Res) -> dict:
        return dialect.view_fields(self.drbd_version, r)

    def reload(self) -> None:
        """Re-read the sim config: fencing, handlers, ping and rates apply from now on."""
        try:
            cfg = simconfig.load(self.cfg.path)
        except simconfig.SimConfigError as e:
            self.log(f"drbdsim: config not reloaded: {e}")
            return
        self.cfg = cfg
        for rc in cfg.resources:
            if rc.name in self.resources:
                self.resources[rc.name].rc = rc

    def spawn(self, coro) -> asyncio.Task:
        t = asyncio.create_task(coro)
        self.background.add(t)
        t.add_done_callback(self._task_done)
        return t

    def _task_done(self, t: asyncio.Task) -> None:
        self.background.discard(t)
        if not t.cancelled() and t.exception() is not None:
            self.internal_error(f"task {t.get_coro().__qualname__}", t.exception())

    def internal_error(self, where: str, exc: BaseException | None = None) -> None:
        """Log a simulator bug to stderr (daemon.log) and kern.log, where test failures show it."""
        text = "".join(traceback.format_exception(exc)) if exc else traceback.format_exc()
        sys.stderr.write(f"drbdsim: internal error in {where}:\n{text}")
        sys.stderr.flush()
        self.log(f"drbdsim: INTERNAL ERROR in {where}: {text.strip().splitlines()[-1]}")

    def log(self, msg: str) -> None:
        self.logf.write(f"[{time.monotonic() - self.t0:12.6f}] {msg}\n")

    def publish(self, resname: str, verb: str, obj: str, keys, fields, stats, stats_only: bool = False) -> None:
        now = None
        for out, filt, statistics, timestamps in list(self.subscribers):
            if filt not in (None, "all", resname):
                continue
            if stats_only and not statistics:
                continue
            line = self.render.event_line(verb, obj, keys, fields, stats if statistics else None)
            if timestamps:
                now = now or datetime.datetime.now(datetime.timezone.utc).isoformat()
                line = f"{now} {line}"
            try:
                out.send(out=line + "\n")
            except Exception:
                pass

    def write_status(self) -> None:
        path = self.paths.status_path
        dialect.write_roles(self)
        if self.module != "loaded":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        text = self.render.proc_drbd([r.view() for r in self.resources.values() if r.up])
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    def track_loop(self, dev: str, add: bool) -> None:
        loops = set(self._loops())
        (loops.add if add else loops.discard)(dev)
        with open(self.loops_path, "w") as f:
            f.write("".join(f"{d}\n" for d in sorted(loops)))

    def _loops(self) -> list[str]:
        try:
            with open(self.loops_path) as f:
                return [x.strip() for x in f if x.strip()]
        except OSError:
            return []

    def cleanup_stale_loops(self) -> None:
        """After a crash (daemon killed) our old loop devices may remain: drop the unused ones."""
        images = os.path.realpath(self.cfg.image_dir) + "/"
        for dev in self._loops():
            backing = storage.loop_backing(dev) or ""
            if backing.startswith(images) and not storage.held_open(dev):  # still ours, unused
                storage.detach_loop(dev)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.loops_path)
        for r in self.resources.values():
            storage.unpublish_device(r.me.device)

    async def shutdown(self) -> None:
        for r in self.resources.values():
            if r.link:
                await r.link.close()
            await r.stop_tasks()
            if r.loopdev and not r.held_open():
                r.detach_device()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.status_path)


async def serve(node: Node) -> None:
    from hasupd_lab.drbdsim import commands  # imports this module's classes
    sock = node.paths.socket
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        out = Out(writer)
        try:
            req = json.loads(await reader.readline())
            rc = await commands.dispatch(node, req, out, reader)
        except (ValueError, KeyError) as e:
            out.send(err=f"drbdsim: bad request: {e}\n")
            rc = 20
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except Exception as e:  # a simulator bug: say so instead of hanging the client
            node.internal_error(f"command {req!r}")
            out.send(err=f"drbdsim: internal error: {e!r}\n")
            rc = 20
        with contextlib.suppress(Exception):
            out.send(rc=rc)
            await writer.drain()
            writer.close()

    server = await asyncio.start_unix_server(handle, sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def dump_tasks() -> None:  # kill -USR1: where is every task (debugging)
        for t in asyncio.all_tasks():
            t.print_stack(file=sys.stderr)
        sys.stderr.flush()

    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    node.write_status()
    async with server:
        await stop.wait()
    await node.shutdown()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="drbdsim-daemon", description="simulated DRBD 8.4 node")
    ap.add_argument("--node", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--module", choices=("missing", "available", "loaded"), default="available")
    ap.add_argument("--minor-count", type=int, default=32)
    ap.add_argument("--drbd-version", choices=dialect.VERSIONS, default="8.4")
    a = ap.parse_args(argv)
    try:
        cfg = simconfig.load(a.config)
        node = Node(cfg, a.node, a.module, a.minor_count, a.drbd_version)
    except simconfig.SimConfigError as e:
        print(f"drbdsim: {e}", file=sys.stderr)
        return 78
    node.cleanup_stale_loops()
    asyncio.run(serve(node))
    return 0


if __name__ == "__main__":
    # run the package module, not a second copy named __main__ (commands imports it)
    from hasupd_lab.drbdsim import daemon as _daemon

    sys.exit(_daemon.main())
