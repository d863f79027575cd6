"""pcs command scripts and ``pcs config`` / ``pcs constraint`` output -> ``CrmConfig`` (pure).

Two forms, told apart line by line:

* commands (a shell script, or lines pasted from a prompt): ``pcs [-f FILE]
  resource create|promotable|clone|group add|defaults|op defaults|meta``,
  ``pcs constraint colocation add|order|location``, ``pcs stonith create|level
  add``, ``pcs property set``, ``pcs cluster setup`` (cluster name, nodes and
  their addr=); session commands (auth, start, cib, cib-push ...) change no
  configuration and are counted.
* the report ``pcs config`` prints (pcs 0.9 to 0.11): Cluster Name, Corosync
  Nodes, Resources / Stonith Devices (Resource/Group/Clone/Master blocks with
  Attributes, Meta Attrs, Operations), Fencing Levels, the constraint
  sections, Resources/Operations Defaults, Cluster Properties.

Both fill the crm model, so the importer maps crm, pcs and CIB one way.
"""

from __future__ import annotations

import re
import shlex

from hasupd.migrate.common import DataError
from hasupd.migrate.crm import (
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

_PROMPT = re.compile(r"^(?:\[[^\]]*\]\s*[#$]|[\w.@~:/-]*[#$])(?:\s+|$)")  # `$PCS` is no prompt
_ACTIONS = ("start", "stop", "promote", "demote", "monitor", "notify", "reload", "migrate_to",
            "migrate_from", "meta-data", "validate-all", "status")
# flags that take the next word as their value
_VALUE_FLAGS = {"--group", "--name", "--before", "--after", "--wait", "-u", "-p", "--transport"}
# session commands: no configuration in them
_SESSION = {("host", "auth"), ("cluster", "auth"), ("cluster", "start"), ("cluster", "stop"),
            ("cluster", "enable"), ("cluster", "disable"), ("cluster", "destroy"), ("cluster", "cib"),
            ("cluster", "cib-push"), ("cluster", "sync"), ("cluster", "reload"), ("cluster", "status"),
            ("cluster", "verify"), ("status", ""), ("resource", "cleanup"), ("resource", "refresh"),
            ("resource", "status"), ("resource", "config"), ("resource", "show"), ("stonith", "status"),
            ("stonith", "config"), ("stonith", "show"), ("constraint", ""), ("config", "")}


def looks_like_pcs(text: str) -> bool:
    for raw in text.splitlines():
        line = _PROMPT.sub("", raw.strip())
        if re.match(r"^(sudo\s+)?pcs\s", line) or _ASSIGN.match(line) or line.startswith(("Cluster Name:", "Resources:",
                                                                   "Location Constraints:")):
            return True
    return False


def _kv(words: list[str]) -> dict[str, str]:
    out = {}
    for w in words:
        k, eq, v = w.partition("=")
        if eq:
            out[k] = v
    return out


# ---------------------------------------------------------------- commands


_ASSIGN = re.compile(r"""^(?P<name>[A-Za-z_]\w*)=(?P<q>["']?)(?P<value>(?:sudo\s+)?pcs\b[^"']*)(?P=q)\s*$""")


def _commands(text: str, cfg: CrmConfig, offset: int) -> list[tuple[int, list[str]]]:
    """Logical command lines; `PCS="pcs -f $CIB"` ... `$PCS resource ...` (as scripts,
    and hasupctl export, write them) reads as pcs."""
    out: list[tuple[int, list[str]]] = []
    aliases: dict[str, str] = {}
    pending, start = "", 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not pending:
            start = lineno
            line = _PROMPT.sub("", line.strip()) if not line.strip().startswith("#!") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if not full or full.startswith("#"):
            continue
        m = _ASSIGN.match(full)
        if m:
            aliases[m.group("name")] = m.group("value")
            continue
        m = re.match(r"^\$\{?(\w+)\}?(\s.*)$", full)
        if m and m.group(1) in aliases:
            full = aliases[m.group(1)] + m.group(2)
        try:
            words = shlex.split(full, comments=True)
        except ValueError as e:
            raise DataError(cfg.where(start + offset), f"cannot split into words: {e}") from None
        out.append((start, words))
    return out


class _Script:
    def __init__(self, cfg: CrmConfig):
        self.cfg = cfg

    def run(self, lineno: int, words: list[str]) -> None:
        cfg = self.cfg
        while words and words[0] in ("sudo", "time"):
            words = words[1:]
        if not words or words[0] != "pcs":
            cfg.note(lineno, "info", f"shell command `{' '.join(words)[:60]}` is not a pcs command; skipped")
            return
        words = words[1:]
        while words and words[0].startswith("-") and words[0] not in ("--",):
            flag = words.pop(0)
            if flag == "-f" and words:
                words.pop(0)  # the CIB file: the commands are read as if on the live CIB
        opts: list[str] = []
        plain: list[str] = []
        it = iter(words)
        for w in it:
            if w in _VALUE_FLAGS:
                opts.append(f"{w}={next(it, '')}")
            elif w.startswith("--"):
                opts.append(w)
            else:
                plain.append(w)
        words = plain
        if not words:
            return
        head = (words[0], words[1] if len(words) > 1 else "")
        if head in _SESSION or (len(words) == 1 and (words[0], "") in _SESSION):
            cfg.ignored_output += 1
            return
        area, rest = words[0], words[1:]
        try:
            handler = {"resource": self.resource, "stonith": self.stonith, "constraint": self.constraint,
                       "property": self.property, "cluster": self.cluster}.get(area)
            if handler is None or not handler(lineno, rest, opts):
                cfg.note(lineno, "unknown", f"pcs {' '.join(words)[:70]}: not understood; ignored")
        except (IndexError, ValueError):  # a word missing, `with`/`then` missing, a level that is no number
            raise DataError(cfg.where(lineno), f"pcs {' '.join(words)[:80]}: incomplete or malformed command") \
                from None

    # pcs resource create ID AGENT [k=v] [op ACTION k=v]... [meta k=v] [clone|promotable [k=v]]
    def create(self, lineno: int, rest: list[str], opts: list[str], stonith: bool) -> None:
        cfg = self.cfg
        rid, agent = rest[0], rest[1]
        if stonith and ":" not in agent:
            agent = f"stonith:{agent}"
        prim = Primitive(rid, agent, {}, {}, [], lineno)
        section, op = "params", None
        clone_kind, clone_meta = None, {}
        for w in rest[2:]:
            if w in ("op", "meta", "clone", "promotable", "master"):
                section = w
                if w in ("clone", "promotable", "master"):
                    clone_kind = w
                continue
            if section == "op" and "=" not in w:
                op = Op(w, {}, lineno)
                prim.ops.append(op)
                continue
            k, eq, v = w.partition("=")
            if not eq:
                cfg.note(lineno, "unknown", f"pcs resource create {rid}: unexpected {w!r}; ignored")
                continue
            if section == "params":
                prim.params[k] = v
            elif section == "meta":
                prim.meta[k] = v
            elif section == "op" and op is not None:
                op.attrs[k] = v
            else:
                clone_meta[k] = v
        cfg.primitives[rid] = prim
        group = next((o.split("=", 1)[1] for o in opts if o.startswith("--group=")), None)
        if group:
            self.add_to_group(group, [rid], lineno)
        if clone_kind:
            self.clone(rid, clone_kind, clone_meta, lineno, None)

    def clone(self, rid: str, kind: str, meta: dict[str, str], lineno: int, cid: str | None) -> None:
        promotable = kind in ("promotable", "master")
        if kind == "promotable":
            meta = {"promotable": "true", **meta}
        cid = cid or (f"{rid}-clone" if kind != "master" else f"{rid}-master")
        self.cfg.clones[cid] = Clone(cid, rid, meta, {}, promotable, lineno)

    def add_to_group(self, gid: str, members: list[str], lineno: int) -> None:
        g = self.cfg.groups.setdefault(gid, GroupDef(gid, [], {}, lineno))
        for m in members:
            for other in self.cfg.groups.values():
                if m in other.members:
                    other.members.remove(m)
            g.members.append(m)

    def resource(self, lineno: int, rest: list[str], opts: list[str]) -> bool:
        cfg = self.cfg
        verb = rest[0]
        if verb == "create":
            self.create(lineno, rest[1:], opts, stonith=False)
        elif verb in ("promotable", "clone"):
            self.clone(rest[1], verb, _kv(rest[2:]), lineno, None)
        elif verb == "master":
            # pcs 0.9: resource master [MASTER_ID] RSC [k=v]
            ids = [w for w in rest[1:] if "=" not in w]
            cid, rid = (ids[0], ids[1]) if len(ids) > 1 else (None, ids[0])
            self.clone(rid, "master", _kv(rest[1:]), lineno, cid)
        elif verb == "group" and rest[1] == "add":
            self.add_to_group(rest[2], rest[3:], lineno)
        elif verb == "defaults" or (verb == "op" and rest[1] == "defaults"):
            table = cfg.rsc_defaults if verb == "defaults" else cfg.op_defaults
            words = rest[1:] if verb == "defaults" else rest[2:]
            for k, v in _kv([w for w in words if w != "update"]).items():
                table[k] = (v, lineno)
        elif verb == "meta":
            obj = cfg.primitives.get(rest[1]) or cfg.groups.get(rest[1]) or cfg.clones.get(rest[1])
            if obj is None:
                raise DataError(cfg.where(lineno), f"pcs resource meta {rest[1]}: no such resource before this line")
            obj.meta.update(_kv(rest[2:]))
        elif verb == "op" and rest[1] == "add":
            prim = cfg.primitives[rest[2]]
            prim.ops.append(Op(rest[3], _kv(rest[4:]), lineno))
        elif verb in ("update",):
            prim = cfg.primitives.get(rest[1])
            if prim is None:
                raise DataError(cfg.where(lineno), f"pcs resource update {rest[1]}: no such resource")
            prim.params.update(_kv(rest[2:]))
        elif verb in ("delete", "remove"):
            for table in (cfg.primitives, cfg.groups, cfg.clones):
                table.pop(rest[1], None)
        elif verb in ("enable", "disable", "move", "ban", "clear", "manage", "unmanage", "restart"):
            cfg.note(lineno, "dropped", f"pcs resource {verb} {' '.join(rest[1:])}: an operator command, "
                     "not configuration")
        else:
            return False
        return True

    def stonith(self, lineno: int, rest: list[str], opts: list[str]) -> bool:
        if rest[0] == "create":
            self.create(lineno, rest[1:], opts, stonith=True)
            return True
        if rest[0] == "level" and rest[1] == "add":
            # pcs stonith level add LEVEL [target] NODE DEVICE[,DEVICE] [DEVICE ...]
            words = rest[2:]
            index = int(words[0])
            node = words[1] if words[1] != "target" else words[2]
            devs = words[2:] if words[1] != "target" else words[3:]
            self.cfg.fencing_levels.append(FenceLevel(node, index, [d for w in devs for d in w.split(",")],
                                                      lineno))
            return True
        return False

    def constraint(self, lineno: int, rest: list[str], opts: list[str]) -> bool:
        cfg = self.cfg
        kind = rest[0]
        words = [w for w in rest[1:] if w not in ("add",)] if kind == "colocation" else rest[1:]
        if kind == "colocation":
            # colocation add [ROLE] A with [ROLE] B [SCORE] [options]
            i = words.index("with")
            left, right = words[:i], words[i + 1:]
            role_a = left[0] if len(left) > 1 else None
            a = left[-1]
            role_b = right[0] if len(right) > 1 and right[0].lower() in (
                "master", "slave", "promoted", "unpromoted", "started") else None
            right = right[1:] if role_b else right
            b, extra = right[0], right[1:]
            score = next((w for w in extra if "=" not in w), "INFINITY")
            kv = _kv(extra)
            role_b = kv.get("with-rsc-role", role_b)
            role_a = kv.get("rsc-role", role_a)
            cid = kv.get("id", f"colocation-{a}-{b}-{score}")
            cfg.colocations.append(Colocation(cid, score, [(a, role_a), (b, role_b)], lineno))
            return True
        if kind == "order":
            # order [ACTION] A then [ACTION] B [kind=..]
            i = words.index("then")
            left, right = words[:i], words[i + 1:]
            act_a = left[0] if len(left) > 1 else None
            a = left[-1]
            act_b = right[0] if right[0] in _ACTIONS and len(right) > 1 else None
            right = right[1:] if act_b else right
            b, kv = right[0], _kv(right[1:])
            oid = kv.get("id", f"order-{a}-{b}")
            cfg.orders.append(Order(oid, kv.get("kind", "Mandatory"), [(a, act_a), (b, act_b)], lineno))
            return True
        if kind == "location":
            # location RSC prefers|avoids NODE[=SCORE]...
            rsc, verb = words[0], words[1]
            if verb not in ("prefers", "avoids"):
                return False
            for w in words[2:]:
                node, _, score = w.partition("=")
                score = score or "INFINITY"
                if verb == "avoids":
                    score = "-" + score.lstrip("+")
                cfg.locations.append(Location(f"location-{rsc}-{node}", rsc, None, score, node, None, lineno))
            return True
        return False

    def property(self, lineno: int, rest: list[str], opts: list[str]) -> bool:
        if rest[0] != "set":
            return False
        for k, v in _kv(rest[1:]).items():
            self.cfg.properties[k] = (v, lineno)
        return True

    def cluster(self, lineno: int, rest: list[str], opts: list[str]) -> bool:
        if rest[0] != "setup":
            return False
        cfg = self.cfg
        words = rest[1:]
        # pcs 0.9: setup --name NAME n1 n2; pcs 0.10+: setup NAME n1 [addr=A] n2 [addr=A]
        name_opt = next((o.split("=", 1)[1] for o in opts if o.startswith("--name=")), None)
        if name_opt is None:
            name_opt = words.pop(0)
        cfg.cluster_name = (name_opt, lineno)
        current = None
        for w in words:
            if w in ("transport", "totem", "quorum", "link", "compression", "crypto"):
                break
            if w.startswith("addr="):
                if current is not None:
                    cfg.node_addrs.setdefault(current, []).append(w.split("=", 1)[1])
                continue
            if "=" in w:
                continue
            names = w.split(",")  # pcs 0.9: node,ring1addr
            current = names[0]
            cfg.nodes[current] = NodeDef(current, {}, lineno)
            if len(names) > 1:
                cfg.node_addrs.setdefault(current, []).extend(names)
        return True


# ---------------------------------------------------------------- pcs config output

# `pcs config` section heads (pcs 0.11.5 adds the set id: "Cluster Properties: cib-bootstrap-options")
_REPORT_SECTIONS = {"Cluster Name", "Corosync Nodes", "Pacemaker Nodes", "Resources", "Stonith Devices",
                    "Fencing Levels", "Location Constraints", "Ordering Constraints", "Colocation Constraints",
                    "Ticket Constraints", "Alerts", "Resources Defaults", "Operations Defaults",
                    "Resource Defaults", "Operation Defaults", "Cluster Properties", "Tags", "Quorum"}
_RES_HEAD = re.compile(r"^(?P<ind>\s*)(?P<kind>Resource|Group|Clone|Master|Bundle):\s*(?P<id>\S+)"
                       r"(?:\s*\((?P<attrs>[^)]*)\))?\s*$")
_ATTR_HEAD = re.compile(r"^\s*(?P<kind>Attributes|Meta Attrs|Meta Attributes|Operations|Utilization)"
                        r"\s*:\s*(?P<rest>.*)$")
_PAREN = re.compile(r"\s*\((?:id:)?[^()]*\)\s*$")


def _strip_ids(text: str) -> str:
    """`monitor interval=30s (ClusterIP-monitor-interval-30s)` -> without the id."""
    while True:
        m = re.search(r"\s*\((?:id:)?[\w.:-]+\)\s*$", text)
        if not m or "=" in m.group(0) or ":" in m.group(0).replace("(id:", "("):
            return text
        text = text[:m.start()]


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


class _Report:
    """`pcs config` / `pcs constraint` output."""

    def __init__(self, cfg: CrmConfig, lines: list[tuple[int, str]]):
        self.cfg, self.lines = cfg, lines

    def run(self) -> None:
        section = None
        stack: list[tuple[int, str, str]] = []  # (indent, kind, id) of open Resource/Group/Clone blocks
        attr_kind, attr_target = None, None
        current_op: Op | None = None
        loc_rsc, loc_sign = None, ""
        fence_target = None
        cfg = self.cfg
        for lineno, raw in self.lines:
            if not raw.strip():
                continue
            indent = len(raw) - len(raw.lstrip())
            text = raw.strip()
            if indent == 0 and (text.endswith(":") or text.split(":")[0] in _REPORT_SECTIONS):
                head, _, value = text.partition(":")
                section = head.strip()
                stack, attr_kind = [], None
                if section == "Cluster Name":
                    cfg.cluster_name = (value.strip(), lineno)
                continue
            if section in ("Corosync Nodes", "Pacemaker Nodes"):
                for n in text.split():
                    cfg.nodes.setdefault(n, NodeDef(n, {}, lineno))
            elif section in ("Resources", "Stonith Devices"):
                m = _RES_HEAD.match(raw)
                if m:
                    attr_kind, current_op = None, None
                    while stack and stack[-1][0] >= indent:
                        stack.pop()
                    self.block(m, lineno, stack, stonith=section == "Stonith Devices")
                    stack.append((indent, m.group("kind"), m.group("id")))
                    continue
                if not stack:
                    continue
                m = _ATTR_HEAD.match(raw)
                if m:
                    attr_kind, attr_target = m.group("kind"), stack[-1]
                    current_op = None
                    rest = m.group("rest").strip()
                    if rest and ("=" in rest or attr_kind == "Operations"):
                        current_op = self.attrs(attr_kind, attr_target, rest, lineno, None)
                    continue
                if attr_kind and indent > attr_target[0]:
                    current_op = self.attrs(attr_kind, attr_target, text, lineno, current_op)
            elif section == "Location Constraints":
                m = re.match(r"^Resource:\s*(\S+)", text)
                if m:
                    loc_rsc = m.group(1)
                elif text.startswith("Enabled on"):
                    loc_sign = ""
                elif text.startswith("Disabled on"):
                    loc_sign = "-"
                else:
                    m = re.match(r"^Node:\s*(\S+)\s*\(score:([^)]+)\)(?:.*\(id:([^)]+)\))?", text)
                    if m and loc_rsc:
                        score = m.group(2)
                        score = score if not loc_sign or score.startswith("-") else "-" + score
                        lid = m.group(3) or f"location-{loc_rsc}-{m.group(1)}"
                        cfg.locations.append(Location(lid, loc_rsc, None, score, m.group(1), None, lineno))
                    elif text.startswith(("Rule", "Constraint")):
                        cfg.note(lineno, "dropped", f"location rule `{text[:60]}`: pcs rules are not read; "
                                 "give the CIB XML (pcs cluster cib) for those")
            elif section == "Ordering Constraints":
                m = re.match(r"^(?:(\w+)\s+)?(\S+)\s+then\s+(?:(\w+)\s+)?(\S+)(.*)$", text)
                if m:
                    kind = re.search(r"\(kind:(\w+)\)", m.group(5))
                    oid = re.search(r"\(id:([^)]+)\)", m.group(5))
                    cfg.orders.append(Order(oid.group(1) if oid else f"order-{m.group(2)}-{m.group(4)}",
                                            kind.group(1) if kind else "Mandatory",
                                            [(m.group(2), m.group(1)), (m.group(4), m.group(3))], lineno))
            elif section == "Colocation Constraints":
                m = re.match(r"^(\S+)\s+with\s+(\S+)(.*)$", text)
                if m:
                    rest = m.group(3)
                    score = re.search(r"\(score:([^)]+)\)", rest)
                    r1 = re.search(r"\(rsc-role:([^)]+)\)", rest)
                    r2 = re.search(r"\(with-rsc-role:([^)]+)\)", rest)
                    cid = re.search(r"\(id:([^)]+)\)", rest)
                    cfg.colocations.append(Colocation(
                        cid.group(1) if cid else f"colocation-{m.group(1)}-{m.group(2)}",
                        score.group(1) if score else "INFINITY",
                        [(m.group(1), r1.group(1) if r1 else None), (m.group(2), r2.group(1) if r2 else None)],
                        lineno))
            elif section == "Fencing Levels":
                m = re.match(r"^(?:Target|Node):\s*(\S+)", text)
                if m:
                    fence_target = m.group(1)
                m = re.match(r"^Level\s+(\d+)\s*-\s*(\S+)", text)
                if m and fence_target:
                    cfg.fencing_levels.append(FenceLevel(fence_target, int(m.group(1)), m.group(2).split(","),
                                                         lineno))
            elif section in ("Resources Defaults", "Operations Defaults", "Resource Defaults",
                             "Operation Defaults"):
                table = cfg.rsc_defaults if section.startswith("Resource") else cfg.op_defaults
                if text.startswith("Meta Attrs"):
                    continue
                for k, v in _kv(_words(text)).items():
                    table.setdefault(k, (v, lineno))
            elif section == "Cluster Properties":
                k, sep, v = text.partition(":")
                if sep and " " not in k.strip():
                    cfg.properties.setdefault(k.strip(), (v.strip(), lineno))
                elif "=" in text:
                    for k2, v2 in _kv(_words(text)).items():
                        cfg.properties.setdefault(k2, (v2, lineno))
            elif section in ("Alerts", "Tags", "Quorum", "Ticket Constraints", "Resources Operations Defaults"):
                if text not in ("No alerts defined", "No tags defined", "Options:"):
                    cfg.note(lineno, "dropped", f"pcs config {section}: `{text[:60]}` has no hasupd equivalent")
            else:
                cfg.note(lineno, "unknown", f"pcs config: `{text[:60]}` ({section or 'no section'}) not read")

    def block(self, m: re.Match, lineno: int, stack: list[tuple[int, str, str]], stonith: bool) -> None:
        cfg = self.cfg
        kind, rid = m.group("kind"), m.group("id")
        parent = stack[-1] if stack else None
        if kind == "Resource":
            attrs = dict(w.split("=", 1) for w in (m.group("attrs") or "").split() if "=" in w)
            cls, provider, typ = attrs.get("class", "stonith" if stonith else "ocf"), attrs.get("provider"), \
                attrs.get("type", "")
            agent = f"{cls}:{provider}:{typ}" if provider else f"{cls}:{typ}"
            cfg.primitives[rid] = Primitive(rid, agent, {}, {}, [], lineno)
            if parent and parent[1] == "Group":
                cfg.groups[parent[2]].members.append(rid)
            elif parent and parent[1] in ("Clone", "Master"):
                cfg.clones[parent[2]].child = rid
        elif kind == "Group":
            cfg.groups[rid] = GroupDef(rid, [], {}, lineno)
            if parent and parent[1] in ("Clone", "Master"):
                cfg.clones[parent[2]].child = rid
        elif kind in ("Clone", "Master"):
            cfg.clones[rid] = Clone(rid, "", {}, {}, kind == "Master", lineno)
        else:
            cfg.note(lineno, "unknown", f"pcs config: {kind} {rid} is not read (hasupd runs primitives, "
                     "groups and clones)")

    def attrs(self, kind: str, target: tuple[int, str, str], text: str, lineno: int, op: Op | None) -> Op | None:
        cfg = self.cfg
        _ind, what, rid = target
        obj = cfg.primitives.get(rid) if what == "Resource" else cfg.groups.get(rid) if what == "Group" \
            else cfg.clones.get(rid)
        if obj is None:
            return None
        text = _strip_ids(text)
        words = _words(text)
        if (kind == "Operations" and not isinstance(obj, Primitive)) or \
                (kind == "Attributes" and isinstance(obj, GroupDef)):
            cfg.note(lineno, "unknown", f"pcs config: {kind} of {what.lower()} {rid} (`{text[:50]}`) not read")
            return None
        if kind == "Operations":
            if words and "=" not in words[0]:
                # pcs 0.10: `monitor interval=10s (ID)`; pcs 0.11.5: `monitor: ID` then key=value lines
                op = Op(words[0].rstrip(":"), _kv(words[1:]), lineno)
                obj.ops.append(op)
                return op
            if op is not None:
                op.attrs.update(_kv(words))
            return op
        pairs = _kv(words)
        if kind == "Attributes":
            obj.params.update(pairs)
        elif kind.startswith("Meta"):
            obj.meta.update(pairs)
            if isinstance(obj, Clone) and pairs.get("promotable", "").lower() in ("true", "1", "yes", "on"):
                obj.promotable = True
        return op


def parse(text: str, path: str = "<pcs>", cfg: CrmConfig | None = None, offset: int = 0) -> CrmConfig:
    """pcs commands and/or `pcs config` output (lines from OFFSET+1 in CFG's numbering)."""
    cfg = cfg or CrmConfig(path)
    cfg.fmt = "pcs"
    commands: list[tuple[int, str]] = []
    report: list[tuple[int, str]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        stripped = _PROMPT.sub("", raw.strip())
        if re.match(r"^(sudo\s+)?pcs(\s|$)", stripped) and raw.strip() != stripped or \
                re.match(r"^(sudo\s+)?pcs(\s|$)", raw.strip()):
            report_cmd = re.match(r"^(sudo\s+)?pcs(\s+-f\s+\S+)?\s+(config|constraint)(\s+(show|config))?\s*$",
                                  stripped)
            if report_cmd:
                continue  # the command whose output follows
        commands.append((lineno, raw))
    # a report has section heads at column 0 ending in ':'; a script has pcs lines
    is_report = any(re.match(r"^(Resources|Location Constraints|Colocation Constraints|Ordering Constraints|"
                             r"Cluster Name|Stonith Devices):", raw) for _n, raw in commands)
    if is_report:
        report = [(n + offset, raw) for n, raw in commands]
        _Report(cfg, report).run()
    else:
        script = _Script(cfg)
        for lineno, words in _commands(text, cfg, offset):
            script.run(lineno + offset, words)
    for g in list(cfg.groups.values()):
        if not g.members:
            raise DataError(cfg.where(g.line), f"group {g.id} has no members")
    for c in cfg.clones.values():
        if not c.child:
            raise DataError(cfg.where(c.line), f"clone {c.id} clones nothing")
    return cfg

