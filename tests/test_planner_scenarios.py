"""The scenario suite: tests/scenarios/NAME.yaml in, NAME.summary out, compared verbatim.

Like Pacemaker's scheduler regression tests: each .summary is the spec a
reviewer reads as a diff.  `pytest tests/test_planner_scenarios.py --update`
(or HASUPD_UPDATE=1) rewrites the .summary files from the current planner.
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hasupd import planner, simulate

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tests" / "scenarios"
NAMES = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))


def test_there_are_enough_scenarios():
    assert len(NAMES) >= 55, NAMES


def with_rules_line(text: str, rule_ids: list[str]) -> str:
    """The scenario text with its `rules:` line (after the description) naming rule_ids."""
    line = f"rules: [{', '.join(rule_ids)}]"
    lines = [x for x in text.splitlines() if not x.startswith("rules:")]
    return "\n".join(lines[:1] + [line] + lines[1:]) + "\n"


@pytest.mark.parametrize("name", NAMES)
def test_scenario(name, request):
    path = SCENARIOS / f"{name}.yaml"
    sc = simulate.load_scenario(path)
    assert sc.description, f"{name}.yaml needs a one-line description"
    got = simulate.summary(sc.config, sc.view, sc.description)
    # the rules: line names exactly the rules that decided (the planner's own trace)
    fired = sorted(planner.rules_fired(sc.config, sc.view), key=simulate.rule_order)
    expected_path = SCENARIOS / f"{name}.summary"
    if request.config.getoption("--update") or os.environ.get("HASUPD_UPDATE") == "1":
        expected_path.write_text(got)
        path.write_text(with_rules_line(path.read_text(), fired))
        return
    assert expected_path.exists(), f"no {expected_path.name}: run with --update and review it"
    assert got == expected_path.read_text()
    assert list(sc.rules) == fired, f"{name}.yaml rules: names {list(sc.rules)}, the planner applied {fired}"


# ---------------------------------------------------------------- the rule registry


def test_every_rule_is_named_by_a_scenario():
    named = simulate.scenarios_naming(SCENARIOS)
    assert [r for r, names in named.items() if not names] == []


def test_every_rule_points_at_its_code():
    for r in planner.RULES.values():
        module, qualname = r.code.split(":")
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        assert callable(obj), r
        assert module.startswith("hasupd.planner."), r


def test_rule_ids_name_a_design_rule():
    for rule_id in planner.RULES:
        number, _, slug = rule_id.partition("-")
        assert number[0] == "R" and 1 <= int(number[1:]) <= 13 and slug, rule_id


def test_simulate_rules_prints_rule_statement_code_scenarios():
    out = run_simulate("--rules")
    assert out.returncode == 0, out.stderr
    blocks = out.stdout.split("\nR")
    assert len(blocks) == len(planner.RULES)
    r = planner.RULES["R3-threshold"]
    block = next(b for b in blocks if b.startswith("3-threshold\n"))
    assert f"  {r.statement}\n" in block and f"  code: {r.code}\n" in block
    assert "httpd-killed-threshold-1" in block.split("scenarios (")[1]
    assert "NONE" not in out.stdout


# ---------------------------------------------------------------- hasupd-simulate


def run_simulate(*args):
    return subprocess.run([sys.executable, "-m", "hasupd.simulate", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def test_simulate_prints_the_scenario_summary():
    name = "httpd-killed-threshold-1"
    out = run_simulate(SCENARIOS / f"{name}.yaml")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (SCENARIOS / f"{name}.summary").read_text()


def test_simulate_with_an_administrators_config(tmp_path):
    cfg = (ROOT / "conf" / "hasupd.yaml").read_text().replace("migration_threshold: 1 ", "migration_threshold: 5 ")
    (tmp_path / "hasupd.yaml").write_text(cfg)
    out = run_simulate("--config", tmp_path / "hasupd.yaml", SCENARIOS / "httpd-killed-threshold-1.yaml")
    assert out.returncode == 0, out.stderr
    assert "migration_threshold 5" in out.stdout
    assert "1. stop res_httpd" in out.stdout and "2. start res_httpd" in out.stdout  # restart, not failover


@pytest.mark.parametrize("text,words", [
    ("view: [1, 2\n", ":2:1: not valid YAML"),
    ("rules: [R3-treshold]\nview: {}\n", "rules: R3-treshold: unknown rule id (did you mean 'R3-threshold'?)"),
    ("rules: R3-threshold\nview: {}\n", "rules: expected a list of rule ids"),
    ("descripton: x\nview: {}\n", "unknown key (did you mean 'description'?)"),
    ("view:\n  nodes:\n    primarycentos:\n      drbd: Primary UpToDate\n", "view.nodes.primarycentos.drbd: expected"),
    ("view:\n  nodes:\n    primarycentos:\n      drbd: Primary/Secondary UpToDate/Sideways Connected\n",
     "'Sideways' is not a DRBD peer disk state"),
    ("view:\n  nodes:\n    nodeX: {}\n", "view.nodes.nodeX: not a node"),
    ("view:\n  nodes:\n    primarycentos:\n      resources: {res_htpd: started}\n",
     "no such group or resource (did you mean 'res_httpd'?)"),
    ("view:\n  nodes:\n    primarycentos:\n      resources: running\n", "'running' is not a resource state"),
    ("view:\n  peer_lost_ago: 3\n", "the peer is alive"),
    ("view:\n  fencing: maybe\n", "fencing: expected none, pending"),
    ("view:\n  fence: {peer_power: dim}\n", "view.fence.peer_power: expected on, off or unknown"),
    ("view:\n  fence: {head_start: 5}\n", "view.fence.head_start: unknown key"),
    ("view:\n  outdate_requested: [r9]\n", "outdate_requested: expected a list of DRBD resources"),
    ("view:\n  uptime: soon\n", "view.uptime: expected a number of seconds"),
    ("config:\n  guard: quorum\n", "config.guard: expected one of ping, fence, drbd, none"),
    ("config:\n  group: {migration_threshold: zero}\n", "whole number"),
])
def test_simulate_malformed_view_exits_78_with_one_line(tmp_path, text, words):
    p = tmp_path / "view.yaml"
    p.write_text(text)
    out = run_simulate(p)
    assert out.returncode == 78, out
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hasupd-simulate: "), out.stderr
    assert words in lines[0], lines[0]


def test_simulate_missing_file_exits_78(tmp_path):
    out = run_simulate(tmp_path / "nope.yaml")
    assert out.returncode == 78 and "cannot read it" in out.stderr
