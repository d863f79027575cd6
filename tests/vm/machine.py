"""One qemu VM of the real-DRBD test and a driver for its serial console.

The console is a qemu `socket` chardev (a UNIX socket, plus a log file of
everything the guest printed), driven with plain sockets: no pexpect. The
guest logs root in on ttyS0 with echo off; each command is sent as one
line followed by `echo __RC<n>=$?`, and its output is what came before
that marker. Every wait has a bound and a failed wait names the VM, the
command and the last lines of its console.
"""

from __future__ import annotations

import codecs
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PROMPT = "HVM-READY# "  # PS1 of the image's root login (build-image.sh)


class VmError(Exception):
    """A step on a VM failed; the message says which VM and what."""


def free_udp_ports(count: int) -> list[int]:
    """UDP ports free on 127.0.0.1 now (held open together so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True)
class Link:
    """A point-to-point cable: qemu's `-netdev socket,udp=` between two VMs over loopback."""

    port_a: int  # where the first VM listens
    port_b: int  # where the second VM listens


@dataclass(frozen=True)
class VmSpec:
    name: str  # also the hostname (systemd.hostname=)
    index: int  # 0 or 1: which end of each link
    addresses: tuple[str, ...]  # CIDR per NIC, eth0 first
    links: tuple[Link, ...]  # one per NIC
    memory_mb: int = 768


