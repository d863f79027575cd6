"""`make demo`: a lab, a failure, the failover as it happens, its timeline.

Leaves the lab up, with the commands to play with it and to take it down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from hasupd_lab.cluster import VIP, Lab, LabError

PREFIX = os.environ.get("HASUPD_LAB_PREFIX", "demo")


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def hasupctl(lab: Lab, node: str, *args: str) -> None:
    lab.exec(node, ["hasupctl", *args])


def merged_timeline(lab: Lab) -> str:
    from hasupd import history

    records = []
    for node in ("n1", "n2"):
        records += history.read(str(lab.node_dir(node) / "state"))
    failovers = [t for t in history.timelines(records) if t["kind"] == "failover"]
    return history.render_timeline(failovers[-1]) if failovers else "(no failover recorded)"


def main() -> int:
    lab = Lab(PREFIX)
    if lab.meta:
        say("an earlier demo lab is up: taking it down first")
        lab.down()
        lab = Lab(PREFIX)
    say("building two nodes (n1, n2) and a client in network namespaces, starting hasupd on both")
    t0 = time.monotonic()
    try:
        lab.up()
    except LabError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    status, _, owner = lab.curl()
    print(f"cluster settled in {time.monotonic() - t0:.1f}s; the client gets HTTP {status} from {owner} "
          f"on the VIP {VIP}")
    say(f"hasupctl status on {owner}")
    hasupctl(lab, owner, "status")

    say(f"killing httpd on {owner} (kill -9 of its main process, as in the reference incident)")
    print(lab.fault(owner, "kill-httpd"))
    t_fault = time.monotonic()
    last = None
    new_owner = None
    while time.monotonic() - t_fault < 60:
        status, _, served = lab.curl(0.3)
        state = f"HTTP {status} from {served}" if status else "no answer"
        if state != last:
            print(f"  +{time.monotonic() - t_fault:6.3f}s  client: {state}", flush=True)
            last = state
        if status == 200 and served and served != owner:
            new_owner = served
            break
        time.sleep(0.05)
    if new_owner is None:
        print("demo: the group did not come back on the peer within 60 s", file=sys.stderr)
        hasupctl(lab, owner, "status")
        return 1
    print(f"the service is back on {new_owner} {time.monotonic() - t_fault:.2f}s after the kill")

    time.sleep(1.0)  # let the history settle
    say("the failover timeline, both nodes' histories merged (each node: `hasupctl history`)")
    print(merged_timeline(lab))
    say(f"hasupctl status on {new_owner}: {owner} is banned until cleanup (migration threshold 1)")
    hasupctl(lab, new_owner, "status")

    say("the lab is still up; try:")
    p = f"hasupd-lab --prefix {PREFIX}"
    venv = os.path.dirname(sys.executable)
    print(f"  export PATH={venv}:$PATH")
    for line in (f"{p} exec {new_owner} -- hasupctl status",
                 f"{p} exec {new_owner} -- hasupctl cleanup rg_web      # lift the ban on {owner}",
                 f"{p} exec {new_owner} -- hasupctl move rg_web {owner}",
                 f"{p} fault {new_owner} crash                            # a dead node",
                 f"{p} exec {owner} -- drbdadm role r0",
                 f"{p} curl",
                 f"{p} down                                          # remove everything"):
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        subprocess.run([sys.executable, "-m", "hasupd_lab.cli", "--prefix", PREFIX, "down"])
        sys.exit(130)
