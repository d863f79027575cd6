"""The daemon under a systemd-like supervisor: sd_notify READY/STATUS/WATCHDOG,
SIGTERM behaviour, and the journal records of a failover."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

from tests.lab.labkit import served_by, wait_for


def test_notify_ready_status_and_watchdog(make_lab, tmp_path):
    lab = make_lab(start=False)
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(1.0)
    try:
        lab.start_daemon("n1", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
        lab.start_daemon("n2")
        got: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                "READY=1" in got and got.count("WATCHDOG=1") >= 3 and any(g.startswith("STATUS=") for g in got)):
            try:
                got += sock.recv(4096).decode().split("\n")
            except socket.timeout:
                pass
    finally:
        sock.close()
    assert "READY=1" in got, got
    assert got.count("WATCHDOG=1") >= 3, got  # pinged at half WATCHDOG_USEC while the loop is healthy
    status = [g for g in got if g.startswith("STATUS=")]
    assert any("peer" in s for s in status), status


def test_sigterm_leaves_resources_running_by_default(make_lab):
    lab = make_lab()
    owner = wait_for("an owner", lambda: served_by(lab), timeout=60)
    pid = lab.daemon_pid(owner)
    httpd = lab.httpd_pid(owner)
    os.kill(pid, signal.SIGTERM)
    wait_for("the daemon to exit", lambda: not lab.alive(pid), timeout=30)
    assert lab.httpd_pid(owner) == httpd and served_by(lab) == owner


def test_failover_is_in_the_journal_with_fields(make_lab):
    if not os.path.exists("/run/systemd/journal/socket"):
        raise AssertionError("the lab starts journald when none runs; its socket is missing")
    lab = make_lab()
    owner = wait_for("an owner", lambda: served_by(lab), timeout=60)
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 1))
    lab.fault(owner, "kill-httpd")
    peer = {"n1": "n2", "n2": "n1"}[owner]
    wait_for("the peer to serve", lambda: served_by(lab) == peer, timeout=60)

    def records():
        out = subprocess.run(["journalctl", "--since", since, "HASUPD_EVENT=resource_failed", "-o", "json",
                              "--no-pager"], capture_output=True, text=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    recs = wait_for("the resource_failed record", lambda: [r for r in records()
                                                           if r.get("HASUPD_NODE") == owner], timeout=30)
    r = recs[-1]
    assert r["HASUPD_GROUP"] == "rg_web" and r["HASUPD_RESOURCE"] == "res_httpd"
    assert int(r["PRIORITY"]) <= 4  # warning or worse
