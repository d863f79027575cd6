"""``hasupd-drbd-handler fence-peer|unfence-peer|split-brain``: DRBD's
handlers, answered by the local hasupd daemon (like crm-fence-peer with
Pacemaker).  drbd.conf::

    resource r0 {
      disk { fencing resource-and-stonith; }    # DRBD 9: net { fencing resource-and-stonith; }
      handlers {
        fence-peer   "/usr/bin/hasupd-drbd-handler fence-peer";
        unfence-peer "/usr/bin/hasupd-drbd-handler unfence-peer";
        split-brain  "/usr/bin/hasupd-drbd-handler split-brain";
      }
    }

DRBD runs a handler with no arguments and the resource in its environment
(``DRBD_RESOURCE``, ``DRBD_PEER``, ``DRBD_PEERS``, ``DRBD_PEER_ADDRESS``,
``DRBD_MINOR``, ...).  The first argument names the handler.

Control socket protocol (one JSON object per line, UNIX stream socket at
``$HASUPD_SOCKET`` or /run/hasupd/hasupd.sock; one request, one response):

    -> {"cmd": "drbd-fence-peer", "resource": "r0", "peer": "node2",
        "peer_address": "10.99.0.2", "minor": "1"}
    <- {"ok": true, "verdict": "outdated"|"down"|"fenced"|"peer-primary"|"unknown",
        "detail": "one sentence"}
    -> {"cmd": "drbd-unfence-peer", "resource": "r0", "peer": "node2"}
    <- {"ok": true}
    -> {"cmd": "alert", "severity": "critical", "event": "drbd_split_brain",
        "resource": "r0", "peer": "node2", "reason": "...recovery steps..."}
    <- {"ok": true}

The daemon answers fence-peer with ``fence_peer_verdict()`` below (pure, the
whole decision); the verdict maps to DRBD's exit codes: outdated 4, down 5,
peer-primary 6 (the peer is Primary: DRBD outdates this node), fenced 7,
anything else (unknown, daemon unreachable, timeout, bad answer) 1 = failed,
after which DRBD does not promote (and a Primary keeps its I/O frozen, with
resource-and-stonith).  A wrong "yes" here is a split brain, so every doubt
answers "unknown", and silence alone is never "down" (issue 17): a peer
heard on the heartbeat with good data is asked to outdate itself (the engine
carries the request in its heartbeat, the peer runs ``drbdadm outdate`` when
it is a disconnected Secondary, and its next heartbeat shows the disk
Outdated: exit 4); a silent peer is fenced with the fence devices (exit 7),
and without devices, or when fencing fails, the answer is 1.  The price:
with guard drbd and no fence device, a vanished peer means no automatic
takeover (data before availability, as LINBIT's guide ranks them).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass

from hasupd.model import DrbdStatus, FenceState

DEFAULT_SOCKET = "/run/hasupd/hasupd.sock"
DEFAULT_TIMEOUT = 60.0  # s; HASUPD_HANDLER_TIMEOUT overrides (DRBD waits for us)

EXIT_CODES = {"outdated": 4, "down": 5, "peer-primary": 6, "fenced": 7}
EXIT_FAILED = 1
VERDICTS = ("outdated", "down", "fenced", "peer-primary", "unknown")

# peer disk states in which the peer cannot become Primary without a resync
_PEER_NOT_USABLE = ("Outdated", "Inconsistent", "Diskless", "Failed")


@dataclass(frozen=True)
class FenceVerdict:
    verdict: str  # one of VERDICTS
    detail: str  # one sentence: why
    # the peer is alive with good data: the engine should ask it to outdate
    # itself (`drbdadm outdate R` on the peer) and decide again when its
    # heartbeat shows the disk Outdated
    ask_peer_to_outdate: bool = False
    # the peer is silent: the engine should fence it with the fence devices
    # and decide again with the outcome
    fence_peer: bool = False

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.verdict, EXIT_FAILED)


def fence_peer_verdict(
    peer_alive: bool,
    peer_drbd: DrbdStatus | None,
    guard_mode: str,
    fencing_state: FenceState,
    *,
    tiebreaker: bool | None = None,
    resource: str = "",
    devices: bool = False,
    peer_power: str = "",
) -> FenceVerdict:
    """Decide the fence-peer answer for ``resource``.

    peer_alive: the heartbeat hears the peer (on any ring, within deadtime).
    peer_drbd: the peer's own report of the resource (its last heartbeat),
      None when it never reported it.
    guard_mode: split_brain_guard.mode (ping | fence | drbd | none).
    fencing_state: the fencing of the peer (this loss of it).
    tiebreaker: the tie-breaker is reachable from here (None: not known / none).
    devices: fence devices can fence the peer.
    peer_power: the devices' power status of the silent peer ("off": fenced already).
    """
    r = resource or "the resource"
    if peer_alive:
        if peer_drbd is None:
            return FenceVerdict("unknown", f"the peer is alive but has not reported {r}: cannot "
                                           "tell whether it is Primary")
        if peer_drbd.role == "Primary":
            return FenceVerdict("peer-primary", f"the peer is alive and Primary for {r}: this node "
                                                "must not promote (DRBD outdates it)")
        if not peer_drbd.up:
            # a resource that is down cannot be promoted there without hasupd
            # bringing it up, and then its own fence-peer asks its daemon
            return FenceVerdict("down", f"the peer is alive but {r} is down there")
        if peer_drbd.disk in _PEER_NOT_USABLE:
            return FenceVerdict("outdated", f"the peer is alive, Secondary, and its disk is "
                                            f"{peer_drbd.disk}")
        return FenceVerdict("unknown", f"the peer is alive and Secondary with a {peer_drbd.disk} "
                                       "disk: it must outdate itself first",
                            ask_peer_to_outdate=True)
    # the peer is silent on every ring: only a fence (or the ping heuristic, or guard none's
    # explicit choice) answers yes; silence alone never does
    if fencing_state is FenceState.SUCCEEDED:
        return FenceVerdict("fenced", "the peer is silent and was fenced")
    if peer_power == "off":
        return FenceVerdict("fenced", "the peer is silent and its fence devices report it powered off")
    if guard_mode not in ("ping", "fence", "drbd", "none"):
        return FenceVerdict("unknown", f"unknown split-brain guard {guard_mode!r}")
    if tiebreaker is False:
        return FenceVerdict("unknown", "the peer is silent and this node does not reach the "
                                       "tie-breaker: this node may be the isolated one, it fences nobody")
    if devices:
        if fencing_state is FenceState.FAILED:
            return FenceVerdict("unknown", "the peer is silent and fencing it failed")
        return FenceVerdict("unknown", "the peer is silent: fence it with the fence devices", fence_peer=True)
    if guard_mode == "ping" and tiebreaker:
        return FenceVerdict("down", "the peer is silent and this node reaches the tie-breaker")
    if guard_mode == "none":
        return FenceVerdict("down", "the peer is silent on every heartbeat ring and split_brain_guard is "
                                    "none (takeover on silence, by choice)")
    return FenceVerdict("unknown", "the peer is silent and no fence device can fence it: silence alone "
                                   "never lets this node promote")


# ---------------------------------------------------------------- client side


def socket_path() -> str:
    return os.environ.get("HASUPD_SOCKET", DEFAULT_SOCKET)


def request(msg: dict, timeout: float, path: str | None = None) -> dict:
    """One JSON line to the daemon, one JSON line back.  Raises OSError or
    ValueError on any failure (the callers turn them into exit codes)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path or socket_path())
        s.sendall(json.dumps(msg).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    if not buf.strip():
        raise ValueError("the daemon closed the connection without an answer")
    answer = json.loads(buf.split(b"\n", 1)[0])
    if not isinstance(answer, dict):
        raise ValueError("the daemon's answer is not a JSON object")
    return answer


def _log(msg: str, critical: bool = False) -> None:
    """stderr (DRBD logs the handler's output) and syslog."""
    print(f"hasupd-drbd-handler: {msg}", file=sys.stderr, flush=True)
    try:
        import syslog

        syslog.openlog("hasupd-drbd-handler", syslog.LOG_PID, syslog.LOG_DAEMON)
        syslog.syslog(syslog.LOG_CRIT if critical else syslog.LOG_NOTICE, msg)
    except Exception:  # syslog is best effort: stderr already has it
        pass


def _env() -> tuple[str, str, dict]:
    resource = os.environ.get("DRBD_RESOURCE", "")
    peer = os.environ.get("DRBD_PEER", "") or os.environ.get("DRBD_PEERS", "").split(" ")[0]
    if not peer and "DRBD_PEER_NODE_ID" in os.environ:  # DRBD 9 names the peer by node id
        # drbdadm 9 sets DRBD_NODE_ID_<id> to the host's `on` names (space separated)
        peer = (os.environ.get(f"DRBD_NODE_ID_{os.environ['DRBD_PEER_NODE_ID']}", "").split() or [""])[0]
    extra = {k: os.environ[e] for k, e in (("peer_address", "DRBD_PEER_ADDRESS"), ("minor", "DRBD_MINOR"))
             if os.environ.get(e)}
    if "minor" not in extra and os.environ.get("DRBD_MINORS", "").split():  # 9: connection-level helper
        extra["minor"] = os.environ["DRBD_MINORS"].split()[0]
    return resource, peer, extra


def _timeout() -> float:
    try:
        return float(os.environ.get("HASUPD_HANDLER_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


def fence_peer() -> int:
    resource, peer, extra = _env()
    if not resource:
        _log("fence-peer: DRBD_RESOURCE is not set (run by DRBD's handlers section only): failed")
        return EXIT_FAILED
    try:
        answer = request({"cmd": "drbd-fence-peer", "resource": resource, "peer": peer, **extra},
                         _timeout())
    except (OSError, ValueError) as e:
        _log(f"fence-peer {resource}: cannot ask the hasupd daemon at {socket_path()} ({e}): "
             "failed, DRBD will not promote", critical=True)
        return EXIT_FAILED
    verdict, detail = answer.get("verdict"), answer.get("detail", "")
    if not answer.get("ok") or verdict not in VERDICTS:
        _log(f"fence-peer {resource}: the daemon answered {json.dumps(answer)}: failed", critical=True)
        return EXIT_FAILED
    code = EXIT_CODES.get(verdict, EXIT_FAILED)
    _log(f"fence-peer {resource} peer {peer or '?'}: {verdict} ({detail}): exit {code}",
         critical=code == EXIT_FAILED)
    return code


def unfence_peer() -> int:
    resource, peer, _ = _env()
    try:
        request({"cmd": "drbd-unfence-peer", "resource": resource, "peer": peer}, min(_timeout(), 10.0))
    except (OSError, ValueError) as e:
        _log(f"unfence-peer {resource}: daemon not told ({e}); nothing to undo here")
    else:
        _log(f"unfence-peer {resource} peer {peer or '?'}: the daemon was told")
    return 0


def split_brain_steps(resource: str) -> str:
    r = resource or "RESOURCE"
    return (f"on the node whose changes are to be discarded (the victim) run "
            f"`drbdadm secondary {r}; drbdadm connect --discard-my-data {r}`, "
            f"then on the survivor `drbdadm connect {r}`")


def split_brain() -> int:
    resource, peer, _ = _env()
    reason = (f"DRBD split brain on {resource or '?'} with peer {peer or '?'}: the nodes' data "
              f"diverged and DRBD stays StandAlone; nothing is promoted automatically; "
              f"{split_brain_steps(resource)}")
    _log(reason, critical=True)
    try:
        request({"cmd": "alert", "severity": "critical", "event": "drbd_split_brain",
                 "resource": resource, "peer": peer, "reason": reason}, min(_timeout(), 10.0))
    except (OSError, ValueError) as e:
        _log(f"split-brain {resource}: could not alert the hasupd daemon ({e})", critical=True)
    return 0


HANDLERS = {"fence-peer": fence_peer, "unfence-peer": unfence_peer, "split-brain": split_brain}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in HANDLERS:
        print("usage: hasupd-drbd-handler fence-peer|unfence-peer|split-brain  "
              "(for drbd.conf's handlers section)", file=sys.stderr)
        return 2  # DRBD counts any code but 3-7 as failed: nothing is promoted
    try:
        return HANDLERS[args[0]]()
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
