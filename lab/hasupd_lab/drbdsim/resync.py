"""The resync of a resource, source side, and pausing it (``pause-sync``)."""

from __future__ import annotations

import asyncio
import time

from hasupd_lab.drbdsim.render import SYNC_STATES
from hasupd_lab.drbdsim.states import INCONSISTENT, UPTODATE


class ResyncMixin:
    """Part of resource.Res: the SyncSource's run and the pause flags."""

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

    def set_pause(self, on: bool) -> None:
        self.user_isp = on
        self.follow_pause()
        if self.link:
            self.link.send(t="pause", on=on)
        self.emit()

    def follow_pause(self) -> None:
        """A pause flag (ours or the peer's) changed: a running resync pauses or resumes."""
        if self.repl in SYNC_STATES:
            src = self.repl in ("SyncSource", "PausedSyncS")
            paused = self.user_isp or self.peer_isp
            self.repl = ("PausedSyncS" if src else "PausedSyncT") if paused else (
                "SyncSource" if src else "SyncTarget")
