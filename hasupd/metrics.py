"""Prometheus metrics: an optional HTTP endpoint (``metrics: {listen: ADDRESS:PORT}``).

prometheus_client writes the exposition format and serves it.  Nearly
everything is read from the engine at scrape time (a custom collector); the
loop owns that state, so the scrape thread asks the loop for the metric
families and waits (a stuck loop fails the scrape, which Prometheus shows
as ``up == 0``).  Events that happen between scrapes (failovers, their
steps, control requests, fence operations) are counted through small hooks
the engine calls on ``engine.metrics``.

DRBD metrics use drbd-reactor's names and labels (``name``, ``conn_name``,
``peer_node_id``, ``volume``, ``minor``; an enum's label is named after the
metric), so its dashboards and alerts carry over; what drbd-reactor does
not export (peer disk, replication, split brain) is ``hasupd_drbd_*`` in the
same style.  Enums are one series per state (1 for the current one).
"""

from __future__ import annotations

import asyncio
import ipaddress
import platform
import re
import socket
import subprocess
import threading
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

from hasupd import __version__
from hasupd.membership.wire import REASONS as DROP_REASONS
from hasupd.model import ResState

GROUP_ROLES = ("active", "passive", "standby", "blocked")
GUARD_MODES = ("fence", "drbd", "ping", "none")
FAILOVER_REASONS = ("peer_lost", "resource_failure", "move", "standby", "other")
DRBD_ROLES = ("Primary", "Secondary", "Unknown")
DRBD_DISK_STATES = ("Diskless", "Attaching", "Detaching", "Failed", "Negotiating", "Inconsistent",
                    "Outdated", "DUnknown", "Consistent", "UpToDate")
DRBD_CONNECTION_STATES = ("StandAlone", "Disconnecting", "Unconnected", "Timeout", "BrokenPipe",
                          "NetworkFailure", "ProtocolError", "TearDown", "Connecting", "Connected")
DRBD_REPLICATION_STATES = ("Off", "Established", "StartingSyncS", "StartingSyncT", "WFBitMapS", "WFBitMapT",
                           "WFSyncUUID", "SyncSource", "SyncTarget", "VerifyS", "VerifyT", "PausedSyncS",
                           "PausedSyncT", "Ahead", "Behind")
FAILOVER_BUCKETS = (0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120, 240)
STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 240)
SCRAPE_TIMEOUT = 10.0  # the loop answers a scrape within this, or the scrape fails


def _enum(name: str, doc: str, labels: list[str], states, rows, label: str = "") -> GaugeMetricFamily:
    """One series per (row, state): 1 for the row's current state; the state's
    label is ``label``, else named after the metric (drbd-reactor's way).  A
    state outside the known set still gets its series (DRBD may name new ones)."""
    fam = GaugeMetricFamily(name, doc, labels=[*labels, label or name])
    for values, current in rows:
        for s in dict.fromkeys((*states, current)):
            fam.add_metric([*values, s], 1.0 if s == current else 0.0)
    return fam


def drbd_versions(drbdadm: str = "drbdadm", status_path: str = "/proc/drbd") -> tuple[str, str]:
    """(kernel module, utils) versions, "" when unknown (no module, no utils)."""
    kmod = ""
    for path, pattern in (("/sys/module/drbd/version", r"^\s*(\S+)"), (status_path, r"^version:\s*(\S+)")):
        try:
            with open(path) as f:
                m = re.search(pattern, f.read(4096), re.M)
        except OSError:
            continue
        if m:
            kmod = m.group(1)
            break
    utils = ""
    try:
        out = subprocess.run([drbdadm, "--version"], capture_output=True, text=True, timeout=5).stdout
        m = re.search(r"^DRBDADM_VERSION=(\S+)", out, re.M)
        utils = m.group(1) if m else ""
    except (OSError, subprocess.SubprocessError):
        pass
    return kmod, utils


