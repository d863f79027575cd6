"""End-to-end lab fixtures: a real two-node lab per test, always removed."""

from __future__ import annotations

import itertools
import os
import signal
import time

import pytest

from hasupd_lab.cluster import Lab, start_journald
from hasupd_lab.monitor import InvariantMonitor

_counter = itertools.count()


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/lab/" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


@pytest.fixture
def make_lab(request):
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (they build network namespaces)")
    labs: list[Lab] = []

    def make(overrides: dict | None = None, start: bool = True, guard: str | None = None,
             drbd_version: str = "8.4") -> Lab:
        prefix = f"t{os.getpid() % 1000}{next(_counter)}"[:6]
        lab = Lab(prefix)
        labs.append(lab)
        lab.up(overrides, start=start, guard=guard, drbd_version=drbd_version)
        return lab

    yield make
    for lab in labs:
        if request.node.rep_call_failed if hasattr(request.node, "rep_call_failed") else False:
            _dump_logs(lab)
        lab.down()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        item.rep_call_failed = True


def _dump_logs(lab: Lab) -> None:
    for node in ("n1", "n2"):
        log = lab.node_dir(node) / "hasupd.log"
        if log.exists():
            print(f"----- {node} hasupd.log (last 60 lines)")
            print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))


@pytest.fixture
def monitor_of():
    monitors: list[InvariantMonitor] = []

    def make(lab: Lab) -> InvariantMonitor:
        m = InvariantMonitor(lab).start()
        monitors.append(m)
        return m

    yield make
    for m in monitors:
        m.stop()


@pytest.fixture(scope="session", autouse=True)
def journald():
    """One real journald for the whole lab session (started only if none
    listens), so labs do not start and stop it under each other."""
    pid = start_journald()
    yield
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while Lab.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if Lab.alive(pid):
            os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)  # our child: reap it
        except ChildProcessError:
            pass
