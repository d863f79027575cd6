"""The scenario suite: tests/scenarios/NAME.yaml in, NAME.summary out, compared verbatim.

Like Pacemaker's scheduler regression tests: each .summary is the spec a
reviewer reads as a diff.  `pytest tests/test_planner_scenarios.py --update`
(or HASUPD_UPDATE=1) rewrites the .summary files from the current planner.
"""

import os
from pathlib import Path

import pytest

from hasupd import simulate

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
NAMES = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))


def test_there_are_enough_scenarios():
    assert len(NAMES) >= 55, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_scenario(name, request):
    description, cfg, view = simulate.load(SCENARIOS / f"{name}.yaml")
    assert description, f"{name}.yaml needs a one-line description"
    got = simulate.summary(cfg, view, description)
    expected_path = SCENARIOS / f"{name}.summary"
    if request.config.getoption("--update") or os.environ.get("HASUPD_UPDATE") == "1":
        expected_path.write_text(got)
        return
    assert expected_path.exists(), f"no {expected_path.name}: run with --update and review it"
    assert got == expected_path.read_text()
