"""The command lines of ``drbdadm``, ``drbdsetup``, ``modprobe``/``rmmod`` and
``drbdsim`` (control), executed inside the node daemon."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
from typing import TYPE_CHECKING

from hasupd_lab.drbdsim import config as simconfig
from hasupd_lab.drbdsim import dialect, render9, storage
from hasupd_lab.drbdsim.output import CmdError, Out

if TYPE_CHECKING:
    from hasupd_lab.drbdsim.node import Node
    from hasupd_lab.drbdsim.resource import Res


def _split(argv: list[str]) -> tuple[set[str], dict[str, str], list[str]]:
    flags, opts, pos = set(), {}, []
    for a in argv:
        if a == "--":
            continue
        if a.startswith("-"):
            if "=" in a:
                k, v = a.split("=", 1)
                opts[k] = v
            else:
                flags.add(a)
        else:
            pos.append(a)
    return flags, opts, pos


def _no_module(sub: str, res: str) -> tuple[str, int]:
    if sub == "up":
        return f"Command 'drbdsetup new-resource {res} 0' terminated with exit code 20\n", 1
    return ("Failed to modprobe drbd (No such file or directory)\n"
            f"Command 'drbdsetup {sub} {res}' terminated with exit code 20\n", 20)


def _resources(node: Node, names: list[str]) -> list[Res] | str:
    if not names:
        return "USAGE: drbdadm COMMAND [OPTION...] {all|RESOURCE...}\n"
    out = []
    for n in names:
        if n == "all":
            out.extend(node.resources.values())
        elif n in node.resources:
            out.append(node.resources[n])
        else:
            return f"'{n}' not defined in your config (for this host).\n"
    return out


def _not_up(r: Res, sub: str) -> CmdError:
    return CmdError(*r.node.render.failure(str(r.minor), 127, "Device minor not allocated",
                                    f"drbdsetup-84 {sub} {r.minor}", 10, extra="unknown minor"))


async def drbdadm(node: Node, req: dict, out: Out) -> int:
    argv = req["argv"]
    flags, opts, pos = _split(argv)
    if "--version" in flags or "-V" in flags:
        out.send(out=node.render.DRBDADM_VERSION)
        return 0
    if not pos:
        out.send(err="USAGE: drbdadm COMMAND [OPTION...] {all|RESOURCE...}\n")
        return 20
    sub, names = pos[0], pos[1:]
    if sub == "status" and not names:
        names = ["all"]  # plain `drbdadm status` shows every resource
    res = _resources(node, names)
    if isinstance(res, str):
        out.send(err=res)
        return 10 if "not defined" in res else 20
    if sub == "status" and names == ["all"]:
        res = [r for r in res if r.up]
    meta_only = sub in ("create-md", "dump-md", "dump")
    if not meta_only:
        if node.module == "missing":
            text, rc = _no_module(sub, names[0])
            out.send(err=text)
            return rc
        if node.module == "available":  # drbdadm loads the module itself
            node.module = "loaded"
            node.write_status()
    color_opt = opts.get("--color", "auto")
    color = color_opt == "always" or (color_opt == "auto" and req.get("tty", False))
    force = bool(flags & {"--force", "--overwrite-data-of-peer"})
    rc = 0
    # state changes are serialised; queries are not (a fence-peer handler may ask while
    # `drbdadm primary` waits for it)
    readonly = sub in ("status", "role", "cstate", "dstate", "dump-md", "dump")
    for r in res:
        try:
            if readonly:
                await _one(r, sub, flags, force, color, req, out)
                continue
            async with node.lock:
                await _one(r, sub, flags, force, color, req, out)
        except CmdError as e:
            out.send(err=e.text)
            rc = e.code
    return rc


async def _one(r: Res, sub: str, flags: set[str], force: bool, color: bool, req: dict, out: Out) -> None:
    if sub in ("create-md", "dump-md"):
        return _meta(r, sub, force, req, out)
    if sub == "dump" and r.node.drbd_version == "9":  # the configuration file as it is now
        try:
            rc = simconfig.load(r.node.cfg.path).resource(r.name) or r.rc
        except simconfig.SimConfigError as e:
            raise CmdError(f"{e}\n", 10) from None
        out.send(out=render9.dump(rc, r.node.cfg.conf_path).replace("{me}", r.node.name))
        return
    if sub == "up":
        return await r.cmd_up()
    if sub == "adjust":
        r.node.reload()  # like drbdadm, adjust applies the current configuration
        if not r.up:
            return await r.cmd_up()
        if r.disk == "Diskless":
            r.attach()
        if r.conn == "StandAlone":
            r.start_connecting()
        return
    if sub == "down":
        return await r.cmd_down()
    if sub == "status":
        if not r.up:
            setup = "drbdsetup" if r.node.drbd_version == "9" else "drbdsetup-84"
            raise CmdError(f"{r.name}: No such resource\n"
                           f"Command '{setup} status {r.name}' terminated with exit code 10\n", 10)
        out.send(out=r.node.render.status(r.view(), color))
        return
    if not r.up:
        if sub == "attach":
            raise CmdError(*r.node.render.failure(str(r.minor), 127, "Device minor not allocated", r.attach_cmd(),
                                           10, extra="unknown minor"))
        raise _not_up(r, sub)
    if sub == "role":
        out.send(out=r.node.render.role(r.view()))
    elif sub == "cstate":
        out.send(out=r.node.render.cstate(r.view()))
    elif sub == "dstate":
        out.send(out=r.node.render.dstate(r.view()))
    elif sub == "primary":
        await r.cmd_primary(force)
    elif sub == "secondary":
        if force and r.node.drbd_version == "9":
            await dialect.force_secondary(r)
        elif force:  # 8.4's drbdsetup has no --force for secondary
            raise CmdError(f"drbdsetup-84 secondary: unrecognized option '--force'\n"
                           f"Command 'drbdsetup-84 secondary {r.minor} --force' terminated with exit code 20\n", 20)
        else:
            await r.cmd_secondary()
    elif sub == "attach":
        if r.disk == "Diskless":
            was_primary = r.role == "Primary"
            r.attach()
            if was_primary:
                out.send(err=f"Marked additional {r.rc.size_mib} MB as out-of-sync based on AL.\n")
    elif sub == "detach":
        await r.cmd_detach()
    elif sub == "connect":
        await r.cmd_connect("--discard-my-data" in flags)
    elif sub == "disconnect":
        if r.conn != "StandAlone":  # --force: no handshake with the peer (CS_HARD), so no outdating
            await r.to_standalone(graceful="--force" not in flags)
    elif sub == "outdate":
        r.cmd_outdate()
    elif sub in ("pause-sync", "resume-sync"):
        r.set_pause(sub == "pause-sync")
    else:
        raise CmdError(f"drbdsim: drbdadm {sub} is not simulated\n", 20)


def _meta(r: Res, sub: str, force: bool, req: dict, out: Out) -> None:
    disk = r.me.disk
    cmd = f"drbdmeta {r.minor} v08 {disk} internal {sub}" + (" 1" if sub == "create-md" else "")
    if r.up and r.disk != "Diskless":
        raise CmdError(f"Device '{r.minor}' is configured!\nCommand '{cmd}' terminated with exit code 20\n", 20)
    if sub == "dump-md":
        if r.md is None:
            raise CmdError(f"No valid meta data found\nCommand '{cmd}' terminated with exit code 255\n", 255)
        md = r.md
        flags = {"UpToDate": 0x1b, "Outdated": 0x13, "Inconsistent": 0x3}.get(md["disk"], 0x3)
        out.send(out=(f"# DRBD meta data dump\n# drbdmeta {r.minor} v08 {disk} internal dump-md\n#\n\n"
                      f"version \"v08\";\n\nuuid {{\n    0x{md['uuid'] if md['uuid'] != '0' else '4':0>16}; "
                      f"0x{md['bitmap'] or '0':0>16}; 0x0000000000000000; 0x0000000000000000;\n"
                      f"    flags 0x{flags:08x};\n}}\nla-size-sect {r.size_kib * 2};\n"
                      "bm-byte-per-bit 4096;\ndevice-uuid 0x0000000000000000;\nla-peer-max-bio-size 0;\n"
                      "al-stripes 1;\nal-stripe-size-4k 8;\n"))
        return
    if r.md is not None and not force and req.get("stdin", "").strip() != "yes":
        raise CmdError("You want me to create a v08 style flexible-size internal meta data block.\n"
                       "There appears to be a v08 flexible-size internal meta data block\n"
                       f"already in place on {disk} at byte offset {(r.rc.size_mib << 20) - 4096}\n\n"
                       "Do you really want to overwrite the existing meta-data?\n"
                       "[need to type 'yes' to confirm] \nOperation cancelled.\n"
                       f"Command '{cmd}' terminated with exit code 20\n", 20)
    if r.md is None and not os.path.exists(r.node.cfg.image_dir):
        os.makedirs(r.node.cfg.image_dir, exist_ok=True)
    image = os.path.join(r.node.cfg.image_dir, f"{r.name}.{r.node.name}.0.img")
    storage.create_image(image, r.rc.size_mib)
    r.md = {"uuid": "0", "bitmap": None, "disk": "Inconsistent", "image": image, "fresh": True,
            "peer_outdated": False, "forks": 0}
    r.save_md()
    out.send(err="initializing activity log\nWriting meta data...\n"
                 "New drbd meta data block successfully created.\n")


async def drbdsetup(node: Node, req: dict, out: Out, reader: asyncio.StreamReader) -> int:
    flags, opts, pos = _split(req["argv"])
    if not pos:
        out.send(err="USAGE: drbdsetup command device arguments options\n")
        return 20
    sub, names = pos[0], pos[1:]
    if node.module != "loaded":
        out.send(err="Could not connect to 'drbd' generic netlink family\n")
        return 20
    if sub == "status":
        if "--json" in flags and node.drbd_version == "9":
            shown = [r.view() for r in node.resources.values() if r.up and (not names or names[0] in ("all", r.name))]
            out.send(out=node.render.status_json(shown))
            return 0
        if "--json" in flags:
            out.send(err="status: unrecognized option '--json'\n\nUSAGE: drbdsetup command device "
                         "arguments options\n")
            return 20
        color = opts.get("--color", "auto") == "always" or (
            opts.get("--color", "auto") == "auto" and req.get("tty", False))
        shown = [r for r in node.resources.values() if r.up and (not names or names[0] in ("all", r.name))]
        if names and names[0] != "all" and not shown:
            out.send(err=f"{names[0]}: No such resource\n")
            return 10
        out.send(out="".join(node.render.status(r.view(), color) for r in shown))
        return 0
    if sub != "events2":
        out.send(err=f"drbdsim: drbdsetup {sub} is not simulated\n")
        return 20
    filt = names[0] if names else None
    stats = "--statistics" in flags or "-s" in flags
    stamps = "--timestamps" in flags or "-t" in flags
    views = [r.view() for r in node.resources.values() if r.up and filt in (None, "all", r.name)]
    lines = node.render.events2_now(views, stats) + ["exists -"]
    if stamps:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        lines = [f"{now} {x}" for x in lines]
    out.send(out="".join(x + "\n" for x in lines))
    if "--now" in flags or "-n" in flags:
        return 0
    sub_entry = (out, filt, stats, stamps)
    node.subscribers.append(sub_entry)
    try:
        while await reader.read(4096):
            pass
    finally:
        node.subscribers.remove(sub_entry)
    return 0


def modprobe(node: Node, req: dict, out: Out, prog: str) -> int:
    flags, opts, pos = _split(req["argv"])
    remove = prog == "rmmod" or "-r" in flags or "--remove" in flags
    if remove:
        if node.module == "missing":
            out.send(err=f"{prog}: ERROR: Module drbd is not currently loaded\n" if prog == "rmmod"
                     else f"modprobe: FATAL: Module drbd not found in directory /lib/modules/{os.uname().release}\n")
            return 1
        if any(r.up for r in node.resources.values()):
            out.send(err=f"{prog}: ERROR: Module drbd is in use\n" if prog == "rmmod"
                     else "modprobe: FATAL: Module drbd is in use.\n")
            return 1
        if node.module == "loaded":
            node.module = "available"
            node.write_status()
        return 0
    if node.module == "missing":
        out.send(err=f"modprobe: FATAL: Module drbd not found in directory /lib/modules/{os.uname().release}\n")
        return 1
    if node.module != "loaded":
        mc = next((p.split("=", 1)[1] for p in pos if p.startswith("minor_count=")), None)
        if mc is not None and mc.isdigit():
            node.minor_count = int(mc)
        node.module = "loaded"
        node.write_status()
    return 0


def control(node: Node, req: dict, out: Out) -> int:
    """``drbdsim module missing|available|loaded``, ``drbdsim state``."""
    argv = req["argv"]
    if argv[:1] == ["module"] and len(argv) == 2 and argv[1] in ("missing", "available", "loaded"):
        if argv[1] != "loaded" and any(r.up for r in node.resources.values()):
            out.send(err="drbdsim: resources are up\n")
            return 1
        node.module = argv[1]
        node.write_status()
        return 0
    if argv[:1] == ["state"]:
        state = {n: {"up": r.up, "role": r.role, "disk": r.disk, "conn": r.conn, "repl": r.repl,
                     "peer_role": r.peer_role, "peer_disk": r.peer_disk, "oos": r.oos, "md": r.md,
                     "loop": r.loopdev} for n, r in node.resources.items()}
        out.send(out=json.dumps({"node": node.name, "module": node.module, "resources": state}) + "\n")
        return 0
    out.send(err="usage: drbdsim module missing|available|loaded | drbdsim state\n")
    return 2


async def dispatch(node: Node, req: dict, out: Out, reader: asyncio.StreamReader) -> int:
    prog = req["prog"]
    if prog in ("drbdadm", "drbdadm-84"):
        return await drbdadm(node, req, out)
    if prog in ("drbdsetup", "drbdsetup-84"):
        return await drbdsetup(node, req, out, reader)
    if prog in ("modprobe", "rmmod"):
        return modprobe(node, req, out, prog)
    if prog == "drbdsim":
        return control(node, req, out)
    out.send(err=f"drbdsim: unknown program {prog}\n")
    return 127
