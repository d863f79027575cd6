"""The three rules that moved from the engine into the planner's own section (issue 15):
start-failure-is-fatal, stop-failure-latch and stop-on-exit, as pure functions."""

from __future__ import annotations

from dataclasses import replace

from engine_fakes import GROUP, LOCAL, PEER, make_config

from hasupd import planner
from hasupd.model import ActionKind, ClusterView, DrbdStatus, NodeState, ResourceStatus, ResState

S = ResState


def test_start_failure_is_fatal_counts_up_to_the_threshold(tmp_path):
    cfg = make_config(tmp_path, migration_threshold=4)
    assert planner.fail_count_after_failed_start(cfg.group(GROUP)) == 4


def test_stop_failure_latch_only_a_stop_clears_it():
    assert [new for new in S if planner.observation_replaces(S.STOP_FAILED, new)] == [S.STOPPED]
    assert all(planner.observation_replaces(old, new) for old in S if old != S.STOP_FAILED for new in S)


def test_stop_on_exit_reverse_order_running_failed_unknown_then_demote(tmp_path):
    cfg = make_config(tmp_path)
    res = {"res_vip": ResourceStatus(S.STARTED), "res_filesystem": ResourceStatus(S.UNKNOWN),
           "res_httpd": ResourceStatus(S.STOPPED)}
    me = NodeState(LOCAL, alive=True, resources=res, drbd={"r0": DrbdStatus("r0", up=True, role="Primary")})
    view = ClusterView(local=LOCAL, now=1.0, started_at=0.0, nodes={LOCAL: me, PEER: NodeState(PEER)})
    got = [(a.kind, a.resource) for a in planner.stop_on_exit(cfg.group(GROUP), view, "exit")]
    assert got == [(ActionKind.STOP, "res_filesystem"), (ActionKind.STOP, "res_vip"), (ActionKind.DEMOTE, "r0")]
    secondary = replace(view, nodes={LOCAL: replace(me, drbd={"r0": DrbdStatus("r0", role="Secondary")},
                                                    resources={r: ResourceStatus(S.STOPPED) for r in res}),
                                     PEER: NodeState(PEER)})
    assert planner.stop_on_exit(cfg.group(GROUP), secondary, "exit") == []
