"""What every resource driver is: a small async object with a timeout on
every action, typed results instead of exceptions, and a watch stream.

    probe()   -> ResourceStatus   what is true right now (adoption at start)
    start()   -> Result
    stop()    -> Result
    monitor() -> Result           deep check (ok=False: the resource failed)
    watch()   -> async iterator of Observation, so a failure is seen when
                 it happens; it ends only when cancelled.

Drivers never raise for an operational failure: a failed command, an
errno or a timeout comes back as ``Result(ok=False, ...)`` with the exact
command, exit code and output.  Exceptions are for programming errors.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from typing import AsyncIterator, Mapping, Protocol, Sequence

from hasupd.model import ResourceStatus, ResState
from hasupd.timeouts import Timeout, within


@dataclass(frozen=True)
class Result:
    ok: bool
    message: str = ""  # one line for humans: what happened, or what is wrong
    command: tuple[str, ...] = ()
    returncode: int | None = None
    output: str = ""  # stdout+stderr, trimmed
    errno: int | None = None
    timed_out: bool = False
    duration: float = 0.0

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Observation:
    resource: str
    state: ResState
    detail: str
    at: float  # time.monotonic()


class Driver(Protocol):
    name: str

    async def probe(self) -> ResourceStatus: ...

    async def start(self) -> Result: ...

    async def stop(self) -> Result: ...

    async def monitor(self) -> Result: ...

    def watch(self) -> AsyncIterator[Observation]: ...


def observation(resource: str, state: ResState, detail: str) -> Observation:
    return Observation(resource, state, detail, time.monotonic())


# What the service manager gives the daemon itself and no child may inherit: a
# child with NOTIFY_SOCKET/WATCHDOG_* could speak for hasupd to systemd (ready,
# watchdog pings, status), one with LISTEN_* would take hasupd's sockets.
SERVICE_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
                     "LISTEN_FDNAMES", "MAINPID", "MANAGERPID", "SYSTEMD_EXEC_PID", "INVOCATION_ID")
OUTPUT_KEPT = 64 * 1024  # bytes of a child's output kept (the last ones: that is where errors are)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every program hasupd starts: its own, without the
    service manager's variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(extra or {})
    return env


async def _read_tail(stream: asyncio.StreamReader, keep: int) -> bytes:
    """Everything the stream says until EOF, keeping only the last ``keep`` bytes."""
    kept = bytearray()
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return bytes(kept)
        kept += chunk
        if len(kept) > keep:
            del kept[:len(kept) - keep]


async def _feed(stdin: asyncio.StreamWriter | None, data: bytes | None) -> None:
    if stdin is None:
        return
    try:
        if data:
            stdin.write(data)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the child did not read it all: its exit code says the rest
    finally:
        stdin.close()


async def run(
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
) -> Result:
    """Run a command in its own process group, bounded by ``timeout``, with
    ``child_env(env)`` and stdout+stderr read to the end but only the last
    OUTPUT_KEPT bytes kept.

    On timeout the whole process group gets SIGKILL (a hung child must not
    outlive its action).  Never raises for the command's own failures.
    """
    argv = tuple(str(a) for a in argv)
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=child_env(env),
            start_new_session=True,
        )
    except OSError as e:
        return Result(False, f"cannot run {argv[0]}: {e.strerror}", argv, None, "", e.errno,
                      duration=time.monotonic() - started)
    except ValueError:  # a NUL byte in an argument or the environment
        return Result(False, f"cannot run {argv[0]}: an argument or environment value holds a NUL byte",
                      argv, None, "", duration=time.monotonic() - started)
    gathered = asyncio.gather(_feed(proc.stdin, input), _read_tail(proc.stdout, OUTPUT_KEPT), proc.wait())
    # at shutdown the loop cancels the readers themselves: the gather then holds a CancelledError that
    # nobody awaits any more; retrieve it so that it is not logged as a traceback
    gathered.add_done_callback(lambda f: f.cancelled() or f.exception())
    try:
        _, out, _ = await within(gathered, timeout)
    except Timeout:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()
        return Result(False, f"{' '.join(argv)} timed out after {timeout:g}s", argv, None, "",
                      timed_out=True, duration=time.monotonic() - started)
    except asyncio.CancelledError:  # the run is abandoned: its processes are killed and reaped
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            await within(proc.wait(), 5.0)
        except (Timeout, asyncio.CancelledError):
            pass
        raise
    text = out.decode(errors="replace").strip()
    ok = proc.returncode == 0
    msg = "" if ok else f"{' '.join(argv)} exited {proc.returncode}: {text.splitlines()[-1] if text else ''}"
    return Result(ok, msg, argv, proc.returncode, text[-4000:], duration=time.monotonic() - started)
