"""A real Prometheus (Debian's) in the lab's client namespace scrapes both
nodes' metrics endpoints with the shipped alert rules loaded; the owner
crashes and the failover shows in Prometheus' query API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.parse
from pathlib import Path

from hasupd import config
from tests.lab.labkit import served_by, wait_for

ROOT = Path(__file__).resolve().parents[2]
PORT = config.METRICS_PORT
OTHER = {"n1": "n2", "n2": "n1"}


def start_prometheus(lab, workdir: Path) -> subprocess.Popen:
    targets = [f"{lab.topo.address(n, 0)}:{PORT}" for n in ("n1", "n2")]
    shutil.copy(ROOT / "conf" / "prometheus" / "hasupd-rules.yml", workdir / "hasupd-rules.yml")
    (workdir / "prometheus.yml").write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["hasupd-rules.yml"],
        "scrape_configs": [{"job_name": "hasupd", "static_configs": [{"targets": targets}]}],
    }))
    log = open(workdir / "prometheus.log", "wb")
    p = subprocess.Popen(lab.topo.exec_argv("client", [
        "prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
        "--web.listen-address=127.0.0.1:9090"]), stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    return p


def query(lab, expr: str, attempts: int = 4) -> list[dict]:
    """The result of EXPR; [] while Prometheus does not answer.  A query that gets no answer
    (curl timed out: the machine is loaded) is asked again, so that a one-shot query of the test
    checks the result, not whether one HTTP request made it."""
    url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    for _ in range(attempts):
        proc = subprocess.run(lab.topo.exec_argv("client", ["curl", "-s", "-m", "5", url]),
                              capture_output=True, text=True)
        if proc.returncode == 0:
            break
    else:
        return []
    doc = json.loads(proc.stdout)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def by_instance(result: list[dict]) -> dict[str, float]:
    return {r["metric"].get("instance", ""): float(r["value"][1]) for r in result}


def test_prometheus_sees_the_failover(make_lab, tmp_path):
    lab = make_lab({"metrics": {"listen": f"0.0.0.0:{PORT}"}})
    prom = start_prometheus(lab, tmp_path)
    try:
        addr = {n: f"{lab.topo.address(n, 0)}:{PORT}" for n in ("n1", "n2")}
        wait_for("Prometheus to scrape both nodes",
                 lambda: by_instance(query(lab, 'up{job="hasupd"}')) == {addr["n1"]: 1.0, addr["n2"]: 1.0},
                 timeout=90, interval=1.0)
        owner = wait_for("the VIP to answer", lambda: served_by(lab), timeout=60)
        survivor = OTHER[owner]
        wait_for("one active node in Prometheus", lambda: by_instance(
            query(lab, 'hasupd_group_role{role="active"} == 1')) == {addr[owner]: 1.0}, timeout=60, interval=1.0)
        # the guard is `none` in the reference config: the shipped rule says so, from both nodes
        wait_for("the no-guard alert", lambda: {r["metric"]["instance"] for r in query(
            lab, 'ALERTS{alertname="HasupdNoSplitBrainGuard",alertstate="firing"}')} == set(addr.values()),
            timeout=60, interval=1.0)
        build = query(lab, "hasupd_build_info")
        assert {r["metric"]["node"] for r in build} == {"n1", "n2"}
        assert all(r["metric"]["drbd_utils"] and r["metric"]["drbd_kmod"] for r in build), build
        # increase() needs two samples in its window: wait for a value, then it must be 0
        no_failover = wait_for("the failover counter in Prometheus",
                               lambda: query(lab, "sum(increase(hasupd_failovers_total[1m]))"), timeout=30, interval=1.0)
        assert no_failover[0]["value"][1] == "0", no_failover

        lab.fault(owner, "crash")
        wait_for("the survivor to serve", lambda: served_by(lab) == survivor, timeout=60)
        expr = 'increase(hasupd_failovers_total[1m]) > 0'
        found = wait_for("the failover in Prometheus", lambda: query(lab, expr), timeout=60, interval=1.0)
        assert len(found) == 1, found
        only = found[0]
        assert only["metric"]["instance"] == addr[survivor] and only["metric"]["reason"] == "peer_lost", only
        # increase() extrapolates over the window's edges; the counter itself is exactly 1
        assert 0.9 <= float(only["value"][1]) <= 1.5, only
        total = by_instance(query(lab, 'hasupd_failovers_total{reason="peer_lost"}'))
        assert total == {addr[survivor]: 1.0}, total
        assert by_instance(query(lab, 'up{job="hasupd"}'))[addr[owner]] == 0.0
        # the takeover finishes after it started: a scrape may fall between the two
        wait_for("the failover's duration in Prometheus", lambda: by_instance(
            query(lab, "hasupd_failover_duration_seconds_count")) == {addr[survivor]: 1.0}, timeout=30, interval=1.0)
        steps = {r["metric"]["step"] for r in query(lab, "hasupd_failover_step_duration_seconds_count > 0")}
        assert {"promote", "start"} <= steps, steps
    finally:
        os.killpg(prom.pid, signal.SIGTERM)
        try:
            prom.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(prom.pid, signal.SIGKILL)
            prom.wait(10)
