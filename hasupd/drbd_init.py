"""`hasupctl drbd init RESOURCE [--this-node-wins]`: the first sync, locally.

Runs without the daemon (it is what an administrator does before the first
`systemctl enable --now hasupd`), on each node:

    node B:  hasupctl drbd init r0                  metadata + up, then waits for nothing
    node A:  hasupctl drbd init r0 --this-node-wins metadata + up, waits (bounded) for the
                                                    peer, forces this node Primary with
                                                    overwrite of the peer, shows progress
                                                    until both are UpToDate

The order does not matter and nothing waits forever (the reference setup's
`service drbd start` hung until the peer came).  The winner stays Primary so
the administrator can `mkfs` on it; hasupd adopts that.

``hasupctl drbd init RESOURCE --resource-file [--drbd-version 8.4|9]`` prints
the resource file for hasupd (``resource_file``): DRBD 8.4 keeps ``fencing``
in ``disk``, DRBD 9 in ``net`` and needs ``node-id``, ``auto-promote no`` (an
application opening the device must not promote it behind hasupd's back) and,
on two nodes, ``quorum off`` (fencing through hasupd's handler decides instead).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Callable

from hasupd.config import Config
from hasupd.resources import drbd as drbdmod
from hasupd.resources.drbd_parse import format_progress


class InitError(Exception):
    pass


async def init(cfg: Config, name: str, this_node_wins: bool, confirm: Callable[[str], bool],
               out=sys.stdout, connect_timeout: float = 300.0, sync_timeout: float = 24 * 3600.0) -> str:
    res = cfg.drbd.resource(name)
    if res is None:
        known = ", ".join(r.name for r in cfg.drbd.resources) or "none"
        raise InitError(f"no DRBD resource {name!r} in {cfg.path} (configured: {known})")
    drv = drbdmod.DrbdDriver(cfg.drbd, res)

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    if cfg.drbd.load_module:
        r = await drbdmod.ensure_module(cfg.drbd)
        if not r.ok:
            raise InitError(r.message)
    versions = await drv.versions_once()
    if versions.kernel:
        say(f"DRBD kernel module {versions.kernel}, drbd-utils {versions.utils or '?'}")
    for warning in await drbdmod.check_resource(cfg.drbd, name, versions):
        say(f"warning: {warning}")
    has_md, r = await drv.has_metadata()
    if has_md is None:
        raise InitError(f"cannot tell whether {res.disk} has DRBD metadata: {r.message}")
    if not has_md:
        if not confirm(f"{res.disk} has no DRBD metadata: create it (drbdadm create-md {name})?"):
            raise InitError("not confirmed; nothing done")
        r = await drv.create_md(force=True)
        if not r.ok:
            raise InitError(r.message)
        say(f"created DRBD metadata for {name} on {res.disk}")
    r = await drv.up()
    if not r.ok:
        raise InitError(r.message)
    st = await drv.status()
    say(f"{name} is up here: {st.role}, disk {st.disk}, {st.connection}")
    if not this_node_wins:
        return (f"{name} is ready on this node; on the node whose data is kept run "
                f"`hasupctl drbd init {name} --this-node-wins`")

    if st.disk == "UpToDate" and st.peer_disk == "UpToDate":
        return f"{name} is already in sync on both nodes: nothing to do"
    if not st.connected:
        say(f"waiting up to {connect_timeout:g}s for the peer "
            f"(run `hasupctl drbd init {name}` there if you have not)")
        st = await drv.wait_until(lambda s: s.connected, connect_timeout)
        if st is None:
            raise InitError(f"the peer did not connect within {connect_timeout:g}s; nothing was "
                            f"overwritten. Check the replication link (port {res.port}) and run "
                            f"`hasupctl drbd init {name}` on the peer")
    if st.peer_disk == "UpToDate" and st.disk != "UpToDate":
        raise InitError(f"the peer's copy of {name} is UpToDate and this node's is {st.disk}: forcing this "
                        "node would overwrite good data with bad. Run --this-node-wins on the peer instead")
    if not confirm(f"The full sync OVERWRITES the peer's copy of {name} with this node's data. Go on?"):
        raise InitError("not confirmed; nothing done")
    r = await drv.force_primary_overwrite_peer()
    if not r.ok:
        raise InitError(r.message)
    say(f"{name}: this node is Primary; the full sync to the peer has started")
    deadline = time.monotonic() + sync_timeout
    last = ""
    while time.monotonic() < deadline:
        st = await drv.status()
        if st.disk == "UpToDate" and st.peer_disk == "UpToDate":
            break
        line = format_progress(st) if st.sync_percent is not None else f"{st.replication} {st.peer_disk}"
        if line != last:
            say(f"  {line}")
            last = line
        await asyncio.sleep(0.5)
    else:
        raise InitError(f"the sync of {name} did not finish within {sync_timeout:g}s")
    return (f"{name} is in sync (UpToDate/UpToDate) and Primary here: now `mkfs.ext4 {res.device}` on this "
            "node, then `systemctl enable --now hasupd` on both nodes")


HANDLER = "/usr/bin/hasupd-drbd-handler"


def resource_file(cfg: Config, name: str, version: str) -> str:
    """``/etc/drbd.d/NAME.res`` for hasupd's two nodes, DRBD ``version`` "8.4" or "9"."""
    res = cfg.drbd.resource(name)
    if res is None:
        known = ", ".join(r.name for r in cfg.drbd.resources) or "none"
        raise InitError(f"no DRBD resource {name!r} in {cfg.path} (configured: {known})")
    if version not in ("8.4", "9"):
        raise InitError(f"--drbd-version must be 8.4 or 9, not {version!r}")
    nine = version == "9"
    # resource-and-stonith, not resource-only: DRBD freezes the Primary's I/O until the handler has
    # answered, so no write is acknowledged on a copy that the peer may promote without it (the VM
    # campaign lost 28 acknowledged writes when nothing froze the owner's I/O in a partition)
    fencing = "    fencing resource-and-stonith; # I/O frozen until hasupd-drbd-handler answers fence-peer\n"
    out = [f"# /etc/drbd.d/{name}.res for DRBD {version}, identical on both nodes "
           f"(hasupctl drbd init {name} --resource-file --drbd-version {version})\n",
           f"resource {name} {{\n"]
    if nine:
        out.append("  options {\n"
                   "    auto-promote no;            # only hasupd promotes (an open() must not)\n"
                   "    quorum off;                 # two nodes: fencing decides, not a majority\n"
                   "  }\n")
    out.append("  net {\n    protocol C;\n"
               "    ping-int 1;                 # seconds: DRBD notices a dead peer in ~1.5 s\n"
               "    ping-timeout 5;             # tenths of a second\n"
               + (fencing if nine else "") + "  }\n")
    if not nine:
        out.append("  disk {\n" + fencing + "  }\n")
    out.append("  handlers {\n"
               f"    fence-peer   \"{HANDLER} fence-peer\";\n"
               f"    unfence-peer \"{HANDLER} unfence-peer\";\n"
               f"    split-brain  \"{HANDLER} split-brain\";\n"
               "  }\n")
    for node_id, node in enumerate(cfg.nodes):
        address = node.addresses[0] if node.addresses else "ADDRESS"
        out.append(f"  on {node.name} {{\n"
                   + (f"    node-id {node_id};\n" if nine else "")
                   + f"    device {res.device}; disk {res.disk}; address {address}:{res.port}; "
                   "meta-disk internal;\n  }\n")
    out.append("}\n")
    return "".join(out)
