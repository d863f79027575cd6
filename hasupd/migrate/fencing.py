"""Fencing both ways: Pacemaker stonith devices <-> hasupd's ``fencing:`` section.

Import (``import_fencing``): every ``stonith:fence_*`` primitive becomes a
device (agent, the nodes from pcmk_host_list / pcmk_host_map, plugs from the
map, non-secret params as options), pcmk_delay_base -> ``delay`` (a per-node
base splits the device per node), pcmk_delay_max -> ``random_delay_max``,
fencing_topology -> ``levels``, priority-fencing-delay -> ``owner_head_start``.
Passwords and keys never go into the YAML: they are returned as secrets files
(``key=value`` lines) that the caller writes with mode 0600.  No shell is
involved anywhere: the agent gets its options on stdin.

Export (``export_fencing``): the reverse, for crm and pcs.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field

from hasupd.config import _RESERVED_OPTIONS
from hasupd.migrate.common import duration, pcmk_seconds
from hasupd.migrate.crm import CrmConfig, Primitive
from hasupd.migrate.yamlout import C, Flow

# stonith params whose values are secrets or name where one is (written to the secrets
# file only): a superset of what the loader refuses in `options:` (any key naming a password)
_SECRET = re.compile(r"^(.*passw.*|community|secret|secret_key|api_key|apikey|token|client_secret|"
                     r"identity_file)$")
# Pacemaker's own device params that become part of the device (nodes, plugs, delay,
# timeout, retries); every other pcmk_* param (and priority) is dropped with a note
_PCMK_MAPPED = {"pcmk_host_list", "pcmk_host_map", "pcmk_delay_base", "pcmk_delay_max",
                "pcmk_off_timeout", "pcmk_reboot_timeout", "pcmk_off_retries", "pcmk_reboot_retries"}
_PCMK_OWN = re.compile(r"^(pcmk_.*|priority)$")
_HIDDEN = re.compile(r"^(\*{3,}|<[^>]*>)$")


@dataclass
class FencingImport:
    section: dict | None
    secrets: dict[str, str] = field(default_factory=dict)  # path -> file content (key=value lines)


def _split_nodes(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,;]+", text or "") if w]


def _host_map(text: str) -> list[tuple[str, str]]:
    """pcmk_host_map "n1:1;n2:2" (also n1=1, spaces or commas between)."""
    out = []
    for entry in re.split(r"[;\s,]+", text or ""):
        m = re.match(r"^([^:=]+)[:=](.+)$", entry)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def _per_node(text: str) -> dict[str, str] | None:
    """pcmk_delay_base "n1:5s;n2:0s" (Pacemaker 2.1) -> {n1: 5s, n2: 0s}; a plain value -> None."""
    if ":" not in (text or ""):
        return None
    return dict(_host_map(text))


@functools.lru_cache(maxsize=None)
def _agent_metadata(agent: str) -> dict[str, bool] | None:
    from hasupd.fencing import agent_parameter_table, resolve_agent
    path = resolve_agent(agent)
    try:
        return agent_parameter_table(path) if path else None
    except RuntimeError:
        return None


def agent_options(agent: str, where: str, note) -> dict[str, bool] | None:
    """Option name (normalised to _) -> required, from AGENT's metadata on this machine, or
    None (with a note) when the agent is not installed here."""
    known = _agent_metadata(agent)
    if known is None:
        note(where, "info", f"{agent} is not installed here: its options were not checked against its "
             "metadata (`hasupctl check` on the nodes does); if it needs a plug, give each node's in 'plugs'")
    return known


def is_fence_agent(p: Primitive) -> bool:
    return p.cls == "stonith" and p.type.startswith("fence_")


def import_fencing(crm: CrmConfig, devices: list[Primitive], names: list[str], note,
                   secrets_dir: str) -> FencingImport:
    """The `fencing:` section for the stonith primitives DEVICES; NOTE(where, kind, message)."""
    out: list[dict] = []
    split: dict[str, dict[str, str]] = {}  # Pacemaker device -> node -> hasupd device (per-node delays)
    secrets: dict[str, str] = {}
    random_max = 0.0
    timeout_prop = crm.properties.get("stonith-timeout") or crm.properties.get("fencing-timeout")
    default_timeout = pcmk_seconds(timeout_prop[0]) if timeout_prop else None
    for p in devices:
        where = crm.where(p.line)
        if not is_fence_agent(p):
            hint = ""
            if p.type == "external/libvirt" or p.type.startswith("external/"):
                hint = (" (a cluster-glue plugin, not a fence agent: for libvirt guests use fence_virsh "
                        "or fence_xvm with the same hypervisor and domain names)")
            note(where, "dropped", f"stonith device {p.id}: {p.agent} is not a fence-agents agent{hint}; "
                 "hasupd runs fence_* agents or a site command (fencing.devices[].command)")
            continue
        params = dict(p.params)
        host_map = _host_map(params.get("pcmk_host_map", ""))
        nodes = [h for h, _ in host_map] or _split_nodes(params.get("pcmk_host_list", ""))
        if not nodes:
            nodes = list(names)
            note(where, "warning", f"stonith device {p.id} names no nodes (pcmk_host_list/pcmk_host_map): "
                 f"Pacemaker asks the device; hasupd needs them, {', '.join(names)} assumed")
        for n in nodes:
            if n not in names:
                note(where, "dropped", f"stonith device {p.id}: {n!r} is not one of the cluster's nodes "
                     f"({', '.join(names)}); left out of the device's nodes")
        nodes = [n for n in nodes if n in names]
        if not nodes:
            continue
        plugs = {h: v for h, v in host_map if h in nodes}
        static_plug = params.pop("port", None) or params.pop("plug", None)
        if static_plug is not None and not plugs:
            # a plug set on the device itself: Pacemaker sends it whichever node it fences
            plugs = {n: static_plug for n in nodes}
        known = agent_options(p.type, where, note)
        if not plugs and known and known.get("plug") and params.get("pcmk_host_argument", "plug") in ("plug", "port"):
            # Pacemaker sends the node's name as the plug when nothing maps it (pcmk_host_argument)
            plugs = {n: n for n in nodes}
            note(where, "info", f"stonith device {p.id}: {p.type} needs a plug and nothing maps the nodes to "
                 "plugs: the node names are the plugs, as Pacemaker sends them")
            params.pop("pcmk_host_argument", None)
        options: dict[str, str] = {}
        secret_lines: list[str] = []
        pcmk_dropped: list[str] = []
        unknown: list[str] = []
        for k, v in params.items():
            if k in _PCMK_MAPPED:
                continue
            if _PCMK_OWN.match(k):
                pcmk_dropped.append(f"{k}={v}")
                continue
            if k == "action":
                note(where, "dropped", f"stonith device {p.id}: action={v}: hasupd sends off, then checks "
                     "with status (a reboot is off + on)")
                continue
            if k in _RESERVED_OPTIONS:
                note(where, "dropped", f"stonith device {p.id}: {k}={v}: hasupd sends the node it fences "
                     "itself (nodename=, and plug= from 'plugs')")
                continue
            if known is not None and k.replace("-", "_") not in known:
                unknown.append(k)
                continue
            if _HIDDEN.fullmatch(v):
                into = "the secrets file" if _SECRET.match(k) else "its options"
                note(where, "warning", f"stonith device {p.id}: {k} is hidden or a placeholder ({v}) in the "
                     f"source: put the real value into {into}")
            if _SECRET.match(k):
                secret_lines.append(f"{k}={v}")
            else:
                options[k] = v
        if pcmk_dropped:
            note(where, "dropped", f"stonith device {p.id}: {', '.join(pcmk_dropped)}: Pacemaker's own "
                 "device settings with no hasupd equivalent (hasupd fences the device's nodes with off, "
                 "confirms with status, one timeout per call)")
        if unknown:
            note(where, "dropped", f"stonith device {p.id}: {p.type} does not know {', '.join(unknown)} (its "
                 "metadata here): the agent ignores unknown options, `hasupctl check` refuses them")
        dev: dict = {"name": p.id, "agent": p.type, "nodes": Flow(nodes)}
        if plugs:
            dev["plugs"] = Flow(plugs)
        if options:
            dev["options"] = dict(sorted(options.items()))
        if secret_lines:
            path = os.path.join(secrets_dir, f"{p.id}.secret")
            secrets[path] = "".join(f"{line}\n" for line in sorted(secret_lines))
            dev["secrets"] = C(path, f"{', '.join(sorted(s.split('=')[0] for s in secret_lines))}: not in this "
                               "file (mode 0600)")
        t = params.get("pcmk_off_timeout") or params.get("pcmk_reboot_timeout")
        seconds = pcmk_seconds(t) if t else default_timeout
        dev["timeout"] = duration(seconds) if seconds else C("60s", "Pacemaker's default stonith-timeout")
        retries = params.get("pcmk_off_retries") or params.get("pcmk_reboot_retries")
        if retries and retries.isdigit():
            dev["retries"] = int(retries)
        delay_max = pcmk_seconds(params.get("pcmk_delay_max", "0")) or 0.0
        random_max = max(random_max, delay_max)
        base = params.get("pcmk_delay_base", "")
        per_node = _per_node(base)
        if per_node and len(nodes) > 1 and len({per_node.get(n, "0") for n in nodes}) > 1:
            # a delay per target: one device per node, each with its own delay
            split[p.id] = {n: f"{p.id}-{n}" for n in nodes}
            for n in nodes:
                d = dict(dev, name=f"{p.id}-{n}", nodes=Flow([n]))
                if plugs:
                    d["plugs"] = Flow({n: plugs[n]} if n in plugs else {})
                seconds = pcmk_seconds(per_node.get(n, "0")) or 0.0
                if seconds:
                    d["delay"] = C(duration(seconds), f"pcmk_delay_base {base} ({where}): one device per node")
                out.append(d)
            continue
        if per_node:
            base = next(iter(per_node.values()))
        if base and pcmk_seconds(base):
            dev["delay"] = duration(pcmk_seconds(base))
        out.append(dev)
    if not out:
        return FencingImport(None, {})
    section: dict = {}
    head = crm.properties.get("priority-fencing-delay")
    if head is not None:
        section["owner_head_start"] = C(duration(pcmk_seconds(head[0]) or 0.0),
                                        f"priority-fencing-delay ({crm.where(head[1])})")
    else:
        section["owner_head_start"] = C("0s", "no priority-fencing-delay in the source")
    section["random_delay_max"] = duration(random_max)
    section["devices"] = out
    levels = _levels(crm, out, split, names, note)
    if levels:
        section["levels"] = levels
    return FencingImport(section, secrets)


def _levels(crm: CrmConfig, devices: list[dict], split: dict[str, dict[str, str]], names: list[str],
            note) -> dict | None:
    if not crm.fencing_levels:
        return None
    known = {d["name"] for d in devices}
    levels: dict[str, list] = {}
    for lvl in sorted(crm.fencing_levels, key=lambda x: x.index):
        targets = names if lvl.node == "*" else [lvl.node]
        for node in targets:
            if node not in names:
                note(crm.where(lvl.line), "dropped", f"fencing level {lvl.index} for {node}: not one of the "
                     "cluster's nodes")
                continue
            devs = []
            for dname in lvl.devices:
                dname = split.get(dname, {}).get(node, dname)
                if dname not in known:
                    note(crm.where(lvl.line), "dropped", f"fencing level {lvl.index} for {node}: device "
                         f"{dname} was not carried over; the level is left out")
                    devs = []
                    break
                devs.append(dname)
            if devs:
                levels.setdefault(node, []).append(devs)
    return levels or None


# ---------------------------------------------------------------- export


@dataclass
class StonithExport:
    prims: list[tuple[str, str, list[tuple[str, str]]]]  # id, agent, params
    levels: list[tuple[str, int, list[str]]]  # node, index, devices
    properties: list[tuple[str, str]]
    notes: list[str]
    rsc_defaults: list[tuple[str, str]] = field(default_factory=list)


def export_fencing(fencing) -> StonithExport:
    """FENCING (config Fencing, fence-schema.md) -> stonith primitives, levels, properties."""
    prims, notes = [], []
    for d in fencing.devices:
        if d.agent is None:
            notes.append(f"fencing device {d.name} runs a site command ({' '.join(d.command)}): Pacemaker needs "
                         "a fence agent; configure a stonith device for it by hand")
            continue
        params = list(d.options)
        plugs = dict(d.plugs)
        if plugs:
            params.append(("pcmk_host_map", ";".join(f"{n}:{plugs[n]}" for n in d.nodes if n in plugs)))
        params.append(("pcmk_host_list", " ".join(d.nodes)))
        if d.delay:
            params.append(("pcmk_delay_base", duration(d.delay)))
        if fencing.random_delay_max:
            params.append(("pcmk_delay_max", duration(fencing.random_delay_max)))
        params.append(("pcmk_off_timeout", duration(d.timeout)))
        if d.retries != 1:
            params.append(("pcmk_off_retries", str(d.retries)))
        if d.secrets:
            notes.append(f"fencing device {d.name}: add the values of {d.secrets} to the stonith device "
                         "yourself (pcs stonith update / crm configure edit); they are not written here")
        prims.append((d.name, f"stonith:{d.agent}", params))
    levels = []
    for node, node_levels in fencing.levels:
        for i, devs in enumerate(node_levels, 1):
            levels.append((node, i, list(devs)))
    props = [("stonith-enabled", "true")]
    rsc_defaults = []
    if fencing.owner_head_start:
        props.append(("priority-fencing-delay", duration(fencing.owner_head_start)))
        # the delay spares the node whose resources weigh more: every resource weighs 1
        rsc_defaults.append(("priority", "1"))
    return StonithExport(prims, levels, props, notes, rsc_defaults)
