"""`hasupd-lab`: two hasupd nodes and a client on this machine.

    hasupd-lab up [--prefix P]            build it, start hasupd on both nodes
    hasupd-lab down [--prefix P]          remove everything (safe twice)
    hasupd-lab exec NODE -- CMD...        run CMD inside a node (hasupctl, drbdadm, ...)
    hasupd-lab fault NODE KIND [ARGS]     kill-httpd kill-daemon freeze thaw crash boot
                                          cut-ring N heal-ring N loss PCT [RING] detach-disk
                                          partition partition-rings heal (between the nodes)
                                          bmc-down bmc-up (fencing NODE fails while down)
    hasupd-lab start NODE                 (re)start hasupd on a node (after kill-daemon)
    hasupd-lab curl                       fetch the VIP from the client: body + which node
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from hasupd_lab.cluster import NODES, VIP, Lab, LabError
from hasupd_lab.netlab import NetlabError

PREFIX_HELP = "name prefix of this lab's namespaces (several labs can coexist)"
EXEC_TIMEOUT = 30.0  # a lab command never hangs: a frozen node's simulator or daemon never answers


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hasupd-lab", description="a two-node hasupd lab in network namespaces")
    p.add_argument("--prefix", default=os.environ.get("HASUPD_LAB_PREFIX", "hl"), help=PREFIX_HELP)
    # --prefix is accepted after the subcommand too (`hasupd-lab up --prefix P`);
    # SUPPRESS keeps the top-level value when the subcommand does not repeat it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--prefix", default=argparse.SUPPRESS, help=PREFIX_HELP)
    subparsers = p.add_subparsers(dest="cmd", required=True)

    def command(name: str, **kw) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, parents=[common], **kw)

    up = command("up", help="build the lab and start hasupd on both nodes")
    up.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key, e.g. heartbeat.interval=50ms, groups.0.migration_threshold=3")
    up.add_argument("--no-start", action="store_true", help="do not start the daemons")
    up.add_argument("--guard", choices=Lab.GUARDS,
                    help="split-brain guard; fence and drbd+fence fence through the nodes' BMCs (fence_ipmilan)")
    up.add_argument("--drbd-version", choices=("8.4", "9"), default="8.4",
                    help="which DRBD the simulator plays (default 8.4, the in-tree module)")
    command("down", help="remove everything the lab made")
    ex = command("exec", help="run a command inside a node")
    ex.add_argument("--timeout", type=float, default=EXEC_TIMEOUT,
                    help=f"give up after this many seconds (default {EXEC_TIMEOUT:g})")
    ex.add_argument("node", choices=NODES)
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    f = command("fault", help="inject a fault")
    f.add_argument("node", choices=NODES)
    f.add_argument("kind", choices=Lab.FAULTS)
    f.add_argument("args", nargs="*")
    st = command("start", help="start hasupd on a node")
    st.add_argument("node", choices=NODES)
    command("curl", help="fetch the VIP from the client namespace")
    return p


def _value(text: str):
    import yaml
    return yaml.safe_load(text)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if os.geteuid() != 0:
        print("hasupd-lab: needs root (network namespaces, loop devices, mounts)", file=sys.stderr)
        return 1
    lab = Lab(args.prefix)
    try:
        if args.cmd == "up":
            overrides = {}
            for item in args.set:
                key, _, value = item.partition("=")
                overrides[key] = _value(value)
            lab.up(overrides, start=not args.no_start, guard=args.guard, drbd_version=args.drbd_version)
            if args.no_start:
                print(f"lab {args.prefix} is up (daemons not started)")
                return 0
            status, _, served = lab.curl()
            print(f"lab {args.prefix} is up: rg_web runs on {served or '?'}; VIP {VIP} answers HTTP {status}")
            print(f"  BMCs (ipmi_sim, IPMI-over-LAN, user admin, password in {lab.dir / 'bmc.password'}): "
                  + ", ".join(f"{n} {lab.topo.bmc_address(n)}" for n in NODES)
                  + (f"; guard {args.guard}" if args.guard else ""))
            print(f"  hasupd-lab --prefix {args.prefix} exec {served or 'n1'} -- hasupctl status")
            print(f"  hasupd-lab --prefix {args.prefix} fault {served or 'n1'} kill-httpd")
            print(f"  hasupd-lab --prefix {args.prefix} curl")
            print(f"  hasupd-lab --prefix {args.prefix} down")
            return 0
        if args.cmd == "down":
            lab.down()
            print(f"lab {args.prefix} removed")
            return 0
        if not lab.meta:
            print(f"hasupd-lab: lab {args.prefix} is not up (hasupd-lab --prefix {args.prefix} up)", file=sys.stderr)
            return 1
        if args.cmd == "exec":
            argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            if not argv:
                print("hasupd-lab: exec NODE -- CMD...", file=sys.stderr)
                return 2
            return lab.exec_bounded(args.node, argv, args.timeout)
        if args.cmd == "fault":
            print(lab.fault(args.node, args.kind, *args.args))
            return 0
        if args.cmd == "start":
            print(f"hasupd started on {args.node}: pid {lab.start_daemon(args.node)}")
            return 0
        if args.cmd == "curl":
            status, body, served = lab.curl()
            if not status:
                print(f"no answer from {VIP}: {body}")
                return 1
            print(f"HTTP {status} from {served}: {body.strip()}")
            return 0
    except (LabError, NetlabError, subprocess.SubprocessError, OSError) as e:
        print(f"hasupd-lab: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
