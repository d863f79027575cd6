"""OCF driver with the real agents of Debian's resource-agents package
(Dummy, IPaddr2 inside a network namespace of our own) and small agents of
our own under a temporary OCF root for the exit codes and timeouts."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path

import pytest

from hasupd import config
from hasupd.config import OcfResource, Timeouts, loads
from hasupd.model import ResState
from hasupd.resources.ocf import MEANINGS, OcfDriver, explain, parse_metadata_timeouts, parse_ocf_duration

try:
    from . import netns_ho as ns_ho
except ImportError:
    import netns_ho as ns_ho

HEARTBEAT = Path("/usr/lib/ocf/resource.d/heartbeat")
DEFAULT_TIMEOUTS = config.DEFAULT_TIMEOUTS


def ocf(agent: str, params: dict[str, str] | None = None, explicit: tuple[str, ...] = (),
        timeouts: Timeouts = DEFAULT_TIMEOUTS, ocf_root: str = "/usr/lib/ocf",
        interval: float = 20.0, name: str = "res_dummy") -> OcfResource:
    return OcfResource(name=name, timeouts=timeouts, monitor_interval=interval, agent=agent,
                       params=tuple((params or {}).items()), ocf_root=ocf_root, explicit_timeouts=explicit)


# ------------------------------------------------------------ pure parts


def test_durations_and_metadata_parsing():
    assert parse_ocf_duration("20s") == 20.0
    assert parse_ocf_duration("2min") == 120.0
    assert parse_ocf_duration("500ms") == 0.5
    assert parse_ocf_duration("30") == 30.0
    assert parse_ocf_duration("soon") is None
    xml = """<resource-agent name="x"><actions>
      <action name="start" timeout="40s"/><action name="monitor" timeout="20s" interval="10s" role="Slave"/>
      <action name="monitor" timeout="30s" interval="11s" role="Master"/><action name="stop"/>
    </actions></resource-agent>"""
    assert parse_metadata_timeouts(xml) == {"start": 40.0, "monitor": 20.0}


def test_explain_prefers_error_line_and_exit_reason():
    out = ("Nov 24 18:48:30 INFO: IP status = ok\nNov 24 18:48:30 ERROR: IP address [999.1.1.1] not valid.\n"
           "ocf-exit-reason:[findif] failed\n")
    assert explain(out) == "IP address [999.1.1.1] not valid.; [findif] failed"
    assert explain("just this\n") == "just this"


def test_config_marks_explicit_timeouts():
    base = """cluster: c
nodes: [{name: a, addresses: [10.99.0.11]}, {name: b, addresses: [10.99.0.12]}]
heartbeat: {rings: [{bind_network: 10.99.0.0/24, group: 239.192.0.1}]}
groups:
  - name: g
    %s
    resources:
      - {name: d, type: ocf, agent: "heartbeat:Dummy", timeouts: {stop: 9s}}
