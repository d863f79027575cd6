"""`make test-vm-campaign`: acknowledged writes through a campaign of faults on real DRBD.

    python3 tests/vm/campaign.py --deb dist/hasupd_0.1.0_all.deb [--faults KIND,KIND,...]

The two VMs of `make test-vm` (tests/vm/e2e.py: same image, same setup),
with three changes:

* Their cables are switch ports: each VM's NICs are tap devices on bridges
  in one network namespace (`cpvm<pid>`), where both qemu processes run.
  Ring 0 (DRBD, VIP) is bridge cpb0, where the client sits (10.99.0.100);
  ring 1 is cpb1; the management network is cpbm (the VMs' eth2,
  10.77.0.N), where the two BMCs listen.  A live partition isolates the VMs'
  ports on cpb0 and cpb1 from each other (`bridge link set ... isolated on`):
  both VMs keep running, see their links up, and are still reachable by the
  client, but no frame passes between them.  The VMs' management ports are
  always isolated from each other: they reach the BMCs only.
* Each VM has a BMC: Debian's ipmi_sim (the lab's configuration,
  hasupd_lab.bmc.lan_conf) whose chassis_control powers the VM off by
  SIGKILL of its qemu process and on by asking this harness to boot it.
  hasupd in the VMs runs with `split_brain_guard: drbd` (DRBD fencing
  resource-and-stonith, hasupd's handler; `--guard fence` for the fence
  guard, which loses acknowledged writes when the live owner is fenced) and
  a `fencing:` section: Debian's fence_ipmilan inside the peer VM, over eth2.
* A client in the namespace (this file, `client` mode) writes
  sequence-numbered records to http://VIP/cgi-bin/record?seq=N (a CGI that
  appends to /mnt/data/records.log, fsyncs, then answers 200), never
  reusing a number, and watches the VIP by ARP (two MACs answering = two
  holders).

After the faults: every acknowledged record is on the final Primary exactly
once, the file is identical on the other node (after a move), no DRBD
split brain in either node's kernel log (persistent journal, every boot),
never two VIP holders.  Summary: faults, acknowledged writes, lost,
duplicated, longest unavailability, time per fault kind.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent / "lab"))
import e2e  # noqa: E402
from e2e import GROUP, VIP, Run, StepFailed, drbd_line, group_where, query, wait_for  # noqa: E402
from machine import Vm, VmError  # noqa: E402

CLIENT_ADDR = "10.99.0.100"
BMC_ADDR = {"node1": "10.77.0.11", "node2": "10.77.0.12"}
MGMT_ADDR = {"node1": "10.77.0.1", "node2": "10.77.0.2"}
RECORDS = "/mnt/data/records.log"
# 20 faults, every kind, three live partitions; power faults spread out
FAULT_KINDS = ("kill_httpd", "move", "restart", "sigstop", "power_cut", "partition", "partition_unfenceable")
# 21 faults, every kind, four live partitions (one where the owner cannot fence); power faults spread out
DEFAULT_FAULTS = ("kill_httpd,move,partition,restart,power_cut,sigstop,kill_httpd,partition,move,"
                  "power_cut,partition_unfenceable,restart,sigstop,kill_httpd,partition,move,power_cut,"
                  "restart,sigstop,kill_httpd,move")


def sh(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)


# -- the namespace: bridges, taps, BMCs ---------------------------------------------

class Network:
    """One namespace with the three bridges, the VMs' taps and the two BMCs."""

    def __init__(self, rundir: Path):
        self.ns = f"cpvm{os.getpid()}"
        self.rundir = rundir
        self.bmcs: dict[str, subprocess.Popen] = {}
        self.password = os.urandom(8).hex()

    def ip(self, *args: str) -> None:
        sh("ip", "-n", self.ns, *args)

    def tap(self, node: str, nic: int) -> str:
        return f"cp{node[-1]}{'abm'[nic]}"

    def create(self) -> None:
        sh("ip", "netns", "add", self.ns)
        self.ip("link", "set", "lo", "up")
        for br, addr in (("cpb0", f"{CLIENT_ADDR}/24"), ("cpb1", None), ("cpbm", "10.77.0.10/24")):
            # no multicast snooping: the heartbeat's multicast reaches every port, as on a hub
            self.ip("link", "add", br, "type", "bridge", "mcast_snooping", "0")
            self.ip("link", "set", br, "up")
            if addr:
                self.ip("addr", "add", addr, "dev", br)
        for node in BMC_ADDR:
            self.ip("addr", "add", f"{BMC_ADDR[node]}/24", "dev", "cpbm")
            for nic, br in enumerate(("cpb0", "cpb1", "cpbm")):
                tap = self.tap(node, nic)
                sh("ip", "netns", "exec", self.ns, "ip", "tuntap", "add", "dev", tap, "mode", "tap")
                self.ip("link", "set", tap, "master", br, "up")
                if br == "cpbm":  # a VM reaches the BMCs, never the other VM, over management
                    sh("ip", "netns", "exec", self.ns, "bridge", "link", "set", "dev", tap, "isolated", "on")

    def partition(self, cut: bool) -> None:
        """Isolate (or join again) the VMs' ports on both rings: no frame between them."""
        for node in BMC_ADDR:
            for nic in (0, 1):
                sh("ip", "netns", "exec", self.ns, "bridge", "link", "set", "dev", self.tap(node, nic),
                   "isolated", "on" if cut else "off")

    def management(self, node: str, connected: bool) -> None:
        """Cut (or plug back) a VM's management cable: it no longer reaches any BMC."""
        self.ip("link", "set", "dev", self.tap(node, 2), "up" if connected else "down")

    def start_bmc(self, node: str) -> None:
        from hasupd_lab.bmc import EMU, IPMI_PORT, lan_conf
        d = self.rundir / f"bmc-{node}"
        (d / "state").mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        chassis = d / "chassis"
        chassis.write_text(CHASSIS_SH.format(node=node, pidfile=self.rundir / f"{node}.pid",
                                             request=self.rundir / f"{node}.power-on"))
        chassis.chmod(0o700)
        (d / "lan.conf").write_text(lan_conf(f"cp{node}", BMC_ADDR[node], self.password, str(chassis)))
        (d / "lan.conf").chmod(0o600)
        (d / "sim.emu").write_text(EMU)
        with open(d / "ipmi_sim.log", "ab") as log:
            self.bmcs[node] = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, "ipmi_sim", "-n", "-c", str(d / "lan.conf"),
                 "-f", str(d / "sim.emu"), "-s", str(d / "state")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=str(d),
                start_new_session=True)

        def listening():
            if self.bmcs[node].poll() is not None:
                raise StepFailed(f"ipmi_sim of {node} exited {self.bmcs[node].returncode}")
            return sh("ip", "netns", "exec", self.ns, "ss", "-Hlun", f"sport = :{IPMI_PORT}").stdout.count("\n") \
                >= len(self.bmcs)
        wait_for(f"BMC of {node} listening", listening, 15, interval=0.1)

    def ipmitool(self, node: str, *args: str) -> str:
        """ipmitool against a VM's BMC from the namespace, as an administrator (password by env)."""
        env = dict(os.environ, IPMI_PASSWORD=self.password)
        p = sh("ip", "netns", "exec", self.ns, "ipmitool", "-I", "lanplus", "-C", "3", "-H", BMC_ADDR[node],
               "-U", "admin", "-E", *args, check=False, env=env, timeout=60)
        if p.returncode != 0:
            raise StepFailed(f"ipmitool {' '.join(args)} at {node}'s BMC: {p.stdout}{p.stderr}")
        return p.stdout

    def destroy(self) -> None:
        for p in self.bmcs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
        sh("ip", "netns", "del", self.ns, check=False)


