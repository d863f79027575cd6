"""Fixtures: two namespaces joined by a bridge, simulated nodes on them.  The
prefix is per test process (``PREFIX``), so parallel runs never collide."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from hasupd_lab.drbdsim.harness import SimCluster, TwoNodeNet

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "drbd"
PREFIX = f"ds{os.getpid() % 10000}"  # <= 6 characters: namespace and interface names stay short


def fixture(name: str) -> str:
    return (FIXTURES / (name if name.endswith(".txt") else name + ".txt")).read_text()


def command_fixture(name: str) -> tuple[str, int]:
    """A '$ cmd' capture: (output, exit code)."""
    lines = fixture(name).splitlines()
    code = 0
    out = []
    for x in lines[1:]:
        m = re.fullmatch(r"\(exit (\d+)\)", x)
        if m:
            code = int(m.group(1))
        elif x.startswith("# ") or x == "(no output)":
            continue
        else:
            out.append(x)
    return "\n".join(out) + ("\n" if out else ""), code


_COUNTERS = re.compile(r"\b(ns|nr|dw|dr|al|bm|oos):\d+")


def norm_proc(text: str) -> str:
    """Volatile fields only: counters, progress figures."""
    text = _COUNTERS.sub(lambda m: f"{m.group(1)}:N", text)
    text = re.sub(r"\[[=>.]+\] sync'ed:\s*[\d.]+% \(\d+/\d+\)([KM])", r"[BAR] sync'ed: P% (L/T)\1", text)
    text = re.sub(r"finish: \d+:\d\d:\d\d speed: [\d,]+ \([\d,]+\)( want: [\d,]+)? K/sec",
                  lambda m: "finish: T speed: S (S)" + (" want: W" if m.group(1) else "") + " K/sec", text)
    return text


def norm_status(text: str) -> str:
    return re.sub(r"done:\d+\.\d\d", "done:D", text)


@pytest.fixture(scope="module")
def net():
    with TwoNodeNet(PREFIX) as n:
        yield n


@pytest.fixture
def make_cluster(net):
    made = []

    def make(**kw):
        wd = tempfile.mkdtemp(prefix=f"{PREFIX}-sim-", dir="/tmp")
        kw.setdefault("ping_int", 1.0)
        kw.setdefault("ping_timeout", 0.5)
        sc = SimCluster(wd, net.nodes(), prefix=PREFIX, **kw)
        made.append(sc)
        sc.start()
        return sc

    yield make
    for sc in made:
        sc.close()
    for n in ("n1", "n2"):  # the link may have been cut by the test
        net.mend(n)


def run(sc, node, *argv, **kw):
    return sc.run(node, *argv, **kw)


def ok(sc, node, *argv):
    r = sc.run(node, *argv)
    assert r.returncode == 0, f"{node}: {' '.join(argv)} -> {r.returncode}\n{r.stdout}{r.stderr}"
    return r.stdout


def rcd(sc, node):
    return "".join(ok(sc, node, "drbdadm", c, "r0") for c in ("role", "cstate", "dstate"))


def proc(sc, node):
    return Path(sc.status_path(node)).read_text()


def events_now(sc, node, *opts):
    return ok(sc, node, "drbdsetup", "events2", "--now", *opts, "r0")


def status(sc, node):
    return ok(sc, node, "drbdadm", "--color=always", "status", "r0")


def wait(pred, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def connected_uptodate(sc, primary="n1", mkfs=False):
    """Both nodes up, full sync done, `primary` Primary (optionally with ext4)."""
    for n in ("n1", "n2"):
        ok(sc, n, "drbdadm", "create-md", "--force", "r0")
        ok(sc, n, "drbdadm", "up", "r0")
    sc.wait_for(primary, lambda s: s["conn"] == "Connected")
    ok(sc, primary, "drbdadm", "primary", "--force", "r0")
    for n in ("n1", "n2"):
        sc.wait_for(n, lambda s: s["disk"] == "UpToDate" and s["peer_disk"] == "UpToDate"
                    and s["repl"] == "Established")
    if mkfs:
        subprocess.run(["mkfs.ext4", "-q", "-F", sc.device(primary)], check=True, capture_output=True)


class PrivateMount:
    """``dev`` mounted in a mount namespace of its own (a shell holds it), so the
    mount cannot leak into other namespaces; ``sh(cmd)`` runs a command there."""

    def __init__(self, dev: str, mnt: str, ns_prefix: list[str] | None = None):
        self.mnt = mnt
        os.makedirs(mnt, exist_ok=True)
        self.p = subprocess.Popen(
            [*(ns_prefix or []), "unshare", "-m", "--propagation", "private", "sh", "-c",
             f"mount {dev} {mnt} && echo mounted; read x; umount {mnt}; echo unmounted"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        line = self.p.stdout.readline()
        if line.strip() != "mounted":
            self.p.kill()
            raise AssertionError(f"mount {dev} failed: {line}{self.p.stdout.read()}")
        self.holder = self.child_pid()

    def child_pid(self) -> int:
        # the shell is unshare's exec (same pid)
        return self.p.pid

    def sh(self, cmd: str) -> str:
        r = subprocess.run(["nsenter", "-t", str(self.holder), "-m", "sh", "-c", cmd],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    def umount(self) -> None:
        if self.p.poll() is None:
            self.p.stdin.write("\n")
            self.p.stdin.flush()
            out = self.p.stdout.read()
            self.p.wait(30)
            assert "unmounted" in out, out