"""
    res = loads(base % "").groups[0].resources[0]
    assert res.explicit_timeouts == ("stop",)
    res = loads(base % "timeouts: {start: 100s}").groups[0].resources[0]
    assert res.explicit_timeouts == ("start", "stop")


# ------------------------------------------------------------ Dummy


def test_dummy_metadata_timeouts_match_its_xml():
    xml = subprocess.run([HEARTBEAT / "Dummy", "meta-data"], capture_output=True, text=True,
                         env={"OCF_ROOT": "/usr/lib/ocf"}).stdout
    advertised = {m.group(1): float(m.group(2))
                  for m in re.finditer(r'<action name="([\w-]+)"\s+timeout="(\d+)s"', xml)}
    drv = OcfDriver(ocf("heartbeat:Dummy"))
    timeouts = asyncio.run(drv.metadata_timeouts())
    assert timeouts["start"] == advertised["start"] == 20.0
    assert timeouts == advertised
    assert asyncio.run(drv.timeout("start")) == 20.0  # nothing set: the agent's own
    explicit = OcfDriver(ocf("heartbeat:Dummy", explicit=("start",), timeouts=Timeouts(7.0, 8.0, 9.0)))
    assert asyncio.run(explicit.timeout("start")) == 7.0
    assert asyncio.run(explicit.timeout("stop")) == 20.0


async def _dummy_lifecycle(res):
    drv = OcfDriver(res)
    out = {"probe0": await drv.probe(), "monitor0": await drv.monitor(), "validate": await drv.validate()}
    out["start"] = await drv.start()
    out["monitor"] = await drv.monitor()
    out["probe"] = await OcfDriver(res).probe()  # a new daemon adopts it
    out["stop"] = await drv.stop()
    out["stop_again"] = await drv.stop()  # OCF: stopping a stopped resource succeeds
    out["probe_after"] = await drv.probe()
    return out


def test_dummy_start_monitor_stop_probe(tmp_path):
    state = tmp_path / "dummy.state"
    out = asyncio.run(_dummy_lifecycle(ocf("heartbeat:Dummy", {"state": str(state)})))
    assert out["probe0"].state == ResState.STOPPED
    assert not out["monitor0"].ok and out["monitor0"].returncode == 7
    assert "exited 7 (not running)" in out["monitor0"].message
    assert out["validate"].ok
    assert out["start"].ok and out["start"].message == "ocf:heartbeat:Dummy start: ok"
    assert out["monitor"].ok
    assert out["probe"].state == ResState.STARTED
    assert out["stop"].ok and out["stop_again"].ok
    assert out["probe_after"].state == ResState.STOPPED
    assert not state.exists()


async def _dummy_watch(res, state: Path):
    drv = OcfDriver(res)
    start = await drv.start()
    seen = asyncio.get_running_loop().create_future()

    async def watcher():
        async for obs in drv.watch():
            seen.set_result((time.monotonic(), obs))

    task = asyncio.create_task(watcher())
    await asyncio.sleep(0.5)
    quiet = not seen.done()  # a healthy resource raises nothing
    state.unlink()  # the resource vanishes behind our back
    removed = time.monotonic()
    at, obs = await asyncio.wait_for(seen, 15)
    task.cancel()
    return start, quiet, obs, at - removed


def test_dummy_watch_reports_failure_by_periodic_monitor(tmp_path):
    state = tmp_path / "dummy.state"
    res = ocf("heartbeat:Dummy", {"state": str(state)}, interval=0.3)
    start, quiet, obs, latency = asyncio.run(_dummy_watch(res, state))
    assert start.ok and quiet
    assert obs.state == ResState.FAILED and "not running" in obs.detail
    print(f"\nOCF watch (monitor every 0.3 s) saw the failure after {latency * 1000:.0f} ms")
    assert latency < 10


def test_missing_agent_is_a_clear_not_installed_error():
    drv = OcfDriver(ocf("heartbeat:NoSuchAgent"))
    start = asyncio.run(drv.start())
    assert not start.ok and start.returncode == 5
    assert "not installed" in start.message
    assert "/usr/lib/ocf/resource.d/heartbeat/NoSuchAgent does not exist" in start.message
    probe = asyncio.run(drv.probe())
    assert probe.state == ResState.STOPPED and "not installed" in probe.detail


# ------------------------------------------------------------ our own agents: exit codes, env, timeouts

AGENT = """#!/bin/sh
# test agent: exits with $OCF_RESKEY_rc for ACTION, records its environment
case "$1" in
meta-data)
    cat <<'XML'
<?xml version="1.0"?>
<resource-agent name="Exit" version="1.0"><version>1.0</version>
<actions><action name="start" timeout="7s"/><action name="stop" timeout="8s"/>
<action name="monitor" timeout="3s" interval="10s"/><action name="meta-data" timeout="5s"/></actions>
</resource-agent>
XML
    exit 0;;
