"""Alerts: one structured record per significant event.

structlog is the logging layer; its last processor hands each event to the
sinks:

* journald, with fields ``HASUPD_EVENT= HASUPD_GROUP= HASUPD_NODE=
  HASUPD_RESOURCE= HASUPD_SEVERITY= PRIORITY= MESSAGE=`` (+ ``HASUPD_<KEY>``
  for extra fields), when a journald listens on its socket;
* syslog (daemon facility) when none does;
* stderr, one human line, when running in the foreground.

Alert agents (``alerts:`` in the config) run with the environment Pacemaker
gives its alert agents (``CRM_alert_kind``, ``CRM_alert_node``, ...), so
Pacemaker's sample scripts (alert_file.sh, alert_smtp.sh, alert_snmp.sh)
work unchanged.  Each agent has its own worker and bounded queue; a run is
killed (whole process group) at the agent's timeout; a full queue drops
the alert and counts it.  ``emit`` never waits for an agent.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import syslog
import time
from collections import deque
from typing import Any

try:
    import structlog
except ImportError:  # EL 9 ships no structlog: _PlainLog does the little hasupd asks of it
    structlog = None

from hasupd import __version__, redact
from hasupd.resources.base import run
from hasupd.timeouts import Timeout, within

JOURNAL_SOCKET = "/run/systemd/journal/socket"
QUEUE_MAX = 32  # pending runs per agent; more are dropped and counted
PRIORITY = {"debug": 7, "info": 6, "notice": 5, "warning": 4, "error": 3, "critical": 2, "alert": 1}

# Pacemaker's alert kinds: node and fencing events map directly; resource
# events carry task/rc; everything else (rings, split brain, config) is sent
# as an "attribute" alert named after the event, which every sample handles.
NODE_EVENTS = {"peer_lost": "lost", "peer_back": "member", "peer_restarted": "member"}
FENCING_EVENTS = ("fence_result", "self_fence")
RESOURCE_EVENTS = ("resource_failed", "action_failed", "failover_started", "failover_finished",
                   "group_blocked", "group_banned", "drbd_up_failed", "move_failed")


def journal_listening(path: str | None = None) -> bool:
    """True when a journald answers on its socket (a stale socket file does not count)."""
    path = path or JOURNAL_SOCKET
    if not os.path.exists(path):
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class _Sinks:
    """structlog's "logger": every level method writes one event to the sinks."""

    def __init__(self, alerter: Alerter):
        self.alerter = alerter

    def __getattr__(self, level: str):
        return lambda event: self.alerter._write(level, event)


class _PlainLog:
    """structlog's bind() + level call + ISO timestamp, for hosts without it."""

    def __init__(self, sinks: _Sinks, fields: dict | None = None):
        self.sinks, self.fields = sinks, fields or {}

    def bind(self, **fields: Any) -> _PlainLog:
        return _PlainLog(self.sinks, {**self.fields, **fields})

    def __getattr__(self, level: str):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
        return lambda event: getattr(self.sinks, level)({**self.fields, "event": event, "timestamp": stamp})


