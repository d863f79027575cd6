"""Running the configured DRBD handlers (fence-peer, split-brain, ...) the way
the kernel module calls them: environment, no arguments, a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from hasupd_lab.drbdsim import dialect
from hasupd_lab.drbdsim.states import INCONSISTENT, OUTDATED

HANDLER_TIMEOUT = 60.0


class HandlersMixin:
    """Part of resource.Res: the handler calls and what fence-peer's answer changes."""

    def helper_event(self, verb: str, helper: str, status: int | None = None, volume: bool = True) -> None:
        keys = list(self.node.render.objects(self.view())["connection"][0])
        if volume:
            keys += [("volume", "0"), ("minor", str(self.minor))]
        fields = [("helper", helper)] + ([("status", str(status))] if status is not None else [])
        self.node.publish(self.name, verb, "helper", keys, fields, None)

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
