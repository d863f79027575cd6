"""hasupctl: the operator's command line, a thin client of the daemon.

Exit codes: 0 done; 1 refused or failed (and any command but status when
hasupd is not running); 2 usage; 3 status when hasupd is not running;
78 (EX_CONFIG) `check` found an invalid configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Any

from hasupd import __version__, planner
from hasupd import config as configmod
from hasupd.control.client import ControlError, DaemonNotRunning, request
from hasupd.history import render_timeline, timelines
from hasupd.membership.wire import KeyFileError, write_key
from hasupd.status import render_status

DEFAULT_SOCKET = configmod.default_of(configmod.Config, "control_socket")
DEFAULT_KEY = configmod.default_of(configmod.Heartbeat, "authkey")
EX_NOT_RUNNING_STATUS = 3  # like `systemctl status` / LSB "program is not running"


class Fail(Exception):
    """A one-line failure: printed as `hasupctl: MESSAGE`, exit with CODE."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _config_path(args) -> str:
    return args.config or os.environ.get("HASUPD_CONFIG") or configmod.DEFAULT_PATH


def _load_config_quietly(args):
    try:
        return configmod.load(_config_path(args))
    except configmod.ConfigError:
        return None


def _socket_path(args) -> str:
    if args.socket:
        return args.socket
    if os.environ.get("HASUPD_SOCKET"):
        return os.environ["HASUPD_SOCKET"]
    cfg = _load_config_quietly(args)
    return cfg.control_socket if cfg else DEFAULT_SOCKET


def _color(args) -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def call(args, cmd: str, timeout: float = 15.0, **params: Any) -> dict:
    """One request; a refusal or error from the daemon becomes Fail."""
    try:
        resp = request(_socket_path(args), cmd, timeout=timeout, **params)
    except DaemonNotRunning as e:
        raise Fail(str(e), EX_NOT_RUNNING_STATUS if cmd == "status" else 1) from None
    except ControlError as e:
        raise Fail(str(e)) from None
    if not resp.get("ok"):
        raise Fail(str(resp.get("error") or f"{cmd} failed"))
    return resp


def _done(resp: dict, default: str) -> int:
    if resp.get("message"):
        print(resp["message"])
    elif resp.get("changed") is False:
        print(f"{default} (nothing changed: it was already so)")
    else:
        print(default)
    return 0


# ---------------------------------------------------------------- commands


def cmd_status(args) -> int:
    while True:
        resp = call(args, "status")
        status = resp.get("status")
        if not isinstance(status, dict):
            raise Fail("hasupd answered status without a status document")
        if args.json:
            text = json.dumps(status, indent=2, sort_keys=True) + "\n"
        else:
            try:
                text = render_status(status, color=_color(args))
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise Fail(f"cannot show hasupd's status document (field {e}); try --json") from None
        if args.watch:
            sys.stdout.write("\033[H\033[2J" if sys.stdout.isatty() else "\n")
        sys.stdout.write(text)
        sys.stdout.flush()
        if not args.watch:
            return 0
        time.sleep(args.interval)


def _group_in(status: dict, name: str) -> dict | None:
    return next((g for g in status.get("groups", []) if g["name"] == name), None)


def cmd_move(args) -> int:
    params = {"group": args.group, "node": args.node, "pin": args.pin}
    if args.dry_run:
        resp = call(args, "move", dry_run=True, **params)
        target = resp.get("node") or args.node or "the other node"
        plan = resp.get("plan") or resp.get("steps_here") or []
        print(f"moving {args.group} to {target} would run {len(plan)} step(s):" if plan else
              f"moving {args.group} to {target} would change nothing")
        for i, step in enumerate(plan, 1):
            kind = step.get("kind") or step.get("action") or "?"
            what = f"{kind} {step.get('resource') or step.get('group') or ''}".strip()
            where = f" on {step['node']}" if step.get("node") else ""
            reason = f"  ({step['reason']})" if step.get("reason") else ""
            print(f"  {i}. {what}{where}{reason}")
        if resp.get("explain"):
            print(f"why: {resp['explain']}")
        return 0
    before = _group_in(call(args, "status").get("status", {}), args.group) if args.wait else None
    resp = call(args, "move", **params)
    target = resp.get("node") or args.node
    if not args.wait:
        return _done(resp, f"{args.group}: move to {target} requested"
                           + (" (pinned; `hasupctl clear` removes the pin)" if args.pin else ""))
    print(resp.get("message") or f"{args.group}: moving to {target} ...", flush=True)
    return _wait_for_move(args, target, before)


