"""The fence-agents calling convention, levels, confirmation and secrets.

Site `command` devices here are small shell scripts (a real device type:
they get the same stdin as an agent); the agent tests use Debian's
fence-agents (fence_ipmilan's metadata, a real run against no BMC)."""

from __future__ import annotations

import asyncio
import logging
import os
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hasupd import config
from hasupd.config import FenceDevice, Fencing
from hasupd.fencing import Fencer, call_device

ROOT = Path(__file__).resolve().parents[2]
CANARY = "Canary-7f3e9b1d-pw"
HEAD = textwrap.dedent("""\
    cluster: c
    nodes:
      - {name: n1, addresses: [10.0.0.1]}
      - {name: n2, addresses: [10.0.0.2]}
    heartbeat: {rings: [{bind_network: 10.0.0.0/24, group: 226.94.1.1}]}
    """)


def script(tmp_path: Path, name: str, body: str) -> str:
    """A site fence command: logs each action to NAME.log, then runs BODY."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\nin=$(cat)\naction=$(printf '%s\\n' \"$in\" | sed -n 's/^action=//p')\n"
                    f"echo \"$action\" >> {tmp_path}/{name}.log\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def actions(tmp_path: Path, name: str) -> list[str]:
    log = tmp_path / f"{name}.log"
    return log.read_text().split() if log.exists() else []


def device(name: str, command: str, **kw) -> FenceDevice:
    base = dict(name=name, agent=None, command=(command,), nodes=("n2",), plugs=(), options=(),
                secrets=None, timeout=5.0, retries=0, delay=0.0)
    base.update(kw)
    return FenceDevice(**base)


def fencing(*devices: FenceDevice, levels=()) -> Fencing:
    return Fencing(tuple(devices), tuple(levels), 0.0, 0.0)


def secrets_file(tmp_path: Path, text: str, mode: int = 0o600) -> str:
    p = tmp_path / "dev.secret"
    p.write_text(text)
    p.chmod(mode)
    return str(p)


# a power switch in a file: status answers from it, off/on change it
SWITCH = """
state=$(cat {state} 2>/dev/null || echo on)
case "$action" in
  status) [ "$state" = off ] && exit 2; exit 0;;
  off) echo off > {state}; exit 0;;
  on) echo on > {state}; exit 0;;
  monitor) exit 0;;
