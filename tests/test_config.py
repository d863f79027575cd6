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
