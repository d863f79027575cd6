"""Issue 16 High 3: members of the read-only control group against the REAL
daemon (``python -m hasupd.daemon``, no resources, unicast heartbeat on
loopback): a flood of idle connections under a small file limit, and many
clients looping on ``status`` with a full default-size history while a
peer socket times the daemon's heartbeats."""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import time

from ctl_helpers import NOBODY, ROOT, _env

N1, N2 = "127.0.0.41", "127.0.0.42"
INTERVAL, DEADTIME = 0.2, 2.0


def write_config(d: str, port: int) -> str:
    key = os.path.join(d, "authkey")
    if not os.path.exists(key):  # kept across a restart of the daemon
        with open(key, "wb") as f:
            f.write(os.urandom(64))
        os.chmod(key, 0o400)
    path = os.path.join(d, "hasupd.yaml")
    with open(path, "w") as f:
        f.write(f"cluster: hd\nnodes:\n  - {{name: n1, addresses: [{N1}]}}\n  - {{name: n2, addresses: [{N2}]}}\n"
                f"heartbeat:\n  transport: unicast\n  rings: [{{bind_network: 127.0.0.0/8, port: {port}}}]\n"
                f"  interval: {INTERVAL}s\n  deadtime: {DEADTIME}s\n  authkey: {key}\n"
                f"split_brain_guard: {{mode: none}}\ngroups: []\nstate_dir: {d}/state\n"
                f"control: {{socket: {d}/hasupd.sock, group: nogroup}}\n")
    return path


