"""Failure and threshold: a failed resource restarts in place below the migration threshold; at the
threshold the group leaves with a ban, or recovers in place when no other node can run it; a stop
that fails blocks the group (rule 9)."""

from __future__ import annotations

from hasupd.config import Group
from hasupd.model import Action, ResState
from hasupd.planner.eligibility import why_not
from hasupd.planner.facts import RUNNING, Decision, GroupFacts, K, times
from hasupd.planner.rules import rule

# a group that reached its migration threshold where no other node can run it restarts in place,
# waiting this long after the latest failure (by failures beyond the threshold: 0, 1, 2, ...)
RECOVER_BACKOFF = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)


# ---------------------------------------------------------------- stop failure (rule 9)


@rule("R9-stop-failure", "A resource that will not stop here (or a DRBD demote that fails) blocks the group "
      "on both nodes until cleanup (critical alert); on_stop_failure reboot self-fences instead.")
def stop_failure(f: GroupFacts) -> Decision | None:
    stop_failed = [r.name for r, s in zip(f.g.resources, f.states) if s == ResState.STOP_FAILED]
    if stop_failed:
        res, failed = stop_failed[0], f"{stop_failed[0]} failed to stop"
    elif f.d is not None and f.d.role == "Primary" and f.d.demote_failed and not any(s in RUNNING for s in f.states):
        # the driver already stopped the holders and tried `secondary --force` where DRBD has it
        res, failed = f.d.resource, f"DRBD {f.d.resource} could not be demoted ({f.d.demote_failed})"
    else:
        return None
    name = f.name
    if f.g.on_stop_failure == "reboot":
        why = (f"{failed} on {f.local}: reboot this node (on_stop_failure reboot) so that "
               f"{f.peer_name} can take {name} over safely")
        return Decision(f"{name}: {why}.", [Action(K.REBOOT, name, res, why)])
    actions = []
    if name not in f.view.blocked:
        actions.append(f.act(K.BLOCK, res, f"{failed} on {f.local}, which may still hold the data: "
                             f"{name} is blocked on both nodes until `hasupctl cleanup {name}`"))
    return Decision(f"{name} is blocked: {failed} on {f.local}, which may still hold "
                    f"the data, so nothing of it is started, stopped or moved on either node until "
                    f"an operator checks and runs `hasupctl cleanup {name}`.", actions)


@rule("R9-blocked", "A blocked group is frozen on both nodes: nothing of it is started, stopped, promoted "
      "or demoted until `hasupctl cleanup`.")
def blocked(f: GroupFacts) -> Decision | None:
    name = f.name
    if name not in f.view.blocked:
        return None
    return Decision(f"{name} is blocked ({f.view.blocked[name]}): nothing of it is started, "
                    f"stopped or moved on either node until an operator checks and runs "
                    f"`hasupctl cleanup {name}`.")


@rule("R9-peer-stop-failure", "A stop failure the peer reports blocks this node too (unless on_stop_failure "
      "is reboot and the peer is gone: it self-fenced).")
def peer_stop_failure(f: GroupFacts) -> Decision | None:
    failed = [r.name for r, s in zip(f.g.resources, f.peer_states) if s == ResState.STOP_FAILED]
    if not failed or not (f.peer_alive or f.g.on_stop_failure == "block"):
        return None
    return Decision(f"{f.name} is blocked: {failed[0]} failed to stop on {f.peer_name}, "
                    f"which may still hold the data, so nothing of it starts on {f.local} "
                    f"until `hasupctl cleanup {f.name}`.")


# ---------------------------------------------------------------- the threshold (rule 3)


@rule("R3-threshold", "At the migration threshold the group leaves: BAN first (the reason is on record even "
      "if a stop fails), stop in reverse order, demote, release; the peer takes over if it is eligible.")
def threshold_leaves(f: GroupFacts, peer_why: str) -> str:
    """Why the group leaves this node with a ban ("" = it does not): a resource reached the threshold
    here and the peer can run the group (peer_why is "")."""
    fail = f.fail(f.local)
    if fail and not peer_why:
        return (f"{fail[0]} failed {times(fail[1])} on {f.local}, reaching the migration threshold of "
                f"{f.g.migration_threshold}: stop {f.name} here and bar {f.local} from it until cleanup")
    return ""


