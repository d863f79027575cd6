"""The lab's BMCs (ipmi_sim) driven by Debian's fence_ipmilan, the fence
commands of hasupctl, the password kept out of every output, and the
partition faults cutting what they say."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

from labkit import ctl, wait_for

from hasupd_lab.cluster import Lab


def ipmilan(lab: Lab, node: str, target: str, action: str) -> subprocess.CompletedProcess:
    """fence_ipmilan run inside NODE against TARGET's BMC, options on stdin."""
    stdin = (f"action={action}\nip={lab.topo.bmc_address(target)}\nusername=admin\nlanplus=1\ncipher=3\n"
             f"power_wait=0\npassword={lab.bmc_password()}\n")
    return subprocess.run(lab.topo.exec_argv(node, ["fence_ipmilan"]), input=stdin, capture_output=True,
                          text=True, timeout=60)


def reaches(lab: Lab, node: str, address: str) -> bool:
    return lab.topo.run(node, ["ping", "-c1", "-W1", address], check=False).returncode == 0


def tcp_answer(lab: Lab, node: str, address: str, port: int) -> str:
    """"answered" (connected or refused: packets got through) or "silent"."""
    code = ("import socket,sys\n"
            "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), 2).close()\n"
            "except ConnectionRefusedError: pass\n"
            "except OSError: print('silent'); sys.exit()\n"
            "print('answered')\n")
    return lab.topo.run(node, ["python3", "-c", code, address, str(port)], check=False).stdout.strip()