CHASSIS_SH = """#!/bin/sh
# ipmi_sim chassis_control of VM {node} (written by tests/vm/campaign.py):
# power is on while the VM's qemu process runs; off kills it (SIGKILL, a
# power cut); on asks the harness to boot it (it owns the console).
pid=$(cat {pidfile} 2>/dev/null)
on() {{ [ -n "$pid" ] && grep -q qemu-system /proc/$pid/cmdline 2>/dev/null; }}
case "$1 $2" in
"get power") if on; then echo power:1; else echo power:0; fi ;;
"set power") if [ "$3" = 0 ]; then on && kill -9 "$pid"; elif [ "$3" = 1 ]; then on || touch {request}; fi ;;
*) echo "unsupported: $*"; exit 1 ;;
esac
exit 0
"""


class CampaignVm(Vm):
    """A VM of e2e.py whose NICs are taps in the campaign's namespace (qemu runs there)."""

    net: Network

    def qemu_argv(self) -> list[str]:
        argv = super().qemu_argv()
        node, index = self.spec.name, self.spec.index
        out = ["ip", "netns", "exec", self.net.ns]
        i = 0
        while i < len(argv):
            a = argv[i]
            if a == "-netdev":
                nic = int(re.match(r"socket,id=net(\d+),", argv[i + 1]).group(1))
                out += ["-netdev", f"tap,id=net{nic},ifname={self.net.tap(node, nic)},script=no,downscript=no"]
                i += 2
                continue
            if a == "-append":
                argv[i + 1] += f" hasupd_vm.eth2={MGMT_ADDR[node]}/24"
            out.append(a)
            i += 1
        return out + ["-netdev", f"tap,id=net2,ifname={self.net.tap(node, 2)},script=no,downscript=no",
                      "-device", f"virtio-net-pci,netdev=net2,mac=52:54:00:99:02:{index + 1:02x}"]


