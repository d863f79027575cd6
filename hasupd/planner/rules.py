"""The rule registry: every rule of the two-node contract (DESIGN.md's rules 1-12, rule 13: the stale
copy after a fence, issues 17/23, and the decisions taken where it is silent) has an id, declared once by ``@rule`` on the function that implements it.

A rule function's first argument carries a ``fired`` list (the group's facts, or the round): when
the function's answer says the rule applied (by default: the answer is true, e.g. a decision or a
reason that bars a node), its id is appended, so that a plan says which rules decided it
(``planner.rules_fired``) without any I/O.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Rule:
    id: str  # "R<design rule number>-<slug>"
    statement: str  # one line
    code: str  # module:function that implements it


RULES: dict[str, Rule] = {}


class Trace:
    """What a rule function's first argument carries: the ids of the rules that applied, in order."""

    def __init__(self) -> None:
        self.fired: list[str] = []


def rule(rule_id: str, statement: str, applied: Callable[[Any], bool] = bool
         ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare rule_id as implemented by the decorated function; applied(answer): did it apply?"""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if rule_id in RULES:
            raise ValueError(f"rule {rule_id} is declared twice ({RULES[rule_id].code})")
        RULES[rule_id] = Rule(rule_id, statement, f"{fn.__module__}:{fn.__qualname__}")

        @functools.wraps(fn)
        def traced(*args: Any, **kw: Any) -> Any:
            out = fn(*args, **kw)
            fired = getattr(args[0], "fired", None) if args else None
            if fired is not None and applied(out):
                fired.append(rule_id)
            return out
        return traced
    return register
