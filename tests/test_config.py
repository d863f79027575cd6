from pathlib import Path

import pytest

from hasupd import config

ROOT = Path(__file__).resolve().parents[1]


def test_reference_config_loads():
    cfg = config.load(ROOT / "conf" / "hasupd.yaml")
    assert cfg.node_names() == ("primarycentos", "secondarycentos")
    assert cfg.heartbeat.rings[0].group == "226.94.1.1"
    g = cfg.group("rg_web")
    assert [r.name for r in g.resources] == ["res_vip", "res_filesystem", "res_httpd"]
    assert g.migration_threshold == 1 and g.resources[0].timeouts.start == 240


def _with(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


REF = (ROOT / "conf" / "hasupd.yaml").read_text()


@pytest.mark.parametrize(
    "old,new,where,words",
    [
        ("  interval: 200ms", "  intervall: 200ms", ":26:", "did you mean 'interval'"),
        ("  deadtime: 2s", "  deadtime: 0.3s", ":27:", "at least 3 x interval"),
        ("migration_threshold: 1 ", "migration_threshold: one ", ":", "whole number"),
        ("drbd: r0 ", "drbd: r9 ", ":", "no DRBD resource 'r9'"),
        ("        ip: 192.168.0.20", "        ip: 192.168.0.300", ":", "not an IPv4 address"),
    ],
)
def test_errors_name_file_line_and_what(tmp_path, old, new, where, words):
    p = tmp_path / "bad.yaml"
    p.write_text(_with(REF, old, new))
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    msg = str(e.value)
    assert msg.startswith(str(p) + where), msg
    assert words in msg
    assert e.value.line > 0 and e.value.column > 0


def test_yaml_syntax_error_has_position(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("cluster: web\nnodes: [\n")
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    assert "not valid YAML" in str(e.value) and e.value.line >= 2


# more error cases (planner-facing policy keys and structure)
@pytest.mark.parametrize(
    "old,new,words",
    [
        ("    on_stop_failure: block ", "    on_stop_failure: ignore ", "expected one of block, reboot"),
        ("    stickiness: infinity ", "    stickiness: sticky ", "whole number"),
        ("    failure_timeout: 10m ", "    failure_timeout: ten minutes ", "expected a duration"),
        ("    migration_threshold: 1 ", "    migration_threshold: 0 ", "out of range"),
        ("  mode: none\n", "  mode: quorum\n", "expected one of ping, fence, drbd, none"),
        ("  mode: none\n", "  mode: ping\n", "missing required key 'ping'"),
        ("  mode: none\n", "  mode: fence\n", "needs a 'fencing:' section"),
        ("    addresses: [192.168.0.22]", "    addresses: [192.168.1.22]", "not in ring 0's network"),
        ("  - name: secondarycentos", "  - name: primarycentos", "both nodes are named"),
        ("        type: httpd", "        type: apache", "expected one of"),
        ("      - name: res_httpd", "      - name: res_vip", "resource name 'res_vip' is used twice"),
    ],
)
def test_more_errors_name_the_place_and_what_is_expected(tmp_path, old, new, words):
    p = tmp_path / "bad.yaml"
    p.write_text(_with(REF, old, new))
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:{e.value.line}:{e.value.column}: "), msg
    assert e.value.line > 0 and e.value.column > 0
    assert words in msg, msg


def test_preferred_node_must_be_a_node(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(_with(REF, "    stickiness: infinity ", "    preferred_node: thirdnode\n    stickiness: infinity "))
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    assert "expected one of primarycentos, secondarycentos" in str(e.value)


# ---------------------------------------------------------------- hostile bytes (issue 16, low)


@pytest.mark.parametrize(
    "raw,where,words",
    [
        (b"cluster: " + b"[" * 50000 + b"\n", ":1:", "nested too deeply"),
        (REF.replace("cluster: web", "cluster: w\x00eb", 1).encode(), ":", "control character"),
        (REF.encode().replace(b"cluster: web", b"cluster: w\xffeb", 1), ":", "not UTF-8"),
    ],
    ids=["deep-nesting", "raw-nul", "bad-utf8"],
)
def test_hostile_bytes_are_config_errors_that_exit_78(tmp_path, capsys, raw, where, words):
    from hasupd import daemon

    p = tmp_path / "bad.yaml"
    p.write_bytes(raw)
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    assert str(e.value).startswith(str(p) + where) and words in str(e.value), str(e.value)
    assert daemon.main(["--config", str(p)]) == config.EX_CONFIG
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(p) in err


@pytest.mark.parametrize("key", ["cluster: web", "  - name: rg_web", "  - name: primarycentos"])
def test_names_ending_in_a_newline_are_refused(tmp_path, key):
    name = key.split(": ")[1]
    p = tmp_path / "bad.yaml"
    p.write_text(_with(REF, key, key.replace(name, f'"{name}\\n"')))
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    assert "is not" in str(e.value)


# ---------------------------------------------------------------- the declarations (issue 15)


def test_readme_configuration_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert config.readme_with_table(readme) == readme, \
        "README.md's table differs from the declarations: python -m hasupd.config --update-readme README.md"


def test_table_lists_every_key_the_reader_accepts():
    keys = {row[0] for row in config.reference_rows()}
    for key in ("heartbeat.rings[].ttl", "groups[].timeouts.monitor", "control.socket", "fencing.levels",
                "split_brain_guard.ping.fall", "drbd.resources[].minor", "metrics.listen"):
        assert key in keys
    assert ("heartbeat.deadtime", "`2s`") in {row[:2] for row in config.reference_rows()}


MINIMAL = """cluster: c
nodes: [{name: a, addresses: [10.99.0.1]}, {name: b, addresses: [10.99.0.2]}]
heartbeat: {rings: [{interface: eth0, group: 226.94.1.1}]}
groups: [{name: g, resources: [{name: v, type: vip, ip: 10.99.0.9}]}]
alerts: [{path: /bin/true}]
"""


def test_absent_keys_take_their_declared_defaults():
    cfg = config.loads(MINIMAL)
    sections = (cfg, cfg.heartbeat, cfg.heartbeat.rings[0], cfg.groups[0], cfg.groups[0].resources[0],
                cfg.groups[0].default_timeouts, cfg.alerts[0])
    checked = 0
    for obj in sections:
        for name, default in config.defaults(type(obj)).items():
            if (type(obj), name) in ((config.Ring, "group"), (config.Ring, "interface")):  # given above
                continue
            assert getattr(obj, name) == default, (type(obj).__name__, name)
            checked += 1
    assert checked > 25
    assert cfg.groups[0].resources[0].timeouts == config.DEFAULT_TIMEOUTS  # the group's, by default


def test_unknown_key_lists_the_declared_keys():
    with pytest.raises(config.ConfigError) as e:
        config.loads(MINIMAL.replace("interface: eth0", "interface: eth0, tll: 2"))
    assert "(did you mean 'ttl'?) (allowed here: interface, bind_network, group, port, ttl)" in str(e.value)


def test_table_command_prints_the_generated_table():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "hasupd.config", "--table"], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out == config.reference_table()
    assert "| `heartbeat.interval` | `200ms` |" in out


def test_resource_tables_show_the_group_defaults():
    for kind in ("filesystem", "vip", "httpd", "systemd_unit"):
        table = config.resource_table(kind)
        assert f"the group's ({config._show_duration(config.ACTION_TIMEOUT)})" in table
    assert "| `fstype` | `ext4` |" in config.resource_table("filesystem")
