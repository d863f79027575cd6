"""Issue 16, the daemon's robustness: the systemd watchdog during long actions,
exceptions that must not end the daemon, a full state directory, and secrets
that must never reach an output.  The real daemon (or the real Engine) on the
loopback, with a real OCF agent, notify socket, control socket and alert agent."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time

import pytest

from hasupd import config as configmod
from hasupd.daemon import build_engine
from tests.robustkit import OneNode, wait_until


@pytest.fixture
def node(tmp_path):
    made: list[OneNode] = []

    def make(**kw) -> OneNode:
        n = OneNode(tmp_path, **kw)
        made.append(n)
        return n

    make.made = made
    yield make
    for n in made:
        n.stop()
        if n.proc is not None and n.proc.returncode not in (0, None):
            print(n.log.read_text(errors="replace")[-3000:])


def notify_socket(tmp_path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    return sock, path


# ---------------------------------------------------------------- the watchdog (High 4)


def test_watchdog_keeps_pinging_during_a_long_start(node, tmp_path):
    """WatchdogSec=2s and a 6 s OCF start: the pings must not stop while the action runs."""
    sock, path = notify_socket(tmp_path)
    n = node(params={"delay": "6"})
    try:
        n.start({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
        pings: list[float] = []
        started_at = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                msg = sock.recv(4096).decode()
            except socket.timeout:
                msg = ""
            now = time.monotonic()
            if "WATCHDOG=1" in msg.split("\n") or "READY=1" in msg.split("\n"):
                pings.append(now)  # from READY=1 on, systemd expects the pings
            if started_at is None and n.app_state.exists():
                started_at = now
            if started_at is not None and now - started_at > 2:
                break
    finally:
        sock.close()
    assert started_at is not None, "the slow start never finished"
    ends = pings + [time.monotonic()]  # the silence since the last ping counts too
    gaps = [b - a for a, b in zip(ends, ends[1:])]
    print(f"{len(pings)} pings, largest gap {max(gaps):.2f}s")
    assert len(pings) >= 10 and max(gaps) < 2.0, f"a gap of {max(gaps):.1f}s: systemd would kill hasupd"


def drain(s: socket.socket) -> None:
    """Drop the datagrams already queued on s."""
    s.setblocking(False)
    while True:
        try:
            s.recv(4096)
        except BlockingIOError:
            return


async def count_pings(s: socket.socket, seconds: float) -> int:
    """WATCHDOG=1 datagrams received on s within seconds (on the running loop)."""
    loop = asyncio.get_running_loop()
    end = time.monotonic() + seconds
    got = 0
    s.setblocking(False)
    while time.monotonic() < end:
        try:
            data = await asyncio.wait_for(loop.sock_recv(s, 4096), max(0.01, end - time.monotonic()))
        except asyncio.TimeoutError:
            break
        got += data.split(b"\n").count(b"WATCHDOG=1")
    return got


def test_watchdog_stops_when_the_loop_is_really_stuck(tmp_path, monkeypatch):
    """A reconcile round that never returns (a bug: a call without a bound) stops the pings."""
    from hasupd import engine as enginemod
    from hasupd.daemon import SystemdNotifier

    n = OneNode(tmp_path)
    cfg = configmod.load(n.config)
    sock, path = notify_socket(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    notifier = SystemdNotifier()
    monkeypatch.setattr(enginemod, "STALL_LIMIT", 3.0, raising=False)  # the test's patience, not production's

    async def scenario() -> tuple[int, int]:
        engine = build_engine(cfg, "n1", n.key.read_bytes(), notify=notifier)
        stuck = asyncio.Event()
        real = engine.reconcile

        async def reconcile_then_hang():
            await real()
            if time.monotonic() - engine.started_at > 3:
                stuck.set()
                await asyncio.Event().wait()  # never returns

        engine.reconcile = reconcile_then_hang
        task = asyncio.create_task(engine.run())
        before = await count_pings(sock, 2.0)  # the loop is healthy (waiting for initdead, starting)
        await asyncio.wait_for(stuck.wait(), 30)
        await asyncio.sleep(3.5)  # past STALL_LIMIT: the pings must have stopped by now
        drain(sock)  # what was sent while the loop was still within its limit
        after = await count_pings(sock, 3.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for t in engine.tasks:
            t.cancel()
        await asyncio.gather(*engine.tasks, return_exceptions=True)
        await engine.heartbeat.close()
        await engine.alerter.close()
        return before, after

    try:
        before, after = asyncio.run(scenario())
    finally:
        sock.close()
    assert before >= 2, "the watchdog did not ping while the loop was only waiting"
    assert after == 0, f"{after} pings although the reconcile loop has been stuck for over 3s"


# ---------------------------------------------------------------- exceptions never end the daemon (Medium 6)


async def running_engine(n: OneNode, body, **engine_kw):
    """Run the real Engine in-process while body(engine) runs; returns body's result."""
    cfg = configmod.load(n.config)
    engine = build_engine(cfg, "n1", n.key.read_bytes(), **engine_kw)
    task = asyncio.create_task(engine.run())
    try:
        result = await body(engine)
        assert not task.done(), f"the engine ended: {task.exception() if not task.cancelled() else 'cancelled'}"
        return result
    finally:
        engine.request_stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 60)


