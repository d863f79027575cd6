"""EL 9 ships no structlog: alerts then go through hasupd's own small
logger, with the same record in every sink (here: the foreground line and
the record the engine keeps)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import io, sys
sys.modules["structlog"] = None  # import structlog now raises ImportError
from hasupd import alerts
assert alerts.structlog is None
class Cfg:
    alerts = ()
    nodes = ()
err = io.StringIO()
a = alerts.Alerter(Cfg(), "n1", foreground=True, stderr=err)
seen = []
a._write = lambda level, ev, orig=a._write: (seen.append((level, ev)), orig(level, ev))
rec = a.emit("peer_lost", "critical", "peer n2 silent", group="rg_web", extra_field=3)
level, ev = seen[0]
assert level == "critical" and ev["event"] == "peer_lost" and ev["group"] == "rg_web", seen
assert ev["extra_field"] == 3 and ev["timestamp"].endswith("Z"), ev
assert "CRITICAL peer_lost rg_web: peer n2 silent" in err.getvalue(), err.getvalue()
print("ok")
"""


def test_alerts_work_without_structlog():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_the_record_is_the_same_with_the_logger_this_python_has():
    """structlog where installed (the venv, Debian, Ubuntu), the fallback where not (EL 9's row)."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT.replace('sys.modules["structlog"] = None', "")
                           .replace("assert alerts.structlog is None", "")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
