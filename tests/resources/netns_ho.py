"""Run a driver inside a network namespace of our own (name prefix "ho").

The daemon runs inside the node's network namespace, so the tests do the
same: ``in_netns(NS, fn, *args)`` forks a child that joins NS (setns) and
runs ``asyncio.run(fn(*args))``; the result comes back pickled, an
exception in the child fails the test with the child's traceback.  The
child is a subreaper, so daemons it starts (apache) are its children and
their dead parents get reaped instead of staying zombies of PID 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pickle
import select
import signal
import subprocess
import time
import traceback

PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def namespace(purpose: str):
    """A fresh network namespace ho-PURPOSE-PID with lo up; its processes are
    killed and it is deleted afterwards, even on failure."""
    name = f"ho-{purpose}-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
        for pid in pids.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name])


def in_netns(ns: str, fn, *args, timeout: float = 120.0):
    """Run ``asyncio.run(fn(*args))`` in a forked child inside network namespace
    ``ns`` and return its (picklable) result; an exception in the child fails here."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        status = 0
        try:
            os.close(rfd)
            libc = ctypes.CDLL(None, use_errno=True)
            nsfd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            if libc.setns(nsfd, CLONE_NEWNET) != 0:  # os.setns arrives in Python 3.12
                raise OSError(ctypes.get_errno(), f"setns {ns}")
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            payload = ("ok", asyncio.run(fn(*args)))
        except BaseException as e:  # noqa: B036 - everything goes back to the parent
            payload = ("error", "".join(traceback.format_exception(e)))
            status = 1
        try:
            with os.fdopen(wfd, "wb") as w:
                w.write(pickle.dumps(payload))
            while True:  # reap what we inherited (dead apache parents)
                try:
                    if os.waitpid(-1, os.WNOHANG) == (0, 0):
                        break
                except ChildProcessError:
                    break
        finally:
            os._exit(status)
    os.close(wfd)
    chunks = []
    deadline = time.monotonic() + timeout
    with os.fdopen(rfd, "rb", buffering=0) as r:
        while True:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"child in {ns} did not finish within {timeout:g}s")
            chunk = r.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
    os.waitpid(pid, 0)
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        raise AssertionError(f"in namespace {ns}:\n{value}")
    return value