class CmdlineWatch:
    """Samples every process's argv while running (for the canary)."""

    def __init__(self, needle: str):
        self.needle = needle.encode()
        self.agents_seen = 0
        self.leaks: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"fence_ipmilan" in cmdline:
                    self.agents_seen += 1
                    if self.needle in cmdline:
                        self.leaks.append(cmdline.decode(errors="replace"))
            time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def files_holding(root: Path, needle: str, allowed: set[Path]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        try:
            if path in allowed or not path.is_file() or path.stat().st_size > 8 << 20:
                continue
            if needle.encode() in path.read_bytes():
                found.append(str(path))
        except OSError:
            continue
    return found


def test_bmc_fence_commands_secrets_and_partitions(make_lab):
    lab = make_lab(guard="fence")
    password = lab.bmc_password()

    # the BMC answers fence_ipmilan over IPMI-over-LAN: 0 = on
    st = ipmilan(lab, "n1", "n2", "status")
    assert st.returncode == 0 and "Status: ON" in st.stdout, st

    # check runs each agent's metadata; fence test: status on every device, never off
    ctl(lab, "n1", "check")
    test = ctl(lab, "n1", "fence", "test")
    assert "n1 level 1 bmc-n1: ok - status works: n1 is on" in test.stdout, test.stdout
    assert "n2 level 1 bmc-n2: ok - status works: n2 is on" in test.stdout, test.stdout
    assert lab.daemon_pid("n2"), "a fence test never powers anything off"

    # fence n2 by hand: off through its BMC, confirmed by status; password in no argv
    with CmdlineWatch(password) as watch:
        fenced = ctl(lab, "n1", "fence", "n2", "--yes-really")
    assert "n2 fenced by level 1 (bmc-n2): confirmed off" in fenced.stdout, fenced.stdout
    assert watch.agents_seen > 0 and watch.leaks == []
    assert lab.daemon_pid("n2") is None, "n2's processes died with its power"
    off = ipmilan(lab, "n1", "n2", "status")
    assert off.returncode == 2 and "Status: OFF" in off.stdout, off

    # a second fence: the node is already off, no off is sent
    again = ctl(lab, "n1", "fence", "n2", "--yes-really")
    assert "n2 is already off" in again.stdout, again.stdout

    status = json.loads(ctl(lab, "n1", "status", "--json").stdout)
    last = status["fencing"]["last_fence"]
    assert last["node"] == "n2" and last["ok"] and last["already_off"] and last["by"] == "n1"
    assert {d["name"]: d["last_test"]["ok"] for d in status["fencing"]["devices"]} == \
        {"bmc-n1": True, "bmc-n2": True}
    text_status = ctl(lab, "n1", "status").stdout
    history = ctl(lab, "n1", "history", "--json").stdout
    for where, text in (("status", json.dumps(status)), ("status text", text_status), ("history", history),
                        ("fence output", fenced.stdout + fenced.stderr + again.stdout)):
        assert password not in text, f"the BMC password is in the {where}"
    allowed = {lab.dir / "bmc.password", *(lab.dir / f"bmc-{n}" / "lan.conf" for n in ("n1", "n2")),
               *(lab.node_dir(n) / "fence" / "bmc.secret" for n in ("n1", "n2"))}
    assert files_holding(lab.dir, password, allowed) == [], "logs, history, state hold no password"
    journal = subprocess.run(["journalctl", "-o", "verbose", "--no-pager", "-S", "-15min"],
                             capture_output=True, text=True, timeout=120)
    assert f"--config {lab.config_path('n1')}" in journal.stdout, "this lab's journal records were read"
    assert password not in journal.stdout, "the BMC password is in the journal"

    # power on through the BMC boots the node again
    on = ipmilan(lab, "n1", "n2", "on")
    assert on.returncode == 0, on
    wait_for("n2's daemon after power on", lambda: lab.daemon_pid("n2"), timeout=60)
    assert ipmilan(lab, "n1", "n2", "status").returncode == 0

    # bmc-down: n2's BMC unreachable, its status fails (neither on nor off), fence test says so
    lab.fault("n2", "bmc-down")
    down = ipmilan(lab, "n1", "n2", "status")
    assert down.returncode not in (0, 2), down
    failed = ctl(lab, "n1", "fence", "test", "n2", check=False)
    assert failed.returncode == 1 and "bmc-n2: FAILED" in failed.stdout, failed.stdout
    lab.fault("n2", "bmc-up")
    assert ipmilan(lab, "n1", "n2", "status").returncode == 0

    # partitions (daemons stopped first: this checks the network, not the policy)
    for node in ("n1", "n2"):
        lab.fault(node, "kill-daemon")
    drbd_port = 7789
    assert reaches(lab, "n1", lab.topo.mgmt_address("n2"))
    lab.fault("n1", "partition")
    for ring in (0, 1):
        assert not reaches(lab, "n1", lab.topo.address("n2", ring))
        assert not reaches(lab, "n2", lab.topo.address("n1", ring))
    assert tcp_answer(lab, "n1", lab.topo.address("n2", 0), drbd_port) == "silent"
    assert not reaches(lab, "n1", lab.topo.mgmt_address("n2")), "no path over the management network"
    for node in ("n1", "n2"):
        assert reaches(lab, node, lab.topo.address("client", 0)), f"{node} still reaches the client"
        assert reaches(lab, node, lab.topo.bmc_address("n1")) and reaches(lab, node, lab.topo.bmc_address("n2"))
    lab.fault("n1", "heal")
    lab.fault("n1", "partition-rings")
    assert not reaches(lab, "n1", lab.topo.address("n2", 0))
    assert not reaches(lab, "n1", lab.topo.address("n2", 1))
    assert tcp_answer(lab, "n1", lab.topo.address("n2", 0), drbd_port) == "answered"
    assert reaches(lab, "n2", lab.topo.address("client", 0))
    lab.fault("n1", "heal")
    assert reaches(lab, "n1", lab.topo.address("n2", 0)) and reaches(lab, "n1", lab.topo.address("n2", 1))


def test_hung_owner_is_fenced_through_its_bmc_then_taken_over(make_lab, monitor_of):
    """The engine's FENCE goes through fence_ipmilan and the owner's BMC: the
    frozen owner is powered off (its processes die), then the peer serves."""
    from labkit import served_by
    lab = make_lab(guard="fence")
    monitor = monitor_of(lab)
    owner = wait_for("the group served", lambda: served_by(lab), timeout=60)
    other = "n2" if owner == "n1" else "n1"
    monitor.note_fault(owner, "freeze")  # a frozen node acts on nothing; the BMC then powers it off
    frozen_at = time.time()
    lab.fault(owner, "freeze")
    wait_for(f"{other} serving", lambda: served_by(lab) == other, timeout=120)
    last = json.loads(ctl(lab, other, "status", "--json").stdout)["fencing"]["last_fence"]
    assert last["ok"] and last["node"] == owner and last["device"] == f"bmc-{owner}", last
    assert not last["already_off"], "a hung node is on: it needed the off"
    assert lab.daemon_pid(owner) is None and ipmilan(lab, other, owner, "status").returncode == 2
    report = monitor.stop()
    assert report.violations == [], report.violations
    served_at = report.first_ok_after(frozen_at, other)
    assert served_at is not None and served_at >= last["when"], "served by the peer only after the fence"
