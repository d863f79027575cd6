"""DRBD refusals (real captured texts and exit codes) -> typed failures and
one sentence naming the real cause."""

from __future__ import annotations

import re

import pytest

from hasupd.model import DrbdStatus
from hasupd.resources.drbd_parse import (
    DrbdFailure,
    FailureKind,
    classify,
    explain,
    parse_events2,
    parse_proc_drbd,
)

from .conftest import fixture_text


def capture(name: str) -> tuple[str, int]:
    """A `$ cmd` / output / `(exit N)` capture -> (output, exit code)."""
    text = fixture_text(name)
    code = int(re.search(r"\(exit (\d+)\)", text).group(1))
    body = [ln for ln in text.splitlines()
            if not ln.startswith(("$ ", "(exit", "# (output"))]
    return "\n".join(body), code


def status_of(name: str) -> DrbdStatus:
    if name.startswith("events2"):
        return parse_events2(fixture_text(name))["r0"]
    return parse_proc_drbd(fixture_text(name), {1: "r0"})["r0"]


def one_sentence(msg: str) -> None:
    assert msg and "\n" not in msg and "Traceback" not in msg


@pytest.mark.parametrize("capture_name,code,kind", [
    ("primary-refused-inconsistent-alone.txt", 17, FailureKind.NEED_UPTODATE),
    ("primary-refused-inconsistent-connected.txt", 17, FailureKind.NEED_UPTODATE),
    ("primary-refused-outdated.txt", 17, FailureKind.NEED_UPTODATE),
    ("primary-refused-fence-peer-exit6.txt", 17, FailureKind.NEED_UPTODATE),
    ("primary-refused-peer-primary.txt", 11, FailureKind.MULTIPLE_PRIMARIES),
    ("secondary-refused-mounted.txt", 11, FailureKind.HELD_OPEN),
    ("down-refused-mounted.txt", 11, FailureKind.HELD_OPEN),
    ("attach-minor-not-allocated.txt", 10, FailureKind.NOT_UP),
])
def test_real_refusals_are_classified(capture_name, code, kind):
    out, rc = capture(capture_name)
    assert rc == code
    f = classify(out, rc, command=("drbdadm",))
    assert f.kind is kind
    assert f.code is not None and f"({f.code})" in out


def test_reference_setup_minor_not_allocated_means_not_up():
    out = fixture_text("reference-setup-attach-minor-not-allocated.txt")
    f = classify(out, 10)
    assert (f.kind, f.code) == (FailureKind.NOT_UP, 127)
    msg = explain(f, "r0", action="attach", minor=1)
    one_sentence(msg)
    assert "not up" in msg and "drbdadm up r0" in msg and "not a minor_count problem" in msg


@pytest.mark.parametrize("refusal,status_capture,words", [
    ("primary-refused-inconsistent-alone.txt", "events2-now-alone-fresh-md.txt",
     ["Inconsistent", "connect the peer"]),
    ("primary-refused-inconsistent-connected.txt", "events2-now-connected-inconsistent.txt",
     ["Inconsistent", "hasupctl drbd init r0 --this-node-wins"]),
    ("primary-refused-outdated.txt", "events2-now-outdated-secondary.txt",
     ["Outdated", "resync"]),
    ("primary-refused-fence-peer-exit6.txt", "events2-now-fence-exit6-outdated.txt",
     ["Outdated"]),
    ("primary-refused-inconsistent-alone.txt", "proc-drbd-8.4.11-sync-target.txt",
     ["Inconsistent", "4.7% done", "wait"]),
    ("primary-refused-inconsistent-alone.txt", "events2-now-alone-old-data-fencing.txt",
     ["Consistent", "fencing resource-and-stonith", "Outdated"]),
    ("primary-refused-inconsistent-alone.txt", "events2-now-detached-primary-diskless.txt",
     ["Diskless", "attach"]),
])
def test_need_uptodate_names_disk_state_and_the_way_out(refusal, status_capture, words):
    out, rc = capture(refusal)
    st = status_of(status_capture)
    msg = explain(classify(out, rc), "r0", action="promotion", status=st)
    one_sentence(msg)
    assert f"local disk is {st.disk}" in msg
    for w in words:
        assert w in msg


def test_held_open_names_the_holders():
    out, rc = capture("secondary-refused-mounted.txt")
    msg = explain(classify(out, rc), "r0", action="demotion",
                  holders=["mounted on /mnt/data", "pid 4242 (httpd)"])
    one_sentence(msg)
    assert "mounted on /mnt/data" in msg and "pid 4242 (httpd)" in msg


