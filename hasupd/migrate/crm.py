"""crm shell configuration text -> ``CrmConfig`` (pure, no I/O).

Reads both the output of ``crm configure show`` (one statement per logical
line, ``\\`` continuations) and interactive sessions pasted from a terminal
or a tutorial: ``crm(live)configure# primitive ... \\`` with ``>``
continuation prompts, ``WARNING:``/``ERROR:`` lines, ``verify``, ``commit``,
``exit``, ``bye``, and one-shot ``# crm configure STATEMENT`` shell lines.

Every statement, token and note keeps its line, so anything not understood
is reported as ``file:line``; nothing is dropped silently.  Mapping the
result onto hasupd.yaml is ``importer.py``'s job.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from xml.etree import ElementTree

from hasupd.migrate.common import DataError, Note, at, kv

# ---------------------------------------------------------------- model


@dataclass
class Op:
    name: str
    attrs: dict[str, str]
    line: int


@dataclass
class Primitive:
    id: str
    agent: str  # as written: ocf:heartbeat:IPaddr2, lsb:httpd, stonith:fence_ipmilan, IPaddr2
    params: dict[str, str]
    meta: dict[str, str]
    ops: list[Op]
    line: int

    @property
    def cls(self) -> str:
        parts = self.agent.split(":")
        # crmsh 4 shows ocf:heartbeat agents by their bare type ("IPaddr2")
        return parts[0] if len(parts) > 1 else "ocf"

    @property
    def provider(self) -> str:
        parts = self.agent.split(":")
        if len(parts) == 3:
            return parts[1]
        return "heartbeat" if len(parts) == 1 else ""

    @property
    def type(self) -> str:
        return self.agent.split(":")[-1]

    def op(self, name: str, role: str | None = None) -> Op | None:
        for op in self.ops:
            if op.name == name and (role is None or op.attrs.get("role") == role):
                return op
        return None


@dataclass
class Clone:
    id: str
    child: str
    meta: dict[str, str]
    params: dict[str, str]
    promotable: bool  # ms / master / clone with promotable=true
    line: int


@dataclass
class GroupDef:
    id: str
    members: list[str]
    meta: dict[str, str]
    line: int


@dataclass
class Colocation:
    id: str
    score: str
    members: list[tuple[str, str | None]]  # (resource, role); the first is placed with the rest
    line: int


@dataclass
class Order:
    id: str
    kind: str  # the score or kind as written: inf, Mandatory, Optional, 0 ...
    members: list[tuple[str, str | None]]  # (resource, action) in order
    line: int


@dataclass
class Location:
    id: str
    rsc: str
    role: str | None
    score: str
    node: str | None  # "SCORE: NODE" form
    rule: str | None  # "rule SCORE: EXPRESSION" form, the expression text
    line: int


@dataclass
class NodeDef:
    name: str
    attrs: dict[str, str]
    line: int


@dataclass
class AlertDef:
    id: str
    path: str
    meta: dict[str, str]
    recipients: list[str]
    line: int


@dataclass
class FenceLevel:
    node: str
    index: int
    devices: list[str]
    line: int


@dataclass
class CrmConfig:
    path: str
    properties: dict[str, tuple[str, int]] = field(default_factory=dict)
    rsc_defaults: dict[str, tuple[str, int]] = field(default_factory=dict)
    op_defaults: dict[str, tuple[str, int]] = field(default_factory=dict)
    primitives: dict[str, Primitive] = field(default_factory=dict)
    clones: dict[str, Clone] = field(default_factory=dict)
    groups: dict[str, GroupDef] = field(default_factory=dict)
    colocations: list[Colocation] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    locations: list[Location] = field(default_factory=list)
    nodes: dict[str, NodeDef] = field(default_factory=dict)
    alerts: list[AlertDef] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    ignored_output: int = 0  # WARNING:/ERROR: lines and session commands skipped
    set_ids: dict[str, dict[str, str]] = field(default_factory=dict)  # keyword -> name -> set id
    # several input files read as one text: (first line in that text, file)
    sources: list[tuple[int, str]] = field(default_factory=list)
    fencing_levels: list[FenceLevel] = field(default_factory=list)
    cluster_name: tuple[str, int] | None = None  # pcs cluster setup NAME / pcs config "Cluster Name:"
    node_addrs: dict[str, list[str]] = field(default_factory=dict)  # pcs cluster setup N addr=A
    fmt: str = "crm"  # crm, pcs or cib: which tool the input came from

    def where(self, line: int) -> str:
        for start, path in reversed(self.sources):
            if line >= start:
                return at(path, line - start + 1)
        return at(self.path, line)

    def note(self, line: int, kind: str, message: str) -> None:
        self.notes.append(Note(self.where(line), kind, message))

    def kind_of(self, rid: str) -> str | None:
        for kind, table in (("primitive", self.primitives), ("clone", self.clones),
                            ("group", self.groups)):
            if rid in table:
                return kind
        return None


# ---------------------------------------------------------------- lexing


@dataclass(frozen=True)
class Tok:
    text: str
    line: int


@dataclass
class Statement:
    tokens: list[Tok]
    line: int
    raw: str = ""  # the text as written (continuations joined), for `xml <...>`


_PROMPT = re.compile(r"^crm\((?P<cib>[^)]*)\)(?P<level>[A-Za-z_]*)#\s?(?P<rest>.*)$")
_CONTINUATION = re.compile(r"^>\s?(?P<rest>.*)$")
_OUTPUT = re.compile(r"^(WARNING|ERROR|INFO|NOTICE|CRIT|CRITICAL|DEBUG)\b[^:]*:")
_SHELL_CRM = re.compile(r"^(?:\[[^\]]*\]\s*|[\w.@~:/-]*)?[#$]\s*(?:sudo\s+)?crm(?:\s+(?P<rest>.*))?$")
# an old crm shell's own prompt was a bare "$ " (`$ configure primitive ...`)
_DOLLAR_CONFIGURE = re.compile(r"^\$\s+configure(?:\s+(?P<rest>.*))?$")
_BARE_CRM = re.compile(r"^(?:sudo\s+)?crm(?:\s+(?P<rest>.*))?$")
# session commands that change nothing in the configuration
_SESSION = {"verify", "commit", "exit", "quit", "bye", "end", "up", "cd", "show", "ptest",
            "simulate", "save", "refresh", "help", "back", "cib", "status", "history"}
_OPERATOR_LEVELS = {"resource", "node", "cluster", "site", "ra", "options", "history",
                    "corosync", "maintenance", "assist", "script"}


def _words(text: str, line: int, path: str) -> list[Tok]:
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # "#uname" in rules is not a comment
    try:
        return [Tok(w, line) for w in lexer]
    except ValueError as e:
        raise DataError(at(path, line), f"cannot split into words: {e}") from None


def statements(text: str, cfg: CrmConfig) -> list[Statement]:
    """Logical statements with their lines; session noise is skipped and counted."""
    out: list[Statement] = []
    pending: Statement | None = None
    path = cfg.path

    def add(rest: str, lineno: int, level: str) -> None:
        nonlocal pending
        rest = rest.rstrip()
        cont = rest.endswith("\\")
        if cont:
            rest = rest[:-1]
        if pending is None:
            words = _words(rest, lineno, path)
            if not words:
                return
            head = words[0].text
            if level in _OPERATOR_LEVELS or (level == "" and head in _OPERATOR_LEVELS):
                shown = " ".join(w.text for w in words)
                cfg.note(lineno, "dropped",
                         f"operator command `{(level + ' ') if level else ''}{shown}` is not "
                         "configuration (hasupd starts groups by itself; see hasupctl)")
                return
            if level == "" and head == "configure":
                words = words[1:]  # crm(live)# configure [STATEMENT]
                if not words:
                    return
            pending = Statement(words, lineno, rest)
        else:
            pending.tokens.extend(_words(rest, lineno, path))
            pending.raw += " " + rest
        if not cont:
            out.append(pending)
            pending = None

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        stripped = line.strip()
        if pending is not None:
            m = _CONTINUATION.match(stripped)
            add(m.group("rest") if m else stripped, lineno, "configure")
            continue
        if not stripped:
            continue
        m = _PROMPT.match(stripped)
        if m:
            add(m.group("rest"), lineno, m.group("level"))
            continue
        m = _DOLLAR_CONFIGURE.match(stripped)
        if m:
            add(m.group("rest") or "", lineno, "configure")
            continue
        m = _SHELL_CRM.match(stripped) or _BARE_CRM.match(stripped)
        if m:
            rest = (m.group("rest") or "").strip()
            if not rest or rest.split()[0] in ("configure", "-d", "-w", "-F"):
                rest = re.sub(r"^(-\w\s+)*", "", rest)
                if rest.startswith("configure"):
                    add(rest[len("configure"):], lineno, "configure")
                continue  # `# crm`: the interactive shell starts
            if rest.split()[0] in _OPERATOR_LEVELS:
                add(rest, lineno, "")
                continue
        if stripped.startswith("#"):
            continue  # a comment
        if _OUTPUT.match(stripped) or stripped in ("bye", "Bye"):
            cfg.ignored_output += 1
            continue
        add(stripped, lineno, "configure")
    if pending is not None:
        raise DataError(at(path, pending.line), "statement continues (ends with \\) past the end of the input")
    return out


# ---------------------------------------------------------------- parsing

_ATTR_LISTS = ("params", "meta", "utilization", "attributes", "op_params", "op_meta")


class _Reader:
    def __init__(self, st: Statement, cfg: CrmConfig):
        self.toks, self.i, self.cfg, self.st = st.tokens, 1, cfg, st

    def more(self) -> bool:
        return self.i < len(self.toks)

    def peek(self) -> Tok | None:
        return self.toks[self.i] if self.more() else None

    def next(self, what: str) -> Tok:
        if not self.more():
            last = self.toks[-1]
            raise DataError(self.cfg.where(last.line), f"{self.toks[0].text}: expected {what} after {last.text!r}")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def attrs(self, stop: tuple[str, ...]) -> dict[str, str]:
        """NAME=VALUE words up to the next keyword in STOP; anything else is reported."""
        out: dict[str, str] = {}
        while self.more() and self.peek().text not in stop:
            tok = self.next("an attribute")
            name, eq, value = tok.text.partition("=")
            if name.startswith("$") or name in ("rule",):
                continue  # $id=..., $id-ref=...: CIB ids, no meaning here
            if not eq:
                self.cfg.note(tok.line, "unknown", f"{self.toks[0].text} {self.toks[1].text}: "
                              f"expected NAME=VALUE, found {tok.text!r}; ignored")
                continue
            out[name] = value
        return out


_DEFAULT_SET = {"property": "cib-bootstrap-options", "rsc_defaults": "rsc-options",
                "op_defaults": "op-options"}


def _nvpairs(r: _Reader, cfg: CrmConfig, keyword: str) -> None:
    """property/rsc_defaults/op_defaults [ID: | $id=ID] NAME=VALUE...

    Within one set a later value replaces an earlier one (an interactive
    session setting it again); across sets Pacemaker uses the first set."""
    set_id = _DEFAULT_SET[keyword]
    tok = r.peek()
    if tok is not None and tok.text.endswith(":") and "=" not in tok.text:
        set_id = r.next("an id").text[:-1]
    elif tok is not None and tok.text.startswith("$id="):
        set_id = tok.text.split("=", 1)[1]
    table = {"property": cfg.properties, "rsc_defaults": cfg.rsc_defaults,
             "op_defaults": cfg.op_defaults}[keyword]
    sets = cfg.set_ids.setdefault(keyword, {})
    for name, value in r.attrs(()).items():
        if name in table and sets.get(name) != set_id:
            cfg.note(r.st.line, "info", f"{keyword} {name}={value} (set {set_id}) is shadowed by "
                     f"{name}={table[name][0]} of set {sets[name]} (line {table[name][1]}), as in Pacemaker")
            continue
        table[name] = (value, r.st.line)
        sets[name] = set_id


def _parse_primitive(r: _Reader, cfg: CrmConfig) -> None:
    rid = r.next("a resource id")
    agent = r.next("a resource agent")
    if agent.text.startswith("@"):
        cfg.note(agent.line, "unknown", f"primitive {rid.text}: templates ({agent.text}) are not "
                 "supported; define the agent in the primitive")
    prim = Primitive(rid.text, agent.text, {}, {}, [], rid.line)
    stops = _ATTR_LISTS + ("op",)
    while r.more():
        tok = r.next("a keyword")
        word = tok.text
        if word == "params":
            prim.params.update(r.attrs(stops))
        elif word == "meta":
            prim.meta.update(r.attrs(stops))
        elif word in ("utilization", "op_params", "op_meta"):
            dropped = r.attrs(stops)
            cfg.note(tok.line, "dropped", f"primitive {prim.id}: {word} {kv(dropped)} has no hasupd "
                     "equivalent (two nodes, one group owner)")
        elif word == "op":
            name = r.next("an operation name")
            prim.ops.append(Op(name.text, r.attrs(stops), name.line))
        elif word.startswith("description="):
            continue
        elif "=" in word and not word.startswith("$"):
            # crmsh takes NAME=VALUE without the `params` keyword as parameters
            r.i -= 1
            prim.params.update(r.attrs(stops))
        else:
            cfg.note(tok.line, "unknown", f"primitive {prim.id}: unexpected {word!r}; ignored")
    cfg.primitives[prim.id] = prim


def _parse_clone(r: _Reader, cfg: CrmConfig, keyword: str) -> None:
    cid = r.next("a clone id")
    child = r.next("the cloned resource")
    meta: dict[str, str] = {}
    params: dict[str, str] = {}
    while r.more():
        tok = r.next("a keyword")
        if tok.text == "meta":
            meta.update(r.attrs(_ATTR_LISTS))
        elif tok.text == "params":
            params.update(r.attrs(_ATTR_LISTS))
        elif tok.text.startswith("description="):
            continue
        else:
            cfg.note(tok.line, "unknown", f"{keyword} {cid.text}: unexpected {tok.text!r}; ignored")
    promotable = keyword in ("ms", "master", "promotable") or \
        meta.get("promotable", "false").lower() in ("true", "yes", "1", "on")
    cfg.clones[cid.text] = Clone(cid.text, child.text, meta, params, promotable, cid.line)


def _parse_group(r: _Reader, cfg: CrmConfig) -> None:
    gid = r.next("a group id")
    members: list[str] = []
    meta: dict[str, str] = {}
    while r.more():
        tok = r.next("a member")
        if tok.text == "meta":
            meta.update(r.attrs(_ATTR_LISTS))
        elif tok.text == "params":
            cfg.note(tok.line, "dropped", f"group {gid.text}: params {kv(r.attrs(_ATTR_LISTS))} ignored")
        elif "=" in tok.text:
            continue  # description=...
        else:
            members.append(tok.text)
    if not members:
        raise DataError(cfg.where(gid.line), f"group {gid.text} has no members")
    cfg.groups[gid.text] = GroupDef(gid.text, members, meta, gid.line)


def _score_and_rest(r: _Reader, what: str) -> tuple[str, list[Tok]]:
    head = r.next("a score (like inf:)")
    rest = r.toks[r.i:]
    r.i = len(r.toks)
    if head.text.endswith(":"):
        return head.text[:-1], rest
    if ":" in head.text and head.text.split(":", 1)[1] == "":
        return head.text[:-1], rest
    # "score=inf" or a missing score: crmsh's old "colocation c inf: a b" is the norm
    if head.text.startswith("score="):
        return head.text.split("=", 1)[1], rest
    raise DataError(r.cfg.where(head.line), f"{what}: expected a score such as inf: or 100:, found {head.text!r}")


def _members(toks: list[Tok]) -> list[tuple[str, str | None]]:
    """rsc[:role|:action] words; resource-set brackets and set options are flattened."""
    out: list[tuple[str, str | None]] = []
    for tok in toks:
        t = tok.text
        if t in ("(", ")", "[", "]", "{", "}") or "=" in t:
            continue
        t = t.strip("()[]{}")
        name, _, role = t.partition(":")
        if name:
            out.append((name, role or None))
    return out


def _parse_modgroup(r: _Reader, cfg: CrmConfig) -> None:
    """modgroup GROUP add RSC [after|before RSC2] | modgroup GROUP remove RSC."""
    gid = r.next("a group id")
    op = r.next("add or remove")
    rsc = r.next("a resource id")
    group = cfg.groups.get(gid.text)
    if group is None:
        raise DataError(cfg.where(gid.line), f"modgroup {gid.text}: no such group before this line")
    if op.text == "remove":
        if rsc.text in group.members:
            group.members.remove(rsc.text)
        return
    if op.text != "add":
        raise DataError(cfg.where(op.line), f"modgroup {gid.text}: expected add or remove, found {op.text!r}")
    pos = len(group.members)
    if r.more():
        where_tok = r.next("after or before")
        ref = r.next("a group member")
        if where_tok.text not in ("after", "before") or ref.text not in group.members:
            raise DataError(cfg.where(where_tok.line), f"modgroup {gid.text}: expected after|before MEMBER, "
                            f"found {where_tok.text} {ref.text}")
        pos = group.members.index(ref.text) + (1 if where_tok.text == "after" else 0)
    if rsc.text not in group.members:
        group.members.insert(pos, rsc.text)


def _parse_colocation(r: _Reader, cfg: CrmConfig) -> None:
    cid = r.next("a constraint id")
    score, rest = _score_and_rest(r, f"colocation {cid.text}")
    members = _members(rest)
    if len(members) < 2:
        raise DataError(cfg.where(cid.line), f"colocation {cid.text} needs two resources")
    cfg.colocations.append(Colocation(cid.text, score, members, cid.line))


def _parse_order(r: _Reader, cfg: CrmConfig) -> None:
    oid = r.next("a constraint id")
    tok = r.peek()
    if tok is not None and not tok.text.endswith(":"):
        kind, rest = "Mandatory", r.toks[r.i:]  # "order o a b": the default kind
        r.i = len(r.toks)
    else:
        kind, rest = _score_and_rest(r, f"order {oid.text}")
    members = _members(rest)
    if len(members) < 2:
        raise DataError(cfg.where(oid.line), f"order {oid.text} needs two resources")
    cfg.orders.append(Order(oid.text, kind, members, oid.line))


def _parse_location(r: _Reader, cfg: CrmConfig) -> None:
    lid = r.next("a constraint id")
    rsc = r.next("a resource")
    role = None
    while r.more() and r.peek().text.startswith(("role=", "resource-discovery=")):
        tok = r.next("a role")
        if tok.text.startswith("role="):
            role = tok.text.split("=", 1)[1]
    head = r.next("a score or rule")
    if head.text == "rule":
        # rule [$id=..|id=..] [$role=..|role=..] SCORE: EXPRESSION [rule ...]
        while r.more() and "=" in r.peek().text and not r.peek().text.endswith(":"):
            tok = r.next("a rule option")
            key, _, value = tok.text.lstrip("$").partition("=")
            if key == "role":
                role = value
        score_tok = r.next("a rule score")
        expression = " ".join(t.text for t in r.toks[r.i:])
        r.i = len(r.toks)
        cfg.locations.append(Location(lid.text, rsc.text, role, score_tok.text.rstrip(":"), None,
                                      expression, lid.line))
        return
    if not head.text.endswith(":"):
        raise DataError(cfg.where(head.line), f"location {lid.text}: expected SCORE: NODE or rule, "
                        f"found {head.text!r}")
    node = r.next("a node name")
    for tok in r.toks[r.i:]:
        if not tok.text.startswith("resource-discovery="):
            cfg.note(tok.line, "unknown", f"location {lid.text}: unexpected {tok.text!r}; ignored")
    r.i = len(r.toks)
    cfg.locations.append(Location(lid.text, rsc.text, role, head.text[:-1], node.text, None, lid.line))


def _parse_fencing_topology(r: _Reader, cfg: CrmConfig) -> None:
    """fencing_topology [NODE: DEV[,DEV] [DEV ...] ...] | DEV DEV (every node)."""
    node: str | None = None
    index = 0
    while r.more():
        tok = r.next("a node or device")
        if tok.text.endswith(":"):
            node, index = tok.text[:-1], 0
            continue
        if node is None:
            node = "*"
        index += 1
        cfg.fencing_levels.append(FenceLevel(node, index, tok.text.split(","), tok.line))


def _parse_node(r: _Reader, cfg: CrmConfig) -> None:
    tok = r.next("a node name")
    if tok.text.startswith("$id=") or tok.text.endswith(":"):
        tok = r.next("a node name")  # node $id=UUID NAME / node 1: NAME
    name = tok.text.split(":")[0]  # NAME:normal
    attrs: dict[str, str] = {}
    while r.more():
        kw = r.next("a keyword")
        if kw.text in ("attributes", "utilization"):
            got = r.attrs(("attributes", "utilization"))
            if kw.text == "attributes":
                attrs.update(got)
        elif not kw.text.startswith("description="):
            cfg.note(kw.line, "unknown", f"node {name}: unexpected {kw.text!r}; ignored")
    cfg.nodes[name] = NodeDef(name, attrs, tok.line)


def _parse_alert(r: _Reader, cfg: CrmConfig) -> None:
    aid = r.next("an alert id")
    path = r.next("the alert agent's path")
    meta: dict[str, str] = {}
    recipients: list[str] = []
    while r.more():
        tok = r.next("a keyword")
        if tok.text in ("meta", "attributes"):
            got = r.attrs(("meta", "attributes", "to", "select"))
            if tok.text == "meta":
                meta.update(got)
            elif got:
                cfg.note(tok.line, "dropped", f"alert {aid.text}: attributes {kv(got)}: hasupd gives its alert "
                         "agents Pacemaker's CRM_alert_* variables only")
        elif tok.text == "to":
            nxt = r.next("a recipient")
            if nxt.text == "{":
                nxt = r.next("a recipient")
            recipients.append(nxt.text)
        elif tok.text in ("{", "}"):
            continue
        elif tok.text == "select":
            picks = []
            while r.more() and r.peek().text not in ("to", "meta", "attributes"):
                picks.append(r.next("a kind").text)
            cfg.note(tok.line, "dropped", f"alert {aid.text}: select {' '.join(picks)}: hasupd "
                     "sends every event to its alert agents")
        else:
            cfg.note(tok.line, "unknown", f"alert {aid.text}: unexpected {tok.text!r}; ignored")
    cfg.alerts.append(AlertDef(aid.text, path.text, meta, recipients, aid.line))


def _parse_xml(st: Statement, cfg: CrmConfig) -> None:
    """`xml <alert ...>`: crmsh shows CIB parts it has no syntax for as raw XML."""
    text = st.raw.strip()
    text = text[text.index("xml") + 3:] if "xml" in text else text
    try:
        elem = ElementTree.fromstring(text.strip())
    except ElementTree.ParseError as e:
        raise DataError(cfg.where(st.line), f"xml: not well-formed XML ({e})") from None
    if elem.tag == "alert" and elem.get("path"):
        meta = {nv.get("name"): nv.get("value") for ma in elem.findall("meta_attributes")
                for nv in ma.findall("nvpair") if nv.get("name")}
        recipients = [r.get("value") for r in elem.findall("recipient") if r.get("value")]
        cfg.alerts.append(AlertDef(elem.get("id", "alert"), elem.get("path"), meta, recipients, st.line))
        return
    cfg.note(st.line, "unknown", f"xml <{elem.tag} id={elem.get('id')}>: raw CIB XML of this kind is not "
             "read; ignored")


def _delete(ids: list[Tok], cfg: CrmConfig) -> None:
    for tok in ids:
        rid = tok.text
        found = False
        for table in (cfg.primitives, cfg.clones, cfg.groups, cfg.nodes):
            if rid in table:
                del table[rid]
                found = True
        for name in ("colocations", "orders", "locations", "alerts"):
            items = getattr(cfg, name)
            kept = [c for c in items if c.id != rid]
            found = found or len(kept) != len(items)
            setattr(cfg, name, kept)
        if not found and rid not in ("location", "colocation", "order", "primitive", "group"):
            cfg.note(tok.line, "info", f"delete {rid}: no such object in this input (nothing to undo)")


def parse(text: str, path: str = "<crm>", cfg: CrmConfig | None = None) -> CrmConfig:
    """Parse crm shell text (into CFG, when given); raise DataError (file:line) when it
    cannot be read at all."""
    cfg = cfg or CrmConfig(path)
    for st in statements(text, cfg):
        keyword = st.tokens[0].text
        r = _Reader(st, cfg)
        if keyword in ("property", "rsc_defaults", "op_defaults"):
            _nvpairs(r, cfg, keyword)
        elif keyword == "primitive":
            _parse_primitive(r, cfg)
        elif keyword in ("ms", "master", "clone", "promotable"):
            _parse_clone(r, cfg, keyword)
        elif keyword == "group":
            _parse_group(r, cfg)
        elif keyword == "modgroup":
            _parse_modgroup(r, cfg)
        elif keyword == "fencing_topology":
            _parse_fencing_topology(r, cfg)
        elif keyword in ("colocation", "collocation"):
            _parse_colocation(r, cfg)
        elif keyword == "order":
            _parse_order(r, cfg)
        elif keyword == "location":
            _parse_location(r, cfg)
        elif keyword == "node":
            _parse_node(r, cfg)
        elif keyword == "alert":
            _parse_alert(r, cfg)
        elif keyword == "xml":
            _parse_xml(st, cfg)
        elif keyword in ("delete", "rm"):
            _delete(st.tokens[1:], cfg)
        elif keyword == "erase":
            cfg.note(st.line, "info", "erase: everything before this line is discarded")
            fresh = CrmConfig(cfg.path, notes=cfg.notes, ignored_output=cfg.ignored_output,
                              sources=cfg.sources)
            cfg.__dict__.update(fresh.__dict__)
        elif keyword in ("rsc_ticket", "tag", "rsc_template", "role", "user",
                         "acl_target", "acl_group", "schema", "rename", "load", "edit", "filter",
                         "template", "assist", "set", "graph", "upgrade", "monitor"):
            cfg.note(st.line, "dropped", f"`{' '.join(t.text for t in st.tokens)[:80]}`: {keyword} "
                     "has no hasupd equivalent")
        elif keyword in _SESSION:
            cfg.ignored_output += 1
        else:
            cfg.note(st.line, "unknown", f"unknown crm statement {keyword!r}; ignored")
    return cfg
