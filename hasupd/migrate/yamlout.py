"""A small YAML writer that keeps comments: hasupd.yaml as people read it.

Build the document from dicts, lists and scalars; wrap a value in ``C`` to
give its line a comment (``approx=`` makes it ``# approximated: ...``), in
``Flow`` to write it on one line (``[a, b]``, ``{start: 240s}``), and put a
``Comment`` key in a dict for a comment line of its own.
"""

from __future__ import annotations

import json

import yaml

COMMENT_COLUMN = 34


class C:
    def __init__(self, value, comment: str | None = None, approx: str | None = None):
        self.value = value
        self.comment = f"approximated: {approx}" if approx else comment


class Flow:
    def __init__(self, value):
        self.value = value


class Comment:
    """A dict key that renders as a comment line; each instance is its own key."""

    def __init__(self, text: str):
        self.text = text


def scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    try:
        plain = s != "" and yaml.safe_load(s) == s and s == s.strip() and ": " not in s \
            and " #" not in s and s[0] not in "!&*[]{}|>'\"%@`,#?-" and not s.endswith(":")
    except yaml.YAMLError:
        plain = False
    return s if plain else json.dumps(s)


def _flow(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    text = scalar(v)
    if not text.startswith('"') and any(c in text for c in ",[]{}"):
        text = json.dumps(str(v))  # flow indicators inside [..] / {..}
    return text


def _with_comment(text: str, comment: str | None) -> str:
    if not comment:
        return text
    pad = max(COMMENT_COLUMN - len(text), 2)
    return f"{text}{' ' * pad}# {comment}"


def _unwrap(v):
    comment = None
    if isinstance(v, C):
        v, comment = v.value, v.comment
    return v, comment


def _is_block(v) -> bool:
    return isinstance(v, dict) or (isinstance(v, (list, tuple)) and any(isinstance(x, dict) for x in v))


def _mapping(d: dict, indent: int, out: list[str], first_prefix: str | None = None) -> None:
    first = True
    for key, value in d.items():
        pad = first_prefix if (first and first_prefix is not None) else " " * indent
        first = False
        if isinstance(key, Comment):
            out.append(f"{pad}# {key.text}")
            continue
        value, comment = _unwrap(value)
        if isinstance(value, Flow):
            out.append(_with_comment(f"{pad}{key}: {_flow(value.value)}", comment))
        elif isinstance(value, dict):
            out.append(_with_comment(f"{pad}{key}:", comment))
            _mapping(value, indent + 2, out)
        elif isinstance(value, (list, tuple)) and _is_block(value):
            out.append(_with_comment(f"{pad}{key}:", comment))
            _sequence(value, indent + 2, out)
        elif isinstance(value, (list, tuple)):
            out.append(_with_comment(f"{pad}{key}: {_flow(value)}", comment))
        else:
            out.append(_with_comment(f"{pad}{key}: {scalar(value)}", comment))


def _sequence(items, indent: int, out: list[str]) -> None:
    for item in items:
        item, comment = _unwrap(item)
        if isinstance(item, dict):
            _mapping(item, indent + 2, out, first_prefix=" " * indent + "- ")
        else:
            out.append(_with_comment(f"{' ' * indent}- {scalar(item)}", comment))


def render(doc: dict, header: list[str]) -> str:
    out = [f"# {h}" if h else "#" for h in header]
    for key, value in doc.items():
        out.append("")
        _mapping({key: value}, 0, out)
    return "\n".join(out).lstrip("\n") + "\n"
