"""Helpers for the filesystem and vip driver tests (name prefix "fv").

The daemon runs inside the node's namespaces, so the tests do the same: a
driver lives in a child process started under ``nsenter --net=...`` (vip) or
``unshare --mount`` (filesystem: a private mount namespace, so nothing the
test mounts is seen outside and it all vanishes with the child).  The child
is this file run as a script; it speaks JSON lines:

    -> {"id": 1, "op": "start"}          <- {"id": 1, "result": {...Result...}}
    -> {"id": 2, "op": "watch"}          <- {"obs": {"state": "failed", "detail": ..., "at": ...}}

``at`` is time.monotonic() in the child; CLOCK_MONOTONIC is one clock for
the whole machine, so latencies are measured across the two processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TIMEOUTS = {"start": 30.0, "stop": 30.0, "monitor": 10.0}


def fs_params(**over) -> dict:
    """FilesystemResource fields; defaults as in hasupd/config.py."""
    p = dict(name="fs", timeouts=dict(TIMEOUTS), monitor_interval=10.0, device="", directory="",
             fstype="ext4", options="", fsck=False, force_unmount=True, kill_grace=5.0, probe_file=True)
    p.update(over)
    return p


def vip_params(**over) -> dict:
    """VipResource fields; defaults as in hasupd/config.py."""
    p = dict(name="vip", timeouts=dict(TIMEOUTS), monitor_interval=10.0, ip="", cidr_netmask=24, nic=None,
             label=None, arp_count=5, arp_interval=0.2, arp_repeat_after=5.0, check_duplicate=True)
    p.update(over)
    return p


def sh(*argv: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout)


def wait_for(pred, timeout: float, interval: float = 0.05):
    """Poll ``pred`` until it returns something truthy; return it (or the last falsy value)."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------- loop devices


@contextlib.contextmanager
def loop_ext4(directory: Path, size_mb: int = 32):
    """A fresh ext4 on a loop device (detached again in any case)."""
    img = directory / "fv-disk.img"
    with open(img, "wb") as f:
        f.truncate(size_mb << 20)
    dev = sh("losetup", "-f", "--show", str(img)).stdout.strip()
    try:
        sh("mkfs.ext4", "-q", "-F", dev)
        yield dev
    finally:
        sh("losetup", "-d", dev, check=False)
        img.unlink(missing_ok=True)


# ---------------------------------------------------------------- a LAN of namespaces


@dataclasses.dataclass
class Lan:
    """Namespaces ``n1``, ``n2``, ``client`` on one bridge (``br0`` in
    namespace ``lan``), each with ``eth0`` in 10.77.3.0/24."""

    lan: str
    nodes: dict[str, str]  # role (n1, n2, client) -> namespace name

    def ip(self, role: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        ns = self.lan if role == "lan" else self.nodes[role]
        return sh("ip", "-n", ns, *args, check=check)

    def mac(self, role: str, ifname: str = "eth0") -> str:
        return json.loads(self.ip(role, "-j", "link", "show", ifname).stdout)[0]["address"]

    def enter(self, role: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.nodes[role]}"]


LAN_ADDRESSES = {"n1": "10.77.3.11", "n2": "10.77.3.12", "client": "10.77.3.100"}


def _delete_netns(ns: str) -> None:
    pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    sh("ip", "netns", "del", ns, check=False)


@contextlib.contextmanager
def lan_lab():
    tag = f"fv-{os.getpid() % 100000}-{time.monotonic_ns() % 10000}"
    lan = Lan(f"{tag}-lan", {role: f"{tag}-{role}" for role in LAN_ADDRESSES})
    made = []
    try:
        for ns in (lan.lan, *lan.nodes.values()):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", lan.lan, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", lan.lan, "link", "set", "br0", "up")
        for role, addr in LAN_ADDRESSES.items():
            port = f"{role}-eth0"
            sh("ip", "-n", lan.lan, "link", "add", port, "type", "veth", "peer", "name", "eth0",
               "netns", lan.nodes[role])
            sh("ip", "-n", lan.lan, "link", "set", port, "master", "br0", "up")
            lan.ip(role, "addr", "add", f"{addr}/24", "dev", "eth0")
            lan.ip(role, "link", "set", "eth0", "up")
        yield lan
    finally:
        for ns in reversed(made):
            _delete_netns(ns)


