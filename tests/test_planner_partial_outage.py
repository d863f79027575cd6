"""Issue 16, "never turn a partial outage into a full one", and the takeover
sentence: planner-level checks (the scenario files show the same cases whole)."""

from __future__ import annotations

from hasupd import planner, simulate
from hasupd.model import ActionKind as K

CFG = simulate._load_config(simulate.reference_path(), "reference", None)
N1, N2 = "primarycentos", "secondarycentos"
NO_CARRIER = {"res_vip": "eth0 has no carrier"}


def plan(view: dict):
    v = simulate.parse_view(CFG, view)
    return planner.decide(CFG, v), planner.explain(CFG, v)["rg_web"]


def kinds(actions) -> list[str]:
    return [f"{a.kind.value} {a.resource or a.group}" for a in actions]


def running_here(**extra) -> dict:
    node = {"drbd": "Primary/Secondary UpToDate/UpToDate Connected", "resources": "started",
            "claims": {"rg_web": 3}}
    node.update(extra)
    return node


# ---------------------------------------------------------------- the takeover sentence


def test_takeover_reason_counts_the_silence_from_its_start():
    actions, sentence = plan({"local": N2, "peer_lost_ago": 0.0007, "nodes": {
        N2: {"drbd": "Secondary/Unknown UpToDate/DUnknown Connecting"},
        N1: {"alive": False, "resources": "started", "claims": {"rg_web": 1}}}})
    claim = next(a for a in actions if a.kind == K.CLAIM)
    # the heartbeat declares the peer dead deadtime (2 s) after its last packet
    assert "silent on every ring for 2s" in claim.reason, claim.reason
    assert "0.0007" not in sentence


# ---------------------------------------------------------------- lost carrier


def test_lost_carrier_moves_the_group_to_a_peer_with_link_without_fail_count_or_ban():
    actions, sentence = plan({"local": N1, "nodes": {N1: running_here(link=NO_CARRIER)}})
    assert kinds(actions) == ["stop res_httpd", "stop res_filesystem", "stop res_vip", "demote r0",
                              "release rg_web"], kinds(actions)
    assert "no carrier" in actions[0].reason and "no fail count, no ban" in actions[0].reason


def test_lost_carrier_keeps_the_group_when_the_peer_cannot_take_it():
    actions, sentence = plan({"local": N1, "bans": {"rg_web": [N2]}, "nodes": {N1: running_here(link=NO_CARRIER)}})
    assert actions == [], kinds(actions)
    assert "waits for the link" in sentence, sentence


def test_lost_carrier_on_both_keeps_the_group_here():
    actions, sentence = plan({"local": N1, "nodes": {N1: running_here(link=NO_CARRIER),
                                                     N2: {"link": NO_CARRIER}}})
    assert actions == [], kinds(actions)
    assert "waits for the link" in sentence, sentence


def test_peer_without_carrier_does_not_start_the_group():
    actions, sentence = plan({"local": N2, "nodes": {N2: {"link": NO_CARRIER}}})
    assert actions == [] and f"{N1} starts it" in sentence, (kinds(actions), sentence)
    actions, _ = plan({"local": N1, "nodes": {N2: {"link": NO_CARRIER}}})
    assert kinds(actions)[0] == "claim rg_web", kinds(actions)


# ---------------------------------------------------------------- threshold without a failover target


def test_threshold_reached_with_the_peer_banned_recovers_in_place_with_a_critical_alert():
    actions, sentence = plan({"local": N2, "bans": {"rg_web": [N1]},
                              "fail_counts": {N2: {"res_httpd": {"count": 1, "ago": 1}}},
                              "nodes": {N2: running_here(resources={"res_vip": "started",
                                                                    "res_filesystem": "started",
                                                                    "res_httpd": "failed"})}})
    assert K.BAN not in [a.kind for a in actions] and K.DEMOTE not in [a.kind for a in actions]
    alert = next(a for a in actions if a.kind == K.ALERT)
    assert alert.severity == "critical" and "cannot fail over" in alert.reason and "banned" in alert.reason
    assert kinds(actions)[-2:] == ["stop res_httpd", "start res_httpd"], kinds(actions)
    assert "cannot fail over" in sentence


def test_repeated_failure_without_a_failover_target_restarts_with_backoff():
    base = {"local": N2, "nodes": {N1: {"alive": False, "resources": "stopped"},
                                   N2: running_here(resources={"res_vip": "started", "res_filesystem": "started",
                                                               "res_httpd": "failed"},
                                                    drbd="Primary/Unknown UpToDate/DUnknown Connecting")},
            "peer_lost_ago": 100, "alerted": ["no_failover:rg_web"]}
    actions, sentence = plan({**base, "fail_counts": {N2: {"res_httpd": {"count": 4, "ago": 1}}}})
    assert actions == [], kinds(actions)
    assert "cannot fail over" in sentence and "restarts it in" in sentence, sentence
    actions, _ = plan({**base, "fail_counts": {N2: {"res_httpd": {"count": 4, "ago": 60}}}})
    assert kinds(actions) == ["stop res_httpd", "start res_httpd"], kinds(actions)


def test_threshold_reached_with_a_good_peer_still_fails_over_and_bans():
    actions, _ = plan({"local": N1, "fail_counts": {N1: {"res_httpd": 1}},
                       "nodes": {N1: running_here(resources={"res_vip": "started", "res_filesystem": "started",
                                                             "res_httpd": "failed"})}})
    assert kinds(actions)[0] == "ban rg_web" and "demote r0" in kinds(actions)


def test_the_banned_peer_agrees_the_group_stays_on_the_failed_node():
    actions, sentence = plan({"local": N1, "bans": {"rg_web": [N1]},
                              "fail_counts": {N2: {"res_httpd": 1}},
                              "nodes": {N1: {"drbd": "Secondary/Primary UpToDate/UpToDate Connected"},
                                        N2: running_here(resources={"res_vip": "started",
                                                                    "res_filesystem": "started",
                                                                    "res_httpd": "failed"},
                                                         drbd="Primary/Secondary UpToDate/UpToDate Connected")}})
    assert actions == [], kinds(actions)
    assert "must give it up" not in sentence and "recovers it in place" in sentence, sentence
