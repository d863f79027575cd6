"""Options shared by the whole suite."""


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
