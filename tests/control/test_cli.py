"""hasupctl against a fake daemon served through the real ControlServer."""

import json
import os
import stat
import time

import pytest
from ctl_helpers import HERE, NOBODY, hasupctl, read_log

from hasupd.control.cli import Fail, parse_since
from hasupd.status import render_status

GOLDEN = os.path.join(HERE, "golden")


@pytest.fixture
def golden(request):
    """Compare with tests/control/golden/NAME; `pytest --update` or HASUPD_UPDATE=1 rewrites it."""
    update = os.environ.get("HASUPD_UPDATE") == "1" or request.config.getoption("--update", False)

    def check(name: str, text: str) -> None:
        path = os.path.join(GOLDEN, name)
        if update or not os.path.exists(path):
            with open(path, "w") as f:
                f.write(text)
            if not update:
                pytest.fail(f"{name} did not exist and was written: check it and run again")
        with open(path) as f:
            assert text == f.read(), f"{name} differs (pytest --update rewrites it after review)"
    return check


# ---------------------------------------------------------------- status


@pytest.mark.parametrize("view", ["healthy", "degraded"])
def test_status_golden_output(fake, golden, view):
    sock, _ = fake(view=view)
    r = hasupctl("--socket", sock, "status")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    golden(f"status-{view}.txt", r.stdout)
    assert "\033[" not in r.stdout  # no colour when not on a TTY


def _shape(obj):
    if isinstance(obj, dict):
        return {k: _shape(v) for k, v in sorted(obj.items())}
    if isinstance(obj, list):
        return [_shape(obj[0])] if obj else []
    return type(obj).__name__