def _failures_on(grp: dict | None, node: str | None) -> tuple[int, bool]:
    if not grp:
        return 0, False
    count = sum(fc["count"] for fc in grp.get("fail_counts", []) if fc["node"] == node)
    return count, node in grp.get("bans", [])


def _wait_for_move(args, target: str | None, before: dict | None) -> int:
    """Poll the status until the group answers on TARGET, or the move has visibly failed."""
    failures_before = _failures_on(before, target)
    started = time.monotonic()
    seen_intent = False
    while True:
        time.sleep(0.5)
        status = call(args, "status").get("status", {})
        grp = _group_in(status, args.group)
        if grp is None:
            raise Fail(f"group {args.group} is not in the daemon's status")
        if grp["state"] == "started" and (target is None or grp["node"] == target):
            print(f"{args.group} answers on {grp['node']} after {time.monotonic() - started:.1f}s")
            return 0
        if grp["state"] in ("blocked", "stop_failed"):
            raise Fail(f"move failed: {args.group} is {grp['state']}: {grp['blocked'] or grp['explain']}")
        count, banned = _failures_on(grp, target)
        if count > failures_before[0] or (banned and not failures_before[1]):
            raise Fail(f"move failed: {args.group} failed on {target}: {grp.get('explain') or 'see hasupctl status'}")
        pending = grp.get("pending_move")
        seen_intent = seen_intent or pending is not None
        if seen_intent and pending is None and grp["node"] != target:
            why = grp.get("explain") or "the daemon dropped the move"
            raise Fail(f"move failed: {why}")
        if time.monotonic() - started > args.timeout:
            raise Fail(f"{args.group} is not running on {target} after {args.timeout:g}s "
                       f"(now {grp['state']}{' on ' + grp['node'] if grp['node'] else ''}): {grp.get('explain', '')}")


def cmd_simple(cmd: str, default: str, **fixed: Any):
    def run(args) -> int:
        params = {k: getattr(args, k) for k in ("group", "node") if hasattr(args, k)}
        params.update(fixed)
        resp = call(args, cmd, **params)
        names = {"group": params.get("group") or "every group", "node": params.get("node") or "this node"}
        return _done(resp, default.format(**names))
    return run


def cmd_promote(args) -> int:
    resp = call(args, "promote-force", resource=args.resource, on=not args.cancel)
    return _done(resp, f"forced promotion of {args.resource} {'withdrawn' if args.cancel else 'requested'}")


def cmd_maintenance(args) -> int:
    resp = call(args, "maintenance", on=args.state == "on")
    return _done(resp, f"maintenance {args.state}")


_REL = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d)$")


def parse_since(text: str, now: float | None = None) -> float:
    """10m, 2h, 1d (ago); HH:MM[:SS] (today); YYYY-MM-DD[ HH:MM[:SS]]; or Unix seconds."""
    now = time.time() if now is None else now
    t = text.strip()
    m = _REL.match(t)
    if m:
        return now - float(m.group(1)) * {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}[m.group(2)]
    if re.fullmatch(r"\d{9,}(\.\d+)?", t):
        return float(t)
    for fmt in ("%H:%M", "%H:%M:%S"):
        try:
            parsed = time.strptime(t, fmt)
        except ValueError:
            continue
        today = time.localtime(now)
        return time.mktime((today.tm_year, today.tm_mon, today.tm_mday, parsed.tm_hour, parsed.tm_min,
                            parsed.tm_sec, 0, 0, -1))
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return time.mktime(time.strptime(t, fmt))
        except ValueError:
            continue
    raise Fail(f"cannot read the time {text!r} (use 10m, 2h, 1d, 14:30, 2026-11-24 14:30 or Unix seconds)", 2)


def cmd_history(args) -> int:
    since = parse_since(args.since) if args.since else None
    resp = call(args, "history", since=since, timeout=30.0)
    tls = resp.get("timelines")
    if not isinstance(tls, list):  # older daemons send only the records
        tls = timelines(resp.get("records", []))
    if args.json:
        print(json.dumps({"version": 1, "since_wall": since, "timelines": tls}, indent=2))
        return 0
    if not tls:
        print("no failover or move in the history" + (f" since {args.since}" if args.since else ""))
        return 0
    print("\n\n".join(render_timeline(t) for t in tls))
    return 0


def cmd_explain(args) -> int:
    resp = call(args, "explain", group=args.group)
    explains = resp.get("explain", {})
    if isinstance(explains, str):
        print(explains)
    else:
        for group, sentence in explains.items():
            print(f"{group}: {sentence}")
    return 0


