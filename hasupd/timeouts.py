"""The one way hasupd bounds a wait: ``await within(awaitable, seconds)``.

It returns the awaitable's value, or raises ``Timeout`` when SECONDS pass
first (the awaitable is then cancelled).  ``cancel=False`` leaves a timed-out
awaitable running: for a probe that may hang in the kernel, which must stay
visible as hung to the next monitor instead of being piled on by another.
The caller says what a timeout means (a failed Result, a retry, nothing).
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

T = TypeVar("T")

Timeout = asyncio.TimeoutError  # the builtin TimeoutError from Python 3.11 on


async def within(awaitable: Awaitable[T], seconds: float | None, *, cancel: bool = True) -> T:
    """None: no bound."""
    if cancel:
        return await asyncio.wait_for(awaitable, seconds)
    future = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({future}, timeout=seconds)
    if not done:
        raise Timeout(f"not done within {seconds}s")
    return future.result()
