"""Resource drivers, one per file; ``make_driver`` picks one by type."""

from __future__ import annotations

import importlib

# type in hasupd.yaml -> "module:Class"
DRIVERS = {
    "filesystem": "hasupd.resources.filesystem:FilesystemDriver",
    "vip": "hasupd.resources.vip:VipDriver",
    "httpd": "hasupd.resources.httpd:HttpdDriver",
    "systemd_unit": "hasupd.resources.systemd_unit:SystemdUnitDriver",
    "ocf": "hasupd.resources.ocf:OcfDriver",
}


def make_driver(resource):
    """A driver for one configured resource (a hasupd.config resource dataclass)."""
    module, cls = DRIVERS[resource.type].split(":")
    return getattr(importlib.import_module(module), cls)(resource)