# ---------------------------------------------------------------- driver in a child process


class DriverProc:
    """A driver in a child process inside ``enter`` (a command prefix)."""

    def __init__(self, kind: str, params: dict, enter: list[str]):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))))
        self.proc = subprocess.Popen(
            [*enter, sys.executable, __file__, kind, json.dumps(params)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
        self.obs: queue.Queue = queue.Queue()
        self._replies: dict[int, queue.Queue] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._hello: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.pid = self._hello.get(timeout=30)
        except queue.Empty:
            self.close()
            raise RuntimeError("driver child did not start") from None

    def _read(self) -> None:
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "obs" in msg:
                self.obs.put(msg["obs"])
            elif "hello" in msg:
                self._hello.put(msg["hello"])
            else:
                self._replies[msg["id"]].put(msg)

    def call(self, op: str, *args, timeout: float = 60.0) -> dict:
        with self._lock:
            self._next += 1
            rid = self._next
            self._replies[rid] = queue.Queue()
            self.proc.stdin.write(json.dumps({"id": rid, "op": op, "args": list(args)}) + "\n")
            self.proc.stdin.flush()
        msg = self._replies[rid].get(timeout=timeout)
        if "error" in msg:
            raise AssertionError(f"driver {op} raised: {msg['error']}")
        return msg["result"]

    def next_obs(self, timeout: float) -> dict | None:
        try:
            return self.obs.get(timeout=timeout)
        except queue.Empty:
            return None

    def watch(self) -> None:
        self.call("watch")

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def driver_in(kind: str, params: dict, enter: list[str]):
    d = DriverProc(kind, params, enter)
    try:
        yield d
    finally:
        d.close()


# ---------------------------------------------------------------- the child side


def _jsonable(x):
    if dataclasses.is_dataclass(x):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(x).items()}
    if hasattr(x, "value"):  # enums
        return x.value
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _serve(kind: str, params: dict) -> None:
    import asyncio

    from hasupd import config
    from hasupd.resources import make_driver

    params["timeouts"] = config.Timeouts(**params["timeouts"])
    res = {"filesystem": config.FilesystemResource, "vip": config.VipResource}[kind](**params)

    def send(msg: dict) -> None:
        sys.stdout.write(json.dumps(msg, default=str) + "\n")
        sys.stdout.flush()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        driver = make_driver(res)
        lines: asyncio.Queue = asyncio.Queue()

        def read_stdin() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=read_stdin, daemon=True).start()

        async def watch() -> None:
            async for o in driver.watch():
                send({"obs": _jsonable(o)})

        async def handle(cmd: dict) -> None:
            try:
                if cmd["op"] == "watch":
                    tasks.append(asyncio.create_task(watch()))
                    await asyncio.sleep(0.05)  # let it subscribe before we answer
                    result = True
                else:
                    result = _jsonable(await getattr(driver, cmd["op"])(*cmd.get("args", ())))
                send({"id": cmd["id"], "result": result})
            except Exception as e:  # a driver must not raise: report it so the test fails
                import traceback

                send({"id": cmd["id"], "error": f"{e!r}\n{traceback.format_exc()}"})

        tasks: list[asyncio.Task] = []
        send({"hello": os.getpid()})
        while (line := await lines.get()) is not None:
            tasks.append(asyncio.create_task(handle(json.loads(line))))
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


if __name__ == "__main__":
    _serve(sys.argv[1], json.loads(sys.argv[2]))
