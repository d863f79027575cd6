"""Pure parts: the sync handshake, the output formats, the sim config."""

import json

import pytest

from hasupd_lab.drbdsim import config, render
from hasupd_lab.drbdsim.render import View
from hasupd_lab.drbdsim.states import decide

from .conftest import fixture


def hello(node, uuid, bitmap=None, disk="UpToDate", discard=False, oos=0, fresh=False, history=None,
          role="Secondary", crashed=False):
    return {"node": node, "uuid": uuid, "bitmap": bitmap, "disk": disk, "discard": discard, "oos": oos,
            "fresh": fresh, "history": history, "role": role, "crashed": crashed}


@pytest.mark.parametrize("a,b,expected", [
    (hello("a", "X"), hello("b", "X"), ("none", None)),
    (hello("a", "Y", bitmap="X", oos=40), hello("b", "X"), ("sync", "a")),
    (hello("a", "X", disk="Outdated"), hello("b", "Y", bitmap="X"), ("sync", "b")),
    (hello("a", "Y", bitmap="X"), hello("b", "Z", bitmap="X"), ("split-brain", None)),
    (hello("a", "Y", bitmap="X"), hello("b", "Z", bitmap="X", discard=True), ("sync", "a")),
    (hello("a", "0", disk="Inconsistent", fresh=True), hello("b", "0", disk="Inconsistent", fresh=True),
     ("none", None)),
    (hello("a", "0", disk="Inconsistent", fresh=True), hello("b", "Q"), ("sync", "b")),
    (hello("a", "X", disk="Inconsistent"), hello("b", "X"), ("sync", "b")),
    (hello("a", "P", history=["H1", "H2"]), hello("b", "Q", history=["H3", "H4"]), ("unrelated", None)),
    # 8.4's rule 100 compares empty history slots too: no common past at all is a split brain
    (hello("a", "P"), hello("b", "Q"), ("split-brain", None)),
    # a crashed Primary kept its generation: it resyncs the peer (its activity log), no split brain
    (hello("a", "X", crashed=True), hello("b", "X"), ("sync", "a")),
    (hello("a", "X"), hello("b", "X", crashed=True), ("sync", "b")),
    # ... unless the peer is Primary now: the Primary's data wins (rule 41)
    (hello("a", "X", crashed=True), hello("b", "X", role="Primary"), ("sync", "b")),
    # the peer took over while it was down: the peer's new generation wins (rule 50)
    (hello("a", "X", crashed=True), hello("b", "Y", bitmap="X", role="Primary"), ("sync", "b")),
    # both started a generation apart from the same one: split brain (rule 90)
    (hello("a", "Z", bitmap="X", crashed=True), hello("b", "Y", bitmap="X"), ("split-brain", None)),
    (hello("a", "P", disk="Diskless"), hello("b", "Q"), ("none", None)),
])
def test_decide(a, b, expected):
    outcome, source, _amount = decide(a, b)
    assert (outcome, source) == expected


def test_decide_never_replaces_a_primarys_mounted_image():
    a = dict(hello("a", "Y", bitmap="X"), role="Secondary", image="/i/a")
    b = dict(hello("b", "Z", bitmap="X", discard=True), role="Primary", image="/i/b")
    assert decide(a, b)[0] == "target-primary"
    b["image"] = "/i/a"  # a diskless Primary re-attaching: same data, resync allowed
    assert decide(a, b)[:2] == ("sync", "a")


def test_decide_resync_amount_is_what_was_written():
    assert decide(hello("a", "Y", bitmap="X", oos=4096), hello("b", "X"))[2] == 4096


def test_proc_drbd_exact_captures():
    v = View("r0", 1, role="Primary", disk="UpToDate", conn="Connected", repl="Established",
             peer_role="Secondary", peer_disk="UpToDate", counters={"al": 8})
    assert render.proc_drbd([v]) == fixture("proc-drbd-8.4.11-primary-connected.txt")
    sb = View("r0", 1, role="Primary", disk="UpToDate", conn="StandAlone",
              counters={"ns": 8217, "nr": 262100, "dw": 270319, "dr": 8216, "al": 19}, oos_kib=32)
    assert render.proc_drbd([sb]) == fixture("proc-drbd-8.4.11-split-brain-standalone.txt")
    assert render.proc_drbd([]) == fixture("proc-drbd-8.4.11-module-only.txt")


def test_proc_drbd_sync_progress_lines():
    v = View("r0", 1, role="Secondary", disk="Inconsistent", conn="Connected", repl="SyncTarget",
             peer_role="Primary", peer_disk="UpToDate", counters={"nr": 30400, "dw": 30400, "al": 8},
             oos_kib=231700, sync_total_kib=262100, speed_kib=2024, want_kib=2040)
    lines = render.proc_drbd([v]).splitlines()
    assert lines[-2] == "\t[=>..................] sync'ed: 11.6% (231700/262100)K"
    assert lines[-1] == "\tfinish: 0:01:54 speed: 2,024 (2,024) want: 2,040 K/sec"
    big = View("r0", 1, conn="Connected", repl="SyncSource", oos_kib=5892828, sync_total_kib=52426460,
               speed_kib=97024)
    assert "sync'ed: 88.8% (5754/51197)M" in render.proc_drbd([big])


def test_status_colours_and_plain():
    v = View("r0", 1, role="Primary", disk="UpToDate", conn="Connected", repl="Established",
             peer_role="Secondary", peer_disk="UpToDate")
    assert render.status(v, color=True) == fixture("status-color.txt")
    assert "\x1b" not in render.status(v, color=False)


def test_events2_now_standalone_has_no_conn_name():
    v = View("r0", 1, role="Primary", disk="UpToDate", conn="StandAlone")
    assert "\n".join(render.events2_now([v]) + ["exists -"]) + "\n" == \
        fixture("events2-now-split-brain-standalone.txt")


def test_config_errors_are_one_line(tmp_path):
    p = tmp_path / "sim.json"
    p.write_text("{")
    with pytest.raises(config.SimConfigError, match=r"sim.json:1:2: "):
        config.load(p)
    p.write_text(json.dumps({"image_dir": "/x", "nodes": {}, "resources": [{"name": "r0", "minor": 1,
                                                                             "hosts": {}}]}))
    with pytest.raises(config.SimConfigError, match=r"exactly two hosts"):
        config.load(p)
    with pytest.raises(config.SimConfigError, match="No such file"):
        config.load(tmp_path / "missing.json")
