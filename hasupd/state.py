"""Persisted operator state: fail counts, bans, intents, with epochs.

``State`` is plain data; every change is a pure method returning a new
``State``.  ``StateStore`` keeps the current one, loads it from
``STATE_DIR/state.json`` and saves it atomically.

Epochs (a Lamport clock shared by both nodes): every operator change takes
``epoch + 1`` where ``epoch`` is already the maximum of ours and every
peer state merged so far.  So on merge:

* intents (move/pin/clear, target role, standby, maintenance, forced
  promotion) are last-writer-wins registers ``(epoch, value)``; at equal
  epochs a cleared value (None) wins, then the larger value, so both nodes
  pick the same one whatever the order of merges;
* fail counts, bans and blocked groups are a union; each entry carries the
  epoch current when it was recorded (its ``stamp``).  ``cleanup`` leaves a
  record ``(group|*, node|*) -> epoch`` that travels too and drops every
  entry it covers with ``stamp < epoch``: a cleanup on one node clears the
  other node's entries, while a failure recorded after the cleanup was
  known (stamp >= its epoch) survives it.

Merge is commutative, associative and idempotent (tests check it with
hypothesis).  Claims (ownership epochs, rule 12) are local: they travel in
the node's own heartbeat summary, not here.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from hasupd.model import FailCount, MoveIntent

ANY = "*"  # a cleanup record for every group / every node
WIRE_REASON_MAX = 60  # blocked reasons are cut on the wire (the heartbeat packet is small)


@dataclass(frozen=True)
class Fail:
    count: int
    wall: int  # Unix time of the latest failure
    stamp: int  # epoch when recorded (for cleanup records)


Register = tuple  # (epoch, value); value None = cleared


def _newer(a: Register | None, b: Register | None) -> Register | None:
    """The winning register of two: higher epoch; at a tie None, then the larger value."""
    if a is None or b is None:
        return a if b is None else b
    if a[0] != b[0]:
        return a if a[0] > b[0] else b
    if a[1] is None or b[1] is None:
        return a if a[1] is None else b
    return a if json.dumps(a[1]) >= json.dumps(b[1]) else b


def _covers(cleanups: Mapping[tuple[str, str], int], group: str, node: str, stamp: int) -> bool:
    for key in ((group, node), (group, ANY), (ANY, node), (ANY, ANY)):
        epoch = cleanups.get(key)
        if epoch is not None and stamp < epoch:
            return True
    return False


@dataclass(frozen=True)
class State:
    epoch: int = 0
    fails: Mapping[tuple[str, str, str], Fail] = field(default_factory=dict)  # (node, group, resource)
    bans_: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (group, node) -> stamp
    blocked_: Mapping[str, tuple[str, int]] = field(default_factory=dict)  # group -> (reason, stamp)
    cleanups: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (group|*, node|*) -> epoch
    moves: Mapping[str, Register] = field(default_factory=dict)  # group -> (epoch, (node, pin) | None)
    roles: Mapping[str, Register] = field(default_factory=dict)  # group -> (epoch, started|stopped)
    standby_: Mapping[str, Register] = field(default_factory=dict)  # node -> (epoch, bool)
    maintenance_: Register = (0, False)
    forced: Mapping[str, Register] = field(default_factory=dict)  # DRBD resource -> (epoch, bool)
    claims: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # node -> group -> epoch (local)
    cleanup_walls: Mapping[tuple[str, str], int] = field(default_factory=dict)  # when, for display (local)
    # the highest claim epoch this node has ever seen, its own or the peer's (local): a new
    # claim goes above it, so epochs never restart after a clean failover or a restart
    claim_floor: int = 0
    # per group (local, see ClusterView.peer_epochs / synced_epochs and observe_copy)
    peer_epochs: Mapping[str, int] = field(default_factory=dict)
    synced_epochs: Mapping[str, int] = field(default_factory=dict)

    # ------------------------------------------------------------ plain views (what ClusterView takes)

    def fail_counts_view(self) -> dict[tuple[str, str, str], FailCount]:
        return {k: FailCount(f.count, float(f.wall)) for k, f in self.fails.items()}

    def bans_view(self) -> frozenset[tuple[str, str]]:
        return frozenset(self.bans_)

    def moves_view(self) -> dict[str, MoveIntent]:
        return {g: MoveIntent(v[0], e, bool(v[1])) for g, (e, v) in self.moves.items() if v is not None}

    @property
    def target_roles(self) -> dict[str, str]:
        return {g: v for g, (_, v) in self.roles.items() if v is not None}

    @property
    def standby(self) -> dict[str, bool]:
        return {n: bool(v) for n, (_, v) in self.standby_.items()}

    @property
    def maintenance(self) -> bool:
        return bool(self.maintenance_[1])

    @property
    def forced_promotions(self) -> frozenset[str]:
        return frozenset(r for r, (_, v) in self.forced.items() if v)

    @property
    def blocked(self) -> dict[str, str]:
        return {g: reason for g, (reason, _) in self.blocked_.items()}

    def claims_of(self, node: str) -> dict[str, int]:
        return dict(self.claims.get(node, {}))

    # ------------------------------------------------------------ operator changes (epoch + 1)

    def _next(self) -> int:
        return self.epoch + 1

    def move(self, group: str, node: str, pin: bool = False) -> State:
        if self.moves.get(group, (0, None))[1] == (node, bool(pin)):
            return self  # already so: no new epoch, and the operator is told nothing changed
        e = self._next()
        return replace(self, epoch=e, moves={**self.moves, group: (e, (node, bool(pin)))})

    def pin(self, group: str, node: str) -> State:
        return self.move(group, node, pin=True)

    def clear(self, group: str) -> State:
        """Drop a move intent or pin (like `crm resource clear`)."""
        if self.moves.get(group, (0, None))[1] is None:
            return self
        e = self._next()
        return replace(self, epoch=e, moves={**self.moves, group: (e, None)})

    def forget_move(self, group: str) -> State:
        """A one-shot move is done: drop it at its own epoch (a newer move still wins)."""
        reg = self.moves.get(group)
        if reg is None or reg[1] is None:
            return self
        return replace(self, moves={**self.moves, group: (reg[0], None)})

    def set_target_role(self, group: str, role: str) -> State:
        if role not in ("started", "stopped"):
            raise ValueError(f"target role must be started or stopped, not {role!r}")
        if self.target_roles.get(group, "started") == role:
            return self
        e = self._next()
        return replace(self, epoch=e, roles={**self.roles, group: (e, role)})

    def start_group(self, group: str) -> State:
        return self.set_target_role(group, "started")

    def stop_group(self, group: str) -> State:
        return self.set_target_role(group, "stopped")

    def set_standby(self, node: str, on: bool = True) -> State:
        if self.standby.get(node, False) == bool(on):
            return self
        e = self._next()
        return replace(self, epoch=e, standby_={**self.standby_, node: (e, bool(on))})

    def unstandby(self, node: str) -> State:
        return self.set_standby(node, False)

    def set_maintenance(self, on: bool) -> State:
        if self.maintenance == bool(on):
            return self
        e = self._next()
        return replace(self, epoch=e, maintenance_=(e, bool(on)))

    def force_promotion(self, resource: str, on: bool = True) -> State:
        if (resource in self.forced_promotions) == bool(on):
            return self
        e = self._next()
        return replace(self, epoch=e, forced={**self.forced, resource: (e, bool(on))})

    def cleanup(self, group: str | None = None, node: str | None = None, wall: float | None = None) -> State:
        """Clear fail counts, bans and blocked for GROUP (None: all) on NODE (None: both)."""
        e = self._next()
        key = (group or ANY, node or ANY)
        walls = {**self.cleanup_walls, key: int(time.time() if wall is None else wall)}
        return _apply_cleanups(replace(self, epoch=e, cleanups={**self.cleanups, key: e},
                                       cleanup_walls=walls))

    # ------------------------------------------------------------ engine records (no epoch change)

    def record_failure(self, node: str, group: str, resource: str, wall: float,
                       at_least: int | None = None) -> State:
        old = self.fails.get((node, group, resource))
        count = max((old.count if old else 0) + 1, at_least or 0)
        fail = Fail(count, int(wall), self.epoch)
        return replace(self, fails={**self.fails, (node, group, resource): fail})

    def ban(self, group: str, node: str) -> State:
        return replace(self, bans_={**self.bans_, (group, node): self.epoch})

    def block(self, group: str, reason: str) -> State:
        return replace(self, blocked_={**self.blocked_, group: (reason, self.epoch)})

    def record_claim(self, node: str, group: str, epoch: int | None) -> State:
        mine = dict(self.claims.get(node, {}))
        if epoch is None:
            mine.pop(group, None)
        else:
            mine[group] = int(epoch)
        return replace(self, claims={**self.claims, node: mine},
                       claim_floor=max(self.claim_floor, int(epoch or 0)))

    def raise_claim_floor(self, epoch: int) -> State:
        return self if epoch <= self.claim_floor else replace(self, claim_floor=int(epoch))

    def observe_copy(self, group: str, own_claim: int, peer_claim: int, in_sync: bool) -> State:
        """Fold one observation of the group's data copy in.  A claim epoch changes only when a
        node takes the group (or its owner goes on alone after fencing its peer: planner rule 13),
        so "in sync at epoch e" means this copy holds everything written under the claims up to e
        until it was last seen in sync: DRBD Connected with both disks UpToDate (identical data),
        at the latest claim in view, this node's or the peer's.  Only that counts, not a claim of
        this node's own: an owner's synced epoch then says when its peer's copy last matched it."""
        seen = max(self.peer_epochs.get(group, 0), int(peer_claim or 0))
        synced = max(self.synced_epochs.get(group, 0), max(seen, int(own_claim or 0)) if in_sync else 0)
        if seen == self.peer_epochs.get(group, 0) and synced == self.synced_epochs.get(group, 0):
            return self
        return replace(self, peer_epochs={**self.peer_epochs, group: seen},
                       synced_epochs={**self.synced_epochs, group: synced})

    def expire(self, now_wall: float, config_or_timeouts) -> State:
        """Drop fail counts older than their group's failure_timeout (0 = never).
        Takes the Config, or a mapping group -> failure_timeout."""
        failure_timeouts = (failure_timeouts_of(config_or_timeouts) if hasattr(config_or_timeouts, "groups")
                            else config_or_timeouts)
        keep = {k: f for k, f in self.fails.items()
                if not (failure_timeouts.get(k[1], 0) > 0 and now_wall - f.wall > failure_timeouts[k[1]])}
        return self if len(keep) == len(self.fails) else replace(self, fails=keep)

    # ------------------------------------------------------------ wire and file forms

    def to_wire(self, full: bool = False) -> dict:
        """Compact dict for the heartbeat (``full``: the file form, with local parts).

        On the wire every node/group/resource name is an index into the list
        ``n`` (names are long and repeated; the packet must stay small).
        """
        names: list[str] = []

        def n(name: str):
            if full:
                return name
            if name not in names:
                names.append(name)
            return names.index(name)

        d: dict[str, Any] = {"e": self.epoch}
        if self.fails:
            d["f"] = [[n(no), n(g), n(r), f.count, f.wall, f.stamp] for (no, g, r), f in sorted(self.fails.items())]
        if self.bans_:
            d["b"] = [[n(g), n(no), s] for (g, no), s in sorted(self.bans_.items())]
        if self.blocked_:
            d["k"] = [[n(g), reason if full else reason[:WIRE_REASON_MAX], s]
                      for g, (reason, s) in sorted(self.blocked_.items())]
        if self.cleanups:
            d["c"] = [[n(g), n(no), e] for (g, no), e in sorted(self.cleanups.items())]
        if self.moves:
            d["m"] = [[n(g), e] + ([] if v is None else [n(v[0]), int(v[1])])
                      for g, (e, v) in sorted(self.moves.items())]
        if self.roles:
            d["r"] = [[n(g), e, int(v == "started")] for g, (e, v) in sorted(self.roles.items())]
        if self.standby_:
            d["s"] = [[n(no), e, int(v)] for no, (e, v) in sorted(self.standby_.items())]
        if self.maintenance_ != (0, False):
            d["M"] = [self.maintenance_[0], int(self.maintenance_[1])]
        if self.forced:
            d["p"] = [[n(r), e, int(v)] for r, (e, v) in sorted(self.forced.items())]
        if names:
            d["n"] = names
        if full:
            d["v"] = 1
            if self.claims:
                d["claims"] = {no: dict(c) for no, c in self.claims.items()}
            if self.cleanup_walls:
                d["cw"] = [[g, no, w] for (g, no), w in sorted(self.cleanup_walls.items())]
            if self.claim_floor:
                d["cf"] = self.claim_floor
            if self.peer_epochs:
                d["pe"] = dict(self.peer_epochs)
            if self.synced_epochs:
                d["se"] = dict(self.synced_epochs)
        return d

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> State:
        """Parse a dict made by ``to_wire``; raises ValueError on any malformed part."""
        try:
            return cls._from_wire(d)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as e:
            raise ValueError(f"malformed state: {e!r}") from None

    @classmethod
    def _from_wire(cls, d: Mapping[str, Any]) -> State:
        if not isinstance(d, Mapping):
            raise TypeError("not a mapping")

        table = d.get("n", [])
        if not isinstance(table, list):
            raise TypeError("name table is not a list")

        def s(x) -> str:
            if isinstance(x, int) and not isinstance(x, bool) and table:
                x = table[x]
            if not isinstance(x, str):
                raise TypeError(f"expected a name, found {x!r}")
            return x

        def i(x) -> int:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise TypeError(f"expected a number, found {x!r}")
            return int(x)

        def move(v: list):
            return (i(v[1]), None) if len(v) == 2 else (i(v[1]), (s(v[2]), bool(v[3])))

        return cls(
            epoch=i(d.get("e", 0)),
            fails={(s(no), s(g), s(r)): Fail(i(c), i(w), i(st)) for no, g, r, c, w, st in d.get("f", [])},
            bans_={(s(g), s(no)): i(st) for g, no, st in d.get("b", [])},
            blocked_={s(g): (str(reason), i(st)) for g, reason, st in d.get("k", [])},
            cleanups={(s(g), s(no)): i(e) for g, no, e in d.get("c", [])},
            moves={s(v[0]): move(v) for v in d.get("m", [])},
            roles={s(g): (i(e), "started" if i(v) else "stopped") for g, e, v in d.get("r", [])},
            standby_={s(no): (i(e), bool(v)) for no, e, v in d.get("s", [])},
            maintenance_=(i(d["M"][0]), bool(d["M"][1])) if "M" in d else (0, False),
            forced={s(r): (i(e), bool(v)) for r, e, v in d.get("p", [])},
            claims={s(no): {s(g): i(e) for g, e in c.items()} for no, c in d.get("claims", {}).items()},
            cleanup_walls={(s(g), s(no)): i(w) for g, no, w in d.get("cw", [])},
            claim_floor=i(d.get("cf", 0)),
            peer_epochs={s(g): i(e) for g, e in d.get("pe", {}).items()},
            synced_epochs={s(g): i(e) for g, e in d.get("se", {}).items()},
        )


