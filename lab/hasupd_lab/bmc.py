"""The lab's BMCs: one ipmi_sim (Debian's openipmi) per node.

Each BMC runs in its own namespace on the management network
(hasupd_lab.netlab, 10.77.0.21+k) and speaks IPMI-over-LAN (RMCP+,
lanplus) on port 623 with one admin user, as a server's BMC does.  Its
chassis power control is ipmi_sim's ``chassis_control`` program: this
module, run as

    python -m hasupd_lab.bmc PREFIX NODE get power      -> "power:1" / "power:0"
    python -m hasupd_lab.bmc PREFIX NODE set power 0|1

Power is the node's "machine": on while the node's namespace holder (the
process that owns its mounts, ``sleep infinity``) lives.  ``get power`` is
answered by a small sh script (a BMC answers in milliseconds; a Python
start would add 0.1-0.2 s to every status call); ``set`` runs this module.  Power off is the lab's crash fault
(every process of the node killed at once, cables out); power on is the
lab's boot.  A crash by other means reads as off too, as a BMC on standby
power reports a dead server.  The nodes fence with Debian's fence_ipmilan
against these BMCs, exactly as against real ones.

Why not ``startcmd``: ipmi_sim powers a startcmd process off only through
its system-interface channel (a VM serial connection); the external
chassis_control program is the interface ipmi_sim documents for a machine
it does not start itself.  Clients give ``cipher=3``: without it ipmitool
first asks for the cipher suites, which ipmi_sim does not answer, and
every call waits 10 s for that.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

BMC_USER = "admin"
IPMI_PORT = 623


def lan_conf(name: str, address: str, password: str, chassis_argv: str) -> str:
    auths = "none md2 md5 straight"
    return "\n".join([
        f'name "{name}"',
        "set_working_mc 0x20",
        "  startlan 1",
        f"    addr {address} {IPMI_PORT}",
        "    priv_limit admin",
        f"    allowed_auths_callback {auths}",
        f"    allowed_auths_user {auths}",
        f"    allowed_auths_operator {auths}",
        f"    allowed_auths_admin {auths}",
        f"    guid {secrets.token_hex(16)}",
        "  endlan",
        f'  chassis_control "{chassis_argv}"',
        f'  user 1 true "" "{secrets.token_hex(8)}" user 10 none md2 md5 straight',
        f'  user 2 true "{BMC_USER}" "{password}" admin 10 none md2 md5 straight',
        "",
    ])


# a BMC MC at 0x20 with chassis support (device support 0x9f)
EMU = "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n"


CHASSIS_SH = """#!/bin/sh
# ipmi_sim chassis_control of lab node {node} (written by hasupd_lab.bmc)
if [ "$1" = get ]; then
    shift
    for parm in "$@"; do
        [ "$parm" = power ] || {{ echo "Invalid parameter: $parm"; exit 1; }}
        pid=$(cat {pidfile} 2>/dev/null)
        if [ -n "$pid" ] && [ "$(tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null)" = "sleep infinity " ]; then
            echo power:1
        else
            echo power:0
        fi
    done
    exit 0
fi
exec {python} -m hasupd_lab.bmc {prefix} {node} "$@"
"""


def record_power(lab, node: str, holder_pid: int) -> None:
    """The node's "machine" is this holder process (read by the chassis script)."""
    d = lab.dir / f"bmc-{node}"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    (d / "holder.pid").write_text(f"{holder_pid}\n")


def start(lab, node: str) -> int:
    """Start the node's BMC; its PID (recorded in the lab's meta)."""
    d = lab.dir / f"bmc-{node}"
    (d / "state").mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    password = lab.bmc_password()
    chassis = d / "chassis"
    chassis.write_text(CHASSIS_SH.format(node=node, pidfile=d / "holder.pid", python=sys.executable,
                                         prefix=lab.prefix))
    chassis.chmod(0o700)
    (d / "lan.conf").write_text(lan_conf(f"{lab.prefix}{node}", lab.topo.bmc_address(node), password, str(chassis)))
    (d / "lan.conf").chmod(0o600)
    (d / "sim.emu").write_text(EMU)
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C",
           "HASUPD_LAB_ROOT": str(lab.dir.parent)}
    with open(d / "ipmi_sim.log", "ab") as log:
        p = subprocess.Popen(["nsenter", f"--net=/run/netns/{lab.topo.bmc_ns(node)}", "--",
                              "ipmi_sim", "-n", "-c", str(d / "lan.conf"), "-f", str(d / "sim.emu"),
                              "-s", str(d / "state")],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                             cwd=str(d), start_new_session=True)
    lab.meta.setdefault("bmcs", {})[node] = p.pid
    lab.save()
    wait_listening(lab, node, p)
    return p.pid


def wait_listening(lab, node: str, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Until the BMC's UDP port is bound (ss in its namespace)."""
    from hasupd_lab.cluster import LabError  # cluster imports this module
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (lab.dir / f"bmc-{node}" / "ipmi_sim.log").read_text(errors="replace")[-1000:]
            raise LabError(f"ipmi_sim of {node} exited {proc.returncode}: {log}")
        out = subprocess.run(["ip", "netns", "exec", lab.topo.bmc_ns(node), "ss", "-Hlun",
                              f"sport = :{IPMI_PORT}"], capture_output=True, text=True).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise LabError(f"ipmi_sim of {node} did not listen on port {IPMI_PORT} within {timeout:g}s")


def power_is_on(lab, node: str) -> bool:
    """As the chassis script decides: the recorded holder runs `sleep infinity`."""
    try:
        pid = int((lab.dir / f"bmc-{node}" / "holder.pid").read_text())
        return Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\0infinity\0"
    except (OSError, ValueError):
        return False


def chassis(prefix: str, node: str, argv: list[str]) -> int:
    """ipmi_sim's chassis_control protocol (see the module doc)."""
    from hasupd_lab.cluster import Lab
    lab = Lab(prefix)
    if argv[:1] == ["get"]:
        for parm in argv[1:]:
            if parm != "power":
                print(f"Invalid parameter: {parm}")
                return 1
            print(f"power:{1 if power_is_on(lab, node) else 0}")
        return 0
    if argv[:2] == ["set", "power"] and len(argv) == 3 and argv[2] in ("0", "1"):
        on = argv[2] == "1"
        if on and not power_is_on(lab, node):
            # booting takes seconds and ipmi_sim waits for this program: boot
            # in the background; the power reads on once the node's holder runs
            subprocess.Popen([sys.executable, "-m", "hasupd_lab.bmc", prefix, node, "boot"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        elif not on and power_is_on(lab, node):
            lab.fault(node, "crash")
        return 0
    if argv == ["boot"]:
        lab.boot(node)
        return 0
    if argv[:1] == ["set"]:
        print(f"unsupported: {' '.join(argv)}")  # reset, boot device, identify
        return 1
    print(f"Unknown operation: {' '.join(argv)}")
    return 1


if __name__ == "__main__":
    if len(sys.argv) < 4:
        print("usage: python -m hasupd_lab.bmc PREFIX NODE get|set ...")
        sys.exit(1)
    sys.exit(chassis(sys.argv[1], sys.argv[2], sys.argv[3:]))