async def until(what: str, predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def group_running(engine) -> bool:
    return engine.resources["res_app"].state.value == "started" and "rg" in engine.claims


@pytest.mark.parametrize("payload", [
    {"node": {"name": "n2", "drbd": []}},
    {"node": {"name": "n2", "claims": {"rg": 1e999}}},
    {"node": {"name": "n2", "resources": {"res_app": {"state": "started", "since": "x"}}}},
    {"node": {"name": "n2"}, "state": {"e": 1e999}},
    {"node": {"name": "n2"}, "state": {"f": [[0, 0, 0, 1e999, 1, 1]], "n": ["n2", "rg", "res_app"]}},
    {"node": "n2"},
    {"state": []},
    {"N": {"n": "n2", "d": []}},
    {"N": {"n": "n2", "d": {"r0": {"role": 5}}}},
    {"N": {"n": "n2", "e": {"1e999": "rg"}}},
    {"N": {"n": "n2", "r": {"bogus": "res_app"}}},
    {"N": "n2"},
])
def test_bad_peer_payloads_are_dropped_and_counted(tmp_path, payload):
    from hasupd.membership.heartbeat import PeerPayload

    n = OneNode(tmp_path)

    async def body(engine):
        await until("the group to run", lambda: group_running(engine))
        before = engine.heartbeat.counters["bad_payload"]
        engine.heartbeat.events.put_nowait(PeerPayload(payload))
        await until("the payload to be counted", lambda: engine.heartbeat.counters["bad_payload"] > before)
        engine.view()  # the merge and the view never raise on it
        await asyncio.sleep(1.5)  # a few reconcile rounds with it
        return engine.heartbeat.counters["bad_payload"] - before

    assert asyncio.run(running_engine(n, body)) == 1


def test_an_exception_in_an_action_is_a_failed_action(tmp_path):
    """A driver that raises (a bug) gives a failed action: recorded, alerted, handled by the policy."""
    n = OneNode(tmp_path)

    async def body(engine):
        drv = engine.drivers["res_app"]

        async def broken_start():
            raise RuntimeError("driver bug")

        drv.start = broken_start
        await until("the failed start to be handled", lambda: engine.store.state.fails)
        await asyncio.sleep(1.0)
        return engine

    engine = asyncio.run(running_engine(n, body))
    history = n.history_text()
    assert "driver bug" in history and '"ok":false' in history
    assert "action_failed" in history
    assert engine.resources["res_app"].state.value == "failed"


def test_full_state_directory_keeps_the_daemon_running_and_retries(node, tmp_path):
    """/var/lib/hasupd full (ENOSPC on the claim's save): keep running from memory, alert, retry."""
    state = tmp_path / "rb-state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "rbstate", str(state)], check=True)
    try:
        filler = state / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"x" * 1024)
        except OSError:
            pass
        finally:
            os.close(fd)
        n = node(state_dir=state)
        proc = n.start()
        wait_until("the group to run", lambda: n.app_state.exists() or proc.poll() is not None, 60)
        time.sleep(2.0)
        assert proc.poll() is None, f"hasupd exited {proc.returncode}:\n{n.log.read_text()[-2000:]}"
        assert n.app_state.exists()
        alerts = wait_until("the alert", lambda: "state_write_failed" in n.alert_inputs() and n.alert_inputs(), 30)
        assert "No space left on device" in alerts
        st = n.status()
        assert any("state" in w and "No space left" in w for w in st.get("warnings", [])), st.get("warnings")
        filler.unlink()
        saved = wait_until("the retried write", lambda: (state / "state.json").exists()
                           and json.loads((state / "state.json").read_text()), 30)
        assert "rg" in json.dumps(saved)
        assert proc.poll() is None
    finally:
        for made in node.made:
            made.stop()
        subprocess.run(["umount", str(state)], check=False)


