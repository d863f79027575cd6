"""History: append, rotation, reading back, failover timelines."""

import json
import os

from hasupd.history import History, last_failover, read, render_timeline, timelines


def test_records_have_both_clocks_and_fields(tmp_path):
    h = History(str(tmp_path), 100_000)
    rec = h.record("action-done", group="rg_web", resource="res_httpd", action="start", ok=True,
                   duration=0.25, reason="because", message=None)
    assert "message" not in rec  # None fields are left out
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert len(lines) == 1
    back = json.loads(lines[0])
    assert back == rec
    assert back["kind"] == "action-done" and back["mono"] > 0 and back["wall"] > 1e9


def test_rotation_keeps_one_old_file_and_bounds_the_size(tmp_path):
    h = History(str(tmp_path), 4096)
    for i in range(400):
        h.record("observation", group="rg_web", resource="res_httpd", state="failed", reason=f"n{i}")
    cur, old = tmp_path / "history.jsonl", tmp_path / "history.jsonl.1"
    assert cur.exists() and old.exists()
    assert cur.stat().st_size <= 4096 and old.stat().st_size <= 4096
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.jsonl", "history.jsonl.1"]
    got = read(str(tmp_path))
    reasons = [r["reason"] for r in got]
    assert reasons[-1] == "n399"
    assert reasons == sorted(reasons, key=lambda s: int(s[1:]))  # oldest first, across the two files
    assert len(reasons) < 400  # the oldest were dropped


def test_read_skips_torn_lines_and_filters_by_time(tmp_path):
    h = History(str(tmp_path), 100_000)
    a = h.record("decision", reason="a")
    with open(tmp_path / "history.jsonl", "a") as f:
        f.write('{"kind": "decis')  # a crash mid-write
        f.write("\n[1,2]\n")
    b = h.record("decision", reason="b")
    assert [r["reason"] for r in read(str(tmp_path))] == ["a", "b"]
    assert [r["reason"] for r in h.read(since_wall=b["wall"])] == ["b"]
    assert a["wall"] <= b["wall"]


