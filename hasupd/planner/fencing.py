"""Fencing (issue 17; ``view.fence``, DESIGN.md rules 5, 6, 12): fence first, the fence race and its
retries, disconnecting DRBD from a fenced peer, the guard drbd without devices, and outdating this
node's copy when the live peer asks."""

from __future__ import annotations

from dataclasses import replace

from hasupd.config import Config
from hasupd.model import Action, ClusterView, FenceFacts, FenceState
from hasupd.planner.facts import Decision, GroupFacts, K, times
from hasupd.planner.ownership import release_stale_claim
from hasupd.planner.rules import Trace, rule

FENCE_RETRY_FIRST = 2.0  # s after the first failed fence; doubles per failure ...
FENCE_RETRY_MAX = 60.0  # ... up to this


def fence_policy(cfg: Config) -> FenceFacts:
    """The configuration's part of ``view.fence`` (the engine and hasupd-simulate start from it).
    ``random_delay`` is the configured maximum here: the engine draws the delay of each loss of
    the peer in [0, maximum]; hasupd-simulate shows the longest wait.  A round-1
    ``split_brain_guard.fence.command`` is one command device of ``cfg.fencing`` already."""
    fencing = cfg.fencing
    if fencing is not None:
        return FenceFacts(devices=bool(fencing.devices), owner_head_start=fencing.owner_head_start,
                          random_delay=fencing.random_delay_max)
    return FenceFacts(devices=False, owner_head_start=5.0)


def guard_price(cfg: Config) -> str:
    """What the split-brain guard costs, in one sentence (``hasupctl check``, README)."""
    mode, f = cfg.split_brain_guard.mode, fence_policy(cfg)
    if mode == "drbd" and not f.devices:
        return ("drbd without fence devices: a live peer outdates itself, but a peer that vanishes (silent, "
                "not fenced) is never taken over automatically (DRBD keeps I/O frozen and refuses to promote: "
                "data before availability); add fence devices (fencing:) for automatic takeover")
    if mode in ("drbd", "fence"):
        how = "a live peer outdates itself; " if mode == "drbd" else ""
        return (f"{mode} with fence devices: {how}a silent peer is fenced (confirmed off) before any takeover; "
                f"the node that runs a group fences at once, the other after owner_head_start "
                f"{f.owner_head_start:g}s; a failed fence means no takeover"
                + ("" if mode == "drbd" else
                   "; in a live partition DRBD does not freeze the owner's writes, so writes it acknowledged while "
                   "apart are lost when the owner loses the fence race (its fence fails or outlasts the head "
                   "start): guard drbd with fence devices keeps them"))
    if mode == "ping":
        return ("ping: takes over while the tie-breaker answers; it does not decide a partition where both "
                "nodes reach it (two primaries possible)")
    return "none: takes over on heartbeat silence alone; a cut network runs the group on both nodes"


def fence_retry_delay(attempts: int) -> float:
    """Wait after the attempts-th failed fence before the next one."""
    return min(FENCE_RETRY_MAX, FENCE_RETRY_FIRST * 2 ** max(0, attempts - 1))


def fence_first_guard(cfg: Config, view: ClusterView) -> bool:
    """The guard fences a silent peer before anything of its groups starts here."""
    mode = cfg.split_brain_guard.mode
    return mode == "fence" or (mode == "drbd" and view.fence.devices)


def peer_fenced(view: ClusterView) -> bool:
    """The silent peer is known off: a fence confirmed it, or its devices report its power off."""
    return not view.peer.alive and (view.fencing == FenceState.SUCCEEDED or view.fence.peer_power == "off")


def holds_any_group(cfg: Config, view: ClusterView) -> bool:
    peer = cfg.peer_of(view.local)
    return any(GroupFacts(cfg, view, g, peer).holds(view.me) for g in cfg.groups)


@rule("R6-fence-race", "The fence race: the node that holds a group fences a silent peer at once (after "
      "random_delay), the other after owner_head_start + random_delay; never without the tie-breaker, never "
      "while DRBD is Connected; a failed fence is retried with a backoff (2 s doubling, at most 60 s).")
