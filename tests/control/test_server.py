"""ControlServer: malformed requests, handler failures, socket file handling."""

import asyncio
import json
import os
import signal
import socket
import stat
import time

import pytest

from hasupd.control import client
from hasupd.control.protocol import MAX_LINE, PeerCred, decode_request, permission_error
from hasupd.control.server import ControlServer, authorize


async def _exchange(path: str, payloads: list[bytes]) -> list[dict]:
    reader, writer = await asyncio.open_unix_connection(path, limit=1 << 22)
    answers = []
    for p in payloads:
        writer.write(p)
        await writer.drain()
        answers.append(json.loads(await asyncio.wait_for(reader.readline(), 10)))
    writer.close()
    return answers


def _serve(sockdir, scenario, handler=None, group="hasupd"):
    path = os.path.join(sockdir, "ctl.sock")
    seen = []

    async def default_handler(cmd, args, peer):
        seen.append((cmd, args, peer))
        if args.get("explode"):
            raise ValueError("boom")
        if args.get("weird"):
            return "a string"
        return {"echo": args}

    async def main():
        server = ControlServer(path, group, handler or default_handler)
        await server.start()
        try:
            return await scenario(path, server)
        finally:
            await server.close()

    return asyncio.run(main()), seen, path


def test_malformed_requests_get_errors_and_the_server_lives_on(sockdir):
    async def scenario(path, server):
        answers = await _exchange(path, [
            b"not json\n", b"[1, 2]\n", b'{"x": 1}\n', b'{"cmd": "format-disk"}\n', b'{"cmd": 7}\n',
            b"\xff\xfe\n", b'{"cmd": "status", "verbose": true}\n',
            b'{"cmd": "cleanup", "explode": true}\n', b'{"cmd": "clear", "weird": true}\n',
        ])
        # a request cut short, then a connection that sends too much
        r, w = await asyncio.open_unix_connection(path)
        w.write(b'{"cmd": "stat')
        w.write_eof()
        cut = json.loads(await r.readline())
        w.close()
        r, w = await asyncio.open_unix_connection(path, limit=1 << 22)
        w.write(b"x" * (MAX_LINE + 10))
        await w.drain()
        too_long = json.loads(await asyncio.wait_for(r.readline(), 10))
        w.close()
        after = await _exchange(path, [b'{"cmd": "status"}\n'])
        return answers, cut, too_long, after

    (answers, cut, too_long, after), seen, _ = _serve(sockdir, scenario)
    errors = [a.get("error") for a in answers]
    assert errors[:6] == ["malformed request: not JSON", "malformed request: expected a JSON object",
                          'malformed request: no "cmd"', "unknown command 'format-disk'",
                          'malformed request: no "cmd"', "malformed request: not JSON"]
    assert all(a["ok"] is False for a in answers[:6])
    assert answers[6] == {"ok": True, "echo": {"verbose": True}}
    assert answers[7]["ok"] is False and answers[7]["error"].startswith("internal error in cleanup: ValueError")
    assert answers[8] == {"ok": False, "error": "internal error in clear: the handler returned str"}
    assert cut == {"ok": False, "error": "malformed request: no newline at the end"}
    assert too_long["ok"] is False and "too long" in too_long["error"]
    assert after == [{"ok": True, "echo": {}}]
    # the handler saw only the well-formed requests, with the caller's credentials
    assert [c for c, _, _ in seen] == ["status", "cleanup", "clear", "status"]
    assert seen[0][2] == PeerCred(os.getpid(), 0, os.getgid(), tuple(sorted(os.getgroups())))


