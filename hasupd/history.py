"""Bounded, append-only history (JSON lines) and failover timelines.

``STATE_DIR/history.jsonl``, rotated to ``history.jsonl.1`` when it would
grow past ``max_bytes`` (one old file is kept, so at most twice that is
used).  Each record::

    {"mono": 1234.5678, "wall": 1795545737.123, "kind": "action-done",
     "group": "rg_web", "resource": "res_httpd", "action": "start",
     "reason": "...", "ok": true, "message": "...", "duration": 0.412, ...}

kinds: ``start``/``stop`` (the daemon), ``decision`` (the planner's
actions and reason), ``action-start``/``action-done`` (with ``ok`` and
``duration``), ``observation`` (``state``: failed, peer_dead, ...),
``alert``.  Extra fields are kept as given.

``timelines(records)`` turns records into failover/move timelines for
``hasupctl history`` and the benchmarks.

In the daemon, reading the files is kept off the event loop: a full
default-size history takes ~0.15 s to parse and group (several times that
on a busy machine), which would delay heartbeats.  ``last_failovers`` and
``report`` run on one worker thread of their own; ``last_failovers`` is
computed once per change of the history and shared by concurrent callers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import time
from typing import Any, Iterable, Iterator, Sequence

from hasupd import config, redact

FILE = "history.jsonl"
TIMELINE_GAP = 30.0  # seconds without a related record closes a timeline
# a new planner decision this long after the last action finished (none still
# running) starts a timeline of its own: it answers a new situation
DECISION_GAP = 2.0
# what starts a timeline: a failure seen, or the peer lost
TRIGGER_STATES = ("failed", "peer_dead", "stop_failed", "takeover")
# bookkeeping actions that take no time and would only clutter a timeline
QUIET_ACTIONS = ("alert", "forget_move", "forget_force", "forget_alert")
STATUS_WINDOW = 86400.0  # status shows the last failover of this many seconds
FAILOVERS_TTL = 60.0  # seconds a computed last-failover answer is reused when nothing was recorded


class History:
    def __init__(self, state_dir: str, max_bytes: int = config.default_of(config.Config, "history_max_bytes"), node: str | None = None):
        self.path = os.path.join(state_dir, FILE)
        self.max_bytes = max_bytes
        self.node = node  # written into each record when set (for merging two nodes' files)
        self.errors = 0  # records that could not be written (full disk, ...): counted, never raised
        self.version = 0  # records written by this object: what the status cache is keyed by
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self._failovers: tuple[int, float, dict] | None = None  # (version, computed at, answer)
        self._computing: asyncio.Future | None = None

    def record(self, kind: str, **fields: Any) -> dict:
        rec: dict[str, Any] = {"mono": round(time.monotonic(), 6), "wall": round(time.time(), 6), "kind": kind}
        if self.node:
            rec["node"] = self.node
        rec.update({k: redact.value(v) for k, v in fields.items() if v is not None})
        line = (json.dumps(rec, separators=(",", ":"), default=str) + "\n").encode()
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            try:
                size = os.path.getsize(self.path)
            except FileNotFoundError:
                size = 0
            if size and size + len(line) > self.max_bytes:
                os.replace(self.path, self.path + ".1")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError:
            self.errors += 1
        self.version += 1
        return rec

    def read(self, since_wall: float | None = None) -> list[dict]:
        return list(read(os.path.dirname(self.path), since_wall))

    # ------------------------------------------------------------ off the event loop

    async def _in_worker(self, fn, *args):
        if self._worker is None:
            self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="history")
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def last_failovers(self, groups: Sequence[str]) -> dict[str, dict | None]:
        """{group: its latest failover timeline of the last STATUS_WINDOW, or None}."""
        cached = self._failovers
        if cached and cached[0] == self.version and time.monotonic() - cached[1] < FAILOVERS_TTL:
            return cached[2]
        if self._computing is None or self._computing.done():
            self._computing = asyncio.ensure_future(self._compute_failovers(tuple(groups)))
        return await asyncio.shield(self._computing)

    async def _compute_failovers(self, groups: tuple[str, ...]) -> dict[str, dict | None]:
        version, at = self.version, time.monotonic()

        def compute() -> dict[str, dict | None]:
            tls = timelines(self.read(time.time() - STATUS_WINDOW))
            return {g: latest_failover(tls, g) for g in groups}

        answer = await self._in_worker(compute)
        self._failovers = (version, at, answer)
        return answer

    async def report(self, since_wall: float | None, limit: int) -> dict:
        """``hasupctl history``: the last LIMIT records and every timeline."""
        def compute() -> dict:
            records = self.read(since_wall)
            return {"records": records[-limit:] if limit > 0 else [], "timelines": timelines(records)}

        return await self._in_worker(compute)


def split_brain_unresolved(records: Iterable[dict], resource: str, status) -> bool:
    """After a daemon restart: was DRBD ``resource`` in a split brain that nothing resolved since?
    True when DRBD is up and not connected (a split brain leaves it StandAlone, or waiting for
    a peer that is) and the latest record about it is the split-brain alert, not the cleared
    condition (a successful handshake clears it: the driver sees replication again)."""
    if not status.up or status.connection == "Connected" or status.split_brain:
        return False
    key, open_ = f"split_brain:{resource}", False
    for rec in records:
        if rec.get("kind") == "alert" and rec.get("event") == "drbd_split_brain" and rec.get("resource") == resource:
            open_ = True
        elif rec.get("action") == "forget_alert" and key in str(rec.get("reason", "")):
            open_ = False
    return open_


def read(state_dir: str, since_wall: float | None = None) -> Iterator[dict]:
    """Records of the rotated file then the current one, oldest first; bad lines skipped."""
    base = os.path.join(state_dir, FILE)
    for path in (base + ".1", base):
        try:
            with open(path, "rb") as f:
                lines = f.readlines()
        except OSError:
            continue
        for raw in lines:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue  # a torn last line after a crash
            if not isinstance(rec, dict):
                continue
            if since_wall is not None and rec.get("wall", 0) < since_wall:
                continue
            yield rec


# ---------------------------------------------------------------- timelines


def _is_trigger(rec: dict) -> bool:
    return rec.get("kind") == "observation" and rec.get("state") in TRIGGER_STATES


def _step_name(rec: dict) -> str:
    if rec.get("kind") == "observation":
        what = rec.get("resource") or rec.get("group") or ""
        label = {"failed": "failure seen", "peer_dead": "peer lost", "stop_failed": "stop failed",
                 "takeover": "takeover"}
        return f"{label.get(rec.get('state'), rec.get('state', 'observed'))} {what}".strip()
    return f"{rec.get('action', '?')} {rec.get('resource') or rec.get('group') or ''}".strip()


def timelines(records: Iterable[dict], gap: float = TIMELINE_GAP) -> list[dict]:
    """Group records into timelines: a trigger (failure seen, peer lost), an
    operator's request (``intent`` records: move, cleanup, ...) or a planner
    decision, then the actions that followed (stop, demote, promote,
    start: mount, vip, httpd answering) until ``gap`` seconds pass quietly.

    Each timeline::

        {"kind": "failover" | "move" | "change", "group": "rg_web" | None,
         "trigger": "failure seen res_httpd", "start_wall": ..., "nodes": [...],
         "steps": [{"step": "stop res_httpd", "node": ..., "offset": 0.02,
                    "duration": 0.3, "ok": true, "message": "..."}],
         "total": 4.2,          # from the first event to the end of the last step
         "outcome": "ok" | "failed"}

    Offsets use the monotonic clock when every record comes from one node,
    the wall clock when two nodes' histories are merged.
    """
    recs = [r for r in records if isinstance(r, dict) and r.get("kind") in
            ("observation", "decision", "action-start", "action-done", "intent")
            and r.get("action") not in QUIET_ACTIONS]
    one_node = len({r.get("node") for r in recs}) <= 1
    clock = "mono" if one_node else "wall"
    recs.sort(key=lambda r: r.get(clock, 0))
    out: list[dict] = []
    cur: dict | None = None
    last_t = 0.0
    for r in recs:
        t = float(r.get(clock, 0))
        quiet = cur is not None and t - last_t > gap
        intent = r.get("kind") == "intent"  # an operator's request always starts its own timeline
        # a failure starts a new timeline unless a failover is still under way
        fresh_failure = _is_trigger(r) and cur is not None and (cur["_done"] or cur["kind"] != "failover")
        new_decision = (r.get("kind") == "decision" and cur is not None and cur["_actions"]
                        and not cur["_open"] and t - cur["_end"] > DECISION_GAP)
        if cur is None or quiet or intent or fresh_failure or new_decision:
            if cur is not None:
                out.append(cur)
                cur = None
            if not (_is_trigger(r) or r.get("kind") in ("decision", "action-start", "action-done", "intent")):
                continue  # an observation that starts nothing
            if r.get("kind") == "action-done":
                continue  # the tail of something we did not see begin
            kind = "failover" if _is_trigger(r) else ("move" if intent and r.get("action") == "move" else "change")
            cur = {"kind": kind, "group": r.get("group"),
                   "trigger": _step_name(r) if _is_trigger(r) else (r.get("reason") or "planner decision"),
                   "start_wall": r.get("wall"), "nodes": [], "steps": [], "_t0": t, "_open": {},
                   "_done": False, "_end": t, "_actions": 0}
        last_t = t
        node = r.get("node")
        if node not in cur["nodes"]:
            cur["nodes"].append(node)
        if cur["group"] is None and r.get("group"):
            cur["group"] = r.get("group")
        kind = r.get("kind")
        if _is_trigger(r):
            cur["steps"].append({"step": _step_name(r), "node": node, "offset": round(t - cur["_t0"], 4),
                                 "duration": 0.0, "ok": True, "message": r.get("reason", "")})
        elif kind == "action-start":
            cur["_open"][(node, r.get("action"), r.get("resource"), r.get("group"))] = t
        elif kind == "action-done":
            key = (node, r.get("action"), r.get("resource"), r.get("group"))
            begun = cur["_open"].pop(key, None)
            duration = float(r["duration"]) if isinstance(r.get("duration"), (int, float)) else \
                (t - begun if begun is not None else 0.0)
            begin = begun if begun is not None else t - duration
            cur["steps"].append({"step": _step_name(r), "node": node,
                                 "offset": round(begin - cur["_t0"], 4), "duration": round(duration, 4),
                                 "ok": bool(r.get("ok", True)), "message": r.get("message", "")})
            cur["_end"] = max(cur["_end"], t)
            cur["_actions"] += 1
            # a group fully started again ends the timeline at the next trigger
            cur["_done"] = r.get("action") == "start" and bool(r.get("ok", True))
    if cur is not None:
        out.append(cur)
    result = []
    for tl in out:
        if tl["kind"] in ("change", "move") and not tl["_actions"]:
            continue  # a decision or request that ran nothing
        tl["steps"].sort(key=lambda st: st["offset"])  # records arrive when steps end
        tl["total"] = round(tl["_end"] - tl["_t0"], 4)
        tl["outcome"] = "ok" if all(s["ok"] for s in tl["steps"]) else "failed"
        for k in ("_t0", "_open", "_done", "_end", "_actions"):
            tl.pop(k)
        result.append(tl)
    return result


def last_failover(records: Iterable[dict], group: str) -> dict | None:
    """The latest failover timeline of GROUP (for status), or None."""
    return latest_failover(timelines(records), group)


def latest_failover(tls: Sequence[dict], group: str) -> dict | None:
    found = [t for t in tls if t["kind"] == "failover" and t["group"] in (group, None)]
    return found[-1] if found else None


def render_timeline(tl: dict) -> str:
    """Human form: one header line, one aligned line per step."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(tl["start_wall"] or 0))
    head = (f"{when}  {tl['kind']} of {tl['group'] or '(cluster)'}: {tl['trigger']} "
            f"— {tl['total']:.2f}s, {tl['outcome']}")
    lines = [head]
    width = max((len(s["step"]) for s in tl["steps"]), default=0)
    many_nodes = len([n for n in tl["nodes"] if n]) > 1
    for s in tl["steps"]:
        where = f"  on {s['node']}" if many_nodes and s["node"] else ""
        mark = "" if s["ok"] else f"  FAILED: {s['message']}"
        lines.append(f"  +{s['offset']:7.3f}s  {s['step']:<{width}}  {s['duration']:7.3f}s{where}{mark}")
    return "\n".join(lines)
