"""Pacemaker 2.1 + corosync 3 in the peer lab, with the reference settings.

The reference cluster (shared/reference-setup.md) minus DRBD and the
filesystem, which this lab has no kernel module for: one group ``rg_web``
= IPaddr2 VIP -> apache, stickiness INFINITY, migration-threshold 1, every
monitor 20 s, action timeout 240 s, no STONITH, no-quorum-policy ignore;
corosync 3 over knet on one link, two_node, the default token (3 s).
PacemakerFenced / PacemakerFencedTuned: the same group with fencing (see
their docstrings), in a lab with a BMC per node.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from peerlab import (
    BASE,
    NODE_MOUNT,
    NODES,
    VIP,
    Blocked,
    PeerLab,
    other,
    outcome,
    random_phase,
    run,
    wait_until,
)

from hasupd_lab.bmc import BMC_USER

NAME = "pacemaker"
PACKAGES = ["pacemaker", "pacemaker-cli-utils", "corosync", "crmsh", "resource-agents", "apache2",
            "fence-agents", "openipmi", "ipmitool"]  # the last three: the fenced variants' BMCs
MONITOR = 20.0
GROUP = "rg_web"
SETTINGS = {
    "group": "rg_web = res_vip (ocf:heartbeat:IPaddr2) -> res_httpd (ocf:heartbeat:apache)",
    "resource-stickiness": "INFINITY", "migration-threshold": 1, "monitor_interval_s": MONITOR,
    "op_defaults timeout": "240s (the reference's default-action-timeout=240)", "stonith-enabled": False, "no-quorum-policy": "ignore",
    "corosync": "knet, one link, two_node: 1, token default (3000 ms; consensus 3600 ms)",
}

COROSYNC_CONF = """\
# corosync 3 / knet, two nodes, one link
totem {
    version: 2
    cluster_name: pkbench
    transport: knet
    crypto_cipher: none
    crypto_hash: none
%s}
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


FENCED_CRM_CONFIG = """\
property cib-bootstrap-options: stonith-enabled=true stonith-action=off stonith-timeout=60s \\
    no-quorum-policy=ignore priority-fencing-delay=2s
rsc_defaults rsc-options: resource-stickiness=INFINITY migration-threshold=1
op_defaults op-options: timeout=240s
primitive res_vip ocf:heartbeat:IPaddr2 \\
    params ip={vip} cidr_netmask=24 nic=eth0 \\
    op monitor interval={monitor:g}s meta priority=1
primitive res_httpd ocf:heartbeat:apache \\
    params configfile={mount}/httpd/httpd.conf httpd=/usr/sbin/apache2 \\
           statusurl="http://127.0.0.1/server-status" \\
    op monitor interval={monitor:g}s meta priority=1
group {group} res_vip res_httpd
{devices}
"""
# one fence_ipmilan per node against its BMC (as hasupd's lab configures its
# own fencing: cipher 3, power_wait 0), never run on the node it fences
FENCE_DEVICE = """\
primitive fence_{node} stonith:fence_ipmilan \\
    params ip={ip} username={user} password={password} lanplus=1 cipher=3 power_wait=0 \\
           pcmk_host_list={node} \\
    op monitor interval=60s
location l_fence_{node} fence_{node} -inf: {node}"""


class Pacemaker:
    name = NAME
    monitor = MONITOR
    token_ms: int | None = None  # corosync's default (3000 ms)
    fencing = False
    measures_footprint = True

    def __init__(self, lab: PeerLab):
        self.lab = lab

    @classmethod
    def settings(cls) -> dict:
        if not cls.fencing:
            return SETTINGS
        return {**SETTINGS, "monitor_interval_s": cls.monitor, "stonith-enabled": True,
                "fencing": "fence_ipmilan per node against its lab BMC (ipmi_sim, lanplus, cipher 3, power_wait 0), "
                           "stonith-action off, stonith-timeout 60s",
                "priority-fencing-delay": "2s (group resources priority 1: the owner wins a fence race)",
                "corosync": "knet, one link, two_node: 1, token "
                            + (f"{cls.token_ms} ms" if cls.token_ms else "default (3000 ms; consensus 3600 ms)")}

    def crm_config(self, password: str = "") -> str:
        if not self.fencing:
            return CRM_CONFIG
        devices = "\n".join(FENCE_DEVICE.format(node=n, ip=self.lab.topo.bmc_address(n), user=BMC_USER,
                                                 password=password) for n in NODES)
        return FENCED_CRM_CONFIG.format(vip=VIP, monitor=self.monitor, mount=NODE_MOUNT, group=GROUP,
                                        devices=devices)

    # ------------------------------------------------------------ set-up

    def boot(self, node: str) -> None:
        d = self.lab.dir(node)
        for sub in ("var-lib-pacemaker/cib", "var-lib-pacemaker/pengine", "var-lib-pacemaker/blackbox",
                    "var-lib-pacemaker/cores", "log-pacemaker", *MOUNTS.values()):
            (d / sub).mkdir(parents=True, exist_ok=True)
        members = "\n".join(f"    node {{\n        ring0_addr: {self.lab.topo.address(n, 0)}\n"
                            f"        name: {n}\n        nodeid: {i + 1}\n    }}" for i, n in enumerate(NODES))
        token = f"    token: {self.token_ms}\n" if self.token_ms else ""
        (d / "etc-corosync" / "corosync.conf").write_text(COROSYNC_CONF % (token, members))
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
        conf.write_text("")
        conf.chmod(0o600)  # the BMC password
        conf.write_text(self.crm_config(self.lab.bmc_password() if self.fencing else ""))
        run(self.lab.enter(NODES[0], ["crm", "configure", "load", "update", str(conf)]), timeout=120)
        if self.fencing:  # what was loaded stays readable, the password does not
            conf.write_text(self.crm_config("(redacted)"))
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


