"""What a command sends back to its client: output lines, and the refusal of a
state change (DRBD's exact text and exit code)."""

from __future__ import annotations

import asyncio
import json


class CmdError(Exception):
    """A refused command: the exact text DRBD prints (stderr) and its exit code."""

    def __init__(self, text: str, code: int):
        super().__init__(text)
        self.text, self.code = text, code


class Out:
    """What a command prints; events2 streams write straight to the client."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer

    def send(self, **msg) -> None:
        self.writer.write((json.dumps(msg) + "\n").encode())