def _apply_cleanups(st: State) -> State:
    c = st.cleanups
    return replace(
        st,
        fails={k: f for k, f in st.fails.items() if not _covers(c, k[1], k[0], f.stamp)},
        bans_={k: stamp for k, stamp in st.bans_.items() if not _covers(c, k[0], k[1], stamp)},
        # a group is blocked cluster-wide: any cleanup of the group (on any node) clears it
        blocked_={g: v for g, v in st.blocked_.items()
                  if not any(v[1] < e for (cg, _), e in c.items() if cg in (g, ANY))},
    )


def _union(a: Mapping, b: Mapping, pick) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = pick(out[k], v) if k in out else v
    return out


def _lww_map(a: Mapping, b: Mapping) -> dict:
    return _union(a, b, _newer)


def merge(local: State, peer: State | Mapping[str, Any]) -> State:
    """Combine our state with the peer's (a State or its wire dict); see the module doc."""
    if not isinstance(peer, State):
        peer = State.from_wire(peer)
    merged = State(
        epoch=max(local.epoch, peer.epoch),
        fails=_union(local.fails, peer.fails, lambda x, y: max(x, y, key=lambda f: (f.stamp, f.wall, f.count))),
        bans_=_union(local.bans_, peer.bans_, max),
        blocked_=_union(local.blocked_, peer.blocked_, lambda x, y: max(x, y, key=lambda v: (v[1], v[0]))),
        cleanups=_union(local.cleanups, peer.cleanups, max),
        moves=_lww_map(local.moves, peer.moves),
        roles=_lww_map(local.roles, peer.roles),
        standby_=_lww_map(local.standby_, peer.standby_),
        maintenance_=_newer(local.maintenance_, peer.maintenance_),
        forced=_lww_map(local.forced, peer.forced),
        claims=local.claims,
        cleanup_walls=local.cleanup_walls,
        claim_floor=local.claim_floor,
        peer_epochs=local.peer_epochs,
        synced_epochs=local.synced_epochs,
    )
    return _apply_cleanups(merged)