def campaign_config(net: Network, guard: str) -> str:
    """The VM test's hasupd.yaml with the guard (fence, or drbd: DRBD's fencing with hasupd as its
    fence-peer handler) and the two BMCs as fence devices."""
    text = (HERE / "guest" / "hasupd.yaml").read_text()
    text, n = re.subn(r"(split_brain_guard:\n  mode: )none[^\n]*", r"\g<1>" + guard, text)
    assert n == 1, "guest/hasupd.yaml: no split_brain_guard mode to replace"
    # The owner's head start covers its whole fence (timeout x (retries + 1), as `hasupctl check`
    # asks): a fence_ipmilan run inside a loaded software-emulated VM took over 22 s, and a shorter
    # head start lets the peer fence the owner while the owner's fence still runs.
    text += "\nfencing:\n  owner_head_start: 30s\n  devices:\n"
    for node, addr in BMC_ADDR.items():
        text += (f"    - name: bmc-{node}\n      agent: fence_ipmilan\n      nodes: [{node}]\n"
                 f"      options: {{ip: {addr}, username: admin, lanplus: '1', cipher: '3', power_wait: '0'}}\n"
                 "      secrets: /etc/hasupd/bmc.secret\n      timeout: 30s\n      retries: 0\n")
    return text


def campaign_resource(guard: str) -> str:
    """The VM test's r0.res; for the drbd guard with DRBD fencing resource-and-stonith (a Primary
    that loses its peer freezes I/O until the handler says the peer is outdated or fenced, so no
    write is acknowledged on one copy only) and hasupd's handler."""
    text = (HERE / "guest" / "r0.res").read_text()
    if guard != "drbd":
        return text
    handler = "/usr/bin/hasupd-drbd-handler"
    extra = ("  disk { fencing resource-and-stonith; }\n  handlers {\n"
             + "".join(f'    {h} "{handler} {h}";\n' for h in ("fence-peer", "unfence-peer", "split-brain"))
             + "  }\n")
    head, n = re.subn(r"(\n  net \{)", "\n" + extra.rstrip("\n") + r"\1", text, count=1)
    assert n == 1, "guest/r0.res: no net section"
    return head


