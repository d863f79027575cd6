"""The Pacemaker objects of an export, before they are written in crm or pcs syntax."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Prim:
    id: str
    agent: str
    params: list[tuple[str, str]]
    ops: list[tuple[str, list[tuple[str, str]]]]
    meta: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Model:
    """Everything an export writes."""

    properties: list[tuple[str, str]] = field(default_factory=list)
    rsc_defaults: list[tuple[str, str]] = field(default_factory=list)
    op_defaults: list[tuple[str, str]] = field(default_factory=list)
    nodes: list[tuple[int, str]] = field(default_factory=list)
    prims: list[Prim] = field(default_factory=list)
    clones: list[tuple[str, str, bool, list[tuple[str, str]]]] = field(default_factory=list)
    groups: list[tuple[str, list[str], list[tuple[str, str]]]] = field(default_factory=list)
    colocations: list[tuple[str, str, str, str]] = field(default_factory=list)  # id, rsc, with, role
    orders: list[tuple[str, str, str]] = field(default_factory=list)  # id, first (promote), then (start)
    locations: list[tuple[str, str, str, str | None]] = field(default_factory=list)  # id, rsc, score, node|rule
    alerts: list[tuple[str, str, float, str]] = field(default_factory=list)
    fence_levels: list[tuple[str, int, list[str]]] = field(default_factory=list)  # node, index, devices

