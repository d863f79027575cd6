"""The DRBD driver against the simulator (hasupd_lab.drbdsim) on two
network namespaces (dd-n1, dd-n2 joined by a bridge in dd-lan): the driver
only sees drbdadm/drbdsetup/modprobe on its PATH and the /proc/drbd-format
file, as on a real node.  The replication link is a real TCP connection, so
cutting the bridge port really disconnects it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hasupd import config
from hasupd.model import DrbdStatus, FenceState
from hasupd.resources import drbd
from hasupd.resources.drbd_handler import fence_peer_verdict
from hasupd_lab.drbdsim.harness import SimCluster, TwoNodeNet
from tests.drbdsim.conftest import PrivateMount

from .test_handler import FakeDaemon

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PING = dict(ping_int=1.0, ping_timeout=0.5)  # the recommended `net { ping-int 1; ping-timeout 5; }`
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def net():
    with TwoNodeNet(f"dd{os.getpid() % 10000}", "10.77.11") as n:
        yield n


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="dd-sim-") as d:
        yield Path(d)


@contextlib.contextmanager
def sim(workdir: Path, net: TwoNodeNet, **kw):
    """A SimCluster whose kernel logs are printed when the test fails."""
    with SimCluster(workdir / "sim", net.nodes(), prefix="dd", **{**PING, **kw}) as sc:
        try:
            yield sc
        except BaseException:
            for n in sc.nodes:
                with contextlib.suppress(OSError):
                    print(f"--- {n} kern.log (tail)\n" + Path(sc.kern_log(n)).read_text()[-3000:])
            raise


def drivers(sc: SimCluster, minor_count: int = 2) -> dict[str, drbd.DrbdDriver]:
    out = {}
    for n in sc.nodes:
        res = config.DrbdResource("r0", sc.device(n), sc.res_opts["minor"], sc.disk(n), 7789)
        cfg = config.Drbd(True, minor_count, sc.status_path(n), "drbdadm", "drbdsetup", 11.0, (res,))
        out[n] = drbd.DrbdDriver(cfg, res, env=sc.env(n), timeout=30, probe_interval=5)
    return out


async def until(d: drbd.DrbdDriver, pred, timeout: float = 30.0, seen: list | None = None) -> DrbdStatus:
    st = await d.wait_until(pred, timeout, interval=0.1, on_status=seen.append if seen is not None else None)
    assert st is not None, f"{d.name}: condition not met within {timeout}s, last {d.last_status}"
    return st


def both_uptodate(st: DrbdStatus) -> bool:
    return st.connected and st.disk == "UpToDate" and st.peer_disk == "UpToDate" \
        and st.replication == "Established"


async def first_sync(dv: dict[str, drbd.DrbdDriver]) -> list[DrbdStatus]:
    """create-md + up on both, n1's data wins; returns n2's statuses during the sync."""
    for d in dv.values():
        assert (await drbd.ensure_module(d.cfg, env=d.env)).ok
        has, r = await d.has_metadata()
        assert (has, r.ok) == (False, True), r.message
        assert (await d.create_md()).ok
        assert (await d.has_metadata())[0] is True
        assert (await d.up()).ok
    await until(dv["n1"], lambda s: s.connected and s.disk == s.peer_disk == "Inconsistent")
    r = await dv["n1"].promote()
    assert not r.ok and "local disk is Inconsistent" in r.message
    assert "hasupctl drbd init r0 --this-node-wins" in r.message
    assert (await dv["n1"].force_primary_overwrite_peer()).ok
    seen: list[DrbdStatus] = []
    await until(dv["n2"], both_uptodate, 60, seen)
    await until(dv["n1"], both_uptodate)
    return seen


def test_up_first_sync_promote_demote(net, workdir):
    with sim(workdir, net, resync_rate_kib=32768) as sc:
        dv = drivers(sc)

        async def go():
            seen = await first_sync(dv)
            syncing = [s for s in seen if s.replication == "SyncTarget"]
            assert syncing and syncing[-1].sync_percent is not None
            assert [s.sync_percent for s in syncing] == sorted(s.sync_percent for s in syncing)
            # up again is idempotent (adjust)
            r = await dv["n1"].up()
            assert r.ok and r.command[1] == "adjust"
            st1, st2 = await dv["n1"].status(), await dv["n2"].status()
            assert (st1.role, st1.peer_role, st2.role, st2.peer_role) == (
                "Primary", "Secondary", "Secondary", "Primary")
            r = await dv["n2"].promote()
            assert not r.ok and r.returncode == 11 and "peer is Primary" in r.message
            assert (await dv["n1"].demote()).ok
            assert (await dv["n2"].promote()).ok
            st2 = await until(dv["n2"], lambda s: s.role == "Primary" and s.peer_role == "Secondary")
            assert both_uptodate(st2)
            return syncing

        syncing = asyncio.run(go())
        print(f"first sync seen at {[s.sync_percent for s in syncing]} %")


def _sleeper_in(m: PrivateMount, mnt: Path) -> subprocess.Popen:
    """A process whose cwd is on the filesystem, inside the mount's namespace."""
    p = subprocess.Popen(["nsenter", "-t", str(m.holder), "-m", "sh", "-c", f"cd {mnt} && exec sleep 60"])
    time.sleep(0.3)
    return p


