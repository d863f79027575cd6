"""Pacemaker 2.1 + corosync 3 in the peer lab, with the reference settings.

The reference cluster (shared/reference-setup.md) minus DRBD and the
filesystem, which this lab has no kernel module for: one group ``rg_web``
= IPaddr2 VIP -> apache, stickiness INFINITY, migration-threshold 1, every
monitor 20 s, action timeout 240 s, no STONITH, no-quorum-policy ignore;
corosync 3 over knet on one link, two_node, the default token (3 s).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from peerlab import BASE, NODE_MOUNT, NODES, VIP, Blocked, PeerLab, other, outcome, random_phase, run

NAME = "pacemaker"
PACKAGES = ["pacemaker", "pacemaker-cli-utils", "corosync", "crmsh", "resource-agents", "apache2"]
MONITOR = 20.0
GROUP = "rg_web"
SETTINGS = {
    "group": "rg_web = res_vip (ocf:heartbeat:IPaddr2) -> res_httpd (ocf:heartbeat:apache)",
    "resource-stickiness": "INFINITY", "migration-threshold": 1, "monitor_interval_s": MONITOR,
    "op_defaults timeout": "240s (the reference's default-action-timeout=240)", "stonith-enabled": False, "no-quorum-policy": "ignore",
    "corosync": "knet, one link, two_node: 1, token default (3000 ms; consensus 3600 ms)",
}

COROSYNC_CONF = """\
# corosync 3 / knet, two nodes, one link; the totem timings are the defaults
totem {
    version: 2
    cluster_name: pkbench
    transport: knet
    crypto_cipher: none
    crypto_hash: none
}
nodelist {
%s
}
quorum {
    provider: corosync_votequorum
    two_node: 1
}
logging {
    to_logfile: yes
    logfile: /var/log/corosync/corosync.log
    to_stderr: no
    to_syslog: no
    timestamp: on
}
"""

CRM_CONFIG = f"""\
property cib-bootstrap-options: stonith-enabled=false no-quorum-policy=ignore
rsc_defaults rsc-options: resource-stickiness=INFINITY migration-threshold=1
op_defaults op-options: timeout=240s
primitive res_vip ocf:heartbeat:IPaddr2 \\
    params ip={VIP} cidr_netmask=24 nic=eth0 \\
    op monitor interval={MONITOR:g}s
primitive res_httpd ocf:heartbeat:apache \\
    params configfile={NODE_MOUNT}/httpd/httpd.conf httpd=/usr/sbin/apache2 \\
           statusurl="http://127.0.0.1/server-status" \\
    op monitor interval={MONITOR:g}s
