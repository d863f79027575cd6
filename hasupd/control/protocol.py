"""The control protocol: newline-delimited JSON over a UNIX socket.

Request:  ``{"cmd": "move", "group": "rg_web", "node": "n2", "pin": false}``
Response: ``{"ok": true, ...}`` or ``{"ok": false, "error": "one line"}``

One request per line; a connection may carry several.  No I/O here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_LINE = 1 << 20  # a request longer than this is refused
MAX_RESPONSE = 64 << 20  # status/history answers can be large

READ_ONLY = frozenset({"status", "history", "explain", "check", "drbd-status"})
CHANGING = frozenset({"move", "clear", "cleanup", "standby", "unstandby", "maintenance", "start", "stop",
                      "drbd-init", "drbd-fence-peer", "drbd-unfence-peer", "alert",
                      "fence", "fence-test", "promote-force"})  # fence-test: root only, it logs in to the BMCs
COMMANDS = READ_ONLY | CHANGING


class ProtocolError(ValueError):
    """A request that cannot be understood (one line for the response)."""


@dataclass(frozen=True)
class PeerCred:
    """Who is on the other end of the socket (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...] = ()  # supplementary groups at connect time (SO_PEERGROUPS)


def cli_name(cmd: str) -> str:
    """The hasupctl words for a protocol command (drbd-init -> drbd init)."""
    if cmd == "fence-test":
        return "fence test"
    return cmd.replace("drbd-", "drbd ") if cmd.startswith("drbd-") else cmd


def permission_error(cmd: str) -> str:
    return f"permission denied: hasupctl {cli_name(cmd)} needs root"


def encode(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n"


def decode_request(line: bytes) -> tuple[str, dict[str, Any]]:
    """(cmd, args) of one request line; ProtocolError with a clear reason otherwise."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("malformed request: not JSON") from None
    except RecursionError:
        raise ProtocolError("malformed request: nested too deeply") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed request: expected a JSON object")
    cmd = obj.pop("cmd", None)
    if not isinstance(cmd, str):
        raise ProtocolError("malformed request: no \"cmd\"")
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}")
    return cmd, obj


def decode_response(line: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("malformed response from hasupd") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool):
        raise ProtocolError("malformed response from hasupd")
    return obj


def error(message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": message, **extra}