@pytest.mark.parametrize("params, words", [
    ({"a=b": "1"}, "'a=b' is not an OCF parameter name"),
    ({"ok": "a\u0000b"}, "NUL"),
    ({"": "x"}, "not an OCF parameter name"),
])
def test_check_refuses_ocf_parameters_the_driver_cannot_run(tmp_path, params, words):
    """An OCF parameter becomes OCF_RESKEY_<name>=<value> in the agent's environment: a name
    with '=' or a value with a NUL passed `check` and then raised ValueError in the probe."""
    n = OneNode(tmp_path, params=params)
    out = n.ctl("check", check=False)
    assert out.returncode == 78, (out.returncode, out.stdout, out.stderr)
    assert words in out.stderr and "hasupd.yaml:" in out.stderr, out.stderr


# ---------------------------------------------------------------- secrets (Medium 7)

CANARY = "Canary-s3cret-7781"
CANARY_OCF = "ocf-Canary-9923"

FENCE_AGENT = """#!/bin/sh
# a fence agent that fails the way a real one does: it repeats its command line
echo "Failed: Unable to obtain correct plug status or plug is not available; args: $*" >&2
exit 1
"""


def test_a_canary_password_reaches_no_output(node, tmp_path):
    """A password in the fence command line and in an OCF parameter: not in the stderr log,
    the journal/syslog line, history.jsonl, the alert agents' input, `status --json`,
    `hasupctl history` or `hasupctl check`."""
    agent = tmp_path / "fence_rb"
    agent.write_text(FENCE_AGENT)
    agent.chmod(0o755)
    extra = ("split_brain_guard:\n  mode: fence\n  fence:\n"
             f"    command: [{agent}, --ip=10.99.9.9, --username=admin, --password={CANARY}, -n, '{{peer}}']\n"
             "    timeout: 10s\n")
    n = node(params={"passwd": CANARY_OCF}, extra=extra)
    n.config.write_text(n.config.read_text().replace("split_brain_guard: {mode: none}\n", ""))
    proc = n.start()
    wait_until("a failed fence in the history", lambda: '"action":"fence"' in n.history_text()
               and '"ok":false' in n.history_text(), 60)
    wait_until("the fence alert at the agent", lambda: "fence_result" in n.alert_inputs(), 30)
    assert proc.poll() is None
    outputs = {
        "stderr log": n.log.read_text(errors="replace"),
        "history.jsonl": n.history_text(),
        "alert agent input": n.alert_inputs(),
        "status --json": n.ctl("status", "--json").stdout,
        "status": n.ctl("status").stdout,
        "hasupctl history": n.ctl("history", check=False).stdout,
        "hasupctl check": n.ctl("check").stdout,
    }
    # the paths were taken: the fence ran and failed, and the message travelled
    assert "Unable to obtain correct plug status" in outputs["history.jsonl"]
    assert "--password=***" in outputs["history.jsonl"] or "***" in outputs["history.jsonl"]
    for where, text in outputs.items():
        assert CANARY not in text, f"the fence password reached the {where}"
        assert CANARY_OCF not in text, f"the OCF password parameter reached the {where}"