class CampaignRun(Run):
    def __init__(self, rundir: Path, image: Path, deb: Path, net: Network, guard: str):
        self.net = net
        self.guard = guard
        CampaignVm.net = net
        e2e.Vm = CampaignVm  # Run.__init__ makes the VMs
        try:
            super().__init__(rundir, image, deb)
        finally:
            e2e.Vm = Vm

    def make_payload(self, deb: Path) -> Path:
        path = super().make_payload(deb)
        with tarfile.open(path, "a", format=tarfile.USTAR_FORMAT) as tar:
            def add(name: str, data: bytes, mode: int) -> None:
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), mode
                import io
                tar.addfile(info, io.BytesIO(data))
            add("campaign/hasupd.yaml", campaign_config(self.net, self.guard).encode(), 0o644)
            add("campaign/r0.res", campaign_resource(self.guard).encode(), 0o644)
            add("campaign/bmc.secret", f"password={self.net.password}\n".encode(), 0o600)
            add("campaign/record", (HERE / "campaign-guest" / "record").read_bytes(), 0o755)
        return path

    def before_cluster_start(self) -> None:
        n1 = self.vms["node1"]
        with self.step(f"campaign: guard {self.guard} + BMCs, the write handler, a persistent journal"):
            self.both("install -m 0644 /root/payload/campaign/hasupd.yaml /etc/hasupd/hasupd.yaml"
                      " && install -m 0600 /root/payload/campaign/bmc.secret /etc/hasupd/bmc.secret"
                      " && install -m 0755 /root/payload/campaign/record /usr/lib/cgi-bin/record"
                      " && install -m 0644 /root/payload/campaign/r0.res /etc/drbd.d/r0.res && drbdadm adjust r0"
                      " && a2enmod -q cgid > /dev/null && mkdir -p /var/log/journal"
                      " && systemctl restart systemd-journald")
            for node, vm in self.vms.items():
                peer = "node2" if node == "node1" else "node1"
                # the agent's stdin as hasupd gives it (options, then the secrets file)
                out = vm.sh(f"printf 'action=status\\nip={BMC_ADDR[peer]}\\nusername=admin\\nlanplus=1\\n"
                            "cipher=3\\n' | cat - /etc/hasupd/bmc.secret | fence_ipmilan", timeout=120)
                assert "Status: ON" in out, f"{node}: fence_ipmilan status of {peer}: {out!r}"
                print(f"    {node}: fence_ipmilan -o status at {peer}'s BMC: {out.strip()}")
            n1.sh(f"mount /dev/drbd1 /mnt/data && : > {RECORDS} && chown www-data: {RECORDS} && umount /mnt/data")


# -- the client (runs in the namespace) ------------------------------------------------