def test_demote_refused_names_the_holders(net, workdir):
    # the mount lives in a mount namespace of its own: mounted in the host's, it would be
    # copied into every namespace another lab creates meanwhile and stay busy there
    with sim(workdir, net) as sc:
        dv = drivers(sc)

        async def go():
            await first_sync(dv)
            dev = sc.device("n1")
            mnt = workdir / "mnt"
            subprocess.run(["mkfs.ext4", "-q", dev], check=True, timeout=60)
            m = PrivateMount(dev, str(mnt))
            sleeper = _sleeper_in(m, mnt)
            try:
                # the escalation stops the holding process; the mount stays (the filesystem
                # resource's job), and 8.4 has no `secondary --force`: refused, holders named
                r = await dv["n1"].demote()
                assert not r.ok and r.returncode == 11
                assert "held open" in r.message, r.message
                assert f"mounted on {mnt} in the mount namespace of pid {m.holder} (sh)" in r.message, r.message
                assert f"after stopping pid {sleeper.pid} (sleep)" in r.message, r.message
                assert sleeper.wait(10) == -signal.SIGTERM
                st = await dv["n1"].status()
                # the planner sees the refusal and applies on_stop_failure
                assert st.role == "Primary" and "held open" in st.demote_failed, st
            finally:
                sleeper.kill()
                sleeper.wait()
                m.umount()
            assert (await dv["n1"].demote()).ok
            assert (await dv["n1"].status()).demote_failed == ""

        asyncio.run(go())


def test_cut_link_reconnect_resync_and_data_follows(net, workdir):
    with sim(workdir, net, resync_rate_kib=8192) as sc:
        dv = drivers(sc)

        async def go():
            await first_sync(dv)
            seen: list[DrbdStatus] = []

            async def collect():
                async for st in dv["n1"].watch():
                    seen.append(st)

            watcher = asyncio.create_task(collect())
            try:
                await asyncio.sleep(0.5)
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                await loop.run_in_executor(None, net.cut, "n2")
                while not any(not s.connected for s in seen):
                    assert loop.time() - t0 < 30, seen[-3:]
                    await asyncio.sleep(0.05)
                lost_s = loop.time() - t0
                lost = next(s for s in seen if not s.connected)
                assert lost.role == "Primary" and lost.peer_disk in ("DUnknown", "Outdated")
                # write while apart: the peer must get it through the resync
                marker = f"dd-{time.time()}".encode().ljust(4096, b"\0")
                fd = os.open(sc.device("n1"), os.O_WRONLY)
                try:
                    os.pwrite(fd, marker * 256, 0)  # 1 MiB
                    os.fsync(fd)
                finally:
                    os.close(fd)
                # what a fence-peer verdict asks of a live cut-off peer
                await until(dv["n2"], lambda s: not s.connected)
                assert (await dv["n2"].outdate()).ok
                assert (await dv["n2"].status()).disk == "Outdated"
                await loop.run_in_executor(None, net.mend, "n2")
                n = len(seen)
                while not (seen[-1:] and both_uptodate(seen[-1]) and len(seen) > n):
                    assert loop.time() - t0 < 90, seen[-3:]
                    await asyncio.sleep(0.05)
                back = seen[n:]
                assert any(s.replication == "SyncSource" for s in back), [s.replication for s in back]
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            # failover: the data written while apart is on n2
            assert (await dv["n1"].demote()).ok
            assert (await dv["n2"].promote()).ok
            fd = os.open(sc.device("n2"), os.O_RDONLY)
            try:
                assert os.pread(fd, 4096, 0) == marker
            finally:
                os.close(fd)
            return lost_s

        lost_s = asyncio.run(go())
        print(f"link cut seen by the Primary's watch after {lost_s:.2f} s (ping-int 1 s)")