def test_write_errors_are_counted_not_raised(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    h = History(str(blocker / "sub"), 4096)  # the state dir cannot be created
    h.record("decision", reason="x")
    assert h.errors == 1


def _rec(kind, mono, node=None, **kw):
    r = {"kind": kind, "mono": mono, "wall": 1_800_000_000 + mono, **kw}
    if node:
        r["node"] = node
    return r


def _failover(node1="n1", node2="n2", t0=100.0):
    """httpd dies on n1; the group moves to n2 (two nodes' records)."""
    g = "rg_web"
    return [
        _rec("observation", t0, node1, group=g, resource="res_httpd", state="failed", reason="pid 42 exited"),
        _rec("decision", t0 + 0.01, node1, actions=["stop res_httpd"], reason="res_httpd failed"),
        _rec("action-start", t0 + 0.02, node1, action="stop", group=g, resource="res_httpd"),
        _rec("action-done", t0 + 0.10, node1, action="stop", group=g, resource="res_httpd", ok=True, duration=0.08),
        _rec("action-start", t0 + 0.10, node1, action="stop", group=g, resource="res_filesystem"),
        _rec("action-done", t0 + 0.30, node1, action="stop", group=g, resource="res_filesystem", ok=True,
             duration=0.2),
        _rec("action-start", t0 + 0.30, node1, action="demote", group=g, resource="r0"),
        _rec("action-done", t0 + 0.40, node1, action="demote", group=g, resource="r0", ok=True, duration=0.1),
        _rec("decision", t0 + 0.50, node2, actions=["promote r0"], reason="rg_web is free"),
        _rec("action-start", t0 + 0.50, node2, action="promote", group=g, resource="r0"),
        _rec("action-done", t0 + 0.70, node2, action="promote", group=g, resource="r0", ok=True, duration=0.2),
        _rec("action-start", t0 + 0.70, node2, action="start", group=g, resource="res_filesystem"),
        _rec("action-done", t0 + 0.90, node2, action="start", group=g, resource="res_filesystem", ok=True,
             duration=0.2),
        _rec("action-start", t0 + 0.90, node2, action="start", group=g, resource="res_vip"),
        _rec("action-done", t0 + 1.00, node2, action="start", group=g, resource="res_vip", ok=True, duration=0.1),
        _rec("action-start", t0 + 1.00, node2, action="start", group=g, resource="res_httpd"),
        _rec("action-done", t0 + 1.60, node2, action="start", group=g, resource="res_httpd", ok=True, duration=0.6),
    ]


def test_timeline_of_a_failover_across_two_nodes():
    recs = _failover()
    tl = timelines(list(reversed(recs)))  # order of input does not matter
    assert len(tl) == 1
    t = tl[0]
    assert t["kind"] == "failover" and t["group"] == "rg_web" and t["outcome"] == "ok"
    assert t["trigger"] == "failure seen res_httpd"
    assert t["nodes"] == ["n1", "n2"]
    steps = [(s["step"], s["node"]) for s in t["steps"]]
    assert steps == [("failure seen res_httpd", "n1"), ("stop res_httpd", "n1"), ("stop res_filesystem", "n1"),
                     ("demote r0", "n1"), ("promote r0", "n2"), ("start res_filesystem", "n2"),
                     ("start res_vip", "n2"), ("start res_httpd", "n2")]
    offsets = [s["offset"] for s in t["steps"]]
    assert offsets == sorted(offsets)
    assert abs(t["steps"][4]["offset"] - 0.5) < 1e-6 and abs(t["steps"][4]["duration"] - 0.2) < 1e-6
    assert abs(t["total"] - 1.6) < 1e-6
    text = render_timeline(t)
    assert "failover of rg_web" in text and "on n2" in text and "1.60s" in text


def test_separate_events_make_separate_timelines_and_failures_show():
    first = _failover(t0=100.0)
    # a move by the operator much later, whose promote fails
    g = "rg_web"
    later = [
        _rec("decision", 500.0, "n2", actions=["stop res_httpd"], reason="operator moves rg_web to n1"),
        _rec("action-start", 500.1, "n2", action="stop", group=g, resource="res_httpd"),
        _rec("action-done", 500.3, "n2", action="stop", group=g, resource="res_httpd", ok=True, duration=0.2),
        _rec("action-start", 500.4, "n1", action="promote", group=g, resource="r0"),
        _rec("action-done", 501.4, "n1", action="promote", group=g, resource="r0", ok=False, duration=1.0,
             message="(-2) Need access to UpToDate data"),
        _rec("observation", 502.0, "n1", state="peer_alive"),  # starts nothing
    ]
    tl = timelines(first + later)
    assert [t["kind"] for t in tl] == ["failover", "change"]
    assert tl[1]["trigger"] == "operator moves rg_web to n1" and tl[1]["outcome"] == "failed"
    assert "FAILED: (-2) Need access" in render_timeline(tl[1])
    assert last_failover(first + later, "rg_web")["total"] == tl[0]["total"]
    assert last_failover(later, "rg_web") is None


def test_a_second_failure_after_recovery_opens_a_new_timeline():
    recs = _failover(t0=100.0) + _failover(node1="n2", node2="n1", t0=105.0)
    tl = timelines(recs)
    assert [t["kind"] for t in tl] == ["failover", "failover"]
    assert tl[1]["steps"][0]["node"] == "n2"


def test_single_node_uses_the_monotonic_clock():
    recs = [{**r, "wall": 0.0} for r in _failover(node1=None, node2=None)]  # wall clock broken
    (t,) = timelines(recs)
    assert abs(t["total"] - 1.6) < 1e-6


def test_the_history_file_feeds_timelines(tmp_path):
    h = History(str(tmp_path), 1 << 20, node="n1")
    h.record("observation", group="rg_web", resource="res_httpd", state="failed", reason="gone")
    h.record("action-start", action="stop", group="rg_web", resource="res_httpd")
    h.record("action-done", action="stop", group="rg_web", resource="res_httpd", ok=True, duration=0.01)
    (t,) = timelines(read(str(tmp_path)))
    assert [s["step"] for s in t["steps"]] == ["failure seen res_httpd", "stop res_httpd"]
    assert t["total"] >= 0 and os.path.exists(h.path)


def test_an_operator_move_is_its_own_timeline():
    g = "rg_web"
    recs = [
        _rec("intent", 10.0, action="move", reason="operator: move group=rg_web node=n2 pin=False"),
        _rec("decision", 10.01, actions=["stop res_httpd"], reason="rg_web moves to n2"),
        _rec("action-start", 10.02, action="alert", group=g),
        _rec("action-done", 10.02, action="alert", group=g, ok=True, duration=0.0),
        _rec("action-start", 10.03, action="stop", group=g, resource="res_httpd"),
        _rec("action-done", 10.23, action="stop", group=g, resource="res_httpd", ok=True, duration=0.2),
        _rec("intent", 11.0, action="cleanup", reason="operator: cleanup"),  # ran nothing: no timeline
        _rec("observation", 12.0, group=g, resource="res_vip", state="failed", reason="address removed"),
        _rec("action-done", 12.5, action="start", group=g, resource="res_vip", ok=True, duration=0.1),
    ]
    tl = timelines(recs)
    assert [t["kind"] for t in tl] == ["move", "failover"]
    assert tl[0]["trigger"] == "operator: move group=rg_web node=n2 pin=False"
    assert [s["step"] for s in tl[0]["steps"]] == ["stop res_httpd"]  # the alert action is left out
    assert abs(tl[0]["total"] - 0.23) < 1e-6
    assert [s["step"] for s in tl[1]["steps"]] == ["failure seen res_vip", "start res_vip"]


def test_a_new_decision_after_a_pause_is_a_new_timeline():
    """n1's own history: it moved the group away, then took it back when n2 failed."""
    g = "rg_web"
    recs = [
        _rec("intent", 0.0, action="move", reason="operator: move"),
        _rec("action-start", 0.01, action="stop", group=g, resource="res_httpd"),
        _rec("action-done", 1.0, action="stop", group=g, resource="res_httpd", ok=True, duration=0.99),
        _rec("action-start", 1.0, action="release", group=g),
        _rec("action-done", 1.01, action="release", group=g, ok=True, duration=0.01),
        _rec("decision", 6.6, reason="rg_web is not running anywhere: start it on n1"),
        _rec("action-start", 6.61, action="promote", group=g, resource="r0"),
        _rec("action-done", 6.7, action="promote", group=g, resource="r0", ok=True, duration=0.09),
    ]
    tl = timelines(recs)
    assert [(t["kind"], len(t["steps"])) for t in tl] == [("move", 2), ("change", 1)]
    assert tl[1]["trigger"] == "rg_web is not running anywhere: start it on n1"
    assert abs(tl[0]["total"] - 1.01) < 1e-6


def test_waiting_for_drbd_after_peer_loss_stays_one_timeline():
    g = "rg_web"
    recs = [
        _rec("observation", 0.0, state="peer_dead", reason="peer n2 lost"),
        _rec("decision", 11.0, reason="n2 is dead and DRBD agrees: take rg_web over"),
        _rec("action-start", 11.0, action="promote", group=g, resource="r0"),
        _rec("action-done", 11.1, action="promote", group=g, resource="r0", ok=True, duration=0.1),
    ]
    (t,) = timelines(recs)
    assert t["kind"] == "failover" and t["trigger"] == "peer lost" and abs(t["total"] - 11.1) < 1e-6


def test_last_failovers_runs_off_the_loop_once_per_change(tmp_path, monkeypatch):
    import asyncio
    import threading
    import time

    h = History(str(tmp_path), 1 << 20)
    wall = time.time()
    for r in _failover(t0=100.0):
        h.record(r.pop("kind"), **{k: v for k, v in r.items() if k not in ("mono", "wall", "node")})
    threads = []
    real = History.read

    def counted_read(self, since_wall=None):
        threads.append(threading.current_thread().name)
        assert since_wall is not None and abs(since_wall - (wall - 86400)) < 60
        return real(self, since_wall)

    monkeypatch.setattr(History, "read", counted_read)

    async def main():
        together = await asyncio.gather(*(h.last_failovers(["rg_web", "other"]) for _ in range(5)))
        again = await h.last_failovers(["rg_web", "other"])
        h.record("observation", group="rg_web", resource="res_httpd", state="failed", reason="pid 9 exited")
        fresh = await h.last_failovers(["rg_web", "other"])
        return together, again, fresh

    together, again, fresh = asyncio.run(main())
    assert len(threads) == 2 and all(t.startswith("history") for t in threads)  # once, then once after a record
    assert all(t == together[0] for t in together) and again is together[0]
    before_the_last = list(read(str(tmp_path)))[:-1]
    assert together[0]["rg_web"] == last_failover(before_the_last, "rg_web") is not None
    assert fresh["rg_web"]["trigger"] == "failure seen res_httpd" and fresh["rg_web"] != together[0]["rg_web"]
