"""One simulated DRBD resource on one node: its state and the events2 lines its
changes publish.  The concerns live in the mixins (disk, roles, link, resync,
handlers); this class holds the state they share and brings a resource up
and down."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from hasupd_lab.drbdsim import config as simconfig
from hasupd_lab.drbdsim.disk import DiskMixin
from hasupd_lab.drbdsim.handlers import HandlersMixin
from hasupd_lab.drbdsim.link import ConnectionMixin, Link
from hasupd_lab.drbdsim.output import CmdError
from hasupd_lab.drbdsim.render import View
from hasupd_lab.drbdsim.resync import ResyncMixin
from hasupd_lab.drbdsim.roles import RolesMixin
from hasupd_lab.drbdsim.states import DISKLESS, INCONSISTENT

if TYPE_CHECKING:
    from hasupd_lab.drbdsim.node import Node


class Res(DiskMixin, RolesMixin, ConnectionMixin, ResyncMixin, HandlersMixin):
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

    async def cmd_up(self) -> None:
        if self.up:
            raise CmdError(*self.node.render.failure(self.name, 161, "Resource already exists",
                                           f"drbdsetup-84 new-resource {self.name}", 10))
        self.up = True
        self.role, self.disk = "Secondary", DISKLESS
        self.emit()
        self.attach()  # a failure leaves the resource up and Diskless, like drbdadm stops there
        self.start_connecting()

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