class Alerter:
    def __init__(self, config, node_name: str, foreground: bool = False, *, stderr=None):
        self.config = config
        self.node = node_name
        self.foreground = foreground
        self.stderr = stderr or sys.stderr
        self.agents = tuple(getattr(config, "alerts", ()) or ())
        nodes = [n.name for n in getattr(config, "nodes", ())]
        self.node_ids = {name: i + 1 for i, name in enumerate(nodes)}
        self.sequence = 0
        self.dropped = 0  # alerts not given to an agent (queue full, or no event loop)
        self.agent_failures = 0  # agent runs that exited non-zero or could not start
        self.agent_timeouts = 0
        self.recent: deque[dict] = deque(maxlen=20)  # for status
        self.history = None  # the engine may set a History: alerts are then recorded there too
        self._queues: dict[int, asyncio.Queue] = {}
        self._workers: list[asyncio.Task] = []
        self._syslog_open = False
        self.log = _PlainLog(_Sinks(self)) if structlog is None else structlog.wrap_logger(
            _Sinks(self),
            processors=[structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
                        lambda _logger, _method, ev: ((ev,), {})],
            wrapper_class=structlog.BoundLogger,
            cache_logger_on_first_use=False,
        )

    # ------------------------------------------------------------ emit

    def emit(self, event: str, severity: str, message: str, group: str | None = None,
             resource: str | None = None, **fields: Any) -> dict:
        """Record one event in every sink and queue it for the alert agents."""
        severity = severity if severity in PRIORITY else "warning"
        message, fields = redact.text(message), redact.value(fields)  # no secret reaches any sink
        node = fields.pop("node", None) or self.node
        record = {"event": event, "severity": severity, "message": message, "group": group,
                  "resource": resource, "node": node, "wall": time.time(), **fields}
        getattr(self.log.bind(**{k: v for k, v in record.items() if k != "event"}), severity)(event)
        self.recent.append(record)
        if self.history is not None:
            self.history.record("alert", event=event, severity=severity, group=group, resource=resource,
                                reason=message)
        if self.agents:
            self._queue_agents(record)
        return record

    def _write(self, level: str, ev: dict) -> None:
        event = ev.get("event", "")
        message = str(ev.get("message", ""))
        group, resource, node = ev.get("group"), ev.get("resource"), ev.get("node")
        prio = PRIORITY.get(level, 4)
        extra = {k: v for k, v in ev.items()
                 if k not in ("event", "message", "group", "resource", "node", "severity", "wall", "timestamp")
                 and v is not None}
        try:
            if journal_listening():
                self._journal(event, level, prio, message, group, resource, node, extra)
            else:
                self._syslog(event, prio, message, group, resource)
        except Exception:  # a broken log sink must never break the engine
            pass
        if self.foreground:
            where = "/".join(x for x in (group, resource) if x)
            when = time.strftime("%H:%M:%S", time.localtime(ev.get("wall", time.time())))
            line = f"{when} hasupd[{self.node}] {level.upper():8} {event}{' ' + where if where else ''}: {message}"
            try:
                print(line, file=self.stderr, flush=True)
            except (OSError, ValueError):
                pass

    def _journal(self, event, level, prio, message, group, resource, node, extra) -> None:
        from systemd import journal  # systemd-python / python3-systemd

        fields = {"PRIORITY": str(prio), "SYSLOG_IDENTIFIER": "hasupd", "HASUPD_EVENT": event,
                  "HASUPD_SEVERITY": level, "HASUPD_NODE": node or self.node}
        if group:
            fields["HASUPD_GROUP"] = group
        if resource:
            fields["HASUPD_RESOURCE"] = resource
        for k, v in extra.items():
            fields["HASUPD_" + "".join(c if c.isalnum() else "_" for c in str(k)).upper()] = str(v)
        journal.send(message, **fields)

    def _syslog(self, event, prio, message, group, resource) -> None:
        if not self._syslog_open:
            syslog.openlog("hasupd", syslog.LOG_PID, syslog.LOG_DAEMON)
            self._syslog_open = True
        where = "/".join(x for x in (group, resource) if x)
        syslog.syslog(prio, f"{event}{' ' + where if where else ''}: {message}")

    # ------------------------------------------------------------ alert agents

    def crm_env(self, record: dict, agent) -> dict[str, str]:
        """The environment Pacemaker gives an alert agent, for one event."""
        event = record["event"]
        wall = record["wall"]
        secs = int(wall)
        usec = int(round((wall - secs) * 1_000_000))
        if usec >= 1_000_000:
            secs, usec = secs + 1, 0
        env = {
            "CRM_alert_version": __version__,
            "CRM_alert_recipient": agent.recipient or "",
            "CRM_alert_node_sequence": str(self.sequence),
            "CRM_alert_timestamp": time.strftime("%H:%M:%S", time.localtime(secs)) + f".{usec:06d}",
            "CRM_alert_timestamp_epoch": str(secs),
            "CRM_alert_timestamp_usec": str(usec),
            "CRM_alert_node": record.get("node") or self.node,
            "CRM_alert_desc": record["message"],
            "HASUPD_EVENT": event,
            "HASUPD_SEVERITY": record["severity"],
            "HASUPD_MESSAGE": record["message"],
            "HASUPD_GROUP": record.get("group") or "",
            "HASUPD_RESOURCE": record.get("resource") or "",
            "HASUPD_LOCAL_NODE": self.node,
        }
        if event in NODE_EVENTS:
            env["CRM_alert_kind"] = "node"
            env["CRM_alert_desc"] = NODE_EVENTS[event]
            env["CRM_alert_nodeid"] = str(self.node_ids.get(env["CRM_alert_node"], 0))
        elif event in FENCING_EVENTS:
            env["CRM_alert_kind"] = "fencing"
            env["CRM_alert_task"] = str(record.get("task", "reboot"))
            if event == "self_fence":
                env["CRM_alert_node"] = self.node
            env["CRM_alert_rc"] = str(record.get("rc", 0 if record["severity"] in ("info", "warning") else 1))
        elif event in RESOURCE_EVENTS:
            env["CRM_alert_kind"] = "resource"
            env["CRM_alert_rsc"] = record.get("resource") or record.get("group") or ""
            env["CRM_alert_task"] = str(record.get("task", event))
            rc = int(record.get("rc", 1 if record["severity"] != "info" else 0))
            env["CRM_alert_rc"] = str(rc)
            env["CRM_alert_target_rc"] = str(record.get("target_rc", 0))
            # Pacemaker's execution status: 0 done, 2 timed out, 4 error
            env["CRM_alert_status"] = str(record.get("status", 0))
            env["CRM_alert_interval"] = str(int(record.get("interval", 0) * 1000)
                                            if isinstance(record.get("interval"), (int, float)) else 0)
        else:
            env["CRM_alert_kind"] = "attribute"
            env["CRM_alert_attribute_name"] = f"hasupd-{event}"
            env["CRM_alert_attribute_value"] = record["message"]
        return env

    def _queue_agents(self, record: dict) -> None:
        self.sequence += 1
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.dropped += len(self.agents)  # no loop (a CLI tool): agents are the daemon's job
            return
        for i, agent in enumerate(self.agents):
            q = self._queues.get(i)
            if q is None:
                q = self._queues[i] = asyncio.Queue(QUEUE_MAX)
                self._workers.append(loop.create_task(self._worker(agent, q), name=f"alert-agent-{i}"))
            try:
                q.put_nowait(self.crm_env(record, agent))
            except asyncio.QueueFull:
                self.dropped += 1

    async def _worker(self, agent, q: asyncio.Queue) -> None:
        while True:
            env = await q.get()
            try:
                await self._run_agent(agent, env)
            except Exception as e:  # whatever went wrong with this run, the next alerts still go out
                self.agent_failures += 1
                self._note(f"alert agent {agent.path}: {e!r}")
            finally:
                q.task_done()

    async def _run_agent(self, agent, env: dict[str, str]) -> None:
        # an environment value cannot hold a NUL: shown escaped rather than failing the run
        r = await run([agent.path], agent.timeout, {k: v.replace("\x00", "\\x00") for k, v in env.items()})
        if r.timed_out:
            self.agent_timeouts += 1
            self._note(f"alert agent {agent.path} killed after its timeout of {agent.timeout:g}s")
        elif not r.ok:
            self.agent_failures += 1
            self._note(f"alert agent {agent.path} failed: {r.message}")

    def _note(self, message: str) -> None:
        """A problem with an agent: logged to the sinks, never sent to the agents (no loops)."""
        self.log.bind(message=message, node=self.node, group=None, resource=None).warning("alert_agent")

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued agent run has finished (tests, shutdown)."""
        await within(asyncio.gather(*(q.join() for q in self._queues.values())), timeout)

    async def close(self, timeout: float = 5.0) -> None:
        """Let queued runs finish for up to ``timeout`` seconds, then stop the workers."""
        try:
            await self.drain(timeout)
        except Timeout:
            pass
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