def test_held_open_without_holders_says_so():
    out, rc = capture("down-refused-mounted.txt")
    msg = explain(classify(out, rc), "r0", action="down")
    assert "no process or mount found" in msg


def test_multiple_primaries():
    out, rc = capture("primary-refused-peer-primary.txt")
    msg = explain(classify(out, rc), "r0", action="promotion")
    one_sentence(msg)
    assert "peer is Primary" in msg and "demote the peer" in msg


def test_missing_module_is_one_clear_error_naming_packages():
    text = fixture_text("no-module.txt")
    modprobe_out = text.split("(exit 1)\n")[-1].strip()
    assert modprobe_out.startswith("modprobe: FATAL: Module drbd not found")
    f = classify(modprobe_out, 1, command=("modprobe", "drbd", "minor_count=2"))
    assert f.kind is FailureKind.NO_MODULE
    msg = explain(f, "r0", kernel="6.18.44-fc-v782")
    one_sentence(msg)
    for w in ("drbd kernel module is missing", "6.18.44-fc-v782", "linux-image-",
              "kmod-drbd84", "kmod-drbd9x", "ELRepo"):
        assert w in msg
    # drbdadm without the module says it differently, same meaning
    status_out = "Failed to modprobe drbd (No such file or directory)\n" \
                 "Command 'drbdsetup status r0' terminated with exit code 20"
    assert classify(status_out, 20).kind is FailureKind.NO_MODULE


def test_missing_drbd_utils():
    f = classify("cannot run drbdadm: No such file or directory", None, errno=2, command=("drbdadm",))
    assert f.kind is FailureKind.NO_UTILS
    msg = explain(f, "r0", program="drbdadm")
    one_sentence(msg)
    assert "drbd-utils" in msg and "drbdadm" in msg
    # a shell saying "command not found" counts too
    assert classify("sh: 1: drbdadm: not found", 127).kind is FailureKind.NO_UTILS


def test_timeouts_and_unknown_failures():
    f = classify("", None, timed_out=True)
    assert f.kind is FailureKind.TIMEOUT
    assert "timed out" in explain(f, "r0", action="promotion")
    f = classify("something odd\nthe last line", 3)
    assert f == DrbdFailure(FailureKind.OTHER, None, "the last line")
    assert explain(f, "r0", action="up") == "up of r0 failed: the last line"


def test_not_configured_and_no_metadata():
    f = classify("'r7' not defined in your config (for this host).", 10)
    assert f.kind is FailureKind.NOT_CONFIGURED
    assert "uname -n" in explain(f, "r7")
    f = classify("No valid meta data found", 255)
    assert f.kind is FailureKind.NO_METADATA
    assert "create-md" in explain(f, "r0")


def test_drbd9_refusal_names_its_openers():
    from hasupd.resources.drbd_parse import kernel_holders

    out = ("r0: State change failed: (-12) Device is held open by someone\n"
           "additional info from kernel:\n"
           "/dev/drbd1 opened by mount (pid 3035) at 2024-01-09 14:51:18.123\n"
           "Command 'drbdsetup secondary r0' terminated with exit code 11")
    assert classify(out, 11).kind is FailureKind.HELD_OPEN
    assert kernel_holders(out) == ["pid 3035 (mount)"]
    assert kernel_holders(capture("secondary-refused-mounted.txt")[0]) == []  # 8.4 does not say


def test_module_not_loaded_is_not_module_missing():
    f = classify("Could not connect to 'drbd' generic netlink family", 20, command=("drbdsetup",))
    assert f.kind is FailureKind.NOT_LOADED
    assert "not loaded" in explain(f, "r0", action="status")


def test_drbdadm_up_without_module_is_named_when_the_module_is_absent():
    # the real capture: `drbdadm up r0` on a host without the module
    text = fixture_text("no-module.txt")
    lines = text.splitlines()
    up_out = lines[[i for i, ln in enumerate(lines) if ln.startswith("$ drbdadm up r0")][0] + 1]
    assert up_out == "Command 'drbdsetup new-resource r0 0' terminated with exit code 20"
    f = classify(up_out, 1, command=("drbdadm", "up", "r0"), module_loaded=False)
    assert f.kind is FailureKind.NO_MODULE
    assert "kmod-drbd84" in explain(f, "r0", action="up")
    # with the module loaded the same words are not blamed on it
    assert classify(up_out, 1, module_loaded=True).kind is FailureKind.OTHER