esac
exit 1
"""


def test_stdin_carries_options_plug_and_secrets_never_argv_or_env(tmp_path):
    out = tmp_path / "seen"
    cmd = script(tmp_path, "dev", f"""
        printf '%s\\n' "$in" > {out}.stdin
        echo "$0 $*" > {out}.argv
        env > {out}.env
        exit 0
        """)
    d = device("dev", cmd, plugs=(("n2", "7"),), options=(("ip", "10.77.0.12"), ("lanplus", "1")),
               secrets=secrets_file(tmp_path, f"password={CANARY}\n"))
    res = asyncio.run(call_device(d, "n2", "monitor"))
    assert res.ok, res.why()
    lines = Path(f"{out}.stdin").read_text().splitlines()
    assert lines[:3] == ["action=monitor", "plug=7", "nodename=n2"]
    assert "ip=10.77.0.12" in lines and "lanplus=1" in lines and f"password={CANARY}" in lines
    assert CANARY not in Path(f"{out}.argv").read_text()
    env = Path(f"{out}.env").read_text()
    assert CANARY not in env
    assert "HASUPD_CONFIG" not in env and "PYTEST" not in env  # a clean environment


def test_secrets_file_needs_root_and_0600_or_0400(tmp_path):
    bad = secrets_file(tmp_path, f"password={CANARY}\n", 0o644)
    text = _agent_yaml("ip: 10.77.0.12", bad)
    with pytest.raises(config.ConfigError) as e:
        config.loads(text, "x.yaml")
    assert str(e.value).startswith("x.yaml:13:"), e.value
    assert "mode 0644" in str(e.value) and CANARY not in str(e.value)
    os.chmod(bad, 0o400)
    cfg = config.loads(text, "x.yaml")
    assert cfg.fencing.levels_for("n2")[0][0].secrets == bad
    assert cfg.fencing.levels_for("n1") == []
    assert any("no fence device fences n1" in w for w in cfg.warnings)


def test_a_password_in_the_options_is_refused_with_its_line(tmp_path):
    text = HEAD + textwrap.dedent("""\
        fencing:
          devices:
            - name: bmc-n2
              agent: fence_ipmilan
              nodes: [n2]
              options: {ip: 10.77.0.12, password: hunter2}
        groups: []
        """)
    with pytest.raises(config.ConfigError) as e:
        config.loads(text, "x.yaml")
    assert str(e.value).startswith("x.yaml:11:") and "secrets" in str(e.value)
    for key in ("snmp_priv_passwd", "passwd"):
        with pytest.raises(config.ConfigError):
            config.loads(text.replace("password: hunter2", f"{key}: hunter2"), "x.yaml")
    # a path is no secret: the script that prints a password, an ssh key file
    ok = config.loads(text.replace("password: hunter2", "password_script: /usr/local/bin/pw, "
                                   "identity_file: /root/.ssh/id_ed25519"), "x.yaml")
    assert dict(ok.fencing.devices[0].options)["password_script"] == "/usr/local/bin/pw"


def test_round_one_fence_command_becomes_one_command_device():
    text = HEAD + textwrap.dedent("""\
        split_brain_guard: {mode: fence, fence: {command: [/usr/local/sbin/site-fence, "{peer}"], timeout: 30s}}
        groups: []
        """)
    cfg = config.loads(text, "x.yaml")
    (d,) = cfg.fencing.devices
    assert d.command == ("/usr/local/sbin/site-fence", "{peer}") and d.timeout == 30
    assert cfg.fencing.levels_for("n1") == [[d]] and cfg.fencing.levels_for("n2") == [[d]]
    assert any("old form" in w and "fencing:" in w for w in cfg.warnings)


def test_levels_are_checked_and_ordered():
    text = HEAD + textwrap.dedent("""\
        fencing:
          owner_head_start: 3s
          devices:
            - {name: ping, agent: fence_heuristics_ping, nodes: [n1, n2], options: {ping_targets: 10.0.0.254}}
            - {name: bmc-n2, agent: fence_ipmilan, nodes: [n2], plugs: {n2: "2"}, retries: 2, delay: 1s}
          levels:
            n2: [[ping, bmc-n2], [bmc-n2]]
        groups: []
        """)
    cfg = config.loads(text, "x.yaml")
    levels = cfg.fencing.levels_for("n2")
    assert [[d.name for d in lv] for lv in levels] == [["ping", "bmc-n2"], ["bmc-n2"]]
    assert [[d.name for d in lv] for lv in cfg.fencing.levels_for("n1")] == [["ping"]]
    assert cfg.fencing.owner_head_start == 3 and levels[1][0].plug("n2") == "2"
    with pytest.raises(config.ConfigError) as e:
        config.loads(text.replace("n2: [[ping, bmc-n2]", "n1: [[ping, bmc-n2]"), "x.yaml")
    assert str(e.value).startswith("x.yaml:12:") and "does not fence n1" in str(e.value)


def test_status_off_first_means_already_fenced_without_off(tmp_path):
    state = tmp_path / "power"
    state.write_text("off")
    cmd = script(tmp_path, "bmc", SWITCH.format(state=state))
    outcome = asyncio.run(Fencer(fencing(device("bmc", cmd)), "n1").fence("n2"))
    assert outcome.ok and outcome.already_off and outcome.device == "bmc" and outcome.level == 1
    assert actions(tmp_path, "bmc") == ["status"]


def test_off_then_confirmed_by_status(tmp_path):
    state = tmp_path / "power"
    cmd = script(tmp_path, "bmc", SWITCH.format(state=state))
    f = Fencer(fencing(device("bmc", cmd)), "n1")
    outcome = asyncio.run(f.fence("n2"))
    assert outcome.ok and not outcome.already_off, outcome
    assert actions(tmp_path, "bmc") == ["status", "off", "status"]
    assert f.last_fence["node"] == "n2" and f.last_fence["ok"] and f.last_fence["by"] == "n1"


def test_off_accepted_but_still_on_is_not_fenced(tmp_path):
    liar = script(tmp_path, "liar", """
        [ "$action" = off ] && exit 0
        exit 0   # status: still on
        """)
    outcome = asyncio.run(Fencer(fencing(device("liar", liar, timeout=1.0)), "n1").fence("n2"))
    assert not outcome.ok and "no status confirms" in outcome.message


def test_failed_level_falls_through_to_the_next_with_retries_and_delay(tmp_path):
    state = tmp_path / "power"
    broken = script(tmp_path, "broken", "exit 1\n")
    good = script(tmp_path, "good", SWITCH.format(state=state))
    devs = (device("broken", broken, retries=2), device("good", good, delay=0.3))
    f = Fencer(fencing(*devs, levels=(("n2", (("broken",), ("good",))),)), "n1")
    start = time.monotonic()
    outcome = asyncio.run(f.fence("n2"))
    assert outcome.ok and outcome.level == 2 and outcome.device == "good"
    assert time.monotonic() - start >= 0.3  # the device's delay before its off
    assert actions(tmp_path, "broken") == ["status", "off", "off", "off"]  # 1 + 2 retries
    assert actions(tmp_path, "good") == ["status", "off", "status"]


def test_every_device_of_a_level_must_succeed(tmp_path):
    state = tmp_path / "power"
    refuse = script(tmp_path, "heuristic", "exit 1\n")  # like a ping heuristic that cannot reach
    good = script(tmp_path, "good", SWITCH.format(state=state))
    devs = (device("heuristic", refuse), device("good", good))
    outcome = asyncio.run(Fencer(fencing(*devs, levels=(("n2", (("heuristic", "good"),)),)), "n1").fence("n2"))
    assert not outcome.ok and "heuristic off failed" in outcome.message
    assert "off" not in actions(tmp_path, "good")  # the level stopped at its first failure
    assert state.read_text().strip() != "off" if state.exists() else True


def test_no_device_means_no_fence():
    outcome = asyncio.run(Fencer(fencing(), "n1").fence("n2"))
    assert not outcome.ok and "no fence device" in outcome.message


def test_a_hung_agent_is_killed_at_its_timeout(tmp_path):
    hung = script(tmp_path, "hung", f"sleep 30 & echo $! > {tmp_path}/child; wait\n")
    start = time.monotonic()
    res = asyncio.run(call_device(device("hung", hung, timeout=1.0), "n2", "status"))
    assert res.returncode is None and "within 1s" in res.why()
    assert time.monotonic() - start < 10
    child = int((tmp_path / "child").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists():
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists(), "the agent's children die with it (process group)"


def test_output_is_bounded_and_secrets_redacted(tmp_path):
    loud = script(tmp_path, "loud", """
        printf '%s\\n' "$in" | sed -n 's/^password=/login failed for password /p' >&2
        head -c 20000000 /dev/zero | tr '\\0' x
        exit 1
        """)
    d = device("loud", loud, secrets=secrets_file(tmp_path, f"password={CANARY}\n"))
    res = asyncio.run(call_device(d, "n2", "off"))
    assert res.returncode == 1
    assert len(res.output) <= 2 * 64 * 1024 + 1
    assert CANARY not in res.output and "***" in res.output


def test_fence_test_runs_status_or_monitor_never_off(tmp_path):
    state = tmp_path / "power"
    bmc = script(tmp_path, "bmc", SWITCH.format(state=state))
    heuristic = script(tmp_path, "heur", '[ "$action" = monitor ] && exit 0\nexit 1\n')
    f = Fencer(fencing(device("bmc", bmc), device("heur", heuristic, nodes=("n1", "n2"))), "n1")
    results = asyncio.run(f.test())
    assert {(r["node"], r["device"], r["ok"]) for r in results} == {
        ("n1", "heur", True), ("n2", "bmc", True), ("n2", "heur", True)}
    assert next(r for r in results if r["device"] == "bmc")["power"] == "on"
    assert "off" not in actions(tmp_path, "bmc") + actions(tmp_path, "heur")
    assert f.last_tests["bmc"]["ok"] and "monitor works" in f.last_tests["heur"]["message"]


# ------------------------------------------------------------ real fence-agents


def _cfg_with_agent(tmp_path: Path, options: str, secrets: str) -> Path:
    p = tmp_path / "hasupd.yaml"
    p.write_text(_agent_yaml(options, secrets))
    return p


def _agent_yaml(options: str, secrets: str) -> str:
    return HEAD + textwrap.dedent(f"""\
        split_brain_guard: {{mode: fence}}
        fencing:
          devices:
            - name: bmc-n2
              agent: fence_ipmilan
              nodes: [n2]
              options: {{{options}}}
              secrets: {secrets}
        groups: []
        """)


def test_check_knows_the_agents_options_from_its_metadata(tmp_path, capsys):
    from hasupd.control.cli import main
    secret = secrets_file(tmp_path, f"password={CANARY}\n")
    good = _cfg_with_agent(tmp_path, "ip: 10.77.0.12, username: admin, lanplus: 1", secret)
    assert main(["check", "--config", str(good)]) == 0, capsys.readouterr()
    typo = _cfg_with_agent(tmp_path, "ip: 10.77.0.12, usernme: admin, lanplus: 1", secret)
    assert main(["check", "--config", str(typo)]) == config.EX_CONFIG
    err = capsys.readouterr().err
    assert f"{typo}:12: fence device bmc-n2: fence_ipmilan has no option 'usernme'" in err
    assert "did you mean 'username'" in err
    Path(secret).write_text(f"passwrd={CANARY}\n")
    assert main(["check", "--config", str(good)]) == config.EX_CONFIG
    err = capsys.readouterr().err
    assert f"{secret}:1:" in err and "'passwrd'" in err and CANARY not in err
    missing = tmp_path / "missing.yaml"
    missing.write_text(good.read_text().replace("agent: fence_ipmilan", "agent: fence_nosuchagent"))
    assert main(["check", "--config", str(missing)]) == config.EX_CONFIG
    assert f"{missing}:10:" in capsys.readouterr().err


def test_a_real_agent_gets_the_password_on_stdin_only(tmp_path, caplog):
    """fence_ipmilan against an address where no BMC answers: it fails, and
    the canary is in no argv (sampled during the call), message or log."""
    caplog.set_level(logging.DEBUG)
    d = FenceDevice("bmc-n2", "fence_ipmilan", None, ("n2",), (),
                    (("ip", "127.0.0.1"), ("ipport", "1"), ("username", "admin"), ("lanplus", "1"),
                     ("power_timeout", "2")),
                    secrets_file(tmp_path, f"password={CANARY}\n"), 20.0, 0, 0.0)
    seen: list[str] = []

    async def run():
        f = Fencer(fencing(d), "n1")
        task = asyncio.ensure_future(f.fence("n2"))
        while not task.done():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    except OSError:
                        continue
                    if b"fence_ipmilan" in cmdline:
                        seen.append(cmdline.decode(errors="replace"))
            await asyncio.sleep(0.01)
        return f, task.result()

    f, outcome = asyncio.run(run())
    assert seen, "the agent was seen running"
    assert not any(CANARY in c for c in seen)
    assert not outcome.ok
    assert CANARY not in outcome.message and CANARY not in repr(f.last_fence)
    assert CANARY not in caplog.text


def test_hand_fence_needs_yes_really(capsys):
    from hasupd.control.cli import main
    assert main(["--socket", "/nonexistent/hasupd.sock", "fence", "n2"]) == 2
    assert "--yes-really" in capsys.readouterr().err


def test_status_first_asks_every_device_at_once(tmp_path):
    """A slow device does not delay the one that already reports the node off."""
    state = tmp_path / "power"
    state.write_text("off")
    slow = script(tmp_path, "slow", "sleep 20\nexit 0\n")
    bmc = script(tmp_path, "bmc", SWITCH.format(state=state))
    devs = (device("slow", slow, timeout=30.0), device("bmc", bmc))
    f = Fencer(fencing(*devs, levels=(("n2", (("slow",), ("bmc",))),)), "n1")
    start = time.monotonic()
    outcome = asyncio.run(f.fence("n2"))
    assert outcome.ok and outcome.already_off and outcome.device == "bmc" and outcome.level == 2
    assert time.monotonic() - start < 10, "the slow device's status was not waited for"
    assert asyncio.run(f.power_status("n2")) == "off"


def test_round_one_command_keeps_peer_substitution_and_env(tmp_path):
    """The old fence.command's {peer} and HASUPD_PEER still reach a site command."""
    out = tmp_path / "seen"
    cmd = script(tmp_path, "site", f'echo "$1 $HASUPD_PEER" > {out}\nexit 0\n')
    d = FenceDevice("fence-command", None, (cmd, "{peer}"), ("n1", "n2"), (), (), None, 5.0, 0, 0.0)
    assert asyncio.run(call_device(d, "n2", "off")).ok
    assert out.read_text() == "n2 n2\n"


