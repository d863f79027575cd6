"""hasupctl status says what a running action waits for (issue 14: a hung apache start)."""

from __future__ import annotations

from hasupd.model import Action, ActionKind
from hasupd.status import build_status, render_status
from tests.control.fake_daemon import degraded_view, reference_config

WAITS = "apache's pidfile /run/httpd/httpd.pid: pid 812 state S, waiting in do_select, running 4.0s"


def test_status_shows_what_the_running_start_waits_for():
    acting = Action(ActionKind.START, "rg_web", "res_httpd", "rg_web starts here")
    doc = build_status(reference_config(), degraded_view(), acting=acting, acting_waits_on=WAITS)
    assert doc["acting"]["waits_on"] == WAITS
    lines = render_status(doc).splitlines()
    now = next(i for i, line in enumerate(lines) if line.startswith("Now: start res_httpd"))
    assert lines[now + 1] == f"  waiting for {WAITS}"


def test_no_wait_line_when_the_action_says_nothing():
    acting = Action(ActionKind.START, "rg_web", "res_httpd", "rg_web starts here")
    text = render_status(build_status(reference_config(), degraded_view(), acting=acting))
    assert "Now: start res_httpd" in text and "waiting for" not in text