def test_socket_mode_group_and_stale_socket(sockdir):
    path = os.path.join(sockdir, "ctl.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # left by a daemon that died
    stale.close()

    async def scenario(path, server):
        st = os.stat(path)
        second = ControlServer(path, "daemon", server.handler)
        with pytest.raises(RuntimeError, match="another hasupd answers"):
            await second.start()
        return stat.S_IMODE(st.st_mode), st.st_gid

    (mode, gid), _, path = _serve(sockdir, scenario, group="daemon")
    assert mode == 0o660 and gid == 1
    assert not os.path.exists(path)  # removed on close


def test_client_request_and_errors(sockdir):
    async def scenario(path, server):
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(None, lambda: client.request(path, "history", since=5.0))
        bad = await loop.run_in_executor(None, lambda: client.request(path, "clear", weird=True))
        return ok, bad

    (ok, bad), _, path = _serve(sockdir, scenario)
    assert ok == {"ok": True, "echo": {"since": 5.0}}
    assert bad["ok"] is False
    with pytest.raises(client.DaemonNotRunning, match="hasupd is not running"):
        client.request(path, "status")


def test_client_timeout_is_one_clear_error(sockdir):
    async def slow(cmd, args, peer):
        await asyncio.sleep(5)
        return {}

    async def scenario(path, server):
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, lambda: client.request(path, "status", timeout=0.3))
        except client.ControlError as e:
            return str(e)

    msg, _, _ = _serve(sockdir, scenario, handler=slow)
    assert msg == "hasupd did not answer status within 0.3s"


def test_authorize_table():
    root, user = PeerCred(1, 0, 0), PeerCred(os.getpid(), 65534, 65534)
    for cmd in ("move", "clear", "cleanup", "standby", "unstandby", "maintenance", "start", "stop",
                "drbd-init", "drbd-fence-peer", "drbd-unfence-peer", "alert"):
        assert authorize(cmd, root, "nogroup") is None
        assert authorize(cmd, user, "nogroup") == permission_error(cmd)
    assert permission_error("move") == "permission denied: hasupctl move needs root"
    for cmd in ("status", "history", "explain", "check", "drbd-status"):
        assert authorize(cmd, root, "cs-no-such-group") is None
        assert authorize(cmd, user, "nogroup") is None  # nobody's primary group is nogroup
        assert "needs root or membership of group cs-no-such-group" in authorize(cmd, user, "cs-no-such-group")


def test_decode_request_keeps_arguments():
    assert decode_request(b'{"cmd": "move", "group": "g", "node": null}') == ("move", {"group": "g", "node": None})


def test_idle_clients_are_disconnected_and_connections_are_capped(sockdir):
    """A client that sends nothing, or does not read its answers, is dropped
    after idle_timeout; a uid over its cap gets one clear error; root's own
    slots stay free."""
    from hasupd.control import server as servermod

    async def big(cmd, args, peer):
        return {"blob": "x" * (8 << 20)}  # more than the socket buffers hold

    async def scenario(path, server):
        server.idle_timeout = 0.5
        quiet_r, quiet_w = await asyncio.open_unix_connection(path)
        t0 = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(quiet_r.read(), 10) == b""  # closed by the server
        idle_for = asyncio.get_running_loop().time() - t0
        # a client that asks for a big answer and never reads it
        deaf_r, deaf_w = await asyncio.open_unix_connection(path)
        deaf_w.write(b'{"cmd": "status"}\n')
        await asyncio.sleep(2.0)
        deaf_dropped = server.timed_out
        # root (this test) over the cap of root's slots
        held = [await asyncio.open_unix_connection(path) for _ in range(servermod.MAX_ROOT)]
        await asyncio.sleep(0.1)
        extra_r, _ = await asyncio.open_unix_connection(path)
        over = json.loads(await asyncio.wait_for(extra_r.readline(), 10))
        for _, w in held + [(quiet_r, quiet_w), (deaf_r, deaf_w)]:
            w.close()
        return idle_for, deaf_dropped, over, server.turned_away

    (idle_for, deaf_dropped, over, turned_away), _, _ = _serve(sockdir, scenario, handler=big)
    assert 0.4 < idle_for < 5
    assert deaf_dropped == 2  # the quiet one and the deaf one
    assert over == {"ok": False, "error": f"too many connections from root (limit {servermod.MAX_ROOT})"}
    assert turned_away == 1


