"""A node's report in its heartbeat, compact (wire version 2, payload key ``"N"``).

The first form (``"node"``: ``model.to_dict(NodeState)``) spelt every field of every resource,
with a monotonic ``since`` per resource that only the sender can read: 100 groups took 2.7 kB
compressed, more than one datagram.  This one says the same facts in what zlib packs best:

    {"n": name, "i": incarnation, "a": 1, "g": "11" (rings), "c": config digest,
     "ok": 1 (settled), "sb": 1 (standby), "t": 0|1 (tie-breaker; absent: unknown),
     "d": {drbd resource: {its DrbdStatus fields that differ from the defaults}},
     "r": {state: "name name ..."} (resources by state, names sorted),
     "x": {resource: detail} (non-empty details only; dropped first when the packet is full),
     "e": {epoch: "group group ..."} (claims by epoch),
     "l": {vip: why its link cannot carry it} (absent: none)}

Resource ``since`` is not sent (the receiver gets 0.0: a peer's monotonic clock means nothing
here).  ``unpack`` raises ValueError, TypeError or KeyError on anything malformed; the engine
drops and counts such a report, like any bad payload.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from hasupd.model import DrbdStatus, NodeState, ResourceStatus, ResState, to_dict

_DRBD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(DrbdStatus) if f.name != "resource"}


def pack(ns: NodeState, details: bool = True) -> dict[str, Any]:
    by_state: dict[str, list[str]] = {}
    for name, r in sorted(ns.resources.items()):
        by_state.setdefault(r.state.value, []).append(name)
    by_epoch: dict[str, list[str]] = {}
    for group, epoch in sorted(ns.claims.items()):
        by_epoch.setdefault(str(int(epoch)), []).append(group)
    d: dict[str, Any] = {
        "n": ns.name, "i": ns.incarnation, "a": int(ns.alive), "g": "".join("1" if x else "0" for x in ns.rings),
        "c": ns.config_digest, "ok": int(ns.settled),
        "d": {k: {f: v for f, v in dataclasses.asdict(s).items() if f != "resource" and v != _DRBD_DEFAULTS[f]}
              for k, s in sorted(ns.drbd.items())},
        "r": {state: " ".join(names) for state, names in by_state.items()},
        "e": {epoch: " ".join(groups) for epoch, groups in by_epoch.items()},
    }
    if ns.standby:
        d["sb"] = 1
    if ns.tiebreaker is not None:
        d["t"] = int(ns.tiebreaker)
    if ns.link_down:
        d["l"] = dict(ns.link_down)
    if details:
        x = {name: r.detail for name, r in sorted(ns.resources.items()) if r.detail}
        if x:
            d["x"] = x
    return d


def form(ns: NodeState, version: int, details: bool = True) -> dict[str, Any]:
    """The report's part of a payload of wire ``version``: ``{"N": pack(ns)}``, or for a peer still of
    version 1 ``{"node": to_dict(ns)}``, exactly what version 1 sent (details blanked when dropped)."""
    if version >= 2:
        return {"N": pack(ns, details)}
    node = to_dict(ns)
    if not details:
        for r in node.get("resources", {}).values():
            r["detail"] = ""
    return {"node": node}


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"expected a string, got {type(v).__name__}")
    return v


def _map(v: Any) -> Mapping:
    if not isinstance(v, Mapping):
        raise TypeError(f"expected a mapping, got {type(v).__name__}")
    return v


def _drbd(name: str, fields: Mapping) -> DrbdStatus:
    unknown = set(fields) - set(_DRBD_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown DRBD fields {sorted(unknown)}")
    return DrbdStatus(name, **fields)


def unpack(d: Any) -> NodeState:
    d = _map(d)
    details = {_str(k): _str(v) for k, v in _map(d.get("x", {})).items()}
    resources = {}
    for state, names in _map(d.get("r", {})).items():
        st = ResState(state)
        for name in _str(names).split():
            resources[name] = ResourceStatus(st, details.get(name, ""), 0.0)
    claims = {}
    for epoch, groups in _map(d.get("e", {})).items():
        for group in _str(groups).split():
            claims[group] = int(_str(epoch))
    rings = _str(d.get("g", ""))
    if set(rings) - {"0", "1"}:
        raise ValueError(f"rings {rings!r}")
    tiebreaker = d.get("t")
    return NodeState(
        name=_str(d["n"]), alive=bool(d.get("a", 0)), rings=tuple(x == "1" for x in rings),
        incarnation=_str(d.get("i", "")), standby=bool(d.get("sb", 0)),
        drbd={_str(k): _drbd(k, _map(v)) for k, v in _map(d.get("d", {})).items()},
        resources=resources, claims=claims, settled=bool(d.get("ok", 0)), config_digest=_str(d.get("c", "")),
        tiebreaker=None if tiebreaker is None else bool(tiebreaker),
        link_down={_str(k): _str(v) for k, v in _map(d.get("l", {})).items()},
    )
