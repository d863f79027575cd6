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


def make_driver(resource, node: str | None = None):
    """A driver for one configured resource (a hasupd.config resource dataclass)."""
    module, cls = DRIVERS[resource.type].split(":")
    factory = getattr(importlib.import_module(module), cls)
    # one constructor signature: (resource, node); drivers that do not name the node ignore it
    return factory(resource, node=node)
