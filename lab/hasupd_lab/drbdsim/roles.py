"""Role changes of a resource: promotion (with the peer's consent when
connected, with fence-peer when not), demotion, and ``outdate``."""

from __future__ import annotations

import secrets

from hasupd_lab.drbdsim.output import CmdError
from hasupd_lab.drbdsim.states import CONSISTENT, DISKLESS, INCONSISTENT, OUTDATED, UPTODATE


class RolesMixin:
    """Part of resource.Res: primary, secondary, outdate."""

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
