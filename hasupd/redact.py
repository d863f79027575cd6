"""Secrets never reach a log, a history record, an alert or a status (issue 16).

Two nets, used together by every sink (alerts.py, history.py, the status,
the fence runner, ``hasupctl check``):

* the secrets the configuration holds are registered at load time
  (``learn(cfg)``: the values of secret options in the fence command, OCF
  parameters with a secret name) and every occurrence of their value is
  replaced, whatever path carried it (an agent that echoes its arguments,
  an exception message, a command line in a failure);
* options that look secret (``--password=X``, ``--password X``, ``passwd=X``,
  ``password: X``) are masked by shape even when the value was never
  registered (a command line built elsewhere, a new helper).

``MASK`` replaces the value; the name stays, so the reader sees that a
secret was there.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterable, Sequence

MASK = "***"
# names whose values are secrets: fence-agents' password/passwd, SNMP community, tokens, keys
_SECRET_WORD = r"(?:pass(?:word|wd|phrase)?|secret|token|community|credentials?|api[_-]?key|auth[_-]?key|private[_-]?key)"
_SECRET_NAME = re.compile(rf"(?i)^[\w.-]*{_SECRET_WORD}[\w.-]*$")
# --password=X, --password X, -password X (in one text)
_OPTION = re.compile(rf"(?i)(?<![\w-])(--?[\w.-]*{_SECRET_WORD}[\w.-]*)(=|\s+)(\"[^\"]*\"|'[^']*'|[^\s\"']+)")
# passwd=X, password: X, "password": "X"
_ASSIGN = re.compile(rf"(?i)(?<![\w-])([\w.-]*{_SECRET_WORD}[\w.-]*\"?)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;\"'}})]+)")
# fence-agents' short password option (-p PASSWORD); only in a fence agent's command line
_SHORT_PASSWORD = ("-p",)
MIN_SECRET = 3  # shorter values would mask innocent text everywhere

_known: set[str] = set()


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.match(name.lstrip("-")))


def register(*secrets: str) -> None:
    """Values to mask wherever they appear from now on (this process)."""
    for s in secrets:
        if isinstance(s, str) and len(s) >= MIN_SECRET:
            _known.add(s)


def argv_secrets(argv: Sequence[str]) -> list[str]:
    """The secret values in a command line (``--password=X``, ``--password X``, ``passwd=X``,
    and ``-p X`` of a fence agent)."""
    found = []
    fence_agent = bool(argv) and os.path.basename(str(argv[0])).startswith("fence_")
    for i, arg in enumerate(argv):
        arg = str(arg)
        name, eq, value = arg.partition("=")
        if eq and is_secret_name(name):
            found.append(value)
        elif i + 1 < len(argv) and arg.startswith("-") and not eq and (
                is_secret_name(arg) or (fence_agent and arg in _SHORT_PASSWORD)):
            found.append(str(argv[i + 1]))
    return found


def argv(args: Sequence[str]) -> list[str]:
    """A command line fit for a log: secret values masked."""
    secrets = set(argv_secrets(args))
    return [text(a) if a not in secrets else MASK for a in map(str, args)]


def text(s: str) -> str:
    """s with every registered secret and every secret-looking option value masked."""
    if not isinstance(s, str) or not s:
        return s
    for secret in sorted(_known, key=len, reverse=True):
        if secret in s:
            s = s.replace(secret, MASK)
    s = _OPTION.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", s)
    return _ASSIGN.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", s)


def value(obj: Any) -> Any:
    """Any JSON-like value with text() applied to every string in it (keys included)."""
    if isinstance(obj, str):
        return text(obj)
    if isinstance(obj, dict):
        return {text(k) if isinstance(k, str) else k: value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [value(v) for v in obj]
    return obj


def learn(cfg) -> None:
    """Register the secrets a loaded configuration holds."""
    register(*config_secrets(cfg))


def config_secrets(cfg) -> Iterable[str]:
    guard = getattr(cfg, "split_brain_guard", None)
    fence = getattr(guard, "fence", None)
    if fence is not None:
        yield from argv_secrets(fence.command)
    for device in getattr(getattr(cfg, "fencing", None), "devices", ()):
        yield from argv_secrets(device.command or ())
    for g in getattr(cfg, "groups", ()):
        for r in g.resources:
            for name, val in getattr(r, "params", ()) or ():
                if is_secret_name(name):
                    yield val