def test_backing_disk_detach_seen_through_uevents(net, workdir):
    with sim(workdir, net) as sc:
        dv = drivers(sc)

        async def go():
            await first_sync(dv)
            d = dv["n2"]
            d.probe_interval = 600  # only events can tell
            agen = d.watch()
            first = await asyncio.wait_for(agen.__anext__(), 30)
            assert first.disk == "UpToDate" and first.backing_disk_present
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await loop.run_in_executor(None, subprocess.run, ["losetup", "-d", sc.disk("n2")])
            gone = diskless = None
            while gone is None or diskless is None:
                st = await asyncio.wait_for(agen.__anext__(), 30)
                if not st.backing_disk_present and gone is None:
                    gone = loop.time() - t0
                if st.disk == "Diskless" and diskless is None:
                    diskless = loop.time() - t0
            await agen.aclose()
            assert d.disk_events >= 1 and d.udev_source in ("udev", "kernel")
            peer = await dv["n1"].status()
            assert peer.peer_disk == "Diskless" and peer.role == "Primary"
            return gone, diskless

        gone, diskless = asyncio.run(go())
        print(f"disk detach: uevent after {gone * 1000:.0f} ms, DRBD Diskless after {diskless * 1000:.0f} ms")


def test_watch_survives_the_death_of_events2(net, workdir):
    with sim(workdir, net) as sc:
        dv = drivers(sc)

        async def go():
            await first_sync(dv)
            d = dv["n1"]
            d.probe_interval = 600  # only the stream can tell
            agen = d.watch()
            assert (await asyncio.wait_for(agen.__anext__(), 30)).role == "Primary"
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            while d.events_pid is None:
                assert loop.time() - t0 < 20
                await asyncio.sleep(0.05)
            first_pid = d.events_pid
            os.killpg(first_pid, signal.SIGKILL)
            while d.events_starts < 2:
                assert loop.time() - t0 < 20
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the new stream's initial dump
            assert (await dv["n1"].demote()).ok
            while True:
                st = await asyncio.wait_for(agen.__anext__(), 10)
                if st.role == "Secondary":
                    break
            await agen.aclose()
            assert d.events_pid != first_pid

        asyncio.run(go())


def test_module_missing_is_one_clear_error(net, workdir):
    with sim(workdir, net, module="missing") as sc:
        d = drivers(sc)["n1"]

        async def go():
            r = await drbd.ensure_module(d.cfg, env=d.env)
            assert not r.ok and r.command == ("modprobe", "drbd", "minor_count=2")
            assert "drbd kernel module is missing" in r.message and "kmod-drbd84" in r.message
            up = await d.up()
            assert not up.ok and "drbd kernel module is missing" in up.message, up.message
            st = await d.status()
            assert not st.up

        asyncio.run(go())


def test_minor_not_allocated_means_not_up_even_with_minor_count_1(net, workdir):
    with sim(workdir, net, minor=7) as sc:
        d = drivers(sc, minor_count=1)["n1"]

        async def go():
            assert (await drbd.ensure_module(d.cfg, env=d.env)).ok
            assert (await d.create_md()).ok
            r = await d.attach()  # the reference admin's trap: attach before up
            assert not r.ok and r.returncode == 10
            assert "not up" in r.message and "not a minor_count problem" in r.message
            assert "minor 7" in r.message
            assert (await d.up()).ok  # minor 7 with minor_count=1 works, as measured
            st = await d.status()
            assert st.up and st.minor == 7 and st.disk == "Inconsistent"

        asyncio.run(go())


def test_drbd_utils_missing_with_the_simulator_off_path(net, workdir):
    with sim(workdir, net) as sc:
        d = drivers(sc)["n1"]
        d.env = {"PATH": str(workdir / "empty")}

        async def go():
            r = await d.up()
            assert not r.ok and "install the drbd-utils package" in r.message
            assert not (await d.status()).up and "drbd-utils" in d.last_error

        asyncio.run(go())


