"""`hasupd-lab` as an administrator types it: --prefix on either side of the
subcommand, and no command that hangs on a frozen node."""

from __future__ import annotations

import time

import pytest

from hasupd_lab import cli


@pytest.mark.parametrize("argv", [
    ["--prefix", "zz", "up"], ["up", "--prefix", "zz"],
    ["--prefix", "zz", "exec", "n1", "--", "true"], ["exec", "--prefix", "zz", "n1", "--", "true"],
    ["fault", "--prefix", "zz", "n1", "freeze"], ["down", "--prefix", "zz"],
])
def test_prefix_is_accepted_before_and_after_the_subcommand(argv, monkeypatch):
    monkeypatch.delenv("HASUPD_LAB_PREFIX", raising=False)
    assert cli.build_parser().parse_args(argv).prefix == "zz"


def test_prefix_defaults_when_given_nowhere(monkeypatch):
    monkeypatch.delenv("HASUPD_LAB_PREFIX", raising=False)
    assert cli.build_parser().parse_args(["down"]).prefix == "hl"


def test_exec_on_a_frozen_node_says_so_instead_of_hanging(make_lab, capsys):
    lab = make_lab(start=False)
    lab.fault("n1", "freeze")
    try:
        began = time.monotonic()
        rc = cli.main(["--prefix", lab.prefix, "exec", "n1", "--", "drbdadm", "role", "r0"])
        took = time.monotonic() - began
        err = capsys.readouterr().err
        assert rc == 1 and "n1 is frozen" in err and "thaw" in err, err
        assert took < 10, took
        # any other command is bounded too, and the message names the node's state
        began = time.monotonic()
        rc = cli.main(["exec", "--prefix", lab.prefix, "--timeout", "1", "n1", "--", "sleep", "60"])
        err = capsys.readouterr().err
        assert rc == 1 and "no answer within 1s" in err and "n1 is frozen" in err, err
        assert time.monotonic() - began < 10
    finally:
        lab.fault("n1", "thaw")
    assert cli.main(["--prefix", lab.prefix, "exec", "n1", "--", "drbdadm", "role", "r0"]) == 0
