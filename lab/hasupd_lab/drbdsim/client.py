"""The shim behind ``drbdadm``, ``drbdsetup``, ``modprobe``, ``rmmod`` and
``drbdsim`` in a simulated node's bin directory.  Standard library only (it
runs as ``python3 -S client.py --socket PATH PROG ARGS...``): it hands the
command line to the node's simulator daemon and prints what comes back."""

import json
import os
import select
import socket
import sys

REAL_MODPROBE = ("/usr/sbin/modprobe", "/sbin/modprobe")


def main(argv):
    sock_path = os.environ.get("DRBDSIM_SOCKET", "")
    if len(argv) >= 2 and argv[0] == "--socket":
        sock_path, argv = argv[1], argv[2:]
    if not argv:
        sys.stderr.write("usage: client.py [--socket PATH] PROG [ARGS...]\n")
        return 2
    prog, args = argv[0], argv[1:]
    if prog in ("modprobe", "rmmod") and "drbd" not in args:
        for real in REAL_MODPROBE:  # not ours: the real tool
            if os.path.exists(real):
                os.execv(real, [prog] + args)
    req = {"prog": prog, "argv": args, "tty": os.isatty(1)}
    if prog in ("drbdadm",) and "create-md" in args and not os.isatty(0):
        try:
            if select.select([0], [], [], 0.2)[0]:
                req["stdin"] = os.read(0, 64).decode(errors="replace")
        except OSError:
            pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sock_path)
    except OSError as e:
        sys.stderr.write(f"{prog}: the DRBD simulator of this node is not running "
                         f"({sock_path or 'DRBDSIM_SOCKET unset'}: {e.strerror})\n")
        return 20
    s.sendall((json.dumps(req) + "\n").encode())
    f = s.makefile("r", encoding="utf-8")
    rc = 20
    try:
        for line in f:
            msg = json.loads(line)
            if "out" in msg:
                sys.stdout.write(msg["out"])
                sys.stdout.flush()
            if "err" in msg:
                sys.stderr.write(msg["err"])
                sys.stderr.flush()
            if "rc" in msg:
                rc = msg["rc"]
                break
    except (KeyboardInterrupt, BrokenPipeError):
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