def failure_timeouts_of(cfg) -> dict[str, float]:
    return {g.name: g.failure_timeout for g in cfg.groups}


# ---------------------------------------------------------------- the store


class StateStore:
    """The current State, loaded from and saved to one JSON file.

    Mutating helpers replace ``self.state`` with the pure method's result;
    the engine calls ``save()`` after the changes it wants durable.
    """

    def __init__(self, path: str):
        self.path = path
        self.state = State()

    def load(self) -> str | None:
        """Read the file.  Returns a warning (for an alert) when it was corrupt
        or unreadable and has been moved aside; a missing file is a fresh start."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            self.state = State()
            return None
        except OSError as e:
            return self._set_aside(f"cannot read it: {e.strerror}")
        try:
            self.state = State.from_wire(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as e:
            return self._set_aside(str(e).splitlines()[0][:200])
        return None

    def _set_aside(self, why: str) -> str:
        self.state = State()
        aside = f"{self.path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
        try:
            os.replace(self.path, aside)
            where = f"moved aside to {aside}"
        except OSError as e:
            where = f"could not be moved aside ({e.strerror})"
        return (f"state file {self.path} was unusable ({why}); {where}; starting with a fresh state "
                "(fail counts, bans and intents are lost; check `hasupctl status`)")

    def save(self) -> None:
        """Atomic: temp file in the same directory, fsync, rename, fsync the directory."""
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        tmp = f"{self.path}.tmp-{os.getpid()}"
        data = json.dumps(self.state.to_wire(full=True), sort_keys=True, separators=(",", ":")).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # one line per change, so the engine's calls read plainly
    def update(self, new: State) -> bool:
        """Take a state computed elsewhere (the engine's refreshed view); True when it changed."""
        return self._do(new)

    def _do(self, new: State) -> bool:
        changed = new != self.state
        self.state = new
        return changed

    def move(self, group: str, node: str, pin: bool = False) -> bool:
        return self._do(self.state.move(group, node, pin))

    def clear(self, group: str) -> bool:
        return self._do(self.state.clear(group))

    def forget_move(self, group: str) -> bool:
        return self._do(self.state.forget_move(group))

    def start_group(self, group: str) -> bool:
        return self._do(self.state.start_group(group))

    def stop_group(self, group: str) -> bool:
        return self._do(self.state.stop_group(group))

    def standby(self, node: str, on: bool = True) -> bool:
        return self._do(self.state.set_standby(node, on))

    def maintenance(self, on: bool) -> bool:
        return self._do(self.state.set_maintenance(on))

    def force_promotion(self, resource: str, on: bool = True) -> bool:
        return self._do(self.state.force_promotion(resource, on))

    def cleanup(self, group: str | None = None, node: str | None = None) -> bool:
        return self._do(self.state.cleanup(group, node))

    def record_failure(self, node: str, group: str, resource: str, wall: float,
                       at_least: int | None = None) -> bool:
        return self._do(self.state.record_failure(node, group, resource, wall, at_least))

    def ban(self, group: str, node: str) -> bool:
        return self._do(self.state.ban(group, node))

    def block(self, group: str, reason: str) -> bool:
        return self._do(self.state.block(group, reason))

    def record_claim(self, node: str, group: str, epoch: int | None) -> bool:
        return self._do(self.state.record_claim(node, group, epoch))

    def raise_claim_floor(self, epoch: int) -> bool:
        return self._do(self.state.raise_claim_floor(epoch))

    def observe_copy(self, group: str, own_claim: int, peer_claim: int, in_sync: bool) -> bool:
        return self._do(self.state.observe_copy(group, own_claim, peer_claim, in_sync))

    def expire(self, now_wall: float, cfg) -> bool:
        return self._do(self.state.expire(now_wall, cfg))

    def merge_peer(self, peer_wire: Mapping[str, Any]) -> bool:
        """Merge the peer's heartbeat state; False when it was malformed or changed nothing."""
        try:
            return self._do(merge(self.state, peer_wire))
        except ValueError:
            return False
