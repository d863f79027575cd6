"""`hasupctl check` shows what will run: each resource's key parameters (issue 16)."""

import subprocess
import sys
from pathlib import Path

from tests.robustkit import OneNode

ROOT = Path(__file__).resolve().parents[1]


def check(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hasupd.control.cli", "--config", str(path), "check"],
                          capture_output=True, text=True, timeout=60)


def test_check_summary_shows_each_resources_key_parameters():
    out = check(ROOT / "conf" / "hasupd.yaml")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "res_vip (vip): 192.168.0.20/24 on eth0" in text, text
    assert "res_filesystem (filesystem): /dev/drbd1 -> /mnt/data (ext4)" in text, text
    assert "res_httpd (httpd): /etc/httpd/conf/httpd.conf, port 80, unit httpd.service" in text, text


def test_check_summary_shows_ocf_parameters_with_secrets_masked(tmp_path):
    n = OneNode(tmp_path, params={"ip": "10.0.0.5", "passwd": "Sum-secret-4411"})
    out = check(n.config)
    assert out.returncode == 0, out.stderr
    assert "res_app (ocf): agent rb:app" in out.stdout, out.stdout
    assert "ip=10.0.0.5" in out.stdout and "passwd=***" in out.stdout, out.stdout
    assert "Sum-secret-4411" not in out.stdout
