"""conf/prometheus/: the alert rules are valid (promtool check rules), every
rule has unit tests that fire it and keep it quiet (promtool test rules),
and every metric a rule reads is one hasupd exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.test_metrics import make_engine

HERE = Path(__file__).resolve().parents[1] / "conf" / "prometheus"
RULES = HERE / "hasupd-rules.yml"
TESTS = HERE / "hasupd-rules.test.yml"


def promtool(*args: str) -> str:
    proc = subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=HERE, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def alerts() -> dict[str, str]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r["expr"] for g in doc["groups"] for r in g["rules"]}


def test_rules_check():
    assert f"SUCCESS: {len(alerts())} rules found" in promtool("check", "rules", str(RULES))


def test_rules_unit_tests_pass_and_cover_every_rule():
    doc = yaml.safe_load(TESTS.read_text())
    for alert in alerts():
        cases = [c for t in doc["tests"] for c in t.get("alert_rule_test", []) if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in cases), f"no test fires {alert}"
        assert any(not c["exp_alerts"] for c in cases), f"no test keeps {alert} quiet"
    assert "SUCCESS" in promtool("test", "rules", str(TESTS))


def test_rules_read_only_exported_metrics(tmp_path):
    from hasupd.metrics import Metrics

    engine = make_engine(tmp_path)
    exported = {f.name for f in Metrics(engine).families()}
    used = {m for expr in alerts().values() for m in re.findall(r"\b((?:hasupd|drbd)_[a-z_]+)\b", expr)}
    assert used <= exported, f"rules read metrics hasupd does not export: {used - exported}"
