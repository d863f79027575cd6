"""The control socket served by the daemon.

A UNIX stream socket (mode 0660, group ``control_group`` when it exists,
else root).  Each caller is identified with SO_PEERCRED: read-only
commands are for root and members of the control group, changing commands
for root only.  The engine supplies ``handler(cmd, args, peer)``; a bad
request or a failing handler gets an error response, never kills the server.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
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

Handler = Callable[[str, dict, PeerCred], Awaitable[dict]]


def peer_cred(sock: socket.socket) -> PeerCred:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCred(pid, uid, gid)


def group_id(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def in_group(peer: PeerCred, gid: int) -> bool:
    """Is the calling process in group GID (primary or supplementary)?"""
    if peer.gid == gid:
        return True
    try:  # the process's own supplementary groups, as the kernel has them
        with open(f"/proc/{peer.pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return str(gid) in line.split()[1:]
    except OSError:
        pass
    try:  # fallback: the group database
        user = pwd.getpwuid(peer.uid).pw_name
        return user in grp.getgrgid(gid).gr_mem
    except KeyError:
        return False


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
    def __init__(self, path: str, group: str, handler: Handler, mode: int = 0o660):
        self.path, self.group, self.handler, self.mode = path, group, handler, mode
        self.server: asyncio.base_events.Server | None = None
        self.requests = 0
        self.refused = 0

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
        self.server = await asyncio.start_unix_server(self._serve, path=self.path, limit=MAX_LINE)
        gid = group_id(self.group)
        os.chown(self.path, 0, gid if gid is not None else 0)
        os.chmod(self.path, self.mode)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 2.0)
            except asyncio.TimeoutError:
                pass
            self.server = None
        try:
            os.unlink(self.path)
        except OSError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = peer_cred(writer.get_extra_info("socket"))
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as e:
                    if e.partial.strip():
                        writer.write(encode(error("malformed request: no newline at the end")))
                        await writer.drain()
                    return
                except asyncio.LimitOverrunError:
                    writer.write(encode(error(f"request too long (limit {MAX_LINE} bytes)")))
                    await writer.drain()
                    return
                if not line.strip():
                    continue
                writer.write(encode(await self._answer(line, peer)))
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client went away
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
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
