"""`hasupd`: the daemon's entry point (config, key, systemd, signals)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time

from hasupd import __version__, config
from hasupd.config import EX_CONFIG

EX_NOPERM = 77
EX_SOFTWARE = 70


class SystemdNotifier:
    """sd_notify through systemd-python when present, else the raw socket.

    Without a notify socket (no systemd, the lab) every call is a no-op.
    The watchdog is pinged by the engine's watchdog task while the reconcile
    loop makes progress (engine.STALL_LIMIT; an action within its own bound
    counts), so a long fence or start keeps it fed and a stuck loop stops
    the pings and systemd restarts the daemon.
    """

    def __init__(self) -> None:
        self.address = os.environ.get("NOTIFY_SOCKET")
        usec = os.environ.get("WATCHDOG_USEC")
        self.watchdog_interval = int(usec) / 2e6 if usec and usec.isdigit() else None
        self._last_ping = 0.0
        self._last_status = ""

    def _send(self, text: str) -> None:
        if not self.address:
            return
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                # never wait on the service manager: a full queue drops this one message (the
                # next ping follows), it must not block the loop that the watchdog watches
                s.sendto(text.encode(), socket.MSG_DONTWAIT, addr)
        except OSError:
            pass

    def __call__(self, ready: bool = False, watchdog: bool = False, status: str = "",
                 stopping: bool = False) -> None:
        lines = []
        if ready:
            lines.append("READY=1")
        if stopping:
            lines.append("STOPPING=1")
        if status and status != self._last_status:
            lines.append(f"STATUS={status}")
            self._last_status = status
        now = time.monotonic()
        if watchdog and self.watchdog_interval and now - self._last_ping >= self.watchdog_interval / 2:
            lines.append("WATCHDOG=1")
            self._last_ping = now
        if lines:
            self._send("\n".join(lines))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hasupd", description="two-node failover daemon")
    p.add_argument("--config", "-c", default=os.environ.get("HASUPD_CONFIG", config.DEFAULT_PATH))
    p.add_argument("--node", help="this node's name (default: the host name)")
    p.add_argument("--stop-resources-on-exit", action="store_true",
                   help="on SIGTERM stop the groups running here (clean node shutdown); "
                        "by default they keep running and the peer is told we are leaving")
    p.add_argument("--version", action="version", version=f"hasupd {__version__}")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = config.load(args.config)
    except config.ConfigError as e:
        print(f"hasupd: {e}", file=sys.stderr)
        return EX_CONFIG
    from hasupd.membership.wire import KeyFileError, load_key

    try:
        local = local_node_name(cfg, args.node)
    except LookupError as e:
        print(f"hasupd: {cfg.path}: {e}", file=sys.stderr)
        return EX_CONFIG
    try:
        key = load_key(cfg.heartbeat.authkey)
    except KeyFileError as e:
        print(f"hasupd: {e} (make one with `hasupctl keygen` and copy it to the peer)", file=sys.stderr)
        return EX_CONFIG
    os.makedirs(cfg.state_dir, exist_ok=True)
    notifier = SystemdNotifier()
    return asyncio.run(_run(cfg, local, key, args, notifier))


def local_node_name(cfg, explicit: str | None) -> str:
    """--node, else $HASUPD_NODE, else the host name (short or full)."""
    names = cfg.node_names()
    for cand in (explicit, os.environ.get("HASUPD_NODE"), socket.gethostname(),
                 socket.gethostname().split(".")[0]):
        if cand and cand in names:
            return cand
    raise LookupError(f"this host ({socket.gethostname()}) is neither {names[0]} nor {names[1]} "
                      "in the configuration; use --node NAME")


def build_engine(cfg, local: str, key: bytes, *, foreground: bool = True, stop_resources_on_exit: bool = False,
                 notify=None, fencer=None):
    """The engine with its real collaborators: drivers, DRBD, heartbeat, fencer, guard, history,
    alerter and state store (tests/engine/ hands in fakes instead)."""
    from hasupd import redact
    from hasupd.alerts import Alerter
    from hasupd.engine import Engine
    from hasupd.fencing import Fencer
    from hasupd.history import History
    from hasupd.membership import heartbeat, tiebreaker
    from hasupd.resources import drbd, make_driver
    from hasupd.state import StateStore

    redact.learn(cfg)  # the configuration's secrets are masked in every output
    history = History(cfg.state_dir, cfg.history_max_bytes, node=local)
    alerter = Alerter(cfg, local, foreground=foreground)
    alerter.history = history
    if fencer is None and cfg.fencing is not None:
        fencer = Fencer(cfg.fencing, local)  # fence-schema.md's Fencer
    guard = None
    if cfg.split_brain_guard.ping is not None:  # mode ping, or fence/drbd's tie-breaker
        guard = tiebreaker.PingGuard(cfg.split_brain_guard.ping)
    return Engine(
        cfg, local, history=history, alerter=alerter, fencer=fencer, guard=guard, notify=notify,
        stop_resources_on_exit=stop_resources_on_exit,
        heartbeat=heartbeat.Heartbeat(cfg, local, key,
                                      replay_state=os.path.join(cfg.state_dir, "peer-incarnation.json")),
        drivers={r.name: make_driver(r, local) for g in cfg.groups for r in g.resources},
        drbd={r.name: drbd.DrbdDriver(cfg.drbd, r) for r in cfg.drbd.resources},
        store=StateStore(os.path.join(cfg.state_dir, "state.json")))


async def _run(cfg, local, key, args, notifier) -> int:
    from hasupd.control.commands import Commands
    from hasupd.control.server import ControlServer

    engine = build_engine(cfg, local, key, foreground=sys.stderr.isatty() or not os.environ.get("INVOCATION_ID"),
                          stop_resources_on_exit=args.stop_resources_on_exit, notify=notifier)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, engine.request_stop)
    server = ControlServer(cfg.control_socket, cfg.control_group, Commands(engine).handle)
    await server.start()
    if cfg.metrics is not None:
        start_metrics(engine, cfg.metrics)
    try:
        await engine.run()
    finally:
        notifier(stopping=True)
        await server.close()
        if engine.metrics is not None:
            engine.metrics.close()
    return 0


def start_metrics(engine, where) -> None:
    """The metrics endpoint: a failure to serve it is alerted, never fatal."""
    try:
        from hasupd.metrics import Metrics
    except ImportError as e:
        engine.alerter.emit("metrics_unavailable", "warning", f"metrics.listen is set but {e.name or e} "
                            "cannot be imported (install python3-prometheus-client): no metrics endpoint")
        return
    metrics = Metrics(engine)
    try:
        metrics.start(where.address, where.port)
    except OSError as e:
        engine.alerter.emit("metrics_unavailable", "warning", f"cannot serve metrics on "
                            f"{where.address or '*'}:{where.port}: {e.strerror or e}")
        return
    engine.metrics = metrics


if __name__ == "__main__":
    sys.exit(main())
