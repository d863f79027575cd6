"""Fencing: fence devices called the way Pacemaker calls fence-agents.

A device is a fence-agents program (fence_ipmilan, fence_redfish, ...) or
a site command; both get the same standard input and nothing else::

    action=off            off | on | reboot | status | monitor
    plug=1                (when the device has a plug for the node)
    nodename=n2
    ip=10.77.0.12         the device's options, one key=value a line
    password=...          the secrets file's lines, read at each call

Exit codes are the fence-agents API's: 0 success; for ``status`` 0 means
on and 2 off, anything else that the state is unknown.  Secrets go to the
agent's stdin only: never argv, environment, logs, messages or status
(``hasupd.redact`` masks them in any agent output that is kept, and everywhere else).  A child
gets a clean environment, its own process group (killed whole on a
timeout) and a bounded share of its output.

``Fencer.fence(node)`` asks ``status`` first, of every device at once: a
level whose devices all report the node off means it is already fenced
(no ``off`` sent; all, because two power supplies are two devices), then tries the levels in order: each device
of a level waits its ``delay``, runs ``off`` (with ``retries``), and the
level counts only when ``status`` confirms the node off.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass

from hasupd import redact
from hasupd.config import FenceDevice, Fencing, check_secrets_file
from hasupd.timeouts import Timeout, within

log = logging.getLogger("hasupd.fencing")

OUTPUT_LIMIT = 64 * 1024  # bytes kept of a child's stdout and of its stderr
AGENT_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LC_ALL": "C"}
CONFIRM_INTERVAL = 0.5  # between `status` calls while waiting for a node to be off

STATUS_ON, STATUS_OFF = 0, 2  # fence-agents: the exit codes of `status`


@dataclass(frozen=True)
class FenceOutcome:
    ok: bool  # the node is confirmed off (after `off`, `status` says off) or was off already
    already_off: bool  # the device reported it off before any `off` was sent
    device: str | None  # the device (or devices, "a+b") of the level that decided
    level: int | None  # 1-based level index that decided
    message: str  # one sentence, secrets redacted
    duration: float  # seconds


@dataclass(frozen=True)
class AgentResult:
    """One call of a device: exit code (None: did not run or timed out)."""

    action: str
    returncode: int | None
    output: str  # redacted, bounded
    duration: float
    error: str = ""  # why it did not run or finish (redacted)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def power(self) -> str:
        """For `status`: "on", "off" or "unknown"."""
        if self.returncode == STATUS_ON:
            return "on"
        if self.returncode == STATUS_OFF:
            return "off"
        return "unknown"

    def why(self) -> str:
        """One short phrase: the error, else the exit code and last output line."""
        if self.error:
            return self.error
        last = next((ln.strip() for ln in reversed(self.output.splitlines()) if ln.strip()), "")
        return f"exit {self.returncode}" + (f": {last[:200]}" if last else "")


def read_secrets(path: str) -> list[tuple[int, str, str]]:
    """(line number, key, value) of each key=value line of a secrets file
    (checked: root, 0600/0400).  Raises OSError/ValueError with a message
    that never holds a value."""
    problem = check_secrets_file(path)
    if problem:
        raise ValueError(problem)
    entries = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"{path}:{number}: expected key=value")
            entries.append((number, key.strip(), value))
    return entries


def is_heuristic(device: FenceDevice) -> bool:
    """A fence_heuristics_* agent checks a condition (a ping), not power: what
    its `status` says is never the node's power state."""
    return bool(device.agent) and os.path.basename(device.agent).startswith("fence_heuristics")


def resolve_agent(agent: str) -> str | None:
    """The path of a fence-agents program: absolute, or on PATH, /usr/sbin, /sbin."""
    if agent.startswith("/"):
        return agent if os.access(agent, os.X_OK) else None
    found = shutil.which(agent)
    if found:
        return found
    for d in AGENT_DIRS:
        path = os.path.join(d, agent)
        if os.access(path, os.X_OK):
            return path
    return None


def device_argv(device: FenceDevice, node: str) -> list[str] | None:
    """argv of a device call (never a secret): the agent alone (options on
    stdin), or the site command ({peer} becomes the node's name)."""
    if device.command is not None:
        return [a.replace("{peer}", node) for a in device.command]
    path = resolve_agent(device.agent or "")
    return [path] if path else None


def stdin_text(device: FenceDevice, node: str, action: str, secrets: list[tuple[str, str]]) -> str:
    lines = [f"action={action}"]
    plug = device.plug(node)
    if plug is not None:
        lines.append(f"plug={plug}")
    lines.append(f"nodename={node}")
    lines += [f"{k}={v}" for k, v in device.options]
    lines += [f"{k}={v}" for k, v in secrets]
    return "\n".join(lines) + "\n"