# ---------------------------------------------------------------- fencing, split brain


def handler_cmd(which: str, sock: str) -> str:
    return (f"HASUPD_SOCKET={sock} PYTHONPATH={REPO} HASUPD_HANDLER_TIMEOUT=20 "
            f"{sys.executable} -m hasupd.resources.drbd_handler {which}")


def _verdict(alive: bool, peer: DrbdStatus | None) -> dict:
    v = fence_peer_verdict(alive, peer, "none", FenceState.NONE, resource="r0")
    return {"ok": True, "verdict": v.verdict, "detail": v.detail}


@pytest.mark.parametrize("drbd_version", ["8.4", "9"])
def test_fence_peer_handler_end_to_end(net, workdir, drbd_version):
    """fencing resource-only with hasupd-drbd-handler: the Primary losing its
    peer gets `down` (5) and marks it Outdated; the cut-off Secondary asked
    to promote gets `peer-primary` (6), outdates itself and is refused.  DRBD 9
    gives the handler the peer's node id instead of its name."""
    # one handler line for both nodes: each reaches its own daemon, found by what DRBD
    # puts in the environment about the peer (n1's handler: DRBD_PEER=n2, or on 9
    # DRBD_PEER_NODE_ID=1); the handler itself must still name the peer n2 (or n1)
    peer_var = {"8.4": "$DRBD_PEER", "9": "$DRBD_PEER_NODE_ID"}[drbd_version]
    about = {"8.4": {"n1": "n2", "n2": "n1"}, "9": {"n1": "1", "n2": "0"}}[drbd_version]
    pattern = str(workdir / f"asked-about-{peer_var}.sock")
    daemons = {
        # n1's daemon: the peer is silent on every ring, guard none
        "n1": FakeDaemon(str(workdir / f"asked-about-{about['n1']}.sock"), lambda req: _verdict(False, None)),
        # n2's daemon still hears n1 (only the replication link is cut), and n1 is Primary
        "n2": FakeDaemon(str(workdir / f"asked-about-{about['n2']}.sock"), lambda req: _verdict(
            True, DrbdStatus("r0", up=True, role="Primary", disk="UpToDate"))),
    }
    try:
        handlers = {h: handler_cmd(h, pattern) for h in ("fence-peer", "unfence-peer")}
        with sim(workdir, net, fencing="resource-only", handlers=handlers, drbd_version=drbd_version) as sc:
            dv = drivers(sc)

            async def go():
                await first_sync(dv)
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, net.cut, "n2")
                st1 = await until(dv["n1"], lambda s: not s.connected and s.peer_disk == "Outdated", 30)
                assert st1.role == "Primary"
                assert [r["cmd"] for r in daemons["n1"].requests] == ["drbd-fence-peer"]
                assert daemons["n1"].requests[0]["peer"] == "n2"
                await until(dv["n2"], lambda s: not s.connected)
                assert daemons["n2"].requests == []  # a disconnected Secondary is not fenced
                r = await dv["n2"].promote()
                assert not r.ok and "local disk is Outdated" in r.message, r.message
                assert [r["cmd"] for r in daemons["n2"].requests] == ["drbd-fence-peer"]
                assert (daemons["n2"].requests[0]["peer"], daemons["n2"].requests[0].get("minor")) == ("n1", "1")
                assert (await dv["n2"].outdate()).ok  # already Outdated: a no-op, as in DRBD
                await loop.run_in_executor(None, net.mend, "n2")
                await until(dv["n2"], both_uptodate, 60)
                t0 = loop.time()
                while "drbd-unfence-peer" not in [r["cmd"] for r in daemons["n1"].requests]:
                    assert loop.time() - t0 < 20, daemons["n1"].requests
                    await asyncio.sleep(0.05)

            asyncio.run(go())
    finally:
        for d in daemons.values():
            d.close()


