"""Options shared by the whole suite."""


def pytest_addoption(parser):
    parser.addoption(
        "--update", action="store_true", default=False,
        help="rewrite expected-output files (tests/scenarios/*.summary) instead of comparing; "
             "the env var HASUPD_UPDATE=1 does the same",
    )