async def _read_bounded(stream: asyncio.StreamReader, limit: int) -> bytes:
    """Read to EOF, keep the first LIMIT bytes (the rest is read and dropped)."""
    kept = bytearray()
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return bytes(kept)
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]


async def call_device(device: FenceDevice, node: str, action: str,
                      timeout: float | None = None) -> AgentResult:
    """Run one action of a device against NODE (bounded by the device's timeout)."""
    start = time.monotonic()
    timeout = device.timeout if timeout is None else timeout
    secrets: list[tuple[str, str]] = []
    if device.secrets:
        try:
            secrets = [(k, v) for _, k, v in read_secrets(device.secrets)]
        except (OSError, ValueError) as e:
            return AgentResult(action, None, "", 0.0, f"secrets: {getattr(e, 'strerror', None) or e}")
    # every sink masks them from now on (logs, history, alerts, status), whatever path they take
    redact.register(*(v for _, v in secrets), *redact.argv_secrets(device.command or ()))
    argv = device_argv(device, node)
    if argv is None:
        return AgentResult(action, None, "", 0.0, f"agent {device.agent} not found")
    env = dict(CLEAN_ENV)
    if device.command is not None:
        env["HASUPD_PEER"] = node
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, cwd="/", start_new_session=True)
    except OSError as e:
        return AgentResult(action, None, "", time.monotonic() - start,
                           redact.text(f"cannot run {argv[0]}: {e.strerror}"))
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

    async def talk() -> tuple[bytes, bytes]:
        try:
            proc.stdin.write(stdin_text(device, node, action, secrets).encode())
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # an agent that does not read its stdin
        finally:
            proc.stdin.close()
        out, err = await asyncio.gather(_read_bounded(proc.stdout, OUTPUT_LIMIT),
                                        _read_bounded(proc.stderr, OUTPUT_LIMIT))
        await proc.wait()
        return out, err

    try:
        out, err = await within(talk(), timeout)
    except Timeout:
        await _kill_and_reap(proc)
        return AgentResult(action, None, "", time.monotonic() - start, f"no answer within {timeout:g}s")
    except asyncio.CancelledError:  # e.g. another device answered first
        await _kill_and_reap(proc)
        raise
    text = redact.text((out + b"\n" + err).decode("utf-8", "replace").strip())
    return AgentResult(action, proc.returncode, text, time.monotonic() - start)