def test_split_brain_seen_alerted_and_recovered(net, workdir):
    sock = workdir / "hasupd.sock"
    daemon = FakeDaemon(str(sock), {"ok": True})
    try:
        handlers = {"split-brain": handler_cmd("split-brain", str(sock))}
        with sim(workdir, net, fencing="dont-care",
                        handlers=handlers) as sc:
            dv = drivers(sc)

            async def go():
                await first_sync(dv)
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, net.cut, "n2")
                await until(dv["n2"], lambda s: not s.connected)
                assert (await dv["n2"].promote()).ok  # dont-care: UpToDate promotes alone
                for n in ("n1", "n2"):  # both write while apart
                    fd = os.open(sc.device(n), os.O_WRONLY)
                    os.pwrite(fd, n.encode() * 2048, 0)
                    os.fsync(fd)
                    os.close(fd)
                seen: list[DrbdStatus] = []

                async def collect():
                    async for st in dv["n1"].watch():
                        seen.append(st)

                watcher = asyncio.create_task(collect())
                try:
                    await asyncio.sleep(0.5)
                    await loop.run_in_executor(None, net.mend, "n2")
                    t0 = loop.time()
                    while not any(s.split_brain for s in seen):
                        assert loop.time() - t0 < 30, seen[-3:]
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(1.0)
                    assert seen[-1].split_brain and seen[-1].connection == "StandAlone"
                    # a deep probe cannot see it, the driver remembers it
                    st = await dv["n1"].status()
                    assert st.split_brain and st.connection == "StandAlone"
                    t0 = loop.time()
                    while not any(r.get("cmd") == "alert" for r in daemon.requests):
                        assert loop.time() - t0 < 20
                        await asyncio.sleep(0.05)
                    # recovery: n2 is the victim
                    assert (await dv["n2"].demote()).ok
                    assert (await dv["n2"].connect(discard_my_data=True)).ok
                    assert (await dv["n1"].connect()).ok
                    st = await until(dv["n1"], both_uptodate, 60)
                    assert not st.split_brain
                    t0 = loop.time()
                    while not (seen and not seen[-1].split_brain and both_uptodate(seen[-1])):
                        assert loop.time() - t0 < 30, seen[-3:]
                        await asyncio.sleep(0.05)
                finally:
                    watcher.cancel()
                    await asyncio.gather(watcher, return_exceptions=True)

            asyncio.run(go())
        alert = next(r for r in daemon.requests if r.get("cmd") == "alert")
        assert alert["severity"] == "critical" and "connect --discard-my-data r0" in alert["reason"]
    finally:
        daemon.close()


def test_drbd9_versions_and_demotion_escalation(net, workdir):
    """DRBD 9 (the simulator's 9 dialect): the version is found once and stamped on the
    status; a process holding the device is stopped; a mount that stays is overridden by
    `secondary --force` (9.1.7+, utils 9.21+), and the peer can take over at once."""
    with sim(workdir, net, drbd_version="9", fencing="resource-only") as sc:
        dv = drivers(sc)

        async def go():
            await first_sync(dv)
            assert (await dv["n1"].versions_once()) == drbd.DrbdVersions("9.2.12", "9.22.0")
            assert (await dv["n1"].status()).kernel_version == "9.2.12"
            dev = sc.device("n1")
            # an exclusive opener (what the simulator can see; real DRBD counts every opener)
            holder = subprocess.Popen([sys.executable, "-c", f"import os, time; os.open({dev!r}, "
                                       "os.O_RDONLY | os.O_EXCL); time.sleep(60)"], start_new_session=True)
            try:
                await asyncio.sleep(0.5)
                r = await dv["n1"].demote()
                assert r.ok and f"after stopping pid {holder.pid}" in r.message, r.message
                assert holder.wait(10) == -signal.SIGTERM
            finally:
                holder.kill()
                holder.wait()
            assert (await dv["n1"].promote()).ok
            mnt = workdir / "mnt"
            subprocess.run(["mkfs.ext4", "-q", dev], check=True, timeout=60)
            m = PrivateMount(dev, str(mnt))  # a namespace of its own (see the test above)
            try:
                r = await dv["n1"].demote()
                assert r.ok and "secondary --force" in r.message, r.message
                st = await dv["n1"].status()
                assert st.role == "Secondary" and st.may_promote is False  # force-io-failures:yes
                assert (await dv["n2"].promote()).ok
            finally:
                m.umount()
            st = await until(dv["n1"], lambda s: s.peer_role == "Primary" and s.may_promote is False)
            assert st.role == "Secondary"

        asyncio.run(go())