def fence_gate(trace: Trace | None, cfg: Config, view: ClusterView, peer: str) -> tuple[bool, str]:
    """(fence the silent peer now?, why / why not yet); trace records that the rule applied."""
    f, local = view.fence, view.local
    if view.fencing == FenceState.PENDING:
        return False, f"fencing {peer} is under way"
    if not f.devices:
        return False, f"no fence device can fence {peer}"
    if view.tiebreaker is False:
        return False, (f"{local} does not reach its tie-breaker, so it does not fence {peer} (if {local} "
                       "is the isolated one, it must be the one that loses)")
    connected = sorted(d.resource for d in view.me.drbd.values() if d.connected)
    if connected:
        return False, (f"DRBD {', '.join(connected)} is still Connected to {peer}: it is alive (only the "
                       "heartbeat is broken), so it is not fenced")
    lost = fence_race_start(cfg, view)
    owner = holds_any_group(cfg, view)
    wait = f.random_delay + (0.0 if owner else f.owner_head_start)
    parts = ([] if owner else [f"owner_head_start {f.owner_head_start:g}s"]) + (
        [f"random delay {f.random_delay:g}s"] if f.random_delay else [])
    delay = f" after {' + '.join(parts)}" if parts else " at once"
    who = f"{local} runs a group, so it fences{delay}" if owner else f"{local} runs no group, so it fences{delay}"
    waited = view.now - lost
    if waited < wait:
        return False, f"{who}: {peer} is fenced in {round(wait - waited, 1):g}s unless it is heard again"
    if view.fencing == FenceState.FAILED and f.attempts and f.last_attempt_at is not None:
        retry = f.last_attempt_at + fence_retry_delay(f.attempts) - view.now
        if retry > 0:
            return False, (f"fencing {peer} failed {times(f.attempts)} ({f.last_message or 'no detail'}); "
                           f"the next attempt is in {round(retry, 1):g}s")
    return True, who


def fence_race_start(cfg: Config, view: ClusterView) -> float:
    """When the fence race for the silent peer started: the later of the heartbeat's and DRBD's loss."""
    lost = view.peer_lost_at if view.peer_lost_at is not None else view.started_at + cfg.heartbeat.initdead
    return lost if view.fence.drbd_lost_at is None else max(lost, view.fence.drbd_lost_at)


def fence_next_attempt(cfg: Config, view: ClusterView) -> float | None:
    """When (monotonic) this node fences its silent peer, for the status: now, the end of its
    wait in the fence race, or of the retry backoff; None when no fence is due (the peer is heard
    or fenced, the guard does not fence) or something other than time holds it (the explain
    sentence says what)."""
    if view.peer.alive or not fence_first_guard(cfg, view) or peer_fenced(view):
        return None
    f = view.fence
    at = fence_race_start(cfg, view) + f.random_delay + (0.0 if holds_any_group(cfg, view)
                                                          else f.owner_head_start)
    if view.fencing == FenceState.FAILED and f.attempts and f.last_attempt_at is not None:
        at = max(at, f.last_attempt_at + fence_retry_delay(f.attempts))
    at = max(at, view.now)
    go, _ = fence_gate(None, cfg, replace(view, now=at), cfg.peer_of(view.local))
    return at if go else None


def fence_alert(f: GroupFacts) -> dict[str, Action]:
    fence = f.view.fence
    if f.view.fencing == FenceState.FAILED and fence.attempts:
        return f.alert(f"fence_failed:{f.peer_name}", "critical", "fence_failed",
                       f"fencing {f.peer_name} failed {times(fence.attempts)} ({fence.last_message or 'no detail'}): "
                       f"no takeover until a fence succeeds; check the devices with `hasupctl fence test`")
    return {}


@rule("R6-drbd-no-devices", "Guard drbd without fence devices: a silent peer is never assumed down; no "
      "takeover unless DRBD knows the peer's copy is Outdated; standing alert no_takeover:GROUP.")
def no_fence_device(f: GroupFacts, gone: str) -> Decision | None:
    d = f.d
    if d is None or d.peer_disk == "Outdated":
        return None  # no DRBD to guard, or DRBD knows the peer cannot promote: no handler call
    why = (f"split_brain_guard drbd has no fence device: DRBD refuses to promote {d.resource} "
           f"while {f.peer_name} may be alive with good data (its fence-peer handler never answers "
           f"'down' on silence), so {f.local} does not take {f.name} over; bring {f.peer_name} back or "
           "configure fencing devices")
    return Decision(f"{f.name} is not running: {f.peer_name} {gone} and {why}.",
                    release_stale_claim(f) + f.drbd_up(),
                    f.alert(f"no_takeover:{f.name}", "critical", "no_takeover", f"{f.peer_name} {gone}: {why}"))


@rule("R6-fence-first", "Guard fence (or drbd with fence devices): nothing of a group starts on a node that "
      "does not hold it until the silent peer is fenced (confirmed off, or reported powered off).")
