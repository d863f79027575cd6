"""hasupd.resources.base.run, the one place drivers start programs from:
what the children inherit and how much of their output is kept (issue 16 low)."""

from __future__ import annotations

import asyncio
import tracemalloc

from hasupd.resources.base import run


def test_children_do_not_inherit_the_service_managers_variables(monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    monkeypatch.setenv("LISTEN_FDS", "1")
    r = asyncio.run(run(["env"], 10, env={"OCF_ROOT": "/usr/lib/ocf"}))
    assert r.ok, r.message
    names = {line.split("=", 1)[0] for line in r.output.splitlines()}
    assert not names & {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS"}, names
    assert "OCF_ROOT=/usr/lib/ocf" in r.output.splitlines() and "PATH" in names


def test_output_is_read_with_a_bound():
    tracemalloc.start()
    try:
        r = asyncio.run(run(["head", "-c", "100000000", "/dev/zero"], 60))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.ok, r.message
    assert len(r.output) <= 4000
    assert peak < 16 << 20, f"{peak >> 20} MiB held for 100 MB of output"


def test_a_nul_byte_is_a_failed_result_not_an_exception():
    r = asyncio.run(run(["echo", "a\x00b"], 10))
    assert not r.ok and "NUL" in r.message
    r = asyncio.run(run(["true"], 10, env={"X": "a\x00b"}))
    assert not r.ok and "NUL" in r.message


def test_a_run_cancelled_at_shutdown_leaves_no_unretrieved_exception():
    """`systemctl restart hasupd` while a command runs: asyncio.run cancels every task at exit, the
    gathered readers included; their CancelledError must not reach the journal as a traceback
    ("_GatheringFuture exception was never retrieved", seen in the VM campaign)."""
    import gc
    seen = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: seen.append(ctx.get("message")))
        asyncio.get_running_loop().create_task(run(["sleep", "10"], 30))
        await asyncio.sleep(0.3)

    asyncio.run(main())
    gc.collect()
    assert seen == []