def client_main(outdir: Path) -> int:
    """Write records until SIGTERM; watch the VIP by ARP meanwhile."""
    import http.client
    import threading
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    holders_log = open(outdir / "vip.jsonl", "a", buffering=1)

    def arp_watch() -> None:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
        s.bind(("cpb0", 0))
        mine = s.getsockname()[4]
        req = (b"\xff" * 6 + mine + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
               + mine + socket.inet_aton(CLIENT_ADDR) + b"\x00" * 6 + socket.inet_aton(VIP))
        last: tuple = ()
        probes = doubles = 0
        while not stop.is_set():
            s.send(req)
            macs = set()
            end = time.monotonic() + 0.4
            while (left := end - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    frame = s.recv(128)
                except OSError:
                    break
                if len(frame) >= 42 and frame[20:22] == b"\x00\x02" and frame[28:32] == socket.inet_aton(VIP):
                    macs.add(frame[22:28].hex(":"))
            probes += 1
            if len(macs) > 1:
                doubles += 1
            now = tuple(sorted(macs))
            if now != last or len(macs) > 1:
                holders_log.write(json.dumps({"t": time.time(), "holders": list(now)}) + "\n")
                last = now
            time.sleep(0.1)
        holders_log.write(json.dumps({"t": time.time(), "probes": probes, "two_holders": doubles}) + "\n")

    watcher = threading.Thread(target=arp_watch, daemon=True)
    watcher.start()
    seq = 0
    with open(outdir / "client.jsonl", "a", buffering=1) as log:
        while not stop.is_set():
            seq += 1  # a number is never sent twice: a second copy in the file is a replay
            t0 = time.time()
            rec = {"seq": seq, "t0": t0}
            try:
                c = http.client.HTTPConnection(VIP, 80, timeout=5)
                c.request("GET", f"/cgi-bin/record?seq={seq}")
                r = c.getresponse()
                body = r.read(200).decode(errors="replace")
                c.close()
                rec.update(status=r.status, who=body.split()[-1] if r.status == 200 and body.split() else "")
            except (OSError, http.client.HTTPException) as e:
                rec.update(status=0, error=type(e).__name__)
            rec["t1"] = time.time()
            log.write(json.dumps(rec) + "\n")
            time.sleep(0.05 if rec["status"] == 200 else 0.25)
    watcher.join(5)
    return 0


def read_jsonl(path: Path) -> list[dict]:
    out: list[dict] = []
    if not path.exists():
        return out  # the client has not written yet
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line being written
    return out


# -- the faults -----------------------------------------------------------------------

class Campaign:
    def __init__(self, run: CampaignRun, net: Network):
        self.run = run
        self.net = net
        self.vms = run.vms
        self.faults: list[dict] = []
        self.phases: list[tuple[str, float]] = []  # (what, seconds since the fault began) of the fault running

    def mark(self, what: str) -> None:
        self.phases.append((what, round(time.time() - self.t0, 1)))

    def evidence(self, node: str, n: int, since: float) -> str:
        """Save what the VM's journal says of the fault: boot timing (if it booted), DRBD's
        handshake and resync, hasupd's decisions; RUNDIR/faultN-NODE.txt."""
        cmd = ("{ uptime; systemd-analyze; systemd-analyze blame | head -8;"
               " echo '--- kernel (drbd) this boot'; journalctl -k -b -q --no-pager -o short-precise"
               " -g 'drbd|block drbd' | tail -60;"
               f" echo '--- hasupd since the fault'; journalctl -q --no-pager -o short-precise -u hasupd"
               f" --since=@{int(since) - 2} | tail -150; }} 2>&1 | gzip | base64 -w0")
        try:
            out = self.vms[node].sh(cmd, timeout=180)
            text = gzip.decompress(base64.b64decode(out.strip().splitlines()[-1])).decode(errors="replace")
        except (VmError, ValueError, OSError) as e:
            text = f"(evidence not collected: {e})"
        (self.run.rundir / f"fault{n}-{node}.txt").write_text(text)
        return text

    def other(self, node: str) -> str:
        return "node2" if node == "node1" else "node1"

    def service_power(self) -> None:
        """Boot a VM whose BMC was asked to power it on (the harness owns qemu and the console)."""
        for node, vm in self.vms.items():
            req = self.run.rundir / f"{node}.power-on"
            if req.exists():
                req.unlink()
                if not vm.alive():
                    vm.kill()  # reap, close the old console
                    vm.boot()

    def owner(self) -> str:
        for vm in self.vms.values():
            if vm.alive():
                state, node = group_where(query(vm))
                if state == "started":
                    return node
        raise StepFailed("no VM reports the group started")

    def last_ack(self) -> float:
        acks = [r["t1"] for r in read_jsonl(self.run.rundir / "client.jsonl") if r["status"] == 200]
        return acks[-1] if acks else 0.0

    def settle(self, since: float, timeout: float = 420) -> str:
        """Both VMs up, both see the group on one node, DRBD in sync, the client acknowledged again."""
        state: dict = {}

        def probe():
            self.service_power()
            if not all(vm.alive() for vm in self.vms.values()):
                state["why"] = "a VM is off"
                return None
            seen = {n: group_where(query(vm)) for n, vm in self.vms.items()}
            state["why"] = f"group: {seen}"
            where = set(seen.values())
            if len(where) != 1 or next(iter(where))[0] != "started":
                return None
            owner = next(iter(where))[1]
            line = drbd_line(self.vms[owner])
            state["why"] = f"{owner}: {line}"
            if "cs:Connected" not in line or "ds:UpToDate/UpToDate" not in line:
                if "cs:StandAlone" in line or "cs:WFConnection" in line:
                    self.split_brain_check()  # a split brain never settles: say so now
                return None
            state["why"] = "no acknowledged write since the fault"
            return owner if self.last_ack() > since else None
        try:
            return wait_for("settled", probe, timeout, interval=2)
        except StepFailed as e:
            raise StepFailed(f"{e}: {state.get('why')}") from None

    def boot_after_power_on(self, node: str) -> None:
        vm = self.vms[node]
        wait_for(f"{node} powered on by its BMC", lambda: (self.service_power(), vm.alive())[1], 60, 0.5)
        self.mark(f"{node} qemu started")
        vm.wait_ready(timeout=420)
        self.mark(f"{node} booted (systemd ready)")

    # each fault: returns a note; the owner before is `owner`
    def kill_httpd(self, owner: str) -> str:
        vm, other = self.vms[owner], self.other(owner)
        pid = vm.sh("/root/payload/hvm apache-pid").strip()
        vm.sh(f"kill -9 {pid}")
        e2e.wait_group_on(self.vms[other], other, timeout=240)
        self.vms[other].sh(f"hasupctl cleanup {GROUP}")
        return f"apache {pid} on {owner}"

    def move(self, owner: str) -> str:
        other = self.other(owner)
        self.vms[owner].sh(f"hasupctl move {GROUP} {other} --wait --timeout 240", timeout=300)
        return f"{owner} -> {other}"

    def restart(self, owner: str) -> str:
        self.vms[owner].sh("systemctl restart hasupd", timeout=180)
        return f"hasupd on {owner}"

    def sigstop(self, owner: str) -> str:
        vm = self.vms[owner]
        pid = vm.sh("systemctl show -p MainPID --value hasupd").strip()
        n = int(vm.sh("systemctl show -p NRestarts --value hasupd").strip())
        vm.sh(f"kill -STOP {pid}")
        wait_for("hasupd restarted by the watchdog",
                 lambda: int(vm.sh("systemctl show -p NRestarts --value hasupd").strip()) > n, 180, 1)
        return f"hasupd {pid} on {owner}"

    def power_cut(self, owner: str) -> str:
        self.net.ipmitool(owner, "chassis", "power", "off")
        wait_for(f"{owner} off", lambda: not self.vms[owner].alive(), 30, 0.2)
        self.mark(f"{owner} off")
        other = self.other(owner)
        e2e.wait_group_on(self.vms[other], other, timeout=240)
        self.mark(f"{other} reports the group started")
        self.net.ipmitool(owner, "chassis", "power", "on")
        self.boot_after_power_on(owner)
        return f"{owner} off via its BMC, {other} took over"

    def partition(self, owner: str) -> str:
        t = time.monotonic()
        self.net.partition(True)
        self.mark("rings cut")
        try:
            def one_off():
                dead = [n for n, vm in self.vms.items() if not vm.alive()]
                return dead or None
            dead = wait_for("one VM powered off by its peer", one_off, 180, 0.5)
            took = time.monotonic() - t
            self.mark(f"{dead[0]} powered off")
            time.sleep(10)  # the survivor must stay up
            dead = [n for n, vm in self.vms.items() if not vm.alive()]
            if len(dead) != 1:
                raise StepFailed(f"after the partition {dead or 'no VM'} powered off, not exactly one")
        finally:
            self.net.partition(False)
            self.mark("rings joined")
        survivor = self.other(dead[0])
        e2e.wait_group_on(self.vms[survivor], survivor, timeout=240)
        self.mark(f"{survivor} reports the group started")
        self.net.ipmitool(dead[0], "chassis", "power", "on")
        self.boot_after_power_on(dead[0])
        return f"{dead[0]} fenced after {took:.1f}s, {survivor} kept running (owner was {owner})"

    def partition_unfenceable(self, owner: str) -> str:
        """A live partition while the owner's management cable is cut: the owner cannot fence
        its peer, the peer can fence the owner (after the owner's head start)."""
        self.net.management(owner, False)
        self.mark(f"{owner}'s management cable cut")
        try:
            note = self.partition(owner)
        finally:
            self.net.management(owner, True)
            self.mark(f"{owner}'s management cable plugged back")
        return f"{owner} cannot fence: {note}"

    def one(self, kind: str) -> None:
        owner = self.owner()
        n = len(self.faults) + 1
        with self.run.step(f"fault {n}: {kind} (group on {owner})"):
            self.t0 = t0 = time.time()
            self.phases = []
            note = getattr(self, kind)(owner)
            new_owner = self.settle(t0)
            self.mark(f"settled on {new_owner}")
            self.split_brain_check()
            took = time.time() - t0
        fence_lines = []
        if kind in ("power_cut", "partition", "partition_unfenceable"):
            for node in self.vms:
                text = self.evidence(node, n, t0)
                # who fenced whom, in hasupd's words
                fence_lines += [f"{node}: {line.strip()[:300]}" for line in text.splitlines()
                                if re.search(r"\bfenc(e|ed|ing)\b", line, re.I) and "hasupd" in line][:8]
        self.faults.append({"kind": kind, "t0": t0, "t1": time.time(), "took": took, "note": note,
                            "owner_before": owner, "owner_after": new_owner, "phases": self.phases,
                            "fence_log": fence_lines})
        print(f"    {note}; settled on {new_owner} in {took:.1f}s", flush=True)
        print("      " + "; ".join(f"+{t:.1f}s {what}" for what, t in self.phases), flush=True)

    def split_brain_check(self) -> None:
        for node, vm in self.vms.items():
            out = vm.sh("journalctl -k -q --no-pager -g 'Split-Brain' || true", check=False)
            if "Split-Brain" in out:
                raise StepFailed(f"DRBD on {node} reported a split brain:\n{out[-1500:]}")


# -- the verdict ----------------------------------------------------------------------------

def records_on(vm: Vm) -> tuple[Counter, str]:
    """How often each sequence number is in the record log, and the file's sha256."""
    out = vm.sh(f"sha256sum {RECORDS} && gzip -c {RECORDS} | base64 -w0", timeout=180)
    digest, _, packed = out.strip().partition("\n")
    text = gzip.decompress(base64.b64decode(packed.strip())).decode()
    return Counter(int(s) for s in text.split()), digest.split()[0]


def verdict(camp: Campaign, rundir: Path) -> tuple[dict, list[str]]:
    run, vms = camp.run, camp.vms
    problems: list[str] = []
    recs = read_jsonl(rundir / "client.jsonl")
    acked = {r["seq"] for r in recs if r["status"] == 200}
    owner = camp.owner()
    counts, digest = records_on(vms[owner])
    lost = sorted(acked - set(counts))
    dup = sorted(s for s, c in counts.items() if c > 1)
    if lost:
        problems.append(f"{len(lost)} acknowledged records missing on {owner}: {lost[:20]}")
    if dup:
        problems.append(f"{len(dup)} records more than once on {owner}: {dup[:20]}")
    other = camp.other(owner)
    with run.step(f"move to {other}: the record file there is identical"):
        vms[owner].sh(f"hasupctl move {GROUP} {other} --wait --timeout 240", timeout=300)
        _, digest2 = records_on(vms[other])
        if digest2 != digest:
            problems.append(f"records.log differs: {owner} {digest}, {other} {digest2}")
    camp.split_brain_check()
    vip = read_jsonl(rundir / "vip.jsonl")
    doubles = [v for v in vip if len(v.get("holders", [])) > 1]
    final = [v for v in vip if "probes" in v]
    if doubles:
        problems.append(f"two VIP holders seen {len(doubles)} times, first: {doubles[0]}")
    gaps, prev = [], None  # the longest time without an acknowledged write
    for r in recs:
        if r["status"] == 200:
            if prev is not None:
                gaps.append((r["t1"] - prev, prev))
            prev = r["t1"]
    longest = max(gaps) if gaps else (0.0, 0.0)
    per_kind: dict[str, list[float]] = defaultdict(list)
    unavail: dict[str, list[float]] = defaultdict(list)
    lost_in: dict[str, int] = defaultdict(int)
    missing = set(lost)
    for f in camp.faults:
        per_kind[f["kind"]].append(f["took"])
        inside = [g for g, t in gaps if f["t0"] - 1 <= t <= f["t1"]]
        unavail[f["kind"]].append(max(inside) if inside else 0.0)
        f["lost"] = sorted(r["seq"] for r in recs if r["seq"] in missing and f["t0"] <= r["t1"] <= f["t1"])
        lost_in[f["kind"]] += len(f["lost"])
    summary = {
        "guard": camp.run.guard, "faults": len(camp.faults),
        "partitions": len(per_kind.get("partition", [])) + len(per_kind.get("partition_unfenceable", [])),
        "attempts": len(recs), "acknowledged": len(acked),
        "unacknowledged_present": len(set(counts) - acked), "lost": len(lost), "duplicated": len(dup),
        "longest_unavailability_s": round(longest[0], 2),
        "vip_probes": final[-1]["probes"] if final else 0, "two_vip_holders": len(doubles),
        "per_kind": {k: {"count": len(v), "mean_s": round(sum(v) / len(v), 1), "max_s": round(max(v), 1),
                         "max_unavailable_s": round(max(unavail[k]), 2), "lost": lost_in[k]}
                     for k, v in per_kind.items()},
        "faults_in_order": [{k: f[k] for k in ("kind", "note", "owner_before", "owner_after", "phases",
                                                "fence_log", "lost")} | {"took_s": round(f["took"], 1)}
                            for f in camp.faults],
    }
    return summary, problems


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["client"]:
        return client_main(Path(argv[1]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deb", required=True, type=Path)
    ap.add_argument("--faults", default=DEFAULT_FAULTS, help="comma-separated fault kinds, in order")
    ap.add_argument("--guard", default="drbd", choices=("fence", "drbd"),
                    help="split_brain_guard of the VMs (drbd: with the BMCs as fence devices and DRBD "
                         "fencing resource-and-stonith)")
    args = ap.parse_args(argv)
    kinds = args.faults.split(",")
    bad = [k for k in kinds if k not in FAULT_KINDS]
    if bad or not args.deb.is_file():
        print(f"test-vm-campaign: unknown fault kinds {bad} or no package {args.deb}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    t0 = time.monotonic()
    rundir = Path(os.environ.get("HASUPD_VM_RESULTS") or e2e.CACHE / "runs" / ("campaign-" + time.strftime("%Y%m%d-%H%M%S")))
    rundir.mkdir(parents=True, exist_ok=True)
    net = Network(rundir)
    run = client = camp = None
    summary, problems = None, []
    try:
        print("--- build the VM image (cached)", flush=True)
        image, build_s = e2e.build_image()
        net.create()
        for node in BMC_ADDR:
            net.start_bmc(node)
        run = CampaignRun(rundir, image, args.deb, net, args.guard)
        e2e.setup(run)
        with run.step("the client writes records through the VIP"):
            client = subprocess.Popen(["ip", "netns", "exec", net.ns, sys.executable, __file__, "client", str(rundir)],
                                      stdin=subprocess.DEVNULL, start_new_session=True)
            camp = Campaign(run, net)
            wait_for("first acknowledged write", lambda: camp.last_ack() > 0, 60, 1)
        for kind in kinds:
            camp.one(kind)
        time.sleep(3)
        os.kill(client.pid, signal.SIGTERM)
        client.wait(timeout=30)
        summary, problems = verdict(camp, rundir)
    except (StepFailed, VmError) as e:
        print(f"\ntest-vm-campaign FAILED: {e}", file=sys.stderr)
        if run is not None:
            run.diagnose()
        problems.append(str(e))
    except KeyboardInterrupt:
        problems.append("interrupted")
    finally:
        if client is not None and client.poll() is None:
            os.killpg(client.pid, signal.SIGKILL)
            client.wait(timeout=30)
        if run is not None:
            run.kill_all()
        net.destroy()
        # the disks, the payload and the BMCs' configuration (they hold the BMC password)
        for p in (list(rundir.glob("*.raw")) + list(rundir.glob("*.qcow2")) + [rundir / "payload.tar"]
                  + list(rundir.glob("bmc-*/lan.conf"))):
            p.unlink(missing_ok=True)
    took = time.monotonic() - t0
    print(f"\ntest-vm-campaign {'FAILED' if problems else 'PASSED'} in {took:.0f}s (logs: {rundir}/)")
    if camp is not None:
        for f in camp.faults:
            print(f"  {f['took']:6.1f}s  {f['kind']:10s} {f['note']}")
    if summary:
        print(json.dumps(summary, indent=2))
        (rundir / "summary.json").write_text(json.dumps(dict(summary, seconds=round(took)), indent=2) + "\n")
    for p in problems:
        print(f"  PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