def test_status_json_schema_is_stable(fake, golden):
    sock, _ = fake(view="healthy")
    r = hasupctl("--socket", sock, "status", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["version"] == 1
    golden("status-schema.json", json.dumps(_shape(doc), indent=1, sort_keys=True) + "\n")
    # the JSON document renders to exactly the human output
    human = hasupctl("--socket", sock, "status").stdout
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        assert render_status(doc) == human
    finally:
        os.environ.pop("TZ")
        time.tzset()
    g = doc["groups"][0]
    assert g["name"] == "rg_web" and g["state"] == "started" and g["node"] == "primarycentos"
    assert [r["name"] for r in g["resources"]] == ["res_vip", "res_filesystem", "res_httpd"]
    assert g["fail_counts"] == [{"node": "secondarycentos", "resource": "res_httpd", "count": 1,
                                 "last_failure_wall": 1795545600.0 - 3600}]
    assert g["bans"] == ["secondarycentos"] and g["last_failover"]["total"] == 1.85


def test_status_colour_only_when_asked():
    import sys

    sys.path.insert(0, HERE)
    import fake_daemon

    doc = fake_daemon.status_for("degraded")
    assert "\033[31m" in render_status(doc, color=True)
    plain = render_status(doc, color=False)
    assert "\033[" not in plain and "BLOCKED: res_filesystem did not stop" in plain


def test_status_shows_which_drbd_and_lost_quorum():
    import sys

    sys.path.insert(0, HERE)
    import fake_daemon

    doc = fake_daemon.status_for("healthy")
    nodes = doc["drbd"][0]["nodes"]
    first = next(iter(nodes))
    nodes[first].update(kernel_version="9.2.12", quorum=False)
    line = next(x for x in render_status(doc).splitlines() if x.strip().startswith(first) and "DRBD" in x)
    assert line.endswith("NO QUORUM  (DRBD 9.2.12)"), line


# ---------------------------------------------------------------- daemon not running


def test_daemon_not_running_one_line_and_exit_codes(sockdir):
    sock = os.path.join(sockdir, "absent.sock")
    r = hasupctl("--socket", sock, "status")
    assert r.returncode == 3 and r.stdout == ""
    assert r.stderr == f"hasupctl: hasupd is not running (no control socket {sock})\n"
    for argv in (["move", "rg_web"], ["cleanup"], ["history"], ["maintenance", "on"], ["drbd", "status"],
                 ["status", "--json"]):
        r = hasupctl("--socket", sock, *argv)
        assert r.returncode == (3 if argv[0] == "status" else 1), argv
        assert len(r.stderr.splitlines()) == 1 and "hasupd is not running" in r.stderr
    # a stale socket file from a daemon that died
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(sock)
    s.close()
    r = hasupctl("--socket", sock, "status")
    assert r.returncode == 3 and r.stderr == f"hasupctl: hasupd is not running (nothing answers on {sock})\n"
    r = hasupctl("status", HASUPD_SOCKET=sock)  # the environment variable is honoured
    assert r.returncode == 3 and sock in r.stderr


# ---------------------------------------------------------------- who may do what


def test_nobody_in_the_group_may_look_but_not_move(fake):
    sock, log = fake(group="daemon")  # gid 1 exists on Debian
    st = os.stat(sock)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == 1 and st.st_uid == 0
    r = hasupctl("--socket", sock, "status", user=NOBODY, extra_groups=[1])
    assert r.returncode == 0, r.stderr
    assert "Group rg_web: started on primarycentos" in r.stdout
    r = hasupctl("--socket", sock, "move", "rg_web", "secondarycentos", user=NOBODY, extra_groups=[1])
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == "hasupctl: permission denied: hasupctl move needs root\n"
    cmds = [(e["cmd"], e["uid"]) for e in read_log(log)]
    assert cmds == [("status", NOBODY)]  # refused requests never reached the engine
    r = hasupctl("--socket", sock, "move", "rg_web", "secondarycentos")  # root may
    assert r.returncode == 0 and read_log(log)[-1] == {
        "cmd": "move", "args": {"group": "rg_web", "node": "secondarycentos", "pin": False}, "uid": 0}


def test_nobody_outside_the_group(fake):
    sock, _ = fake(group="daemon", name="strict.sock")
    r = hasupctl("--socket", sock, "status", user=NOBODY)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith("hasupctl: permission denied: cannot open")
    # with the socket open to all, the server's SO_PEERCRED check still refuses
    sock, log = fake(group="daemon", mode="0666", name="open.sock")
    r = hasupctl("--socket", sock, "status", user=NOBODY)
    assert r.returncode == 1
    assert r.stderr == "hasupctl: permission denied: hasupctl status needs root or membership of group daemon\n"
    assert read_log(log) == []


def test_missing_control_group_means_root_only(fake):
    sock, _ = fake(group="cs-no-such-group")
    assert os.stat(sock).st_gid == 0


# ---------------------------------------------------------------- commands


def test_move_dry_run_prints_the_plan(fake):
    sock, log = fake(view="movable")  # the real planner's steps on this node
    r = hasupctl("--socket", sock, "move", "rg_web", "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    why = "  (the operator moved rg_web to secondarycentos)"
    assert lines[0] == "moving rg_web to secondarycentos would run 5 step(s):"
    assert lines[1] == "  1. stop res_httpd" + why
    assert lines[4] == "  4. demote r0" + why
    assert lines[5] == "  5. release" + why
    assert read_log(log)[-1]["args"]["dry_run"] is True


def test_move_wait_until_the_group_answers(fake):
    sock, log = fake(move_script="started")
    r = hasupctl("--socket", sock, "move", "rg_web", "secondarycentos", "--wait", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "rg_web: moving to secondarycentos ..."
    assert r.stdout.splitlines()[-1].startswith("rg_web answers on secondarycentos after ")
    assert [e["cmd"] for e in read_log(log)].count("status") >= 3


def test_move_wait_reports_a_failed_move(fake):
    sock, _ = fake(move_script="fails")
    r = hasupctl("--socket", sock, "move", "rg_web", "--wait", "--timeout", "60")
    assert r.returncode == 1
    assert r.stderr == ("hasupctl: move failed: rg_web cannot run on secondarycentos: promotion of r0 failed "
                        "(Need access to UpToDate data)\n")


def test_move_wait_sees_a_failure_on_the_target(fake):
    sock, _ = fake(move_script="banned")
    r = hasupctl("--socket", sock, "move", "rg_web", "--wait", "--timeout", "60")
    assert r.returncode == 1
    assert r.stderr == ("hasupctl: move failed: rg_web failed on secondarycentos: rg_web runs on primarycentos; "
                        "secondarycentos could not start res_vip\n")


def test_move_of_an_unknown_group_is_refused_by_the_daemon(fake):
    sock, _ = fake()
    r = hasupctl("--socket", sock, "move", "rg_nope")
    assert r.returncode == 1 and r.stderr == "hasupctl: no group 'rg_nope' (groups: rg_web)\n"


@pytest.mark.parametrize("argv,cmd,args", [
    (["clear", "rg_web"], "clear", {"group": "rg_web"}),
    (["cleanup"], "cleanup", {"group": None, "node": None}),
    (["cleanup", "rg_web", "--node", "primarycentos"], "cleanup", {"group": "rg_web", "node": "primarycentos"}),
    (["standby"], "standby", {"node": None}),
    (["unstandby", "secondarycentos"], "unstandby", {"node": "secondarycentos"}),
    (["maintenance", "on"], "maintenance", {"on": True}),
    (["maintenance", "off"], "maintenance", {"on": False}),
    (["start", "rg_web"], "start", {"group": "rg_web"}),
    (["stop", "rg_web"], "stop", {"group": "rg_web"}),
    (["move", "rg_web", "primarycentos", "--pin"], "move",
     {"group": "rg_web", "node": "primarycentos", "pin": True}),
])
def test_changing_commands_send_their_request(fake, argv, cmd, args):
    sock, log = fake()
    r = hasupctl("--socket", sock, *argv)
    assert r.returncode == 0, r.stderr
    assert read_log(log) == [{"cmd": cmd, "args": args, "uid": 0}]
    assert r.stdout.strip()  # says what happened


def test_read_only_commands(fake):
    sock, _ = fake()
    r = hasupctl("--socket", sock, "history")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "2026-11-24 17:40:00  failover of rg_web: failure seen res_httpd — 1.85s, ok"
    assert lines[1].strip().startswith("+  0.000s  failure seen res_httpd")
    assert "promote r0" in r.stdout and "on primarycentos" in r.stdout
    r = hasupctl("--socket", sock, "history", "--json")
    doc = json.loads(r.stdout)
    assert doc["version"] == 1 and doc["timelines"][0]["kind"] == "failover"
    assert len(doc["timelines"][0]["steps"]) == 9
    r = hasupctl("--socket", sock, "history", "--since", "1795545000")  # after the failover
    assert r.returncode == 0 and r.stdout.startswith("no failover or move in the history since")
    r = hasupctl("--socket", sock, "history", "--since", "yesterday-ish")
    assert r.returncode == 2 and "cannot read the time" in r.stderr
    r = hasupctl("--socket", sock, "explain")
    assert r.stdout.startswith("rg_web: rg_web runs on primarycentos; secondarycentos would not take it over")
    r = hasupctl("--socket", sock, "drbd", "status")
    assert r.stdout == "r0: Primary/Secondary UpToDate/Inconsistent Connected SyncSource 88.8% eta 60s\n"
    r = hasupctl("--socket", sock, "drbd", "status", "--json")
    assert json.loads(r.stdout)["r0"]["sync_percent"] == 88.8
    # an intent that is already so changes nothing (no new epoch) and says so
    r = hasupctl("--socket", sock, "unstandby", "primarycentos")
    assert r.returncode == 0 and r.stdout == "unstandby requested for primarycentos (nothing changed: it was already so)\n"


def test_parse_since():
    now = 1795545600.0
    assert parse_since("10m", now) == now - 600
    assert parse_since("2h", now) == now - 7200
    assert parse_since("1795545000", now) == 1795545000.0
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        assert parse_since("18:00", now) == now - 2400
        assert parse_since("2026-11-24 18:30", now) == now - 600
    finally:
        os.environ.pop("TZ")
        time.tzset()
    with pytest.raises(Fail):
        parse_since("soon", now)


# ---------------------------------------------------------------- local commands


REFERENCE = os.path.join(HERE, "..", "..", "conf", "hasupd.yaml")


def test_check_valid_and_invalid(tmp_path):
    r = hasupctl("check", "--config", os.path.abspath(REFERENCE))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("cluster web: nodes primarycentos, secondarycentos")
    assert r.stdout.rstrip().endswith(": valid")
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(REFERENCE).read().replace("deadtime: 2s", "deadtime: 2 fortnights"))
    r = hasupctl("check", "--config", str(bad))
    assert r.returncode == 78 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith(f"hasupctl: {bad}:")
    assert "deadtime" in r.stderr
    r = hasupctl("check", HASUPD_CONFIG=str(tmp_path / "missing.yaml"))
    assert r.returncode == 78 and "cannot read" in r.stderr
    r = hasupctl("--config", os.path.abspath(REFERENCE), "check")  # the global option works too
    assert r.returncode == 0


def test_keygen(tmp_path):
    key = tmp_path / "etc" / "authkey"
    r = hasupctl("keygen", str(key))
    assert r.returncode == 0, r.stderr
    assert key.stat().st_size == 64 and stat.S_IMODE(key.stat().st_mode) == 0o400
    first = key.read_bytes()
    r = hasupctl("keygen", str(key))
    assert r.returncode == 1 and "exists" in r.stderr and "--force" in r.stderr
    assert key.read_bytes() == first
    r = hasupctl("keygen", str(key), "--force")
    assert r.returncode == 0 and key.read_bytes() != first and len(key.read_bytes()) == 64
    assert stat.S_IMODE(key.stat().st_mode) == 0o400
    assert sorted(p.name for p in key.parent.iterdir()) == ["authkey"]


def test_version_and_usage():
    r = hasupctl("--version")
    assert r.returncode == 0 and r.stdout.strip() == "hasupctl 0.1.0"
    r = hasupctl()
    assert r.returncode == 2
    r = hasupctl("maintenance", "maybe")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_status_watch_redraws_until_interrupted(fake):
    import signal
    import subprocess
    import sys

    from ctl_helpers import _env

    sock, log = fake()
    p = subprocess.Popen([sys.executable, "-m", "hasupd.control.cli", "--socket", sock, "status", "--watch",
                          "--interval", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=_env(), cwd="/",
                         # a suite started in the background (`cmd &`) ignores SIGINT, and so would the child
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 30
        # the 4th request comes after the 3rd screen was printed (the server logs a request before
        # the client has drawn its answer: waiting for 3 raced with the third drawing)
        while len([e for e in read_log(log) if e["cmd"] == "status"]) < 4:
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and err == ""
    assert out.count("Group rg_web: started on primarycentos") >= 3