def test_caps_per_uid_and_for_all_users():
    from hasupd.control.server import MAX_PER_UID, MAX_USERS, ControlServer

    s = ControlServer("/nonexistent", "hasupd", None)
    s.connections = {1000: MAX_PER_UID}
    assert s._over_cap(1000) == f"too many connections from uid 1000 (limit {MAX_PER_UID})"
    assert s._over_cap(1001) is None and s._over_cap(0) is None
    s.connections = {u: 1 for u in range(1000, 1000 + MAX_USERS)}
    assert s._over_cap(5000) == f"too many connections (limit {MAX_USERS} for all non-root users)"
    assert s._over_cap(0) is None  # root is never locked out by others


def test_deeply_nested_request_is_an_error_not_a_crash(sockdir):
    """Issue 16 low: `[` x 50000 made json.loads raise RecursionError out of
    the connection handler."""
    async def scenario(path, server):
        deep = await _exchange(path, [b"[" * 50000 + b"\n", b'{"cmd": "status"}\n'])
        return deep

    (deep, after), _, _ = _serve(sockdir, scenario)
    assert deep == {"ok": False, "error": "malformed request: nested too deeply"}
    assert after["ok"] is True


ADM = 4  # a group that neither test user has


def _connect_then_hand_over(path: str, go_r: int, answer_w: int) -> None:
    """Process A (uid 65534, no supplementary group) connects, forks B, exits.
    B keeps the connection and, when told, sends `status` and passes the
    answer back."""
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    if os.fork() == 0:
        try:
            os.read(go_r, 1)
            s.sendall(b'{"cmd": "status"}\n')
            os.write(answer_w, s.makefile("rb").readline())
        finally:
            os._exit(0)
    os._exit(0)


def _pid_reused_by_a_group_member(pid: int) -> int:
    """Fork, via ns_last_pid, a process numbered PID that is in group ADM (as
    uid 33); returns its pid (== PID) or raises."""
    for _ in range(50):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        child = os.fork()
        if child == 0:
            try:
                if os.getpid() == pid:
                    os.setgroups([ADM])
                    os.setgid(33)
                    os.setuid(33)
                    time.sleep(60)
            finally:
                os._exit(0)
        if child == pid:
            return child
        os.waitpid(child, 0)
    raise AssertionError(f"could not get pid {pid} again")


def test_groups_are_the_callers_at_connect_time_not_whoever_has_its_pid_now(sockdir):
    """Issue 16 low: supplementary groups were read from /proc/PID at request
    time.  A caller outside the control group connects and exits, keeping
    the connection in a child; PID is then reused by a member of the group.
    The request must still be refused (SO_PEERGROUPS: groups at connect)."""
    go_r, go_w = os.pipe()
    ans_r, ans_w = os.pipe()

    def attack(path):
        a = os.fork()
        if a == 0:
            try:
                _connect_then_hand_over(path, go_r, ans_w)
            finally:
                os._exit(1)
        os.close(go_r)
        os.close(ans_w)  # B's death is then an EOF here, not a hang
        os.waitpid(a, 0)  # A is gone; its connection lives on in B
        impostor = _pid_reused_by_a_group_member(a)
        try:
            os.write(go_w, b"g")
            return json.loads(os.read(ans_r, 1 << 16) or b"null")
        finally:
            os.kill(impostor, signal.SIGKILL)
            os.waitpid(impostor, 0)

    async def scenario(path, server):
        os.chmod(path, 0o666)  # anyone may connect; the groups decide what they may do
        return await asyncio.get_running_loop().run_in_executor(None, attack, path)

    answer, seen, _ = _serve(sockdir, scenario, group="adm")
    os.close(go_w)
    os.close(ans_r)
    assert answer == {"ok": False, "error": "permission denied: hasupctl status needs root or membership "
                                            "of group adm"}, answer
    assert seen == []