@contextlib.contextmanager
def daemon(d: str, nofile: int | None = None):
    """The real daemon as node n1; yields (Popen, socket path)."""
    port = random.randint(20000, 60000)
    cfg = write_config(d, port)
    sock = os.path.join(d, "hasupd.sock")

    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    p = subprocess.Popen([sys.executable, "-m", "hasupd.daemon", "--config", cfg, "--node", "n1"],
                         env=_env(), cwd=ROOT, preexec_fn=limit, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(d, "daemon.log"), "w"))
    try:
        deadline = time.monotonic() + 30
        while request(sock, {"cmd": "status"}, timeout=2) is None:
            assert p.poll() is None, open(os.path.join(d, "daemon.log")).read()
            assert time.monotonic() < deadline, "the daemon did not answer within 30 s"
            time.sleep(0.2)
        p.port = port
        yield p, sock
    finally:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def request(sock: str, req: dict, timeout: float = 10.0) -> dict | None:
    """One request as root; None when nothing answered in time."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(sock)
            s.sendall(json.dumps(req).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf) if buf else None
    except (OSError, ValueError):
        return None


def fork_as(uid: int, body, gid: int | None = None) -> tuple[int, int, int]:
    """Fork a child that drops to UID (and GID, default the same number) and
    runs body(ready_fd, quit_fd).
    Returns (pid, read end of its 'ready' pipe, write end of its 'quit' pipe)."""
    r_ready, w_ready = os.pipe()
    r_quit, w_quit = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r_ready)
            os.close(w_quit)
            os.setgroups([])
            os.setgid(uid if gid is None else gid)
            os.setuid(uid)
            body(w_ready, r_quit)
            code = 0
        finally:
            os._exit(code)
    os.close(w_ready)
    os.close(r_quit)
    return pid, r_ready, w_quit


def end_child(pid: int, w_quit: int) -> None:
    os.close(w_quit)
    for _ in range(200):
        if os.waitpid(pid, os.WNOHANG)[0]:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---------------------------------------------------------------- idle connections


def test_idle_connections_of_a_status_user_cannot_exhaust_the_daemons_files(sockdir):
    """220 idle connections from uid 65534 (a member of the control group)
    against a daemon with 128 files: it keeps its files, stays up and
    answers root, including a change that writes the state file."""
    with daemon(sockdir, nofile=128) as (p, sock):
        before = open_fds(p.pid)

        def flood(ready, quit_):
            conns = []
            for _ in range(220):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    s.connect(sock)
                conns.append(s)
            os.write(ready, b"x")
            os.read(quit_, 1)  # hold them, idle, until told

        pid, r_ready, w_quit = fork_as(NOBODY, flood)
        try:
            assert os.read(r_ready, 1) == b"x"
            time.sleep(3.0)  # the daemon accepts what it will
            held = open_fds(p.pid)
            status = request(sock, {"cmd": "status"}, timeout=20)
            change = request(sock, {"cmd": "standby", "node": "n1"}, timeout=20)
            alive = p.poll() is None
        finally:
            end_child(pid, w_quit)
            os.close(r_ready)
        assert alive, open(os.path.join(sockdir, "daemon.log")).read()[-2000:]
        assert held - before <= 12, f"the daemon holds {held - before} more files for idle clients"
        assert status is not None and status["ok"], status
        assert change == {"ok": True, "changed": True}, change
        assert "Too many open files" not in open(os.path.join(sockdir, "daemon.log")).read()


# ---------------------------------------------------------------- status under load


def fill_history(state_dir: str, max_bytes: int = 4 * 1024 * 1024) -> int:
    """A full default-size history.jsonl of the last 24 h (failovers and
    their decisions, actions and observations); returns its record count."""
    os.makedirs(state_dir, exist_ok=True)
    now_wall, now_mono = time.time(), time.monotonic()
    lines, size, i = [], 0, 0
    while True:
        age = 86000.0 * (1 - i / 40000)
        base = {"mono": round(now_mono - age, 6), "wall": round(now_wall - age, 6), "node": "n1"}
        kind = i % 6
        if kind == 0:
            rec = {**base, "kind": "observation", "resource": "res_httpd", "state": "failed",
                   "reason": f"httpd pid {1000 + i} exited with status 1 (signal 9)", "group": "rg_web"}
        elif kind == 1:
            rec = {**base, "kind": "decision", "actions": ["stop res_httpd", "start res_httpd"],
                   "reason": "res_httpd failed 1 time(s), threshold 3: restart in place", "group": "rg_web"}
        elif kind in (2, 4):
            rec = {**base, "kind": "action-start", "action": "stop" if kind == 2 else "start",
                   "resource": "res_httpd", "group": "rg_web", "reason": "restart in place"}
        else:
            rec = {**base, "kind": "action-done", "action": "stop" if kind == 3 else "start",
                   "resource": "res_httpd", "group": "rg_web", "ok": True, "duration": 0.25,
                   "message": "apache2 answered on port 80 (server-status ok)"}
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        if size + len(line) > max_bytes:
            break
        lines.append(line)
        size += len(line)
        i += 1
    with open(os.path.join(state_dir, "history.jsonl"), "w") as f:
        f.writelines(lines)
    return len(lines)


def test_status_clients_do_not_stall_the_heartbeat(sockdir):
    """24 clients (8 each of uids 65534, 33 and 34, all in the control group)
    loop on `status` for 10 s with a full default-size history; the
    daemon's heartbeats, timed by a socket at the peer's address, must keep
    coming (largest gap well under deadtime)."""
    assert fill_history(os.path.join(sockdir, "state")) > 10000
    with daemon(sockdir) as (p, sock):
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind((N2, p.port))
        peer.settimeout(0.05)

        def clients(ready, quit_):
            import threading

            os.read(quit_, 1)  # go
            stop = time.monotonic() + 10.0
            answered = []

            def loop():
                while time.monotonic() < stop:
                    with contextlib.suppress(OSError):
                        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                            s.settimeout(15)
                            s.connect(sock)
                            s.sendall(b'{"cmd": "status"}\n')
                            first = buf = s.recv(1 << 20)
                            while buf and not buf.endswith(b"\n"):
                                buf = s.recv(1 << 20)
                            answered.append(first.startswith(b'{"ok":true'))

            threads = [threading.Thread(target=loop) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            os.write(ready, f"{sum(answered)} {len(answered)}".encode())

        children = []
        try:
            while True:  # the daemon's packets arrive before the load starts
                with contextlib.suppress(socket.timeout):
                    peer.recv(4096)
                    break
            for uid in (NOBODY, 33, 34):
                children.append(fork_as(uid, clients, gid=NOBODY))
            for _, _, w_go in children:
                os.write(w_go, b"g")
            arrivals = []
            end = time.monotonic() + 10.0
            while time.monotonic() < end:
                with contextlib.suppress(socket.timeout):
                    peer.recv(4096)
                    arrivals.append(time.monotonic())
            counts = [os.read(r, 64).split() for _, r, _ in children]
        finally:
            for pid, r_ready, w_quit in children:
                end_child(pid, w_quit)
                os.close(r_ready)
            peer.close()
        ok = sum(int(c[0]) for c in counts)
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        largest = max(gaps, default=10.0)
        print(f"status answered ok {ok} (of {sum(int(c[1]) for c in counts)} answers), "
              f"heartbeats {len(arrivals)} in 10 s, largest gap {largest:.3f}s")
        assert ok >= 24, counts
        assert len(arrivals) >= 10.0 / INTERVAL / 2, f"{len(arrivals)} heartbeats in 10 s"
        assert largest < DEADTIME * 0.75, f"largest heartbeat gap {largest:.2f}s (deadtime {DEADTIME:g}s)"


# ---------------------------------------------------------------- replay after a restart of the daemon


def peer_online(sock: str) -> bool:
    status = request(sock, {"cmd": "status"})["status"]
    return next(n for n in status["nodes"] if n["name"] == "n2")["online"]


def test_the_daemon_keeps_the_peers_incarnation_across_its_restart(sockdir):
    """Issue 16 Medium 5 end to end: the daemon hears n2, restarts, and then
    refuses a packet of an older n2 incarnation (even one carrying a current
    send time) while a newer incarnation is taken."""
    from hasupd import config as configmod
    from hasupd.membership import wire

    def send_as_n2(port: int, incarnation: str) -> None:
        cfg = configmod.load(os.path.join(sockdir, "hasupd.yaml"))
        with open(os.path.join(sockdir, "authkey"), "rb") as f:
            key = f.read()
        pkt = wire.encode(key, cfg.cluster, "n2", incarnation, 1, cfg.digest(), wire.EMPTY, ring=0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(3):
                s.sendto(pkt, (N1, port))
                time.sleep(0.1)

    older = wire.new_incarnation(time.time() - 60)
    current = wire.new_incarnation()
    with daemon(sockdir) as (p, sock):
        send_as_n2(p.port, current)
        assert peer_online(sock)
    kept = json.load(open(os.path.join(sockdir, "state", "peer-incarnation.json")))
    assert kept == {"n2": current}
    with daemon(sockdir) as (p, sock):
        send_as_n2(p.port, older)
        assert not peer_online(sock)
        send_as_n2(p.port, wire.new_incarnation())
        assert peer_online(sock)
