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


def pytest_collection_modifyitems(config, items):
    """The unit of distribution for `pytest -n N --dist loadgroup` (make test):
    a lab test builds its own lab, so each one goes to whichever worker is free
    (they wait on timers: running them side by side is what saves the time);
    every other test stays with the rest of its file (module fixtures, one
    simulator per file), and tests/packaging/ is one unit (one `make packages`
    into dist/ that its files share)."""
    for item in items:
        path = item.nodeid.split("::")[0]
        if path.startswith("tests/lab/"):
            group = item.nodeid
        elif path.startswith("tests/packaging/"):
            group = "tests/packaging"
        else:
            group = path
        item.add_marker(pytest.mark.xdist_group(group))
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
