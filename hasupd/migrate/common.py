"""What every migration parser shares: positions, notes, the data error."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

EX_DATAERR = 65  # sysexits.h: the input data was incorrect


class DataError(Exception):
    """Input that cannot be parsed at all (exit 65), with file:line."""

    def __init__(self, where: str, message: str):
        self.where, self.message = where, message
        self.notes: list[Note] = []  # what the importer had noted before it gave up
        super().__init__(f"{where}: {message}")


class Refused(DataError):
    """A configuration hasupd deliberately does not run (3+ nodes, active/active,
    dual-primary, stacked DRBD): the message says what was found and why."""

    def __init__(self, where: str, found: str, why: str):
        super().__init__(where, f"not for hasupd: {found}. {why} Stay on Pacemaker for this "
                         "cluster (`hasupctl export` goes the other way, for the two-node groups hasupd runs).")


@dataclass(frozen=True)
class Note:
    """One thing the summary on stderr tells the user.

    kind: ``unknown`` (syntax this importer does not know; reported, never
    dropped silently), ``dropped`` (understood but not carried over, and why),
    ``warning`` (carried over, but worth a look), ``info``.
    """

    where: str
    kind: str
    message: str

    def render(self) -> str:
        return f"{self.where}: {self.kind}: {self.message}" if self.where else f"{self.kind}: {self.message}"


def kv(pairs: dict[str, str]) -> str:
    """NAME=VALUE words, as crm writes them."""
    return " ".join(f"{k}={v}" for k, v in pairs.items())


def at(path: str, line: int) -> str:
    return f"{path}:{line}"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|msec|s|sec|m|min|h|hr)?\s*$", re.I)
_UNITS = {None: 1.0, "ms": 0.001, "msec": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0,
          "h": 3600.0, "hr": 3600.0}


def pcmk_seconds(text: str) -> float | None:
    """A Pacemaker duration ("20s", "240", "1min", "500ms") in seconds, or None."""
    m = _DURATION.match(text or "")
    if not m:
        return None
    return float(m.group(1)) * _UNITS[(m.group(2) or "").lower() or None]


def pcmk_score(text: str) -> float | None:
    """A Pacemaker score ("INFINITY", "-inf", "+INFINITY", "100") or None."""
    t = (text or "").strip().lower().lstrip("+")
    if t in ("inf", "infinity"):
        return math.inf
    if t in ("-inf", "-infinity"):
        return -math.inf
    try:
        return float(int(t))
    except ValueError:
        return None


def duration(seconds: float) -> str:
    """Seconds in hasupd's duration syntax: 200ms, 20s, 10m."""
    if seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    s = int(seconds)
    if s >= 600 and s % 60 == 0:
        return f"{s // 60}m"
    return f"{s}s"


def score_text(value: float) -> str:
    if math.isinf(value):
        return "INFINITY" if value > 0 else "-INFINITY"
    return str(int(value))
