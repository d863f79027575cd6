"""The metrics endpoint (hasupd/metrics.py): a real Engine (not started: no
I/O) with the reference configuration, served on 127.0.0.1 by prometheus_client,
scraped over HTTP while the engine's loop runs, parsed with prometheus_client's
own parser; and `metrics: {listen: ...}` in the configuration."""

from __future__ import annotations

import asyncio
import platform
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hasupd import config
from hasupd.control.commands import Commands
from hasupd.daemon import build_engine
from hasupd.engine import Engine
from hasupd.metrics import Metrics
from hasupd.model import Action, ActionKind, ResourceStatus, ResState

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = (ROOT / "conf" / "hasupd.yaml").read_text()


def make_engine(tmp_path, extra: str = "") -> Engine:
    text = REFERENCE.replace("cluster: web", f"cluster: web\nstate_dir: {tmp_path}") + extra
    cfg = config.loads(text, "test.yaml")
    return build_engine(cfg, "primarycentos", b"k" * 32, foreground=False)


def samples(text: str) -> dict[tuple, float]:
    """{(name, sorted labels...): value} from an exposition (an empty label is
    no label, as in Prometheus)."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, *sorted((k, v) for k, v in s.labels.items() if v != ""))] = s.value
    return out


def value(found: dict, metric: str, **labels) -> float:
    key = (metric, *sorted(labels.items()))
    assert key in found, f"no sample {key}; have {sorted(k for k in found if k[0] == metric)}"
    return found[key]


async def scrape(metrics: Metrics) -> str:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics.port}/metrics", timeout=30) as r:
            assert r.status == 200
            return r.read().decode()
    return await asyncio.get_running_loop().run_in_executor(None, get)


def test_config_listen_forms():
    base = REFERENCE
    assert config.loads(base).metrics is None, "metrics are off by default"
    m = config.loads(base + "metrics: {listen: 127.0.0.1:9100}").metrics
    assert (m.address, m.port) == ("127.0.0.1", 9100)
    m = config.loads(base + "metrics: {listen: '[::1]:9101'}").metrics
    assert (m.address, m.port) == ("::1", 9101)
    m = config.loads(base + "metrics: {listen: 0.0.0.0}").metrics
    assert m.port == config.METRICS_PORT and m.port not in (9664, 9942)
    for bad, why in (("localhost:99", "not an IP address"), ("1.2.3.4:70000", "out of range"),
                     ("1.2.3.4:x", "not ADDRESS:PORT")):
        with pytest.raises(config.ConfigError, match=why) as e:
            config.loads(base + f"metrics:\n  listen: '{bad}'\n", "c.yaml")
        assert e.value.line == base.count("\n") + 2, "the error names the listen line"
    with pytest.raises(config.ConfigError, match="port"):
        config.loads(base + "metrics: {port: 1}")
    assert "metrics: http://127.0.0.1:9100/metrics" in config.summary(
        config.loads(base + "metrics: {listen: 127.0.0.1:9100}"))


def test_scrape_reads_the_engine_state(tmp_path):
    engine = make_engine(tmp_path)

    async def main() -> str:
        metrics = Metrics(engine)
        metrics.start("127.0.0.1", 0)
        try:
            engine.metrics = metrics
            before = samples(await scrape(metrics))
            # change the state the way the engine does, then scrape again
            for name in ("res_vip", "res_filesystem", "res_httpd"):
                engine.resources[name] = ResourceStatus(ResState.STARTED, "ok")
            engine.resources["res_httpd"] = ResourceStatus(ResState.FAILED, "gone")
            engine.store.record_failure("primarycentos", "rg_web", "res_httpd", time.time())
            engine.drbd_status["r0"] = replace(engine.drbd_status["r0"], role="Primary", disk="UpToDate",
                                               peer_disk="Outdated", connection="Connected",
                                               replication="SyncSource", out_of_sync_kib=3)
            engine.alerter.agent_failures = 2
            await Commands(engine).handle("status", {})
            await Commands(engine).handle("no-such-command", {})
            return before, samples(await scrape(metrics))
        finally:
            metrics.close()

    before, after = asyncio.run(main())
    info = [dict(k[1:]) for k in before if k[0] == "hasupd_build_info"]
    assert len(info) == 1 and info[0]["version"] == "0.1.0" and info[0]["node"] == "primarycentos"
    assert info[0]["python"] == platform.python_version()  # no DRBD here: its versions are empty
    assert value(before, "hasupd_group_role", group="rg_web", role="passive") == 1
    assert value(before, "hasupd_group_role", group="rg_web", role="active") == 0
    assert value(before, "hasupd_split_brain_guard", mode="none") == 1
    assert value(before, "hasupd_split_brain_guard", mode="fence") == 0
    assert value(before, "hasupd_peer_reachable") == 0
    assert value(before, "hasupd_ring_peer_reachable", ring="0") == 0
    assert value(before, "hasupd_ring_packets_received_total", ring="0") == 0
    assert value(before, "hasupd_ring_packets_dropped_total", ring="0", reason="mac") == 0
    assert value(before, "hasupd_resource_state", group="rg_web", resource="res_vip", state="unknown") == 1
    assert value(before, "hasupd_resource_migration_threshold", group="rg_web", resource="res_vip") == 1
    assert value(before, "drbd_resource_role", name="r0", drbd_resource_role="Unknown") == 1
    assert value(before, "hasupd_failovers_total", group="rg_web", reason="peer_lost") == 0

    assert value(after, "hasupd_group_role", group="rg_web", role="active") == 1
    assert value(after, "hasupd_resource_state", group="rg_web", resource="res_httpd", state="failed") == 1
    assert value(after, "hasupd_resource_state", group="rg_web", resource="res_httpd", state="started") == 0
    assert value(after, "hasupd_resource_fail_count", group="rg_web", resource="res_httpd") == 1
    assert value(after, "drbd_resource_role", name="r0", drbd_resource_role="Primary") == 1
    assert value(after, "drbd_device_state", name="r0", volume="0", minor="1", drbd_device_state="UpToDate") == 1
    pd = dict(name="r0", conn_name="secondarycentos", volume="0")
    assert value(after, "drbd_connection_state", name="r0", conn_name="secondarycentos",
                 drbd_connection_state="Connected") == 1
    assert value(after, "hasupd_drbd_peer_disk_state", **pd, hasupd_drbd_peer_disk_state="Outdated") == 1
    assert value(after, "hasupd_drbd_replication_state", **pd, hasupd_drbd_replication_state="SyncSource") == 1
    assert value(after, "drbd_peerdevice_outofsync_bytes", **pd) == 3 * 1024
    assert value(after, "hasupd_alert_deliveries_failed_total", reason="failed") == 2
    assert value(after, "hasupd_control_requests_total", command="status") == 1
    assert value(after, "hasupd_control_requests_total", command="unknown") == 1
    assert value(after, "hasupd_heartbeat_payload_bytes") >= 0


def test_failover_hooks_count_and_time(tmp_path):
    engine = make_engine(tmp_path)
    metrics = engine.metrics = Metrics(engine)
    group = engine.cfg.group("rg_web")
    # a first start (the peer never held the group) is neither counted nor timed
    engine.executor.takeover_started(Action(ActionKind.CLAIM, "rg_web", None, "first start", epoch=1))
    for name in ("res_vip", "res_filesystem", "res_httpd"):
        engine.resources[name] = ResourceStatus(ResState.STARTED, "ok")
    engine.executor.takeover_progress(group)
    found = samples(generate_latest(metrics.registry).decode())
    assert not [k for k in found if k[0] == "hasupd_failover_duration_seconds_count"]
    assert sum(v for k, v in found.items() if k[0] == "hasupd_failovers_total") == 0
    for name in ("res_vip", "res_filesystem", "res_httpd"):
        engine.resources[name] = ResourceStatus(ResState.STOPPED, "")
    engine.executor.peer_held.add("rg_web")  # the peer held the group; it is silent now: peer_lost
    engine.executor.takeover_started(Action(ActionKind.CLAIM, "rg_web", None, "peer lost", epoch=2))
    asyncio.run(engine.executor.execute(Action(ActionKind.CLAIM, "rg_web", None, "peer lost", epoch=2)))
    for name in ("res_vip", "res_filesystem", "res_httpd"):
        engine.resources[name] = ResourceStatus(ResState.STARTED, "ok")
    engine.executor.takeover_progress(group)
    found = samples(generate_latest(metrics.registry).decode())
    assert value(found, "hasupd_failovers_total", group="rg_web", reason="peer_lost") == 1
    assert value(found, "hasupd_failovers_total", group="rg_web", reason="move") == 0
    assert value(found, "hasupd_failover_duration_seconds_count", group="rg_web") == 1
    assert value(found, "hasupd_failover_step_duration_seconds_count", group="rg_web", step="claim") == 1


def test_fence_devices_read_defensively(tmp_path):
    """Before the fencing package lands (no last_tests) and after (device -> result)."""
    engine = make_engine(tmp_path)
    metrics = Metrics(engine)
    names = {f.name: f for f in metrics.families()}
    assert not names["hasupd_fence_device_test_ok"].samples

    class Fencer:
        last_tests = {"ipmi-n2": {"when": 1700000000.0, "ok": False, "message": "no answer"},
                      "pdu": {"when": 1700000001.0, "ok": True, "message": "ok"}}
        last_fence = {"device": "ipmi-n2", "ok": True}

    engine.fencer = Fencer()
    fams = {f.name: f for f in metrics.families()}
    got = {s.labels["device"]: s.value for s in fams["hasupd_fence_device_test_ok"].samples}
    assert got == {"ipmi-n2": 0.0, "pdu": 1.0}
    metrics.fence_done(True)
    found = samples(generate_latest(metrics.registry).decode())
    assert value(found, "hasupd_fence_operations_total", device="ipmi-n2", result="success") == 1


def test_a_port_in_use_is_an_alert_not_a_crash(tmp_path):
    import socket

    from hasupd.daemon import start_metrics

    engine = make_engine(tmp_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        async def main():
            start_metrics(engine, config.Metrics("127.0.0.1", taken.getsockname()[1]))
        asyncio.run(main())
    finally:
        taken.close()
    assert engine.metrics is None
    assert [r for r in engine.alerter.recent if r["event"] == "metrics_unavailable"]


def test_ring_drops_are_counted_by_ring_and_reason(tmp_path):
    from hasupd.membership import wire

    engine = make_engine(tmp_path)
    hb = engine.heartbeat
    ring = hb._rings[0]
    hb._on_packet(ring, b"x")  # too short to be a packet
    other = wire.encode(b"o" * 32, "web", "secondarycentos", wire.new_incarnation(), 1,
                        engine.digest, wire.EMPTY, ring=0)
    hb._on_packet(ring, other)  # signed with another key
    fams = {f.name: f for f in Metrics(engine).families()}
    dropped = {s.labels["reason"]: s.value for s in fams["hasupd_ring_packets_dropped"].samples
               if s.labels["ring"] == "0"}
    assert dropped["truncated"] == 1 and dropped["mac"] == 1, dropped
    assert sum(dropped.values()) == 2
    assert {s.labels["ring"]: s.value for s in fams["hasupd_ring_packets_received"].samples} == {"0": 0}
