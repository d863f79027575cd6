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


async def run(
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
) -> Result:
    """Run a command in its own process group, bounded by ``timeout``.

    On timeout the whole process group gets SIGKILL (a hung child must not
    outlive its action).  Never raises for the command's own failures.
    """
    argv = tuple(str(a) for a in argv)
    started = time.monotonic()
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
    except OSError as e:
        return Result(False, f"cannot run {argv[0]}: {e.strerror}", argv, None, "", e.errno,
                      duration=time.monotonic() - started)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(input), timeout)
    except asyncio.TimeoutError:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()
        return Result(False, f"{' '.join(argv)} timed out after {timeout:g}s", argv, None, "",
                      timed_out=True, duration=time.monotonic() - started)
    except asyncio.CancelledError:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        raise
    text = out.decode(errors="replace").strip()
    ok = proc.returncode == 0
    msg = "" if ok else f"{' '.join(argv)} exited {proc.returncode}: {text.splitlines()[-1] if text else ''}"
    return Result(ok, msg, argv, proc.returncode, text[-4000:], duration=time.monotonic() - started)