esac
env | grep -E '^(OCF_|HA_)' | sort > "$OCF_RESKEY_envfile"
[ -n "$OCF_RESKEY_sleep" ] && sleep "$OCF_RESKEY_sleep"
echo "ERROR: asked to fail with $OCF_RESKEY_rc" >&2
echo "ocf-exit-reason:test exit $OCF_RESKEY_rc" >&2
exit "${OCF_RESKEY_rc:-0}"
"""


@pytest.fixture
def ocf_root(tmp_path):
    agent = tmp_path / "ocf" / "resource.d" / "ho" / "Exit"
    agent.parent.mkdir(parents=True)
    agent.write_text(AGENT)
    agent.chmod(0o755)
    return tmp_path / "ocf"


@pytest.mark.parametrize("rc", [1, 2, 3, 4, 5, 6])
def test_exit_codes_carry_their_meaning(ocf_root, tmp_path, rc):
    res = ocf("ho:Exit", {"rc": str(rc), "envfile": str(tmp_path / "env")}, ocf_root=str(ocf_root))
    r = asyncio.run(OcfDriver(res).start())
    assert not r.ok and r.returncode == rc
    assert f"ocf:ho:Exit start exited {rc} ({MEANINGS[rc]}): asked to fail with {rc}; test exit {rc}" == r.message


def test_promoted_and_failed_promoted_codes(ocf_root, tmp_path):
    env = str(tmp_path / "env")
    promoted = OcfDriver(ocf("ho:Exit", {"rc": "8", "envfile": env}, ocf_root=str(ocf_root)))
    assert asyncio.run(promoted.monitor()).ok
    assert asyncio.run(promoted.probe()).state == ResState.STARTED
    failed = OcfDriver(ocf("ho:Exit", {"rc": "9", "envfile": env}, ocf_root=str(ocf_root)))
    probe = asyncio.run(failed.probe())
    assert probe.state == ResState.FAILED and "failed while promoted" in probe.detail


def test_environment_is_what_pacemaker_passes(ocf_root, tmp_path):
    envfile = tmp_path / "env"
    res = ocf("ho:Exit", {"rc": "0", "envfile": str(envfile)}, ocf_root=str(ocf_root), name="res_x",
              interval=15.0, explicit=("monitor",), timeouts=Timeouts(config.ACTION_TIMEOUT, config.ACTION_TIMEOUT, 12.0))
    drv = OcfDriver(res, node="ho-node1")
    assert asyncio.run(drv.start()).ok
    env = dict(line.split("=", 1) for line in envfile.read_text().splitlines())
    assert env["OCF_ROOT"] == str(ocf_root)
    assert env["OCF_RESOURCE_INSTANCE"] == "res_x"
    assert env["OCF_RESOURCE_TYPE"] == "Exit" and env["OCF_RESOURCE_PROVIDER"] == "ho"
    assert env["OCF_RESKEY_rc"] == "0"
    assert env["OCF_RESKEY_CRM_meta_timeout"] == "7000"  # from the agent's meta-data
    assert env["OCF_RESKEY_CRM_meta_on_node"] == "ho-node1"
    assert env["HA_RSCTMP"]
    assert asyncio.run(drv.monitor()).ok
    env = dict(line.split("=", 1) for line in envfile.read_text().splitlines())
    assert env["OCF_RESKEY_CRM_meta_timeout"] == "12000"  # set in the configuration
    assert env["OCF_RESKEY_CRM_meta_interval"] == "15000"
    asyncio.run(drv.probe())
    env = dict(line.split("=", 1) for line in envfile.read_text().splitlines())
    assert env["OCF_RESKEY_CRM_meta_interval"] == "0"  # a probe


def test_action_timeout_kills_the_agent(ocf_root, tmp_path):
    res = ocf("ho:Exit", {"rc": "0", "sleep": "30", "envfile": str(tmp_path / "env")},
              ocf_root=str(ocf_root), explicit=("start",), timeouts=Timeouts(1.0, config.ACTION_TIMEOUT, config.ACTION_TIMEOUT))
    started = time.monotonic()
    r = asyncio.run(OcfDriver(res).start())
    assert not r.ok and r.timed_out
    assert r.message == "ocf:ho:Exit start timed out after 1s"
    assert time.monotonic() - started < 10


# ------------------------------------------------------------ IPaddr2 in a namespace


@pytest.fixture
def vip_ns():
    with ns_ho.namespace("ocf") as name:
        ip = ["ip", "-n", name]
        subprocess.run(ip + ["link", "add", "ho-v0", "type", "veth", "peer", "name", "ho-v1"], check=True)
        subprocess.run(ip + ["addr", "add", "10.77.0.1/24", "dev", "ho-v0"], check=True)
        subprocess.run(ip + ["link", "set", "ho-v0", "up"], check=True)
        subprocess.run(ip + ["link", "set", "ho-v1", "up"], check=True)
        yield name


def addresses(ns: str) -> str:
    return subprocess.run(["ip", "-n", ns, "-4", "addr", "show", "dev", "ho-v0"], capture_output=True,
                          text=True).stdout


async def _act(res, *actions):
    drv = OcfDriver(res)
    out = []
    for action in actions:
        out.append(await (drv.probe() if action == "probe" else getattr(drv, action)()))
    return out


@pytest.mark.slow
def test_ipaddr2_in_a_namespace(vip_ns):
    res = ocf("heartbeat:IPaddr2", {"ip": "10.77.0.20", "cidr_netmask": "24", "nic": "ho-v0"}, name="res_vip")
    probe, start, monitor = ns_ho.in_netns(vip_ns, _act, res, "probe", "start", "monitor")
    assert probe.state == ResState.STOPPED
    assert start.ok, start.message
    assert monitor.ok, monitor.message
    assert "10.77.0.20/24" in addresses(vip_ns)
    assert "10.77.0.20" not in subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
    probe, stop, probe_after = ns_ho.in_netns(vip_ns, _act, res, "probe", "stop", "probe")
    assert probe.state == ResState.STARTED
    assert stop.ok, stop.message
    assert probe_after.state == ResState.STOPPED
    assert "10.77.0.20" not in addresses(vip_ns)
    bad = ocf("heartbeat:IPaddr2", {"ip": "999.1.1.1", "nic": "ho-v0"}, name="res_vip")
    (validate,) = ns_ho.in_netns(vip_ns, _act, bad, "validate")
    assert not validate.ok and validate.returncode in (2, 6)
    assert "999.1.1.1" in validate.message and MEANINGS[validate.returncode] in validate.message
