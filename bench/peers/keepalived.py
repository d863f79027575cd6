"""keepalived (VRRP) in the peer lab, at its defaults.

One VRRP instance holds the VIP; a ``vrrp_script`` checks every second
that this node's apache main process is alive (kill -0 of the pid in its
PidFile: a check through HTTP would still pass after a ``kill -9`` of the
main process, whose workers keep serving).  Apache runs on both nodes all
the time (keepalived only moves the address); both nodes start BACKUP
with ``nopreempt``, so the VIP stays where it is, as stickiness does.
``track_process`` would be event-driven, but it needs the proc connector,
which exists only in the initial network namespace (the recipe's finding).
A planned move has no keepalived command, so it is not measured.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from peerlab import BASE, NODE_MOUNT, NODES, VIP, Blocked, PeerLab, other, outcome, random_phase, run

NAME = "keepalived"
PACKAGES = ["keepalived", "apache2"]
ADVERT = 1.0
CHECK_SCRIPT = BASE / "chk_httpd.sh"
SETTINGS = {"advert_int_s": ADVERT, "vrrp_version": 2, "vrrp_script": "kill -0 of apache's main pid, "
            "interval 1 s, fall 1, rise 1", "state": "BACKUP + nopreempt on both (sticky)",
            "priorities": {NODES[0]: 100, NODES[1]: 90}}

CONF = """\
global_defs {
    router_id %(node)s
    script_user root
    enable_script_security
}
vrrp_script chk_httpd {
    script "%(script)s"
    interval 1
    timeout 1
    fall 1
    rise 1
}
vrrp_instance VI_1 {
    state BACKUP
    nopreempt
    interface eth0
    virtual_router_id 77
    priority %(priority)d
    advert_int %(advert)g
    virtual_ipaddress {
        %(vip)s/24 dev eth0
    }
    track_script {
        chk_httpd
    }
}
"""


class Keepalived:
    name = NAME

    def __init__(self, lab: PeerLab):
        self.lab = lab

    def boot(self, node: str) -> None:
        conf = self.lab.dir(node) / "keepalived.conf"
        conf.write_text(CONF % {"node": node, "script": CHECK_SCRIPT, "priority": SETTINGS["priorities"][node],
                                "advert": ADVERT, "vip": VIP})
        (self.lab.dir(node) / "keepalived.out").unlink(missing_ok=True)  # wait_backup reads a fresh log
        self.lab.boot(node, {})
        self.lab.start_httpd(node)
        self.lab.spawn(node, "keepalived", ["keepalived", "-n", "-l", "-D", "-f",
                                            str(NODE_MOUNT / "keepalived.conf")])

    def up(self) -> None:
        CHECK_SCRIPT.write_text("#!/bin/sh\n# keepalived vrrp_script: is this node's apache main process alive?\n"
                                f'exec kill -0 "$(cat {NODE_MOUNT}/httpd/httpd.pid 2>/dev/null)" 2>/dev/null\n')
        CHECK_SCRIPT.chmod(0o755)
        for node in NODES:
            self.boot(node)

    def daemon_processes_excluded(self) -> tuple[str, ...]:
        return ("apache2", "sleep", "nsenter", "sh", "chk_httpd.sh", "kill", "cat")

    def wait_backup(self, node: str, timeout: float = 30) -> None:
        """Until the node's keepalived says it is BACKUP (ready to take over)."""
        log = self.lab.dir(node) / "keepalived.out"
        deadline = time.monotonic() + timeout
        while True:
            lines = log.read_text(errors="replace").splitlines() if log.exists() else []
            states = [ln for ln in lines if "Entering" in ln and "STATE" in ln]
            if states and "BACKUP" in states[-1]:
                return
            if time.monotonic() > deadline:
                raise Blocked(f"keepalived on {node} is not BACKUP after {timeout:g}s: "
                              + " | ".join(lines[-8:]))
            time.sleep(0.2)

    scenarios = ("kill_httpd", "freeze")

    # each scenario measures one fault on the owner; restore_<scenario>(old owner) heals the cluster

    def kill_httpd(self, poller, owner: str) -> dict:
        random_phase(1.0)  # the script runs every second
        at = self.lab.kill_httpd(owner)
        return outcome(poller, at, owner, other(owner), 60)

    def restore_kill_httpd(self, old: str) -> None:
        self.lab.kill_stray_httpd(old)
        self.lab.start_httpd(old)
        self.wait_backup(old)

    def freeze(self, poller, owner: str) -> dict:
        random_phase(ADVERT)
        at = self.lab.freeze(owner)
        return outcome(poller, at, owner, other(owner), 60)

    def restore_freeze(self, old: str) -> None:
        self.lab.revive(old)
        self.boot(old)
        self.wait_backup(old)


def versions() -> dict:
    out = {}
    for pkg in ("keepalived", "apache2"):
        p = run(["dpkg-query", "-W", "-f", "${Version}", pkg], check=False)
        out[pkg] = p.stdout.strip() if p.returncode == 0 else None
    return out


def config_files() -> dict:
    return {"keepalived.conf (n1)": CONF % {"node": "n1", "script": CHECK_SCRIPT, "priority": 100,
                                            "advert": ADVERT, "vip": VIP}}


def check_installed() -> list[str]:
    return [c for c in ("keepalived", "apache2")
            if shutil.which(c) is None and not Path(f"/usr/sbin/{c}").exists()]