async def _kill_and_reap(proc: asyncio.subprocess.Process) -> None:
    """Kill the agent's process group, then wait for it and the end of its
    pipes (bounded), so nothing of it outlives the call."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        await within(asyncio.gather(proc.stdout.read(), proc.stderr.read(), proc.wait()), 5.0)
    except (Timeout, asyncio.CancelledError, OSError):
        pass


class Fencer:
    """Fences a node with the configured devices and levels; remembers the
    last fence and each device's last test for the status."""

    def __init__(self, fencing: Fencing, local: str):
        self.fencing = fencing
        self.local = local
        self.last_fence: dict | None = None
        self.last_tests: dict[str, dict] = {}
        self._lock: asyncio.Lock | None = None  # made in the loop (Python 3.9 binds a lock to a loop)

    def longest(self, node: str) -> float:
        """The longest a fence of NODE can take: the status round, then every level's delay,
        off (with its retries) and confirmation, each bounded by its device's timeout."""
        levels = self.fencing.levels_for(node)
        status = max((d.timeout for level in levels for d in level), default=0.0)
        return status + sum(max(d.delay + d.timeout * (d.retries + 2) for d in level) for level in levels)

    async def power_status(self, node: str) -> str:
        """"off" when every device of some level reports the node off; "on"
        when a device reports it on (and no level says off); else "unknown"."""
        power, _ = await self._power(node)
        return power

    async def _power(self, node: str) -> tuple[str, int | None]:
        """(power, 1-based level that says off).  `status` runs on every
        device at once; a level says off only when ALL its devices do (two
        power supplies: both off), so the answer comes as soon as one level
        is all off, and the other calls are then cancelled, their agents killed."""
        # heuristic devices (fence_heuristics_*) check a condition, not power: they say nothing here
        # (a level of heuristics only can never say off; positions stay those of levels_for)
        levels = [[d for d in level if not is_heuristic(d)] for level in self.fencing.levels_for(node)]
        devices = list({d.name: d for level in levels for d in level}.values())
        tasks = {asyncio.ensure_future(call_device(d, node, "status")): d for d in devices}
        powers: dict[str, str] = {}
        try:
            pending = set(tasks)
            while pending:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    powers[tasks[task].name] = task.result().power()
                for index, level in enumerate(levels, 1):
                    if level and all(powers.get(d.name) == "off" for d in level):
                        return "off", index
                if not any(level and all(powers.get(d.name, "off") == "off" for d in level) for level in levels):
                    break  # no level can still be all off
            return ("on" if "on" in powers.values() else "unknown"), None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def fence(self, node: str) -> FenceOutcome:
        """One fence at a time: a hand fence and the engine's wait for each other."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            start = time.monotonic()
            outcome = await self._fence(node, start)
        self.last_fence = {"node": node, "when": time.time(), "duration": round(outcome.duration, 3),
                           "ok": outcome.ok, "already_off": outcome.already_off, "device": outcome.device,
                           "level": outcome.level, "message": outcome.message, "by": self.local}
        (log.warning if outcome.ok else log.error)("fencing %s: %s", node, outcome.message)
        return outcome

    async def _fence(self, node: str, start: float) -> FenceOutcome:
        def done(ok: bool, message: str, devices: list[FenceDevice] | None = None,
                 level: int | None = None, already_off: bool = False) -> FenceOutcome:
            names = "+".join(d.name for d in devices) if devices else None
            return FenceOutcome(ok, already_off, names, level, message, time.monotonic() - start)

        levels = self.fencing.levels_for(node)
        if not levels:
            return done(False, f"no fence device can fence {node}")
        power, index = await self._power(node)
        if power == "off" and index is not None:
            level = levels[index - 1]
            return done(True, f"{node} is already off ({'+'.join(d.name for d in level)} "
                              f"report{'s' if len(level) == 1 else ''} it off; no off sent)",
                        level, index, already_off=True)
        failures = []
        for index, level in enumerate(levels, 1):
            problem = await self._level_off(node, level)
            if problem is None:
                return done(True, f"{node} fenced by level {index} "
                                  f"({'+'.join(d.name for d in level)}): confirmed off", level, index)
            failures.append(f"level {index}: {problem}")
            log.error("fencing %s: level %d failed: %s", node, index, problem)
        return done(False, f"fencing {node} failed: " + "; ".join(failures))

    async def _level_off(self, node: str, level: list[FenceDevice]) -> str | None:
        """None when every device of the level turned NODE off and a status
        confirms it; else why not."""
        for device in level:
            if device.delay > 0:
                await asyncio.sleep(device.delay)
            res = None
            for attempt in range(1 + device.retries):
                res = await call_device(device, node, "off")
                if res.ok:
                    break
                log.warning("fencing %s: %s off attempt %d failed: %s", node, device.name,
                            attempt + 1, res.why())
            if res is None or not res.ok:
                return f"{device.name} off failed ({res.why() if res else 'not run'})"
        return await self._confirm_off(node, level)

    async def _confirm_off(self, node: str, level: list[FenceDevice]) -> str | None:
        deadline = time.monotonic() + max(d.timeout for d in level)
        while True:
            answers = []
            for device in (d for d in level if not is_heuristic(d)):
                res = await call_device(device, node, "status")
                answers.append((device, res))
            powers = [res.power() for _, res in answers]
            if "on" not in powers and "off" in powers:
                return None
            if time.monotonic() >= deadline:
                said = ", ".join(f"{d.name}: {r.power() if r.power() != 'unknown' else r.why()}"
                                 for d, r in answers)
                return f"off was accepted but no status confirms {node} off ({said})"
            await asyncio.sleep(CONFIRM_INTERVAL)

    async def test(self, node: str | None = None) -> list[dict]:
        """`status` (else `monitor`) on every device of every level; never `off`."""
        nodes = [node] if node else sorted({n for d in self.fencing.devices for n in d.nodes})
        results = []
        for n in nodes:
            for index, level in enumerate(self.fencing.levels_for(n), 1):
                for device in level:
                    results.append(await self._test_device(device, n, index))
        return results

    async def _test_device(self, device: FenceDevice, node: str, level: int) -> dict:
        status = await call_device(device, node, "status")
        power = status.power()
        if power != "unknown":
            ok, message = True, f"status works: {node} is {power}"
            duration = status.duration
        elif status.returncode is None:  # timed out or did not run: monitor would too
            ok, message, duration = False, f"status failed ({status.why()})", status.duration
        else:
            monitor = await call_device(device, node, "monitor")
            ok = monitor.ok
            duration = status.duration + monitor.duration
            message = ("monitor works (no power status for this device: "
                       f"{status.why()})" if ok else
                       f"status failed ({status.why()}); monitor failed ({monitor.why()})")
        entry = {"node": node, "level": level, "device": device.name, "ok": ok, "power": power,
                 "message": message, "duration": round(duration, 3)}
        self.last_tests[device.name] = {"when": time.time(), "ok": ok, "message": message, "node": node}
        return entry


# ---------------------------------------------------------------- `hasupctl check`


def agent_parameters(agent_path: str, timeout: float = 20.0) -> set[str]:
    """The option names an agent knows, from its `-o metadata`.

    Raises RuntimeError when the metadata cannot be had or read."""
    return set(agent_parameter_table(agent_path, timeout))


def agent_parameter_table(agent_path: str, timeout: float = 20.0) -> dict[str, bool]:
    """Option name -> required, from the agent's `-o metadata` (RuntimeError as above)."""
    import subprocess
    try:
        proc = subprocess.run([agent_path, "-o", "metadata"], capture_output=True, timeout=timeout,
                              env=dict(CLEAN_ENV), stdin=subprocess.DEVNULL, cwd="/")
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{agent_path} -o metadata did not answer within {timeout:g}s") from None
    except OSError as e:
        raise RuntimeError(f"cannot run {agent_path}: {e.strerror}") from None
    import xml.etree.ElementTree as ET  # here: a daemon that never checks an agent does not load it

    try:
        root = ET.fromstring(proc.stdout)
    except ET.ParseError:
        raise RuntimeError(f"{agent_path} -o metadata gave no readable XML (exit {proc.returncode})") from None
    table = {}
    for p in root.iter("parameter"):
        name = p.get("name")
        if name:
            table[_norm(name)] = p.get("required") == "1"
    return table


