"""Run by Debian's /usr/bin/python3 against the INSTALLED package (not the
venv), inside a network namespace the test made: every module imports, and
the code paths that touch the libraries whose Debian versions are older than
the venv's really work (the VIP driver's own netlink client: add, see, remove an address;
structlog 22: an alert record; psutil 5.9; pyudev 0.24; PyYAML 6.0).

Usage: installed_smoke.py NIC IP   (NIC has a connected /24 containing IP)
Prints one `ok: ...` line per check; any failure raises (non-zero exit).
"""

import asyncio
import dataclasses
import importlib
import importlib.util
import io
import os
import pkgutil
import sys


def main(nic: str, ip: str) -> None:
    import hasupd

    assert hasupd.__file__.startswith("/usr/lib/python3/dist-packages/"), hasupd.__file__
    names = [m.name for m in pkgutil.walk_packages(hasupd.__path__, "hasupd.")
             if not m.name.endswith("__main__")]  # __main__ runs a CLI on import
    for name in names:
        importlib.import_module(name)
    assert importlib.util.find_spec("hasupd_lab") is None, "the lab is shipped"
    assert not any("lab" in n.split(".") or "drbdsim" in n for n in names), "the lab is shipped"
    print(f"ok: {len(names)} modules import")

    import psutil
    import pyudev

    from hasupd import config
    from hasupd.alerts import Alerter
    from hasupd.resources.vip import VipDriver

    text = open("/usr/share/hasupd/hasupd.yaml").read()
    cfg = config.loads(text.replace("192.168.0.20", ip).replace("nic: eth0", f"nic: {nic}"))
    vip = next(r for g in cfg.groups for r in g.resources if r.type == "vip")
    driver = VipDriver(dataclasses.replace(vip, check_duplicate=False, arp_count=1))

    async def cycle() -> None:
        before = await driver.probe()
        assert before.state.name == "STOPPED", before
        started = await driver.start()
        assert started.ok, started
        here = await driver.probe()
        assert here.state.name == "STARTED", here
        monitored = await driver.monitor()
        assert monitored.ok, monitored
        stopped = await driver.stop()
        assert stopped.ok, stopped
        after = await driver.probe()
        assert after.state.name == "STOPPED", after
        print(f"ok: VIP netlink: {ip} added, seen ({here.detail}), removed")

    asyncio.run(cycle())

    out = io.StringIO()
    Alerter(cfg, "primarycentos", foreground=True, stderr=out).emit(
        "smoke_test", "warning", "an alert through structlog", group="rg_web", resource="res_vip")
    assert "WARNING  smoke_test rg_web/res_vip: an alert through structlog" in out.getvalue(), out.getvalue()
    print("ok: structlog alert record")

    assert psutil.Process(os.getpid()).name().startswith("python3")
    # ip netns exec mounts the namespace's own /sys: the veth is there
    nets = {d.sys_name for d in pyudev.Context().list_devices(subsystem="net")}
    assert nic in nets, nets
    print("ok: psutil, pyudev")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