@rule("R3-no-failover", "The threshold reached where the peer cannot run the group: no ban, keep it here and "
      "restart in place with a backoff, standing critical alert no_failover:GROUP.")
def no_failover(f: GroupFacts) -> str:
    """Why the group cannot fail over although it reached the threshold here ("" = not at it)."""
    return why_not(f, f.peer_name) if f.fail(f.local) else ""


def no_failover_alert(f: GroupFacts, stuck: str) -> dict[str, Action]:
    if not stuck:
        return {}
    fail = f.fail(f.local)
    return f.alert(f"no_failover:{f.name}", "critical", "no_failover",
                   f"{f.name} cannot fail over: {stuck}; {fail[0]} failed {times(fail[1])} on {f.local}, "
                   f"reaching the migration threshold of {f.g.migration_threshold}, so {f.local} keeps "
                   "it and recovers it in place (restarts with backoff)")


def recover_wait(f: GroupFacts, res: str) -> float:
    """Seconds left before an in-place restart of res (backoff by failures beyond the threshold)."""
    fc = f.view.fail_counts.get((f.local, f.name, res))
    if fc is None:
        return 0.0
    beyond = max(0, fc.count - f.g.migration_threshold)
    delay = RECOVER_BACKOFF[min(beyond, len(RECOVER_BACKOFF) - 1)]
    return max(0.0, fc.last_failure_wall + delay - f.view.wall)


@rule("R3-restart-in-place", "A failed resource below the threshold (or a stopped one in the middle of a "
      "running group) restarts in place: those after it stop in reverse order, it stops, then it and those "
      "after it start in order.")
def restart_in_place(f: GroupFacts, k: int, stuck: str) -> Decision:
    """The group runs here but resource k is not started: (re)start from k."""
    name, local, res = f.name, f.local, f.g.resources
    failed = f.states[k] == ResState.FAILED
    if failed and stuck:
        r = res[k].name
        wait = recover_wait(f, r)
        if wait > 0:
            return Decision(f"{name} cannot fail over ({stuck}): {r} failed on {local} "
                            f"({f.count_text(local, r)}); {local} restarts it in {wait:.0f}s (backoff).")
        reason = (f"{r} failed on {local} ({f.count_text(local, r)}) and {name} cannot fail over "
                  f"({stuck}): restart it and what follows it, in place")
    elif failed:
        r = res[k].name
        reason = (f"{r} failed on {local} ({f.count_text(local, r)}): restart it and what "
                  "follows it, in place")
    elif any(s != ResState.STOPPED for s in f.states[k:]):
        reason = (f"{res[k].name} is stopped while later resources of {name} run on {local}: restart "
                  "from it to keep the group order")
    else:
        reason = f"{name} runs on {local} but is incomplete: start the rest in order"
    actions = [f.act(K.STOP, r.name, reason) for r, s in reversed(list(zip(res[k + 1:], f.states[k + 1:])))
               if s in (ResState.STARTED, ResState.FAILED)]
    if failed:
        actions.append(f.act(K.STOP, res[k].name, reason))
    actions += [f.act(K.START, r.name, reason) for r in res[k:]]
    return Decision(f"{name} is (re)starting on {local}: {reason}.", actions)


# ---------------------------------------------------------------- applied by the engine as it acts
# (not decided per round: the executor and the intake ask these when a start fails and when a
# stop-failed resource is observed again)


def fail_count_after_failed_start(group: Group) -> int:
    """Rule start-failure-is-fatal: a start that fails (or raises, or times out) on a node sets the
    resource's fail count there to at least the group's migration_threshold, like Pacemaker's
    start-failure-is-fatal: the group is not started on that node again until the count expires
    or is cleaned up."""
    return group.migration_threshold


def observation_replaces(old: ResState, new: ResState) -> bool:
    """Rule stop-failure-latch: a resource whose stop failed stays STOP_FAILED whatever its watch
    or monitor report next; only a successful stop (or `hasupctl cleanup`) clears it, because the
    node may still hold the data."""
    return old != ResState.STOP_FAILED or new == ResState.STOPPED
