"""Helpers for the lab tests and the benchmarks."""

from __future__ import annotations

import json
import subprocess
import time

from hasupd_lab.cluster import Lab


def ctl(lab: Lab, node: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = lab.exec(node, ["hasupctl", *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"hasupctl {' '.join(args)} on {node} exited {proc.returncode}: "
                             f"{proc.stdout}{proc.stderr}")
    return proc


def status(lab: Lab, node: str) -> dict:
    return json.loads(ctl(lab, node, "status", "--json").stdout)


def group(lab: Lab, node: str, name: str = "rg_web") -> dict:
    return next(g for g in status(lab, node)["groups"] if g["name"] == name)


def wait_for(what: str, predicate, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (AssertionError, subprocess.SubprocessError, ValueError, KeyError, StopIteration) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def served_by(lab: Lab) -> str:
    status_code, _, node = lab.curl(0.5)
    return node if status_code == 200 else ""
