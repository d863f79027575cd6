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


def pytest_sessionstart(session):
    """Every program the suites call is there before any test starts (the
    packages come from scripts/apt-packages.txt: `make test` installs them)."""
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    check = Path(__file__).resolve().parents[1] / "scripts" / "check-programs"
    proc = subprocess.run([sys.executable, str(check), "main"], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.exit("the test suite needs programs that are not installed:\n" + proc.stderr, returncode=3)
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
