"""End-to-end lab fixtures: a real two-node lab per test, always removed."""

from __future__ import annotations

import itertools
import os

import pytest

from hasupd_lab.cluster import Lab
from hasupd_lab.monitor import InvariantMonitor

_counter = itertools.count()


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/lab/" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


def lab_prefix(n: int) -> str:
    """The prefix of this process's Nth lab: 6 characters, unique among the labs of
    concurrent pytest processes (the xdist worker's letter, the PID) and within this
    one (N in base 36: 1,296 labs before it wraps, where a cut at 6 characters used
    to give the 10th and the 100th lab the same name)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1...
    letter = "abcdefghijklmnopqrs"[int(worker[2:]) % 19] if worker.startswith("gw") else "t"
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    return f"{letter}{os.getpid() % 1000:03d}{digits[n // 36 % 36]}{digits[n % 36]}"


@pytest.fixture
def make_lab(request):
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (they build network namespaces)")
    labs: list[Lab] = []

    def make(overrides: dict | None = None, start: bool = True, guard: str | None = None,
             drbd_version: str = "8.4") -> Lab:
        prefix = lab_prefix(next(_counter))
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