def fence_first(f: GroupFacts, gone: str) -> Decision | None:
    """Takeover must wait for the peer to be fenced: plan the FENCE when its time has come, say why
    not otherwise.  None: go on with the takeover."""
    cfg, view, name, peer = f.cfg, f.view, f.name, f.peer_name
    mode = cfg.split_brain_guard.mode
    if mode not in ("fence", "drbd") or peer_fenced(view):
        return None
    if mode == "drbd" and not view.fence.devices:
        return no_fence_device(f, gone)
    go, why = fence_gate(f, cfg, view, peer)
    if go:
        again = " again" if view.fencing == FenceState.FAILED else ""
        fence = f"{peer} {gone}: fence it{again} before taking over ({why})"
        return Decision(f"{name} is not running: {fence}.", f.drbd_up(), fence_alert(f), fence)
    return Decision(f"{name} is not running: {peer} {gone}; {why}; no takeover before it is fenced.",
                    f.drbd_up(), fence_alert(f))


@rule("R6-owner-fences", "The node that holds the group fences a silent peer (its head start in the fence "
      "race) and keeps running the group meanwhile.")
def owner_fences_silent_peer(f: GroupFacts, d: Decision) -> Decision | None:
    """d: the decision for the group held here; None when no fence concerns it."""
    view, peer = f.view, f.peer_name
    if (f.peer_alive or not fence_first_guard(f.cfg, view) or peer_fenced(view)
            or not view.fence.devices or any(a.kind in (K.STOP, K.DEMOTE) for a in d.actions)):
        return None
    if not view.peer_ever_seen and view.now - view.started_at < f.cfg.heartbeat.initdead:
        return None
    go, why = fence_gate(f, f.cfg, view, peer)
    alerts = {**d.alerts, **fence_alert(f)}
    if go:
        fence = f"{peer} is silent on every ring while {f.local} runs {f.name}: fence it ({why})"
        return Decision(d.sentence[:-1] + f"; it fences the silent {peer} ({why}).", d.actions, alerts, fence)
    return Decision(d.sentence[:-1] + f"; {peer} is silent: {why}.", d.actions, alerts)


@rule("R6-fence-disconnect", "Once the peer is fenced, a DRBD still Connected to it is disconnected at once "
      "and the takeover goes on (no wait for drbd.peer_dead_wait).")
def disconnect_fenced_peer(f: GroupFacts) -> list[Action]:
    """The peer is fenced but DRBD has not noticed yet (its ping timeout runs): drop the connection
    now rather than wait for drbd.peer_dead_wait."""
    d = f.d
    if d is not None and d.connected and peer_fenced(f.view):
        return [f.act(K.DRBD_DISCONNECT, d.resource, f"{f.peer_name} is fenced (off) but DRBD {d.resource} is "
                      f"still Connected to it: disconnect now instead of waiting for DRBD's ping timeout")]
    return []


@rule("R6-one-fence", "One FENCE per round whatever the number of groups (the first group's reason).")
def one_fence(trace: Trace, decisions: list[Decision]) -> str:
    return next((d.fence for d in decisions if d.fence), "")


@rule("R6-outdate-on-request", "The live peer's fence-peer handler asks this node to outdate its copy: "
      "DRBD_OUTDATE when it is a disconnected Secondary with good data, no split brain, and not promoting.")
def outdate_on_request(trace: Trace, cfg: Config, view: ClusterView, planned: list[Action]) -> list[Action]:
    """The live peer's fence-peer handler asks this node to outdate its copy (guard drbd): do it
    when this node is a disconnected Secondary with good data, so the peer may promote; not in
    maintenance, and not when this node's own plan promotes it (then the peer's request times out
    and its promotion fails: neither promotes on a doubt)."""
    out = []
    if not view.peer.alive or not view.me.settled or view.maintenance:
        return out
    promoting = {a.resource for a in planned if a.kind == K.PROMOTE}
    for res in sorted(view.outdate_requested - promoting):
        d = view.me.drbd.get(res)
        if (d is not None and d.up and d.role == "Secondary" and not d.connected and not d.split_brain
                and d.disk in ("UpToDate", "Consistent")):
            out.append(Action(K.DRBD_OUTDATE, None, res, f"{cfg.peer_of(view.local)} asks {view.local} to "
                              f"outdate its disconnected copy of {res} (DRBD's fence-peer handler there) so that "
                              "it may promote; this copy stays Outdated until it resyncs"))
    return out