def _norm(name: str) -> str:
    return name.replace("-", "_")


def check_devices(fencing: Fencing) -> list[str]:
    """`hasupctl check`: every agent exists and its metadata knows every
    configured option (and every key of its secrets file).  Errors as
    FILE:LINE: message."""
    errors = []
    for d in fencing.devices:
        def at(key: str, fallback: str = "agent", d: FenceDevice = d) -> str:
            where = {k: (path, line) for k, path, line in d.positions}
            path, line = where.get(key) or where.get(fallback) or ("<config>", 0)
            return f"{path}:{line}"
        if d.command is not None:
            if not os.access(d.command[0], os.X_OK):
                errors.append(f"{at('command', 'command')}: fence device {d.name}: "
                              f"{d.command[0]} is missing or not executable")
            continue
        path = resolve_agent(d.agent or "")
        if path is None:
            errors.append(f"{at('agent')}: fence device {d.name}: agent {d.agent} not found "
                          f"(looked on PATH and in {', '.join(AGENT_DIRS)}; install fence-agents?)")
            continue
        try:
            known = agent_parameters(path)
        except RuntimeError as e:
            errors.append(f"{at('agent')}: fence device {d.name}: {e}")
            continue
        for key, _ in d.options:
            if _norm(key) not in known:
                errors.append(f"{at(key)}: fence device {d.name}: {d.agent} has no option {key!r}"
                              + _close(key, known))
        if d.secrets:
            try:
                for number, key, _ in read_secrets(d.secrets):
                    if _norm(key) not in known:
                        errors.append(f"{d.secrets}:{number}: fence device {d.name}: {d.agent} has no "
                                      f"option {key!r}" + _close(key, known))
            except (OSError, ValueError) as e:
                errors.append(f"{at('agent')}: fence device {d.name}: secrets: {getattr(e, 'strerror', None) or e}")
    return errors


def _close(word: str, known: set[str]) -> str:
    import difflib
    close = difflib.get_close_matches(_norm(word), sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class EarlyPowerStatus:
    """The peer's power asked as soon as its heartbeat falters (PeerSuspect; ``status`` only, never
    ``off``), so that at deadtime the answer is there or on its way (issue 22: it took 0.27 s of a
    0.3 s-deadtime takeover after the loss).  An answer counts for a loss only when its query began
    after the peer's last packet before that loss: its "off" then describes the peer after it went
    silent, as an answer asked at the loss would.  At most one early query per MIN_GAP seconds, so a
    lossy link does not keep the BMC busy; without one the engine asks at the loss, as before."""

    MIN_GAP = 5.0

    def __init__(self, fencer: Fencer, node: str):
        self.fencer = fencer
        self.node = node
        self.task: asyncio.Future | None = None
        self.asked_at = -math.inf

    def suspect(self, now: float) -> None:
        if (self.task is not None and not self.task.done()) or now - self.asked_at < self.MIN_GAP:
            return
        self.asked_at = now
        self.task = asyncio.ensure_future(self.fencer.power_status(self.node))
        self.task.add_done_callback(_retrieved)

    def for_loss(self, last_seen: float) -> asyncio.Future | None:
        """The query (running or answered) that began after ``last_seen``; None: ask now."""
        task, self.task = self.task, None
        if task is None or self.asked_at <= last_seen or task.cancelled():
            return None
        return task


def _retrieved(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # read here so an unused failed query is not logged as never retrieved
