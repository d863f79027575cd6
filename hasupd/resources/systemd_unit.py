"""Any systemd unit as a cluster resource (like Pacemaker's `systemd:UNIT`).

start/stop/state/main PID through `systemctl`; the watch polls
`systemctl show` every second and waits on a pidfd of the MainPID (see
hasupd.resources.systemd).
"""

from __future__ import annotations

from typing import AsyncIterator

from hasupd.config import SystemdUnitResource
from hasupd.model import ResourceStatus
from hasupd.resources.base import Observation, Result
from hasupd.resources.systemd import SystemdUnit


class SystemdUnitDriver:
    def __init__(self, res: SystemdUnitResource, node: str | None = None, systemctl: str = "systemctl"):
        self.res = res
        self.name = res.name
        self.unit = SystemdUnit(res.name, res.unit, systemctl)

    async def probe(self) -> ResourceStatus:
        return await self.unit.probe(self.res.timeouts.monitor)

    async def start(self) -> Result:
        return await self.unit.start(self.res.timeouts.start)

    async def stop(self) -> Result:
        return await self.unit.stop(self.res.timeouts.stop)

    async def restart(self) -> Result:
        return await self.unit.restart(self.res.timeouts.start + self.res.timeouts.stop)

    async def monitor(self) -> Result:
        return await self.unit.monitor(self.res.timeouts.monitor)

    def watch(self) -> AsyncIterator[Observation]:
        return self.unit.watch()
