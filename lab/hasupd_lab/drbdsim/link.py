"""The connection of a resource to its peer: connecting (listener on the
acceptor side, connector on the initiator), the handshake, the messages, the
loss of the peer; and ``Link``, one TCP connection of JSON lines with pings."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING

from hasupd_lab.drbdsim.output import CmdError
from hasupd_lab.drbdsim.render import SYNC_STATES
from hasupd_lab.drbdsim.states import CONSISTENT, DISKLESS, INCONSISTENT, OUTDATED, UPTODATE, decide

if TYPE_CHECKING:
    from hasupd_lab.drbdsim.resource import Res


class ConnectionMixin:
    """Part of resource.Res: the peer connection's states and messages."""

    def send_state(self) -> None:
        if self.link is not None:
            self.link.send(t="state", role=self.role, disk=self.disk,
                           image=self.md["image"] if self.md else None)

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
            self.follow_pause()
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
