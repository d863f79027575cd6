"""Which DRBD the simulated node plays: ``--drbd-version 8.4`` (render.py, the
default) or ``9`` (render9.py).  The state machine is the same; what the
node prints (events2, status, /proc/drbd, refusals, ``drbdadm --version``)
and what DRBD 9 adds (``secondary --force``) differ."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from hasupd_lab.drbdsim import render, render9, storage

VERSIONS = ("8.4", "9")


def renderer(version: str, names: dict[int, str]) -> Any:
    """The module-like object the daemon prints with."""
    return render9.Dialect9(names) if version == "9" else render


def view_fields(version: str, r: Any) -> dict:
    """What only the 9 dialect shows of a resource (``r``: daemon.Res)."""
    if version != "9":
        return {}
    hosts = [h.name for h in r.rc.hosts]
    return {"peer_name": r.peer.name, "peer_node_id": hosts.index(r.peer.name),
            "local_addr": f"{r.me.address}:{r.rc.port}", "peer_addr": f"{r.peer.address}:{r.rc.port}",
            "backing_dev": r.me.disk if r.disk not in ("Diskless", "Failed", "Attaching") else "none",
            "open": r.held_open(), "fail_io": bool(getattr(r, "fail_io", False))}


async def force_secondary(r: Any) -> None:
    """DRBD 9.1.7+ ``drbdadm secondary --force``: demote even while the device
    is held open; the opener's I/O fails from then on (``force-io-failures:yes``)
    until it closes the device.  Not simulated: the failing I/O itself (the
    stale opener's writes still reach the loop device's image)."""
    if r.role != "Primary":
        return
    if not r.held_open():
        await r.demote()
        return
    r.fail_io = True
    storage.unpublish_device(r.me.device)
    r.role = "Secondary"
    r.emit()
    r.send_state()
    r.node.spawn(_until_closed(r))


async def _until_closed(r: Any) -> None:
    while r.loopdev is not None and r.held_open() and r.role == "Secondary":
        await asyncio.sleep(0.25)
    if r.role == "Secondary":
        r.detach_device()
    r.fail_io = False
    r.emit()


def roles_path(status_path: str) -> str:
    return status_path + ".roles"


def write_roles(node: Any) -> None:
    """9's /proc/drbd shows no roles: for the lab's invariant monitor (which
    samples files, it spawns nothing) the 9 dialect writes ``RES ROLE`` lines
    beside it.  Not something DRBD has."""
    if node.drbd_version != "9":
        return
    path = roles_path(node.paths.status_path)
    text = "".join(f"{r.name} {r.role}\n" for r in node.resources.values() if r.up)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def handler_env(r: Any, env: dict, volume: bool) -> dict:
    """The environment of a handler.  DRBD 9 names hosts by node id: the kernel
    gives DRBD_PEER_NODE_ID/DRBD_PEER_ADDRESS/DRBD_MY_ADDRESS, drbdadm adds
    DRBD_NODE_ID_<n> and DRBD_MY_NODE_ID (drbdadm_main.c setenv_node_id_and_uname)
    and, for a connection-level helper such as fence-peer, DRBD_MINORS/DRBD_VOLUMES
    instead of DRBD_MINOR; there is no DRBD_PEER/DRBD_PEERS."""
    if r.node.drbd_version != "9":
        return env
    hosts = [h.name for h in r.rc.hosts]
    env = {k: v for k, v in env.items() if k not in ("DRBD_PEER", "DRBD_PEERS", "DRBD_MINOR_0")}
    env.update({f"DRBD_NODE_ID_{i}": name for i, name in enumerate(hosts)})
    env.update(DRBD_PEER_NODE_ID=str(hosts.index(r.peer.name)), DRBD_MY_NODE_ID=str(hosts.index(r.me.name)),
               DRBD_MY_ADDRESS=r.me.address, DRBD_MY_AF="ipv4")
    if volume:
        env.update(DRBD_MINOR=str(r.minor), DRBD_VOLUME="0")
    else:
        env.pop("DRBD_MINOR", None)
        env.update(DRBD_MINORS=str(r.minor), DRBD_VOLUMES="0")
    return env
