"""Pacemaker CIB XML (``cibadmin -Q``, ``pcs cluster cib``) -> ``CrmConfig`` (pure).

The CIB is the one format every Pacemaker version can dump.  Its
``<configuration>`` is read into the same model as a crm configuration, so
the importer maps all three inputs (crm, pcs, CIB) one way; ``<status>`` is
state, not configuration, and is skipped.  Every element keeps its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.parsers import expat

from hasupd.migrate.common import DataError, kv
from hasupd.migrate.crm import (
    AlertDef,
    Clone,
    Colocation,
    CrmConfig,
    FenceLevel,
    GroupDef,
    Location,
    NodeDef,
    Op,
    Order,
    Primitive,
)


@dataclass
class Elem:
    tag: str
    attrib: dict[str, str]
    line: int
    children: list[Elem] = field(default_factory=list)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.attrib.get(key, default)

    def all(self, tag: str) -> list[Elem]:
        return [c for c in self.children if c.tag == tag]

    def first(self, tag: str) -> Elem | None:
        return next((c for c in self.children if c.tag == tag), None)


def parse_xml(text: str, path: str) -> Elem:
    """XML text -> element tree with lines; no DTDs or entities (hostile input)."""
    parser = expat.ParserCreate()
    stack: list[Elem] = [Elem("", {}, 0)]

    def start(tag: str, attrib: dict[str, str]) -> None:
        e = Elem(tag, attrib, parser.CurrentLineNumber)
        stack[-1].children.append(e)
        stack.append(e)

    def end(_tag: str) -> None:
        stack.pop()

    def doctype(*_args) -> None:
        raise DataError(f"{path}:{parser.CurrentLineNumber}", "a DOCTYPE is not allowed in a CIB")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = doctype
    try:
        parser.Parse(text, True)
    except expat.ExpatError as e:
        raise DataError(f"{path}:{e.lineno}", f"not well-formed XML: {expat.ErrorString(e.code)}") from None
    root = stack[0].children[0] if stack[0].children else None
    if root is None:
        raise DataError(path, "empty XML document")
    return root


def _nvpairs(e: Elem | None, tag: str) -> dict[str, str]:
    """name -> value of the first TAG set under E (Pacemaker uses the first set)."""
    out: dict[str, str] = {}
    for s in (e.all(tag) if e is not None else []):
        for nv in s.all("nvpair"):
            if nv.get("name") is not None and nv.get("name") not in out:
                out[nv.get("name")] = nv.get("value", "")
    return out


def _primitive(e: Elem, cfg: CrmConfig) -> Primitive:
    cls, provider, typ = e.get("class", "ocf"), e.get("provider"), e.get("type", "")
    if e.get("template"):
        cfg.note(e.line, "unknown", f"primitive {e.get('id')}: templates are not supported")
    agent = f"{cls}:{provider}:{typ}" if provider else f"{cls}:{typ}"
    ops = []
    for o in (e.first("operations").all("op") if e.first("operations") is not None else []):
        attrs = {k: v for k, v in o.attrib.items() if k not in ("id", "name")}
        attrs.update(_nvpairs(o, "instance_attributes"))
        ops.append(Op(o.get("name", ""), attrs, o.line))
    prim = Primitive(e.get("id", ""), agent, _nvpairs(e, "instance_attributes"),
                     _nvpairs(e, "meta_attributes"), ops, e.line)
    for u in e.all("utilization"):
        cfg.note(u.line, "dropped", f"primitive {prim.id}: utilization {kv(_nvpairs(e, 'utilization'))} has "
                 "no hasupd equivalent (two nodes, one group owner)")
    cfg.primitives[prim.id] = prim
    return prim


def _group(e: Elem, cfg: CrmConfig) -> GroupDef:
    members = [_primitive(p, cfg).id for p in e.all("primitive")]
    if not members:
        raise DataError(cfg.where(e.line), f"group {e.get('id')} has no members")
    g = GroupDef(e.get("id", ""), members, _nvpairs(e, "meta_attributes"), e.line)
    cfg.groups[g.id] = g
    return g


def _resources(res: Elem, cfg: CrmConfig) -> None:
    for e in res.children:
        if e.tag == "primitive":
            _primitive(e, cfg)
        elif e.tag == "group":
            _group(e, cfg)
        elif e.tag in ("clone", "master"):
            meta = _nvpairs(e, "meta_attributes")
            child = e.first("primitive") or e.first("group")
            if child is None:
                raise DataError(cfg.where(e.line), f"{e.tag} {e.get('id')} clones nothing")
            cid = _primitive(child, cfg).id if child.tag == "primitive" else _group(child, cfg).id
            promotable = e.tag == "master" or meta.get("promotable", "false").lower() in ("true", "yes", "1", "on")
            cfg.clones[e.get("id", "")] = Clone(e.get("id", ""), cid, meta, _nvpairs(e, "instance_attributes"),
                                                promotable, e.line)
        elif e.tag in ("template", "tag"):
            cfg.note(e.line, "dropped", f"<{e.tag} id={e.get('id')}>: has no hasupd equivalent")
        else:
            cfg.note(e.line, "unknown", f"<{e.tag} id={e.get('id')}>: not read (hasupd runs primitives, "
                     "groups and clones)")


def _members_of(e: Elem, first: str, second: str, role1: str, role2: str) -> list[tuple[str, str | None]]:
    if e.get(first):
        return [(e.get(first), e.get(role1)), (e.get(second), e.get(role2))]
    out: list[tuple[str, str | None]] = []
    for s in e.all("resource_set"):
        role = s.get("role") or s.get("action")
        out += [(r.get("id"), role) for r in s.all("resource_ref")]
    return out


def _rule_text(rule: Elem) -> tuple[str | None, str]:
    """(node, expression) of a location rule: `#uname eq NODE` gives the node."""
    exprs = rule.all("expression")
    if len(exprs) == 1 and exprs[0].get("attribute") == "#uname" and exprs[0].get("operation") == "eq":
        return exprs[0].get("value"), f"#uname eq {exprs[0].get('value')}"
    parts = []
    for x in exprs:
        op = x.get("operation", "")
        parts.append(f"{op} {x.get('attribute')}" if op in ("defined", "not_defined")
                     else f"{x.get('attribute')} {op} {x.get('value')}")
    joiner = f" {rule.get('boolean-op', 'and')} "
    return None, joiner.join(parts) or "(date or nested rule)"


def _constraints(cons: Elem, cfg: CrmConfig) -> None:
    for e in cons.children:
        cid = e.get("id", "")
        if e.tag == "rsc_colocation":
            members = _members_of(e, "rsc", "with-rsc", "rsc-role", "with-rsc-role")
            cfg.colocations.append(Colocation(cid, e.get("score", "INFINITY"), members, e.line))
        elif e.tag == "rsc_order":
            members = _members_of(e, "first", "then", "first-action", "then-action")
            kind = e.get("kind") or e.get("score") or "Mandatory"
            cfg.orders.append(Order(cid, kind, members, e.line))
        elif e.tag == "rsc_location":
            rsc = e.get("rsc") or e.get("rsc-pattern") or ""
            if e.get("node"):
                cfg.locations.append(Location(cid, rsc, e.get("role"), e.get("score", "0"), e.get("node"),
                                              None, e.line))
            for rule in e.all("rule"):
                node, text = _rule_text(rule)
                score = rule.get("score") or rule.get("score-attribute") or "0"
                cfg.locations.append(Location(cid, rsc, rule.get("role") or e.get("role"), score, node,
                                              None if node else text, rule.line))
        else:
            cfg.note(e.line, "dropped", f"<{e.tag} id={cid}> has no hasupd equivalent")


def parse(text: str, path: str = "<cib>", cfg: CrmConfig | None = None) -> CrmConfig:
    cfg = cfg or CrmConfig(path)
    cfg.fmt = "cib"
    root = parse_xml(text, path)
    conf = root if root.tag == "configuration" else root.first("configuration")
    if root.tag not in ("cib", "configuration") or conf is None:
        raise DataError(cfg.where(root.line), f"<{root.tag}>: not a Pacemaker CIB (expected <cib> with "
                        "<configuration>, as `cibadmin -Q` or `pcs cluster cib` write it)")
    crm_config = conf.first("crm_config")
    for k, v in _nvpairs(crm_config, "cluster_property_set").items():
        s = next(nv for ps in crm_config.all("cluster_property_set") for nv in ps.all("nvpair")
                 if nv.get("name") == k)
        cfg.properties[k] = (v, s.line)
    for section, table in (("rsc_defaults", cfg.rsc_defaults), ("op_defaults", cfg.op_defaults)):
        sec = conf.first(section)
        if sec is None:
            continue
        for ma in sec.all("meta_attributes"):
            for nv in ma.all("nvpair"):
                if nv.get("name") and nv.get("name") not in table:
                    table[nv.get("name")] = (nv.get("value", ""), nv.line)
    nodes = conf.first("nodes")
    for n in (nodes.all("node") if nodes is not None else []):
        if n.get("type") in ("remote", "ping"):
            cfg.note(n.line, "dropped", f"node {n.get('uname')} is a {n.get('type')} node: hasupd runs two "
                     "full nodes")
            continue
        name = n.get("uname") or n.get("id", "")
        cfg.nodes[name] = NodeDef(name, _nvpairs(n, "instance_attributes"), n.line)
    res = conf.first("resources")
    if res is not None:
        _resources(res, cfg)
    cons = conf.first("constraints")
    if cons is not None:
        _constraints(cons, cfg)
    ft = conf.first("fencing-topology")
    for lvl in (ft.all("fencing-level") if ft is not None else []):
        target = lvl.get("target") or "*"
        index = int(lvl.get("index", "1")) if (lvl.get("index") or "1").isdigit() else 1
        cfg.fencing_levels.append(FenceLevel(target, index, (lvl.get("devices") or "").split(","), lvl.line))
    alerts = conf.first("alerts")
    for a in (alerts.all("alert") if alerts is not None else []):
        recipients = [r.get("value") for r in a.all("recipient") if r.get("value")]
        cfg.alerts.append(AlertDef(a.get("id", "alert"), a.get("path", ""), _nvpairs(a, "meta_attributes"),
                                   recipients, a.line))
    for e in conf.children:
        if e.tag not in ("crm_config", "nodes", "resources", "constraints", "rsc_defaults", "op_defaults",
                         "fencing-topology", "alerts"):
            cfg.note(e.line, "dropped", f"<{e.tag}> has no hasupd equivalent")
    return cfg
