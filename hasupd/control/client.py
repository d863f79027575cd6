"""Talking to the daemon's control socket (blocking; for hasupctl and tools)."""

from __future__ import annotations

import socket
from typing import Any

from hasupd.control.protocol import MAX_RESPONSE, ProtocolError, decode_response, encode


class DaemonNotRunning(Exception):
    """No daemon on the socket (one line, ready to print)."""


class ControlError(Exception):
    """The socket could not be used or the daemon's answer was unusable (one line)."""


def request(path: str, cmd: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
    """Send one request and return the daemon's response dict (``ok`` may be False)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except FileNotFoundError:
            raise DaemonNotRunning(f"hasupd is not running (no control socket {path})") from None
        except ConnectionRefusedError:
            raise DaemonNotRunning(f"hasupd is not running (nothing answers on {path})") from None
        except PermissionError:
            raise ControlError(f"permission denied: cannot open {path} "
                               "(needs root or membership of the control group)") from None
        except socket.timeout:
            raise ControlError(f"hasupd did not accept the connection within {timeout:g}s") from None
        except OSError as e:
            raise ControlError(f"cannot connect to {path}: {e.strerror}") from None
        try:
            s.sendall(encode({"cmd": cmd, **args}))
            buf = bytearray()
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise ControlError(f"hasupd closed the connection without answering {cmd}")
                buf += chunk
                if len(buf) > MAX_RESPONSE:
                    raise ControlError("hasupd's answer is too long")
        except socket.timeout:
            raise ControlError(f"hasupd did not answer {cmd} within {timeout:g}s") from None
        except (BrokenPipeError, ConnectionResetError):
            raise ControlError(f"hasupd closed the connection during {cmd}") from None
        try:
            return decode_response(bytes(buf))
        except ProtocolError as e:
            raise ControlError(str(e)) from None
    finally:
        s.close()