def test_fence_test_works_before_the_daemon_runs(tmp_path, capsys):
    from hasupd.control.cli import main
    state = tmp_path / "power"
    bmc = script(tmp_path, "bmc", SWITCH.format(state=state))
    cfg = tmp_path / "hasupd.yaml"
    cfg.write_text(HEAD + textwrap.dedent(f"""\
        fencing:
          devices:
            - {{name: site, command: [{bmc}], nodes: [n2]}}
        groups: []
        """))
    args = ["--socket", str(tmp_path / "none.sock"), "--config", str(cfg), "fence", "test"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "not running" in out and "n2 level 1 site: ok - status works: n2 is on" in out
    Path(bmc).write_text("#!/bin/sh\nexit 1\n")
    assert main(args) == 1
    assert "site: FAILED" in capsys.readouterr().out
    assert actions(tmp_path, "bmc") == ["status"]  # never off


def test_one_of_two_power_supplies_off_is_not_off(tmp_path):
    """A level of two PDUs (two power supplies): one outlet off while the other
    is on is no fence; both get their off, then both confirm."""
    a_state, b_state = tmp_path / "a", tmp_path / "b"
    a_state.write_text("off")
    pdu_a = script(tmp_path, "pdu_a", SWITCH.format(state=a_state))
    pdu_b = script(tmp_path, "pdu_b", SWITCH.format(state=b_state))
    f = Fencer(fencing(device("pdu_a", pdu_a), device("pdu_b", pdu_b)), "n1")
    assert asyncio.run(f.power_status("n2")) == "on"
    outcome = asyncio.run(f.fence("n2"))
    assert outcome.ok and not outcome.already_off and outcome.device == "pdu_a+pdu_b"
    assert actions(tmp_path, "pdu_b")[-2:] == ["off", "status"]
    assert b_state.read_text().strip() == "off"
    assert asyncio.run(f.power_status("n2")) == "off"


def test_a_heuristic_device_saying_off_is_not_a_power_status(tmp_path, monkeypatch):
    """fence_heuristics_* devices check a condition (a ping), they do not
    see power: an exit 2 to `status` from one must not make the node
    "already off" (no off would be sent to the BMC that can really fence it)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    heuristic = script(bindir, "fence_heuristics_site", '[ "$action" = status ] && exit 2\nexit 0\n')
    assert Path(heuristic).name == "fence_heuristics_site"
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ.get('PATH', '')}")
    state = tmp_path / "power"
    bmc = script(tmp_path, "bmc", SWITCH.format(state=state))
    check = replace(device("check", ""), agent="fence_heuristics_site", command=None)
    f = Fencer(fencing(check, device("bmc", bmc), levels=(("n2", (("check", "bmc"),)),)), "n1")
    assert asyncio.run(f.power_status("n2")) == "on"
    outcome = asyncio.run(f.fence("n2"))
    assert outcome.ok and not outcome.already_off, outcome
    assert "off" in actions(tmp_path, "bmc") and state.read_text().strip() == "off"
    # nor does it confirm an off that the BMC cannot confirm (its status fails)
    mute = script(tmp_path, "mute", '[ "$action" = status ] && exit 1\nexit 0\n')
    f = Fencer(fencing(check, device("mute", mute, timeout=1.0), levels=(("n2", (("check", "mute"),)),)), "n1")
    outcome = asyncio.run(f.fence("n2"))
    assert not outcome.ok and "no status confirms" in outcome.message, outcome


def test_check_warns_about_a_fence_race_the_head_start_does_not_decide():
    """A device that may take longer than the owner's head start (timeout x
    (retries + 1)) lets the peer's fence start before the owner's ended; groups
    on both nodes with no random delay race with equal chances."""
    text = HEAD + textwrap.dedent("""\
        fencing:
          owner_head_start: 5s
          devices:
            - {name: bmc-n1, agent: fence_ipmilan, nodes: [n1], timeout: 4s, retries: 1}
            - {name: bmc-n2, agent: fence_ipmilan, nodes: [n2], timeout: 2s, retries: 1}
        groups:
          - {name: a, resources: [{name: a_ip, type: vip, ip: 10.0.0.50, cidr_netmask: 24}]}
          - {name: b, resources: [{name: b_ip, type: vip, ip: 10.0.0.51, cidr_netmask: 24}]}
        """)
    warnings = config.loads(text, "x.yaml").warnings
    slow = [w for w in warnings if "owner_head_start" in w]
    assert len(slow) == 1 and "bmc-n1" in slow[0] and "8s" in slow[0], warnings
    assert any("random_delay_max" in w for w in warnings), warnings
    calm = config.loads(text.replace("timeout: 4s", "timeout: 2s").replace("owner_head_start: 5s",
                                     "owner_head_start: 5s\n  random_delay_max: 2s"), "x.yaml").warnings
    assert not any("owner_head_start" in w or "random_delay_max" in w for w in calm), calm


def test_fence_and_drbd_guards_take_a_ping_tie_breaker(tmp_path):
    """A node that cannot reach its tie-breaker does not fence (the isolated
    one loses): fence and drbd modes read split_brain_guard.ping too, and the
    engine runs the check for them."""
    from hasupd.daemon import build_engine
    for mode in ("fence", "drbd"):
        text = HEAD + textwrap.dedent(f"""\
            split_brain_guard: {{mode: {mode}, ping: {{targets: [10.0.0.254], interval: 0.5s}}}}
            fencing:
              devices: [{{name: bmc, agent: fence_ipmilan, nodes: [n1, n2]}}]
            groups: []
            state_dir: {tmp_path}
            """)
        cfg = config.loads(text, "x.yaml")
        assert cfg.split_brain_guard.ping.targets == ("10.0.0.254",) and cfg.split_brain_guard.ping.interval == 0.5
        assert build_engine(cfg, "n1", key=b"k" * 32).guard is not None
