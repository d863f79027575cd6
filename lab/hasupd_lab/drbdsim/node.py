"""One simulated node ("the kernel module"): its resources, the events2
subscribers, kern.log, the /proc/drbd file and the loop devices it owns."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import sys
import time
import traceback
from typing import TYPE_CHECKING

from hasupd_lab.drbdsim import config as simconfig
from hasupd_lab.drbdsim import dialect, storage
from hasupd_lab.drbdsim.resource import Res

if TYPE_CHECKING:
    from hasupd_lab.drbdsim.output import Out


class Node:
    def __init__(self, cfg: simconfig.SimConfig, name: str, module: str, minor_count: int = 32,
                 drbd_version: str = "8.4"):
        self.cfg, self.name = cfg, name
        self.drbd_version = drbd_version  # "8.4" | "9": what the node prints (render / render9)
        self.render = dialect.renderer(drbd_version, {r.minor: r.name for r in cfg.resources})
        self.paths = cfg.node(name)
        self.module = module  # missing | available | loaded
        self.minor_count = minor_count
        os.makedirs(self.paths.state_dir, exist_ok=True)
        os.makedirs(cfg.image_dir, exist_ok=True)
        self.resources = {r.name: Res(self, r) for r in cfg.resources if any(h.name == name for h in r.hosts)}
        self.subscribers: list[tuple[Out, str | None, bool, bool]] = []
        self.logf = open(os.path.join(self.paths.state_dir, "kern.log"), "a", buffering=1)
        self.t0 = time.monotonic()
        self.lock = asyncio.Lock()
        self.loops_path = os.path.join(self.paths.state_dir, "loops")
        self.background: set[asyncio.Task] = set()

    def dialect_view(self, r: Res) -> dict:
        return dialect.view_fields(self.drbd_version, r)

    def reload(self) -> None:
        """Re-read the sim config: fencing, handlers, ping and rates apply from now on."""
        try:
            cfg = simconfig.load(self.cfg.path)
        except simconfig.SimConfigError as e:
            self.log(f"drbdsim: config not reloaded: {e}")
            return
        self.cfg = cfg
        for rc in cfg.resources:
            if rc.name in self.resources:
                self.resources[rc.name].rc = rc

    def spawn(self, coro) -> asyncio.Task:
        t = asyncio.create_task(coro)
        self.background.add(t)
        t.add_done_callback(self._task_done)
        return t

    def _task_done(self, t: asyncio.Task) -> None:
        self.background.discard(t)
        if not t.cancelled() and t.exception() is not None:
            self.internal_error(f"task {t.get_coro().__qualname__}", t.exception())

    def internal_error(self, where: str, exc: BaseException | None = None) -> None:
        """Log a simulator bug to stderr (daemon.log) and kern.log, where test failures show it."""
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) if exc else traceback.format_exc()
        sys.stderr.write(f"drbdsim: internal error in {where}:\n{text}")
        sys.stderr.flush()
        self.log(f"drbdsim: INTERNAL ERROR in {where}: {text.strip().splitlines()[-1]}")

    def log(self, msg: str) -> None:
        self.logf.write(f"[{time.monotonic() - self.t0:12.6f}] {msg}\n")

    def publish(self, resname: str, verb: str, obj: str, keys, fields, stats, stats_only: bool = False) -> None:
        now = None
        for out, filt, statistics, timestamps in list(self.subscribers):
            if filt not in (None, "all", resname):
                continue
            if stats_only and not statistics:
                continue
            line = self.render.event_line(verb, obj, keys, fields, stats if statistics else None)
            if timestamps:
                now = now or datetime.datetime.now(datetime.timezone.utc).isoformat()
                line = f"{now} {line}"
            try:
                out.send(out=line + "\n")
            except Exception:
                pass

    def write_status(self) -> None:
        path = self.paths.status_path
        dialect.write_roles(self)
        if self.module != "loaded":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        text = self.render.proc_drbd([r.view() for r in self.resources.values() if r.up])
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    def track_loop(self, dev: str, add: bool) -> None:
        loops = set(self._loops())
        (loops.add if add else loops.discard)(dev)
        with open(self.loops_path, "w") as f:
            f.write("".join(f"{d}\n" for d in sorted(loops)))

    def _loops(self) -> list[str]:
        try:
            with open(self.loops_path) as f:
                return [x.strip() for x in f if x.strip()]
        except OSError:
            return []

    def cleanup_stale_loops(self) -> None:
        """After a crash (daemon killed) our old loop devices may remain: drop the unused ones."""
        images = os.path.realpath(self.cfg.image_dir) + "/"
        for dev in self._loops():
            backing = storage.loop_backing(dev) or ""
            if backing.startswith(images) and not storage.held_open(dev):  # still ours, unused
                storage.detach_loop(dev)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.loops_path)
        for r in self.resources.values():
            storage.unpublish_device(r.me.device)

    async def shutdown(self) -> None:
        for r in self.resources.values():
            if r.link:
                await r.link.close()
            await r.stop_tasks()
            if r.loopdev and not r.held_open():
                r.detach_device()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.status_path)
