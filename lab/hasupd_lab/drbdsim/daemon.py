"""The simulated DRBD "kernel module" of one node: the command server.
``python -m hasupd_lab.drbdsim.daemon --node n1 --config SIM.json``.

See the package docstring (lab/hasupd_lab/drbdsim/__init__.py) for the model
and the README for the module map.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys

from hasupd_lab.drbdsim import commands, dialect
from hasupd_lab.drbdsim import config as simconfig
from hasupd_lab.drbdsim.node import Node
from hasupd_lab.drbdsim.output import Out


async def serve(node: Node) -> None:
    sock = node.paths.socket
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        out = Out(writer)
        try:
            req = json.loads(await reader.readline())
            rc = await commands.dispatch(node, req, out, reader)
        except (ValueError, KeyError) as e:
            out.send(err=f"drbdsim: bad request: {e}\n")
            rc = 20
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except Exception as e:  # a simulator bug: say so instead of hanging the client
            node.internal_error(f"command {req!r}")
            out.send(err=f"drbdsim: internal error: {e!r}\n")
            rc = 20
        with contextlib.suppress(Exception):
            out.send(rc=rc)
            await writer.drain()
            writer.close()

    server = await asyncio.start_unix_server(handle, sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def dump_tasks() -> None:  # kill -USR1: where is every task (debugging)
        for t in asyncio.all_tasks():
            t.print_stack(file=sys.stderr)
        sys.stderr.flush()

    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    node.write_status()
    async with server:
        await stop.wait()
    await node.shutdown()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="drbdsim-daemon", description="simulated DRBD 8.4 node")
    ap.add_argument("--node", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--module", choices=("missing", "available", "loaded"), default="available")
    ap.add_argument("--minor-count", type=int, default=32)
    ap.add_argument("--drbd-version", choices=dialect.VERSIONS, default="8.4")
    a = ap.parse_args(argv)
    try:
        cfg = simconfig.load(a.config)
        node = Node(cfg, a.node, a.module, a.minor_count, a.drbd_version)
    except simconfig.SimConfigError as e:
        print(f"drbdsim: {e}", file=sys.stderr)
        return 78
    node.cleanup_stale_loops()
    asyncio.run(serve(node))
    return 0


if __name__ == "__main__":
    sys.exit(main())