def cmd_check(args) -> int:
    path = _config_path(args)
    try:
        cfg = configmod.load(path)
    except configmod.ConfigError as e:
        raise Fail(str(e), configmod.EX_CONFIG) from None
    if cfg.fencing is not None:
        from hasupd.fencing import check_devices
        errors = check_devices(cfg.fencing)
        if errors:
            raise Fail("\n".join(errors), configmod.EX_CONFIG)
    if not args.quiet:
        from hasupd import redact

        redact.learn(cfg)
        print(redact.text(configmod.summary(cfg)))
        print(f"split-brain guard {planner.guard_price(cfg)}")
        for line in _check_drbd(cfg):
            print(line)
        print(f"{path}: valid")
    return 0


def _fence_test_here(args, node: str | None) -> list[dict]:
    import asyncio

    from hasupd.fencing import Fencer
    try:
        cfg = configmod.load(_config_path(args))
    except configmod.ConfigError as e:
        raise Fail(str(e), configmod.EX_CONFIG) from None
    if cfg.fencing is None:
        raise Fail(f"{cfg.path}: no fencing configured (a 'fencing:' section with devices)")
    if node is not None and node not in cfg.node_names():
        raise Fail(f"no node {node!r} (nodes: {', '.join(cfg.node_names())})")
    print("hasupd is not running: testing the devices from here (not recorded in its status)")
    return asyncio.run(Fencer(cfg.fencing, "hasupctl").test(node))


def cmd_fence(args) -> int:
    """`fence test [NODE]` (status/monitor, never off) or `fence NODE --yes-really`."""
    if args.target == "test":
        node = args.node
        try:
            resp = call(args, "fence-test", timeout=600.0, **({"node": node} if node else {}))
            tests = resp.get("tests") or []
        except Fail:
            if os.path.exists(_socket_path(args)):
                raise
            tests = _fence_test_here(args, node)  # before the cluster runs: test from here
        if args.json:
            print(json.dumps(tests, indent=2))
        for t in tests if not args.json else ():
            print(f"{t['node']} level {t['level']} {t['device']}: {'ok' if t['ok'] else 'FAILED'} - "
                  f"{t['message']} ({t['duration']:.2f}s)")
        if not tests:
            print("no fence device configured")
        return 0 if tests and all(t["ok"] for t in tests) else 1
    if args.node:
        raise Fail("usage: hasupctl fence NODE --yes-really | hasupctl fence test [NODE]", 2)
    if not args.yes_really:
        raise Fail(f"fencing powers {args.target} off: add --yes-really if that is what you want", 2)
    resp = call(args, "fence", timeout=600.0, node=args.target)
    f = resp.get("fence") or {}
    print(f"{args.target}: {f.get('message', '?')} ({f.get('duration', 0):.2f}s)")
    return 0 if f.get("ok") else 1


def _check_drbd(cfg) -> list[str]:
    """Which DRBD is installed here, and what its resources lack for hasupd."""
    if not cfg.drbd.resources:
        return []
    import asyncio

    from hasupd.resources import drbd as drbdmod

    async def go() -> list[str]:
        v = await drbdmod.detect_versions(cfg.drbd)
        lines = [f"DRBD: kernel module {v.kernel or 'not loaded (version unknown)'}, "
                 f"drbd-utils {v.utils or 'not found'}"]
        for r in cfg.drbd.resources:
            lines += [f"warning: {w}" for w in await drbdmod.check_resource(cfg.drbd, r.name, v)]
        return lines

    return asyncio.run(go())


def cmd_keygen(args) -> int:
    path = args.path
    if not path:
        cfg = _load_config_quietly(args)
        path = cfg.heartbeat.authkey if cfg else DEFAULT_KEY
    if os.path.lexists(path) and not args.force:
        raise Fail(f"{path} exists; a new key must be copied to both nodes at once "
                   "(use --force to replace it)")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
        write_key(path, overwrite=args.force)  # the heartbeat's own key writer (wire.py)
    except KeyFileError as e:
        raise Fail(str(e)) from None
    except OSError as e:
        raise Fail(f"cannot write {path}: {e.strerror}") from None
    print(f"wrote a new 64-byte key to {path} (mode 0400); copy it to the other node, e.g. "
          f"scp -p {path} PEER:{path}")
    return 0


