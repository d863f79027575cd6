"""Issue 16: what the systemd unit sets for a root daemon that anyone in the
status group can talk to, and that systemd understands every line of it."""

from __future__ import annotations

import subprocess
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "hasupd.service"


def service_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif line and not line.startswith("#") and section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_limits_and_hardening():
    s = service_settings()
    assert int(s["LimitNOFILE"][-1]) >= 65536
    assert s["UMask"] == ["0027"]
    assert s["RestrictSUIDSGID"] == ["yes"]
    assert set(s["SystemCallFilter"][-1].lstrip("~").split()) == {"@obsolete", "@cpu-emulation", "@debug"}
    assert s["SystemCallFilter"][-1].startswith("~") and s["SystemCallErrorNumber"] == ["EPERM"]
    denied = set(s["CapabilityBoundingSet"][-1].lstrip("~").split())
    assert s["CapabilityBoundingSet"][-1].startswith("~")
    assert {"CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_BPF", "CAP_SYS_TIME"} <= denied
    # what the daemon and its resources do need stays
    assert not denied & {"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_MODULE", "CAP_KILL",
                         "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_SYS_BOOT", "CAP_DAC_OVERRIDE"}
    # nothing that gives the unit a mount namespace of its own (the mount would be invisible to httpd)
    assert not {"ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelLogs"} & set(s)


def test_systemd_understands_every_line():
    proc = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    for word in ("Unknown", "unknown", "Failed to parse", "Invalid", "ignoring"):
        assert word not in out, out
