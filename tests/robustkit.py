"""A one-node hasupd for the robustness tests (issue 16): the real daemon as a
subprocess (or the real Engine in-process), a heartbeat on the loopback that
nobody answers, one group of a real OCF agent (a shell script), a real
control socket, alert agent, history and stderr log.  No namespaces needed."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hasupd.membership.wire import write_key

_ports = itertools.count(21000 + (os.getpid() % 500) * 20)

AGENT = """#!/bin/sh
# a tiny OCF agent: start sleeps OCF_RESKEY_delay, then creates OCF_RESKEY_state
state="$OCF_RESKEY_state"
case "$1" in
  start) sleep "${OCF_RESKEY_delay:-0}"; [ -n "$OCF_RESKEY_fail_start" ] && exit 1; touch "$state"; exit 0;;
  stop) rm -f "$state"; exit 0;;
  monitor) [ -f "$state" ] && exit 0; exit 7;;
  meta-data) echo '<?xml version="1.0"?><resource-agent name="app"><actions>'\\
'<action name="start" timeout="20s"/><action name="stop" timeout="20s"/>'\\
'<action name="monitor" timeout="20s"/></actions></resource-agent>'; exit 0;;
  validate-all) exit 0;;
  *) exit 3;;
esac
"""

ALERT_AGENT = """#!/bin/sh
# records the whole environment it is given, one run per file
env > "{dir}/alert.$$.$(date +%s%N)"
"""


class OneNode:
    def __init__(self, root: Path, params: dict | None = None, extra: str = "", state_dir: Path | None = None):
        self.root = root
        self.ocf = root / "ocf" / "resource.d" / "rb"
        self.ocf.mkdir(parents=True, exist_ok=True)
        agent = self.ocf / "app"
        agent.write_text(AGENT)
        agent.chmod(0o755)
        self.alerts = root / "alerts"
        self.alerts.mkdir(exist_ok=True)
        alert_agent = root / "alert.sh"
        alert_agent.write_text(ALERT_AGENT.format(dir=self.alerts))
        alert_agent.chmod(0o755)
        self.state_dir = state_dir or root / "state"
        self.key = root / "authkey"
        if not self.key.exists():
            write_key(str(self.key))
        self.socket = root / "hasupd.sock"
        self.log = root / "hasupd.log"
        self.config = root / "hasupd.yaml"
        self.app_state = root / "app.running"
        params = {"state": str(self.app_state), **(params or {})}
        port = next(_ports)
        lines = "\n".join(f"          {json.dumps(k)}: {json.dumps(v)}" for k, v in params.items())
        self.config.write_text(f"""cluster: rbtest
nodes:
  - {{name: n1, addresses: [127.0.0.1]}}
  - {{name: n2, addresses: [127.0.0.2]}}
heartbeat:
  transport: unicast
  rings: [{{bind_network: 127.0.0.0/8, port: {port}}}]
  interval: 200ms
  deadtime: 1s
  initdead: 1s
  authkey: {self.key}
split_brain_guard: {{mode: none}}
groups:
  - name: rg
    migration_threshold: 1
    timeouts: {{start: 30s, stop: 30s, monitor: 20s}}
    monitor_interval: 1s
    resources:
      - name: res_app
        type: ocf
        agent: "rb:app"
        ocf_root: {root / "ocf"}
        params:
{lines}
alerts:
  - path: {alert_agent}
state_dir: {self.state_dir}
control: {{socket: {self.socket}, group: root}}
{extra}""")
        self.proc: subprocess.Popen | None = None

    # ------------------------------------------------------------ the daemon as a process

    def start(self, env: dict | None = None) -> subprocess.Popen:
        full = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "INVOCATION_ID")}
        full.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-m", "hasupd.daemon", "--config", str(self.config),
                                      "--node", "n1"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"), env=full, start_new_session=True)
        return self.proc

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "-m", "hasupd.control.cli", "--config", str(self.config), *args],
                             capture_output=True, text=True, timeout=60)
        if check and out.returncode != 0:
            raise AssertionError(f"hasupctl {' '.join(args)}: {out.returncode} {out.stdout}{out.stderr}")
        return out

    def status(self) -> dict:
        return json.loads(self.ctl("status", "--json").stdout)

    def history_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.state_dir.glob("history.jsonl*")))

    def alert_inputs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.alerts.iterdir()))


def wait_until(what: str, predicate, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (AssertionError, ValueError, KeyError, OSError, subprocess.SubprocessError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