def cmd_drbd_init(args) -> int:
    """Local: works before the daemon runs (see hasupd.drbd_init)."""
    import asyncio

    from hasupd.drbd_init import InitError, init, resource_file

    try:
        cfg = configmod.load(_config_path(args))
    except configmod.ConfigError as e:
        raise Fail(str(e), configmod.EX_CONFIG) from None

    def confirm(question: str) -> bool:
        if args.yes:
            return True
        if not sys.stdin.isatty():
            raise Fail(f"{question} -- needs --yes when not run from a terminal", 2)
        return input(f"{question} Type 'yes' to go on: ").strip() == "yes"

    try:
        if args.resource_file:
            print(resource_file(cfg, args.resource, args.drbd_version or _installed_drbd(cfg)), end="")
            return 0
        print(asyncio.run(init(cfg, args.resource, args.this_node_wins, confirm,
                               connect_timeout=args.timeout)))
    except InitError as e:
        raise Fail(str(e)) from None
    return 0


def _installed_drbd(cfg) -> str:
    """"9" or "8.4": the kernel module's major version here (8.4 when unknown)."""
    import asyncio

    from hasupd.resources import drbd as drbdmod

    return "9" if asyncio.run(drbdmod.detect_versions(cfg.drbd)).major == 9 else "8.4"


def render_drbd(drbd) -> str:
    """The daemon's DRBD states ({name: DrbdStatus dict}) as aligned lines."""
    items = drbd.items() if isinstance(drbd, dict) else ((d.get("resource", "?"), d) for d in drbd)
    lines = []
    for name, d in items:
        line = (f"{name}: {d.get('role', '?')}/{d.get('peer_role', '?')} "
                f"{d.get('disk', '?')}/{d.get('peer_disk', '?')} {d.get('connection', '?')}")
        if d.get("replication") not in (None, "Off", "Established"):
            line += f" {d['replication']}"
            if d.get("sync_percent") is not None:
                line += f" {d['sync_percent']:.1f}%"
            if d.get("sync_eta_s") is not None:
                line += f" eta {d['sync_eta_s']:.0f}s"
        if d.get("split_brain"):
            line += "  SPLIT BRAIN (see the alert for the recovery steps)"
        if d.get("up") is False:
            line += "  (not up)"
        lines.append(line)
    return "\n".join(lines) if lines else "no DRBD resources"