def failover_reason(engine, group: str) -> str:
    """Why this node takes ``group`` over from the peer, as a small fixed set."""
    peer = engine.peer_name
    if not engine.heartbeat.peer().alive:
        return "peer_lost"
    st = engine.store.state
    if (group, peer) in st.bans_view() or any(
            node == peer and g == group for node, g, _ in st.fail_counts_view()):
        return "resource_failure"
    if group in st.moves_view():
        return "move"
    if st.standby.get(peer, False):
        return "standby"
    return "other"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # scrapes are not worth a log line each
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _EngineCollector:
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self):
        m = self.metrics
        loop = m.loop
        if loop is None:
            return []
        if m.versions is None:  # once, in the scrape thread (a subprocess: not on the loop)
            m.versions = drbd_versions(m.engine.cfg.drbd.drbdadm, m.engine.cfg.drbd.status_path)
        future = asyncio.run_coroutine_threadsafe(_on_loop(m.families), loop)
        return [m.build_info(), *future.result(SCRAPE_TIMEOUT)]


async def _on_loop(fn):
    return fn()


class Metrics:
    """The engine's metrics: ``engine.metrics = Metrics(engine)``, then ``start()``."""

    def __init__(self, engine):
        self.engine = engine
        self.loop: asyncio.AbstractEventLoop | None = None
        self.versions: tuple[str, str] | None = None
        self.server: WSGIServer | None = None
        self.thread: threading.Thread | None = None
        self.failing_over: set[str] = set()  # groups taken over from the peer, not yet all started
        r = self.registry = CollectorRegistry(auto_describe=False)
        self.failovers = Counter("hasupd_failovers", "Failovers to this node (group taken over from the peer)",
                                 ["group", "reason"], registry=r)
        self.failover_seconds = Histogram(
            "hasupd_failover_duration_seconds", "From the takeover decision to the whole group started here",
            ["group"], buckets=FAILOVER_BUCKETS, registry=r)
        self.failover_step_seconds = Histogram(
            "hasupd_failover_step_duration_seconds", "Each action of a takeover (promote, start ...)",
            ["group", "step"], buckets=STEP_BUCKETS, registry=r)
        self.control_requests = Counter("hasupd_control_requests", "hasupctl requests by command",
                                        ["command"], registry=r)
        self.fence_operations = Counter("hasupd_fence_operations", "Fence operations by device and result",
                                        ["device", "result"], registry=r)
        for g in engine.cfg.groups:  # a counter that exists from 0 makes increase() exact
            for reason in FAILOVER_REASONS:
                self.failovers.labels(g.name, reason)
        r.register(_EngineCollector(self))

    # ------------------------------------------------------------ serving

    def start(self, address: str, port: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Listen on address:port (OSError when it cannot)."""
        self.loop = loop or asyncio.get_running_loop()
        six = bool(address) and ipaddress.ip_address(address).version == 6
        self.server = make_server(address or "0.0.0.0", port, make_wsgi_app(self.registry),
                                  server_class=_Server6 if six else _Server, handler_class=_QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1] if self.server else 0

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # ------------------------------------------------------------ hooks (called on the loop)

    def failover_started(self, group: str) -> None:
        self.failing_over.add(group)
        self.failovers.labels(group, failover_reason(self.engine, group)).inc()

    def failover_finished(self, group: str, seconds: float) -> None:
        """A group started here: timed when it was a failover (not a first start)."""
        if group in self.failing_over:
            self.failing_over.discard(group)
            self.failover_seconds.labels(group).observe(seconds)

    def action_done(self, action, seconds: float) -> None:
        if action.group in self.failing_over:
            self.failover_step_seconds.labels(action.group, action.kind.value).observe(seconds)

    def control_request(self, command: str) -> None:
        self.control_requests.labels(command).inc()

    def fence_done(self, ok: bool) -> None:
        last = getattr(getattr(self.engine, "fencer", None), "last_fence", None)
        device = last.get("device") if isinstance(last, dict) else None
        self.fence_operations.labels(device if isinstance(device, str) and device else "all",
                                     "success" if ok else "failure").inc()

    # ------------------------------------------------------------ scrape time

    def build_info(self) -> InfoMetricFamily:
        kmod, utils = self.versions or ("", "")
        e = self.engine
        return InfoMetricFamily("hasupd_build", "hasupd, Python and DRBD versions", value={
            "version": __version__, "python": platform.python_version(), "drbd_kmod": kmod,
            "drbd_utils": utils, "node": e.local, "cluster": e.cfg.cluster})

    def families(self) -> list:
        """Every state metric, read from the engine now (on the loop)."""
        e = self.engine
        return [*self._node(e), *self._rings(e), *self._groups(e), *self._drbd(e), *self._fencing(e)]

    def _node(self, e) -> list:
        peer = e.heartbeat.peer()
        alive = GaugeMetricFamily("hasupd_peer_reachable", "1 while the peer is heard on some ring")
        alive.add_metric([], 1.0 if peer.alive else 0.0)
        guard = _enum("hasupd_split_brain_guard", "The split-brain guard (split_brain_guard.mode)",
                      [], GUARD_MODES, [([], e.cfg.split_brain_guard.mode)], "mode")
        out = [alive, guard]
        if e.guard is not None:
            tb = GaugeMetricFamily("hasupd_tiebreaker_reachable", "1 while the tie-breaker answers "
                                   "(absent until the first check)")
            if e.guard.reachable is not None:
                tb.add_metric([], 1.0 if e.guard.reachable else 0.0)
            out.append(tb)
        a = e.alerter
        failed = CounterMetricFamily("hasupd_alert_deliveries_failed", "Alerts an agent did not deliver",
                                     labels=["reason"])
        failed.add_metric(["failed"], a.agent_failures)
        failed.add_metric(["timeout"], a.agent_timeouts)
        failed.add_metric(["dropped"], a.dropped)
        return [*out, failed]

    def _rings(self, e) -> list:
        hb = e.heartbeat
        peer = hb.peer()
        now_wall, now = time.time(), time.monotonic()
        up = GaugeMetricFamily("hasupd_ring_peer_reachable", "1 while the peer is heard on this ring",
                               labels=["ring"])
        seen = GaugeMetricFamily("hasupd_ring_last_packet_timestamp_seconds",
                                 "When the last valid packet from the peer arrived on this ring", labels=["ring"])
        received = CounterMetricFamily("hasupd_ring_packets_received", "Valid packets from the peer",
                                       labels=["ring"])
        dropped = CounterMetricFamily("hasupd_ring_packets_dropped", "Packets dropped, by reason "
                                      "(mac: bad signature, replay, malformed, cluster: another cluster ...)",
                                      labels=["ring", "reason"])
        for i, stats in enumerate(hb.ring_stats()):
            ring = str(i)
            up.add_metric([ring], 1.0 if i < len(peer.rings) and peer.rings[i] else 0.0)
            last = stats["last_seen"]
            if last is not None:
                seen.add_metric([ring], now_wall - (now - last))
            received.add_metric([ring], stats["received"])
            for reason in DROP_REASONS:
                dropped.add_metric([ring, reason], stats["dropped"].get(reason, 0))
        payload = GaugeMetricFamily("hasupd_heartbeat_payload_bytes", "Size of the state sent in each packet")
        payload.add_metric([], hb.payload_bytes())
        return [up, seen, received, dropped, payload]

    def _groups(self, e) -> list:
        st = e.store.state
        wall = time.time()
        standby = st.standby.get(e.local, False)
        banned, blocked = st.bans_view(), st.blocked
        fails = st.fail_counts_view()
        roles, states = [], []
        count = GaugeMetricFamily("hasupd_resource_fail_count", "Failures of the resource on this node "
                                  "(expired ones excluded)", labels=["group", "resource"])
        threshold = GaugeMetricFamily("hasupd_resource_migration_threshold", "Failures that move the group",
                                      labels=["group", "resource"])
        for g in e.cfg.groups:
            here = [e.resources[r.name].state for r in g.resources]
            primary = bool(g.drbd) and e.drbd_status[g.drbd].role == "Primary"
            if ResState.STARTED in here or primary:
                role = "active"
            elif g.name in blocked or (g.name, e.local) in banned:
                role = "blocked"
            elif standby:
                role = "standby"
            else:
                role = "passive"
            roles.append(([g.name], role))
            for r, s in zip(g.resources, here):
                states.append(([g.name, r.name], s.value))
                fc = fails.get((e.local, g.name, r.name))
                n = 0 if fc is None or (g.failure_timeout > 0 and wall - fc.last_failure_wall > g.failure_timeout) \
                    else fc.count
                count.add_metric([g.name, r.name], n)
                threshold.add_metric([g.name, r.name], g.migration_threshold)
        return [
            _enum("hasupd_group_role", "This node's role for the group", ["group"], GROUP_ROLES, roles, "role"),
            _enum("hasupd_resource_state", "The resource's state on this node", ["group", "resource"],
                  [s.value for s in ResState], states, "state"),
            count, threshold,
        ]

    def _drbd(self, e) -> list:
        peer = e.peer_name
        res, dev, conn, pdisk, repl = [], [], [], [], []
        oos = GaugeMetricFamily("drbd_peerdevice_outofsync_bytes", "Bytes out of sync with this peer",
                                labels=["name", "conn_name", "peer_node_id", "volume"])
        sb = GaugeMetricFamily("hasupd_drbd_split_brain", "1 when DRBD reported a split brain",
                               labels=["name"])
        for d in e.cfg.drbd.resources:
            s = e.drbd_status[d.name]
            minor = str(s.minor if s.minor is not None else d.minor)
            pd = [d.name, peer, "", "0"]
            res.append(([d.name], s.role))
            dev.append(([d.name, "0", minor], s.disk))
            conn.append(([d.name, peer, ""], s.connection))
            pdisk.append((pd, s.peer_disk))
            repl.append((pd, s.replication))
            oos.add_metric(pd, s.out_of_sync_kib * 1024)
            sb.add_metric([d.name], 1.0 if s.split_brain else 0.0)
        pd_labels = ["name", "conn_name", "peer_node_id", "volume"]
        return [
            _enum("drbd_resource_role", "DRBD role of the resource", ["name"], DRBD_ROLES, res),
            _enum("drbd_device_state", "DRBD disk state", ["name", "volume", "minor"], DRBD_DISK_STATES, dev),
            _enum("drbd_connection_state", "DRBD connection state", ["name", "conn_name", "peer_node_id"],
                  DRBD_CONNECTION_STATES, conn),
            _enum("hasupd_drbd_peer_disk_state", "The peer's disk state as DRBD sees it", pd_labels,
                  DRBD_DISK_STATES, pdisk),
            _enum("hasupd_drbd_replication_state", "DRBD replication state", pd_labels,
                  DRBD_REPLICATION_STATES, repl),
            oos, sb,
        ]

    def _fencing(self, e) -> list:
        # the fence devices' periodic tests (hasupd.fencing.Fencer.last_tests: device -> {when, ok, message})
        tests = getattr(getattr(e, "fencer", None), "last_tests", None)
        ok = GaugeMetricFamily("hasupd_fence_device_test_ok", "1 when the device's last test succeeded",
                               labels=["device"])
        when = GaugeMetricFamily("hasupd_fence_device_last_test_timestamp_seconds",
                                 "When the device was last tested", labels=["device"])
        if isinstance(tests, dict):
            for device, t in tests.items():
                if not isinstance(t, dict):
                    continue
                ok.add_metric([str(device)], 1.0 if t.get("ok") else 0.0)
                if isinstance(t.get("when"), (int, float)):
                    when.add_metric([str(device)], float(t["when"]))
        return [ok, when]
