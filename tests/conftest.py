"""Options shared by the whole suite."""

import asyncio
import sys

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--update", action="store_true", default=False,
        help="rewrite expected-output files (tests/scenarios/*.summary) instead of comparing; "
             "the env var HASUPD_UPDATE=1 does the same",
    )


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session):
    """Every program the suites call is there before any test starts (the
    packages come from scripts/apt-packages.txt: `make test` installs them).
    Checked once, by the process that runs the session (not by each xdist worker)."""
    import subprocess
    from pathlib import Path

    if _is_xdist_worker(session.config):
        return
    check = Path(__file__).resolve().parents[1] / "scripts" / "check-programs"
    proc = subprocess.run([sys.executable, str(check), "main"], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.exit("the test suite needs programs that are not installed:\n" + proc.stderr, returncode=3)
    _start_session_journald(session.config)


def _start_session_journald(config) -> None:
    """One journald for the whole run, started by the process that runs the session
    (when none listens and we are root): the lab tests, the alert tests and the
    daemons of concurrent xdist workers then share it, and no worker stops it
    under another's feet.  Stopped at the end of the session (by PID)."""
    import os

    if os.geteuid() != 0:
        return
    from hasupd_lab.cluster import start_journald

    config._session_journald = start_journald()


def pytest_sessionfinish(session, exitstatus):
    import os
    import signal
    import time

    pid = getattr(session.config, "_session_journald", None)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def dist_group(nodeid: str) -> str:
    """The unit of distribution of `make test` (pytest -n N --dist loadgroup): a lab test
    builds its own lab, so each one goes to whichever worker is free (they wait on timers:
    running them side by side is what saves the time), as does each test of test_migrate.py
    (each runs Pacemaker's tools on its own files); every other test stays with the rest
    of its file (module fixtures, one simulator per file); tests/packaging/ is one unit (one
    `make packages` into dist/, which its files share)."""
    path = nodeid.split("::")[0]
    if path.startswith("tests/lab/") or path == "tests/migrate/test_migrate.py":
        return nodeid  # (test_migrate: each test imports into its own tmp_path; pcs runs ~25 s)
    if path.startswith("tests/packaging/"):
        return "tests/packaging"
    return path


def _long_group(item) -> bool:
    path = item.nodeid.split("::")[0]
    return path.startswith(("tests/lab/", "tests/packaging/")) or item.get_closest_marker("slow") is not None


def pytest_collection_modifyitems(config, items):
    if not _is_xdist_worker(config):
        return
    # the workers take the groups in collection order: the long ones (labs, packaging, files
    # with slow tests) first, so that none of them starts last and runs alone at the end
    long_groups = {dist_group(item.nodeid) for item in items if _long_group(item)}
    items.sort(key=lambda item: dist_group(item.nodeid) not in long_groups)  # stable


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, when it is loaded
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` groups by dist_group() (xdist's own loadgroup reads xdist_group
    marks through a node id rename that pytest 9 ignores), in collection order."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduler(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return dist_group(nodeid)

    config.option.loadscopereorder = False  # keep the order above (xdist sorts by size)
    return Scheduler(config, log)


if sys.version_info < (3, 10):
    @pytest.fixture(autouse=True)
    def one_event_loop_per_test(monkeypatch):
        """Python 3.9's asyncio.Queue/Lock/Event take the current loop when they
        are made (3.10 takes the running one when first used).  The daemon
        makes them on its running loop; tests make engines and drivers before
        asyncio.run: give each test one loop, current from the start, and let
        asyncio.run use it, so both sides see the same loop."""
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

        def run(coro, *, debug=False):
            try:
                return loop.run_until_complete(coro)
            finally:  # as asyncio.run: cancel what is left
                left = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in left:
                    t.cancel()
                if left:
                    loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())

        monkeypatch.setattr(asyncio, "run", run)
        yield
        asyncio.set_event_loop(None)
        loop.close()
