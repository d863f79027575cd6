"""The control socket served by the daemon.

A UNIX stream socket (mode 0660, group ``control_group`` when it exists,
else root).  Each caller is identified with SO_PEERCRED: read-only
commands are for root and members of the control group, changing commands
for root only.  The engine supplies ``handler(cmd, args, peer)``; a bad
request or a failing handler gets an error response, never kills the server.

Anyone in the control group is hostile input to a root daemon: connections
are capped per uid and in all (root has slots of its own, so an operator
always gets in), and a client that sends no request, or does not read its
answer, for ``idle_timeout`` seconds is disconnected.  Idle connections
cannot use up the daemon's open files.
"""

from __future__ import annotations

import asyncio
import grp
import os
import socket
import struct
from typing import Any, Awaitable, Callable

from hasupd.control.protocol import (
    CHANGING,
    MAX_LINE,
    PeerCred,
    ProtocolError,
    decode_request,
    encode,
    error,
    permission_error,
)
from hasupd.timeouts import Timeout, within

Handler = Callable[[str, dict, PeerCred], Awaitable[dict]]

MAX_PER_UID = 8  # connections of one non-root uid at a time
MAX_USERS = 32  # connections of all non-root uids together
MAX_ROOT = 16  # root's own slots, never taken by others
IDLE_TIMEOUT = 30.0  # seconds a client may leave a request unsent or an answer unread
# pending connections; asyncio also accepts up to this many per loop turn before
# any of them is checked against the caps, so it bounds the files a flood takes
BACKLOG = 16


SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux 4.13; Python has no name for it
PEERGROUPS_BUF = 1024  # the most Python's getsockopt reads: 256 groups


def peer_cred(sock: socket.socket) -> PeerCred:
    """Who connected, with the groups it had when it called connect(): a PID
    is only a number that another process may carry by the time it asks."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, PEERGROUPS_BUF)
        groups = tuple(struct.unpack(f"{len(raw) // 4}I", raw))
    except OSError:  # no SO_PEERGROUPS, or more than 256 groups: the primary group alone counts
        groups = ()
    return PeerCred(pid, uid, gid, groups)


def group_id(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def in_group(peer: PeerCred, gid: int) -> bool:
    """Was the caller in group GID (primary or supplementary) when it connected?"""
    return peer.gid == gid or gid in peer.groups


def authorize(cmd: str, peer: PeerCred, group: str) -> str | None:
    """None when PEER may run CMD, else the one-line refusal."""
    if peer.uid == 0:
        return None
    if cmd in CHANGING:
        return permission_error(cmd)
    gid = group_id(group)
    if gid is not None and in_group(peer, gid):
        return None
    return f"permission denied: hasupctl {cmd} needs root or membership of group {group}"


class ControlServer:
    def __init__(self, path: str, group: str, handler: Handler, mode: int = 0o660,
                 idle_timeout: float = IDLE_TIMEOUT):
        self.path, self.group, self.handler, self.mode = path, group, handler, mode
        self.idle_timeout = idle_timeout
        self.server: asyncio.base_events.Server | None = None
        self.requests = 0
        self.refused = 0
        self.turned_away = 0  # connections over a cap
        self.timed_out = 0  # idle clients disconnected
        self.connections: dict[int, int] = {}  # uid -> open connections

    def _over_cap(self, uid: int) -> str | None:
        """Why a new connection of UID is turned away, or None."""
        mine = self.connections.get(uid, 0)
        if uid == 0:
            return f"too many connections from root (limit {MAX_ROOT})" if mine >= MAX_ROOT else None
        if mine >= MAX_PER_UID:
            return f"too many connections from uid {uid} (limit {MAX_PER_UID})"
        if sum(n for u, n in self.connections.items() if u != 0) >= MAX_USERS:
            return f"too many connections (limit {MAX_USERS} for all non-root users)"
        return None

    async def start(self) -> None:
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o755, exist_ok=True)
        if os.path.exists(self.path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.path)
                raise RuntimeError(f"another hasupd answers on {self.path}")
            except (ConnectionRefusedError, FileNotFoundError):
                os.unlink(self.path)  # stale, from a daemon that died
            finally:
                probe.close()
        self.server = await asyncio.start_unix_server(self._serve, path=self.path, limit=MAX_LINE,
                                                       backlog=BACKLOG)
        gid = group_id(self.group)
        os.chown(self.path, 0, gid if gid is not None else 0)
        os.chmod(self.path, self.mode)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            try:
                await within(self.server.wait_closed(), 2.0)
            except Timeout:
                pass
            self.server = None
        try:
            os.unlink(self.path)
        except OSError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        uid = None
        try:
            peer = peer_cred(writer.get_extra_info("socket"))
            refusal = self._over_cap(peer.uid)
            if refusal:
                self.turned_away += 1
                writer.write(encode(error(refusal)))
                return
            uid = peer.uid
            self.connections[uid] = self.connections.get(uid, 0) + 1
            while True:
                try:
                    line = await within(reader.readuntil(b"\n"), self.idle_timeout)
                except Timeout:
                    self.timed_out += 1
                    return
                except asyncio.IncompleteReadError as e:
                    if e.partial.strip():
                        writer.write(encode(error("malformed request: no newline at the end")))
                        await within(writer.drain(), self.idle_timeout)
                    return
                except asyncio.LimitOverrunError:
                    writer.write(encode(error(f"request too long (limit {MAX_LINE} bytes)")))
                    await within(writer.drain(), self.idle_timeout)
                    return
                if not line.strip():
                    continue
                writer.write(encode(await self._answer(line, peer)))
                try:
                    await within(writer.drain(), self.idle_timeout)
                except Timeout:  # the client does not read its answer
                    self.timed_out += 1
                    return
        except (ConnectionError, OSError):
            pass  # the client went away
        finally:
            if uid is not None:
                self.connections[uid] -= 1
                if not self.connections[uid]:
                    del self.connections[uid]
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # unsent bytes a client does not read: close() would wait
            else:
                writer.close()
            try:
                await within(writer.wait_closed(), 1.0)
            except (ConnectionError, OSError, Timeout):
                pass

    async def _answer(self, line: bytes, peer: PeerCred) -> dict[str, Any]:
        self.requests += 1
        try:
            cmd, args = decode_request(line)
        except ProtocolError as e:
            return error(str(e))
        refusal = authorize(cmd, peer, self.group)
        if refusal:
            self.refused += 1
            return error(refusal)
        try:
            response = await self.handler(cmd, args, peer)
        except Exception as e:  # a handler bug must not take the socket down
            return error(f"internal error in {cmd}: {e!r}"[:300])
        if not isinstance(response, dict):
            return error(f"internal error in {cmd}: the handler returned {type(response).__name__}")
        response.setdefault("ok", True)
        return response
