"""Any OCF resource agent, run the way Pacemaker runs it.

``OCF_ROOT/resource.d/PROVIDER/TYPE ACTION`` with the OCF environment
(OCF_ROOT, OCF_RESOURCE_INSTANCE, OCF_RESKEY_<param>, OCF_RESKEY_CRM_meta_
timeout in ms, HA_RSCTMP ...), actions start/stop/monitor/meta-data/
validate-all, exit codes mapped to Results with their meaning.  Timeouts
the configuration does not set come from the agent's meta-data
(``<action name="start" timeout="20s"/>``).  OCF has no events: watch()
runs the monitor action every ``monitor_interval``.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
import xml.etree.ElementTree as ET
from typing import AsyncIterator

from hasupd.config import OcfResource
from hasupd.model import ResourceStatus, ResState
from hasupd.resources.base import Observation, Result, observation, run
from hasupd.timeouts import Timeout, within

# OCF exit codes (ocf-returncodes; Pacemaker's PCMK_OCF_*)
OCF_SUCCESS = 0
OCF_ERR_GENERIC = 1
OCF_ERR_ARGS = 2
OCF_ERR_UNIMPLEMENTED = 3
OCF_ERR_PERM = 4
OCF_ERR_INSTALLED = 5
OCF_ERR_CONFIGURED = 6
OCF_NOT_RUNNING = 7
OCF_RUNNING_PROMOTED = 8
OCF_FAILED_PROMOTED = 9
OCF_DEGRADED = 190
OCF_DEGRADED_PROMOTED = 191

MEANINGS = {
    OCF_SUCCESS: "ok",
    OCF_ERR_GENERIC: "generic error",
    OCF_ERR_ARGS: "invalid arguments or parameters",
    OCF_ERR_UNIMPLEMENTED: "action not implemented by the agent",
    OCF_ERR_PERM: "insufficient privileges",
    OCF_ERR_INSTALLED: "not installed (the agent or a program it needs is missing)",
    OCF_ERR_CONFIGURED: "not configured (the resource's configuration is invalid)",
    OCF_NOT_RUNNING: "not running",
    OCF_RUNNING_PROMOTED: "running, promoted (master)",
    OCF_FAILED_PROMOTED: "failed while promoted (master)",
    OCF_DEGRADED: "running, degraded",
    OCF_DEGRADED_PROMOTED: "running promoted, degraded",
}
RUNNING_CODES = (OCF_SUCCESS, OCF_RUNNING_PROMOTED, OCF_DEGRADED, OCF_DEGRADED_PROMOTED)
ACTIONS = ("start", "stop", "monitor", "meta-data", "validate-all")
DEFAULT_ACTION_TIMEOUT = 20.0  # Pacemaker's default when nothing says otherwise


def meaning(rc: int | None) -> str:
    if rc is None:
        return "no exit code"
    return MEANINGS.get(rc, f"unknown OCF exit code {rc}")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|msec|s|sec|m|min|h|hr)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "msec": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0,
          "h": 3600.0, "hr": 3600.0}


def parse_ocf_duration(text: str) -> float | None:
    """"20s", "2min", "500ms", "30" (seconds) -> seconds; None if unreadable."""
    m = _DURATION.match(text or "")
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def parse_metadata_timeouts(xml_text: str) -> dict[str, float]:
    """Action timeouts from an agent's meta-data XML: {"start": 20.0, ...}.
    For an action listed twice (monitor per role), the first one counts."""
    root = ET.fromstring(xml_text)
    timeouts: dict[str, float] = {}
    for action in root.iter("action"):
        name = action.get("name")
        seconds = parse_ocf_duration(action.get("timeout", ""))
        if name and seconds is not None and name not in timeouts:
            timeouts[name] = seconds
    return timeouts


class OcfDriver:
    def __init__(self, res: OcfResource, node: str | None = None):
        self.res = res
        self.name = res.name
        self.provider, self.kind = res.agent.split(":", 1)
        self.path = os.path.join(res.ocf_root, "resource.d", self.provider, self.kind)
        self.node_name = node or os.environ.get("HASUPD_NODE") or socket.gethostname()
        self.expect_running = False  # set by start/probe: the watch reports failures
        self.wake = asyncio.Event()
        self._metadata: dict[str, float] | None = None

    # ---------------------------------------------------------- environment

    def environment(self, action: str, timeout: float, interval: float = 0.0) -> dict[str, str]:
        """What Pacemaker's executor passes to an agent."""
        env = {
            "OCF_ROOT": self.res.ocf_root,
            "OCF_FUNCTIONS_DIR": os.path.join(self.res.ocf_root, "lib", "heartbeat"),
            "OCF_RA_VERSION_MAJOR": "1",
            "OCF_RA_VERSION_MINOR": "1",
            "OCF_RESOURCE_INSTANCE": self.res.name,
            "OCF_RESOURCE_TYPE": self.kind,
            "OCF_RESOURCE_PROVIDER": self.provider,
            "OCF_RESKEY_CRM_meta_name": action,
            "OCF_RESKEY_CRM_meta_timeout": str(int(timeout * 1000)),
            "OCF_RESKEY_CRM_meta_interval": str(int(interval * 1000)),
            "OCF_RESKEY_CRM_meta_on_node": self.node_name,
            "HA_RSCTMP": os.environ.get("HA_RSCTMP", "/run/resource-agents"),
            "HA_LOGTAG": f"hasupd-{self.res.name}",
            "HA_debug": os.environ.get("HA_debug", "0"),
            "PCMK_service": "hasupd",
        }
        for key, value in self.res.params:
            env[f"OCF_RESKEY_{key}"] = value
        return env

    # ---------------------------------------------------------- timeouts

    async def metadata_timeouts(self) -> dict[str, float]:
        """The agent's advertised action timeouts (cached; {} if it has none)."""
        if self._metadata is None:
            r = await self._exec("meta-data", 10.0)
            try:
                self._metadata = parse_metadata_timeouts(r.output) if r.ok else {}
            except ET.ParseError:
                self._metadata = {}
        return self._metadata

    async def timeout(self, action: str) -> float:
        """Configured timeout when the configuration sets it, else the agent's
        meta-data, else the configured default."""
        configured = {"start": self.res.timeouts.start, "stop": self.res.timeouts.stop,
                      "monitor": self.res.timeouts.monitor}.get(action)
        if action in self.res.explicit_timeouts and configured is not None:
            return configured
        advertised = (await self.metadata_timeouts()).get(action)
        if advertised is not None:
            return advertised
        return configured if configured is not None else DEFAULT_ACTION_TIMEOUT

    # ---------------------------------------------------------- running the agent

    def _missing(self, action: str) -> Result | None:
        if not os.path.isfile(self.path):
            return Result(False, f"ocf:{self.res.agent} {action}: {meaning(OCF_ERR_INSTALLED)}: "
                          f"{self.path} does not exist (is the resource-agents package installed?)",
                          (self.path, action), OCF_ERR_INSTALLED)
        if not os.access(self.path, os.X_OK):
            return Result(False, f"ocf:{self.res.agent} {action}: {self.path} is not executable",
                          (self.path, action), OCF_ERR_INSTALLED)
        return None

    async def _exec(self, action: str, timeout: float, interval: float = 0.0) -> Result:
        missing = self._missing(action)
        if missing is not None:
            return missing
        return await run([self.path, action], timeout, self.environment(action, timeout, interval))

    async def action(self, action: str, interval: float = 0.0) -> Result:
        """Run one action; ok follows the OCF rules for that action."""
        missing = self._missing(action)
        if missing is not None:
            return missing
        timeout = await self.timeout(action)
        r = await self._exec(action, timeout, interval)
        rc = r.returncode
        if action == "monitor":
            ok = rc in RUNNING_CODES
        else:
            ok = rc == OCF_SUCCESS
        label = f"ocf:{self.res.agent} {action}"
        if r.timed_out:
            msg = f"{label} timed out after {timeout:g}s"
        elif rc is None:
            msg = r.message
        else:
            msg = f"{label}: {meaning(rc)}" if rc == OCF_SUCCESS else f"{label} exited {rc} ({meaning(rc)})"
            last = explain(r.output)
            if not ok and last:
                msg += f": {last}"
        return Result(ok, msg, r.command, rc, r.output, r.errno, r.timed_out, r.duration)

    # ---------------------------------------------------------- the driver interface

    def _set_running(self, running: bool) -> None:
        self.expect_running = running
        self.wake.set()

    async def start(self) -> Result:
        r = await self.action("start")
        self._set_running(r.ok)
        return r

    async def stop(self) -> Result:
        self._set_running(False)
        return await self.action("stop")

    async def monitor(self) -> Result:
        return await self.action("monitor", self.res.monitor_interval)

    async def validate(self) -> Result:
        return await self.action("validate-all")

    async def probe(self) -> ResourceStatus:
        """A monitor with interval 0, like Pacemaker's probe."""
        r = await self.action("monitor", 0.0)
        now = time.monotonic()
        rc = r.returncode
        if rc in RUNNING_CODES:
            self._set_running(True)
            return ResourceStatus(ResState.STARTED, r.message, now)
        if rc in (OCF_NOT_RUNNING, OCF_ERR_INSTALLED):
            # not installed here means it cannot be running here (Pacemaker's probe rule)
            return ResourceStatus(ResState.STOPPED, r.message, now)
        if r.timed_out or rc is None:
            return ResourceStatus(ResState.UNKNOWN, r.message, now)
        return ResourceStatus(ResState.FAILED, r.message, now)

    async def watch(self) -> AsyncIterator[Observation]:
        while True:
            if not self.expect_running:
                self.wake.clear()
                await self.wake.wait()
                continue
            self.wake.clear()
            try:
                await within(self.wake.wait(), self.res.monitor_interval)
                continue  # start/stop happened: begin again
            except Timeout:
                pass
            r = await self.monitor()
            if self.expect_running and not r.ok:  # a monitor timeout is a failure too
                self.expect_running = False
                yield observation(self.name, ResState.FAILED, r.message)


def explain(output: str) -> str:
    """What an agent said about its failure: its last ERROR line and its
    ocf-exit-reason (the line Pacemaker shows), else its last line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln.split("ERROR:", 1)[1].strip() for ln in lines if "ERROR:" in ln]
    reasons = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("ocf-exit-reason:")]
    said = [x for x in (errors[-1] if errors else "", reasons[-1] if reasons else "") if x]
    if said:
        return "; ".join(dict.fromkeys(said))
    return lines[-1] if lines else ""
