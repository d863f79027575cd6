"""hasupd.timeouts.within: the one way a wait is bounded."""

from __future__ import annotations

import asyncio

import pytest

from hasupd.timeouts import Timeout, within


def test_value_when_done_in_time():
    async def quick():
        await asyncio.sleep(0)
        return 7

    assert asyncio.run(within(quick(), 5.0)) == 7


def test_timeout_cancels_the_awaitable():
    async def main():
        task = asyncio.ensure_future(asyncio.sleep(30))
        with pytest.raises(Timeout):
            await within(task, 0.05)
        await asyncio.sleep(0)
        return task.cancelled()

    assert asyncio.run(main()) is True


def test_timeout_without_cancel_leaves_it_running_and_its_result_readable_later():
    async def main():
        gate = asyncio.Event()

        async def probe():
            await gate.wait()
            return "late"

        task = asyncio.ensure_future(probe())
        with pytest.raises(Timeout):
            await within(task, 0.05, cancel=False)
        assert not task.done()  # still hanging: the next monitor must see it
        gate.set()
        return await within(task, 5.0)

    assert asyncio.run(main()) == "late"


def test_exceptions_of_the_awaitable_pass_through():
    async def failing():
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError):
        asyncio.run(within(failing(), 5.0, cancel=False))
    with pytest.raises(OSError):
        asyncio.run(within(failing(), 5.0))