class Console:
    """Reads the serial socket in a thread; expect() searches what arrived."""

    def __init__(self, name: str, path: Path, log_path: Path):
        self.name = name
        self.log_path = log_path
        self._buf = ""
        self._pos = 0  # expect() searches from here
        self._cond = threading.Condition()
        self._closed = False
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + 30
        while True:  # qemu creates the socket a moment after it starts
            try:
                self._sock.connect(str(path))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise VmError(f"{name}: console socket {path} did not appear within 30s") from None
                time.sleep(0.2)
        self._reader = threading.Thread(target=self._read, name=f"console-{name}", daemon=True)
        self._reader.start()
        self._seq = 0
        self._pending: str | None = None

    def _read(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a character may span two reads
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                data = b""
            with self._cond:
                if not data:
                    self._closed = True
                    self._cond.notify_all()
                    return
                self._buf += decoder.decode(data).replace("\r", "")
                self._cond.notify_all()

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def tail(self, lines: int = 25) -> str:
        with self._cond:
            return "\n".join(self._buf.splitlines()[-lines:])

    def send(self, text: str) -> None:
        try:
            self._sock.sendall(text.encode())
        except OSError as e:
            raise VmError(f"{self.name}: console write failed: {e}") from None

    def expect(self, pattern: str, timeout: float, what: str) -> re.Match:
        """Wait for `pattern` (a regex) after the last match; consume up to its end."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(self._buf, self._pos)
                if m:
                    self._pos = m.end()
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    why = "the VM went away" if self._closed else f"no answer within {timeout:g}s"
                    raise VmError(f"{self.name}: {what}: {why}; console ends with:\n"
                                  + "\n".join(self._buf.splitlines()[-25:]))
                self._cond.wait(min(left, 1.0))

    # -- shell ---------------------------------------------------------------

    def start(self, cmd: str) -> None:
        """Send one command line without waiting (finish() collects it)."""
        if self._pending is not None:
            raise VmError(f"{self.name}: {cmd!r} sent while {self._pending!r} still runs")
        if "\n" in cmd or len(cmd) > 3000:
            raise VmError(f"{self.name}: a console command is one line under 3000 characters")
        self._seq += 1
        self._pending = cmd
        self.send(f"{cmd}; echo __RC{self._seq}=$?\n")

    def finish(self, timeout: float) -> tuple[int, str]:
        cmd, self._pending = self._pending, None
        start = self._pos
        m = self.expect(rf"__RC{self._seq}=(\d+)\n", timeout, f"command {cmd!r}")
        out = self._buf[start:m.start()]
        return int(m.group(1)), out.strip("\n")

    def abandon(self) -> None:
        """Interrupt a command still running (after a failure elsewhere)."""
        if self._pending is not None:
            self.send("\x03\n")
            self._pending = None

    def run(self, cmd: str, timeout: float = 120) -> tuple[int, str]:
        self.start(cmd)
        return self.finish(timeout)


class Vm:
    """A qemu process (software emulation) and its console."""

    def __init__(self, spec: VmSpec, image: Path, rundir: Path, data_disk: Path, payload: Path):
        self.spec = spec
        self.name = spec.name
        self.image = image
        self.rundir = rundir
        self.data_disk = data_disk
        self.payload = payload
        self.overlay = rundir / f"{spec.name}.qcow2"
        self.proc: subprocess.Popen | None = None
        self.console: Console | None = None
        self.boots = 0

    def log_path(self) -> Path:
        suffix = "" if self.boots <= 1 else f".boot{self.boots}"
        return self.rundir / f"{self.name}.console{suffix}.log"

    def qemu_argv(self) -> list[str]:
        s = self.spec
        append = ["root=/dev/vda", "rw", "console=ttyS0", "net.ifnames=0", "quiet", "loglevel=1",
                  "mitigations=off", f"systemd.hostname={s.name}"]
        append += [f"hasupd_vm.eth{i}={addr}" for i, addr in enumerate(s.addresses)]
        sock = self.rundir / f"{s.name}.sock"
        argv = ["qemu-system-x86_64", "-name", s.name, "-accel", "tcg", "-m", str(s.memory_mb),
                "-smp", "1", "-nographic", "-no-reboot", "-nodefaults", "-monitor", "none",
                "-chardev", f"socket,id=con,path={sock},server=on,wait=off,logfile={self.log_path()}",
                "-serial", "chardev:con",
                "-kernel", str(self.image / "vmlinuz"), "-initrd", str(self.image / "initrd.img"),
                "-append", " ".join(append),
                # writeback, not unsafe: a SIGKILL of qemu must not lose qcow2 metadata
                "-drive", f"file={self.overlay},if=virtio,format=qcow2,cache=writeback",
                "-drive", f"file={self.data_disk},if=virtio,format=raw,cache=none,aio=threads",
                "-drive", f"file={self.payload},if=virtio,format=raw,readonly=on"]
        for i, link in enumerate(s.links):
            mine, peer = (link.port_a, link.port_b) if s.index == 0 else (link.port_b, link.port_a)
            argv += ["-netdev", f"socket,id=net{i},udp=127.0.0.1:{peer},localaddr=127.0.0.1:{mine}",
                     "-device", f"virtio-net-pci,netdev=net{i},mac=52:54:00:99:{i:02x}:{s.index + 1:02x}"]
        return argv

    def boot(self) -> None:
        """Start qemu (the overlay is made on the first boot and kept after)."""
        if not self.overlay.exists():
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                            str(self.image / "base.qcow2"), str(self.overlay)], check=True)
        self.boots += 1
        sock = self.rundir / f"{self.name}.sock"
        sock.unlink(missing_ok=True)
        qlog = open(self.rundir / f"{self.name}.qemu.log", "a")
        self.proc = subprocess.Popen(self.qemu_argv(), stdin=subprocess.DEVNULL, stdout=qlog,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        qlog.close()
        (self.rundir / f"{self.name}.pid").write_text(f"{self.proc.pid}\n")
        self.console = Console(self.name, sock, self.log_path())

    def wait_ready(self, timeout: float = 400) -> float:
        """Wait for the autologin shell and for systemd to finish booting; seconds taken."""
        t0 = time.monotonic()
        self.console.expect(re.escape(PROMPT), timeout, "boot to the root shell")
        self.console.send("PS1= PS2=\n")
        left = max(30.0, timeout - (time.monotonic() - t0))
        rc, out = self.console.run("timeout 300 systemctl is-system-running --wait", left)
        if out.strip() not in ("running", "degraded"):
            raise VmError(f"{self.name}: systemd did not finish booting: {out.strip()!r}")
        return time.monotonic() - t0

    def sh(self, cmd: str, timeout: float = 120, check: bool = True) -> str:
        rc, out = self.console.run(cmd, timeout)
        if check and rc != 0:
            raise VmError(f"{self.name}: `{cmd}` exited {rc}:\n{out[-3000:]}")
        return out

    def rc(self, cmd: str, timeout: float = 120) -> int:
        return self.console.run(cmd, timeout)[0]

    def power_cut(self) -> None:
        """SIGKILL the qemu process: the guest gets no chance to write anything."""
        self.kill()

    def freeze(self) -> None:
        """SIGSTOP the qemu process: the guest stops, its clock and its peers' do not."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.console is not None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        if self.console is not None:
            self.console.close()
            self.console = None