def cmd_drbd_status(args) -> int:
    resp = call(args, "drbd-status")
    if args.json:
        print(json.dumps(resp.get("drbd", {}), indent=2, sort_keys=True))
    elif resp.get("text"):
        print(resp["text"].rstrip("\n"))
    else:
        print(render_drbd(resp.get("drbd", {})))
    return 0


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hasupctl", description="Control and inspect hasupd.")
    p.add_argument("--version", action="version", version=f"hasupctl {__version__}")
    p.add_argument("--socket", help="control socket (default: the config's, or $HASUPD_SOCKET)")
    p.add_argument("--config", help=f"configuration file (default {configmod.DEFAULT_PATH}, or $HASUPD_CONFIG)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("status", help="nodes, rings, DRBD, groups, fail counts (like crm_mon -Af)")
    s.add_argument("--json", action="store_true", help="the documented JSON document")
    s.add_argument("--watch", action="store_true", help="redraw until Ctrl-C")
    s.add_argument("--interval", type=float, default=2.0, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("move", help="move a group (one-shot; --pin keeps it there)")
    s.add_argument("group")
    s.add_argument("node", nargs="?", help="target node (default: the other node)")
    s.add_argument("--pin", action="store_true", help="stay on NODE until `hasupctl clear`")
    s.add_argument("--dry-run", action="store_true", help="print the planned steps, change nothing")
    s.add_argument("--wait", action="store_true", help="return when the group answers on the target")
    s.add_argument("--timeout", type=float, default=300.0, help="for --wait, seconds (default 300)")
    s.set_defaults(func=cmd_move)

    s = sub.add_parser("clear", help="drop a move intent or pin")
    s.add_argument("group")
    s.set_defaults(func=cmd_simple("clear", "{group}: move intent and pin cleared"))

    s = sub.add_parser("cleanup", help="reset fail counts, bans and blocked state, re-probe")
    s.add_argument("group", nargs="?")
    s.add_argument("--node", help="only this node's fail counts and bans")
    s.set_defaults(func=cmd_simple("cleanup", "{group}: fail counts, bans and blocked state cleared; re-probing"))

    for name, text in (("standby", "move everything off NODE and keep it off"),
                       ("unstandby", "let NODE run groups again")):
        s = sub.add_parser(name, help=text)
        s.add_argument("node", nargs="?", help="default: this node")
        s.set_defaults(func=cmd_simple(name, f"{name} requested for {{node}}"))

    s = sub.add_parser("promote", help="--force RES: let hasupd promote RES's copy that it refuses (not "
                       "UpToDate, or stale after the peer held the group); used up once promoted")
    s.add_argument("resource")
    mode = s.add_mutually_exclusive_group(required=True)
    mode.add_argument("--force", action="store_true", help="force the promotion (accepting data loss)")
    mode.add_argument("--cancel", action="store_true", help="withdraw a forced promotion not used yet")
    s.set_defaults(func=cmd_promote)

    s = sub.add_parser("maintenance", help="on: watch but change nothing; off: manage again")
    s.add_argument("state", choices=("on", "off"))
    s.set_defaults(func=cmd_maintenance)

    for name, text in (("start", "target role started (like crm resource start)"),
                       ("stop", "target role stopped (like crm resource stop)")):
        s = sub.add_parser(name, help=text)
        s.add_argument("group")
        s.set_defaults(func=cmd_simple(name, f"{{group}}: {name} requested"))

    s = sub.add_parser("history", help="failover and move timelines, step by step")
    s.add_argument("--since", help="10m, 2h, 1d, 14:30, 2026-11-24 14:30 or Unix seconds")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_history)

    s = sub.add_parser("explain", help="why each group is where it is")
    s.add_argument("group", nargs="?")
    s.set_defaults(func=cmd_explain)

    s = sub.add_parser("check", help="validate the configuration (no daemon needed)")
    s.add_argument("--config", dest="check_config", help="file to check")
    s.add_argument("--quiet", "-q", action="store_true",
                   help="print nothing when valid (errors still go to stderr; for ExecStartPre)")
    s.set_defaults(func=cmd_check)

    for name, text in (("import", "import a Pacemaker/corosync/DRBD setup into hasupd.yaml (--crm, --pcs or "
                                  "--cib FILE ...)"),
                       ("export", "write the equivalent Pacemaker configuration (--format crm|pcs)")):
        s = sub.add_parser(name, help=text, add_help=False, prefix_chars="\0")
        s.add_argument("rest", nargs=argparse.REMAINDER, help="see `hasupctl " + name + " --help`")
        s.set_defaults(func=_migrate(name))

    s = sub.add_parser("fence", help="fence test [NODE]: check the fence devices (never off); "
                                     "fence NODE --yes-really: power NODE off")
    s.add_argument("target", metavar="test|NODE")
    s.add_argument("node", nargs="?", help="for `fence test`: only this node's devices")
    s.add_argument("--yes-really", action="store_true", help="really fence NODE")
    s.add_argument("--json", action="store_true", help="for `fence test`: the results as JSON")
    s.set_defaults(func=cmd_fence)

    s = sub.add_parser("keygen", help="make the heartbeat key (64 random bytes, mode 0400)")
    s.add_argument("path", nargs="?", help=f"default: the config's heartbeat.authkey or {DEFAULT_KEY}")
    s.add_argument("--force", action="store_true", help="replace an existing key")
    s.set_defaults(func=cmd_keygen)

    s = sub.add_parser("drbd", help="DRBD: initial sync, status")
    dsub = s.add_subparsers(dest="drbd_command", metavar="init|status")
    dsub.required = True
    d = dsub.add_parser("init", help="prepare DRBD (metadata, up); with --this-node-wins also run the "
                                     "first full sync from this node (works without the daemon)")
    d.add_argument("resource")
    d.add_argument("--this-node-wins", action="store_true",
                   help="this node's data is kept: overwrite the peer's copy")
    d.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    d.add_argument("--timeout", type=float, default=300.0, help="how long to wait for the peer (s)")
    d.add_argument("--resource-file", action="store_true",
                   help="only print /etc/drbd.d/RESOURCE.res for hasupd (fencing with its handler)")
    d.add_argument("--drbd-version", choices=("8.4", "9"),
                   help="the resource file's DRBD version (default: the installed kernel module's)")
    d.set_defaults(func=cmd_drbd_init)
    d = dsub.add_parser("status", help="DRBD state of both nodes")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_drbd_status)
    return p


def _migrate(direction: str):
    def run(args) -> int:
        from hasupd import migrate
        rest = list(args.rest)
        if direction == "export" and "--config" not in rest and getattr(args, "config", None):
            rest = ["--config", args.config, *rest]
        return (migrate.cli_import if direction == "import" else migrate.cli_export)(rest)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "check_config", None):
        args.config = args.check_config
    try:
        return args.func(args)
    except Fail as e:
        print(f"hasupctl: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130 if not getattr(args, "watch", False) else 0
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