group {GROUP} res_vip res_httpd
"""

# node path -> directory under BASE/NODE
MOUNTS = {"/etc/corosync": "etc-corosync", "/var/lib/corosync": "var-lib-corosync",
          "/var/log/corosync": "log-corosync", "/var/lib/pacemaker": "var-lib-pacemaker",
          "/var/log/pacemaker": "log-pacemaker"}
DAEMON_PROCESSES_EXCLUDED = ("apache2", "sleep", "nsenter", "sh")


class Pacemaker:
    name = NAME

    def __init__(self, lab: PeerLab):
        self.lab = lab

    # ------------------------------------------------------------ set-up

    def boot(self, node: str) -> None:
        d = self.lab.dir(node)
        for sub in ("var-lib-pacemaker/cib", "var-lib-pacemaker/pengine", "var-lib-pacemaker/blackbox",
                    "var-lib-pacemaker/cores", "log-pacemaker", *MOUNTS.values()):
            (d / sub).mkdir(parents=True, exist_ok=True)
        members = "\n".join(f"    node {{\n        ring0_addr: {self.lab.topo.address(n, 0)}\n"
                            f"        name: {n}\n        nodeid: {i + 1}\n    }}" for i, n in enumerate(NODES))
        (d / "etc-corosync" / "corosync.conf").write_text(COROSYNC_CONF % members)
        self.lab.boot(node, MOUNTS, extra_setup="\n".join([
            "mkdir -p /run/crm /run/pacemaker",
            "chown hacluster:haclient /run/crm /run/pacemaker /var/lib/pacemaker /var/lib/pacemaker/*"
            " /var/log/pacemaker",
            "chmod 750 /var/lib/pacemaker/*", "chmod 770 /var/log/pacemaker"]))
        corosync = self.lab.spawn(node, "corosync", ["corosync", "-f"])
        wait = time.monotonic() + 30
        while run(self.lab.enter(node, ["corosync-cfgtool", "-s"]), check=False).returncode != 0:
            if time.monotonic() > wait or self.lab.exited(corosync):
                raise Blocked(f"corosync did not start on {node}: {self._tail(node, 'corosync.out')}")
            time.sleep(0.2)
        self.lab.spawn(node, "pacemakerd", ["pacemakerd", "-f"])

    def up(self) -> None:
        for node in NODES:
            self.boot(node)
        self.wait_online(120)
        conf = BASE / "crm-config.txt"
        conf.write_text(CRM_CONFIG)
        run(self.lab.enter(NODES[0], ["crm", "configure", "load", "update", str(conf)]), timeout=120)
        self.settle()

    def crm_mon(self, node: str) -> str:
        return run(self.lab.enter(node, ["crm_mon", "-1"]), check=False, timeout=30).stdout

    def wait_online(self, timeout: float, node: str = NODES[0]) -> None:
        deadline = time.monotonic() + timeout
        while True:
            out = self.crm_mon(node)
            if f"Online: [ {' '.join(NODES)} ]" in out and "Current DC: NONE" not in out:
                return
            if time.monotonic() > deadline:
                raise Blocked(f"the Pacemaker nodes did not both come online in {timeout:g}s; crm_mon:\n"
                              f"{out.strip()[-600:]}\n{self._tail(node, 'pacemakerd.out')}")
            time.sleep(1)

    def settle(self, node: str = NODES[0]) -> None:
        """Until the cluster has nothing left to do."""
        run(self.lab.enter(node, ["crm_resource", "--wait", "--timeout", "120s"]), timeout=150)

    def _tail(self, node: str, name: str) -> str:
        path = self.lab.dir(node) / name
        lines = path.read_text(errors="replace").splitlines()[-10:] if path.exists() else []
        return f"{path}: " + " | ".join(lines)

    def daemon_processes_excluded(self) -> tuple[str, ...]:
        return DAEMON_PROCESSES_EXCLUDED

    # ------------------------------------------------------------ scenarios

    scenarios = ("kill_httpd", "freeze", "move")

    # each scenario measures one fault on the owner; restore_<scenario>(old owner) heals the cluster

    def kill_httpd(self, poller, owner: str) -> dict:
        random_phase(MONITOR)  # the failure lands anywhere in the 20 s monitor period
        at = self.lab.kill_httpd(owner)
        return outcome(poller, at, owner, other(owner), 120)

    def restore_kill_httpd(self, old: str) -> None:
        new = other(old)
        self.settle(new)
        self.lab.kill_stray_httpd(old)
        run(self.lab.enter(new, ["crm_resource", "--cleanup", "--resource", "res_httpd", "--node", old]))
        self.settle(new)

    def freeze(self, poller, owner: str) -> dict:
        at = self.lab.freeze(owner)
        return outcome(poller, at, owner, other(owner), 120)

    def restore_freeze(self, old: str) -> None:
        self.lab.revive(old)
        self.boot(old)
        self.wait_online(180, other(old))
        self.settle(other(old))

    def move(self, poller, owner: str) -> dict:
        new = other(owner)
        at = time.time()
        # --force: without it stickiness INFINITY ties the INFINITY move preference and nothing moves
        run(self.lab.enter(new, ["crm_resource", "--move", "--resource", GROUP, "--node", new, "--force"]))
        return outcome(poller, at, owner, new, 120)

    def restore_move(self, old: str) -> None:
        new = other(old)
        self.settle(new)
        run(self.lab.enter(new, ["crm_resource", "--clear", "--resource", GROUP]))
        self.settle(new)


def versions() -> dict:
    out = {}
    for pkg in ("pacemaker", "corosync", "resource-agents", "crmsh", "apache2"):
        p = run(["dpkg-query", "-W", "-f", "${Version}", pkg], check=False)
        out[pkg] = p.stdout.strip() if p.returncode == 0 else None
    return out


def config_files() -> dict:
    return {"crm": CRM_CONFIG, "corosync_totem": "defaults (token 3000 ms)"}


def check_installed() -> list[str]:
    """What is missing for this peer (commands, agents)."""
    missing = [c for c in ("corosync", "pacemakerd", "crm", "crm_resource", "crm_mon", "apache2")
               if shutil.which(c) is None and not Path(f"/usr/sbin/{c}").exists()]
    missing += [a for a in ("IPaddr2", "apache")
                if not Path(f"/usr/lib/ocf/resource.d/heartbeat/{a}").exists()]
    return missing