class PacemakerFenced(Pacemaker):
    """The reference group with fencing: fence_ipmilan against each node's
    BMC (ipmi_sim, as in hasupd's lab), stonith-enabled, stonith-action off,
    priority-fencing-delay 2 s with the group's resources at priority 1 (the
    node that runs the group gets the head start in a fence race: hasupd's
    owner_head_start 2s)."""
    name = "pacemaker_fence"
    fencing = True
    measures_footprint = False
    scenarios = ("power_cut", "hung", "partition")

    def power_cut(self, poller, owner: str) -> dict:
        at = time.time()
        self.lab.topo.isolate(owner)
        self.lab.kill_node(owner)
        return outcome(poller, at, owner, other(owner), 120)

    def restore_power_cut(self, old: str) -> None:
        self.restore_freeze(old)

    def hung(self, poller, owner: str) -> dict:
        at = self.lab.freeze(owner)
        res = outcome(poller, at, owner, other(owner), 120)
        fenced = self.lab.powered_off_at(owner)
        res["fenced_at"] = round(fenced - at, 4) if fenced else None
        return res

    def restore_hung(self, old: str) -> None:
        self.restore_freeze(old)

    def partition(self, poller, owner: str) -> dict:
        return partition_outcome(self.lab, poller, owner, lambda: self.lab.partition(), 120)

    def restore_partition(self, old: str) -> None:
        self.lab.topo.heal_partition()
        survivor = old if self.lab.power_is_on(old) else other(old)
        for node in NODES:
            if not self.lab.power_is_on(node):
                self.lab.kill_node(node)
                self.boot(node)
        self.wait_online(180, survivor)
        self.settle(survivor)


class PacemakerFencedTuned(PacemakerFenced):
    """The same with shorter timings: monitor every 2 s, corosync token 1000 ms
    (consensus 1200 ms)."""
    name = "pacemaker_fence_tuned"
    monitor = 2.0
    token_ms = 1000


def partition_outcome(lab: PeerLab, poller, owner: str, cut, timeout: float, hold: float = 2.0) -> dict:
    """A live partition: from the cut until one node is powered off (fenced)
    and the VIP answers from the other (the first probe sent after the power
    off that the survivor answered 200), the VIP holders sampled every ~20 ms
    throughout (and ``hold`` s after): ``two_holders`` counts the samples
    where both nodes had the VIP."""
    samples = {"n": 0, "two": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            holders = lab.vip_holders()
            samples["n"] += 1
            samples["two"] += len(holders) > 1
            time.sleep(0.02)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        at = cut()
        off = wait_until("a node powered off after the partition",
                         lambda: next((n for n in NODES if not lab.power_is_on(n)), None), timeout, 0.01)
        off_at = lab.powered_off_at(off) or time.time()
        survivor = other(off)
        first = poller.first_ok_from(survivor, off_at, timeout)
        time.sleep(hold)
    finally:
        stop.set()
        sampler.join()
    window = poller.sent(at, first.end)
    return {"from_fault": round(first.end - at, 4), "fenced_at": round(off_at - at, 4), "old": owner,
            "new": survivor, "fenced": off, "failed_probes": sum(1 for p in window if p.status != 200),
            "vip_samples": samples["n"], "two_holders": samples["two"],
            "still_on": [n for n in NODES if lab.power_is_on(n)]}


def versions() -> dict:
    out = {}
    for pkg in ("pacemaker", "corosync", "resource-agents", "crmsh", "apache2", "fence-agents", "openipmi"):
        p = run(["dpkg-query", "-W", "-f", "${Version}", pkg], check=False)
        out[pkg] = p.stdout.strip() if p.returncode == 0 else None
    return out


def config_files() -> dict:
    return {"crm": CRM_CONFIG, "corosync_totem": "defaults (token 3000 ms)"}


def check_installed() -> list[str]:
    """What is missing for this peer (commands, agents)."""
    missing = [c for c in ("corosync", "pacemakerd", "crm", "crm_resource", "crm_mon", "apache2", "fence_ipmilan",
                           "ipmi_sim", "ipmitool")
               if shutil.which(c) is None and not Path(f"/usr/sbin/{c}").exists()]
    missing += [a for a in ("IPaddr2", "apache")
                if not Path(f"/usr/lib/ocf/resource.d/heartbeat/{a}").exists()]
    return missing
