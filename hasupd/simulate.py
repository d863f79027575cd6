"""``hasupd-simulate VIEW.yaml``: what would the planner do? (crm_simulate's analogue)

It reads a configuration and a compact view of the cluster as one node sees
it, runs ``planner.decide`` and ``planner.explain`` and prints the summary
the scenario suite (tests/scenarios/NAME.summary) compares verbatim.

The view file (every key optional except where said)::

    description: one line              # printed first
    rules: [R7-placement, ...]         # the planner rule ids this scenario exercises (checked
                                       #   against the registry: `hasupd-simulate --rules`)
    config: reference                  # the reference setup (conf/hasupd.yaml), or a path
                                       # (relative to this file), or overrides of the base:
    #   config:
    #     base: reference              # or a path; `--config PATH` replaces it
    #     guard: ping                  # ping | fence | drbd | none (ping targets 192.168.0.1,
    #                                  #   fence command /usr/sbin/fence_lab), or a full
    #                                  #   split_brain_guard mapping
    #     group: {migration_threshold: 3}   # merged into the first group
    #     heartbeat: {initdead: 30s}        # any other key: merged into the file's mapping
    view:
      local: primarycentos             # the node that decides (default: the first node)
      now: 1000                        # monotonic seconds (default 1000)
      uptime: 1000                     # since this daemon started (default: now)
      wall: 1000000                    # Unix time, for fail-count expiry (default 1000000)
      peer_ever_seen: true             # default: true unless the peer is down and
                                       #   peer_lost_ago is not given
      peer_lost_ago: 3                 # the heartbeat declared the peer dead 3 s ago
      nodes:
        primarycentos:
          alive: true                  # the peer only (default true); the local node is alive
          settled: true                # finished its start-up probe (default true)
          standby: false
          tiebreaker: true             # its ping-guard result as published (local: view.tiebreaker)
          drbd: Primary/Secondary UpToDate/UpToDate Connected   # role/peer disk/peer connection
                                       #   [replication] [split-brain]; "down" = not up;
                                       #   {r0: "..."} when there are several resources.
                                       #   Default: mirrors the other node's when that one is
                                       #   Connected, else Secondary/Secondary UpToDate/UpToDate
                                       #   Connected (peer alive) or Secondary/Unknown
                                       #   UpToDate/DUnknown Connecting (local, peer down)
          resources: started           # every resource; or {rg_web: started} (a whole group)
                                       #   or {res_httpd: failed}; states: stopped started failed
                                       #   stop_failed unknown; default stopped
          claims: {rg_web: 1}
      fail_counts: {primarycentos: {res_httpd: 1}}   # or {res_httpd: {count: 1, ago: 30}} (ago 10)
      bans: {rg_web: [primarycentos]}
      moves: {rg_web: secondarycentos}               # or {node: .., pin: true, epoch: 3}
      target_roles: {rg_web: stopped}
      maintenance: false
      forced_promotions: [r0]
      tiebreaker: true                 # the local ping guard (default null = not known)
      fencing: none                    # none | pending | succeeded | failed
      fence:                           # the fence facts (default: from the configuration)
        devices: true                  #   fence devices can fence the peer
        owner_head_start: 5            #   a node that runs no group waits this long (s)
        random_delay: 0                #   the random delay drawn for this loss (s)
        drbd_lost_ago: 2               #   DRBD stopped being Connected 2 s ago
        attempts: 2                    #   failed fence attempts since the loss
        last_attempt_ago: 3            #   the last one ended 3 s ago
        last_message: "..."            #   its sentence
        peer_power: "off"              #   the devices' power status of the silent peer (on|off|unknown)
      outdate_requested: [r0]          # the live peer asks this node to outdate r0 (its fence-peer handler)
      blocked: {rg_web: reason}
      alerted: [split_brain:r0]        # standing alerts already raised
      epoch_floor: 4                   # the highest claim epoch this node has ever seen (default 0)
      peer_epochs: {rg_web: 5}         # per group: the highest claim epoch seen held by the peer
      synced_epochs: {rg_web: 3}       # per group: the highest epoch at which this copy was in sync

Exit status: 0, or 78 (EX_CONFIG) with one line on stderr for a malformed
view or configuration.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hasupd import config as configmod
from hasupd import planner
from hasupd.config import Config
from hasupd.model import (
    Action,
    ActionKind,
    ClusterView,
    DrbdStatus,
    FailCount,
    FenceFacts,
    FenceState,
    MoveIntent,
    NodeState,
    ResourceStatus,
    ResState,
)

REFERENCE_CANDIDATES = (
    Path(__file__).resolve().parent.parent / "conf" / "hasupd.yaml",
    Path("/usr/share/doc/hasupd/examples/hasupd.yaml"),
    Path("/usr/share/hasupd/hasupd.yaml"),
)

SOURCE_SCENARIOS = Path(__file__).resolve().parent.parent / "tests" / "scenarios"

GUARDS = {
    "ping": {"mode": "ping", "ping": {"targets": ["192.168.0.1"]}},
    "fence": {"mode": "fence", "fence": {"command": ["/usr/sbin/fence_lab"]}},
    "drbd": {"mode": "drbd"},
    "none": {"mode": "none"},
}

ROLES = ("Primary", "Secondary", "Unknown")
DISKS = ("UpToDate", "Consistent", "Outdated", "Inconsistent", "Diskless", "Failed", "DUnknown",
         "Attaching", "Negotiating")
CONNECTIONS = ("StandAlone", "Connecting", "Connected", "Disconnecting", "Unconnected", "Timeout",
               "BrokenPipe", "NetworkFailure", "ProtocolError", "TearDown")
REPLICATIONS = ("Off", "Established", "SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT",
                "WFBitMapS", "WFBitMapT", "StartingSyncS", "StartingSyncT", "VerifyS", "VerifyT")


class ViewError(Exception):
    """A malformed view file: the message says where and what."""


# ---------------------------------------------------------------- loading


def reference_path() -> Path:
    for p in REFERENCE_CANDIDATES:
        if p.exists():
            return p
    return Path(configmod.DEFAULT_PATH)


@dataclass(frozen=True)
class Scenario:
    description: str
    config: Config
    view: ClusterView
    rules: tuple[str, ...]  # the rule ids it names (each one in planner.RULES)


def load(path: str | Path, base_config: str | Path | None = None) -> tuple[str, Config, ClusterView]:
    """(description, config, view) from a view file; ViewError / ConfigError when malformed."""
    sc = load_scenario(path, base_config)
    return sc.description, sc.config, sc.view


def load_scenario(path: str | Path, base_config: str | Path | None = None) -> Scenario:
    """The whole view file, with the rule ids it names; ViewError / ConfigError when malformed."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ViewError(f"{path}: cannot read it: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ViewError(f"{path}{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(doc, dict):
        raise ViewError(f"{path}: expected a mapping with description, config and view")
    _check_keys(path, "", doc, ("description", "rules", "config", "view"))
    rules = _rule_ids(path, doc.get("rules", []))
    cfg = _load_config(path, doc.get("config", "reference"), base_config)
    view = parse_view(cfg, doc.get("view") or {}, str(path))
    return Scenario(str(doc.get("description", "")), cfg, view, rules)


def _rule_ids(path: Path, v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ViewError(f"{path}: rules: expected a list of rule ids (see `hasupd-simulate --rules`)")
    for x in v:
        if x not in planner.RULES:
            hint = configmod._did_you_mean(x, tuple(planner.RULES))
            raise ViewError(f"{path}: rules: {x}: unknown rule id{hint} (see `hasupd-simulate --rules`)")
    return tuple(v)


def _check_keys(path, where: str, d: dict, allowed: tuple[str, ...]) -> None:
    for k in d:
        if k not in allowed:
            hint = configmod._did_you_mean(str(k), allowed)
            raise ViewError(f"{path}: {where}{k}: unknown key{hint} (allowed: {', '.join(allowed)})")


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v)
        return out
    return over


def _load_config(path: Path, spec: Any, base_config) -> Config:
    def read(p: Path) -> tuple[str, dict]:
        try:
            text = p.read_text()
        except OSError as e:
            raise ViewError(f"{path}: config: cannot read {p}: {e.strerror}") from None
        return text, yaml.safe_load(text)

    overrides: dict = {}
    if isinstance(spec, dict):
        overrides = dict(spec)
        spec = overrides.pop("base", "reference")
    if not isinstance(spec, str):
        raise ViewError(f"{path}: config: expected 'reference', a path or a mapping of overrides")
    if base_config is not None:
        base = Path(base_config)
    elif spec == "reference":
        base = reference_path()
    else:
        base = (path.parent / spec) if not Path(spec).is_absolute() else Path(spec)
    text, data = read(base)
    if not overrides:
        return configmod.loads(text, str(base))
    guard = overrides.pop("guard", None)
    if guard is not None:
        if isinstance(guard, str):
            if guard not in GUARDS:
                raise ViewError(f"{path}: config.guard: expected one of {', '.join(GUARDS)}, found {guard!r}")
            guard = GUARDS[guard]
        data["split_brain_guard"] = guard
    group = overrides.pop("group", None)
    if group is not None:
        if not isinstance(group, dict):
            raise ViewError(f"{path}: config.group: expected a mapping merged into the first group")
        data["groups"][0] = _merge(data["groups"][0], group)
    data = _merge(data, overrides)
    return configmod.loads(yaml.safe_dump(data, sort_keys=False), f"{path} (config)")


def _drbd_status(where: str, name: str, text: Any) -> DrbdStatus:
    if isinstance(text, dict):
        try:
            return DrbdStatus(resource=name, **text)
        except TypeError as e:
            raise ViewError(f"{where}: {e}") from None
    if not isinstance(text, str):
        raise ViewError(f"{where}: expected 'Role/PeerRole Disk/PeerDisk Connection', found {text!r}")
    if text.strip() == "down":
        return DrbdStatus(name, up=False)
    words = text.split()
    if len(words) < 3 or "/" not in words[0] or "/" not in words[1]:
        raise ViewError(f"{where}: expected 'Role/PeerRole Disk/PeerDisk Connection [Replication] "
                        f"[split-brain]' or 'down', found {text!r}")
    role, peer_role = words[0].split("/", 1)
    disk, peer_disk = words[1].split("/", 1)
    for value, allowed, what in ((role, ROLES, "role"), (peer_role, ROLES, "peer role"),
                                 (disk, DISKS, "disk state"), (peer_disk, DISKS, "peer disk state"),
                                 (words[2], CONNECTIONS, "connection state")):
        if value not in allowed:
            raise ViewError(f"{where}: {value!r} is not a DRBD {what} (one of {', '.join(allowed)})")
    replication = "Established" if words[2] == "Connected" else "Off"
    split_brain = False
    for extra in words[3:]:
        if extra == "split-brain":
            split_brain = True
        elif extra in REPLICATIONS:
            replication = extra
        else:
            raise ViewError(f"{where}: unexpected {extra!r} (a replication state or split-brain)")
    return DrbdStatus(name, up=True, role=role, peer_role=peer_role, disk=disk, peer_disk=peer_disk,
                      connection=words[2], replication=replication, split_brain=split_brain)


def _mirror(d: DrbdStatus) -> DrbdStatus:
    return DrbdStatus(d.resource, up=True, role=d.peer_role, peer_role=d.role, disk=d.peer_disk,
                      peer_disk=d.disk, connection=d.connection, replication=_MIRROR_REPL.get(
                          d.replication, d.replication), split_brain=d.split_brain)


_MIRROR_REPL = {"SyncSource": "SyncTarget", "SyncTarget": "SyncSource", "PausedSyncS": "PausedSyncT",
                "PausedSyncT": "PausedSyncS", "WFBitMapS": "WFBitMapT", "WFBitMapT": "WFBitMapS",
                "StartingSyncS": "StartingSyncT", "StartingSyncT": "StartingSyncS", "VerifyS": "VerifyT",
                "VerifyT": "VerifyS"}


def _mapping(where: str, v: Any, what: str = "a mapping") -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ViewError(f"{where}: expected {what}, found {v!r}")
    return v


def _number(where: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ViewError(f"{where}: expected a number of seconds, found {v!r}")
    return float(v)


def _state(where: str, v: Any) -> ResState:
    try:
        return ResState(str(v))
    except ValueError:
        raise ViewError(f"{where}: {v!r} is not a resource state "
                        f"({', '.join(s.value for s in ResState)})") from None


def parse_view(cfg: Config, v: dict, path: str = "view") -> ClusterView:
    where = f"{path}: view."
    if not isinstance(v, dict):
        raise ViewError(f"{path}: view: expected a mapping")
    _check_keys(path, "view.", v, (
        "local", "now", "uptime", "wall", "peer_ever_seen", "peer_lost_ago", "nodes", "fail_counts", "bans",
        "moves", "target_roles", "maintenance", "forced_promotions", "tiebreaker", "fencing", "blocked",
        "alerted", "epoch_floor", "fence", "outdate_requested", "peer_epochs", "synced_epochs"))
    names = cfg.node_names()
    local = v.get("local", names[0])
    if local not in names:
        raise ViewError(f"{where}local: {local!r} is not a node of the configuration ({', '.join(names)})")
    peer = cfg.peer_of(local)
    now = _number(where + "now", v.get("now", 1000))
    uptime = _number(where + "uptime", v.get("uptime", now))
    wall = _number(where + "wall", v.get("wall", 1_000_000))
    tiebreaker = v.get("tiebreaker")
    if tiebreaker not in (None, True, False):
        raise ViewError(f"{where}tiebreaker: expected true, false or null")
    group_of = {r.name: g for g in cfg.groups for r in g.resources}
    all_resources = [r.name for g in cfg.groups for r in g.resources]

    raw_nodes = _mapping(where + "nodes", v.get("nodes"))
    for n in raw_nodes:
        if n not in names:
            raise ViewError(f"{where}nodes.{n}: not a node of the configuration ({', '.join(names)})")
    node_keys = ("alive", "settled", "standby", "tiebreaker", "drbd", "resources", "claims", "rings", "link")
    peer_alive = bool(_mapping(f"{where}nodes.{peer}", raw_nodes.get(peer)).get("alive", True))

    # DRBD: given, or mirrored from the other node when that one is Connected, or a default
    drbd_given: dict[str, dict[str, DrbdStatus]] = {}
    for n in names:
        raw = _mapping(f"{where}nodes.{n}", raw_nodes.get(n))
        _check_keys(path, f"view.nodes.{n}.", raw, node_keys)
        spec = raw.get("drbd")
        if spec is None:
            continue
        res_names = [r.name for r in cfg.drbd.resources]
        if isinstance(spec, dict) and set(spec) <= set(res_names) and spec:
            items = spec.items()
        elif len(res_names) == 1:
            items = [(res_names[0], spec)]
        else:
            raise ViewError(f"{where}nodes.{n}.drbd: give one status per DRBD resource ({', '.join(res_names)})")
        drbd_given[n] = {name: _drbd_status(f"{where}nodes.{n}.drbd", name, s) for name, s in items}

    def drbd_for(n: str) -> dict[str, DrbdStatus]:
        out = {}
        other = cfg.peer_of(n)
        for r in cfg.drbd.resources:
            mine = drbd_given.get(n, {}).get(r.name)
            theirs = drbd_given.get(other, {}).get(r.name)
            if mine is None and theirs is not None and theirs.connection == "Connected":
                mine = _mirror(theirs)
            if mine is None and peer_alive:
                mine = DrbdStatus(r.name, True, "Secondary", "Secondary", "UpToDate", "UpToDate",
                                  "Connected", "Established")
            if mine is None and n == local:
                mine = DrbdStatus(r.name, True, "Secondary", "Unknown", "UpToDate", "DUnknown", "Connecting")
            if mine is not None:
                out[r.name] = mine
        return out

    nodes = {}
    for n in names:
        raw = _mapping(f"{where}nodes.{n}", raw_nodes.get(n))
        w = f"{where}nodes.{n}."
        resources = {r: ResourceStatus(ResState.STOPPED) for r in all_resources}
        spec = raw.get("resources")
        if isinstance(spec, str):
            resources = {r: ResourceStatus(_state(w + "resources", spec)) for r in all_resources}
        else:
            for key, state in _mapping(w + "resources", spec).items():
                g = cfg.group(key)
                if g is not None:
                    for r in g.resources:
                        resources[r.name] = ResourceStatus(_state(f"{w}resources.{key}", state))
                elif key in group_of:
                    resources[key] = ResourceStatus(_state(f"{w}resources.{key}", state))
                else:
                    raise ViewError(f"{w}resources.{key}: no such group or resource"
                                    f"{configmod._did_you_mean(str(key), all_resources)}")
        claims = {}
        for g, e in _mapping(w + "claims", raw.get("claims")).items():
            if cfg.group(g) is None or isinstance(e, bool) or not isinstance(e, int):
                raise ViewError(f"{w}claims.{g}: expected a group name and an epoch number")
            claims[g] = e
        tb = raw.get("tiebreaker", tiebreaker if n == local else None)
        alive = True if n == local else bool(raw.get("alive", True))
        nodes[n] = NodeState(
            name=n, alive=alive, rings=tuple(bool(x) for x in raw.get("rings", [alive] * len(cfg.heartbeat.rings))),
            standby=bool(raw.get("standby", False)), drbd=drbd_for(n), resources=resources, claims=claims,
            settled=bool(raw.get("settled", True)), tiebreaker=None if tb is None else bool(tb),
            link_down=_link_down(w + "link", raw.get("link"), group_of))

    lost_ago = v.get("peer_lost_ago")
    if lost_ago is not None and peer_alive:
        raise ViewError(f"{where}peer_lost_ago: the peer is alive (set nodes.{peer}.alive: false)")
    peer_lost_at = None if lost_ago is None else now - _number(where + "peer_lost_ago", lost_ago)
    peer_ever_seen = bool(v.get("peer_ever_seen", peer_alive or lost_ago is not None))

    fail_counts = {}
    for n, per in _mapping(where + "fail_counts", v.get("fail_counts")).items():
        if n not in names:
            raise ViewError(f"{where}fail_counts.{n}: not a node")
        for r, spec in _mapping(f"{where}fail_counts.{n}", per).items():
            if r not in group_of:
                raise ViewError(f"{where}fail_counts.{n}.{r}: no such resource")
            count, ago = (spec, 10) if not isinstance(spec, dict) else (spec.get("count"), spec.get("ago", 10))
            if isinstance(count, bool) or not isinstance(count, int):
                raise ViewError(f"{where}fail_counts.{n}.{r}: expected a count (or {{count, ago}})")
            fail_counts[(n, group_of[r].name, r)] = FailCount(count, wall - _number(where + "fail_counts", ago))

    bans = set()
    for g, on in _mapping(where + "bans", v.get("bans")).items():
        for n in ([on] if isinstance(on, str) else on or []):
            if cfg.group(g) is None or n not in names:
                raise ViewError(f"{where}bans.{g}: expected a group and a list of nodes")
            bans.add((g, n))

    moves = {}
    for g, spec in _mapping(where + "moves", v.get("moves")).items():
        spec = {"node": spec} if isinstance(spec, str) else _mapping(f"{where}moves.{g}", spec)
        if cfg.group(g) is None or spec.get("node") not in names:
            raise ViewError(f"{where}moves.{g}: expected a group and a node (or {{node, pin, epoch}})")
        moves[g] = MoveIntent(spec["node"], int(spec.get("epoch", 1)), bool(spec.get("pin", False)))

    target_roles = {}
    for g, role in _mapping(where + "target_roles", v.get("target_roles")).items():
        if cfg.group(g) is None or role not in ("started", "stopped"):
            raise ViewError(f"{where}target_roles.{g}: expected a group and started or stopped")
        target_roles[g] = role

    try:
        fencing = FenceState(str(v.get("fencing", "none")))
    except ValueError:
        raise ViewError(f"{where}fencing: expected none, pending, succeeded or failed") from None
    blocked = {str(g): str(r) for g, r in _mapping(where + "blocked", v.get("blocked")).items()}
    epoch_floor = v.get("epoch_floor", 0)
    if isinstance(epoch_floor, bool) or not isinstance(epoch_floor, int) or epoch_floor < 0:
        raise ViewError(f"{where}epoch_floor: expected a claim epoch (a whole number >= 0)")
    fence = _fence_facts(cfg, _mapping(where + "fence", v.get("fence")), now, path)
    epochs = {k: _group_epochs(cfg, where + k, v.get(k)) for k in ("peer_epochs", "synced_epochs")}
    outdate_requested = v.get("outdate_requested") or []
    if not isinstance(outdate_requested, list) or not set(outdate_requested) <= {r.name for r in cfg.drbd.resources}:
        raise ViewError(f"{where}outdate_requested: expected a list of DRBD resources")
    return ClusterView(
        fence=fence, outdate_requested=frozenset(outdate_requested),
        local=local, now=now, started_at=now - uptime, nodes=nodes, peer_ever_seen=peer_ever_seen,
        peer_lost_at=peer_lost_at, wall=wall, fail_counts=fail_counts, bans=frozenset(bans), moves=moves,
        target_roles=target_roles, maintenance=bool(v.get("maintenance", False)),
        forced_promotions=frozenset(v.get("forced_promotions") or ()), tiebreaker=tiebreaker,
        fencing=fencing, blocked=blocked, alerted=frozenset(v.get("alerted") or ()), epoch_floor=epoch_floor,
        **epochs)


def _group_epochs(cfg: Config, where: str, raw) -> dict[str, int]:
    """group -> claim epoch (peer_epochs, synced_epochs)."""
    out = {}
    for g, e in _mapping(where, raw).items():
        if cfg.group(g) is None or isinstance(e, bool) or not isinstance(e, int) or e < 0:
            raise ViewError(f"{where}.{g}: expected a group and a claim epoch (a whole number >= 0)")
        out[g] = e
    return out


def _fence_facts(cfg: Config, raw: dict, now: float, path: str) -> FenceFacts:
    where = f"{path}: view.fence."
    _check_keys(path, "view.fence.", raw, ("devices", "owner_head_start", "random_delay", "drbd_lost_ago",
                                            "attempts", "last_attempt_ago", "last_message", "peer_power"))
    f = planner.fence_policy(cfg)
    ago = {k: now - _number(where + k, raw[k]) for k in ("drbd_lost_ago", "last_attempt_ago") if k in raw}
    attempts = raw.get("attempts", 0)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        raise ViewError(f"{where}attempts: expected a whole number >= 0")
    power = str(raw.get("peer_power", ""))
    if power not in ("", "on", "off", "unknown"):
        raise ViewError(f"{where}peer_power: expected on, off or unknown")
    return FenceFacts(
        devices=bool(raw.get("devices", f.devices)),
        owner_head_start=_number(where + "owner_head_start", raw.get("owner_head_start", f.owner_head_start)),
        random_delay=_number(where + "random_delay", raw.get("random_delay", f.random_delay)),
        drbd_lost_at=ago.get("drbd_lost_ago"), attempts=attempts, last_attempt_at=ago.get("last_attempt_ago"),
        last_message=str(raw.get("last_message", "")), peer_power=power)


def _describe_fence(cfg: Config, view: ClusterView, peer: str) -> list[str]:
    f, mode = view.fence, cfg.split_brain_guard.mode
    if mode != "fence" and not f.devices and view.fencing == FenceState.NONE and not f.peer_power:
        return []
    text = f"fencing of {peer}: {view.fencing.value}"
    if f.attempts:
        text += f" ({f.attempts} failed"
        if f.last_attempt_at is not None:
            text += f", the last {_secs(view.now - f.last_attempt_at)} ago"
        text += f": {f.last_message})" if f.last_message else ")"
    text += "; " + (f"devices yes, owner_head_start {_secs(f.owner_head_start)}, random delay "
                    f"{_secs(f.random_delay)}" if f.devices else "no fence devices")
    if f.drbd_lost_at is not None:
        text += f"; DRBD lost {peer} {_secs(view.now - f.drbd_lost_at)} ago"
    if f.peer_power:
        text += f"; its power: {f.peer_power}"
    return [text]
def _link_down(where: str, v: Any, group_of: dict) -> dict[str, str]:
    """nodes.N.link: {VIP resource: why its interface cannot carry it}, e.g. "eth0 has no carrier"."""
    out = {}
    for r, why in _mapping(where, v).items():
        if r not in group_of:
            raise ViewError(f"{where}.{r}: no such resource")
        out[str(r)] = str(why)
    return out


# ---------------------------------------------------------------- the summary


def _secs(x: float) -> str:
    return f"{x:g}s"


def describe_config(cfg: Config) -> list[str]:
    hb, guard = cfg.heartbeat, cfg.split_brain_guard
    lines = [f"Config: nodes {cfg.nodes[0].name}, {cfg.nodes[1].name}; deadtime {_secs(hb.deadtime)}, "
             f"initdead {_secs(hb.initdead)}; drbd peer_dead_wait {_secs(cfg.drbd.peer_dead_wait)}; "
             f"split_brain_guard {guard.mode}"]
    for g in cfg.groups:
        stick = "INFINITY" if math.isinf(g.stickiness) else f"{g.stickiness:g}"
        order = " -> ".join(r.name for r in g.resources)
        lines.append(f"  group {g.name}: {'drbd ' + g.drbd + ' then ' if g.drbd else ''}{order}; "
                     f"stickiness {stick}, migration_threshold {g.migration_threshold}, failure_timeout "
                     f"{_secs(g.failure_timeout)}, on_stop_failure {g.on_stop_failure}"
                     + (f", preferred_node {g.preferred_node}" if g.preferred_node else ""))
    return lines


def _drbd_text(d: DrbdStatus) -> str:
    if not d.up:
        return "down"
    text = f"{d.role}/{d.peer_role} {d.disk}/{d.peer_disk} {d.connection}"
    if d.replication not in ("Off", "Established"):
        text += f" {d.replication}"
    # DRBD 9's promotion facts, when reported
    for name, value in (("may_promote", d.may_promote), ("quorum", d.quorum)):
        if value is not None:
            text += f" {name}:{'yes' if value else 'no'}"
    if d.suspended_reason:
        text += f" suspended:{d.suspended_reason}"
    if d.peer_client:
        text += " peer-client:yes"
    if d.demote_failed:
        text += " demotion-refused"
    return text + (" split-brain" if d.split_brain else "")


def describe_view(cfg: Config, view: ClusterView) -> list[str]:
    lines = [f"Current state, as {view.local} sees it (now {view.now:g}, up {_secs(view.now - view.started_at)}):"]
    peer = cfg.peer_of(view.local)
    for n in cfg.node_names():
        ns = view.nodes[n]
        if n == view.local:
            status = "local, online"
        elif ns.alive:
            status = "online"
        elif view.peer_lost_at is not None:
            status = f"OFFLINE (heartbeat lost {_secs(view.now - view.peer_lost_at)} ago; last report below)"
        elif view.peer_ever_seen:
            status = "OFFLINE (last report below)"
        else:
            status = "OFFLINE (never heard since start-up)"
        flags = [status, "settled" if ns.settled else "still probing"]
        if ns.standby:
            flags.append("STANDBY")
        if cfg.split_brain_guard.mode == "ping":
            flags.append({True: "tie-breaker reachable", False: "tie-breaker UNREACHABLE",
                          None: "tie-breaker not known"}[ns.tiebreaker])
        lines.append(f"  {n}: {', '.join(flags)}")
        for r in cfg.drbd.resources:
            d = ns.drbd.get(r.name)
            lines.append(f"    drbd {r.name}: {_drbd_text(d) if d else 'no report'}")
        for g in cfg.groups:
            states = [ns.resources.get(r.name, ResourceStatus()).state for r in g.resources]
            if len(set(states)) == 1:
                text = f"all {states[0].value}"
            else:
                text = ", ".join(f"{r.name} {s.value}" for r, s in zip(g.resources, states))
            if g.name in ns.claims:
                text += f"; claim epoch {ns.claims[g.name]}"
            lines.append(f"    {g.name}: {text}")
        for r, why in sorted(ns.link_down.items()):
            lines.append(f"    link of {r}: {why}")
    extra = []
    for (n, _g, r), fc in sorted(view.fail_counts.items()):
        extra.append(f"fail count {r} on {n}: {fc.count} (last {_secs(view.wall - fc.last_failure_wall)} ago)")
    for g, n in sorted(view.bans):
        extra.append(f"ban: {g} not on {n}")
    for g, m in sorted(view.moves.items()):
        extra.append(f"{'pin' if m.pin else 'move'}: {g} to {m.node} (epoch {m.epoch})")
    for g, role in sorted(view.target_roles.items()):
        extra.append(f"target role: {g} {role}")
    for g, why in sorted(view.blocked.items()):
        extra.append(f"blocked: {g} ({why})")
    if view.forced_promotions:
        extra.append(f"forced promotion: {', '.join(sorted(view.forced_promotions))}")
    if view.maintenance:
        extra.append("MAINTENANCE mode")
    extra += _describe_fence(cfg, view, peer)
    if view.outdate_requested:
        extra.append(f"{peer} asks {view.local} to outdate: {', '.join(sorted(view.outdate_requested))}")
    if view.alerted:
        extra.append(f"alerted: {', '.join(sorted(view.alerted))}")
    if view.epoch_floor:
        extra.append(f"highest claim epoch ever seen here: {view.epoch_floor}")
    for g in sorted(set(view.peer_epochs) | set(view.synced_epochs)):
        extra.append(f"{g}: {peer} seen holding it at epoch {view.peer_epochs.get(g, 0)}, this copy in sync "
                     f"at epoch {view.synced_epochs.get(g, 0)}")
    lines += [f"  {x}" for x in extra]
    return lines


def describe_action(a: Action) -> str:
    k = a.kind
    if k == ActionKind.CLAIM:
        what = f"claim {a.group} (epoch {a.epoch})"
    elif k in (ActionKind.RELEASE, ActionKind.BAN, ActionKind.BLOCK, ActionKind.FORGET_MOVE):
        what = f"{k.value} {a.group}"
    elif k == ActionKind.PROMOTE:
        what = f"promote {a.resource}" + (" --force" if a.force else "")
    elif k == ActionKind.ALERT:
        what = f"alert {a.severity} {a.event}" + (f" [{a.key}]" if a.key else "")
    elif k == ActionKind.FORGET_ALERT:
        what = f"forget_alert [{a.key}]"
    elif k == ActionKind.FENCE:
        what = f"fence {a.resource}"
    elif k == ActionKind.REBOOT:
        what = "reboot (self-fence)"
    else:
        what = f"{k.value} {a.resource}"
    return what


def summary(cfg: Config, view: ClusterView, description: str = "") -> str:
    actions = planner.decide(cfg, view)
    explained = planner.explain(cfg, view)
    lines = []
    if description:
        lines += [f"Scenario: {description}", ""]
    lines += describe_config(cfg) + [""] + describe_view(cfg, view) + [""]
    lines.append(f"Actions for {view.local}:" if actions else f"Actions for {view.local}: none")
    previous = None
    for i, a in enumerate(actions, 1):
        lines.append(f"  {i}. {describe_action(a)}")
        if a.reason != previous:  # a run of actions with one reason shows it once
            lines.append(f"       why: {a.reason}")
        previous = a.reason
    lines += ["", "Explain:"]
    for g in cfg.groups:
        lines.append(f"  {explained.get(g.name, '(no sentence)')}")
    return "\n".join(lines) + "\n"


def rule_order(rule_id: str) -> tuple[int, str]:
    """R2-... before R10-...: by the DESIGN.md rule number, then by name."""
    number = rule_id[1:].split("-", 1)[0]
    return (int(number) if number.isdigit() else 0, rule_id)


def scenarios_naming(scenario_dir: Path) -> dict[str, list[str]]:
    """Rule id -> the scenarios (file stems) in scenario_dir that name it."""
    named: dict[str, list[str]] = {r: [] for r in planner.RULES}
    for p in sorted(scenario_dir.glob("*.yaml")):
        for r in load_scenario(p).rules:
            named[r].append(p.stem)
    return named


def rule_index(scenario_dir: Path | None) -> str:
    """`hasupd-simulate --rules`: each rule id, its statement, its code and the scenarios naming it."""
    named = scenarios_naming(scenario_dir) if scenario_dir is not None else {}
    lines = []
    for rule_id in sorted(planner.RULES, key=rule_order):
        r = planner.RULES[rule_id]
        lines += [rule_id, f"  {r.statement}", f"  code: {r.code}"]
        if scenario_dir is not None:
            names = named[rule_id]
            lines.append(f"  scenarios ({len(names)}): {', '.join(names) if names else 'NONE'}")
    if scenario_dir is None:
        lines.append("(no scenario directory: pass --scenarios DIR to list the scenarios naming each rule)")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hasupd-simulate",
                                 description="Print what the planner decides for a view (like crm_simulate).")
    ap.add_argument("view", nargs="?", help="a view file (see `pydoc hasupd.simulate` for its format)")
    ap.add_argument("--rules", action="store_true",
                    help="print the planner's rules: id, statement, code (module:function), the scenarios "
                         "naming it")
    ap.add_argument("--scenarios", help="the scenario directory for --rules (default: the source tree's "
                                        "tests/scenarios when there is one)")
    ap.add_argument("--config", help="the configuration to use instead of the view's base (e.g. "
                                     "/etc/hasupd/hasupd.yaml)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not args.rules and args.view is None:
        ap.error("a view file is needed (or --rules)")
    try:
        if args.rules:
            scenario_dir = Path(args.scenarios) if args.scenarios else SOURCE_SCENARIOS
            text = rule_index(scenario_dir if scenario_dir.is_dir() else None)
        else:
            description, cfg, view = load(args.view, args.config)
            text = summary(cfg, view, description)
    except ViewError as e:
        print(f"hasupd-simulate: {e}", file=sys.stderr)
        return configmod.EX_CONFIG
    except configmod.ConfigError as e:
        print(f"hasupd-simulate: {e}", file=sys.stderr)
        return configmod.EX_CONFIG
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
