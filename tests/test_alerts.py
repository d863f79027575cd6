"""Alerts: a real journald receives the records; Pacemaker-style alert agents
get the CRM_alert_* environment; a hanging agent never blocks emit()."""

import asyncio
import fcntl
import io
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from types import SimpleNamespace

import pytest

from hasupd import alerts
from hasupd.alerts import Alerter, journal_listening
from hasupd.config import AlertAgent, Node

JOURNALD = "/lib/systemd/systemd-journald"
JOURNAL_DIR = "/run/systemd/journal"


def cfg(*agents):
    return SimpleNamespace(alerts=tuple(agents), nodes=(Node("n1", ("10.99.0.11",)), Node("n2", ("10.99.0.12",))))


@pytest.fixture(scope="module")
def journald():
    """A journald for these tests: reuse one that runs; else start one and stop it (by PID) after."""
    if journal_listening():
        yield None
        return
    if not os.path.exists(JOURNALD):
        pytest.fail(f"{JOURNALD} is missing (package systemd)")
    with open("/tmp/cs-journald.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if journal_listening():  # another test started one meanwhile
            yield None
            return
        before = set(os.listdir(JOURNAL_DIR)) if os.path.isdir(JOURNAL_DIR) else None
        proc = subprocess.Popen([JOURNALD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 20
            while not journal_listening():
                assert proc.poll() is None, "systemd-journald exited at start"
                assert time.monotonic() < deadline, "systemd-journald did not open its socket"
                time.sleep(0.05)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            # leave /run as we found it: its sockets are stale now
            if not journal_listening():
                for name in set(os.listdir(JOURNAL_DIR)) - (before or set()):
                    try:
                        os.unlink(os.path.join(JOURNAL_DIR, name))
                    except OSError:
                        pass
                if before is None:
                    try:
                        os.rmdir(JOURNAL_DIR)
                    except OSError:
                        pass


def journal_records(field: str, value: str, want: int = 1, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["journalctl", "--no-pager", "-o", "json", f"{field}={value}"],
                             capture_output=True, text=True, timeout=30)
        recs = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        if len(recs) >= want or time.monotonic() > deadline:
            return recs
        time.sleep(0.2)


def test_journald_receives_records_with_their_fields(journald):
    event = f"cs_test_{uuid.uuid4().hex[:12]}"
    err = io.StringIO()
    a = Alerter(cfg(), "n1", foreground=True, stderr=err)
    a.emit(event, "critical", "res_httpd failed: pid 42 exited", group="rg_web", resource="res_httpd",
           node="n2", rc=7)
    a.emit(event, "info", "second record")
    recs = journal_records("HASUPD_EVENT", event, want=2)
    assert len(recs) == 2
    first = next(r for r in recs if r["MESSAGE"].startswith("res_httpd"))
    assert first["HASUPD_GROUP"] == "rg_web" and first["HASUPD_RESOURCE"] == "res_httpd"
    assert first["HASUPD_NODE"] == "n2" and first["PRIORITY"] == "2" and first["HASUPD_RC"] == "7"
    assert first["HASUPD_SEVERITY"] == "critical" and first["SYSLOG_IDENTIFIER"] == "hasupd"
    second = next(r for r in recs if r["MESSAGE"] == "second record")
    assert second["PRIORITY"] == "6" and second["HASUPD_NODE"] == "n1" and "HASUPD_GROUP" not in second
    # the foreground line is short and human
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and "CRITICAL" in lines[0] and f"{event} rg_web/res_httpd: res_httpd failed" in lines[0]


def test_stale_journal_socket_is_not_taken_for_a_journald(tmp_path, monkeypatch):
    import socket

    path = str(tmp_path / "socket")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    assert journal_listening(path)
    s.close()  # the file stays, nobody listens
    assert os.path.exists(path) and not journal_listening(path)
    assert not journal_listening(str(tmp_path / "absent"))


SYSLOG_CHILD = textwrap.dedent("""
    # runs in a private mount namespace: no journal, our own /dev/log
    import os, socket, stat, subprocess, sys
    from types import SimpleNamespace
    for cmd in (["mount", "--make-rprivate", "/"], ["mount", "-t", "tmpfs", "cs-dev", "/dev"],
                ["mount", "-t", "tmpfs", "cs-run", "/run/systemd"]):
        subprocess.run(cmd, check=True)
    os.mknod("/dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log.bind("/dev/log")
    log.settimeout(10)
    from hasupd.alerts import Alerter, journal_listening
    assert not journal_listening()
    Alerter(SimpleNamespace(alerts=(), nodes=()), "n1").emit(
        "ring_degraded", "warning", "heartbeat ring 1 is silent", group="rg_web")
    print(log.recv(4096).decode())
""")


def test_syslog_when_no_journald_listens(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(SYSLOG_CHILD)
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable,
                          str(script)], capture_output=True, text=True, timeout=60, cwd=os.getcwd(),
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    # <28> = facility daemon (3) * 8 + priority warning (4)
    assert line.startswith("<28>") and "hasupd[" in line
    assert "ring_degraded rg_web: heartbeat ring 1 is silent" in line


AGENT = """#!/bin/sh
# in the manner of Pacemaker's alert_file.sh.sample
[ -z "$CRM_alert_version" ] && exit 0
[ -z "$CRM_alert_recipient" ] && exit 0
case $CRM_alert_kind in
    node) echo "$CRM_alert_timestamp: Node '$CRM_alert_node' is now '$CRM_alert_desc' (id $CRM_alert_nodeid)" >> "$CRM_alert_recipient" ;;
    fencing) echo "$CRM_alert_timestamp: Fencing $CRM_alert_desc rc=$CRM_alert_rc" >> "$CRM_alert_recipient" ;;
    resource)
        if [ ${CRM_alert_interval} = "0" ]; then CRM_alert_interval=""; fi
        if [ ${CRM_alert_target_rc} = "0" ]; then CRM_alert_target_rc=""; fi
        echo "$CRM_alert_timestamp: Resource operation '$CRM_alert_task' for '$CRM_alert_rsc' on '$CRM_alert_node': $CRM_alert_desc rc=$CRM_alert_rc status=$CRM_alert_status" >> "$CRM_alert_recipient" ;;
    attribute) echo "$CRM_alert_timestamp: Attribute '$CRM_alert_attribute_name' on node '$CRM_alert_node' was updated to '$CRM_alert_attribute_value'" >> "$CRM_alert_recipient" ;;
    *) echo "Unhandled $CRM_alert_kind alert" >> "$CRM_alert_recipient" ;;
esac
env | grep -E '^CRM_alert_(epoch|timestamp_epoch|timestamp_usec|version|node_sequence)=' | sort >> "$CRM_alert_recipient.env"
"""


def write_agent(path, text):
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def test_a_pacemaker_style_agent_gets_the_crm_alert_environment(tmp_path):
    out = tmp_path / "alerts.log"
    agent = AlertAgent(write_agent(tmp_path / "agent.sh", AGENT), 10.0, str(out))

    async def go():
        a = Alerter(cfg(agent), "n1")
        a.emit("peer_lost", "critical", "peer n2 silent on every ring for 2s", node="n2")
        a.emit("resource_failed", "warning", "res_httpd failed: pid 42 exited", group="rg_web",
               resource="res_httpd", task="monitor", rc=7)
        a.emit("fence_result", "warning", "fencing n2: succeeded", node="n2", rc=0)
        a.emit("ring_degraded", "warning", "heartbeat ring 1 is silent")
        await a.drain(30)
        await a.close()
        return a

    a = asyncio.run(go())
    lines = out.read_text().splitlines()
    assert len(lines) == 4, lines
    assert lines[0].endswith("Node 'n2' is now 'lost' (id 2)")
    assert lines[1].endswith("Resource operation 'monitor' for 'res_httpd' on 'n1': "
                             "res_httpd failed: pid 42 exited rc=7 status=0")
    assert lines[2].endswith("Fencing fencing n2: succeeded rc=0")
    assert lines[3].endswith("Attribute 'hasupd-ring_degraded' on node 'n1' was updated to "
                             "'heartbeat ring 1 is silent'")
    stamp = lines[0].split(": ")[0]
    assert len(stamp) == len("18:39:14.123456") and stamp[2] == ":" and stamp[8] == "."
    env_lines = (tmp_path / "alerts.log.env").read_text().splitlines()
    assert "CRM_alert_version=0.1.0" in env_lines
    epochs = [int(x.split("=")[1]) for x in env_lines if x.startswith("CRM_alert_timestamp_epoch=")]
    assert len(epochs) == 4 and all(abs(e - time.time()) < 120 for e in epochs)
    assert a.agent_failures == 0 and a.dropped == 0


def test_a_hanging_agent_is_killed_at_its_timeout_and_never_delays_emit(tmp_path):
    pids = tmp_path / "pids"
    hang = write_agent(tmp_path / "hang.sh", f"""#!/bin/sh
echo $$ >> {pids}
sleep 300 &
echo $! >> {pids}
wait
""")
    fast_out = tmp_path / "fast.log"
    fast = write_agent(tmp_path / "fast.sh", '#!/bin/sh\necho "$CRM_alert_kind" >> "$CRM_alert_recipient"\n')
    failing = write_agent(tmp_path / "fail.sh", "#!/bin/sh\necho broken >&2\nexit 3\n")

    async def go():
        a = Alerter(cfg(AlertAgent(hang, 0.5, ""), AlertAgent(fast, 10, str(fast_out)),
                        AlertAgent(failing, 10, "")), "n1")
        t0 = time.monotonic()
        for i in range(alerts.QUEUE_MAX + 5):
            a.emit("peer_back", "info", f"alive {i}", node="n2")
        emit_time = time.monotonic() - t0
        deadline = time.monotonic() + 30  # the first hanging run is killed at 0.5 s (more on a loaded machine)
        while a.agent_timeouts < 1:
            assert time.monotonic() < deadline, "the hanging agent was not killed at its timeout"
            await asyncio.sleep(0.05)
        # the fast agent runs all its queued alerts while the hanging one is still busy
        deadline = time.monotonic() + 30
        while not (fast_out.exists() and len(fast_out.read_text().splitlines()) >= alerts.QUEUE_MAX
                   and a.agent_failures >= 1):
            assert time.monotonic() < deadline, "the fast agent was held up"
            await asyncio.sleep(0.1)
        hanging_still_busy = a.agent_timeouts < alerts.QUEUE_MAX
        await a.close(timeout=0.1)
        return a, emit_time, hanging_still_busy

    a, emit_time, hanging_still_busy = asyncio.run(go())
    assert emit_time < 1.0  # 37 emits while an agent hangs
    assert a.agent_timeouts >= 1
    assert a.dropped == 3 * 5  # each agent's queue holds QUEUE_MAX; the 5 more were dropped and counted
    assert a.agent_failures >= 1  # the failing agent exits 3
    assert hanging_still_busy
    assert fast_out.read_text().splitlines()[:2] == ["node", "node"]
    # every run's script and its child sleep are dead: each run's process group was killed
    recorded = [int(x) for x in pids.read_text().split()]
    assert len(recorded) >= 2
    def dead(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except OSError:
            return True

    # SIGKILLed, a process still shows R until the kernel schedules its exit (seconds at load 9)
    deadline = time.monotonic() + 10
    while not all(dead(pid) for pid in recorded) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in recorded if not dead(pid)] == [], "a run of the hanging agent survived its kill"


def test_emit_without_a_loop_counts_agents_as_dropped(tmp_path):
    a = Alerter(cfg(AlertAgent("/bin/true", 1, "")), "n1")
    rec = a.emit("config_mismatch", "warning", "digests differ")
    assert a.dropped == 1 and rec["event"] == "config_mismatch" and a.recent[-1] is rec


def test_a_nul_in_a_message_does_not_kill_the_agents_worker(tmp_path):
    """Issue 16 low: a NUL (from a peer's or a program's text) in an alert
    message raised ValueError in the agent's worker, which then ran no
    alert again."""
    out = tmp_path / "alerts.log"
    agent = AlertAgent(write_agent(tmp_path / "agent.sh", '#!/bin/sh\necho "$HASUPD_MESSAGE" >> "$CRM_alert_recipient"\n'),
                       10.0, str(out))

    async def go():
        a = Alerter(cfg(agent), "n1")
        a.emit("resource_failed", "warning", "apache said a\x00b", resource="res_httpd")
        a.emit("peer_lost", "critical", "peer n2 lost", node="n2")
        await a.drain(30)
        await a.close()
        return a

    a = asyncio.run(go())
    assert out.read_text().splitlines() == ["apache said a\\x00b", "peer n2 lost"]
    assert a.agent_failures == 0
