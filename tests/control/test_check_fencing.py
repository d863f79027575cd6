"""`hasupctl check` with a `fencing:` section: the summary names each device (agent or
command, nodes, plugs, non-secret options, the secrets file by its path only), the levels
per node, owner_head_start and random_delay_max; no value of a secrets file ever appears
in anything check prints, whether the check passes or fails."""

import os

import yaml
from ctl_helpers import HERE, hasupctl

REFERENCE = os.path.join(HERE, "..", "..", "conf", "hasupd.yaml")
P, S = "primarycentos", "secondarycentos"
CANARIES = ("Canary-pw-7f3a", "Canary-kg-91c2")


def _config(tmp_path, secrets_text: str, mode: int = 0o600) -> str:
    secrets = tmp_path / "bmc-p.secret"
    secrets.write_text(secrets_text)
    secrets.chmod(mode)
    data = yaml.safe_load(open(REFERENCE).read())
    data["split_brain_guard"] = {"mode": "fence"}
    data["fencing"] = {
        "owner_head_start": "7s", "random_delay_max": "3s",
        "devices": [
            {"name": "bmc-p", "agent": "fence_ipmilan", "nodes": [P], "plugs": {P: "2"},
             "options": {"ip": "10.99.75.1", "username": "admin", "lanplus": "1"},
             "secrets": str(secrets), "timeout": "15s", "retries": 2, "delay": "1s"},
            {"name": "bmc-s", "agent": "fence_ipmilan", "nodes": [S], "options": {"ip": "10.99.75.2"},
             "secrets": str(secrets)},
            {"name": "site", "command": ["/bin/true", "--all"], "nodes": [P, S]}],
        "levels": {P: [["bmc-p"], ["site"]], S: [["bmc-s", "site"]]}}
    path = tmp_path / "hasupd.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _no_canary(r) -> None:
    for canary in CANARIES:
        assert canary not in r.stdout and canary not in r.stderr


def test_check_summarises_the_fencing_section_and_never_shows_a_secret(tmp_path):
    path = _config(tmp_path, f"password={CANARIES[0]}\nhexadecimal_kg={CANARIES[1]}\n")
    r = hasupctl("check", "--config", path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "fencing: owner_head_start 7s, random_delay_max 3s" in lines
    secrets = tmp_path / "bmc-p.secret"
    assert (f"fence device bmc-p: fence_ipmilan for {P}, plug {P}=2, options ip=10.99.75.1 username=admin "
            f"lanplus=1, secrets from {secrets}, timeout 15s, retries 2, delay 1s") in lines
    assert (f"fence device bmc-s: fence_ipmilan for {S}, options ip=10.99.75.2, secrets from {secrets}, "
            "timeout 20s, retries 1") in lines
    assert f"fence device site: command /bin/true --all for {P}, {S}, timeout 20s, retries 1" in lines
    assert f"fencing {P}: bmc-p then site" in lines and f"fencing {S}: bmc-s+site" in lines
    _no_canary(r)
    _no_canary(hasupctl("check", "--quiet", "--config", path))
    # failing checks name the secrets file's line and key, never its value
    path = _config(tmp_path, f"password={CANARIES[0]}\nfrobnicate={CANARIES[1]}\n")
    r = hasupctl("check", "--config", path)
    assert r.returncode == 78 and f"{secrets}:2: fence device bmc-p: fence_ipmilan has no option 'frobnicate'" \
        in r.stderr, r.stderr
    _no_canary(r)
    path = _config(tmp_path, f"password {CANARIES[0]}\n")
    r = hasupctl("check", "--config", path)
    assert r.returncode == 78 and f"{secrets}:1: expected key=value" in r.stderr, r.stderr
    _no_canary(r)
    path = _config(tmp_path, f"password={CANARIES[0]}\n", mode=0o644)
    r = hasupctl("check", "--config", path)
    assert r.returncode == 78 and "mode 0644" in r.stderr, r.stderr
    _no_canary(r)
